// From the desired LB state to the desired contents of every LB map. Pure.
//
// IDs are stable: the previous allocation (backend ids, rev-NAT ids, and
// which backend sits in which slot of each frontend) goes in, the next one
// comes out, so a reconcile that changes one backend changes a handful of
// entries. IDs freed by this computation are not handed out again in the
// same computation (a reader might still follow an old slot to the id while
// the reconcile runs); they become reusable the next time.
import type { LbFrontend, LbState } from '../model/types.ts';
import type { MapAccess, MapPlan } from './reconcile.ts';
import { SlotRanges } from './lb-slots.ts';
import {
  BE_F_TERMINATING, LB4_BE_MAP, LB4_RNAT_MAP, LB4_SLOT_MAP, LB4_SVC_MAP, LB6_BE_MAP, LB6_RNAT_MAP, LB6_SLOT_MAP, LB6_SVC_MAP,
  LB_SLOT_MAX, LB_SVC, SVC_F_AFFINITY, lb4BackendCodec, lb4KeyCodec, lb4RevNatCodec, lb6BackendCodec, lb6KeyCodec,
  lb6RevNatCodec, protoName, protoNumber, svcValueCodec, u32Codec,
  LB_CONFIG_MAPS, type Backend, type LbConfigMapName, type SvcKey, type SvcValue,
} from './lb-layout.ts';

/** "<family>|<address>|<port>|<PROTO>": one frontend or one backend. */
export type L4Id = string;

export function l4Id(family: 4 | 6, address: string, port: number, protocol: string): L4Id {
  return `${family}|${address}|${port}|${protocol}`;
}

export interface LbAllocation {
  /** Backend -> backend id (ids are unique across both families). */
  backends: Map<L4Id, number>;
  /** Frontend -> rev-NAT id (unique across both families). */
  frontends: Map<L4Id, number>;
  /** Frontend -> backend in each slot (index 0 is slot 1). */
  slots: Map<L4Id, L4Id[]>;
  /** Frontend -> slot-array index of its slot 1 (frontends with slots only). */
  bases: Map<L4Id, number>;
}

export function emptyAllocation(): LbAllocation {
  return { backends: new Map(), frontends: new Map(), slots: new Map(), bases: new Map() };
}

/**
 * The slot ranges of `alloc` marked as taken, per family (the ones of
 * frontends being removed too: a reader may still follow them until the
 * frontend's entry is gone).
 */
export function slotRangesOf(alloc: LbAllocation): { 4: SlotRanges; 6: SlotRanges } {
  const out = { 4: new SlotRanges(LB_SLOT_MAX), 6: new SlotRanges(LB_SLOT_MAX) };
  for (const [fid, base] of alloc.bases) {
    const n = alloc.slots.get(fid)?.length ?? 0;
    if (n > 0) out[fid.startsWith('4|') ? 4 : 6].reserve(base, n);
  }
  return out;
}

/**
 * Where a frontend's `m` slots go, given its range before (base, n slots):
 * the same range when they fit (the tail is freed after the frontend's entry
 * says m), grown in place when the indexes after it are free, else a new
 * range (the old one is freed after the switch). 0 for no slots. The caller
 * frees old ranges only once every frontend is placed.
 */
export function placeSlots(ranges: SlotRanges, base: number, n: number, m: number): number {
  if (m === 0) return 0;
  if (n > 0 && m <= n) return base;
  if (n > 0 && ranges.extend(base, n, m)) return base;
  const at = ranges.alloc(m);
  if (at === undefined) {
    throw new Error(`the backend slot array is full (${ranges.used} of ${ranges.capacity - 1} slots in use, ${m} more wanted): ` +
      'fewer endpoints, or a build with a larger KL_LB_SLOT_MAX');
  }
  return at;
}

/**
 * What placeSlots() leaves to free once every frontend is placed: of the
 * old range (oldBase, n slots), all of it when the m slots moved to `base`,
 * the tail past m when they stayed; undefined for nothing.
 */
export function slotsToFree(oldBase: number, n: number, base: number, m: number): [start: number, length: number] | undefined {
  const from = n > 0 && base !== oldBase ? 0 : m;
  return n > from ? [oldBase + from, n - from] : undefined;
}

/** One encoded map entry. */
export interface MapEntry {
  key: Uint8Array;
  value: Uint8Array;
}

export type LbMapEntries = Record<LbConfigMapName, MapEntry[]>;

export interface LbEntries {
  maps: LbMapEntries;
  allocation: LbAllocation;
}

/** Hands out the lowest free id, never one in use before or freed just now. */
export class IdPool {
  private readonly taken: Set<number>;
  private next = 1;
  constructor(taken: Iterable<number>) {
    this.taken = new Set(taken);
  }
  alloc(): number {
    // Ids only go up: one handed out is never looked at again (no need to remember it).
    while (this.taken.has(this.next)) this.next++;
    return this.next++;
  }
}

/**
 * Slot layout for one frontend: backends that stay keep their slot; a
 * hole left by a removed backend takes a new backend, or else the backend
 * from the last slot; new backends beyond the holes are appended.
 */
