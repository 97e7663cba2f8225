// The LB map entries kept up to date one frontend at a time. Pure.
//
// lbEntries() computes every entry of every map from the whole state; this
// table remembers the frontends, the backends' users and the id allocation,
// so a change to a few frontends re-encodes only those frontends and the
// backends whose use changed. Given the same changes it allocates the same ids
// and slots (and slot ranges) as lbEntries() given the whole state (same rules: ids still in use
// are kept; new ids are the lowest ones not in the previous allocation,
// handed out in frontend order; ids freed now become reusable next time).
import type { FrontendChange } from '../model/services.ts';
import { frontendSortKey } from '../model/services.ts';
import type { LbFrontend, LbState } from '../model/types.ts';
import { ipv4Value } from '../model/ip.ts';
import {
  BE_F_TERMINATING, LB4_BE_MAP, LB4_RNAT_MAP, LB4_SLOT_MAP, LB4_SVC_MAP, LB6_BE_MAP, LB6_RNAT_MAP, LB6_SLOT_MAP, LB6_SVC_MAP, LB_CONFIG_MAPS, SVC_F_AFFINITY,
  LB4_BACKEND, LB4_KEY, LB4_RNAT, LB6_BACKEND, LB6_KEY, LB6_RNAT, LB_SVC,
  addrBytes, fld, LE, lb4BackendCodec, lb4KeyCodec, lb4RevNatCodec, lb6BackendCodec, lb6KeyCodec, lb6RevNatCodec, protoName, protoNumber, svcValueCodec, u32Codec,
  type LbConfigMapName, type StructLayout,
} from './lb-layout.ts';
import { assignSlots, emptyAllocation, IdPool, l4Id, lbPhase, placeSlots, slotRangesOf, slotsToFree, type L4Id, type LbAllocation, type MapEntry } from './lb-entries.ts';
import type { MapAccess, MapDelta, MapPlan, PackedRun } from './reconcile.ts';

