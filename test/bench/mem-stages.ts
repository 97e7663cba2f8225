// Memory of the agent's LB path at scale, stage by stage (not a benchmark:
// a probe). Root:
//   node test/bench/mem-stages.ts       (MEM_SPACES=1: V8 heap spaces at the end;
//                                        BENCH_NOISY=1: objects as an API server returns them)
// It re-executes itself with the agent's node flags (AGENT_NODE_FLAGS, as the
// installed unit runs it) plus --expose-gc: V8 flags such as
// --max-semi-space-size only take effect on the command line. The objects
// file is written by a separate process, so that generating it leaves
// nothing in this one's heap. Each stage line is taken after a full GC
// (heapUsed: live); RSS is what the process holds at that point.
// Baseline: the same objects as JSON.parse gives them (untrimmed), measured
// in this run; the dir source keeps them trimmed (agent/source/trim.ts).
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';
import { AGENT_NODE_FLAGS } from '../../installer/render.ts';

const SERVICES = Number(process.env.BENCH_SERVICES ?? 10_000);
const ENDPOINTS = Number(process.env.BENCH_ENDPOINTS ?? 10);
const NOISY = process.env.BENCH_NOISY === '1';
const self = fileURLToPath(import.meta.url);

/** What an API server adds to an object and the agent never reads. */
function noise(o: Record<string, any>, i: number): Record<string, any> {
  if (!NOISY) return o;
  const applied = JSON.stringify(o);
  o.metadata.creationTimestamp = '2026-01-01T00:00:00Z';
  o.metadata.annotations = { 'kubectl.kubernetes.io/last-applied-configuration': applied };
  o.metadata.managedFields = [{ manager: 'kube-controller-manager', operation: 'Update', apiVersion: o.apiVersion, time: '2026-01-01T00:00:00Z', fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': { 'f:labels': { '.': {} } } } }];
  if (o.kind === 'Service') o.spec.selector = { app: o.metadata.name };
  else for (const [j, e] of o.endpoints.entries()) e.targetRef = { kind: 'Pod', namespace: 'bench', name: `${o.metadata.name}-pod-${j}`, uid: `00000000-0000-4000-9000-${String(i * 100 + j).padStart(12, '0')}` };
  return o;
}

async function writeObjects(file: string): Promise<void> {
  const { benchObjects } = await import('./lib/objects.ts');
  const { services, endpointSlices } = benchObjects(SERVICES, ENDPOINTS);
  const svcs = services.map((o, i) => noise(o, i));
  const slices = endpointSlices.map((o, i) => noise(o, i));
  // Written synchronously in pieces: the whole text is never one string here.
  const fs = process.getBuiltinModule('node:fs');
  const fd = fs.openSync(file, 'w');
  fs.writeSync(fd, '{"apiVersion":"v1","kind":"List","items":[');
  [...svcs, ...slices].forEach((o, i) => fs.writeSync(fd, (i ? ',' : '') + JSON.stringify(o)));
  fs.writeSync(fd, ']}');
  fs.closeSync(fd);
}

if (process.env.MEM_STAGES_WRITE) {
  await writeObjects(process.env.MEM_STAGES_WRITE);
} else if (!process.env.MEM_STAGES_CHILD) {
  // Re-run with the agent's flags; nothing else happens in this process.
  const r = spawnSync(process.execPath, [...AGENT_NODE_FLAGS, '--expose-gc', self], { stdio: 'inherit', env: { ...process.env, MEM_STAGES_CHILD: '1' } });
  process.exitCode = r.status ?? 1;
} else {
  await probe();
}

async function probe(): Promise<void> {
  const { scratchLb } = await import('../lib/scratch-lb.ts');
  const { bench } = await import('./lib/bench.ts');
  const { DirSource } = await import('../../agent/source/dir.ts');
  const { LbModel } = await import('../../agent/model/services.ts');
  const { fullGc, tuneMalloc } = await import('../../agent/memory.ts');
  tuneMalloc(); // as the agent does at start

  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('mem-stages: run without --expose-gc (start it as `node test/bench/mem-stages.ts`)');
  const mb = (n: number) => (n / 1048576).toFixed(1).padStart(7);
  let prevUsed = 0;
  const mem = (stage: string): number => {
    gc();
    const m = process.memoryUsage();
    const h = getHeapStatistics();
    const delta = m.heapUsed - prevUsed;
    prevUsed = m.heapUsed;
    console.log(`${stage.padEnd(36)} rss ${mb(m.rss)}  heapUsed ${mb(m.heapUsed)} (${delta >= 0 ? '+' : '-'}${mb(Math.abs(delta)).trim()})  heapTotal ${mb(m.heapTotal)}  external ${mb(m.external)}  arrayBuffers ${mb(m.arrayBuffers)}  malloced ${mb(h.malloced_memory)}`);
    return m.heapUsed;
  };

  await bench('mem-stages', async (c) => {
    console.log(`mem-stages: ${SERVICES} services x ${ENDPOINTS} endpoints${NOISY ? ' (with API server noise)' : ''}; node flags ${[...AGENT_NODE_FLAGS, '--expose-gc'].join(' ')}`);
    const dir = await mkdtemp(join(tmpdir(), 'kl-mem-'));
    c.teardown(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'objects.json');
    const w = spawnSync(process.execPath, [self], { stdio: 'inherit', env: { ...process.env, MEM_STAGES_WRITE: file } });
    if (w.status !== 0) throw new Error('mem-stages: writing the objects failed');

    // Baseline: the objects as parsed, untrimmed, measured in this process.
    // Every step runs in a function of its own: a value left in a register of
    // a frame that is still running would stay alive and skew the figures.
    const loadParsed = async (): Promise<unknown> => JSON.parse(await readFile(file, 'utf8'));
    const before = mem('start');
    const asParsed = await (async () => {
      const o = await loadParsed();
      const used = mem('baseline: objects as JSON.parse gives them');
      void o;
      return used - before;
    })();
    mem('baseline dropped');

    const { lb } = await scratchLb(c, 'kinglet-mem');
    const opened = mem('datapath open');
    const src = new DirSource(dir, { rescanMs: 0, watch: false });
    await src.start(() => {});
    c.teardown(() => src.stop());
    const kept = mem('dir source read (trimmed)') - opened;
    const model = new LbModel();
    const u = model.update(src.snapshot());
    mem('model update + state');
    const r = lb.update(u);
    mem(`datapath apply (${r.added} adds)`);
    lb.services();
    mem('datapath table (settle)');
    lb.prepare();
    mem('datapath prepare (shadow index)');
    fullGc()();
    mem('after the agent\'s compaction (memory.ts)');
    console.log(`\nsource objects kept: ${mb(kept).trim()} MB trimmed vs ${mb(asParsed).trim()} MB as parsed (ratio ${(kept / asParsed).toFixed(3)})`);
    if (process.env.MEM_SPACES) {
      for (const s of getHeapSpaceStatistics()) console.log(`  ${s.space_name.padEnd(26)} size ${mb(s.space_size)}  used ${mb(s.space_used_size)}`);
    }
  });
}
