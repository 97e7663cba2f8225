// The full build (LbTable.full: packed entries + table in one pass) and the
// first apply without a diff (writeFresh) against the reference path
// (lbEntries + reconcile): byte-identical map contents, the same writes in
// the same order, the same counts, ids, slots and table.
import t from 'tap';
import { emptyAllocation, lbEntries, lbPlans, type LbAllocation } from '../../../../agent/datapath/lb-entries.ts';
import { LbTable, lbDeltas, lbFirst, lbFullPlans } from '../../../../agent/datapath/lb-table.ts';
import { MemoryMap, reconcile, reconcileDelta, writeFresh } from '../../../../agent/datapath/reconcile.ts';
import { LB_CONFIG_MAPS, addrBytes, toHex, type LbConfigMapName } from '../../../../agent/datapath/lb-layout.ts';
import { frontendSortKey } from '../../../../agent/model/services.ts';
import { ipv4Value } from '../../../../agent/model/ip.ts';
import type { LbBackend, LbFrontend, LbState } from '../../../../agent/model/types.ts';
import { changesBetween, lbMaps } from '../../../lib/lb-maps.ts';
import { Backends } from '../../../../agent/model/backends.ts';

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a * 1664525 + 1013904223) >>> 0;
    let x = a ^ (a >>> 16);
    x = Math.imul(x, 0x45d9f3b) >>> 0;
    return ((x ^ (x >>> 16)) >>> 0) / 4294967296;
  };
}

/** Like lbMaps, with writePacked (entries unpacked into update(), so the check runs after each). */
function packedMaps(calls: string[]): Record<LbConfigMapName, MemoryMap> {
  const maps = lbMaps();
  for (const n of LB_CONFIG_MAPS) {
    const m = maps[n];
    Object.assign(m, {
      writePacked(keys: Uint8Array, values: Uint8Array, count: number) {
        calls.push(`${n}:${count}`);
        const ks = keys.length / count, vs = values.length / count;
        for (let i = 0; i < count; i++) m.update(keys.subarray(i * ks, (i + 1) * ks), values.subarray(i * vs, (i + 1) * vs));
      },
    });
  }
  return maps;
}

const V4_FRONTS = ['10.96.0.1', '10.96.0.2', '10.96.7.200', '192.168.255.255', '0.0.0.0', '::ffff:10.96.0.9'];
const V4_BACKENDS = ['10.42.0.1', '10.42.0.2', '10.42.1.3', '10.42.255.254', '172.16.0.1', '255.255.255.255', '::ffff:10.42.0.7'];
const V6_FRONTS = ['fd00::1', 'fd00::2', '2001:db8::a'];
const V6_BACKENDS = ['fd00:42::1', 'fd00:42::2', 'fd00:42::3', '2001:db8::1:2'];

/** Random states, with what the model never gives too: frontends and backends listed twice, unsorted lists. */
function randomState(rnd: () => number): LbState {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const frontends: LbFrontend[] = [];
  const n = Math.floor(rnd() * 9);
  for (let i = 0; i < n; i++) {
    const family = rnd() < 0.7 ? 4 : 6;
    const backends: LbBackend[] = [];
    const nb = Math.floor(rnd() * 6);
    for (let j = 0; j < nb; j++) {
      backends.push({ address: pick(family === 4 ? V4_BACKENDS : V6_BACKENDS), port: pick([80, 8080, 65535]), terminating: rnd() < 0.2 });
    }
    frontends.push({
      service: `ns/s${i}`, portName: '', type: 'ClusterIP', family, address: pick(family === 4 ? V4_FRONTS : V6_FRONTS),
      port: pick([80, 53, 443]), protocol: pick(['TCP', 'UDP'] as const), backends: Backends.from(backends), affinityTimeoutSeconds: rnd() < 0.2 ? 10800 : 0,
    });
  }
  if (rnd() < 0.5) frontends.sort((a, b) => (frontendSortKey(a) < frontendSortKey(b) ? -1 : frontendSortKey(a) > frontendSortKey(b) ? 1 : 0));
  return { frontends };
}

