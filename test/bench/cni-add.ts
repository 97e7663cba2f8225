// Benchmark: CNI ADD latency of kinglet-cni under a real containerd (CRI
// RunPodSandbox, what the kubelet waits for) against Debian's bridge +
// host-local (isGateway, no default gateway, no masquerade) in the same
// harness and the same run. Prints p50/p99 and the ratio; asserts nothing.
//
//   node test/bench/cni-add.ts                      (root)
//   BENCH_ROUNDS=100 node test/bench/cni-add.ts
//
// kinglet-cni runs as installed (test/lib/cni-bin.ts) with a real agent
// beside containerd (test/lib/containerd.ts `agent`): the native shim
// forwards each call to the agent, which runs the plugin in-process. For
// comparison, the Node plugin alone (what was installed before the shim,
// still the fallback) against the same kind of agent.
// Two phases, each with one containerd per variant (inside namespaces of
// the benchmark's own, state in scratch dirs), rounds rotating the variants
// (and their order) so drift hits all alike:
//   1. RunPodSandbox wall time as the CRI client sees it;
//   2. each plugin's own exec time, from a wrapper that takes `date` around
//      the exec (the same overhead for all), for ADD and DEL; the shim's agent
//      logs at debug, and its ms per phase of each ADD (plugin.ts cmdAdd) are
//      printed last: where the time inside the agent goes.
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

const kingletConflist = ({ network, scratch, agentSocket }: { network: string; scratch: string; agentSocket: string }) => ({
  cniVersion: '1.0.0',
  name: network,
  plugins: [{ type: 'kinglet-cni', agentSocket, dataDir: join(scratch, 'kinglet') }, { type: 'loopback' }],
});
const AGENT = { podCIDR: '10.88.0.0/24' };

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

async function rounds(all: [string, Containerd][], label: string): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>(all.map(([n]) => [n, []]));
  for (let i = 0; i < WARMUP + ROUNDS; i++) {
    const rot = [...all.slice(i % all.length), ...all.slice(0, i % all.length)];
    const order = i % 2 === 0 ? rot : rot.reverse();
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

/** Per-phase p50/p99 of the in-agent ADDs, from the agent's debug lines (plugin.ts cmdAdd). */
function printPhases(agentLog: string): void {
  const phases = new Map<string, number[]>();
  let n = 0;
  for (const line of agentLog.split('\n')) {
    if (!line.includes('kinglet-cni ADD timings')) continue;
    const rec = JSON.parse(line) as Record<string, unknown>;
    if (n++ < WARMUP) continue;
    for (const [k, v] of Object.entries(rec)) if (typeof v === 'number') phases.set(k, [...(phases.get(k) ?? []), v]);
  }
  console.log('');
  console.log(`in-agent ADD phases (${Math.max(0, n - WARMUP)} ADDs; pod and register run side by side): p50 / p99 ms`);
  for (const [k, xs] of phases) console.log(`  ${k.padEnd(14)}${pct(xs, 50).toFixed(2).padStart(8)}${pct(xs, 99).toFixed(2).padStart(8)}`);
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
    const k1 = await startContainerd(c, { conflist: kingletConflist, agent: AGENT });
    const n1 = await startContainerd(c, { conflist: kingletConflist, agent: AGENT, shim: false });
    const b1 = await startContainerd(c, { conflist: bridgeConflist, kinglet: false, debianPlugins: ['bridge', 'host-local'] });
    const run = await rounds([['kinglet', k1], ['node', n1], ['bridge', b1]], 'run');

    const k2 = await startContainerd(c, { conflist: kingletConflist, agent: { ...AGENT, logLevel: 'debug' }, timed: ['kinglet-cni'] });
    const n2 = await startContainerd(c, { conflist: kingletConflist, agent: AGENT, shim: false, timed: ['kinglet-cni'] });
    const b2 = await startContainerd(c, { conflist: bridgeConflist, kinglet: false, debianPlugins: ['bridge', 'host-local'], timed: ['bridge'] });
    await rounds([['kinglet', k2], ['node', n2], ['bridge', b2]], 'exec');
    const execTimes = async (h: Containerd, plugin: string, command: string) => {
      const all = (await h.timings()).filter((x) => x.plugin === plugin && x.command === command && x.exitCode === 0).map((x) => x.ms);
      return command === 'ADD' ? all.slice(WARMUP) : all.slice(2 * WARMUP);
    };
    const kAdd = await execTimes(k2, 'kinglet-cni', 'ADD');
    const nAdd = await execTimes(n2, 'kinglet-cni', 'ADD');
    const bAdd = await execTimes(b2, 'bridge', 'ADD');
    const kDel = await execTimes(k2, 'kinglet-cni', 'DEL');
    const nDel = await execTimes(n2, 'kinglet-cni', 'DEL');
    const bDel = await execTimes(b2, 'bridge', 'DEL');
    console.log('');
    console.log(`${''.padEnd(34)}${'kinglet-cni'.padStart(20)}  ${'bridge+host-local'.padStart(20)}   ratio k/b`);
    console.log(`${''.padEnd(34)}${'p50'.padStart(10)}${'p99'.padStart(10)}  ${'p50'.padStart(10)}${'p99'.padStart(10)}   ${'p50'.padStart(6)} ${'p99'.padStart(6)}`);
    console.log(row('RunPodSandbox (CRI, wall)', run.get('kinglet')!, run.get('bridge')!));
    console.log(row('  Node plugin instead of the shim', run.get('node')!, run.get('bridge')!));
    console.log(row('plugin exec, ADD', kAdd, bAdd));
    console.log(row('  Node plugin instead of the shim', nAdd, bAdd));
    console.log(row('plugin exec, DEL (2 per pod)', kDel, bDel));
    console.log(row('  Node plugin instead of the shim', nDel, bDel));
    console.log('');
    console.log(`samples: RunPodSandbox ${run.get('kinglet')!.length}/${run.get('node')!.length}/${run.get('bridge')!.length}, ADD ${kAdd.length}/${nAdd.length}/${bAdd.length}, DEL ${kDel.length}/${nDel.length}/${bDel.length}`);
    console.log('ratio < 1: kinglet-cni faster. The plugin exec time includes the wrapper\'s `date` calls (same for both).');
    printPhases(await k2.agent!.proc.waitForOutput(() => true));
  } finally {
    await c.runAll();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

await main();
