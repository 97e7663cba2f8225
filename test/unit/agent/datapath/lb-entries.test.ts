import t from 'tap';
import type { LbBackend, LbFrontend, LbState } from '../../../../agent/model/types.ts';
import {
  allocationFromMaps, assignSlots, emptyAllocation, lbEntries, lbPhase, lbPlans, l4Id, placeSlots, type LbEntries,
} from '../../../../agent/datapath/lb-entries.ts';
import { SlotRanges } from '../../../../agent/datapath/lb-slots.ts';
import {
  LB4_BE_MAP, LB4_RNAT_MAP, LB4_SLOT_MAP, LB4_SVC_MAP, LB6_BE_MAP, LB6_RNAT_MAP, LB6_SLOT_MAP, LB6_SVC_MAP, LB_CONFIG_MAPS,
  BE_F_TERMINATING, SVC_F_AFFINITY, lb4BackendCodec, lb4KeyCodec, lb4RevNatCodec, lb6BackendCodec, lb6KeyCodec,
  svcValueCodec, u32Codec, type LbConfigMapName,
} from '../../../../agent/datapath/lb-layout.ts';
import { MemoryMap, reconcile } from '../../../../agent/datapath/reconcile.ts';
import { Backends } from '../../../../agent/model/backends.ts';

const be = (address: string, port = 8080, terminating = false): LbBackend => ({ address, port, terminating });

function fe(address: string, port: number, backends: LbBackend[], extra: Partial<LbFrontend> = {}): LbFrontend {
  return {
    service: 'default/svc', portName: '', type: 'ClusterIP', family: address.includes(':') ? 6 : 4,
    address, port, protocol: 'TCP', backends: Backends.from(backends), affinityTimeoutSeconds: 0, ...extra,
  };
}

/** The frontends with the backend id in each of their slots (read from the slot arrays at their base). */
function decoded(e: LbEntries) {
  const slotIds = (map: typeof LB4_SLOT_MAP | typeof LB6_SLOT_MAP) => new Map(e.maps[map].map((x) => [u32Codec.decode(x.key), u32Codec.decode(x.value)]));
  const s4 = slotIds(LB4_SLOT_MAP), s6 = slotIds(LB6_SLOT_MAP);
  const withSlots = (k: ReturnType<typeof lb4KeyCodec.decode>, v: ReturnType<typeof svcValueCodec.decode>, ids: Map<number, number>) =>
    ({ k, v, slots: Array.from({ length: v.count }, (_, i) => ids.get(v.slotBase + i)) });
  const svc = [...e.maps[LB4_SVC_MAP].map((x) => withSlots(lb4KeyCodec.decode(x.key), svcValueCodec.decode(x.value), s4)),
    ...e.maps[LB6_SVC_MAP].map((x) => withSlots(lb6KeyCodec.decode(x.key), svcValueCodec.decode(x.value), s6))];
  const be4 = new Map(e.maps[LB4_BE_MAP].map((x) => [u32Codec.decode(x.key), lb4BackendCodec.decode(x.value)]));
  const be6 = new Map(e.maps[LB6_BE_MAP].map((x) => [u32Codec.decode(x.key), lb6BackendCodec.decode(x.value)]));
  return { svc, be4, be6 };
}

function memMaps(): Record<LbConfigMapName, MemoryMap> {
  return Object.fromEntries(LB_CONFIG_MAPS.map((n) => [n, new MemoryMap(n)])) as Record<LbConfigMapName, MemoryMap>;
}

