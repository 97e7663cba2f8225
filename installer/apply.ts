// The applier: executes planned steps against a root directory through an
// injectable command runner, and records what it did in the state file so a
// re-run skips it, a reboot-cut run resumes, and uninstall can undo it.
import { chmod, mkdir, readFile, readdir, realpath, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Clock } from './progress.ts';
import { CLEAR_LINE, DEFAULT_PROGRESS_SECONDS, formatBytes, realClock, secondsSince, withHeartbeat } from './progress.ts';
import { STATE_DIR, STATE_FILE } from './render.ts';
import type { PhaseName, Step } from './steps.ts';
import { describe, isReadOnly, redactText, secretValues, shellLine, stepHash } from './steps.ts';

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface Runner {
  /** Run a command to completion; `onLine` (when given) sees each line of its output as it comes. */
  run(argv: string[], env?: Record<string, string>, onLine?: (line: string) => void): Promise<RunResult>;
}

export interface ApplyContext {
  /** "/" on a real host, a scratch directory in tests. */
  root: string;
  runner: Runner;
  /** Where `copy` steps without fromHost find their source. */
  bundleDir: string;
  /** The node that runs kinglet here (uninstall's fallback datapath cleanup); default: this process's. */
  nodeBin?: string;
  log(line: string): void;
  sleep(ms: number): Promise<void>;
  /** Time for progress lines and wait deadlines; default the real one. */
  clock?: Clock;
  /** Seconds between "still ..." lines (default 15, KINGLET_PROGRESS_SECONDS). */
  progressSec?: number;
  /** On a terminal only: write without a newline, for a status line redrawn in place. */
  status?: (text: string) => void;
}

function clockOf(ctx: ApplyContext): Clock {
  return ctx.clock ?? realClock;
}

/** How to take a step back, recorded when it is applied. */
export type Undo =
  | { kind: 'remove'; path: string }
  | { kind: 'restore'; path: string; content: string; mode: number }
  | { kind: 'rmdir'; path: string }
  | { kind: 'run'; argv: string[] }
  | { kind: 'umount'; target: string }
  | { kind: 'unline'; path: string; line: string; original?: string };

export interface StepRecord {
  hash: string;
  phase: PhaseName;
  title: string;
  undo: Undo[];
}

export interface State {
  version: 1;
  /** Applied steps in order of application. */
  steps: { id: string; rec: StepRecord }[];
  rebootedForKernel: boolean;
  completed: boolean;
}

export class ApplyError extends Error {
  override name = 'ApplyError';
  readonly fix: string;
  constructor(message: string, fix: string) {
    super(message);
    this.fix = fix;
  }
}

export function hostPath(root: string, p: string): string {
  return join(root, p);
}

export async function loadState(root: string): Promise<State> {
  const file = hostPath(root, STATE_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, steps: [], rebootedForKernel: false, completed: false };
    throw e;
  }
  let s: Partial<State>;
  try {
    s = JSON.parse(text) as Partial<State>;
    if (typeof s !== 'object' || s === null || (s.steps !== undefined && !Array.isArray(s.steps))) throw new Error('not a kinglet state object');
  } catch (e) {
    throw new ApplyError(`${STATE_FILE} is damaged (${(e as Error).message}), so kinglet cannot tell what it did on this host`,
      `move it aside (mv ${STATE_FILE} ${STATE_FILE}.damaged) and re-run: install then redoes every step, and uninstall has nothing recorded to undo`);
  }
  return { version: 1, steps: s.steps ?? [], rebootedForKernel: !!s.rebootedForKernel, completed: !!s.completed };
}

/**
 * Replace a file whole: written under a temporary name with its final mode,
 * then renamed over it. A power cut (the kernel reboot!) never leaves half
 * an /etc/fstab or state file, and a secret is never readable by others.
 */
async function writeAtomic(path: string, content: string | Buffer, mode: number): Promise<void> {
  // Through a symlink to the file it names: the link stays a link.
  const full = await realpath(path).catch(() => path);
  const tmp = `${full}.kinglet-new`;
  await rm(tmp, { force: true });
  await writeFile(tmp, content, { mode, flag: 'wx' });
  await chmod(tmp, mode);
  await rename(tmp, full);
}

export async function saveState(root: string, s: State): Promise<void> {
  const p = hostPath(root, STATE_FILE);
  await mkdir(dirname(p), { recursive: true, mode: 0o700 });
  await writeAtomic(p, JSON.stringify(s, null, 2) + '\n', 0o600);
}

