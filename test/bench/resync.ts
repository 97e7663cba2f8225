// Benchmark (issue 3): the agent's periodic resync with 10k services x 10
// endpoints programmed. The new path (LbDatapath.checkDrift: every map walked
// through one reused buffer and compared with the shadow copy, only drift
// written) against the old one (LbDatapath.resync: every shadow copy re-read,
// the table dropped, then the next update is a full recompute + full diff)
// and against the initial full apply, in one process: time (the event loop
// is blocked for all of it), heapUsed right after (before any forced GC:
// what the step allocated and V8 had not collected yet), the RSS high-water
// mark during the step (VmHWM, reset before each step) and what stays after
// a full GC. The agent runs the check with a break after each map
// (checkDriftYielding): its longest stretch without one is printed too.
// Then one drift repaired by checkDrift.
//
//   node test/bench/resync.ts        (root: scratch bpffs + a cgroup of its own)
//   BENCH_SERVICES=10000 BENCH_ENDPOINTS=10 node test/bench/resync.ts
//
// It re-executes itself with the agent's node flags (AGENT_NODE_FLAGS) plus
// --expose-gc, and tunes malloc as the agent does. Real pinned maps on a scratch bpffs; the programs attach to an
// empty cgroup this benchmark creates. No traffic. Prints figures; asserts nothing.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { scratchLb } from '../lib/scratch-lb.ts';
import { bench, fmtMs, median, table } from './lib/bench.ts';
import { AGENT_NODE_FLAGS } from '../../installer/render.ts';
import { LbModel } from '../../agent/model/services.ts';
import { emptySnapshot, type Snapshot } from '../../agent/source/types.ts';
import { benchObjects } from './lib/objects.ts';
import { LB4_BE_MAP, LB4_SVC_MAP } from '../../agent/datapath/lb-layout.ts';
import { kernelMap } from '../lib/kernel-map.ts';
import { tuneMalloc } from '../../agent/memory.ts';
import { TAIL_ROUNDS } from '../../agent/datapath/shadow-map.ts';

const SERVICES = Number(process.env.BENCH_SERVICES ?? 10_000);
const ENDPOINTS = Number(process.env.BENCH_ENDPOINTS ?? 10);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);

/** The benchmarks' cluster (test/bench/lib/objects.ts), as the source hands it to the model. */
function snapshot(): Snapshot {
  return { ...emptySnapshot(), ...benchObjects(SERVICES, ENDPOINTS) };
}

const MB = 1024 * 1024;
const mb = (b: number) => `${(b / MB).toFixed(1)} MB`;
const ratio = (a: number, b: number) => (b > 0 ? `${(a / b).toFixed(2)}x` : 'n/a');