export function assignSlots<T extends string | number>(prev: readonly T[], want: readonly T[]): T[] {
  const wanted = new Set(want);
  const slots: (T | undefined)[] = prev.map((b) => (wanted.has(b) ? b : undefined));
  const present = new Set(slots.filter((b): b is T => b !== undefined));
  const fresh = want.filter((b) => !present.has(b));
  let f = 0;
  for (let i = 0; i < slots.length && f < fresh.length; i++) {
    if (slots[i] === undefined) slots[i] = fresh[f++];
  }
  while (f < fresh.length) slots.push(fresh[f++]);
  // Close the remaining holes from the end.
  for (let i = 0; i < slots.length; i++) {
    if (slots[i] !== undefined) continue;
    while (slots.length > i && slots[slots.length - 1] === undefined) slots.pop();
    if (slots.length <= i) break;
    slots[i] = slots.pop();
  }
  return slots as T[];
}

/**
 * The desired entries of the six configuration maps (services, backends and
 * rev-NAT, both families) for `state`, and the allocation to pass next time.
 */
export function lbEntries(state: LbState, prev: LbAllocation = emptyAllocation()): LbEntries {
  // Frontends, deduplicated on (family, address, port, protocol): the first wins.
  const fronts = new Map<L4Id, LbFrontend>();
  for (const fe of state.frontends) {
    const id = l4Id(fe.family, fe.address, fe.port, fe.protocol);
    if (!fronts.has(id)) fronts.set(id, fe);
  }

  // Backends of every frontend, deduplicated; a backend's flags come from its first use.
  const wantSlots = new Map<L4Id, L4Id[]>();
  const backendInfo = new Map<L4Id, { family: 4 | 6; backend: Backend }>();
  for (const [fid, fe] of fronts) {
    const list: L4Id[] = [];
    const seen = new Set<L4Id>();
    const bes = fe.backends;
    for (let i = 0; i < bes.length; i++) {
      const address = bes.address(i), port = bes.port(i);
      const bid = l4Id(fe.family, address, port, fe.protocol);
      if (seen.has(bid)) continue;
      seen.add(bid);
      list.push(bid);
      if (!backendInfo.has(bid)) {
        backendInfo.set(bid, {
          family: fe.family,
          backend: { address, port, proto: protoNumber(fe.protocol), flags: bes.terminating(i) ? BE_F_TERMINATING : 0 },
        });
      }
    }
    wantSlots.set(fid, list);
  }

  // Ids: keep the ones still in use; new ones avoid every id of the previous allocation.
  const beIds = new IdPool(prev.backends.values());
  const rnIds = new IdPool(prev.frontends.values());
  const next: LbAllocation = emptyAllocation();
  for (const bid of backendInfo.keys()) {
    next.backends.set(bid, prev.backends.get(bid) ?? 0);
  }
  for (const [bid, id] of next.backends) if (id === 0) next.backends.set(bid, beIds.alloc());
  for (const fid of fronts.keys()) next.frontends.set(fid, prev.frontends.get(fid) ?? 0);
  for (const [fid, id] of next.frontends) if (id === 0) next.frontends.set(fid, rnIds.alloc());

  const maps: LbMapEntries = {
    [LB4_SVC_MAP]: [], [LB6_SVC_MAP]: [], [LB4_SLOT_MAP]: [], [LB6_SLOT_MAP]: [], [LB4_BE_MAP]: [], [LB6_BE_MAP]: [], [LB4_RNAT_MAP]: [], [LB6_RNAT_MAP]: [],
  };

  for (const [bid, { family, backend }] of backendInfo) {
    const id = next.backends.get(bid)!;
    const codec = family === 4 ? lb4BackendCodec : lb6BackendCodec;
    maps[family === 4 ? LB4_BE_MAP : LB6_BE_MAP].push({ key: u32Codec.encode(id), value: codec.encode(backend) });
  }

  const ranges = slotRangesOf(prev);
  for (const [fid, fe] of fronts) {
    const revNatId = next.frontends.get(fid)!;
    const before = prev.slots.get(fid) ?? [];
    const slots = assignSlots(before, wantSlots.get(fid) ?? []);
    next.slots.set(fid, slots);
    const base = placeSlots(ranges[fe.family], prev.bases.get(fid) ?? 0, before.length, slots.length);
    if (slots.length > 0) next.bases.set(fid, base);
    const keyCodec = fe.family === 4 ? lb4KeyCodec : lb6KeyCodec;
    const proto = protoNumber(fe.protocol);
    const affinity = fe.affinityTimeoutSeconds > 0;
    maps[fe.family === 4 ? LB4_SVC_MAP : LB6_SVC_MAP].push({
      key: keyCodec.encode({ address: fe.address, port: fe.port, proto }),
      value: svcValueCodec.encode({
        slotBase: base,
        count: slots.length,
        flags: affinity ? SVC_F_AFFINITY : 0,
        revNatId,
        affinityTimeout: affinity ? fe.affinityTimeoutSeconds : 0,
      }),
    });
    const slotMap = maps[fe.family === 4 ? LB4_SLOT_MAP : LB6_SLOT_MAP];
    slots.forEach((bid, i) => {
      slotMap.push({ key: u32Codec.encode(base + i), value: u32Codec.encode(next.backends.get(bid)!) });
    });
    const rnCodec = fe.family === 4 ? lb4RevNatCodec : lb6RevNatCodec;
    maps[fe.family === 4 ? LB4_RNAT_MAP : LB6_RNAT_MAP].push({
      key: u32Codec.encode(revNatId),
      value: rnCodec.encode({ address: fe.address, port: fe.port }),
    });
  }

  return { maps, allocation: next };
}

