import t from 'tap';
import type { LbBackend, LbFrontend, LbState } from '../../../../agent/model/types.ts';
import {
  allocationFromMaps, assignSlots, emptyAllocation, lbEntries, lbPhase, lbPlans, l4Id, type LbEntries,
} from '../../../../agent/datapath/lb-entries.ts';
import {
  LB4_BE_MAP, LB4_RNAT_MAP, LB4_SVC_MAP, LB6_BE_MAP, LB6_RNAT_MAP, LB6_SVC_MAP, LB_CONFIG_MAPS,
  BE_F_TERMINATING, SVC_F_AFFINITY, lb4BackendCodec, lb4KeyCodec, lb4RevNatCodec, lb6BackendCodec, lb6KeyCodec,
  svcValueCodec, u32Codec, type LbConfigMapName,
} from '../../../../agent/datapath/lb-layout.ts';
import { MemoryMap, reconcile } from '../../../../agent/datapath/reconcile.ts';

const be = (address: string, port = 8080, terminating = false): LbBackend => ({ address, port, terminating });

function fe(address: string, port: number, backends: LbBackend[], extra: Partial<LbFrontend> = {}): LbFrontend {
  return {
    service: 'default/svc', portName: '', type: 'ClusterIP', family: address.includes(':') ? 6 : 4,
    address, port, protocol: 'TCP', backends, affinityTimeoutSeconds: 0, ...extra,
  };
}

function decoded(e: LbEntries) {
  const svc = [...e.maps[LB4_SVC_MAP].map((x) => ({ k: lb4KeyCodec.decode(x.key), v: svcValueCodec.decode(x.value) })),
    ...e.maps[LB6_SVC_MAP].map((x) => ({ k: lb6KeyCodec.decode(x.key), v: svcValueCodec.decode(x.value) }))];
  const be4 = new Map(e.maps[LB4_BE_MAP].map((x) => [u32Codec.decode(x.key), lb4BackendCodec.decode(x.value)]));
  const be6 = new Map(e.maps[LB6_BE_MAP].map((x) => [u32Codec.decode(x.key), lb6BackendCodec.decode(x.value)]));
  return { svc, be4, be6 };
}

function memMaps(): Record<LbConfigMapName, MemoryMap> {
  return Object.fromEntries(LB_CONFIG_MAPS.map((n) => [n, new MemoryMap(n)])) as Record<LbConfigMapName, MemoryMap>;
}

t.test('one frontend: slot 0 with the count, one slot per backend, backends and rev-NAT', async (t) => {
  const state: LbState = { frontends: [fe('10.96.0.10', 80, [be('10.42.0.1'), be('10.42.0.2'), be('10.42.0.3')])] };
  const e = lbEntries(state);
  const { svc, be4 } = decoded(e);
  t.equal(svc.length, 4);
  const front = svc.find((s) => s.k.slot === 0)!;
  t.same(front.k, { address: '10.96.0.10', port: 80, proto: 6, slot: 0 });
  t.same(front.v, { backendId: 0, count: 3, flags: 0, revNatId: 1, affinityTimeout: 0 });
  const slots = svc.filter((s) => s.k.slot > 0).sort((a, b) => a.k.slot - b.k.slot);
  t.same(slots.map((s) => s.k.slot), [1, 2, 3]);
  t.same(slots.map((s) => be4.get(s.v.backendId)?.address), ['10.42.0.1', '10.42.0.2', '10.42.0.3']);
  t.ok(slots.every((s) => s.v.revNatId === 1 && s.v.count === 0));
  t.same(e.maps[LB4_RNAT_MAP].map((x) => [u32Codec.decode(x.key), lb4RevNatCodec.decode(x.value)]), [[1, { address: '10.96.0.10', port: 80 }]]);
  t.same(e.maps[LB6_SVC_MAP], []);
});

t.test('no backends: the frontend with count 0, nothing else but rev-NAT', async (t) => {
  const e = lbEntries({ frontends: [fe('10.96.0.11', 53, [], { protocol: 'UDP' })] });
  const { svc } = decoded(e);
  t.same(svc, [{ k: { address: '10.96.0.11', port: 53, proto: 17, slot: 0 }, v: { backendId: 0, count: 0, flags: 0, revNatId: 1, affinityTimeout: 0 } }]);
  t.equal(e.maps[LB4_BE_MAP].length, 0);
  t.equal(e.maps[LB4_RNAT_MAP].length, 1);
});

t.test('affinity: flag and timeout on slot 0 only; terminating backends flagged', async (t) => {
  const e = lbEntries({ frontends: [fe('10.96.0.12', 80, [be('10.42.0.9', 80, true)], { affinityTimeoutSeconds: 10800 })] });
  const { svc, be4 } = decoded(e);
  const front = svc.find((s) => s.k.slot === 0)!;
  t.equal(front.v.flags, SVC_F_AFFINITY);
  t.equal(front.v.affinityTimeout, 10800);
  const slot = svc.find((s) => s.k.slot === 1)!;
  t.equal(slot.v.flags, 0);
  t.equal(slot.v.affinityTimeout, 0);
  t.equal(be4.get(slot.v.backendId)?.flags, BE_F_TERMINATING);
});

