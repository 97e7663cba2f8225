// The LB map entries kept up to date one frontend at a time. Pure.
//
// lbEntries() computes every entry of every map from the whole state; this
// table remembers the frontends, the backends' users and the id allocation,
// so a change to a few frontends re-encodes only those frontends and the
// backends whose use changed. Given the same changes it allocates the same ids
// and slots as lbEntries() given the whole state (same rules: ids still in use
// are kept; new ids are the lowest ones not in the previous allocation,
// handed out in frontend order; ids freed now become reusable next time).
import type { FrontendChange } from '../model/services.ts';
import { frontendSortKey } from '../model/services.ts';
import type { LbFrontend, LbState } from '../model/types.ts';
import {
  BE_F_TERMINATING, LB4_BE_MAP, LB4_RNAT_MAP, LB4_SVC_MAP, LB6_BE_MAP, LB6_RNAT_MAP, LB6_SVC_MAP, LB_CONFIG_MAPS, SVC_F_AFFINITY,
  lb4BackendCodec, lb4KeyCodec, lb4RevNatCodec, lb6BackendCodec, lb6KeyCodec, lb6RevNatCodec, protoNumber, svcValueCodec, u32Codec,
  type LbConfigMapName,
} from './lb-layout.ts';
import { assignSlots, l4Id, lbPhase, type L4Id, type LbAllocation, type MapEntry } from './lb-entries.ts';
import type { MapAccess, MapDelta } from './reconcile.ts';

/** Lowest-first pool of free ids below a high-water mark (a binary min-heap). */
class FreeIds {
  readonly #heap: number[] = [];
  #next = 1;
  constructor(used: Iterable<number>) {
    const set = new Set(used);
    let max = 0;
    for (const id of set) if (id > max) max = id;
    for (let id = 1; id <= max; id++) if (!set.has(id)) this.#heap.push(id); // ascending: already a heap
    this.#next = max + 1;
  }
  alloc(): number {
    const h = this.#heap;
    if (h.length === 0) return this.#next++;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      // Sift `last` down from the root.
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = l;
        if (l >= h.length) break;
        if (r < h.length && h[r]! < h[l]!) m = r;
        if (h[m]! >= last) break;
        h[i] = h[m]!;
        i = m;
      }
      h[i] = last;
    }
    return top;
  }
  free(id: number): void {
    const h = this.#heap;
    let i = h.length;
    h.push(id);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]! <= id) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = id;
  }
}

/**
 * A backend and the frontends using it. The first user is kept inline (most
 * backends have exactly one), further users in a map. Each user carries its
 * sort key and the backend's flags there: the first frontend in state order
 * sets the flags.
 */
interface BackendUse {
  family: 4 | 6;
  address: string;
  port: number;
  proto: number;
  fid: L4Id | undefined;
  sk: string;
  flags: number;
  more: Map<L4Id, [string, number]> | undefined;
}

function hasUser(u: BackendUse, fid: L4Id): boolean {
  return u.fid === fid || (u.more?.has(fid) ?? false);
}

function addUser(u: BackendUse, fid: L4Id, sk: string, flags: number): void {
  if (u.fid === undefined) {
    u.fid = fid;
    u.sk = sk;
    u.flags = flags;
  } else (u.more ??= new Map()).set(fid, [sk, flags]);
}

function deleteUser(u: BackendUse, fid: L4Id): boolean {
  if (u.fid !== fid) return u.more?.delete(fid) ?? false;
  const next = u.more?.entries().next();
  if (next && !next.done) {
    const [f, [sk, flags]] = next.value;
    u.more!.delete(f);
    u.fid = f;
    u.sk = sk;
    u.flags = flags;
  } else u.fid = undefined;
  return true;
}

function ownerFlags(u: BackendUse): number {
  let sk = u.sk, flags = u.flags;
  if (u.more) {
    for (const [s, f] of u.more.values()) {
      if (s < sk) {
        sk = s;
        flags = f;
      }
    }
  }
  return flags;
}

