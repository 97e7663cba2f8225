// Benchmark: time to programme 10k services x 10 endpoints from the model
// into the socket-LB maps (target < 0.3 s), and the agent's RSS after it
// (target < 128 MB). Prints figures with ratios against the targets and
// against baselines measured in the same run; asserts nothing.
//
//   npm run bench                                  (every benchmark, root)
//   node test/bench/program-maps.ts                (this one, root)
//   BENCH_SERVICES=10000 BENCH_ENDPOINTS=10 BENCH_ROUNDS=5 node test/bench/program-maps.ts
//
// Parts:
//   (i)   buildLbState on a synthetic snapshot (Services + EndpointSlices)
//   (ii)  LbDatapath.apply into real pinned maps (scratch bpffs, a cgroup of
//         this benchmark's own with nothing in it), from empty; baseline: the
//         same entries written with raw bpf_map_update_elem calls (and once
//         with batch updates) into fresh unpinned maps of the same shape, and
//         with batch updates into maps shaped as before the backend and
//         rev-NAT maps became arrays (every map a no-prealloc hash)
//   (i)+(ii) as the agent does it: a fresh LbModel.update + LbDatapath.update
//         into empty maps, per round; wall time and the process's CPU time
//         (less sensitive to other load on a shared machine); the same on
//         the objects trimmed as the sources hand them to the model
//         (agent/source/trim.ts: packed endpoints, shared ports lists)
//   (iii) a second apply with one endpoint changed, and one with nothing changed;
//         and the incremental path the agent uses (LbModel.update + LbDatapath.update)
//   (iv)  end to end: `kinglet agent --source dir:` on a JSON List of the same
//         objects, from spawn to /v1/status showing every frontend; VmRSS after
// No network traffic at all.
import { mkdtemp, rm, writeFile, rename } from 'node:fs/promises';
import { execa } from 'execa';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { testCgroup } from '../lib/sandbox.ts';
import { scratchLb } from '../lib/scratch-lb.ts';
import { buildLbState, LbModel } from '../../agent/model/services.ts';
import { emptySnapshot, type KubeObject } from '../../agent/source/types.ts';
import { trimObject } from '../../agent/source/trim.ts';
import type { LbState } from '../../agent/model/types.ts';
import { cleanup } from '../../agent/datapath/loader.ts';
import { BPF_F_NO_PREALLOC, BpfMap, MapType, mapUpdate, mapUpdateBatch } from '../../agent/datapath/libbpf.ts';
import { lbEntries } from '../../agent/datapath/lb-entries.ts';
import { LB_CONFIG_MAPS } from '../../agent/datapath/lb-layout.ts';
import { benchObjects } from './lib/objects.ts';
import { nodeBaseline, runAgent } from './lib/agent-run.ts';
import { bench, fmtInt, fmtMs, fmtRatio, median, table, type Collector } from './lib/bench.ts';
import { Backends } from '../../agent/model/backends.ts';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const SERVICES = Number(process.env.BENCH_SERVICES ?? 10_000);
const ENDPOINTS = Number(process.env.BENCH_ENDPOINTS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const TARGET_MS = 300;
const TARGET_RSS_MB = 128;

/** The same state with one endpoint of one frontend moved to a new address. */
function withOneEndpointChanged(state: LbState): LbState {
  const frontends = state.frontends.slice();
  const k = frontends.length >> 1;
  const fe = frontends[k]!;
  const backends = [...fe.backends];
  backends[0] = { ...backends[0]!, address: '10.63.255.254' };
  frontends[k] = { ...fe, backends: Backends.from(backends) };
  return { frontends };
}

await bench('program-maps', async (c: Collector) => {
  console.log(`program-maps: ${fmtInt(SERVICES)} services x ${ENDPOINTS} endpoints, ${ROUNDS} rounds (medians; the machine is shared, figures are noisy)`);
  await execa('make', ['-s', '-C', join(repo, 'bpf')]);
  const rows: string[][] = [];
  const snapshot = { ...emptySnapshot(), ...benchObjects(SERVICES, ENDPOINTS) };

  // (i) the model
  const modelMs: number[] = [];
  let state: LbState = { frontends: [] };
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    const out = buildLbState(snapshot);
    modelMs.push(performance.now() - t0);
    state = out.state;
    if (out.warnings.length) throw new Error(`model warnings: ${JSON.stringify(out.warnings.slice(0, 3))}`);
  }
  const fronts = state.frontends.length;
  const backendsTotal = state.frontends.reduce((a, f) => a + f.backends.length, 0);
  console.log(`(i) buildLbState: ${fronts} frontends, ${backendsTotal} backends; rounds ${modelMs.map(fmtMs).join(', ')}`);

  // (ii) apply into real maps
  const { lb, bpfRoot: scratch } = await scratchLb(c, 'kinglet-bench');
  const applyMs: number[] = [];
  const entriesMs: number[] = [];
  const clearMs: number[] = [];
  const prepareMs: number[] = [];
  let writes = 0;
  let firstApplyMs = NaN;
  for (let r = 0; r < ROUNDS; r++) {
    // The reference computation alone (lbEntries: one object per entry; apply now builds packed entries instead).
    const t0 = performance.now();
    lbEntries(state);
    entriesMs.push(performance.now() - t0);
    const a = lb.apply(state);
    if (r === 0) firstApplyMs = a.durationMs;
    applyMs.push(a.durationMs);
    // What the first apply into empty maps left for later (done by the agent once idle).
    const p0 = performance.now();
    lb.prepare();
    prepareMs.push(performance.now() - p0);
    writes = a.added + a.updated + a.deleted;
    if (a.added !== writes) throw new Error(`apply from empty should only add: ${JSON.stringify(a)}`);
    const z = lb.apply({ frontends: [] });
    clearMs.push(z.durationMs);
  }
  console.log(`(ii) apply from empty: ${fmtInt(writes)} writes; rounds ${applyMs.map(fmtMs).join(', ')} (first, cold: ${fmtMs(firstApplyMs)})`);
  console.log(`     lbEntries (pure reference, not on the apply path): rounds ${entriesMs.map(fmtMs).join(', ')}; clearing again (${fmtInt(writes)} deletes): ${clearMs.map(fmtMs).join(', ')}`);
  console.log(`     deferred after each apply (LbDatapath.prepare: table for updates + shadow index, the agent does it once idle): ${prepareMs.map(fmtMs).join(', ')}`);

  // Baseline: the same entries, pre-encoded, written one by one with
  // bpf_map_update_elem into fresh unpinned maps of the same shape.
  const { maps: entryMaps } = lbEntries(state);
  const infos = LB_CONFIG_MAPS.map((name) => ({ name, info: new BpfMap(lb.loaded.maps[name]!).info }));
  const rawMs: number[] = [];
  const batchMs: number[] = [];
  const hashMs: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    for (const mode of ['raw', 'batch', 'hash'] as const) {
      const fresh = infos.map(({ name, info }) => ({
        name,
        map: mode === 'hash' && info.type === MapType.ARRAY
          ? BpfMap.create(MapType.HASH, `kl_bench_${r}`, info.keySize, info.valueSize, info.maxEntries, { flags: BPF_F_NO_PREALLOC })
          : BpfMap.create(info.type, `kl_bench_${r}`, info.keySize, info.valueSize, info.maxEntries, { flags: info.flags }),
      }));
      try {
        let n = 0;
        const t0 = performance.now();
        for (const { name, map } of fresh) {
          const es = entryMaps[name];
          if (mode === 'raw') {
            for (const e of es) mapUpdate(map.fd, e.key, e.value);
            n += es.length;
          } else if (es.length > 0) {
            n += mapUpdateBatch(map.fd, Buffer.concat(es.map((e) => e.key)), Buffer.concat(es.map((e) => e.value)), es.length);
          }
        }
        (mode === 'raw' ? rawMs : mode === 'batch' ? batchMs : hashMs).push(performance.now() - t0);
        if (n !== writes) throw new Error(`${mode} baseline wrote ${n} entries, apply ${writes}`);
      } finally {
        for (const { map } of fresh) map.close();
      }
    }
  }
  console.log(`     baseline raw bpf_map_update_elem x ${fmtInt(writes)}: rounds ${rawMs.map(fmtMs).join(', ')}; batch updates (incl. packing): ${batchMs.map(fmtMs).join(', ')}`);
  console.log(`     batch updates into every map as a no-prealloc hash (the shape before backends and rev-NAT became arrays): ${hashMs.map(fmtMs).join(', ')}`);

  // (i)+(ii) the agent's way, from a fresh model each round, into empty maps.
  /** ROUNDS of a fresh LbModel.update + LbDatapath.update into empty maps: wall and CPU time per round. */
  const agentRounds = (input: Pick<typeof snapshot, 'services' | 'endpointSlices'>, what: string) => {
    const wall: number[] = [], cpu: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      const a = lb.update(new LbModel().update(input));
      const used = process.cpuUsage(c0);
      wall.push(performance.now() - t0);
      cpu.push((used.user + used.system) / 1000);
      if (a.added !== writes) throw new Error(`model + update from empty (${what}) wrote ${a.added} entries, apply ${writes}`);
      lb.apply({ frontends: [] });
    }
    return [wall, cpu] as const;
  };
  const [agentMs, agentCpuMs] = agentRounds(snapshot, 'objects as listed');
  console.log(`(i)+(ii) fresh LbModel.update + LbDatapath.update into empty maps: rounds ${agentMs.map(fmtMs).join(', ')}; CPU time ${agentCpuMs.map(fmtMs).join(', ')}`);
  const trimmed = { services: snapshot.services.map((o) => trimObject('Service', o)), endpointSlices: snapshot.endpointSlices.map((o) => trimObject('EndpointSlice', o)) };
  const [trimmedMs, trimmedCpuMs] = agentRounds(trimmed, 'trimmed objects');
  console.log(`         the same on trimmed objects (as the sources give them): rounds ${trimmedMs.map(fmtMs).join(', ')}; CPU time ${trimmedCpuMs.map(fmtMs).join(', ')}`);

  // (iii) small changes after a full apply
  lb.apply(state);
  const changed = withOneEndpointChanged(state);
  const oneMs: number[] = [];
  const noneMs: number[] = [];
  let oneWrites = '';
  for (let r = 0; r < ROUNDS; r++) {
    const a = lb.apply(r % 2 === 0 ? changed : state);
    oneMs.push(a.durationMs);
    oneWrites = `+${a.added} ~${a.updated} -${a.deleted}`;
    const b = lb.apply(r % 2 === 0 ? changed : state);
    noneMs.push(b.durationMs);
    if (b.added + b.updated + b.deleted !== 0) throw new Error(`unchanged apply wrote ${JSON.stringify(b)}`);
  }
  console.log(`(iii) one endpoint changed: writes ${oneWrites} (added ~updated -deleted); rounds ${oneMs.map(fmtMs).join(', ')}`);
  console.log(`      nothing changed: 0 writes; rounds ${noneMs.map(fmtMs).join(', ')}`);
  lb.apply({ frontends: [] });

  // The incremental path the agent reconciles through: LbModel.update on the
  // snapshot (only changed objects are translated) + LbDatapath.update (only
  // the changed frontends' entries are encoded and compared). The first
  // update is a full one; then one EndpointSlice object is replaced by a copy
  // with one endpoint moved, and back.
  const model = new LbModel();
  let t1 = performance.now();
  const first = model.update(snapshot);
  const firstModelMs = performance.now() - t1;
  t1 = performance.now();
  const firstUpd = lb.update(first);
  const firstUpdateMs = performance.now() - t1;
  const k = snapshot.endpointSlices.length >> 1;
  const orig = snapshot.endpointSlices[k]!;
  const eps = (orig as { endpoints: { addresses: string[] }[] }).endpoints;
  const moved: KubeObject = { ...orig, endpoints: [{ ...eps[0]!, addresses: ['10.63.255.254'] }, ...eps.slice(1)] };
  const incMs: number[] = [];
  let incWrites = '';
  for (let r = 0; r < ROUNDS; r++) {
    const slices = snapshot.endpointSlices.slice();
    slices[k] = r % 2 === 0 ? moved : orig;
    t1 = performance.now();
    const u = model.update({ services: snapshot.services, endpointSlices: slices });
    const a = lb.update(u);
    incMs.push(performance.now() - t1);
    incWrites = `+${a.added} ~${a.updated} -${a.deleted}`;
  }
  console.log(`(iii) incremental (agent path): first LbModel.update ${fmtMs(firstModelMs)} + LbDatapath.update ${fmtMs(firstUpdateMs)} (${fmtInt(firstUpd.added)} writes); ` +
    `one endpoint changed: writes ${incWrites}, rounds ${incMs.map(fmtMs).join(', ')}`);
  lb.apply({ frontends: [] });

  const mApply = median(applyMs);
  const mRaw = median(rawMs);
  rows.push(['(i) buildLbState', fmtMs(median(modelMs)), fmtRatio(median(modelMs) / TARGET_MS), '', '']);
  rows.push(['(ii) LbDatapath.apply, empty -> full', fmtMs(mApply), fmtRatio(mApply / TARGET_MS), fmtMs(mRaw), fmtRatio(mApply / mRaw)]);
  rows.push(['     lbEntries alone (reference, not used)', fmtMs(median(entriesMs)), '', '', '']);
  rows.push(['(i)+(ii) model -> maps', fmtMs(median(modelMs) + mApply), fmtRatio((median(modelMs) + mApply) / TARGET_MS), fmtMs(mRaw), fmtRatio((median(modelMs) + mApply) / mRaw)]);
  rows.push(['(i)+(ii) agent path: LbModel + LbDatapath.update', fmtMs(median(agentMs)), fmtRatio(median(agentMs) / TARGET_MS), fmtMs(mRaw), fmtRatio(median(agentMs) / mRaw)]);
  rows.push(['     its CPU time', fmtMs(median(agentCpuMs)), fmtRatio(median(agentCpuMs) / TARGET_MS), '', '']);
  rows.push(['     on trimmed objects (as the sources give them)', fmtMs(median(trimmedMs)), fmtRatio(median(trimmedMs) / TARGET_MS), fmtMs(mRaw), fmtRatio(median(trimmedMs) / mRaw)]);
  rows.push(['     its CPU time', fmtMs(median(trimmedCpuMs)), fmtRatio(median(trimmedCpuMs) / TARGET_MS), '', '']);
  rows.push(['     batch writes alone: these maps / all hash', fmtMs(median(batchMs)), '', fmtMs(median(hashMs)), fmtRatio(median(batchMs) / median(hashMs))]);
  rows.push([`(iii) one endpoint changed (${oneWrites})`, fmtMs(median(oneMs)), fmtRatio(median(oneMs) / TARGET_MS), '', '']);
  rows.push(['(iii) nothing changed (0 writes)', fmtMs(median(noneMs)), fmtRatio(median(noneMs) / TARGET_MS), '', '']);
  rows.push(['(iii) incremental, first (full) model+update', fmtMs(firstModelMs + firstUpdateMs), fmtRatio((firstModelMs + firstUpdateMs) / TARGET_MS), fmtMs(mRaw), fmtRatio((firstModelMs + firstUpdateMs) / mRaw)]);
  rows.push([`(iii) incremental, one endpoint (${incWrites})`, fmtMs(median(incMs)), fmtRatio(median(incMs) / TARGET_MS), '', '']);

  // (iv) end to end through the agent process.
  const dir = await mkdtemp(join(tmpdir(), 'kl-bench-src-'));
  const runDir = await mkdtemp(join(tmpdir(), 'kl-bench-run-'));
  c.teardown(() => rm(dir, { recursive: true, force: true }));
  c.teardown(() => rm(runDir, { recursive: true, force: true }));
  const list = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [...snapshot.services, ...snapshot.endpointSlices] });
  await writeFile(join(dir, '.objects.json.tmp'), list);
  await rename(join(dir, '.objects.json.tmp'), join(dir, 'objects.json'));
  console.log(`(iv) objects.json: ${(list.length / 1048576).toFixed(1)} MB`);

  // Baselines for the agent: a bare node process (startup time, idle RSS).
  const base = await nodeBaseline(c);
  const agentRoot = join(scratch, 'agent'); // beside the pins of (ii), on the same scratch mount
  const agentCgroup = await testCgroup(c, 'kinglet-bench');
  c.teardown(() => cleanup(agentRoot)); // the agent leaves its datapath pinned on exit
  const run = await runAgent(c, ['--source', `dir:${dir}`, '--bpf-root', agentRoot, '--cgroup', agentCgroup], join(runDir, 'agent.sock'), fronts);
  const { startedMs, programmedMs: e2eMs, atProgrammed: vmAfter, later: vmLater, status, programmed } = run;
  const agentApply = status.services.lastApply!;
  console.log(`(iv) agent: "agent started" after ${fmtMs(startedMs)}; all ${fronts} frontends programmed after ${fmtMs(e2eMs)} ` +
    `(agent's own apply: ${programmed.map((p) => `${fmtMs(p.ms)} for ${p.added} writes`).join(', ')}; status lastApply ${fmtMs(agentApply.durationMs)})`);
  console.log(`     VmRSS right after ${vmAfter.rssMb.toFixed(1)} MB, 3 s later ${vmLater.rssMb.toFixed(1)} MB, peak (VmHWM) ${vmLater.hwmMb.toFixed(1)} MB; ` +
    `baseline: bare node process ${base.rssMb.toFixed(1)} MB, node startup ${fmtMs(base.startMs)}`);
  console.log(`     agent's heap compactions: ${run.compactions.map((x) => `${x.beforeMb}->${x.afterMb} MB in ${x.ms} ms`).join(', ') || 'none'} (test/bench/agent-rss.ts: the same through a YAML file and the kube source)`);
  rows.push(['(iv) agent spawn -> all programmed', fmtMs(e2eMs), fmtRatio(e2eMs / TARGET_MS), fmtMs(base.startMs) + ' (node -e "")', fmtRatio(e2eMs / base.startMs)]);
  rows.push(['     of which the agent\'s apply', fmtMs(agentApply.durationMs), fmtRatio(agentApply.durationMs / TARGET_MS), fmtMs(mRaw), fmtRatio(agentApply.durationMs / mRaw)]);

  console.log(`\nprogramming ${fmtInt(SERVICES)} services x ${ENDPOINTS} endpoints (${fmtInt(writes)} map entries); medians of ${ROUNDS}`);
  console.log(table(['step', 'time', `/ target ${TARGET_MS} ms`, 'baseline (raw writes)', 'ratio to baseline'], rows));
  console.log(`\nagent RSS after programming: ${vmAfter.rssMb.toFixed(1)} MB (${fmtRatio(vmAfter.rssMb / TARGET_RSS_MB)} of the ${TARGET_RSS_MB} MB target), ` +
    `${vmLater.rssMb.toFixed(1)} MB 3 s later, peak ${vmLater.hwmMb.toFixed(1)} MB; a bare node process: ${base.rssMb.toFixed(1)} MB (ratio ${fmtRatio(vmAfter.rssMb / base.rssMb)})`);
  const mAgent = median(agentMs), mBatch = median(batchMs);
  console.log(`agent path (LbModel.update + LbDatapath.update from empty): ${fmtMs(mAgent)} wall, ${fmtMs(median(agentCpuMs))} CPU; ` +
    `ratio to the raw-update baseline ${fmtRatio(mAgent / mRaw)}, to the batch baseline (${fmtMs(mBatch)}) ${fmtRatio(mAgent / mBatch)}`);
  console.log(`targets: model -> maps ${fmtMs(median(modelMs) + mApply)} (agent path ${fmtMs(mAgent)}) vs < ${TARGET_MS} ms: ${median(modelMs) + mApply < TARGET_MS ? 'met' : 'NOT met'}${mAgent < TARGET_MS ? '' : ' (agent path NOT met)'}; ` +
    `RSS ${vmAfter.rssMb.toFixed(1)} MB vs < ${TARGET_RSS_MB} MB: ${vmAfter.rssMb < TARGET_RSS_MB ? 'met' : 'NOT met'}`);
});
