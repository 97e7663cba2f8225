// Benchmark: CNI ADD latency of kinglet-cni under a real containerd (CRI
// RunPodSandbox, what the kubelet waits for) against Debian's bridge +
// host-local (isGateway, no default gateway, no masquerade) in the same
// harness and the same run. Prints p50/p99 and the ratio; asserts nothing.
//
//   node test/bench/cni-add.ts                      (root)
//   BENCH_ROUNDS=100 node test/bench/cni-add.ts
//
// Two phases, each with one containerd per plugin (test/lib/containerd.ts:
// inside namespaces of the benchmark's own, state in scratch dirs), rounds
// alternating the plugins (and their order) so drift hits both alike:
//   1. RunPodSandbox wall time as the CRI client sees it, plugins exec'd
//      directly (kinglet-cni through a one-line `exec node ...` sh wrapper,
//      as containerd's PATH has no node; bridge a symlink);
//   2. each plugin's own exec time, from a wrapper that takes `date` around
//      the exec (the same overhead for both), for ADD and DEL.
// Pods are stopped and removed after each round (not timed). No traffic.
import { join } from 'node:path';
import { startContainerd, containerdSkipReason, type Containerd } from '../lib/containerd.ts';
import type { Teardownable } from '../lib/sandbox.ts';

const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 60);
const WARMUP = 5;

class Collector implements Teardownable {
  readonly #fns: (() => unknown)[] = [];
  teardown(fn: () => unknown): void {
    this.#fns.push(fn);
  }
  async runAll(): Promise<void> {
    while (this.#fns.length > 0) {
      try {
        await this.#fns.pop()!();
      } catch (e) {
        process.stderr.write(`teardown: ${(e as Error).message}\n`);
      }
    }
  }
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

const kingletConflist = ({ network, scratch }: { network: string; scratch: string }) => ({
  cniVersion: '1.0.0',
  name: network,
  plugins: [{ type: 'kinglet-cni', podCIDR: '10.88.0.0/24', agent: false, dataDir: join(scratch, 'kinglet') }, { type: 'loopback' }],
});

const bridgeConflist = ({ network, scratch }: { network: string; scratch: string }) => ({
  cniVersion: '1.0.0',
  name: network,
  plugins: [
    {
      type: 'bridge',
      bridge: 'klbr0',
      isGateway: true,
      isDefaultGateway: false,
      ipMasq: false,
      hairpinMode: false,
      ipam: { type: 'host-local', ranges: [[{ subnet: '10.89.0.0/24' }]], dataDir: join(scratch, 'host-local') },
    },
    { type: 'loopback' },
  ],
});

async function cycle(h: Containerd, name: string): Promise<number> {
  const t0 = performance.now();
  const p = await h.runPod(name);
  const ms = performance.now() - t0;
  if (!p.ip) throw new Error(`${name}: no pod IP`);
  await h.stopPod(p.id);
  await h.removePod(p.id);
  return ms;
}

async function rounds(pair: [string, Containerd][], label: string): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>(pair.map(([n]) => [n, []]));
  for (let i = 0; i < WARMUP + ROUNDS; i++) {
    const order = i % 2 === 0 ? pair : [...pair].reverse();
    for (const [n, h] of order) {
      const ms = await cycle(h, `${label}-${i}`);
      if (i >= WARMUP) out.get(n)!.push(ms);
    }
  }
  return out;
}

function row(name: string, xs: number[], ys: number[]): string {
  const f = (v: number) => `${v.toFixed(1)} ms`.padStart(10);
  const r = (a: number, b: number) => (a / b).toFixed(2).padStart(6);
  return `${name.padEnd(34)}${f(pct(xs, 50))}${f(pct(xs, 99))}  ${f(pct(ys, 50))}${f(pct(ys, 99))}   ${r(pct(xs, 50), pct(ys, 50))} ${r(pct(xs, 99), pct(ys, 99))}`;
}

async function main(): Promise<void> {
  const skip = containerdSkipReason();
  if (skip) {
    console.log(`cni-add: skipped: ${skip}`);
    return;
  }
  const c = new Collector();
  const onSignal = (sig: NodeJS.Signals) => void c.runAll().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    console.log(`cni-add: ${ROUNDS} rounds (+${WARMUP} warm-up) per plugin, containerd 1.6 over CRI, node ${process.version}`);
    const k1 = await startContainerd(c, { conflist: kingletConflist });
    const b1 = await startContainerd(c, { conflist: bridgeConflist, kinglet: false, debianPlugins: ['bridge', 'host-local'] });
    const run = await rounds([['kinglet', k1], ['bridge', b1]], 'run');

    const k2 = await startContainerd(c, { conflist: kingletConflist, timed: ['kinglet-cni'] });
    const b2 = await startContainerd(c, { conflist: bridgeConflist, kinglet: false, debianPlugins: ['bridge', 'host-local'], timed: ['bridge'] });
    await rounds([['kinglet', k2], ['bridge', b2]], 'exec');
    const execTimes = async (h: Containerd, plugin: string, command: string) => {
      const all = (await h.timings()).filter((x) => x.plugin === plugin && x.command === command && x.exitCode === 0).map((x) => x.ms);
      return command === 'ADD' ? all.slice(WARMUP) : all.slice(2 * WARMUP);
    };
    const kAdd = await execTimes(k2, 'kinglet-cni', 'ADD');
    const bAdd = await execTimes(b2, 'bridge', 'ADD');
    const kDel = await execTimes(k2, 'kinglet-cni', 'DEL');
    const bDel = await execTimes(b2, 'bridge', 'DEL');

    console.log('');
    console.log(`${''.padEnd(34)}${'kinglet-cni'.padStart(20)}  ${'bridge+host-local'.padStart(20)}   ratio k/b`);
    console.log(`${''.padEnd(34)}${'p50'.padStart(10)}${'p99'.padStart(10)}  ${'p50'.padStart(10)}${'p99'.padStart(10)}   ${'p50'.padStart(6)} ${'p99'.padStart(6)}`);
    console.log(row('RunPodSandbox (CRI, wall)', run.get('kinglet')!, run.get('bridge')!));
    console.log(row('plugin exec, ADD', kAdd, bAdd));
    console.log(row('plugin exec, DEL (2 per pod)', kDel, bDel));
    console.log('');
    console.log(`samples: RunPodSandbox ${run.get('kinglet')!.length}/${run.get('bridge')!.length}, ADD ${kAdd.length}/${bAdd.length}, DEL ${kDel.length}/${bDel.length}`);
    console.log('ratio < 1: kinglet-cni faster. The plugin exec time includes the wrapper\'s `date` calls (same for both).');
  } finally {
    await c.runAll();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

await main();
