// Benchmark: the agent's memory when it has programmed a large cluster, fed
// the way nodes feed it. Issue 3's target: RSS < 128 MB after programming
// 10k services x 10 endpoints. Prints figures with ratios against the target
// and against a bare node process measured in the same run; asserts nothing.
//
//   node test/bench/agent-rss.ts                        (root)
//   BENCH_SERVICES=10000 BENCH_ENDPOINTS=10 BENCH_ROUNDS=3 BENCH_SOURCES=json,yaml,kube node test/bench/agent-rss.ts
//   BENCH_COMPARE=/path/to/other/checkout node test/bench/agent-rss.ts
//     also runs that checkout's agent (its bpf objects built) in every round,
//     interleaved with this one's, and prints this / that
//
// Sources (each a fresh agent process on a fresh scratch datapath):
//   json  `--source dir:` on one JSON List of every object (what test/bench/
//         program-maps.ts part (iv) also runs)
//   yaml  `--source dir:` on the same List as YAML (kubectl get -o yaml)
//   kube  `--source kube` against the stand-in API server (test/lib/
//         fake-apiserver.ts, HTTPS on 127.0.0.1) holding the same objects,
//         listed in pages as on a real node
// For each: spawn -> every frontend programmed (status), VmRSS then and 3 s
// later, VmHWM (the peak), and the agent's heap compactions; medians over
// the rounds.
// No traffic beyond loopback.
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { scratchBpffs, testCgroup } from '../lib/sandbox.ts';
import { FakeApiServer } from '../lib/fake-apiserver.ts';
import { cleanup } from '../../agent/datapath/loader.ts';
import { benchObjects } from './lib/objects.ts';
import { kinglet, nodeBaseline, runAgent, type AgentRun } from './lib/agent-run.ts';
import { bench, fmtInt, fmtMs, fmtRatio, median, table, type Collector } from './lib/bench.ts';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const SERVICES = Number(process.env.BENCH_SERVICES ?? 10_000);
const ENDPOINTS = Number(process.env.BENCH_ENDPOINTS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SOURCES = (process.env.BENCH_SOURCES ?? 'json,yaml,kube').split(',').filter(Boolean);
const COMPARE = process.env.BENCH_COMPARE;
const TARGET_RSS_MB = 128;

const mb = (x: number) => `${x.toFixed(1)} MB`;

await bench('agent-rss', async (c: Collector) => {
  for (const s of SOURCES) if (!['json', 'yaml', 'kube'].includes(s)) throw new Error(`BENCH_SOURCES: unknown source "${s}" (use json, yaml, kube)`);
  const variants = [{ name: 'this', kinglet }];
  if (COMPARE) {
    variants.push({ name: 'compare', kinglet: join(COMPARE, 'agent', 'cli', 'kinglet.ts') });
    await execa('make', ['-s', '-C', join(COMPARE, 'bpf')]);
  }
  console.log(`agent-rss: ${fmtInt(SERVICES)} services x ${ENDPOINTS} endpoints; sources ${SOURCES.join(', ')}; ${ROUNDS} rounds` +
    `${COMPARE ? `; compared with ${COMPARE}` : ''} (medians; the machine is shared, figures are noisy)`);
  await execa('make', ['-s', '-C', join(repo, 'bpf')]);
  const { services, endpointSlices } = benchObjects(SERVICES, ENDPOINTS);
  const fronts = SERVICES; // one port per service

  const base = await nodeBaseline(c);
  const fs = await scratchBpffs(c);
  const cgroup = await testCgroup(c, 'kinglet-bench');
  const work = await mkdtemp(join(tmpdir(), 'kl-bench-rss-'));
  c.teardown(() => rm(work, { recursive: true, force: true }));

  // Each source's arguments and a description of its input.
  const inputs = new Map<string, { args: string[]; input: string }>();
  for (const source of SOURCES) {
    if (source === 'kube') {
      const api = await FakeApiServer.create();
      c.teardown(() => api.close());
      for (const o of [...services, ...endpointSlices]) api.add(o as Record<string, unknown>);
      const kubeconfig = await api.writeKubeconfig({ auth: 'cert' });
      inputs.set(source, { args: ['--source', 'kube', '--kubeconfig', kubeconfig, '--node-name', 'bench-node'], input: `${fmtInt(services.length + endpointSlices.length)} objects listed in pages` });
      continue;
    }
    const dir = join(work, source);
    await mkdir(dir);
    const list = { apiVersion: 'v1', kind: 'List', items: [...services, ...endpointSlices] };
    // YAML as kubectl prints it (the dashes of a sequence under its key).
    const text = source === 'json' ? JSON.stringify(list) : stringify(list, { indentSeq: false });
    const file = `objects.${source}`;
    await writeFile(join(dir, `.${file}.tmp`), text);
    await rename(join(dir, `.${file}.tmp`), join(dir, file));
    inputs.set(source, { args: ['--source', `dir:${dir}`], input: `${file}, ${(Buffer.byteLength(text) / 1048576).toFixed(1)} MB` });
  }

  const runs = new Map<string, AgentRun[]>();
  for (let r = 0; r < ROUNDS; r++) {
    for (const source of SOURCES) {
      for (const v of variants) {
        const bpfRoot = join(fs, `agent-${source}-${v.name}-${r}`);
        c.teardown(() => cleanup(bpfRoot)); // the agent leaves its datapath pinned on exit
        const { args, input } = inputs.get(source)!;
        const run = await runAgent(c, [...args, '--bpf-root', bpfRoot, '--cgroup', cgroup], join(work, 'agent.sock'), fronts, { kinglet: v.kinglet });
        cleanup(bpfRoot);
        const key = `${source} ${v.name}`;
        runs.set(key, [...(runs.get(key) ?? []), run]);
        const compact = run.compactions.map((x) => `${x.beforeMb}->${x.afterMb} MB in ${x.ms} ms`).join(', ') || 'none';
        console.log(`${key} (${input}): "agent started" ${fmtMs(run.startedMs)}, programmed ${fmtMs(run.programmedMs)}; ` +
          `VmRSS ${mb(run.atProgrammed.rssMb)}, 3 s later ${mb(run.later.rssMb)}, VmHWM ${mb(run.later.hwmMb)}; heap compactions: ${compact}`);
      }
    }
  }

  const med = (key: string, f: (r: AgentRun) => number) => median(runs.get(key)!.map(f));
  const programmed = (r: AgentRun) => r.programmedMs;
  const rss = (r: AgentRun) => r.atProgrammed.rssMb;
  const later = (r: AgentRun) => r.later.rssMb;
  const hwm = (r: AgentRun) => r.later.hwmMb;
  const rows: string[][] = [];
  for (const source of SOURCES) {
    for (const v of variants) {
      const k = `${source} ${v.name}`;
      rows.push([
        COMPARE ? k : source,
        fmtMs(med(k, programmed)),
        fmtRatio(med(k, programmed) / base.startMs),
        mb(med(k, rss)),
        fmtRatio(med(k, rss) / TARGET_RSS_MB),
        fmtRatio(med(k, rss) / base.rssMb),
        mb(med(k, later)),
        mb(med(k, hwm)),
        fmtRatio(med(k, hwm) / base.rssMb),
      ]);
    }
  }
  console.log(`\nbaseline: a bare node process starts in ${fmtMs(base.startMs)} and idles at ${mb(base.rssMb)} RSS; medians of ${ROUNDS}`);
  console.log(table(['source', 'spawn -> programmed', '/ node start', 'RSS then', `/ ${TARGET_RSS_MB} MB target`, '/ bare node', 'RSS 3 s later', 'VmHWM', 'VmHWM / bare node'], rows));
  if (COMPARE) {
    const ratio = (source: string, f: (r: AgentRun) => number) => fmtRatio(med(`${source} this`, f) / med(`${source} compare`, f));
    console.log(`\nthis checkout / ${COMPARE}:`);
    console.log(table(['source', 'spawn -> programmed', 'RSS then', 'RSS 3 s later', 'VmHWM'], SOURCES.map((s) => [s, ratio(s, programmed), ratio(s, rss), ratio(s, later), ratio(s, hwm)])));
  }
  for (const source of SOURCES) {
    const k = `${source} this`;
    console.log(`target RSS < ${TARGET_RSS_MB} MB (${source}): ${med(k, rss) < TARGET_RSS_MB ? 'met' : 'NOT met'} at programmed, ${med(k, later) < TARGET_RSS_MB ? 'met' : 'NOT met'} 3 s later`);
  }
});
