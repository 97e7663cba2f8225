// Test sandbox: network namespaces, veth pairs, a private bpffs, a cgroup of
// the test's own, and processes started inside them. Everything made here is
// removed in the test's teardown, also when the test fails.
// Safety: namespaces made here get no default route, so nothing can leave the box.
import { execa, type ResultPromise } from 'execa';
import { mkdtemp, mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { cgroup2Mount } from '../../kernel/mounts.ts';

/** The part of a tap Test that the sandbox uses. */
export interface Teardownable {
  teardown(fn: () => unknown): void;
}

export const isRoot = (): boolean => process.getuid?.() === 0;

/** A reason to skip root-only tests here, or undefined when they can run. */
export function rootSkipReason(): string | undefined {
  return isRoot() ? undefined : 'needs root (network namespaces, bpffs, cgroups): run the tests as root';
}

export function uniqueName(prefix: string, max = 15): string {
  const suffix = randomBytes(3).toString('hex');
  return `${prefix.slice(0, max - suffix.length - 1)}-${suffix}`;
}

export async function sh(cmd: string, args: string[]): Promise<string> {
  const r = await execa(cmd, args);
  return r.stdout;
}

export interface Netns {
  name: string;
  /** Run a command inside the namespace and return its stdout. */
  run(argv: string[]): Promise<string>;
}

/** A new network namespace with loopback up and no routes out. */
export async function netns(t: Teardownable, prefix = 'kl'): Promise<Netns> {
  const name = uniqueName(prefix, 24);
  await execa('ip', ['netns', 'add', name]);
  t.teardown(async () => {
    await execa('ip', ['netns', 'del', name], { reject: false });
  });
  await execa('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return {
    name,
    run: async (argv) => (await execa('ip', ['netns', 'exec', name, ...argv])).stdout,
  };
}

/**
 * A veth pair between two namespaces, each end addressed with a /prefix and up.
 * Returns the interface names.
 */
export async function veth(
  t: Teardownable,
  a: { ns: Netns; addr: string; name?: string },
  b: { ns: Netns; addr: string; name?: string },
): Promise<{ a: string; b: string }> {
  const an = a.name ?? uniqueName('kla');
  const bn = b.name ?? uniqueName('klb');
  await execa('ip', ['link', 'add', an, 'netns', a.ns.name, 'type', 'veth', 'peer', 'name', bn, 'netns', b.ns.name]);
  t.teardown(async () => {
    await execa('ip', ['-n', a.ns.name, 'link', 'del', an], { reject: false });
  });
  for (const [ns, ifname, addr] of [[a.ns, an, a.addr], [b.ns, bn, b.addr]] as const) {
    await execa('ip', ['-n', ns.name, 'addr', 'add', addr, 'dev', ifname]);
    await execa('ip', ['-n', ns.name, 'link', 'set', ifname, 'up']);
  }
  return { a: an, b: bn };
}

/** A bpffs mounted on a fresh temp directory; unmounted and removed in teardown. */
export async function scratchBpffs(t: Teardownable): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kl-bpffs-'));
  await execa('mount', ['-t', 'bpf', 'bpf', dir]);
  t.teardown(async () => {
    await execa('umount', [dir], { reject: false });
    await rmdir(dir).catch(() => {});
  });
  return dir;
}

/** A fresh cgroup v2 directory of the test's own (never the root). */
export async function testCgroup(t: Teardownable, prefix = 'kinglet-test'): Promise<string> {
  const root = await cgroup2Mount();
  if (!root) throw new Error('cgroup2 is not mounted: mount -t cgroup2 none /sys/fs/cgroup/unified');
  const dir = join(root, uniqueName(prefix, 40));
  await mkdir(dir);
  t.teardown(async () => {
    // Processes must have left; move stragglers to the root first.
    const procs = (await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '')).split('\n').filter(Boolean);
    for (const pid of procs) await writeFile(join(root, 'cgroup.procs'), pid).catch(() => {});
    for (let i = 0; i < 50; i++) {
      try {
        await rmdir(dir);
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  });
  return dir;
}

export interface Started {
  pid: number;
  proc: ResultPromise;
  /** Wait until `pred` holds for the collected stdout, or time out. */
  waitForOutput(pred: (out: string) => boolean, ms?: number): Promise<string>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Start a long-running process, optionally inside a netns and a cgroup
 * (joined before exec, so every child is inside too). Killed in teardown.
 */
export function start(
  t: Teardownable,
  argv: string[],
  opts: { ns?: Netns; cgroup?: string; env?: Record<string, string> } = {},
): Started {
  let cmd = argv;
  // `ip netns exec` remounts /sys inside, hiding the cgroup tree: join the
  // cgroup first, then enter the namespace.
  if (opts.ns) cmd = ['ip', 'netns', 'exec', opts.ns.name, ...cmd];
  if (opts.cgroup) {
    cmd = ['sh', '-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', opts.cgroup, ...cmd];
  }
  const proc = execa(cmd[0]!, cmd.slice(1), { reject: false, env: opts.env, buffer: false, stdin: 'ignore' });
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  let exited = false;
  void proc.then(() => (exited = true));
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (exited) return;
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 3000);
    await proc;
    clearTimeout(timer);
  };
  t.teardown(() => stop('SIGKILL'));
  return {
    pid: proc.pid!,
    proc,
    stop,
    waitForOutput: async (pred, ms = 5000) => {
      const until = Date.now() + ms;
      while (!pred(out)) {
        if (exited) throw new Error(`process exited before expected output; output:\n${out}`);
        if (Date.now() > until) throw new Error(`timed out waiting for output; output so far:\n${out}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      return out;
    },
  };
}