t.test('one frontend: its entry with the count and slot range, one slot per backend, backends and rev-NAT', async (t) => {
  const state: LbState = { frontends: [fe('10.96.0.10', 80, [be('10.42.0.1'), be('10.42.0.2'), be('10.42.0.3')])] };
  const e = lbEntries(state);
  const { svc, be4 } = decoded(e);
  t.equal(svc.length, 1);
  const front = svc[0]!;
  t.same(front.k, { address: '10.96.0.10', port: 80, proto: 6 });
  t.same(front.v, { slotBase: 1, count: 3, flags: 0, revNatId: 1, affinityTimeout: 0 }, 'the first range starts at index 1');
  t.equal(e.maps[LB4_SLOT_MAP].length, 3);
  t.same(front.slots.map((id) => be4.get(id!)?.address), ['10.42.0.1', '10.42.0.2', '10.42.0.3']);
  t.same(e.maps[LB4_RNAT_MAP].map((x) => [u32Codec.decode(x.key), lb4RevNatCodec.decode(x.value)]), [[1, { address: '10.96.0.10', port: 80 }]]);
  t.same(e.maps[LB6_SVC_MAP], []);
});

t.test('no backends: the frontend with count 0, nothing else but rev-NAT', async (t) => {
  const e = lbEntries({ frontends: [fe('10.96.0.11', 53, [], { protocol: 'UDP' })] });
  const { svc } = decoded(e);
  t.same(svc, [{ k: { address: '10.96.0.11', port: 53, proto: 17 }, v: { slotBase: 0, count: 0, flags: 0, revNatId: 1, affinityTimeout: 0 }, slots: [] }]);
  t.equal(e.maps[LB4_SLOT_MAP].length, 0);
  t.equal(e.maps[LB4_BE_MAP].length, 0);
  t.equal(e.maps[LB4_RNAT_MAP].length, 1);
});

t.test('affinity: flag and timeout on the frontend; terminating backends flagged', async (t) => {
  const e = lbEntries({ frontends: [fe('10.96.0.12', 80, [be('10.42.0.9', 80, true)], { affinityTimeoutSeconds: 10800 })] });
  const { svc, be4 } = decoded(e);
  const front = svc[0]!;
  t.equal(front.v.flags, SVC_F_AFFINITY);
  t.equal(front.v.affinityTimeout, 10800);
  t.equal(be4.get(front.slots[0]!)?.flags, BE_F_TERMINATING);
});

t.test('IPv6 frontends go to the v6 maps; ids are shared across families', async (t) => {
  const e = lbEntries({ frontends: [fe('10.96.0.10', 80, [be('10.42.0.1')]), fe('fd00:96::a', 80, [be('fd00:42::1'), be('fd00:42::2')])] });
  const { svc, be4, be6 } = decoded(e);
  t.equal(e.maps[LB4_SVC_MAP].length, 1);
  t.equal(e.maps[LB6_SVC_MAP].length, 1);
  t.equal(e.maps[LB6_SLOT_MAP].length, 2);
  t.equal(e.maps[LB6_RNAT_MAP].length, 1);
  t.same([...be4.keys()], [1]);
  t.same([...be6.keys()].sort(), [2, 3]);
  const f6 = svc.find((s) => s.k.address === 'fd00:96::a')!;
  t.equal(f6.v.revNatId, 2);
  t.same(f6.v, { slotBase: 1, count: 2, flags: 0, revNatId: 2, affinityTimeout: 0 }, 'each family has its own slot array');
});

t.test('a backend shared by two frontends gets one id; duplicates collapse', async (t) => {
  const e = lbEntries({ frontends: [
    fe('10.96.0.1', 80, [be('10.42.0.1'), be('10.42.0.1')]),
    fe('10.96.0.2', 80, [be('10.42.0.1')]),
    fe('10.96.0.2', 80, [be('10.42.0.7')]),
  ] });
  t.equal(e.maps[LB4_BE_MAP].length, 1);
  t.equal(e.maps[LB4_SVC_MAP].length, 2, 'two frontends (the duplicate frontend is dropped)');
  t.equal(e.maps[LB4_SLOT_MAP].length, 2, 'of one slot each');
  t.equal(e.maps[LB4_RNAT_MAP].length, 2);
  t.equal(e.maps[LB4_BE_MAP].length, 1, 'TCP backend at one address:port has one id');
  const udp = lbEntries({ frontends: [fe('10.96.0.1', 80, [be('10.42.0.1')]), fe('10.96.0.1', 80, [be('10.42.0.1')], { protocol: 'UDP' })] });
  t.equal(udp.maps[LB4_BE_MAP].length, 2, 'the protocol is part of a backend');
});