export type LbDeltaEntries = Record<LbConfigMapName, { desired: MapEntry[]; scope: Uint8Array[] }>;

function emptyDelta(): LbDeltaEntries {
  const d = {} as LbDeltaEntries;
  for (const n of LB_CONFIG_MAPS) d[n] = { desired: [], scope: [] };
  return d;
}

export class LbTable {
  readonly allocation: LbAllocation;
  readonly #fronts = new Map<L4Id, { fe: LbFrontend; sortKey: string }>();
  readonly #backends = new Map<L4Id, BackendUse>();
  readonly #beIds: FreeIds;
  readonly #rnIds: FreeIds;

  /**
   * The table for `state` as lbEntries() just programmed it with `allocation`
   * (the allocation lbEntries returned; the table takes it over and changes it).
   */
  constructor(state: LbState, allocation: LbAllocation) {
    this.allocation = allocation;
    this.#beIds = new FreeIds(allocation.backends.values());
    this.#rnIds = new FreeIds(allocation.frontends.values());
    for (const fe of state.frontends) {
      const fid = l4Id(fe.family, fe.address, fe.port, fe.protocol);
      if (this.#fronts.has(fid)) continue;
      const sortKey = frontendSortKey(fe);
      this.#fronts.set(fid, { fe, sortKey });
      this.#use(fid, sortKey, fe);
    }
  }

  get frontends(): number {
    return this.#fronts.size;
  }

  #use(fid: L4Id, sortKey: string, fe: LbFrontend, touched?: Set<L4Id>): L4Id[] {
    const list: L4Id[] = [];
    const proto = protoNumber(fe.protocol);
    for (const be of fe.backends) {
      const bid = l4Id(fe.family, be.address, be.port, fe.protocol);
      let u = this.#backends.get(bid);
      if (!u) {
        u = { family: fe.family, address: be.address, port: be.port, proto, fid: undefined, sk: '', flags: 0, more: undefined };
        this.#backends.set(bid, u);
      } else if (hasUser(u, fid)) continue; // listed twice: the first counts
      addUser(u, fid, sortKey, be.terminating ? BE_F_TERMINATING : 0);
      list.push(bid);
      touched?.add(bid);
    }
    return list;
  }