t.test('IPv6 frontends go to the v6 maps; ids are shared across families', async (t) => {
  const e = lbEntries({ frontends: [fe('10.96.0.10', 80, [be('10.42.0.1')]), fe('fd00:96::a', 80, [be('fd00:42::1'), be('fd00:42::2')])] });
  const { svc, be4, be6 } = decoded(e);
  t.equal(e.maps[LB4_SVC_MAP].length, 2);
  t.equal(e.maps[LB6_SVC_MAP].length, 3);
  t.equal(e.maps[LB6_RNAT_MAP].length, 1);
  t.same([...be4.keys()], [1]);
  t.same([...be6.keys()].sort(), [2, 3]);
  const f6 = svc.find((s) => s.k.address === 'fd00:96::a' && s.k.slot === 0)!;
  t.equal(f6.v.revNatId, 2);
  t.equal(f6.v.count, 2);
});

t.test('a backend shared by two frontends gets one id; duplicates collapse', async (t) => {
  const e = lbEntries({ frontends: [
    fe('10.96.0.1', 80, [be('10.42.0.1'), be('10.42.0.1')]),
    fe('10.96.0.2', 80, [be('10.42.0.1')]),
    fe('10.96.0.2', 80, [be('10.42.0.7')]),
  ] });
  t.equal(e.maps[LB4_BE_MAP].length, 1);
  t.equal(e.maps[LB4_SVC_MAP].length, 4, 'two frontends of one slot each (the duplicate frontend is dropped)');
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
  const changed = many.map((f) => (f.address === '10.96.1.9' ? { ...f, backends: f.backends.filter((b) => b.address !== '10.42.0.2') } : f));
  const r2 = lbEntries({ frontends: changed }, r1.allocation);
  const w2 = reconcile(lbPlans(r2.maps, (n) => maps[n]));
  t.same({ added: w2.added, updated: w2.updated, deleted: w2.deleted }, { added: 0, updated: 2, deleted: 1 }, 'hole slot + count updated, last slot deleted');

  // Add a backend to one frontend.
  const added = changed.map((f) => (f.address === '10.96.1.0' ? { ...f, backends: [...f.backends, be('10.42.9.9')] } : f));
  const r3 = lbEntries({ frontends: added }, r2.allocation);
  const w3 = reconcile(lbPlans(r3.maps, (n) => maps[n]));
  t.same({ added: w3.added, updated: w3.updated, deleted: w3.deleted }, { added: 2, updated: 1, deleted: 0 }, 'backend + slot added, count updated');

  // Scale a backend out of every frontend: each frontend loses one slot, one backend entry goes.
  const gone = added.map((f) => ({ ...f, backends: f.backends.filter((b) => b.address !== '10.42.0.1') }));
  const r4 = lbEntries({ frontends: gone }, r3.allocation);
  const w4 = reconcile(lbPlans(r4.maps, (n) => maps[n]));
  t.equal(w4.byMap[LB4_BE_MAP]!.deleted, 1);
  t.equal(w4.byMap[LB4_SVC_MAP]!.deleted, 100, 'one slot per frontend');
  t.equal(w4.byMap[LB4_SVC_MAP]!.updated, 200, 'hole + count per frontend');
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
  const churned: LbState = { frontends: state.frontends.map((f, i) => (i === 0 ? { ...f, backends: [be('10.42.0.3'), be('10.42.0.4'), be('10.42.0.2')] } : f)) };
  r = lbEntries(churned, r.allocation);
  reconcile(lbPlans(r.maps, (n) => maps[n]));

  const recovered = allocationFromMaps(Object.fromEntries(LB_CONFIG_MAPS.map((n) => [n, maps[n].entries()])));
  const again = lbEntries(churned, recovered);
  const w = reconcile(lbPlans(again.maps, (n) => maps[n]));
  t.same({ added: w.added, updated: w.updated, deleted: w.deleted }, { added: 0, updated: 0, deleted: 0 });
  t.same(again.allocation.slots, r.allocation.slots);
  t.same(allocationFromMaps({}), emptyAllocation());
});

t.test('write phases', async (t) => {
  const e = lbEntries({ frontends: [fe('10.96.0.1', 80, [be('10.42.0.1')]), fe('fd00::1', 80, [be('fd00::2')])] });
  for (const m of [LB4_SVC_MAP, LB6_SVC_MAP] as const) {
    const codec = m === LB4_SVC_MAP ? lb4KeyCodec : lb6KeyCodec;
    for (const { key } of e.maps[m]) t.equal(lbPhase(m, key), codec.decode(key).slot === 0 ? 3 : 2);
  }
  t.equal(lbPhase(LB4_BE_MAP, u32Codec.encode(1)), 0);
  t.equal(lbPhase(LB6_BE_MAP, u32Codec.encode(1)), 0);
  t.equal(lbPhase(LB4_RNAT_MAP, u32Codec.encode(1)), 1);
});

t.test('deterministic: equal input, equal output', async (t) => {
  const state: LbState = { frontends: [fe('10.96.0.2', 80, [be('10.42.0.2'), be('10.42.0.1')]), fe('10.96.0.1', 80, [be('10.42.0.3')])] };
  t.same(lbEntries(state), lbEntries(structuredClone(state)));
});