t.test('ids are stable across runs and freed ids are reused only on a later run', async (t) => {
  const s1: LbState = { frontends: [fe('10.96.0.1', 80, [be('10.42.0.1'), be('10.42.0.2')]), fe('10.96.0.2', 80, [be('10.42.0.3')])] };
  const r1 = lbEntries(s1);
  const r1b = lbEntries(s1, r1.allocation);
  t.same(r1b.maps, r1.maps, 'same state, same allocation: identical entries');
  t.same(r1b.allocation, r1.allocation);

  // Remove 10.96.0.1 and backend .1, add a new frontend and backend.
  const s2: LbState = { frontends: [fe('10.96.0.2', 80, [be('10.42.0.3'), be('10.42.0.4')]), fe('10.96.0.3', 80, [])] };
  const r2 = lbEntries(s2, r1.allocation);
  t.equal(r2.allocation.frontends.get(l4Id(4, '10.96.0.2', 80, 'TCP')), r1.allocation.frontends.get(l4Id(4, '10.96.0.2', 80, 'TCP')), 'kept rev-NAT id');
  t.equal(r2.allocation.backends.get(l4Id(4, '10.42.0.3', 8080, 'TCP')), 3, 'kept backend id');
  t.equal(r2.allocation.backends.get(l4Id(4, '10.42.0.4', 8080, 'TCP')), 4, 'new backend: no id freed in this run');
  t.equal(r2.allocation.frontends.get(l4Id(4, '10.96.0.3', 80, 'TCP')), 3, 'new frontend: not the freed id 1');

  const s3: LbState = { frontends: [...s2.frontends, fe('10.96.0.4', 80, [be('10.42.0.5')])] };
  const r3 = lbEntries(s3, r2.allocation);
  t.equal(r3.allocation.backends.get(l4Id(4, '10.42.0.5', 8080, 'TCP')), 1, 'a later run reuses the lowest freed backend id');
  t.equal(r3.allocation.frontends.get(l4Id(4, '10.96.0.4', 80, 'TCP')), 1, 'and the lowest freed rev-NAT id');
});

t.test('slot assignment keeps slots, fills holes, compacts from the end', async (t) => {
  t.same(assignSlots([], ['a', 'b', 'c']), ['a', 'b', 'c']);
  t.same(assignSlots(['a', 'b', 'c'], ['a', 'b', 'c', 'd']), ['a', 'b', 'c', 'd'], 'append');
  t.same(assignSlots(['a', 'b', 'c', 'd'], ['a', 'c', 'd']), ['a', 'd', 'c'], 'hole takes the last');
  t.same(assignSlots(['a', 'b', 'c', 'd'], ['a', 'c', 'd', 'e']), ['a', 'e', 'c', 'd'], 'hole takes a new one');
  t.same(assignSlots(['a', 'b', 'c', 'd'], ['a', 'b']), ['a', 'b'], 'tail removed');
  t.same(assignSlots(['a', 'b', 'c', 'd'], ['d']), ['d']);
  t.same(assignSlots(['a', 'b', 'c', 'd', 'e'], ['b', 'e']), ['e', 'b']);
  t.same(assignSlots(['a', 'b'], []), []);
  // Property: the result holds exactly the wanted backends, once each.
  const letters = 'abcdefgh'.split('');
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let i = 0; i < 500; i++) {
    const prev = letters.filter(() => rnd() < 0.5).sort(() => rnd() - 0.5);
    const want = letters.filter(() => rnd() < 0.5);
    const out = assignSlots(prev, want);
    if (out.length !== want.length || [...out].sort().join() !== [...want].sort().join()) {
      t.fail(`assignSlots(${prev}, ${want}) = ${out}`);
      return;
    }
    // A kept backend keeps its slot unless its slot is past the new end (then it fills a hole).
    for (const [i, b] of prev.entries()) {
      if (want.includes(b) && i < out.length && out[i] !== b) {
        t.fail(`kept backend ${b} moved: ${prev} -> ${out}`);
        return;
      }
    }
  }
  t.pass('500 random cases keep exactly the wanted backends');
});

