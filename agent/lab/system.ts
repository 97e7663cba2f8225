// The few system operations the lab needs, each confined to what the lab
// owns: commands run inside the lab's network namespaces (ip -n, nsenter),
// processes started detached inside a cgroup of the lab's own, and
// /proc reads to tell the lab's processes from recycled PIDs.
import { spawn } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { execa } from 'execa';
import { parseProcState, parseStartTime } from './state.ts';

export async function run(cmd: string, args: string[], opts: { input?: string; env?: Record<string, string> } = {}): Promise<string> {
  const r = await execa(cmd, args, {
    reject: false,
    ...(opts.input !== undefined ? { input: opts.input } : {}),
    ...(opts.env ? { env: opts.env, extendEnv: false } : {}),
  });
  if (r.exitCode !== 0) {
    const out = `${r.stderr}\n${r.stdout}`.trim();
    throw new Error(`${[cmd, ...args].join(' ')} failed (exit ${r.exitCode ?? r.signal}): ${out || 'no output'}`);
  }
  return r.stdout;
}

/** Run and return stdout/exit code without throwing. */
export async function tryRun(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  const r = await execa(cmd, args, { reject: false });
  return { code: r.exitCode ?? -1, out: `${r.stdout}\n${r.stderr}`.trim() };
}

/** /proc/<pid>/stat, or undefined when there is no such process. */
function statOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
}

export function startTimeOf(pid: number): number | undefined {
  const s = statOf(pid);
  return s === undefined ? undefined : parseStartTime(s);
}

/** Alive (not gone, not a zombie) and still the process that was recorded. */
export function isOurs(pid: number, startTime: number): boolean {
  const s = statOf(pid);
  if (s === undefined) return false;
  return parseProcState(s) !== 'Z' && parseStartTime(s) === startTime;
}

export function isAlive(pid: number): boolean {
  const s = statOf(pid);
  return s !== undefined && parseProcState(s) !== 'Z';
}

/** PIDs in a cgroup (empty when it does not exist). */
export async function cgroupPids(dir: string): Promise<number[]> {
  const text = await readFile(`${dir}/cgroup.procs`, 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).map(Number).filter((n) => Number.isInteger(n) && n > 1);
}

/** A command prefixed so that it joins `cgroup` and then enters network namespace `netns`. */
export function inCgroupAndNetns(cgroup: string, netns: string, argv: string[]): string[] {
  return ['sh', '-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, 'nsenter', `--net=/run/netns/${netns}`, ...argv];
}

export interface Detached {
  pid: number;
  startTime: number;
}

/**
 * Start a long-running process detached from us (own session, output to
 * `log`), so it outlives `kinglet lab up`. Resolves with its PID and start
 * time once /proc shows it.
 */
export async function startDetached(argv: string[], log: string, env?: NodeJS.ProcessEnv): Promise<Detached> {
  const fd = openSync(log, 'a');
  try {
    const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', fd, fd], env: env ?? process.env });
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('error', reject);
      child.once('spawn', () => resolve(child.pid!));
    });
    child.unref();
    const startTime = startTimeOf(pid);
    if (startTime === undefined) throw new Error(`${argv[0]} exited at once; see ${log}`);
    return { pid, startTime };
  } finally {
    closeSync(fd);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The last `n` lines of a log file (for error messages). */
export async function tail(file: string, n = 15): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.trimEnd().split('\n').slice(-n).join('\n');
}

/** Mount points at or below `dir`, deepest first. */
export async function mountsBelow(dir: string): Promise<string[]> {
  const text = await readFile('/proc/self/mounts', 'utf8');
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const mp = line.split(' ')[1]?.replace(/\\040/g, ' ');
    if (mp && (mp === dir || mp.startsWith(`${dir}/`))) out.push(mp);
  }
  return out.sort((a, b) => b.length - a.length);
}