export function recorded(s: State, id: string): StepRecord | undefined {
  return s.steps.find((x) => x.id === id)?.rec;
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

async function readIf(p: string): Promise<{ content: string; mode: number } | undefined> {
  try {
    const [content, st] = await Promise.all([readFile(p, 'utf8'), stat(p)]);
    return { content, mode: st.mode & 0o7777 };
  } catch {
    return undefined;
  }
}

/** mkdir -p, returning the directories it created (outermost first). */
async function mkdirp(root: string, p: string, mode: number): Promise<string[]> {
  const created: string[] = [];
  let cur = p;
  const missing: string[] = [];
  while (cur !== '/' && !(await exists(hostPath(root, cur)))) {
    missing.unshift(cur);
    cur = dirname(cur);
  }
  for (const d of missing) {
    await mkdir(hostPath(root, d), { mode });
    created.push(d);
  }
  return created;
}

/**
 * Write a file, returning how to take it back. A secret file is replaced
 * whole (writeAtomic), so it is never readable by others, not even for a
 * moment; and its old content is not kept in the state (undo removes it:
 * secret files are kinglet's own).
 */
async function writeTracked(ctx: ApplyContext, path: string, content: string | Buffer, mode: number, secret = false): Promise<Undo[]> {
  const full = hostPath(ctx.root, path);
  const before = await readIf(full);
  const dirs = await mkdirp(ctx.root, dirname(path), 0o755);
  if (secret) {
    await writeAtomic(full, content, mode);
  } else {
    await writeFile(full, content, { mode });
    await chmod(full, mode);
  }
  const undo: Undo[] = before && !secret ? [{ kind: 'restore', path, content: before.content, mode: before.mode }] : [{ kind: 'remove', path }];
  return [...undo, ...dirs.reverse().map((d): Undo => ({ kind: 'rmdir', path: d }))];
}

function sizeOf(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/**
 * Run a command for a step: its output is logged line by line as it comes
 * (secrets redacted), and a "still running" line every few seconds says the
 * step is alive. A download (a run step that `creates` a file) says how much
 * has arrived: in place, every second, on a terminal; in those lines
 * otherwise.
 */
async function runShown(ctx: ApplyContext, s: Step, argv: string[], env?: Record<string, string>): Promise<RunResult> {
  const secrets = secretValues(s);
  const clock = clockOf(ctx);
  const start = clock.now();
  const file = s.kind === 'run' && s.creates ? hostPath(ctx.root, s.creates) : undefined;
  const work = () => ctx.runner.run(argv, env, (line) => { if (line.trim()) ctx.log(`    | ${redactText(line, secrets)}`); });
  let r: RunResult;
  if (file && ctx.status) {
    const status = ctx.status;
    try {
      r = await withHeartbeat(clock, 1, status, (sec) => `${CLEAR_LINE}    downloading: ${formatBytes(sizeOf(file))} (${sec}s)`, work);
    } finally {
      status(CLEAR_LINE);
    }
  } else {
    const every = ctx.progressSec ?? DEFAULT_PROGRESS_SECONDS;
    r = await withHeartbeat(clock, every, ctx.log, (sec) => `    still running: ${s.title} (${sec}s${file ? `, ${formatBytes(sizeOf(file))} so far` : ''})`, work);
  }
  if (file && r.exitCode === 0) ctx.log(`    ${formatBytes(sizeOf(file))} in ${secondsSince(clock, start)}s`);
  return r;
}

/** The last `n` lines of a command's output, for an error or warning ('' when it printed nothing). */
function lastLines(out: string, n: number): string {
  return out.trim().split('\n').slice(-n).join('\n');
}

/** runShown, and a failure is an ApplyError carrying the output's tail. */
async function run(ctx: ApplyContext, s: Step, argv: string[], env?: Record<string, string>): Promise<RunResult> {
  const r = await runShown(ctx, s, argv, env);
  if (r.exitCode !== 0) {
    const tail = redactText(lastLines(r.stderr || r.stdout, 5), secretValues(s));
    throw new ApplyError(`${s.title}: \`${argv.join(' ')}\` exited ${r.exitCode}${tail ? `:\n${tail}` : ''}`, 'fix the cause above and re-run: steps already done are skipped');
  }
  return r;
}

export type StepOutcome = 'applied' | 'skipped' | 'checked' | 'stop' | 'reboot';

/** Apply one step; returns its undo actions (for recording) and the outcome. */
export async function applyStep(ctx: ApplyContext, s: Step): Promise<{ outcome: StepOutcome; undo: Undo[]; message?: string }> {
  switch (s.kind) {
    case 'run': {
      await run(ctx, s, s.argv, { ...(s.env ?? {}), ...(s.secretEnv ?? {}) });
      const undo: Undo[] = s.undo ? [{ kind: 'run', argv: s.undo }] : [];
      if (s.creates) undo.push({ kind: 'remove', path: s.creates });
      return { outcome: 'applied', undo };
    }
    case 'file':
      return { outcome: 'applied', undo: await writeTracked(ctx, s.path, s.content, s.mode, s.secret) };
    case 'copy': {
      const src = s.fromHost ? hostPath(ctx.root, s.from) : join(ctx.bundleDir, s.from);
      let data: Buffer;
      try {
        data = await readFile(src);
      } catch {
        throw new ApplyError(`${s.title}: ${src} does not exist`, s.fromHost ? `check the path given for ${s.from}` : `the kinglet bundle at ${ctx.bundleDir} lacks ${s.from}: use a complete bundle`);
      }
      return { outcome: 'applied', undo: await writeTracked(ctx, s.path, data, s.mode) };
    }
    case 'dir': {
      const created = await mkdirp(ctx.root, s.path, s.mode);
      return { outcome: 'applied', undo: created.reverse().map((d): Undo => ({ kind: 'rmdir', path: d })) };
    }
    case 'line': {
      const full = hostPath(ctx.root, s.path);
      const before = await readIf(full);
      const lines = before && before.content !== '' ? before.content.replace(/\n$/, '').split('\n') : [];
      if (lines.includes(s.line)) return { outcome: 'applied', undo: [] };
      const re = s.replace ? new RegExp(s.replace) : undefined;
      const at = re ? lines.findIndex((l) => re.test(l)) : -1;
      let original: string | undefined;
      if (at >= 0) {
        original = lines[at];
        lines[at] = s.line;
      } else {
        lines.push(s.line);
      }
      await mkdirp(ctx.root, dirname(s.path), 0o755);
      await writeAtomic(full, lines.join('\n') + '\n', before?.mode ?? 0o644);
      return { outcome: 'applied', undo: [{ kind: 'unline', path: s.path, line: s.line, ...(original !== undefined ? { original } : {}) }] };
    }
    case 'unit': {
      const undo = await writeTracked(ctx, s.path, s.content, s.init === 'systemd' ? 0o644 : 0o755);
      const cmds: string[][] = [];
      const back: string[][] = [];
      if (s.init === 'systemd') {
        cmds.push(['systemctl', 'daemon-reload']);
        if (s.enable || s.start) cmds.push(['systemctl', s.enable ? 'enable' : 'start', ...(s.enable && s.start ? ['--now'] : []), s.name]);
        back.push(['systemctl', 'disable', '--now', s.name]);
      } else if (s.init === 'openrc') {
        if (s.enable) cmds.push(['rc-update', 'add', s.name, 'default']);
        if (s.start) cmds.push(['rc-service', s.name, 'start']);
        back.push(['rc-service', s.name, 'stop'], ['rc-update', 'del', s.name, 'default']);
      } else if (s.enable) {
        cmds.push(['rc-update', 'add', 'local', 'default']);
      }
      for (const c of cmds) await run(ctx, s, c);
      const reload: Undo[] = s.init === 'systemd' ? [{ kind: 'run', argv: ['systemctl', 'daemon-reload'] }] : [];
      // Uninstall: stop the service, clean up after it (while its files are still there), then remove it.
      const cleanup: Undo[] = s.cleanup ? [{ kind: 'run', argv: s.cleanup }] : [];
      return { outcome: 'applied', undo: [...back.map((argv): Undo => ({ kind: 'run', argv })), ...cleanup, ...undo, ...reload] };
    }
    case 'mount': {
      const dirs = await mkdirp(ctx.root, s.target, 0o755);
      await run(ctx, s, ['mount', '-t', s.fstype, s.source, s.target]);
      return { outcome: 'applied', undo: [{ kind: 'umount', target: s.target }, ...dirs.reverse().map((d): Undo => ({ kind: 'rmdir', path: d }))] };
    }
    case 'wait': {
      // Deadline by the clock, not by counting tries: one try (kubectl wait) can itself take seconds.
      const clock = clockOf(ctx);
      const every = ctx.progressSec ?? DEFAULT_PROGRESS_SECONDS;
      const start = clock.now();
      let said = start;
      const what = s.title.replace(/^wait for /, '');
      for (let n = 0; ; n++) {
        if (s.file ? await exists(hostPath(ctx.root, s.file)) : (await ctx.runner.run(s.argv ?? ['false'], s.env)).exitCode === 0) {
          if (n > 0) ctx.log(`    done waiting for ${what} after ${secondsSince(clock, start)}s`);
          return { outcome: 'checked', undo: [] };
        }
        const sec = secondsSince(clock, start);
        if (sec >= s.timeoutSec) break;
        if (n === 0) ctx.log(`    waiting up to ${s.timeoutSec}s for ${what}`);
        else if (clock.now() - said >= every * 1000) {
          said = clock.now();
          ctx.log(`    still waiting for ${what} (${sec}s of up to ${s.timeoutSec}s)`);
        }
        await ctx.sleep(Math.max(0, Math.min(s.intervalSec * 1000, s.timeoutSec * 1000 - (clock.now() - start))));
      }
      throw new ApplyError(`${s.title}: gave up after ${s.timeoutSec}s`, s.fix);
    }
    case 'check': {
      if (s.needs !== undefined && !(await exists(hostPath(ctx.root, s.needs)))) {
        ctx.log(`    skipped: ${s.needs} does not exist, so \`${s.title}\` cannot run here`);
        return { outcome: 'skipped', undo: [] };
      }
      // Checks can be long (the connectivity test deploys pods): shown as they go, like commands.
      const r = await runShown(ctx, s, s.argv);
      if (r.exitCode !== 0 || (s.match !== undefined && !new RegExp(s.match).test(r.stdout))) {
        const got = lastLines(r.stdout, 3);
        throw new ApplyError(`${s.title}: failed (exit ${r.exitCode}${s.match ? `, output must match /${s.match}/` : ''})${got ? `:\n${got}` : ''}`, s.fix);
      }
      return { outcome: 'checked', undo: [] };
    }
    case 'skip':
      return { outcome: 'skipped', undo: [] };
    case 'stop':
      return { outcome: 'stop', undo: [], message: s.message };
    case 'reboot':
      return { outcome: 'reboot', undo: [] };
  }
}

/**
 * Run undo actions, most recent first. Missing things are fine: undo is
 * idempotent. A command that fails is logged and skipped; the failures are
 * returned (as the command lines) for the caller to judge.
 */
export async function undoActions(ctx: ApplyContext, actions: Undo[]): Promise<string[]> {
  const failed: string[] = [];
  for (const a of actions) {
    switch (a.kind) {
      case 'remove':
        await rm(hostPath(ctx.root, a.path), { force: true });
        break;
      case 'restore':
        await writeFile(hostPath(ctx.root, a.path), a.content, { mode: a.mode });
        await chmod(hostPath(ctx.root, a.path), a.mode);
        break;
      case 'rmdir':
        try {
          if ((await readdir(hostPath(ctx.root, a.path))).length === 0) await rmdir(hostPath(ctx.root, a.path));
        } catch { /* gone already */ }
        break;
      case 'run':
      case 'umount': {
        const argv = a.kind === 'run' ? a.argv : ['umount', a.target];
        const r = await ctx.runner.run(argv);
        if (r.exitCode !== 0) {
          const why = lastLines(r.stderr || r.stdout, 1);
          ctx.log(`  warn: \`${argv.join(' ')}\` exited ${r.exitCode}${why ? ` (${why})` : ''}; continuing`);
          failed.push(argv.join(' '));
        }
        break;
      }
      case 'unline': {
        const p = hostPath(ctx.root, a.path);
        const cur = await readIf(p);
        if (!cur) break;
        const lines = cur.content.replace(/\n$/, '').split('\n');
        const at = lines.indexOf(a.line);
        if (at < 0) break;
        if (a.original !== undefined) lines[at] = a.original;
        else lines.splice(at, 1);
        await writeAtomic(p, lines.length ? lines.join('\n') + '\n' : '', cur.mode);
        break;
      }
    }
  }
  return failed;
}

/** One-line human rendering of an undo action (for `kinglet uninstall --dry-run`). */
export function describeUndo(a: Undo): string {
  switch (a.kind) {
    case 'remove': return `remove  ${a.path}`;
    case 'restore': return `restore ${a.path} (its content before kinglet, ${a.content.length} bytes)`;
    case 'rmdir': return `rmdir   ${a.path} (when empty)`;
    case 'run': return `run     ${shellLine(a.argv)}`;
    case 'umount': return `umount  ${a.target}`;
    case 'unline': return a.original !== undefined ? `line    ${a.path}: ${a.line} -> ${a.original}` : `line    ${a.path}: - ${a.line}`;
  }
}

export { describe, isReadOnly, stepHash, STATE_DIR };
