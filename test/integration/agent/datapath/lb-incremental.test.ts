// LbDatapath on real pinned maps (scratch bpffs, a cgroup of the test's own,
// no traffic): the first apply writes in batches, one endpoint change is a
// handful of writes, and drift made behind the agent's back is repaired by
// resync() + the next update (a full diff), or by checkDrift() alone (the
// periodic check: only the differences written, the table kept).
import t from 'tap';
import { rootSkipReason } from '../../../lib/sandbox.ts';
import { scratchLb } from '../../../lib/scratch-lb.ts';
import { BpfMap } from '../../../../agent/datapath/libbpf.ts';
import { kernelMap } from '../../../lib/kernel-map.ts';
import { TAIL_ROUNDS } from '../../../../agent/datapath/shadow-map.ts';
import {
  LB4_BE_MAP, LB4_RNAT_MAP, LB4_SLOT_MAP, LB4_SVC_MAP, LB6_BE_MAP, LB6_RNAT_MAP, LB6_SLOT_MAP, LB6_SVC_MAP, LB_CONFIG_MAPS, lb4KeyCodec, svcValueCodec, u32Codec,
} from '../../../../agent/datapath/lb-layout.ts';
import { buildLbState, LbModel, type ServicesInput } from '../../../../agent/model/services.ts';
import type { KubeObject } from '../../../../agent/source/types.ts';

const skip = rootSkipReason();

function objects(n: number, moved = -1): { services: KubeObject[]; endpointSlices: KubeObject[] } {
  const services: KubeObject[] = [], endpointSlices: KubeObject[] = [];
  for (let i = 0; i < n; i++) {
    services.push({ metadata: { name: `s${i}`, namespace: 't' }, spec: { clusterIP: `10.96.${i >> 8}.${i & 255}`, ports: [{ port: 80 }] } });
    const endpoints = [];
    for (let j = 0; j < 4; j++) endpoints.push({ addresses: [i === moved && j === 0 ? '10.99.0.1' : `10.42.${i >> 6}.${((i & 63) << 2) + j}`] });
    endpointSlices.push({ metadata: { name: `s${i}-x`, namespace: 't', labels: { 'kubernetes.io/service-name': `s${i}` } }, addressType: 'IPv4', ports: [{ port: 8080 }], endpoints });
  }
  return { services, endpointSlices };
}

t.test('LbDatapath.update: batched first apply, incremental change, drift repaired by resync', { skip }, async (t) => {
  const { lb } = await scratchLb(t);
  const model = new LbModel();
  const base = objects(500);
  const first = lb.update(model.update(base));
  t.equal(first.added, 500 * (1 + 4) + 500 * 4 + 500, 'first apply: the frontend + 4 slots, 4 backends and a rev-NAT entry per service');
  t.same(lb.fill().map((m) => [m.name, m.entries]), [
    [LB4_SVC_MAP, 500], [LB6_SVC_MAP, 0], [LB4_SLOT_MAP, 2000], [LB6_SLOT_MAP, 0], [LB4_BE_MAP, 2000], [LB6_BE_MAP, 0], [LB4_RNAT_MAP, 500], [LB6_RNAT_MAP, 0],
  ]);

  // The kernel holds what the shadow copy says.
  const svc = kernelMap(lb.loaded.maps[LB4_SVC_MAP]!);
  const be = kernelMap(lb.loaded.maps[LB4_BE_MAP]!);
  t.equal([...svc.entries()].length, 500);
  t.equal([...be.entries()].length, 2000);

  // One endpoint of one service changes: a new backend, its slot, the old backend gone.
  const changed = { services: base.services, endpointSlices: base.endpointSlices.slice() };
  changed.endpointSlices[123] = objects(500, 123).endpointSlices[123]!;
  const u = model.update(changed);
  t.equal(u.changes.size, 1);
  const r = lb.update(u);
  t.same({ added: r.added, updated: r.updated, deleted: r.deleted }, { added: 1, updated: 1, deleted: 1 });
  const nothing = lb.update(model.update(changed));
  t.same({ added: nothing.added, updated: nothing.updated, deleted: nothing.deleted }, { added: 0, updated: 0, deleted: 0 });
  t.same(lb.services().map((s) => s.backends.length), buildLbState(changed as ServicesInput).state.frontends.map((f) => f.backends.length));

  // Drift: someone deletes a backend and rewrites a frontend's count.
  const fkey = lb4KeyCodec.encode({ address: '10.96.0.7', port: 80, proto: 6 });
  const fval = svcValueCodec.decode(svc.get(fkey)!);
  svc.update(fkey, svcValueCodec.encode({ ...fval, count: 1 }));
  const victim = [...be.entries()][0]![0];
  be.delete(victim);
  const blind = lb.update(model.update(changed));
  t.equal(blind.added + blind.updated + blind.deleted, 0, 'without a resync the shadow copy does not see the drift');
  lb.resync();
  const repair = lb.update(model.update(changed));
  t.same({ added: repair.added, updated: repair.updated, deleted: repair.deleted }, { added: 1, updated: 1, deleted: 0 }, 'resync + update repairs it');
  t.equal(svcValueCodec.decode(svc.get(fkey)!).count, 4);
  t.ok(be.get(victim), 'backend back');
  t.equal(u32Codec.decode(victim) > 0, true);
  const after = lb.update(model.update(changed));
  t.equal(after.added + after.updated + after.deleted, 0, 'and then nothing to do');

  // Everything removed: incremental deletes empty every map.
  const gone = lb.update(model.update({ services: [], endpointSlices: [] }));
  t.equal(gone.deleted, 2500 + 2000 + 500);
  t.ok(LB_CONFIG_MAPS.every((n) => lb.fill().find((m) => m.name === n)!.entries === 0));
});