/** Lowest-first pool of free ids below a high-water mark (a binary min-heap). */
class FreeIds {
  readonly #heap: number[] = [];
  #next = 1;
  constructor(used: Iterable<number>) {
    const ids = Array.from(used);
    let max = 0;
    for (const id of ids) if (id > max) max = id;
    const taken = new Uint8Array(max + 1);
    for (const id of ids) taken[id] = 1;
    for (let id = 1; id <= max; id++) if (taken[id] === 0) this.#heap.push(id); // ascending: already a heap
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

/** The entries of a full build: the table, and every map entry packed per map and write phase. */
export interface LbFull {
  table: LbTable;
  /** By increasing phase; within a phase, maps in LB_CONFIG_MAPS order; entries in lbEntries' order. */
  packed: PackedRun[];
}

function off(l: StructLayout, field: string): number {
  return fld(l, field).offset;
}

const K4 = { size: LB4_KEY.size, addr: off(LB4_KEY, 'addr'), dport: off(LB4_KEY, 'dport'), proto: off(LB4_KEY, 'proto') };
const K6 = { size: LB6_KEY.size, addr: off(LB6_KEY, 'addr'), dport: off(LB6_KEY, 'dport'), proto: off(LB6_KEY, 'proto') };
const SV = {
  base: off(LB_SVC, 'slot_base'), count: off(LB_SVC, 'count'), flags: off(LB_SVC, 'flags'), revNat: off(LB_SVC, 'rev_nat_id'), timeout: off(LB_SVC, 'affinity_timeout'),
};
const BE4 = { addr: off(LB4_BACKEND, 'addr'), port: off(LB4_BACKEND, 'port'), proto: off(LB4_BACKEND, 'proto'), flags: off(LB4_BACKEND, 'flags') };
const BE6 = { addr: off(LB6_BACKEND, 'addr'), port: off(LB6_BACKEND, 'port'), proto: off(LB6_BACKEND, 'proto'), flags: off(LB6_BACKEND, 'flags') };
const RN4 = { addr: off(LB4_RNAT, 'addr'), port: off(LB4_RNAT, 'port') };
const RN6 = { addr: off(LB6_RNAT, 'addr'), port: off(LB6_RNAT, 'port') };

/** Fills a packed run entry by entry (k, v: offsets of the current key and value). */
class RunWriter {
  readonly keys: Uint8Array;
  readonly vals: Uint8Array;
  readonly kv: DataView;
  readonly vv: DataView;
  readonly #ks: number;
  readonly #vs: number;
  k = 0;
  v = 0;
  constructor(r: PackedRun) {
    this.keys = r.keys;
    this.vals = r.values;
    this.kv = new DataView(r.keys.buffer, r.keys.byteOffset, r.keys.byteLength);
    this.vv = new DataView(r.values.buffer, r.values.byteOffset, r.values.byteLength);
    this.#ks = r.keySize;
    this.#vs = r.valueSize;
  }
  next(): void {
    this.k += this.#ks;
    this.v += this.#vs;
  }
}

function putSvc(w: RunWriter, slotBase: number, count: number, flags: number, revNatId: number, timeout: number): void {
  const v = w.v;
  w.vv.setUint32(v + SV.base, slotBase, LE);
  w.vv.setUint16(v + SV.count, count, LE);
  w.vals[v + SV.flags] = flags;
  w.vv.setUint32(v + SV.revNat, revNatId, LE);
  w.vv.setUint32(v + SV.timeout, timeout, LE);
}

/** Network-order address bytes at `at` (what addrBytes gives, without a lookup for plain IPv4). */
function putAddr(buf: Uint8Array, dv: DataView, at: number, address: string, family: 4 | 6): void {
  if (family === 4) {
    const v = ipv4Value(address);
    if (v >= 0) {
      dv.setUint32(at, v, false);
      return;
    }
  }
  buf.set(addrBytes(address, family), at);
}

/** A full set of entries in arrays: backends in id-allocation order, frontends in state order with their slots' backend ids. */
interface RunsInput {
  /** Backend i: family, address, port, IPPROTO, flags, id. */
  beFamily: ArrayLike<number>;
  beAddress: ArrayLike<string>;
  bePort: ArrayLike<number>;
  beProto: ArrayLike<number>;
  beFlags: ArrayLike<number>;
  beIds: ArrayLike<number>;
  /** IPv4 address values of the backends where known (else -1: parsed again). */
  beAddr4?: ArrayLike<number>;
  /** How many backends are IPv4. */
  be4: number;
  fronts: readonly LbFrontend[];
  rnIds: ArrayLike<number>;
  /** Front i's slots are slotIds[slotStart[i] .. slotStart[i + 1]). */
  slotStart: ArrayLike<number>;
  slotIds: ArrayLike<number>;
  /** Front i's slot s sits at slot-array index slotBase[i] + s. */
  slotBase: ArrayLike<number>;
}

/** Slot bases for a first build into empty slot arrays: first fit from empty, in frontend order. */
function firstBases(fronts: readonly LbFrontend[], slotStart: ArrayLike<number>): Uint32Array {
  const ranges = slotRangesOf(emptyAllocation());
  const out = new Uint32Array(fronts.length);
  for (let i = 0; i < fronts.length; i++) out[i] = placeSlots(ranges[fronts[i]!.family], 0, 0, slotStart[i + 1]! - slotStart[i]!);
  return out;
}

/** Every entry of every map, packed in write order: backends, rev-NAT, slots, frontends; v4 before v6. */
function encodeRuns(inp: RunsInput): PackedRun[] {
  let fe4 = 0, slot4 = 0, slot6 = 0;
  for (let i = 0; i < inp.fronts.length; i++) {
    const n = inp.slotStart[i + 1]! - inp.slotStart[i]!;
    if (inp.fronts[i]!.family === 4) {
      fe4++;
      slot4 += n;
    } else slot6 += n;
  }
  const run = (map: LbConfigMapName, phase: number, count: number, keySize: number, valueSize: number): PackedRun => ({
    name: map, phase, count, keySize, valueSize, keys: new Uint8Array(count * keySize), values: new Uint8Array(count * valueSize),
  });
  const nBe = inp.beIds.length, fe6 = inp.fronts.length - fe4;
  const rBe = [run(LB4_BE_MAP, 0, inp.be4, 4, LB4_BACKEND.size), run(LB6_BE_MAP, 0, nBe - inp.be4, 4, LB6_BACKEND.size)];
  const rRn = [run(LB4_RNAT_MAP, 1, fe4, 4, LB4_RNAT.size), run(LB6_RNAT_MAP, 1, fe6, 4, LB6_RNAT.size)];
  const rSlot = [run(LB4_SLOT_MAP, 2, slot4, 4, 4), run(LB6_SLOT_MAP, 2, slot6, 4, 4)];
  const rFront = [run(LB4_SVC_MAP, 3, fe4, LB4_KEY.size, LB_SVC.size), run(LB6_SVC_MAP, 3, fe6, LB6_KEY.size, LB_SVC.size)];

  const beW = [new RunWriter(rBe[0]!), new RunWriter(rBe[1]!)];
  for (let i = 0; i < nBe; i++) {
    const family = inp.beFamily[i] === 4 ? 4 : 6;
    const w = beW[family === 4 ? 0 : 1]!;
    const L = family === 4 ? BE4 : BE6;
    const v = w.v;
    w.kv.setUint32(w.k, inp.beIds[i]!, LE);
    const a4 = inp.beAddr4 ? inp.beAddr4[i]! : -1;
    if (a4 >= 0) w.vv.setUint32(v + L.addr, a4, false);
    else putAddr(w.vals, w.vv, v + L.addr, inp.beAddress[i]!, family);
    w.vv.setUint16(v + L.port, inp.bePort[i]!, false);
    w.vals[v + L.proto] = inp.beProto[i]!;
    w.vals[v + L.flags] = inp.beFlags[i]!;
    w.next();
  }

  const rnW = [new RunWriter(rRn[0]!), new RunWriter(rRn[1]!)];
  const slotW = [new RunWriter(rSlot[0]!), new RunWriter(rSlot[1]!)];
  const frontW = [new RunWriter(rFront[0]!), new RunWriter(rFront[1]!)];
  for (let i = 0; i < inp.fronts.length; i++) {
    const fe = inp.fronts[i]!;
    const f = fe.family === 4 ? 0 : 1;
    const K = f === 0 ? K4 : K6, R = f === 0 ? RN4 : RN6;
    const revNatId = inp.rnIds[i]!;
    const proto = protoNumber(fe.protocol);
    const from = inp.slotStart[i]!, to = inp.slotStart[i + 1]!;
    const affinity = fe.affinityTimeoutSeconds > 0;

    // The frontend, with its slot range.
    const base = inp.slotBase[i]!;
    const fw = frontW[f]!;
    const fk = fw.k;
    putAddr(fw.keys, fw.kv, fk + K.addr, fe.address, fe.family);
    fw.kv.setUint16(fk + K.dport, fe.port, false);
    fw.keys[fk + K.proto] = proto;
    putSvc(fw, base, to - from, affinity ? SVC_F_AFFINITY : 0, revNatId, affinity ? fe.affinityTimeoutSeconds : 0);
    fw.next();

    // Its slots: array index base + s -> the backend id.
    const sw = slotW[f]!;
    for (let s = from; s < to; s++) {
      sw.kv.setUint32(sw.k, base + s - from, LE);
      sw.vv.setUint32(sw.v, inp.slotIds[s]!, LE);
      sw.next();
    }

    const rw = rnW[f]!;
    rw.kv.setUint32(rw.k, revNatId, LE);
    putAddr(rw.vals, rw.vv, rw.v + R.addr, fe.address, fe.family);
    rw.vv.setUint16(rw.v + R.port, fe.port, false);
    rw.next();
  }
  return [...rBe, ...rRn, ...rSlot, ...rFront];
}

/**
 * Open-addressing index of non-negative integers below 2^53 (numeric keys
 * of IPv4 frontends and backends) to positions: no object per entry.
 */
class NumIndex {
  #keys: Float64Array;
  #vals: Int32Array;
  #mask: number;
  #size = 0;
  constructor(expected: number) {
    let cap = 16;
    while (cap < expected * 2) cap *= 2;
    this.#keys = new Float64Array(cap).fill(-1);
    this.#vals = new Int32Array(cap);
    this.#mask = cap - 1;
  }
  #home(k: number): number {
    const lo = k >>> 0, hi = (k / 4294967296) >>> 0;
    let h = Math.imul(lo ^ Math.imul(hi, 0x9e3779b1), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    return h & this.#mask;
  }
  #slot(k: number): number {
    let i = this.#home(k);
    const keys = this.#keys;
    while (keys[i] !== -1 && keys[i] !== k) i = (i + 1) & this.#mask;
    return i;
  }
  /** The position stored for `k`, or -1. */
  get(k: number): number {
    const i = this.#slot(k);
    return this.#keys[i] === k ? this.#vals[i]! : -1;
  }
  /** Store `v` for `k` (not present yet). */
  add(k: number, v: number): void {
    if ((this.#size + 1) * 2 > this.#keys.length) this.#grow();
    const i = this.#slot(k);
    this.#keys[i] = k;
    this.#vals[i] = v;
    this.#size++;
  }
  /** Remove `k` (backward-shift: no tombstones). */
  delete(k: number): void {
    const keys = this.#keys, mask = this.#mask;
    let i = this.#slot(k);
    if (keys[i] !== k) return;
    this.#size--;
    for (let j = (i + 1) & mask; keys[j] !== -1; j = (j + 1) & mask) {
      const home = this.#home(keys[j]!);
      // The entry at j stays when its home lies cyclically in (i, j].
      if (i <= j ? i < home && home <= j : i < home || home <= j) continue;
      keys[i] = keys[j]!;
      this.#vals[i] = this.#vals[j]!;
      i = j;
    }
    keys[i] = -1;
  }
  #grow(): void {
    const keys = this.#keys, vals = this.#vals;
    this.#keys = new Float64Array(keys.length * 2).fill(-1);
    this.#vals = new Int32Array(keys.length * 2);
    this.#mask = keys.length * 2 - 1;
    for (let i = 0; i < keys.length; i++) {
      if (keys[i] === -1) continue;
      const j = this.#slot(keys[i]!);
      this.#keys[j] = keys[i]!;
      this.#vals[j] = vals[i]!;
    }
  }
}

/**
 * The numeric key of (IPv4 address, port, protocol) when the address is a
 * plain dotted quad and the port an integer port (equal keys exactly when
 * the l4Id strings are equal), else -1.
 */
function l4Num(address: string, port: number, protocol: string): number {
  return l4NumOf(ipv4Value(address), port, protocol);
}

/** l4Num from the address's value (ipv4Value: -1 when not a plain dotted quad). */
function l4NumOf(a: number, port: number, protocol: string): number {
  if (a < 0 || !Number.isInteger(port) || port < 0 || port > 65535) return -1;
  const p = protocol === 'TCP' ? 0 : protocol === 'UDP' ? 1 : -1;
  if (p < 0) return -1;
  return a * 131072 + port * 2 + p;
}

/** The first apply into empty maps with nothing allocated before: the entries now, the table when needed. */
export interface LbFirst {
  packed: PackedRun[];
  frontends: number;
  backends: number;
  /**
   * The table (and allocation) of this build, as LbTable.full(state) gives
   * it; computed on the first call (from a copy of the frontend list).
   */
  table: () => LbTable;
}

/**
 * LbTable.full(state) with no previous allocation, the entries only: the
 * same packed runs (ids are handed out from 1 in order, slots in backend
 * order), deduplicating IPv4 frontends and backends on numeric keys, so no
 * object is made per entry. The table, whose maps are keyed by strings,
 * is built when first asked for.
 */
export function lbFirst(state: LbState): LbFirst {
  const list = state.frontends.slice();
  let nBackends = 0;
  for (const fe of list) nBackends += fe.backends.length;
  const feNum = new NumIndex(list.length), beNum = new NumIndex(nBackends);
  const feStr = new Map<string, number>(), beStr = new Map<string, number>();

  // Columns sized for the most there can be (every backend listed distinct), filled up to nBe / nSlots.
  const fronts: LbFrontend[] = [];
  const slotStart = new Uint32Array(list.length + 1);
  const slotIds = new Uint32Array(nBackends);
  const beFamily = new Uint8Array(nBackends), bePort = new Uint16Array(nBackends), beProto = new Uint8Array(nBackends), beFlags = new Uint8Array(nBackends);
  const beAddress: string[] = [];
  const beAddr4 = new Float64Array(nBackends);
  const lastUser = new Int32Array(nBackends);
  let be4 = 0, nBe = 0, nSlots = 0;
  for (const fe of list) {
    const fk = fe.family === 4 ? l4Num(fe.address, fe.port, fe.protocol) : -1;
    if (fk >= 0) {
      if (feNum.get(fk) >= 0) continue;
      feNum.add(fk, fronts.length);
    } else {
      const fid = l4Id(fe.family, fe.address, fe.port, fe.protocol);
      if (feStr.has(fid)) continue;
      feStr.set(fid, fronts.length);
    }
    const fi = fronts.length;
    fronts.push(fe);
    const proto = protoNumber(fe.protocol);
    const bes = fe.backends;
    for (let i = 0; i < bes.length; i++) {
      const port = bes.port(i);
      const bk = fe.family === 4 ? l4NumOf(bes.ipv4(i), port, fe.protocol) : -1;
      let bi: number;
      if (bk >= 0) bi = beNum.get(bk);
      else bi = beStr.get(l4Id(fe.family, bes.address(i), port, fe.protocol)) ?? -1;
      if (bi < 0) {
        bi = nBe++;
        if (bk >= 0) beNum.add(bk, bi);
        else beStr.set(l4Id(fe.family, bes.address(i), port, fe.protocol), bi);
        // The first use sets the flags.
        beFamily[bi] = fe.family;
        beAddress.push(bes.address(i));
        bePort[bi] = port;
        beProto[bi] = proto;
        beFlags[bi] = bes.terminating(i) ? BE_F_TERMINATING : 0;
        beAddr4[bi] = bk >= 0 ? Math.floor(bk / 131072) : -1;
        lastUser[bi] = fi;
        if (fe.family === 4) be4++;
      } else if (lastUser[bi] === fi) continue; // listed twice: the first counts
      else lastUser[bi] = fi;
      slotIds[nSlots++] = bi + 1; // ids from 1 in order of first use
    }
    slotStart[fi + 1] = nSlots;
  }
  const beIds = new Uint32Array(nBe);
  for (let i = 0; i < beIds.length; i++) beIds[i] = i + 1;
  const rnIds = new Uint32Array(fronts.length);
  for (let i = 0; i < rnIds.length; i++) rnIds[i] = i + 1;
  const slotBase = firstBases(fronts, slotStart);
  const packed = encodeRuns({ beFamily, beAddress, bePort, beProto, beFlags, beIds, beAddr4, be4, fronts, rnIds, slotStart, slotIds, slotBase });
  let table: LbTable | undefined;
  return {
    packed,
    frontends: fronts.length,
    backends: beIds.length,
    table: () => (table ??= LbTable.full({ frontends: list }, emptyAllocation(), false).table),
  };
}

/** reconcile() plans for a full build (the packed entries as views, in lbEntries' write order). */
export function lbFullPlans(packed: readonly PackedRun[], open: (name: LbConfigMapName) => MapAccess): MapPlan[] {
  const desired = new Map<string, MapEntry[]>(LB_CONFIG_MAPS.map((n) => [n, []]));
  for (const r of packed) {
    const list = desired.get(r.name)!;
    for (let i = 0; i < r.count; i++) {
      list.push({ key: r.keys.subarray(i * r.keySize, (i + 1) * r.keySize), value: r.values.subarray(i * r.valueSize, (i + 1) * r.valueSize) });
    }
  }
  return LB_CONFIG_MAPS.map((name) => ({ name, map: open(name), desired: desired.get(name)!, phase: () => lbPhase(name) }));
}

export type LbDeltaEntries = Record<LbConfigMapName, { desired: MapEntry[]; scope: Uint8Array[] }>;

function emptyDelta(): LbDeltaEntries {
  const d = {} as LbDeltaEntries;
  for (const n of LB_CONFIG_MAPS) d[n] = { desired: [], scope: [] };
  return d;
}

/** A backend's further users (beyond the first, kept inline): frontend index -> [sort key, flags]. */
type MoreUsers = Map<number, [string, number]>;

/**
 * Frontends and backends, numbered: a frontend or backend is an index into
 * arrays of numbers (and of the strings the model already holds), found by
 * its numeric key (plain IPv4 with TCP/UDP, as lbFirst) or else by its l4Id.
 * Indexes of deleted ones are reused. The LbAllocation is made from the
 * arrays when asked for.
 */
export class LbTable {
  // Backends 0 .. #beLen - 1: family, address, port, IPPROTO, id (0: none
  // yet); the first user (frontend index, -1: none; its sort key and the
  // flags it sets) and the others. Numbers in typed columns (grown by #backAdd).
  #beLen = 0;
  #beFamily = new Uint8Array(16);
  readonly #beAddress: string[] = [];
  #bePort = new Uint16Array(16);
  #beProto = new Uint8Array(16);
  #beId = new Uint32Array(16);
  #beUser = new Int32Array(16);
  readonly #beSk: string[] = [];
  #beFlags = new Uint8Array(16);
  readonly #beMore = new Map<number, MoreUsers>();
  readonly #beFree: number[] = [];
  #beNum = new NumIndex(16);
  readonly #beStr = new Map<string, number>();
  #nBackends = 0;

  // Frontends: the frontend (undefined: index unused), sort key, insertion
  // number (state() order among equal sort keys), rev-NAT id (0: none), slots (backend indexes).
  readonly #fe: (LbFrontend | undefined)[] = [];
  readonly #feSort: string[] = [];
  readonly #feSeq: number[] = [];
  readonly #feRn: number[] = [];
  readonly #feSlots: (number[] | undefined)[] = [];
  /** Slot-array index of each frontend's slot 1 (0: no slots). */
  readonly #feBase: number[] = [];
  /** Taken slot ranges per family (set by the constructor and by full()). */
  #ranges: ReturnType<typeof slotRangesOf>;
  readonly #feFree: number[] = [];
  #feNum = new NumIndex(16);
  readonly #feStr = new Map<string, number>();
  #nFronts = 0;
  #seq = 0;

  #beIds: FreeIds;
  #rnIds: FreeIds;

  /**
   * The table for `state` as lbEntries() just programmed it with `allocation`
   * (the allocation lbEntries returned).
   */
  constructor(state: LbState, allocation: LbAllocation) {
    this.#beIds = new FreeIds(allocation.backends.values());
    this.#rnIds = new FreeIds(allocation.frontends.values());
    this.#ranges = slotRangesOf(allocation);
    if (state.frontends.length === 0) return;
    for (const fe of state.frontends) {
      if (this.#frontFind(fe) >= 0) continue;
      const f = this.#frontAdd(fe);
      const sortKey = frontendSortKey(fe);
      this.#setFront(f, fe, sortKey);
      this.#use(f, sortKey, fe);
    }
    const byId = new Map<L4Id, number>();
    for (let b = 0; b < this.#beLen; b++) {
      const bid = this.#bid(b);
      byId.set(bid, b);
      this.#setBeId(b, allocation.backends.get(bid) ?? 0);
    }
    for (let f = 0; f < this.#fe.length; f++) {
      const fe = this.#fe[f]!;
      const fid = l4Id(fe.family, fe.address, fe.port, fe.protocol);
      this.#feRn[f] = allocation.frontends.get(fid) ?? 0;
      const slots = allocation.slots.get(fid);
      if (slots) this.#feSlots[f] = slots.map((bid) => byId.get(bid)!);
      this.#feBase[f] = slots && slots.length > 0 ? allocation.bases.get(fid) ?? 0 : 0;
    }
  }

  /**
   * The table for `state` and every entry of every map, in one pass: the same
   * ids, slots and entries as lbEntries(state, prev), and the same table as
   * `new LbTable(state, lbEntries(state, prev).allocation)`, without one
   * object per entry. The entries come packed, one run per map and write
   * phase, in the order reconcile() writes them into empty maps (none when
   * `encode` is false: the table alone).
   */
  static full(state: LbState, prev: LbAllocation = emptyAllocation(), encode = true): LbFull {
    const table = new LbTable({ frontends: [] }, emptyAllocation());
    const list = state.frontends;
    let nBackends = 0;
    for (const fe of list) nBackends += fe.backends.length;
    table.#feNum = new NumIndex(list.length);
    table.#beNum = new NumIndex(nBackends);

    // Frontends (the first of equal ones wins) and their backends (listed twice: the
    // first counts; a backend's flags come from its first use), as the constructor.
    const fes: LbFrontend[] = [];
    const wants: number[][] = [];
    for (const fe of list) {
      if (table.#frontFind(fe) >= 0) continue;
      const f = table.#frontAdd(fe);
      const sortKey = frontendSortKey(fe);
      table.#setFront(f, fe, sortKey);
      wants.push(table.#use(f, sortKey, fe));
      fes.push(fe);
    }

    // Ids as lbEntries gives them: kept when still in use, else the lowest not in `prev`, in order.
    const nBe = table.#beLen;
    const withPrev = prev.backends.size > 0 || prev.frontends.size > 0 || prev.slots.size > 0;
    const bePool = new IdPool(prev.backends.values());
    let be4 = 0;
    for (let b = 0; b < nBe; b++) {
      table.#setBeId(b, (withPrev ? prev.backends.get(table.#bid(b)) : undefined) || bePool.alloc());
      if (table.#beFamily[b] === 4) be4++;
    }
    const rnPool = new IdPool(prev.frontends.values());
    for (let f = 0; f < fes.length; f++) {
      const fe = fes[f]!;
      table.#feRn[f] = (withPrev ? prev.frontends.get(l4Id(fe.family, fe.address, fe.port, fe.protocol)) : undefined) || rnPool.alloc();
    }
    table.#beIds = new FreeIds(table.#beId.subarray(0, nBe));
    table.#rnIds = new FreeIds(table.#feRn);

    // Slots: with no previous layout, the backends in order; each frontend's range placed as lbEntries does.
    const slotStart = new Uint32Array(fes.length + 1);
    const slotIds: number[] = [];
    const slotBase = new Uint32Array(fes.length);
    const ranges = slotRangesOf(prev);
    const frees: [4 | 6, number, number][] = [];
    const present = new Set<L4Id>();
    for (let f = 0; f < fes.length; f++) {
      const fe = fes[f]!;
      const fid = withPrev ? l4Id(fe.family, fe.address, fe.port, fe.protocol) : '';
      if (withPrev) present.add(fid);
      const before = prev.slots.size > 0 ? prev.slots.get(fid) : undefined;
      let slots = wants[f]!;
      if (before && before.length > 0) {
        const ix = new Map<L4Id, number>();
        for (const b of slots) ix.set(table.#bid(b), b);
        slots = assignSlots(before, slots.map((b) => table.#bid(b))).map((bid) => ix.get(bid)!);
      }
      const n = before?.length ?? 0;
      const oldBase = n > 0 ? prev.bases.get(fid) ?? 0 : 0;
      const base = placeSlots(ranges[fe.family], oldBase, n, slots.length);
      const left = slotsToFree(oldBase, n, base, slots.length);
      if (left) frees.push([fe.family, ...left]);
      table.#feSlots[f] = slots;
      table.#feBase[f] = base;
      slotBase[f] = base;
      for (const b of slots) slotIds.push(table.#beId[b]!);
      slotStart[f + 1] = slotIds.length;
    }
    // Ranges of frontends that are gone, or that moved or shrank, are free once every frontend is placed.
    for (const [fid, base] of prev.bases) {
      const n = prev.slots.get(fid)?.length ?? 0;
      if (n > 0 && !present.has(fid)) frees.push([fid.startsWith('4|') ? 4 : 6, base, n]);
    }
    for (const [family, base, n] of frees) ranges[family].free(base, n);
    table.#ranges = ranges;
    if (!encode) return { table, packed: [] };
    const packed = encodeRuns({
      beFamily: table.#beFamily, beAddress: table.#beAddress, bePort: table.#bePort, beProto: table.#beProto, beFlags: table.#beFlags,
      beIds: table.#beId.subarray(0, nBe), be4, fronts: fes, rnIds: table.#feRn, slotStart, slotIds, slotBase,
    });
    return { table, packed };
  }

  get frontends(): number {
    return this.#nFronts;
  }

  /** How many backends have an id. */
  get backends(): number {
    return this.#nBackends;
  }

  /** The ids and slots, as lbEntries gives them (made from the table on each call). */
  get allocation(): LbAllocation {
    const a = emptyAllocation();
    const bids: (L4Id | undefined)[] = [];
    for (let b = 0; b < this.#beLen; b++) {
      if (this.#beId[b]! === 0) continue;
      const bid = this.#bid(b);
      bids[b] = bid;
      a.backends.set(bid, this.#beId[b]!);
    }
    for (let f = 0; f < this.#fe.length; f++) {
      const fe = this.#fe[f];
      if (!fe) continue;
      const fid = l4Id(fe.family, fe.address, fe.port, fe.protocol);
      if (this.#feRn[f]! !== 0) a.frontends.set(fid, this.#feRn[f]!);
      const slots = this.#feSlots[f];
      if (slots) a.slots.set(fid, slots.map((b) => bids[b] ?? this.#bid(b)));
      if (slots && slots.length > 0) a.bases.set(fid, this.#feBase[f]!);
    }
    return a;
  }

  /** The rev-NAT id of a frontend, if it has one. */
  revNatId(fe: Pick<LbFrontend, 'family' | 'address' | 'port' | 'protocol'>): number | undefined {
    const f = this.#frontFind(fe);
    return f >= 0 && this.#feRn[f]! !== 0 ? this.#feRn[f]! : undefined;
  }

  #bid(b: number): L4Id {
    return l4Id(this.#beFamily[b] === 4 ? 4 : 6, this.#beAddress[b]!, this.#bePort[b]!, protoName(this.#beProto[b]!)!);
  }

  #frontFind(fe: Pick<LbFrontend, 'family' | 'address' | 'port' | 'protocol'>): number {
    const k = fe.family === 4 ? l4Num(fe.address, fe.port, fe.protocol) : -1;
    if (k >= 0) return this.#feNum.get(k);
    return this.#feStr.get(l4Id(fe.family, fe.address, fe.port, fe.protocol)) ?? -1;
  }

  /** A new index for the frontend (not in the table). */
  #frontAdd(fe: Pick<LbFrontend, 'family' | 'address' | 'port' | 'protocol'>): number {
    const f = this.#feFree.pop() ?? this.#fe.length;
    const k = fe.family === 4 ? l4Num(fe.address, fe.port, fe.protocol) : -1;
    if (k >= 0) this.#feNum.add(k, f);
    else this.#feStr.set(l4Id(fe.family, fe.address, fe.port, fe.protocol), f);
    this.#fe[f] = undefined;
    this.#feSort[f] = '';
    this.#feSeq[f] = 0;
    this.#feRn[f] = 0;
    this.#feSlots[f] = undefined;
    this.#feBase[f] = 0;
    return f;
  }

  #setFront(f: number, fe: LbFrontend, sortKey: string): void {
    if (this.#fe[f] === undefined) {
      this.#feSeq[f] = ++this.#seq;
      this.#nFronts++;
    }
    this.#fe[f] = fe;
    this.#feSort[f] = sortKey;
  }

  /** Give the index of a frontend no longer in the table back (its key is `fe`'s). */
  #frontRelease(f: number, fe: Pick<LbFrontend, 'family' | 'address' | 'port' | 'protocol'>): void {
    const k = fe.family === 4 ? l4Num(fe.address, fe.port, fe.protocol) : -1;
    if (k >= 0) this.#feNum.delete(k);
    else this.#feStr.delete(l4Id(fe.family, fe.address, fe.port, fe.protocol));
    this.#feSlots[f] = undefined;
    this.#feFree.push(f);
  }

  /** The index of a backend by its numeric key (l4Num; -1: none) or else its fields. */
  #backFind(k: number, family: 4 | 6, address: string, port: number, protocol: string): number {
    if (k >= 0) return this.#beNum.get(k);
    return this.#beStr.get(l4Id(family, address, port, protocol)) ?? -1;
  }

  #backAdd(k: number, family: 4 | 6, address: string, port: number, protocol: string, proto: number): number {
    let b = this.#beFree.pop();
    if (b === undefined) {
      b = this.#beLen++;
      if (b === this.#beFamily.length) this.#growBackends(b * 2);
    }
    if (k >= 0) this.#beNum.add(k, b);
    else this.#beStr.set(l4Id(family, address, port, protocol), b);
    this.#beFamily[b] = family;
    this.#beAddress[b] = address;
    this.#bePort[b] = port;
    this.#beProto[b] = proto;
    this.#beId[b] = 0;
    this.#beUser[b] = -1;
    this.#beSk[b] = '';
    this.#beFlags[b] = 0;
    return b;
  }

  #backRelease(b: number): void {
    const family = this.#beFamily[b] === 4 ? 4 : 6, address = this.#beAddress[b]!, port = this.#bePort[b]!;
    const protocol = protoName(this.#beProto[b]!)!;
    const k = family === 4 ? l4Num(address, port, protocol) : -1;
    if (k >= 0) this.#beNum.delete(k);
    else this.#beStr.delete(l4Id(family, address, port, protocol));
    if (this.#beId[b]! !== 0) this.#nBackends--;
    this.#beId[b] = 0;
    this.#beAddress[b] = '';
    this.#beSk[b] = '';
    this.#beMore.delete(b);
    this.#beFree.push(b);
  }

  #growBackends(cap: number): void {
    const grow = <T extends Uint8Array | Uint16Array | Uint32Array | Int32Array>(a: T, make: (n: number) => T): T => {
      const b = make(cap);
      b.set(a);
      return b;
    };
    this.#beFamily = grow(this.#beFamily, (n) => new Uint8Array(n));
    this.#bePort = grow(this.#bePort, (n) => new Uint16Array(n));
    this.#beProto = grow(this.#beProto, (n) => new Uint8Array(n));
    this.#beId = grow(this.#beId, (n) => new Uint32Array(n));
    this.#beUser = grow(this.#beUser, (n) => new Int32Array(n));
    this.#beFlags = grow(this.#beFlags, (n) => new Uint8Array(n));
  }

  #setBeId(b: number, id: number): void {
    if (this.#beId[b]! === 0 && id !== 0) this.#nBackends++;
    this.#beId[b] = id;
  }

  #hasUser(b: number, f: number): boolean {
    return this.#beUser[b] === f || (this.#beMore.get(b)?.has(f) ?? false);
  }

  #addUser(b: number, f: number, sk: string, flags: number): void {
    if (this.#beUser[b] === -1) {
      this.#beUser[b] = f;
      this.#beSk[b] = sk;
      this.#beFlags[b] = flags;
      return;
    }
    let more = this.#beMore.get(b);
    if (!more) this.#beMore.set(b, (more = new Map()));
    more.set(f, [sk, flags]);
  }

  #deleteUser(b: number, f: number): boolean {
    const more = this.#beMore.get(b);
    if (this.#beUser[b] !== f) return more?.delete(f) ?? false;
    const next = more?.entries().next();
    if (more && next && !next.done) {
      const [g, [sk, flags]] = next.value;
      more.delete(g);
      if (more.size === 0) this.#beMore.delete(b);
      this.#beUser[b] = g;
      this.#beSk[b] = sk;
      this.#beFlags[b] = flags;
    } else this.#beUser[b] = -1;
    return true;
  }

  /** The flags of the backend's user first in state order. */
  #ownerFlags(b: number): number {
    let sk = this.#beSk[b]!, flags = this.#beFlags[b]!;
    const more = this.#beMore.get(b);
    if (more) {
      for (const [s, fl] of more.values()) {
        if (s < sk) {
          sk = s;
          flags = fl;
        }
      }
    }
    return flags;
  }

  #use(f: number, sortKey: string, fe: LbFrontend, touched?: Set<number>): number[] {
    const list: number[] = [];
    const proto = protoNumber(fe.protocol);
    const bes = fe.backends;
    for (let i = 0; i < bes.length; i++) {
      const address = bes.address(i), port = bes.port(i);
      const k = fe.family === 4 ? l4NumOf(bes.ipv4(i), port, fe.protocol) : -1;
      let b = this.#backFind(k, fe.family, address, port, fe.protocol);
      if (b < 0) b = this.#backAdd(k, fe.family, address, port, fe.protocol, proto);
      else if (this.#hasUser(b, f)) continue; // listed twice: the first counts
      this.#addUser(b, f, sortKey, bes.terminating(i) ? BE_F_TERMINATING : 0);
      list.push(b);
      touched?.add(b);
    }
    return list;
  }

  #unuse(f: number, fe: LbFrontend, touched: Set<number>): void {
    const bes = fe.backends;
    for (let i = 0; i < bes.length; i++) {
      const port = bes.port(i);
      const k = fe.family === 4 ? l4NumOf(bes.ipv4(i), port, fe.protocol) : -1;
      const b = this.#backFind(k, fe.family, bes.address(i), port, fe.protocol);
      if (b >= 0 && this.#deleteUser(b, f)) touched.add(b);
    }
  }

  /**
   * Apply frontend changes (keyed by sort key, as LbModel reports them) and
   * return, per map, the entries to write and the keys that may have to go.
   */
  change(changes: ReadonlyMap<string, FrontendChange>): LbDeltaEntries {
    const out = emptyDelta();
    const sorted = [...changes.keys()].sort();
    const touched = new Set<number>();
    const work: { f: number; any: LbFrontend; sortKey: string; old: LbFrontend | undefined; fe: LbFrontend | undefined; want: number[] }[] = [];
    for (const sortKey of sorted) {
      const c = changes.get(sortKey)!;
      const any = (c.after ?? c.before)!;
      let f = this.#frontFind(any);
      if (f < 0) f = this.#frontAdd(any);
      const old = this.#fe[f];
      if (old) this.#unuse(f, old, touched);
      work.push({ f, any, sortKey, old, fe: c.after, want: c.after ? this.#use(f, sortKey, c.after, touched) : [] });
    }
    const freedBe: number[] = [], freedRn: number[] = [];
    const frees: [4 | 6, number, number][] = [];

    // New backends get ids in frontend order, as lbEntries hands them out.
    for (const w of work) {
      for (const b of w.want) if (this.#beId[b]! === 0) this.#setBeId(b, this.#beIds.alloc());
    }
    for (const b of touched) {
      const id = this.#beId[b]!;
      const family = this.#beFamily[b] === 4 ? 4 : 6;
      const map = family === 4 ? LB4_BE_MAP : LB6_BE_MAP;
      if (this.#beUser[b] === -1) {
        this.#backRelease(b);
        freedBe.push(id);
        out[map].scope.push(u32Codec.encode(id));
        continue;
      }
      const flags = this.#ownerFlags(b);
      const codec = family === 4 ? lb4BackendCodec : lb6BackendCodec;
      out[map].desired.push({ key: u32Codec.encode(id), value: codec.encode({ address: this.#beAddress[b]!, port: this.#bePort[b]!, proto: this.#beProto[b]!, flags }) });
    }

    for (const w of work) {
      const f = w.f;
      const any = (w.fe ?? w.old)!;
      const family = any.family;
      const keyCodec = family === 4 ? lb4KeyCodec : lb6KeyCodec;
      const svc = out[family === 4 ? LB4_SVC_MAP : LB6_SVC_MAP];
      const slotMap = out[family === 4 ? LB4_SLOT_MAP : LB6_SLOT_MAP];
      const rnat = out[family === 4 ? LB4_RNAT_MAP : LB6_RNAT_MAP];
      const proto = protoNumber(any.protocol);
      const oldSlots = this.#feSlots[f] ?? [];
      const oldBase = oldSlots.length > 0 ? this.#feBase[f]! : 0;
      const oldRn = this.#feRn[f]! !== 0 ? this.#feRn[f]! : undefined;
      const key = keyCodec.encode({ address: any.address, port: any.port, proto });
      // Old slots no longer used: emptied after the frontend's entry stops covering them, then free.
      const release = (left: [start: number, length: number] | undefined) => {
        if (!left) return;
        for (let s = 0; s < left[1]; s++) slotMap.scope.push(u32Codec.encode(left[0] + s));
        frees.push([family, ...left]);
      };
      if (!w.fe) {
        svc.scope.push(key);
        release(slotsToFree(oldBase, oldSlots.length, 0, 0));
        if (oldRn !== undefined) {
          rnat.scope.push(u32Codec.encode(oldRn));
          freedRn.push(oldRn);
        }
        this.#feRn[f] = 0;
        this.#feSlots[f] = undefined;
        this.#feBase[f] = 0;
        if (this.#fe[f] !== undefined) {
          this.#fe[f] = undefined;
          this.#nFronts--;
        }
        continue;
      }
      const fe = w.fe;
      this.#setFront(f, fe, w.sortKey);
      let revNatId = oldRn;
      if (revNatId === undefined) this.#feRn[f] = revNatId = this.#rnIds.alloc();
      const slots = assignSlots(oldSlots, w.want);
      const base = placeSlots(this.#ranges[family], oldBase, oldSlots.length, slots.length);
      this.#feSlots[f] = slots;
      this.#feBase[f] = base;
      const affinity = fe.affinityTimeoutSeconds > 0;
      svc.desired.push({
        key,
        value: svcValueCodec.encode({
          slotBase: base, count: slots.length, flags: affinity ? SVC_F_AFFINITY : 0, revNatId, affinityTimeout: affinity ? fe.affinityTimeoutSeconds : 0,
        }),
      });
      slots.forEach((b, i) => {
        slotMap.desired.push({ key: u32Codec.encode(base + i), value: u32Codec.encode(this.#beId[b]!) });
      });
      release(slotsToFree(oldBase, oldSlots.length, base, slots.length));
      const rnCodec = family === 4 ? lb4RevNatCodec : lb6RevNatCodec;
      rnat.desired.push({ key: u32Codec.encode(revNatId), value: rnCodec.encode({ address: fe.address, port: fe.port }) });
    }
    // Indexes of frontends no longer in the table (deleted, or a deletion of one never there) go back.
    const released = new Set<number>();
    for (const w of work) {
      if (this.#fe[w.f] === undefined && !released.has(w.f)) {
        released.add(w.f);
        this.#frontRelease(w.f, w.any);
      }
    }

    for (const id of freedBe) this.#beIds.free(id);
    for (const id of freedRn) this.#rnIds.free(id);
    for (const [family, base, n] of frees) this.#ranges[family].free(base, n);
    return out;
  }

  /** The frontends, in state order. */
  state(): LbState {
    const list: number[] = [];
    for (let f = 0; f < this.#fe.length; f++) if (this.#fe[f] !== undefined) list.push(f);
    const sk = this.#feSort, seq = this.#feSeq;
    list.sort((a, b) => (sk[a]! < sk[b]! ? -1 : sk[a]! > sk[b]! ? 1 : seq[a]! - seq[b]!));
    return { frontends: list.map((f) => this.#fe[f]!) };
  }
}

/** reconcileDelta plans for a table change. */
export function lbDeltas(delta: LbDeltaEntries, open: (name: LbConfigMapName) => MapAccess & { get(key: Uint8Array): Uint8Array | undefined }): MapDelta[] {
  return LB_CONFIG_MAPS.map((name) => ({
    name,
    map: open(name),
    desired: delta[name].desired,
    scope: delta[name].scope,
    phase: () => lbPhase(name),
  }));
}
