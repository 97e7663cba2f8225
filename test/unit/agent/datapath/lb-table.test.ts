// LbTable + reconcileDelta (incremental) against lbEntries + reconcile (full):
// same map contents, same write counts, same ids and slots, and every write
// order keeps the maps consistent for a reader.
import t from 'tap';
import { lbEntries, lbPlans, type LbAllocation } from '../../../../agent/datapath/lb-entries.ts';
import { LbTable, lbDeltas } from '../../../../agent/datapath/lb-table.ts';
import { MemoryMap, reconcile, reconcileDelta } from '../../../../agent/datapath/reconcile.ts';
import { LB4_BE_MAP, LB4_RNAT_MAP, LB4_SLOT_MAP, LB4_SVC_MAP, LB_CONFIG_MAPS, toHex, type LbConfigMapName } from '../../../../agent/datapath/lb-layout.ts';
import { frontendSortKey } from '../../../../agent/model/services.ts';
import type { LbBackend, LbFrontend, LbState } from '../../../../agent/model/types.ts';
import { prng } from '../../../lib/prng.ts';
import { changesBetween, lbMaps } from '../../../lib/lb-maps.ts';
import { Backends } from '../../../../agent/model/backends.ts';

function randomState(rnd: () => number): LbState {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const fronts = new Map<string, LbFrontend>();
  const n = Math.floor(rnd() * 7);
  for (let i = 0; i < n; i++) {
    const family = rnd() < 0.75 ? 4 : 6;
    const address = family === 4 ? pick(['10.96.0.1', '10.96.0.2', '10.96.0.3', '10.96.0.4']) : pick(['fd00::1', 'fd00::2']);
    const backends: LbBackend[] = [];
    const seen = new Set<string>();
    const nb = Math.floor(rnd() * 5);
    for (let j = 0; j < nb; j++) {
      const b: LbBackend = {
        address: family === 4 ? pick(['10.42.0.1', '10.42.0.2', '10.42.0.3', '10.42.0.4', '10.42.0.5', '10.42.0.6']) : pick(['fd00:42::1', 'fd00:42::2', 'fd00:42::3']),
        port: pick([80, 8080]),
        terminating: rnd() < 0.2,
      };
      if (seen.has(`${b.address}:${b.port}`)) continue;
      seen.add(`${b.address}:${b.port}`);
      backends.push(b);
    }
    const f: LbFrontend = {
      service: `ns/s${i}`, portName: '', type: 'ClusterIP', family, address, port: pick([80, 53]), protocol: pick(['TCP', 'UDP'] as const),
      backends: Backends.from(backends), affinityTimeoutSeconds: rnd() < 0.2 ? 10800 : 0,
    };
    fronts.set(frontendSortKey(f), f);
  }
  return { frontends: [...fronts.keys()].sort().map((k) => fronts.get(k)!) };
}

/** A small edit of `s`: a backend added/removed/flipped, a frontend added or removed. */
function editState(rnd: () => number, s: LbState): LbState {
  if (rnd() < 0.3) return randomState(rnd);
  const next = randomState(rnd);
  // Mostly keep the old frontends, take one or two from the new random state.
  const byKey = new Map(s.frontends.map((f) => [frontendSortKey(f), f]));
  for (const f of next.frontends.slice(0, 1 + Math.floor(rnd() * 2))) byKey.set(frontendSortKey(f), f);
  if (rnd() < 0.3 && byKey.size > 0) byKey.delete([...byKey.keys()][Math.floor(rnd() * byKey.size)]!);
  return { frontends: [...byKey.keys()].sort().map((k) => byKey.get(k)!) };
}

const dump = (maps: Record<LbConfigMapName, MemoryMap>) =>
  Object.fromEntries(LB_CONFIG_MAPS.map((n) => [n, [...maps[n].data.entries()].map(([k, [, v]]) => `${k}=${toHex(v)}`).sort()]));
const allocText = (a: LbAllocation) => JSON.stringify([[...a.backends].sort(), [...a.frontends].sort(), [...a.slots].sort()]);

