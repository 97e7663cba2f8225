// Shared by the installer tests: fixture facts, fixed settings, a recording
// command runner and in-process command dependencies on a scratch root.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Runner, RunResult } from '../../installer/apply.ts';
import type { Deps } from '../../installer/cli.ts';
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

type Handler = (argv: string[], root: string) => Promise<Partial<RunResult> | undefined> | Partial<RunResult> | undefined;

/** Records every command; answers 0 unless a handler says otherwise. Runs nothing. */
export class RecordingRunner implements Runner {
  calls: Call[] = [];
  handlers: Handler[] = [];
  readonly root: string;
  constructor(root: string) {
    this.root = root;
  }
  async run(argv: string[], env?: Record<string, string>): Promise<RunResult> {
    this.calls.push({ argv, env: env ?? {} });
    for (const h of this.handlers) {
      const r = await h(argv, this.root);
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

/** What a k3s host looks like to the installer: k3s writes its containerd config; grubby reports the new kernel. */
export function simulateHost(r: RecordingRunner): void {
  r.handlers.push(async (argv, root) => {
    if (argv[0] === 'sh' && argv[1]?.endsWith('k3s-install.sh')) {
      const p = join(root, '/var/lib/rancher/k3s/agent/etc/containerd/config.toml');
      await mkdir(dirname(p), { recursive: true });
      await writeFile(p, CONTAINERD_TOML);
      return { exitCode: 0 };
    }
    if (argv[0] === 'grubby' && argv[1] === '--default-kernel') return { stdout: '/boot/vmlinuz-5.4.278-1.el7.elrepo.x86_64\n' };
    return undefined;
  });
}

export function deps(root: string, runner: Runner, facts: HostFacts, env: Record<string, string>, bundleDir: string): Deps {
  return {
    env, root, runner, bundleDir, nodeBin: NODE,
    gather: async () => facts,
    sleep: async () => {},
  };
}

export function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (s: string) => { out.push(s); }, err: (s: string) => { err.push(s); } }, out, err };
}