const dump = (maps: Record<LbConfigMapName, MemoryMap>) =>
  Object.fromEntries(LB_CONFIG_MAPS.map((n) => [n, [...maps[n].data.entries()].map(([k, [, v]]) => `${k}=${toHex(v)}`).sort()]));
const allocText = (a: LbAllocation) => JSON.stringify([[...a.backends], [...a.frontends], [...a.slots]]);
const sortedAllocText = (a: LbAllocation) => JSON.stringify([[...a.backends].sort(), [...a.frontends].sort(), [...a.slots].sort()]);

/** Every write of every map, in the order they happened (MemoryMap logs are per map: merge by a global counter). */
function ordered(maps: Record<LbConfigMapName, MemoryMap>): { seq: string[] } & Record<LbConfigMapName, MemoryMap> {
  const seq: string[] = [];
  for (const n of LB_CONFIG_MAPS) {
    const m = maps[n];
    const update = m.update.bind(m), del = m.delete.bind(m);
    m.update = (k, v) => {
      update(k, v);
      seq.push(`${n} update ${toHex(k)}=${toHex(v)}`);
    };
    m.delete = (k) => {
      del(k);
      seq.push(`${n} delete ${toHex(k)}`);
    };
  }
  return Object.assign(maps, { seq });
}

/** Sorted, deduplicated (first wins) frontends: what LbModel gives. */
function modelState(s: LbState): LbState {
  const m = new Map<string, LbFrontend>();
  for (const f of s.frontends) if (!m.has(frontendSortKey(f))) m.set(frontendSortKey(f), f);
  return { frontends: [...m.keys()].sort().map((k) => m.get(k)!) };
}

t.test('ipv4Value: exactly the dotted quads addrBytes reads as four bytes, the same value', async (t) => {
  for (const a of ['0.0.0.0', '1.2.3.4', '10.96.0.1', '255.255.255.255', '192.168.100.9']) {
    t.equal(ipv4Value(a), Buffer.from(addrBytes(a, 4)).readUInt32BE(0), a);
  }
  for (const a of ['', '1.2.3', '1.2.3.4.5', '01.2.3.4', '1.2.3.04', '256.1.1.1', '1.2.3.4 ', ' 1.2.3.4', '1..2.3', '1.2.3.', '::ffff:1.2.3.4', 'a.b.c.d', '1.2.3.1000']) {
    t.equal(ipv4Value(a), -1, JSON.stringify(a));
  }
});

t.test('first apply into empty maps: writeFresh of LbTable.full == lbEntries + reconcile, write for write', async (t) => {
  let cases = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const rnd = prng(seed);
    // A previous allocation (ids and slots to keep, ids not to reuse) half of the time.
    const prevState = rnd() < 0.5 ? randomState(rnd) : { frontends: [] };
    const prev = lbEntries(prevState).allocation;
    const state = randomState(rnd);

    const ref = ordered(lbMaps());
    const e = lbEntries(state, prev);
    const rRef = reconcile(lbPlans(e.maps, (n) => ref[n]));

    const calls: string[] = [];
    const fast = ordered(packedMaps(calls));
    const { table, packed } = LbTable.full(state, prev);
    const rFast = writeFresh([...LB_CONFIG_MAPS], packed, (n) => fast[n as LbConfigMapName]);

    const same = JSON.stringify(dump(fast)) === JSON.stringify(dump(ref)) && JSON.stringify(fast.seq) === JSON.stringify(ref.seq)
      && JSON.stringify(rFast) === JSON.stringify(rRef) && allocText(table.allocation) === allocText(e.allocation);
    if (!same) {
      t.same(dump(fast), dump(ref), `seed ${seed}: map contents`);
      t.same(fast.seq, ref.seq, `seed ${seed}: writes and their order`);
      t.same(rFast, rRef, `seed ${seed}: counts`);
      t.equal(allocText(table.allocation), allocText(e.allocation), `seed ${seed}: allocation`);
      return;
    }
    // One writePacked per non-empty run, never a run of zero.
    t.ok(calls.every((c) => !c.endsWith(':0')), `seed ${seed}: no empty runs`);
    cases++;
  }
  t.equal(cases, 300);
});

