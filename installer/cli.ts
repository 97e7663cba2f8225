// Shared by `kinglet install`, `kinglet uninstall` and `kinglet kernel
// upgrade`: flags, the real runner (execa), facts from a file or the host,
// and the printing of plans and outcomes. Commands get their dependencies
// through `Deps` so tests run them in-process against a scratch root.
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Io } from '../agent/cli/io.ts';
import { CommandError, printJson } from '../agent/cli/io.ts';
import type { ApplyContext, Runner } from './apply.ts';
import { ApplyError } from './apply.ts';
import type { HostFacts } from './facts.ts';
import { parseFacts } from './facts.ts';
import type { PlanInput } from './phases.ts';
import { cniShimUsable } from './cni-shim.ts';
import type { Outcome } from './pipeline.ts';
import type { Clock } from './progress.ts';
import { progressSeconds, realClock } from './progress.ts';
import type { Settings } from './settings.ts';
import { parseSkip, resumeEnv, settingsFromEnv } from './settings.ts';
import type { Plan } from './steps.ts';
import { redactPlan, renderPlan } from './steps.ts';

export interface Deps {
  env: Record<string, string | undefined>;
  root: string;
  runner: Runner;
  gather: () => Promise<HostFacts>;
  sleep: (ms: number) => Promise<void>;
  clock: Clock;
  /** Whether this process may change the system (root); checked before any real change. */
  isRoot: boolean;
  /** stderr is a terminal: downloads show a progress line redrawn in place. */
  tty: boolean;
  bundleDir: string;
  nodeBin: string;
}

export const execaRunner: Runner = {
  async run(argv, env, onLine) {
    const { execa } = await import('execa');
    const [cmd, ...args] = argv;
    // Each output line goes to onLine as it comes (execa's line transform) and is still buffered for errors.
    const tap = onLine ? function* (line: unknown) { onLine(String(line)); yield line; } : undefined;
    const r = await execa(cmd ?? 'false', args, {
      env: { ...process.env, ...(env ?? {}) }, reject: false, stdin: 'ignore',
      ...(tap ? { stdout: [tap, 'pipe'] as const, stderr: [tap, 'pipe'] as const } : {}),
    });
    return { exitCode: r.exitCode ?? 1, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
  },
};

/** The bundle is the tree this file sits in: <bundle>/installer/cli.ts. */
export const BUNDLE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export function realDeps(): Deps {
  return {
    env: process.env,
    root: '/',
    runner: execaRunner,
    gather: async () => (await import('./gather.ts')).gatherFacts(),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    clock: realClock,
    isRoot: process.getuid?.() === 0,
    tty: !!process.stderr.isTTY,
    bundleDir: BUNDLE_DIR,
    nodeBin: process.execPath,
  };
}

export const COMMON_OPTIONS = {
  'dry-run': { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
  facts: { type: 'string' },
  'allow-reboot': { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export interface Common {
  dryRun: boolean;
  json: boolean;
  facts?: string | undefined;
  allowReboot: boolean;
}

function flag(v: string | undefined): boolean {
  return v !== undefined && /^(1|true|yes|on)$/i.test(v);
}

/** Refuse a real (not dry) run without root before anything is looked at or changed. */
export function requireRoot(deps: Deps, command: string): void {
  if (!deps.isRoot) throw new CommandError(`${command} installs and removes system services, mounts and files: run it as root (sudo kinglet ${command.replace(/^kinglet /, '')} ...), or add --dry-run to see what it would do`);
}

export async function prepare(deps: Deps, c: Common, command: string, skip?: string): Promise<{ input: PlanInput; settings: Settings; dryRun: boolean }> {
  const dryRun = c.dryRun || flag(deps.env['KINGLET_DRY_RUN']);
  if (c.facts && !dryRun) throw new CommandError('--facts describes some other host: use it with --dry-run only');
  if (!dryRun) requireRoot(deps, command);
  let settings: Settings;
  try {
    settings = settingsFromEnv(deps.env, deps.bundleDir, deps.nodeBin);
    if (skip !== undefined) settings.skip = [...new Set([...settings.skip, ...parseSkip(skip)])];
  } catch (e) {
    throw new CommandError((e as Error).message);
  }
  if (c.allowReboot) settings.allowReboot = true;
  let facts: HostFacts;
  if (c.facts) {
    try {
      facts = parseFacts(await readFile(c.facts, 'utf8'), c.facts);
    } catch (e) {
      throw new CommandError(`cannot read facts: ${(e as Error).message}`);
    }
  } else {
    facts = await deps.gather();
  }
  const env = resumeEnv(deps.env);
  if (settings.allowReboot) env['KINGLET_ALLOW_REBOOT'] = '1';
  return {
    settings,
    dryRun,
    input: { facts, settings, history: { rebootedForKernel: false }, resumeEnv: env, cniShim: cniShimUsable(settings.bundleDir, facts.arch) },
  };
}

export function printPlan(io: Io, plan: Plan, json: boolean): void {
  const safe = redactPlan(plan);
  if (json) printJson(io, safe);
  else io.out(renderPlan(safe));
}

export function context(deps: Deps, io: Io): ApplyContext {
  let progressSec: number;
  try {
    progressSec = progressSeconds(deps.env);
  } catch (e) {
    throw new CommandError((e as Error).message);
  }
  return {
    root: deps.root, runner: deps.runner, bundleDir: deps.bundleDir, nodeBin: deps.nodeBin,
    log: (l) => io.err(l + '\n'), sleep: deps.sleep, clock: deps.clock, progressSec,
    ...(deps.tty ? { status: (text: string) => io.err(text) } : {}),
  };
}

/** Outcome -> exit status: 0 done, 3 stopped for a reboot, 0 rebooting. */
export function report(io: Io, o: Outcome, json: boolean, what: string): number {
  if (json) printJson(io, o);
  else if (o.status === 'done') io.out(`${what}: done (${o.applied} step(s) applied, ${o.skipped} already done)\n`);
  else if (o.status === 'rebooting') io.out(`${what}: ${o.message}\n`);
  else io.out(`${what}: stopped: ${o.message}\n`);
  return o.status === 'stopped' ? 3 : 0;
}

/** What a file system error during an apply means for the operator. */
const FS_FIXES: Record<string, string> = {
  EACCES: 'run it as root',
  EPERM: 'run it as root (and check that the file is not immutable: lsattr)',
  EROFS: 'the file system is mounted read-only: remount it read-write (or use an image with a writable /etc and /var) and re-run',
  ENOSPC: 'free some disk space and re-run: steps already done are skipped',
  EDQUOT: 'free some disk space and re-run: steps already done are skipped',
};

export async function guard<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof ApplyError) throw new CommandError(`${e.message}\nfix: ${e.fix}`);
    const code = (e as NodeJS.ErrnoException)?.code;
    if (code && FS_FIXES[code]) throw new CommandError(`${(e as Error).message}\nfix: ${FS_FIXES[code]}`, { cause: e });
    throw e;
  }
}