t.test('LbTable: same entries, counts, ids and slots as the full computation, over random edit sequences', async (t) => {
  let steps = 0;
  for (let seed = 1; seed <= 80; seed++) {
    const rnd = prng(seed);
    const full = lbMaps(false), inc = lbMaps(true);
    let state = randomState(rnd);
    let e = lbEntries(state);
    reconcile(lbPlans(e.maps, (n) => full[n]));
    reconcile(lbPlans(e.maps, (n) => inc[n]));
    let alloc = e.allocation;
    const table = new LbTable(state, alloc);
    for (let step = 0; step < 40; step++) {
      const next = editState(rnd, state);
      e = lbEntries(next, alloc);
      alloc = e.allocation;
      const rFull = reconcile(lbPlans(e.maps, (n) => full[n]));
      let rInc;
      try {
        rInc = reconcileDelta(lbDeltas(table.change(changesBetween(state, next)), (n) => inc[n]));
      } catch (err) {
        t.fail(`seed ${seed} step ${step}: ${(err as Error).message}`);
        return;
      }
      const same = JSON.stringify(dump(full)) === JSON.stringify(dump(inc)) && JSON.stringify(rFull) === JSON.stringify(rInc)
        && allocText(alloc) === allocText(table.allocation) && JSON.stringify(table.state()) === JSON.stringify(next);
      if (!same) {
        t.same(dump(inc), dump(full), `seed ${seed} step ${step}: maps`);
        t.same(rInc, rFull, `seed ${seed} step ${step}: counts`);
        t.equal(allocText(table.allocation), allocText(alloc), `seed ${seed} step ${step}: allocation`);
        return;
      }
      state = next;
      steps++;
    }
  }
  t.equal(steps, 80 * 40, `${steps} steps equal`);
});

t.test('LbTable: one backend change among 1000 frontends is a handful of writes', async (t) => {
  const frontends: LbFrontend[] = [];
  for (let i = 0; i < 1000; i++) {
    const backends: LbBackend[] = [];
    for (let j = 0; j < 10; j++) backends.push({ address: `10.42.${i >> 6}.${((i & 63) << 2) + (j & 3)}`, port: 8000 + j, terminating: false });
    frontends.push({ service: `ns/s${i}`, portName: '', type: 'ClusterIP', family: 4, address: `10.96.${i >> 8}.${i & 255}`, port: 80, protocol: 'TCP', backends: Backends.from(backends), affinityTimeoutSeconds: 0 });
  }
  const state: LbState = { frontends: frontends.sort((a, b) => (frontendSortKey(a) < frontendSortKey(b) ? -1 : 1)) };
  const maps = lbMaps(false);
  const e = lbEntries(state);
  reconcile(lbPlans(e.maps, (n) => maps[n]));
  const table = new LbTable(state, e.allocation);
  const f = state.frontends[500]!;
  const changed: LbFrontend = { ...f, backends: Backends.from([...f.backends].map((b, i) => (i === 3 ? { ...b, address: '10.99.0.1' } : b))) };
  const r = reconcileDelta(lbDeltas(table.change(new Map([[frontendSortKey(f), { before: f, after: changed }]])), (n) => maps[n]));
  // New backend entry, its slot, and the old backend deleted.
  t.same({ added: r.added, updated: r.updated, deleted: r.deleted }, { added: 1, updated: 1, deleted: 1 });
  const none = reconcileDelta(lbDeltas(table.change(new Map()), (n) => maps[n]));
  t.same({ added: none.added, updated: none.updated, deleted: none.deleted }, { added: 0, updated: 0, deleted: 0 });
});

t.test('reconcile: long runs of upserts go through updateBatch, same result and phase order', async (t) => {
  const frontends: LbFrontend[] = [];
  for (let i = 0; i < 100; i++) {
    frontends.push({
      service: `ns/s${i}`, portName: '', type: 'ClusterIP', family: 4, address: `10.96.0.${i + 1}`, port: 80, protocol: 'TCP',
      backends: Backends.from([{ address: `10.42.0.${i + 1}`, port: 80, terminating: false }]), affinityTimeoutSeconds: 0,
    });
  }
  const state: LbState = { frontends };
  const plain = lbMaps(false);
  const batched = lbMaps(false);
  const log: string[] = [];
  const withBatch = {} as Record<LbConfigMapName, MemoryMap & { updateBatch(e: readonly { key: Uint8Array; value: Uint8Array }[]): void }>;
  for (const n of LB_CONFIG_MAPS) {
    const m = batched[n];
    withBatch[n] = Object.assign(m, {
      updateBatch(entries: readonly { key: Uint8Array; value: Uint8Array }[]) {
        log.push(`${n}:${entries.length}`);
        for (const e of entries) m.update(e.key, e.value);
      },
    });
  }
  const e = lbEntries(state);
  const a = reconcile(lbPlans(e.maps, (n) => plain[n]));
  const b = reconcile(lbPlans(e.maps, (n) => withBatch[n]));
  t.same(b, a, 'same counts');
  t.same(dump(batched), dump(plain), 'same contents');
  // Backends (phase 0), then slots (2), then frontends (3); rev-NAT (1) is a run of 100 too.
  t.same(log, [`${LB4_BE_MAP}:100`, `${LB4_RNAT_MAP}:100`, `${LB4_SLOT_MAP}:100`, `${LB4_SVC_MAP}:100`]);
});