t.test('full apply over existing maps: reconcile(lbFullPlans) == reconcile(lbPlans(lbEntries)), write for write', async (t) => {
  for (let seed = 1; seed <= 200; seed++) {
    const rnd = prng(1000 + seed);
    const ref = ordered(lbMaps()), fast = ordered(lbMaps());
    let allocRef = emptyAllocation(), allocFast = emptyAllocation();
    for (let step = 0; step < 6; step++) {
      const state = randomState(rnd);
      const e = lbEntries(state, allocRef);
      const rRef = reconcile(lbPlans(e.maps, (n) => ref[n]));
      const { table, packed } = LbTable.full(state, allocFast);
      const rFast = reconcile(lbFullPlans(packed, (n) => fast[n]));
      allocRef = e.allocation;
      allocFast = table.allocation;
      if (JSON.stringify(fast.seq) !== JSON.stringify(ref.seq) || JSON.stringify(rFast) !== JSON.stringify(rRef) || allocText(allocFast) !== allocText(allocRef)) {
        t.same(fast.seq, ref.seq, `seed ${seed} step ${step}: writes`);
        t.same(rFast, rRef, `seed ${seed} step ${step}: counts`);
        t.equal(allocText(allocFast), allocText(allocRef), `seed ${seed} step ${step}: allocation`);
        return;
      }
    }
  }
  t.pass('200 sequences of 6 full applies equal');
});

t.test('the table of LbTable.full behaves as new LbTable(state, allocation) under later changes', async (t) => {
  let steps = 0;
  for (let seed = 1; seed <= 60; seed++) {
    const rnd = prng(5000 + seed);
    let state = modelState(randomState(rnd));
    const e = lbEntries(state);
    const refMaps = lbMaps(), fastMaps = lbMaps();
    reconcile(lbPlans(e.maps, (n) => refMaps[n]));
    const { table: fast, packed } = LbTable.full(state);
    writeFresh([...LB_CONFIG_MAPS], packed, (n) => fastMaps[n as LbConfigMapName]);
    const ref = new LbTable(state, e.allocation);
    for (let step = 0; step < 30; step++) {
      const next = modelState(randomState(rnd));
      const changes = changesBetween(state, next);
      const rRef = reconcileDelta(lbDeltas(ref.change(changes), (n) => refMaps[n]));
      const rFast = reconcileDelta(lbDeltas(fast.change(changes), (n) => fastMaps[n]));
      if (JSON.stringify(rFast) !== JSON.stringify(rRef) || JSON.stringify(dump(fastMaps)) !== JSON.stringify(dump(refMaps))
        || sortedAllocText(fast.allocation) !== sortedAllocText(ref.allocation) || JSON.stringify(fast.state()) !== JSON.stringify(ref.state())) {
        t.same(dump(fastMaps), dump(refMaps), `seed ${seed} step ${step}: maps`);
        t.same(rFast, rRef, `seed ${seed} step ${step}: counts`);
        t.equal(sortedAllocText(fast.allocation), sortedAllocText(ref.allocation), `seed ${seed} step ${step}: allocation`);
        return;
      }
      state = next;
      steps++;
    }
  }
  t.equal(steps, 60 * 30);
});