t.test('a backend change touches few entries (reconciled)', async (t) => {
  const backends = Array.from({ length: 10 }, (_, i) => be(`10.42.0.${i + 1}`));
  const many = Array.from({ length: 100 }, (_, i) => fe(`10.96.1.${i}`, 80, backends.slice(0, 3 + (i % 7))));
  const maps = memMaps();
  const r1 = lbEntries({ frontends: many });
  const w1 = reconcile(lbPlans(r1.maps, (n) => maps[n]));
  t.equal(w1.deleted + w1.updated, 0);
  t.ok(w1.added > 0);

  // Remove one backend from one frontend (10.96.1.9 has 3 + 2 = 5 backends).
  const changed = many.map((f) => (f.address === '10.96.1.9' ? { ...f, backends: Backends.from([...f.backends].filter((b) => b.address !== '10.42.0.2')) } : f));
  const r2 = lbEntries({ frontends: changed }, r1.allocation);
  const w2 = reconcile(lbPlans(r2.maps, (n) => maps[n]));
  t.same({ added: w2.added, updated: w2.updated, deleted: w2.deleted }, { added: 0, updated: 2, deleted: 1 }, 'hole slot + count updated, last slot deleted');

  // Add a backend to one frontend.
  const added = changed.map((f) => (f.address === '10.96.1.0' ? { ...f, backends: Backends.from([...f.backends, be('10.42.9.9')]) } : f));
  const r3 = lbEntries({ frontends: added }, r2.allocation);
  const w3 = reconcile(lbPlans(r3.maps, (n) => maps[n]));
  // Its range (3 slots, the next frontend's right after) cannot grow in place: 4 slots elsewhere, then the switch, then the old 3 go.
  t.same({ added: w3.added, updated: w3.updated, deleted: w3.deleted }, { added: 5, updated: 1, deleted: 3 }, 'backend + new range added, frontend switched, old range emptied');
  const moved = r3.allocation.bases.get(l4Id(4, '10.96.1.0', 80, 'TCP'))!;
  t.ok(moved > r2.allocation.bases.get(l4Id(4, '10.96.1.99', 80, 'TCP'))!, 'the new range is past every other');
  const r3b = lbEntries({ frontends: added.map((f) => (f.address === '10.96.1.0' ? { ...f, backends: Backends.from([...f.backends, be('10.42.9.8')]) } : f)) }, r3.allocation);
  t.equal(r3b.allocation.bases.get(l4Id(4, '10.96.1.0', 80, 'TCP')), moved, 'the last range grows in place');
  t.equal(lbEntries({ frontends: added }, r3b.allocation).allocation.bases.get(l4Id(4, '10.96.1.0', 80, 'TCP')), moved, 'and shrinks in place');

  // Scale a backend out of every frontend: each frontend loses one slot, one backend entry goes.
  const gone = added.map((f) => ({ ...f, backends: Backends.from([...f.backends].filter((b) => b.address !== '10.42.0.1')) }));
  const r4 = lbEntries({ frontends: gone }, r3.allocation);
  const w4 = reconcile(lbPlans(r4.maps, (n) => maps[n]));
  t.equal(w4.byMap[LB4_BE_MAP]!.deleted, 1);
  t.equal(w4.byMap[LB4_SLOT_MAP]!.deleted, 100, 'one slot per frontend');
  t.equal(w4.byMap[LB4_SLOT_MAP]!.updated, 100, 'the hole filled from the last slot');
  t.equal(w4.byMap[LB4_SVC_MAP]!.updated, 100, 'the count per frontend');
});

