// Shared by the installer tests: fixture facts, fixed settings, a recording
// command runner and in-process command dependencies on a scratch root.
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Runner, RunResult } from '../../installer/apply.ts';
import type { Deps } from '../../installer/cli.ts';
import type { Clock } from '../../installer/progress.ts';
import type { HostFacts } from '../../installer/facts.ts';
import { parseFacts } from '../../installer/facts.ts';
import type { PlanInput } from '../../installer/phases.ts';
import { resumeEnv, settingsFromEnv } from '../../installer/settings.ts';

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/installer');
export const BUNDLE = '/opt/kinglet';
export const NODE = '/opt/kinglet/node/bin/node';

export async function fixture(name: string): Promise<HostFacts> {
  const file = join(FIXTURES, `${name}.json`);
  return parseFacts(await readFile(file, 'utf8'), file);
}

export function input(facts: HostFacts, env: Record<string, string> = {}): PlanInput {
  const settings = settingsFromEnv(env, BUNDLE, NODE);
  return { facts, settings, history: { rebootedForKernel: false }, resumeEnv: resumeEnv(env) };
}

export interface Call {
  argv: string[];
  env: Record<string, string>;
}

type Handler = (argv: string[], root: string, onLine?: (line: string) => void) => Promise<Partial<RunResult> | undefined> | Partial<RunResult> | undefined;

/** Records every command; answers 0 unless a handler says otherwise. Runs nothing. */
export class RecordingRunner implements Runner {
  calls: Call[] = [];
  handlers: Handler[] = [];
  readonly root: string;
  constructor(root: string) {
    this.root = root;
  }
  async run(argv: string[], env?: Record<string, string>, onLine?: (line: string) => void): Promise<RunResult> {
    this.calls.push({ argv, env: env ?? {} });
    for (const h of this.handlers) {
      const r = await h(argv, this.root, onLine);
      if (r) return { exitCode: 0, stdout: '', stderr: '', ...r };
    }
    return { exitCode: 0, stdout: '', stderr: '' };
  }
  lines(): string[] {
    return this.calls.map((c) => c.argv.join(' '));
  }
}

export const CONTAINERD_TOML = `version = 3
[plugins.'io.containerd.cri.v1.runtime'.cni]
  bin_dir = "/var/lib/rancher/k3s/data/cni-test"
  conf_dir = "/var/lib/rancher/k3s/agent/etc/cni/net.d"
`;

/**
 * Stand-ins for rpm and grubby in `dir`: `rpm -q <pkg>` lists `installed`
 * (exit 1 "not installed" when empty), `grubby --set-default` records the
 * entry that `grubby --default-kernel` then prints (initially `bootDefault`).
 * Anything else they are asked exits 1, so nothing real is ever run.
 */
export async function kernelStubs(dir: string, installed: string[], bootDefault: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'installed'), installed.map((v) => v + '\n').join(''));
  await writeFile(join(dir, 'default'), bootDefault + '\n');
  await writeFile(join(dir, 'rpm'), [
    '#!/bin/sh',
    `[ "$1" = -q ] || exit 1`,
    'for pkg; do :; done',
    `if [ -s '${dir}/installed' ]; then cat '${dir}/installed'; else echo "package $pkg is not installed"; exit 1; fi`,
    '',
  ].join('\n'), { mode: 0o755 });
  await writeFile(join(dir, 'grubby'), [
    '#!/bin/sh',
    'case $1 in',
    `  --default-kernel) cat '${dir}/default' ;;`,
    `  --set-default) [ -n "$2" ] && echo "$2" > '${dir}/default' ;;`,
    '  *) exit 1 ;;',
    'esac',
    '',
  ].join('\n'), { mode: 0o755 });
  return dir;
}

/** Run a planned `sh -c` step for real, with only the stubs in `stubDir` ahead of the system's read-only tools. */
export function runWithStubs(argv: string[], stubDir: string): RunResult {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', env: { PATH: `${stubDir}:/usr/bin:/bin`, LC_ALL: 'C' } });
  return { exitCode: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

export const NEW_KERNEL = '5.4.278-1.el7.elrepo.x86_64';

/**
 * What a k3s host looks like to the installer: k3s writes its containerd
 * config; the kernel steps' shell snippets run for real against rpm and
 * grubby stand-ins with the new kernel installed.
 */
export function simulateHost(r: RecordingRunner): void {
  let stubs: Promise<string> | undefined;
  r.handlers.push(async (argv, root) => {
    if (argv[0] === 'sh' && argv[1]?.endsWith('k3s-install.sh')) {
      const p = join(root, '/var/lib/rancher/k3s/agent/etc/containerd/config.toml');
      await mkdir(dirname(p), { recursive: true });
      await writeFile(p, CONTAINERD_TOML);
      return { exitCode: 0 };
    }
    if (argv[0] === 'sh' && argv[1] === '-c' && /grubby|rpm -q/.test(argv[2] ?? '')) {
      // One host per scratch root: the boot default set by an earlier run stays.
      const dir = join(dirname(root), 'kernel-stubs');
      stubs ??= stat(dir).then(() => dir, () => kernelStubs(dir, [NEW_KERNEL], '/boot/vmlinuz-3.10.0-1160.el7.x86_64'));
      return runWithStubs(argv, await stubs);
    }
    return undefined;
  });
}

/**
 * Time that moves only when told: `sleep` and `advance` move it, and the
 * `every` tickers fire at each period they pass, with `now` at that moment.
 */
export class FakeClock implements Clock {
  t = 0;
  private tickers: { ms: number; next: number; fn: () => void }[] = [];
  now(): number {
    return this.t;
  }
  every(ms: number, fn: () => void): () => void {
    const tk = { ms, next: this.t + ms, fn };
    this.tickers.push(tk);
    return () => { this.tickers = this.tickers.filter((x) => x !== tk); };
  }
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const due = this.tickers.filter((x) => x.next <= end).sort((a, b) => a.next - b.next)[0];
      if (!due) break;
      this.t = due.next;
      due.next += due.ms;
      due.fn();
    }
    this.t = end;
  }
}

export function deps(root: string, runner: Runner, facts: HostFacts, env: Record<string, string>, bundleDir: string, clock = new FakeClock()): Deps {
  return {
    env, root, runner, bundleDir, nodeBin: NODE,
    gather: async () => facts,
    sleep: async (ms) => { clock.advance(ms); },
    clock,
    isRoot: true,
    tty: false,
  };
}

export function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (s: string) => { out.push(s); }, err: (s: string) => { err.push(s); } }, out, err };
}
