// Benchmark: the agent's memory when it has programmed a large cluster, fed
// the way nodes feed it. Issue 3's target: RSS < 128 MB after programming
// 10k services x 10 endpoints. Prints figures with ratios against the target
// and against a bare node process measured in the same run; asserts nothing.
//
//   node test/bench/agent-rss.ts                        (root)
//   BENCH_SERVICES=10000 BENCH_ENDPOINTS=10 BENCH_SOURCES=json,yaml,kube node test/bench/agent-rss.ts
//
// Sources (each a fresh agent process on a fresh scratch datapath):
//   json  `--source dir:` on one JSON List of every object (what test/bench/
//         program-maps.ts part (iv) also runs)
//   yaml  `--source dir:` on the same List as YAML (kubectl get -o yaml)
//   kube  `--source kube` against the stand-in API server (test/lib/
//         fake-apiserver.ts, HTTPS on 127.0.0.1) holding the same objects,
//         listed in pages as on a real node
// For each: spawn -> every frontend programmed (status), VmRSS then and 3 s
// later, VmHWM (the peak), and the agent's heap compactions.
// No traffic beyond loopback.
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { scratchBpffs, testCgroup } from '../lib/sandbox.ts';
import { FakeApiServer } from '../lib/fake-apiserver.ts';
import { cleanup } from '../../agent/datapath/loader.ts';
import { benchObjects } from './lib/objects.ts';
import { nodeBaseline, runAgent, type AgentRun } from './lib/agent-run.ts';
import { bench, fmtInt, fmtMs, fmtRatio, table, type Collector } from './lib/bench.ts';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const SERVICES = Number(process.env.BENCH_SERVICES ?? 10_000);
const ENDPOINTS = Number(process.env.BENCH_ENDPOINTS ?? 10);
const SOURCES = (process.env.BENCH_SOURCES ?? 'json,yaml,kube').split(',').filter(Boolean);
const TARGET_RSS_MB = 128;

await bench('agent-rss', async (c: Collector) => {
  for (const s of SOURCES) if (!['json', 'yaml', 'kube'].includes(s)) throw new Error(`BENCH_SOURCES: unknown source "${s}" (use json, yaml, kube)`);
  console.log(`agent-rss: ${fmtInt(SERVICES)} services x ${ENDPOINTS} endpoints; sources ${SOURCES.join(', ')} (the machine is shared, figures are noisy)`);
  await execa('make', ['-s', '-C', join(repo, 'bpf')]);
  const { services, endpointSlices } = benchObjects(SERVICES, ENDPOINTS);
  const list = { apiVersion: 'v1', kind: 'List', items: [...services, ...endpointSlices] };
  const fronts = SERVICES; // one port per service

  const base = await nodeBaseline(c);
  const fs = await scratchBpffs(c);
  const cgroup = await testCgroup(c, 'kinglet-bench');
  const work = await mkdtemp(join(tmpdir(), 'kl-bench-rss-'));
  c.teardown(() => rm(work, { recursive: true, force: true }));

  const runs: { source: string; input: string; run: AgentRun }[] = [];
  for (const source of SOURCES) {
    const bpfRoot = join(fs, `agent-${source}`);
    c.teardown(() => cleanup(bpfRoot)); // the agent leaves its datapath pinned on exit
    const common = ['--bpf-root', bpfRoot, '--cgroup', cgroup];
    const sock = join(work, `${source}.sock`);
    let args: string[];
    let input: string;
    if (source === 'kube') {
      const api = await FakeApiServer.create();
      c.teardown(() => api.close());
      for (const o of [...services, ...endpointSlices]) api.add(o as Record<string, unknown>);
      const kubeconfig = await api.writeKubeconfig({ auth: 'cert' });
      args = ['--source', 'kube', '--kubeconfig', kubeconfig, '--node-name', 'bench-node', ...common];
      input = `${fmtInt(services.length + endpointSlices.length)} objects, pages of 500`;
      const r = await runAgent(c, args, sock, fronts);
      await api.close();
      runs.push({ source, input, run: r });
      continue;
    }
    const dir = join(work, source);
    await execa('mkdir', [dir]);
    const text = source === 'json' ? JSON.stringify(list) : stringify(list);
    const file = `objects.${source}`;
    await writeFile(join(dir, `.${file}.tmp`), text);
    await rename(join(dir, `.${file}.tmp`), join(dir, file));
    input = `${file} ${(Buffer.byteLength(text) / 1048576).toFixed(1)} MB`;
    args = ['--source', `dir:${dir}`, ...common];
    runs.push({ source, input, run: await runAgent(c, args, sock, fronts) });
    cleanup(bpfRoot);
  }

  for (const { source, input, run } of runs) {
    const compact = run.compactions.map((x) => `${x.beforeMb}->${x.afterMb} MB in ${x.ms} ms`).join(', ') || 'none';
    console.log(`${source} (${input}): "agent started" ${fmtMs(run.startedMs)}, programmed ${fmtMs(run.programmedMs)}; ` +
      `VmRSS ${run.atProgrammed.rssMb.toFixed(1)} MB, 3 s later ${run.later.rssMb.toFixed(1)} MB, VmHWM ${run.later.hwmMb.toFixed(1)} MB; heap compactions: ${compact}`);
  }
  const rows = runs.map(({ source, run }) => [
    source,
    fmtMs(run.programmedMs),
    fmtRatio(run.programmedMs / base.startMs),
    `${run.atProgrammed.rssMb.toFixed(1)} MB`,
    fmtRatio(run.atProgrammed.rssMb / TARGET_RSS_MB),
    fmtRatio(run.atProgrammed.rssMb / base.rssMb),
    `${run.later.rssMb.toFixed(1)} MB`,
    `${run.later.hwmMb.toFixed(1)} MB`,
    fmtRatio(run.later.hwmMb / base.rssMb),
  ]);
  console.log(`\nbaseline: a bare node process starts in ${fmtMs(base.startMs)} and idles at ${base.rssMb.toFixed(1)} MB RSS`);
  console.log(table(['source', 'spawn -> programmed', '/ node start', 'RSS then', `/ ${TARGET_RSS_MB} MB target`, '/ bare node', 'RSS 3 s later', 'VmHWM', 'VmHWM / bare node'], rows));
  for (const { source, run } of runs) {
    console.log(`target RSS < ${TARGET_RSS_MB} MB (${source}): ${run.atProgrammed.rssMb < TARGET_RSS_MB ? 'met' : 'NOT met'} at programmed, ${run.later.rssMb < TARGET_RSS_MB ? 'met' : 'NOT met'} 3 s later`);
  }
});