  #unuse(fid: L4Id, fe: LbFrontend, touched: Set<L4Id>): void {
    for (const be of fe.backends) {
      const bid = l4Id(fe.family, be.address, be.port, fe.protocol);
      const u = this.#backends.get(bid);
      if (u && deleteUser(u, fid)) touched.add(bid);
    }
  }

  /**
   * Apply frontend changes (keyed by sort key, as LbModel reports them) and
   * return, per map, the entries to write and the keys that may have to go.
   */
  change(changes: ReadonlyMap<string, FrontendChange>): LbDeltaEntries {
    const out = emptyDelta();
    const sorted = [...changes.keys()].sort();
    const touched = new Set<L4Id>();
    const work: { fid: L4Id; sortKey: string; old: LbFrontend | undefined; fe: LbFrontend | undefined; want: L4Id[] }[] = [];
    for (const sortKey of sorted) {
      const c = changes.get(sortKey)!;
      const any = (c.after ?? c.before)!;
      const fid = l4Id(any.family, any.address, any.port, any.protocol);
      const old = this.#fronts.get(fid)?.fe;
      if (old) this.#unuse(fid, old, touched);
      work.push({ fid, sortKey, old, fe: c.after, want: c.after ? this.#use(fid, sortKey, c.after, touched) : [] });
    }
    const freedBe: number[] = [], freedRn: number[] = [];

    // New backends get ids in frontend order, as lbEntries hands them out.
    for (const w of work) {
      for (const bid of w.want) if (!this.allocation.backends.has(bid)) this.allocation.backends.set(bid, this.#beIds.alloc());
    }
    for (const bid of touched) {
      const u = this.#backends.get(bid)!;
      const id = this.allocation.backends.get(bid)!;
      const map = u.family === 4 ? LB4_BE_MAP : LB6_BE_MAP;
      if (u.fid === undefined) {
        this.#backends.delete(bid);
        this.allocation.backends.delete(bid);
        freedBe.push(id);
        out[map].scope.push(u32Codec.encode(id));
        continue;
      }
      const flags = ownerFlags(u);
      const codec = u.family === 4 ? lb4BackendCodec : lb6BackendCodec;
      out[map].desired.push({ key: u32Codec.encode(id), value: codec.encode({ address: u.address, port: u.port, proto: u.proto, flags }) });
    }

    for (const w of work) {
      const any = (w.fe ?? w.old)!;
      const family = any.family;
      const keyCodec = family === 4 ? lb4KeyCodec : lb6KeyCodec;
      const svc = out[family === 4 ? LB4_SVC_MAP : LB6_SVC_MAP];
      const rnat = out[family === 4 ? LB4_RNAT_MAP : LB6_RNAT_MAP];
      const proto = protoNumber(any.protocol);
      const oldSlots = this.allocation.slots.get(w.fid) ?? [];
      const oldRn = this.allocation.frontends.get(w.fid);
      const key = (slot: number) => keyCodec.encode({ address: any.address, port: any.port, proto, slot });
      if (!w.fe) {
        for (let s = 0; s <= oldSlots.length; s++) svc.scope.push(key(s));
        if (oldRn !== undefined) {
          rnat.scope.push(u32Codec.encode(oldRn));
          freedRn.push(oldRn);
        }
        this.allocation.frontends.delete(w.fid);
        this.allocation.slots.delete(w.fid);
        this.#fronts.delete(w.fid);
        continue;
      }
      const fe = w.fe;
      this.#fronts.set(w.fid, { fe, sortKey: w.sortKey });
      let revNatId = oldRn;
      if (revNatId === undefined) this.allocation.frontends.set(w.fid, (revNatId = this.#rnIds.alloc()));
      const slots = assignSlots(oldSlots, w.want);
      this.allocation.slots.set(w.fid, slots);
      const affinity = fe.affinityTimeoutSeconds > 0;
      svc.desired.push({
        key: key(0),
        value: svcValueCodec.encode({
          backendId: 0, count: slots.length, flags: affinity ? SVC_F_AFFINITY : 0, revNatId, affinityTimeout: affinity ? fe.affinityTimeoutSeconds : 0,
        }),
      });
      slots.forEach((bid, i) => {
        svc.desired.push({
          key: key(i + 1),
          value: svcValueCodec.encode({ backendId: this.allocation.backends.get(bid)!, count: 0, flags: 0, revNatId, affinityTimeout: 0 }),
        });
      });
      for (let s = slots.length + 1; s <= oldSlots.length; s++) svc.scope.push(key(s));
      const rnCodec = family === 4 ? lb4RevNatCodec : lb6RevNatCodec;
      rnat.desired.push({ key: u32Codec.encode(revNatId), value: rnCodec.encode({ address: fe.address, port: fe.port }) });
    }

    for (const id of freedBe) this.#beIds.free(id);
    for (const id of freedRn) this.#rnIds.free(id);
    return out;
  }

  /** The frontends, in state order. */
  state(): LbState {
    const list = [...this.#fronts.values()].sort((a, b) => (a.sortKey < b.sortKey ? -1 : a.sortKey > b.sortKey ? 1 : 0));
    return { frontends: list.map((f) => f.fe) };
  }
}

/** reconcileDelta plans for a table change. */
export function lbDeltas(delta: LbDeltaEntries, open: (name: LbConfigMapName) => MapAccess & { get(key: Uint8Array): Uint8Array | undefined }): MapDelta[] {
  return LB_CONFIG_MAPS.map((name) => ({
    name,
    map: open(name),
    desired: delta[name].desired,
    scope: delta[name].scope,
    phase: (key: Uint8Array) => lbPhase(name, key),
  }));
}