t.test('LbDatapath.checkDrift: repairs only what drifted, writes nothing without drift, full re-read after a failed write', { skip }, async (t) => {
  const { lb } = await scratchLb(t);
  // Every single-entry write the datapath makes (batches are not used for a handful of entries).
  let writes = 0;
  const set = BpfMap.prototype.set, del = BpfMap.prototype.delete;
  BpfMap.prototype.set = function (this: BpfMap, k, v, f) {
    writes++;
    return set.call(this, k, v, f);
  };
  BpfMap.prototype.delete = function (this: BpfMap, k) {
    writes++;
    return del.call(this, k);
  };
  t.teardown(() => {
    BpfMap.prototype.set = set;
    BpfMap.prototype.delete = del;
  });
  const model = new LbModel();
  const base = objects(300);
  lb.update(model.update(base));
  const svc = kernelMap(lb.loaded.maps[LB4_SVC_MAP]!);
  const be = kernelMap(lb.loaded.maps[LB4_BE_MAP]!);

  writes = 0;
  const clean = lb.checkDrift();
  t.same({ mode: clean.mode, added: clean.added, updated: clean.updated, deleted: clean.deleted }, { mode: 'drift', added: 0, updated: 0, deleted: 0 });
  t.ok(clean.scanned >= 300 * 5 + 300 * 4 + 300, `every entry compared (${clean.scanned} read)`);
  t.equal(writes, 0, 'no drift: no write');

  // Behind the agent's back: a backend deleted, a frontend's count changed, a stray frontend added.
  const fkey = lb4KeyCodec.encode({ address: '10.96.0.7', port: 80, proto: 6 });
  const fval = svcValueCodec.decode(svc.get(fkey)!);
  svc.update(fkey, svcValueCodec.encode({ ...fval, count: 1 }));
  const stray = lb4KeyCodec.encode({ address: '10.97.0.1', port: 53, proto: 17 });
  svc.update(stray, svcValueCodec.encode({ ...fval, count: 0 }));
  const victim = [...be.entries()][0]!;
  be.delete(victim[0]);
  writes = 0;
  const d = lb.checkDrift();
  t.same({ mode: d.mode, added: d.added, updated: d.updated, deleted: d.deleted }, { mode: 'drift', added: 1, updated: 1, deleted: 1 }, 'one missing, one changed, one extra');
  t.same(d.byMap[LB4_SVC_MAP], { added: 0, updated: 1, deleted: 1 });
  t.same(d.byMap[LB4_BE_MAP], { added: 1, updated: 0, deleted: 0 });
  t.equal(writes, 3, 'three writes, nothing else');
  t.equal(svcValueCodec.decode(svc.get(fkey)!).count, 4, 'count back');
  t.equal(svc.get(stray), undefined, 'stray frontend gone');
  t.same(be.get(victim[0]), victim[1], 'backend back');
  const again = lb.checkDrift();
  t.equal(again.added + again.updated + again.deleted, 0, 'then no drift');
  writes = 0;
  const next = lb.update(model.update(base));
  t.equal(next.added + next.updated + next.deleted + writes, 0, 'the table was kept: the next update has nothing to do');
  const changed = { services: base.services, endpointSlices: base.endpointSlices.slice() };
  changed.endpointSlices[42] = objects(300, 42).endpointSlices[42]!;
  const inc = lb.update(model.update(changed));
  t.same({ added: inc.added, updated: inc.updated, deleted: inc.deleted }, { added: 1, updated: 1, deleted: 1 }, 'and a change is still incremental');

  // The agent's variant, with breaks between maps: the same repair; an update
  // during a break makes it check again in one go (nothing stale written).
  be.delete(victim[0]);
  const y = await lb.checkDriftYielding();
  t.same({ mode: y.mode, added: y.added, updated: y.updated, deleted: y.deleted }, { mode: 'drift', added: 1, updated: 0, deleted: 0 }, 'yielding check repairs too');
  t.ok(y.longestBlockMs <= y.durationMs);
  // Service 42's backend slots deleted; the check scans the service map first,
  // then, during its break, an update rewrites one of those slots.
  // (The slots live in an array: a deleted slot is one written with zeros.)
  const slots = kernelMap(lb.loaded.maps[LB4_SLOT_MAP]!);
  const { slotBase } = svcValueCodec.decode(svc.get(lb4KeyCodec.encode({ address: '10.96.0.42', port: 80, proto: 6 }))!);
  for (let s = 0; s < 4; s++) slots.update(u32Codec.encode(slotBase + s), new Uint8Array(4));
  const pending = lb.checkDriftYielding();
  const back = lb.update(model.update(base));
  t.same({ added: back.added, updated: back.updated, deleted: back.deleted }, { added: 1, updated: 1, deleted: 1 }, 'an update during the check (service 42 back to its old backend)');
  const y2 = await pending;
  t.same({ added: y2.added, updated: y2.updated, deleted: y2.deleted }, { added: 3, updated: 0, deleted: 0 }, 'the check saw the update: the 3 slots still missing, the rewritten one left alone');
  const quiet = lb.checkDrift();
  t.equal(quiet.added + quiet.updated + quiet.deleted, 0, 'consistent afterwards');
  lb.resync();
  const truth = lb.update(model.update(base));
  t.equal(truth.added + truth.updated + truth.deleted, 0, 'the kernel holds what a full recompute wants (nothing stale written)');
  const same = lb.update(model.update(changed));
  t.same({ added: same.added, updated: same.updated, deleted: same.deleted }, { added: 1, updated: 1, deleted: 1 }, 'and the table followed the update');

  // A write fails: the copies are in doubt, so the next check is a full re-read.
  BpfMap.prototype.set = () => {
    throw new Error('injected write failure');
  };
  const moved = { services: changed.services, endpointSlices: changed.endpointSlices.slice() };
  moved.endpointSlices[43] = objects(300, 43).endpointSlices[43]!;
  t.throws(() => lb.update(model.update(moved)), /injected/);
  BpfMap.prototype.set = function (this: BpfMap, k, v, f) {
    writes++;
    return set.call(this, k, v, f);
  };
  const full = lb.checkDrift();
  t.equal(full.mode, 'full', 'after a failed write: full resync');
  const redo = lb.update(model.update(moved));
  t.same({ added: redo.added, updated: redo.updated, deleted: redo.deleted }, { added: 0, updated: 1, deleted: 1 }, 'the full diff writes the change (slot to the backend service 42 already uses, old backend gone)');
  t.equal(lb.checkDrift().mode, 'drift', 'and the check streams again');
});