t.test('writeFresh refuses runs out of phase order and buffers of the wrong size, before writing anything', async (t) => {
  const maps = Object.fromEntries(LB_CONFIG_MAPS.map((n) => [n, new MemoryMap(n)])) as Record<LbConfigMapName, MemoryMap>;
  const { packed } = LbTable.full({
    frontends: [{ service: 'a/b', portName: '', type: 'ClusterIP', family: 4, address: '10.96.0.1', port: 80, protocol: 'TCP', backends: Backends.from([{ address: '10.42.0.1', port: 80, terminating: false }]), affinityTimeoutSeconds: 0 }],
  });
  t.throws(() => writeFresh([...LB_CONFIG_MAPS], [...packed].reverse(), (n) => maps[n as LbConfigMapName]), /phase/);
  const bad = { ...packed[0]!, count: packed[0]!.count + 1 };
  t.throws(() => writeFresh([...LB_CONFIG_MAPS], [bad], (n) => maps[n as LbConfigMapName]), /buffers/);
  t.ok(LB_CONFIG_MAPS.every((n) => maps[n].log.length === 0), 'nothing written');
});

t.test('an address the layout refuses throws before anything is written, as lbEntries does', async (t) => {
  const state: LbState = {
    frontends: [{ service: 'a/b', portName: '', type: 'ClusterIP', family: 4, address: '10.96.0.1', port: 80, protocol: 'TCP', backends: Backends.from([{ address: 'fd00::1', port: 80, terminating: false }]), affinityTimeoutSeconds: 0 }],
  };
  t.throws(() => lbEntries(state));
  t.throws(() => LbTable.full(state));
});

t.test('lbFirst (numeric keys, table on demand) gives the runs of LbTable.full from nothing, byte for byte, and the same table', async (t) => {
  const runText = (rs: { name: string; phase: number; count: number; keys: Uint8Array; values: Uint8Array }[]) =>
    rs.map((r) => `${r.name}/${r.phase}/${r.count}/${toHex(r.keys)}/${toHex(r.values)}`);
  for (let seed = 1; seed <= 400; seed++) {
    const rnd = prng(9000 + seed);
    const state = randomState(rnd);
    const full = LbTable.full(state);
    const first = lbFirst(state);
    if (JSON.stringify(runText(first.packed)) !== JSON.stringify(runText(full.packed))) {
      t.same(runText(first.packed), runText(full.packed), `seed ${seed}: runs`);
      return;
    }
    t.equal(first.frontends, full.table.frontends, `seed ${seed}: frontends`);
    t.equal(first.backends, full.table.allocation.backends.size, `seed ${seed}: backends`);
    const table = first.table();
    t.equal(first.table(), table, 'built once');
    if (allocText(table.allocation) !== allocText(full.table.allocation) || JSON.stringify(table.state()) !== JSON.stringify(full.table.state())) {
      t.equal(allocText(table.allocation), allocText(full.table.allocation), `seed ${seed}: allocation`);
      return;
    }
  }
  // Many IPv4 services (the numeric index grows several times), a few odd spellings falling back to strings.
  const frontends: LbFrontend[] = [];
  for (let i = 0; i < 3000; i++) {
    const backends: LbBackend[] = [];
    for (let j = 0; j < 4; j++) backends.push({ address: `10.42.${(i * 4 + j) >> 8 & 255}.${(i * 4 + j) & 255}`, port: 8080 + (i % 3), terminating: j === 3 });
    if (i % 100 === 0) backends.push({ address: '::ffff:10.42.0.1', port: 8080, terminating: false }, backends[0]!);
    frontends.push({ service: `a/s${i}`, portName: '', type: 'ClusterIP', family: 4, address: i % 500 === 0 ? `::ffff:10.96.${i >> 8}.${i & 255}` : `10.96.${i >> 8}.${i & 255}`, port: 80, protocol: i % 2 ? 'UDP' : 'TCP', backends: Backends.from(backends), affinityTimeoutSeconds: 0 });
  }
  const big: LbState = { frontends };
  t.same(runText(lbFirst(big).packed), runText(LbTable.full(big).packed), '3000 services: the same runs');
  t.equal(allocText(lbFirst(big).table().allocation), allocText(LbTable.full(big).table.allocation), 'and the same allocation');
});