t.test('allocation recovered from pinned maps: a restart writes nothing', async (t) => {
  const state: LbState = { frontends: [
    fe('10.96.0.1', 80, [be('10.42.0.1'), be('10.42.0.2'), be('10.42.0.3')], { affinityTimeoutSeconds: 60 }),
    fe('10.96.0.2', 53, [be('10.42.0.1', 53)], { protocol: 'UDP' }),
    fe('fd00::1', 443, [be('fd00::42', 8443)]),
    fe('10.96.0.3', 80, []),
  ] };
  const maps = memMaps();
  let r = lbEntries(state);
  reconcile(lbPlans(r.maps, (n) => maps[n]));
  // Churn so the slot order is no longer the model's order.
  const churned: LbState = { frontends: state.frontends.map((f, i) => (i === 0 ? { ...f, backends: Backends.from([be('10.42.0.3'), be('10.42.0.4'), be('10.42.0.2')]) } : f)) };
  r = lbEntries(churned, r.allocation);
  reconcile(lbPlans(r.maps, (n) => maps[n]));

  const recovered = allocationFromMaps(Object.fromEntries(LB_CONFIG_MAPS.map((n) => [n, maps[n].entries()])));
  const again = lbEntries(churned, recovered);
  const w = reconcile(lbPlans(again.maps, (n) => maps[n]));
  t.same({ added: w.added, updated: w.updated, deleted: w.deleted }, { added: 0, updated: 0, deleted: 0 });
  t.same(again.allocation.slots, r.allocation.slots);
  t.same(again.allocation.bases, r.allocation.bases, 'and every slot range');
  t.same(allocationFromMaps({}), emptyAllocation());
});

t.test('write phases', async (t) => {
  const e = lbEntries({ frontends: [fe('10.96.0.1', 80, [be('10.42.0.1')]), fe('fd00::1', 80, [be('fd00::2')])] });
  for (const m of [LB4_SVC_MAP, LB6_SVC_MAP] as const) for (const { key } of e.maps[m]) t.equal(lbPhase(m, key), 3);
  for (const m of [LB4_SLOT_MAP, LB6_SLOT_MAP] as const) for (const { key } of e.maps[m]) t.equal(lbPhase(m, key), 2);
  t.equal(lbPhase(LB4_BE_MAP, u32Codec.encode(1)), 0);
  t.equal(lbPhase(LB6_BE_MAP, u32Codec.encode(1)), 0);
  t.equal(lbPhase(LB4_RNAT_MAP, u32Codec.encode(1)), 1);
});

t.test('deterministic: equal input, equal output', async (t) => {
  const state: LbState = { frontends: [fe('10.96.0.2', 80, [be('10.42.0.2'), be('10.42.0.1')]), fe('10.96.0.1', 80, [be('10.42.0.3')])] };
  const copy: LbState = { frontends: state.frontends.map((f) => ({ ...f, backends: Backends.from([...f.backends]) })) };
  t.same(lbEntries(state), lbEntries(copy));
});

t.test('slot ranges: a range freed by a run is not reused in the same run (a reader may still follow it)', async (t) => {
  const a = fe('10.96.0.1', 80, [be('10.42.0.1'), be('10.42.0.2')]);
  const b = fe('10.96.0.2', 80, [be('10.42.0.3'), be('10.42.0.4')]);
  const r1 = lbEntries({ frontends: [a] });
  t.equal(r1.allocation.bases.get(l4Id(4, '10.96.0.1', 80, 'TCP')), 1);
  const r2 = lbEntries({ frontends: [b] }, r1.allocation);
  t.equal(r2.allocation.bases.get(l4Id(4, '10.96.0.2', 80, 'TCP')), 3, 'not the range 10.96.0.1 held until now');
  const c = fe('10.96.0.3', 80, [be('10.42.0.5'), be('10.42.0.6')]);
  const r3 = lbEntries({ frontends: [b, c] }, r2.allocation);
  t.equal(r3.allocation.bases.get(l4Id(4, '10.96.0.3', 80, 'TCP')), 1, 'a later run reuses it');
  const small = new SlotRanges(8);
  t.equal(placeSlots(small, 0, 0, 4), 1);
  t.equal(placeSlots(small, 1, 4, 6), 1, 'grown in place');
  t.throws(() => placeSlots(small, 1, 6, 8), /slot array is full \(6 of 7 slots in use, 8 more wanted\): fewer endpoints, or a build with a larger KL_LB_SLOT_MAX/);
});