t.test('LbDatapath.checkDrift reads the slot arrays up to their high-water mark, and finds strays above it within a few checks', { skip }, async (t) => {
  const { lb } = await scratchLb(t);
  const model = new LbModel();
  lb.update(model.update(objects(300)));
  lb.prepare();
  const clean = lb.checkDrift();
  const capacity = lb.fill().reduce((n, m) => n + m.max, 0);
  t.ok(clean.scanned < capacity / 4, `a check reads ${clean.scanned} of the ${capacity} entries the maps can hold`);
  t.equal(clean.added + clean.updated + clean.deleted, 0);

  // Someone writes slot entries no frontend covers: one just above the used range, one at the very end.
  const slots = kernelMap(lb.loaded.maps[LB4_SLOT_MAP]!);
  const top = slots.map.info.maxEntries - 1;
  const strays = [300 * 4 + 1, top].map((i) => u32Codec.encode(i));
  for (const k of strays) slots.update(k, u32Codec.encode(1));
  let deleted = 0, checks = 0;
  while (deleted < strays.length && checks < TAIL_ROUNDS) {
    checks++;
    const d = lb.checkDrift();
    t.same([d.added, d.updated], [0, 0]);
    deleted += d.byMap[LB4_SLOT_MAP]?.deleted ?? 0;
  }
  t.equal(deleted, 2, `both stray slots removed within ${checks} checks (at most ${TAIL_ROUNDS})`);
  for (const k of strays) t.equal(slots.get(k), undefined, 'zeros again');

  // And a stray inside the used range (a slot range freed in the middle) is found by the next check.
  const fewer = objects(300);
  fewer.services.splice(10, 1);
  fewer.endpointSlices.splice(10, 1);
  lb.update(model.update(fewer));
  const hole = u32Codec.encode(10 * 4 + 2);
  t.equal(slots.get(hole), undefined, 'service 10\'s slots are free');
  slots.update(hole, u32Codec.encode(1));
  const d = lb.checkDrift();
  t.equal(d.byMap[LB4_SLOT_MAP]?.deleted, 1, 'the stray in the hole is removed by the very next check');
  t.equal(slots.get(hole), undefined);
});