function vm(field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

interface Step {
  ms: number;
  /** heapUsed right after the step minus before (garbage not yet collected included). */
  heap: number;
  /** VmHWM during the step minus RSS before. */
  rssPeak: number;
  /** heapUsed after a full GC minus before. */
  kept: number;
}

/** Run `fn` once, measured: GC first, RSS high-water mark reset, then time and memory. */
function measure(gc: () => void, fn: () => void): Step {
  gc();
  const heap0 = process.memoryUsage().heapUsed;
  writeFileSync('/proc/self/clear_refs', '5'); // reset VmHWM to the current RSS
  const rss0 = vm('VmRSS');
  const t0 = performance.now();
  fn();
  const ms = performance.now() - t0;
  const heap1 = process.memoryUsage().heapUsed;
  const hwm = vm('VmHWM');
  gc();
  return { ms, heap: heap1 - heap0, rssPeak: hwm - rss0, kept: process.memoryUsage().heapUsed - heap0 };
}

/**
 * The median of each figure over the runs, but the largest RSS peak: later
 * runs reuse the heap the first one grew (the agent compacts its heap after
 * work, so each of its resyncs grows it again).
 */
function mid(steps: Step[]): Step {
  return { ms: median(steps.map((s) => s.ms)), heap: median(steps.map((s) => s.heap)), rssPeak: Math.max(...steps.map((s) => s.rssPeak)), kept: median(steps.map((s) => s.kept)) };
}

async function main(gc: () => void): Promise<void> {
  tuneMalloc(); // as the agent does at start
  await bench('resync', async (c) => {
    const { lb } = await scratchLb(c, 'kinglet-bench');
    const model = new LbModel();
    let snap: Snapshot | undefined = snapshot();
    console.log(`resync: ${SERVICES} services x ${ENDPOINTS} endpoints, object ${lb.variant.file}, node flags ${process.execArgv.join(' ')}`);

    // The initial full apply (model, entries, writes, and the deferred table and index).
    let entries = 0;
    const first = measure(gc, () => {
      const r = lb.update(model.update(snap!));
      lb.prepare();
      entries = r.added;
    });
    snap = undefined; // the source keeps its own objects; the model's copy is what the agent holds
    const rssAfterApply = vm('VmRSS');
    console.log(`programmed ${entries} entries; RSS after the apply ${mb(rssAfterApply)}`);

    // The new periodic resync: nothing drifted.
    const news: Step[] = [];
    let scanned = 0, wrote = 0;
    for (let i = 0; i < RUNS; i++) {
      news.push(measure(gc, () => {
        const d = lb.checkDrift();
        scanned = d.scanned;
        wrote += d.added + d.updated + d.deleted;
      }));
    }
    const blocks: number[] = [];
    for (let i = 0; i < RUNS; i++) blocks.push((await lb.checkDriftYielding()).longestBlockMs);
    // The old one, as the agent ran it: re-read every map, then the next reconcile is a full apply.
    const olds: Step[] = [];
    let oldWrote = 0;
    const again = snapshot();
    for (let i = 0; i < Math.max(1, Math.ceil(RUNS / 2)); i++) {
      olds.push(measure(gc, () => {
        lb.resync();
        const r = lb.update(model.update(again));
        oldWrote += r.added + r.updated + r.deleted;
      }));
    }
    const newStep = mid(news), oldStep = mid(olds);
    console.log(table(['step (median)', 'time (loop blocked)', 'heapUsed right after', 'RSS peak over start (max)', 'heap kept after GC'], [
      [`initial full apply (1 run)`, fmtMs(first.ms), mb(first.heap), mb(first.rssPeak), mb(first.kept)],
      [`old resync: re-read + full recompute/diff (${olds.length} runs)`, fmtMs(oldStep.ms), mb(oldStep.heap), mb(oldStep.rssPeak), mb(oldStep.kept)],
      [`new resync: streamed drift check (${news.length} runs)`, fmtMs(newStep.ms), mb(newStep.heap), mb(newStep.rssPeak), mb(newStep.kept)],
    ]));
    console.log(`new resync against the old one: time ${ratio(newStep.ms, oldStep.ms)}, heap growth ${ratio(newStep.heap, oldStep.heap)}, RSS peak ${ratio(newStep.rssPeak, oldStep.rssPeak)}`);
    console.log(`new resync against the initial apply: time ${ratio(newStep.ms, first.ms)}, heap growth ${ratio(newStep.heap, first.heap)}, RSS peak ${ratio(newStep.rssPeak, first.rssPeak)}`);
    console.log(`new resync as the agent runs it (a break after each map): longest block ${fmtMs(median(blocks))} (median of ${RUNS}), ${ratio(median(blocks), oldStep.ms)} of the old path's`);
    const capacity = lb.fill().reduce((n, f) => n + f.max, 0);
    console.log(`new resync read ${scanned} kernel entries per run (${ratio(scanned, capacity)} of the ${capacity} the maps hold: array maps up to their highest index in use, plus 1/${TAIL_ROUNDS} of the rest) and wrote ${wrote} (0 expected); the old path wrote ${oldWrote} (0 expected)`);

    // Drift: a handful of entries changed behind the agent's back, repaired by one check.
    const svc = kernelMap(lb.loaded.maps[LB4_SVC_MAP]!), be = kernelMap(lb.loaded.maps[LB4_BE_MAP]!);
    let n = 0;
    for (const [k] of be.entries()) {
      if (n++ % 1000 === 0) be.delete(k);
    }
    let m = 0;
    for (const [k, v] of svc.entries()) {
      if (m++ % 5000 !== 0) continue;
      const w = Uint8Array.from(v);
      w[w.length - 1]! ^= 0xff;
      svc.update(k, w);
    }
    let repaired = { added: 0, updated: 0, deleted: 0 };
    const fix = measure(gc, () => {
      const d = lb.checkDrift();
      repaired = { added: d.added, updated: d.updated, deleted: d.deleted };
    });
    console.log(`drift (${Math.ceil(n / 1000)} backends deleted, ${Math.ceil(m / 5000)} service entries changed): repaired +${repaired.added} ~${repaired.updated} -${repaired.deleted} in ${fmtMs(fix.ms)}, heap ${mb(fix.heap)}, RSS peak ${mb(fix.rssPeak)}; check after: ${JSON.stringify((({ added, updated, deleted }) => ({ added, updated, deleted }))(lb.checkDrift()))}`);
  });
}

const gc = (globalThis as { gc?: () => void }).gc;
if (process.env.RESYNC_BENCH_CHILD === '1' && gc) await main(gc);
else {
  const self = fileURLToPath(import.meta.url);
  const r = spawnSync(process.execPath, [...AGENT_NODE_FLAGS, '--expose-gc', self], { stdio: 'inherit', env: { ...process.env, RESYNC_BENCH_CHILD: '1' } });
  process.exitCode = r.status ?? 1;
}
