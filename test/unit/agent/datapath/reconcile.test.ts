import t from 'tap';
import type { LbBackend, LbFrontend, LbState } from '../../../../agent/model/types.ts';
import { lbEntries, lbPlans } from '../../../../agent/datapath/lb-entries.ts';
import { LB4_SLOT_MAP, LB4_SVC_MAP, LB_CONFIG_MAPS } from '../../../../agent/datapath/lb-layout.ts';
import { MemoryMap, planWrites, reconcile, repair, type MapPlan } from '../../../../agent/datapath/reconcile.ts';
import { lbMaps } from '../../../lib/lb-maps.ts';
import { Backends } from '../../../../agent/model/backends.ts';

const b = (...xs: number[]) => Uint8Array.from(xs);

t.test('writes only the difference and counts it', async (t) => {
  const m = new MemoryMap('m');
  m.update(b(1), b(10));
  m.update(b(2), b(20));
  m.update(b(3), b(30));
  m.log.length = 0;
  const r = reconcile([{ name: 'm', map: m, desired: [{ key: b(1), value: b(10) }, { key: b(2), value: b(21) }, { key: b(4), value: b(40) }] }]);
  t.same({ added: r.added, updated: r.updated, deleted: r.deleted }, { added: 1, updated: 1, deleted: 1 });
  t.same(r.byMap.m, { added: 1, updated: 1, deleted: 1 });
  t.same(m.log.map((l) => `${l.op}:${l.key}`), ['update:02', 'update:04', 'delete:03'], 'upserts before deletes; unchanged key untouched');
  t.same([...m.data.keys()].sort(), ['01', '02', '04']);
  const again = reconcile([{ name: 'm', map: m, desired: [{ key: b(1), value: b(10) }, { key: b(2), value: b(21) }, { key: b(4), value: b(40) }] }]);
  t.same({ added: again.added, updated: again.updated, deleted: again.deleted }, { added: 0, updated: 0, deleted: 0 }, 'idempotent');
});

t.test('phases: upserts by increasing phase across maps, deletes by decreasing phase', async (t) => {
  const a = new MemoryMap('a');
  const c = new MemoryMap('c');
  a.update(b(9), b(0)); // phase 0, to delete
  c.update(b(8), b(0)); // phase 5, to delete
  const plans: MapPlan[] = [
    { name: 'c', map: c, desired: [{ key: b(1), value: b(1) }, { key: b(2), value: b(2) }], phase: (k) => (k[0] === 1 ? 5 : 3) },
    { name: 'a', map: a, desired: [{ key: b(3), value: b(3) }] },
  ];
  t.same(planWrites(plans).map((o) => `${o.plan.name}:${o.kind}:${o.key[0]}`), [
    'a:add:3', 'c:add:2', 'c:add:1', 'c:delete:8', 'a:delete:9',
  ]);
  t.throws(() => planWrites([{ name: 'x', map: new MemoryMap(), desired: [{ key: b(1), value: b(1) }, { key: b(1), value: b(2) }] }]), /same key twice/);
});

// ---- the LB maps: a reader between any two writes sees a consistent datapath ----

const be = (address: string, port = 80): LbBackend => ({ address, port, terminating: false });
const fe = (address: string, backends: LbBackend[], port = 80): LbFrontend => ({
  service: 'ns/s', portName: '', type: 'ClusterIP', family: address.includes(':') ? 6 : 4, address, port,
  protocol: 'TCP', backends: Backends.from(backends), affinityTimeoutSeconds: 0,
});

t.test('repair: drift written back in reconcile order, counted as adds, updates and deletes', async (t) => {
  const writes: string[] = [];
  const log = (op: string, name: string, key: Uint8Array) => writes.push(`${name}:${op}:${key[0]}`);
  const a = new MemoryMap('a', log), c = new MemoryMap('c', log);
  a.update(b(9), b(0));
  c.update(b(8), b(0));
  c.update(b(2), b(7));
  writes.length = 0;
  const r = repair([
    { name: 'c', map: c, missing: [{ key: b(1), value: b(1) }], changed: [{ key: b(2), value: b(2) }], extra: [b(8)], phase: (k) => (k[0] === 1 || k[0] === 8 ? 5 : 3) },
    { name: 'a', map: a, missing: [{ key: b(3), value: b(3) }], changed: [], extra: [b(9)] },
  ]);
  t.same(writes, ['a:update:3', 'c:update:2', 'c:update:1', 'c:delete:8', 'a:delete:9'], 'upserts by increasing phase, then deletes by decreasing phase');
  t.same({ added: r.added, updated: r.updated, deleted: r.deleted }, { added: 2, updated: 1, deleted: 2 });
  t.same(r.byMap, { c: { added: 1, updated: 1, deleted: 1 }, a: { added: 1, updated: 0, deleted: 1 } });
  t.same(c.get(b(2)), b(2));
  writes.length = 0;
  const none = repair([{ name: 'a', map: a, missing: [], changed: [], extra: [] }]);
  t.same([none.added, none.updated, none.deleted, writes.length], [0, 0, 0, 0], 'no drift: no write');
});

t.test('LB maps: every intermediate state is consistent, and a second run writes nothing', async (t) => {
  const maps = lbMaps();
  const states: LbState[] = [
    { frontends: [fe('10.96.0.1', [be('10.42.0.1'), be('10.42.0.2')]), fe('fd00::1', [be('fd00::a')])] },
    { frontends: [fe('10.96.0.1', [be('10.42.0.3')]), fe('10.96.0.2', [be('10.42.0.2'), be('10.42.0.4'), be('10.42.0.5')]), fe('fd00::1', [be('fd00::b'), be('fd00::c')])] },
    { frontends: [fe('10.96.0.2', [be('10.42.0.6')]), fe('fd00::1', [])] },
    { frontends: [fe('10.96.0.2', [be('10.42.0.1'), be('10.42.0.2'), be('10.42.0.3'), be('10.42.0.4')]), fe('10.96.0.1', [be('10.42.0.1')])] },
    { frontends: [] },
  ];
  let alloc;
  for (const [i, s] of states.entries()) {
    const e = lbEntries(s, alloc);
    alloc = e.allocation;
    reconcile(lbPlans(e.maps, (n) => maps[n])); // throws from the consistency check on a bad order
    const again = reconcile(lbPlans(e.maps, (n) => maps[n]));
    t.same({ added: again.added, updated: again.updated, deleted: again.deleted }, { added: 0, updated: 0, deleted: 0 }, `state ${i}: idempotent`);
  }
  t.ok(LB_CONFIG_MAPS.every((n) => maps[n].data.size === 0), 'empty state empties every map');
});

t.test('LB maps: reverse order would be caught (the check works)', async (t) => {
  const maps = lbMaps();
  const e = lbEntries({ frontends: [fe('10.96.0.1', [be('10.42.0.1')])] });
  // Write the frontend before its slot and backend, or the slot before its backend: the checker must object.
  const front = e.maps[LB4_SVC_MAP][0]!;
  t.throws(() => maps[LB4_SVC_MAP].update(front.key, front.value), /slot 1 missing/);
  const slot = e.maps[LB4_SLOT_MAP][0]!;
  t.throws(() => maps[LB4_SLOT_MAP].update(slot.key, slot.value), /missing backend 1/);
});