/**
 * Write phase of an entry: the reconcile writes lower phases first and
 * deletes higher phases first, so a reader never follows a frontend to a
 * missing slot or a slot to a missing backend.
 * 0 backends, 1 rev-NAT, 2 backend slots, 3 frontends. It depends on the
 * map only (the key is accepted and ignored).
 */
export function lbPhase(map: LbConfigMapName, _key?: Uint8Array): number {
  switch (map) {
    case LB4_BE_MAP:
    case LB6_BE_MAP:
      return 0;
    case LB4_RNAT_MAP:
    case LB6_RNAT_MAP:
      return 1;
    case LB4_SLOT_MAP:
    case LB6_SLOT_MAP:
      return 2;
    default:
      return 3;
  }
}

/**
 * Rebuild the allocation from the contents of pinned maps (after an agent
 * restart), so the first reconcile keeps every id and slot and writes nothing
 * when nothing changed. Entries that do not decode or do not fit together
 * are ignored (the reconcile then rewrites or deletes them).
 */
export function allocationFromMaps(contents: Partial<Record<LbConfigMapName, Iterable<[Uint8Array, Uint8Array]>>>): LbAllocation {
  const alloc = emptyAllocation();
  const beById = new Map<number, { family: 4 | 6; be: Backend }>();
  for (const family of [4, 6] as const) {
    const codec = family === 4 ? lb4BackendCodec : lb6BackendCodec;
    for (const [k, v] of contents[family === 4 ? LB4_BE_MAP : LB6_BE_MAP] ?? []) {
      try {
        beById.set(u32Codec.decode(k), { family, be: codec.decode(v) });
      } catch { /* foreign entry */ }
    }
  }
  for (const family of [4, 6] as const) {
    const keyCodec = family === 4 ? lb4KeyCodec : lb6KeyCodec;
    const slotIds = new Map<number, number>();
    for (const [k, v] of contents[family === 4 ? LB4_SLOT_MAP : LB6_SLOT_MAP] ?? []) {
      try {
        slotIds.set(u32Codec.decode(k), u32Codec.decode(v));
      } catch { /* foreign entry */ }
    }
    const ranges = new SlotRanges(LB_SLOT_MAX);
    for (const [k, v] of contents[family === 4 ? LB4_SVC_MAP : LB6_SVC_MAP] ?? []) {
      let key: SvcKey, val: SvcValue;
      try {
        key = keyCodec.decode(k);
        if (v.length !== LB_SVC.size) continue;
        val = svcValueCodec.decode(v);
      } catch { continue; }
      const proto = protoName(key.proto);
      if (!proto) continue;
      const fid = l4Id(family, key.address, key.port, proto);
      alloc.frontends.set(fid, val.revNatId);
      const list: L4Id[] = [];
      for (let s = 0; s < val.count; s++) {
        const beId = slotIds.get(val.slotBase + s);
        const be = beId === undefined ? undefined : beById.get(beId);
        if (!be || be.family !== family || be.be.proto !== key.proto) break;
        const bid = l4Id(family, be.be.address, be.be.port, protoName(be.be.proto)!);
        alloc.backends.set(bid, beId!);
        list.push(bid);
      }
      // A range out of bounds or claimed by two frontends is not adopted: the reconcile gives it a new one.
      if (list.length > 0) {
        try {
          ranges.reserve(val.slotBase, list.length);
          alloc.bases.set(fid, val.slotBase);
        } catch {
          list.length = 0;
        }
      }
      alloc.slots.set(fid, list);
    }
  }
  // Backends no frontend uses still hold their ids (so they are not reused while pinned).
  for (const [id, { family, be }] of beById) {
    const proto = protoName(be.proto);
    if (!proto) continue;
    const bid = l4Id(family, be.address, be.port, proto);
    if (!alloc.backends.has(bid)) alloc.backends.set(bid, id);
  }
  return alloc;
}

/** Reconcile plans for the configuration maps, with their write phases. */
export function lbPlans(maps: LbMapEntries, open: (name: LbConfigMapName) => MapAccess): MapPlan[] {
  return LB_CONFIG_MAPS.map((name) => ({
    name,
    map: open(name),
    desired: maps[name],
    phase: () => lbPhase(name),
  }));
}
