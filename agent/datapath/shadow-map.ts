// A BPF map with an in-memory copy of what this process wrote, so a reconcile
// diffs against memory instead of reading every entry back from the kernel.
// `resync()` re-reads the kernel's contents into the copy (at start, and
// when the copy is in doubt); `drift()` compares the kernel's contents with
// the copy chunk by chunk through one reused buffer, for the periodic check
// that repairs changes made behind the agent's back.
//
// Entries written packed (writePacked: the first apply into an empty map) are
// kept as the packed buffers and indexed on first use: the first apply
// allocates nothing per entry.
//
// An array map (the LB maps keyed by dense ids) always holds every index:
// here an entry whose value is all zeros is no entry, and deleting one
// writes zeros. So callers see the same map semantics for both kinds.
//
// drift() on an array map reads the used range (index 0 up to the highest
// one the copy holds: the allocators' high-water mark) whole, and of the
// rest, which should be all zeros, one window per check, so the whole tail
// is read once every TAIL_ROUNDS checks. A stray entry up there is found
// later, not never, and that is enough: no program reaches an index no
// slot, id or frontend range points at, and whatever takes such an index
// into use writes it first.
import type { MapAccess } from './reconcile.ts';
import { MapType, mapLookupAll, mapLookupBatch, mapNextKey, mapTryLookup, mapUpdateBatch, type BpfMap } from './libbpf.ts';
import { LE } from './lb-layout.ts';

const BATCH_CHUNK = 16384;

/** Entries of a packed segment are stored as segment << SEG_SHIFT | position (small integers, no object each). */
const SEG_SHIFT = 21;
const POS_MASK = (1 << SEG_SHIFT) - 1;

interface Packed {
  keys: Uint8Array;
  values: Uint8Array;
  count: number;
}

/** A hash of `n` key bytes at `at`. */
function hashAt(b: Uint8Array, at: number, n: number): number {
  let h = n ^ 0x811c9dc5;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const w = b[at + i]! | (b[at + i + 1]! << 8) | (b[at + i + 2]! << 16) | (b[at + i + 3]! << 24);
    h = Math.imul(h ^ Math.imul(w, 0xcc9e2d51), 0x1b873593);
    h = (h << 13) | (h >>> 19);
  }
  for (; i < n; i++) h = Math.imul(h ^ b[at + i]!, 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

const EMPTY = 0, GONE = -1, DEAD = -1;

/**
 * The in-memory copy: key bytes -> entry, an open-addressing table of
 * numbers over the key bytes (no string or object per packed entry).
 * An entry is a handle: >= 0 a packed place (segment << SEG_SHIFT |
 * position), < 0 an entry held as a pair of buffers (-2 - index into #pairs).
 * Iterates in insertion order, as a Map does (a key set again keeps its place).
 */
class ByteIndex {
  /** Handle of the entry at each insertion position (DEAD: deleted). */
  #order = new Int32Array(16);
  #len = 0;
  #live = 0;
  /** Insertion position + 1 per slot (EMPTY, or GONE after a delete). */
  #table = new Int32Array(32);
  #used = 0;
  #pairs: ([Uint8Array, Uint8Array] | undefined)[] = [];
  #freePairs: number[] = [];
  readonly #segs: () => readonly Packed[];
  readonly #keySize: number;

  constructor(segs: () => readonly Packed[], keySize: number) {
    this.#segs = segs;
    this.#keySize = keySize;
  }

  get size(): number {
    return this.#live;
  }

  clear(): void {
    this.#order = new Int32Array(16);
    this.#len = 0;
    this.#live = 0;
    this.#table = new Int32Array(32);
    this.#used = 0;
    this.#pairs = [];
    this.#freePairs = [];
  }

  /** Key bytes of a handle: the buffer and the offset. */
  #keyOf(h: number): [Uint8Array, number] {
    if (h >= 0) return [this.#segs()[h >>> SEG_SHIFT]!.keys, (h & POS_MASK) * this.#keySize];
    return [this.#pairs[-2 - h]![0], 0];
  }

  #same(h: number, b: Uint8Array, at: number, n: number): boolean {
    let kb: Uint8Array, ka: number;
    if (h >= 0) {
      kb = this.#segs()[h >>> SEG_SHIFT]!.keys;
      ka = (h & POS_MASK) * this.#keySize;
      if (n !== this.#keySize) return false;
    } else {
      kb = this.#pairs[-2 - h]![0];
      ka = 0;
      if (kb.length !== n) return false;
    }
    return sameAt(kb, ka, b, at, n);
  }

  /** The table slot holding the key, or -1. */
  #find(b: Uint8Array, at: number, n: number): number {
    const t = this.#table, mask = t.length - 1;
    let i = hashAt(b, at, n) & mask;
    for (;;) {
      const p = t[i]!;
      if (p === EMPTY) return -1;
      if (p !== GONE && this.#same(this.#order[p - 1]!, b, at, n)) return i;
      i = (i + 1) & mask;
    }
  }

  /** Insertion position of the key, or -1. */
  positionOf(b: Uint8Array, at: number, n: number): number {
    const i = this.#find(b, at, n);
    return i < 0 ? -1 : this.#table[i]! - 1;
  }

  /** Insertion positions in use (live or deleted): handleAt() takes 0 up to this. */
  get positions(): number {
    return this.#len;
  }

  /** The handle at an insertion position (DEAD: deleted). */
  handleAt(pos: number): number {
    return this.#order[pos]!;
  }

  /** The handle for the key, or undefined. */
  get(b: Uint8Array, at = 0, n = b.length): number | undefined {
    const i = this.#find(b, at, n);
    return i < 0 ? undefined : this.#order[this.#table[i]! - 1]!;
  }

  /** The handle of the pair: a new one, or the old one's place reused. */
  pair(k: Uint8Array, v: Uint8Array): number {
    const e: [Uint8Array, Uint8Array] = [k, v];
    const free = this.#freePairs.pop();
    if (free !== undefined) {
      this.#pairs[free] = e;
      return -2 - free;
    }
    return -2 - (this.#pairs.push(e) - 1);
  }

  #drop(h: number): void {
    if (h < 0) {
      this.#pairs[-2 - h] = undefined;
      this.#freePairs.push(-2 - h);
    }
  }

  /** Set the key (the bytes of `h`) to `h`. */
  set(h: number): void {
    const [b, at] = this.#keyOf(h);
    const n = h >= 0 ? this.#keySize : b.length;
    const i = this.#find(b, at, n);
    if (i >= 0) {
      const pos = this.#table[i]! - 1;
      const old = this.#order[pos]!;
      this.#order[pos] = h;
      if (old !== h) this.#drop(old);
      return;
    }
    if (this.#len === this.#order.length) this.#rebuild(Math.max(16, this.#live * 2));
    else if ((this.#used + 1) * 2 > this.#table.length) this.#rebuild(this.#order.length);
    const pos = this.#len++;
    this.#order[pos] = h;
    this.#live++;
    this.#place(b, at, n, pos);
  }

  #place(b: Uint8Array, at: number, n: number, pos: number): void {
    const t = this.#table, mask = t.length - 1;
    let i = hashAt(b, at, n) & mask;
    while (t[i] !== EMPTY) i = (i + 1) & mask;
    t[i] = pos + 1;
    this.#used++;
  }

  delete(b: Uint8Array): void {
    const i = this.#find(b, 0, b.length);
    if (i < 0) return;
    const pos = this.#table[i]! - 1;
    this.#drop(this.#order[pos]!);
    this.#order[pos] = DEAD;
    this.#table[i] = GONE;
    this.#live--;
  }

  /** Drop deleted places, room for `cap` positions, and a fresh table. */
  #rebuild(cap: number): void {
    const old = this.#order, len = this.#len;
    const order = new Int32Array(Math.max(cap, this.#live + 1));
    let n = 0;
    for (let p = 0; p < len; p++) if (old[p] !== DEAD) order[n++] = old[p]!;
    let size = 32;
    while (size < order.length * 2) size *= 2;
    this.#order = order;
    this.#len = n;
    this.#table = new Int32Array(size);
    this.#used = 0;
    for (let p = 0; p < n; p++) {
      const h = order[p]!;
      const [b, at] = this.#keyOf(h);
      this.#place(b, at, h >= 0 ? this.#keySize : b.length, p);
    }
  }

  /** Room for `more` insertions without a rebuild. */
  reserve(more: number): void {
    if (this.#len + more > this.#order.length) this.#rebuild(this.#live + more);
  }

  /** The handles in insertion order. */
  *handles(): Iterable<number> {
    for (let p = 0; p < this.#len; p++) {
      const h = this.#order[p]!;
      if (h !== DEAD) yield h;
    }
  }

  pairOf(h: number): [Uint8Array, Uint8Array] {
    return this.#pairs[-2 - h]!;
  }
}

function allZero(b: Uint8Array, at: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (b[at + i] !== 0) return false;
  return true;
}

function sameAt(a: Uint8Array, at: number, b: Uint8Array, bt: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (a[at + i] !== b[bt + i]) return false;
  return true;
}

/** Entries per chunk of a drift() scan. */
const SCAN_CHUNK = 4096;

/** drift() checks over which the unused tail of an array map (above the highest index the copy holds) is read once. */
export const TAIL_ROUNDS = 16;

/**
 * The window of an array map's tail (indexes high .. max - 1) that one drift
 * check reads: `rounds` windows cover the tail once, in order from `high`;
 * `at` is where the previous window ended (anything outside the tail starts
 * over at `high`). Empty when there is no tail.
 */
export function tailWindow(high: number, max: number, at: number, rounds = TAIL_ROUNDS): { from: number; count: number } {
  if (high >= max) return { from: max, count: 0 };
  const from = at >= high && at < max ? at : high;
  return { from, count: Math.min(Math.ceil((max - high) / rounds), max - from) };
}

/** The index an array map's key (a u32 in host byte order) names. */
function indexAt(b: Uint8Array, at: number): number {
  return LE
    ? (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0
    : ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

function putIndex(b: Uint8Array, i: number): void {
  if (LE) {
    b[0] = i & 255; b[1] = (i >>> 8) & 255; b[2] = (i >>> 16) & 255; b[3] = i >>> 24;
  } else {
    b[3] = i & 255; b[2] = (i >>> 8) & 255; b[1] = (i >>> 16) & 255; b[0] = i >>> 24;
  }
}

/**
 * drift()'s buffers, shared by every map and kept between scans (grown when
 * a map needs more): one chunk of keys and values, the batch positions, a
 * key and a value for the key-by-key walk, a mark per copy entry, and
 * (array maps) the copy's position by index.
 */
const scratch = {
  keys: new Uint8Array(0),
  values: new Uint8Array(0),
  inBatch: new Uint8Array(0),
  outBatch: new Uint8Array(0),
  key1: new Uint8Array(0),
  key2: new Uint8Array(0),
  value: new Uint8Array(0),
  seen: new Uint8Array(0),
  byIndex: new Int32Array(0),
};

function scratchFor(keySize: number, valueSize: number, entries: number): typeof scratch {
  const s = scratch;
  if (s.keys.length < keySize * SCAN_CHUNK) s.keys = new Uint8Array(keySize * SCAN_CHUNK);
  if (s.values.length < valueSize * SCAN_CHUNK) s.values = new Uint8Array(valueSize * SCAN_CHUNK);
  if (s.inBatch.length < Math.max(keySize, 8)) {
    s.inBatch = new Uint8Array(Math.max(keySize, 8));
    s.outBatch = new Uint8Array(Math.max(keySize, 8));
  }
  if (s.key1.length !== keySize) {
    s.key1 = new Uint8Array(keySize);
    s.key2 = new Uint8Array(keySize);
  }
  if (s.value.length !== valueSize) s.value = new Uint8Array(valueSize);
  if (s.seen.length < entries) s.seen = new Uint8Array(Math.max(entries, s.seen.length * 2));
  else s.seen.fill(0, 0, entries);
  return s;
}

/** How the kernel's contents of one map differ from the copy. */
export interface MapDrift {
  /** Entries of the copy the kernel does not hold: the copy's key and value (views into the copy). */
  missing: { key: Uint8Array; value: Uint8Array }[];
  /** Entries the kernel holds with another value: the copy's key and value. */
  changed: { key: Uint8Array; value: Uint8Array }[];
  /** Keys the kernel holds and the copy does not. */
  extra: Uint8Array[];
  /** Kernel entries read (for an array map: the used range, and a window of the rest). */
  scanned: number;
}

export class ShadowMap implements MapAccess {
  readonly map: BpfMap;
  /** An array map: zeros mean "no entry", a delete writes zeros. */
  readonly #array: boolean;
  #zeros: Uint8Array | undefined;
  /** Key bytes -> the entry: a pair of buffers, or the place of an entry in a packed segment. */
  readonly #copy: ByteIndex;
  /** Packed segments entries of #copy refer to. */
  #segs: Packed[] = [];
  /** Packed entries not in #copy yet (keys #copy does not hold). */
  #pending: Packed[] = [];
  #pendingCount = 0;
  /** Array maps: where drift() reads the next window of the tail above the copy's highest index. */
  #tailAt = 0;

  constructor(map: BpfMap) {
    this.map = map;
    this.#array = map.info.type === MapType.ARRAY;
    this.#copy = new ByteIndex(() => this.#segs, map.info.keySize);
    this.resync();
  }

  /** Replace the copy with what the kernel holds now. */
  resync(): void {
    this.#copy.clear();
    this.#segs = [];
    this.#pending = [];
    this.#pendingCount = 0;
    const { keySize, valueSize } = this.map.info;
    let batch: ReturnType<typeof mapLookupAll>;
    try {
      batch = mapLookupAll(this.map.fd, keySize, valueSize);
    } catch {
      // Batch lookups need 5.6+: read key by key instead.
      for (const [k, v] of this.map.entries()) if (!this.#array || !allZero(v, 0, v.length)) this.#copy.set(this.#copy.pair(k, v));
      return;
    }
    const { keys, values } = batch;
    let count = batch.count;
    if (this.#array) {
      // Only the indexes in use (packed to the front, in place).
      let n = 0;
      for (let i = 0; i < count; i++) {
        if (allZero(values, i * valueSize, valueSize)) continue;
        if (n !== i) {
          keys.copyWithin(n * keySize, i * keySize, (i + 1) * keySize);
          values.copyWithin(n * valueSize, i * valueSize, (i + 1) * valueSize);
        }
        n++;
      }
      count = n;
    }
    if (count === 0) return;
    // Kept as one packed segment (copies, so the batch buffers are not held).
    this.#pending.push({ keys: Uint8Array.prototype.slice.call(keys, 0, count * keySize), values: Uint8Array.prototype.slice.call(values, 0, count * valueSize), count });
    this.#pendingCount = count;
    this.#indexed();
  }

  /**
   * Compare what the kernel holds with the copy, without reading it into
   * memory: the map is walked a chunk at a time (batch lookups, key by key
   * where the kernel has none) into buffers reused across maps and scans,
   * and only entries that differ are returned. Writes nothing; nothing is
   * allocated per entry that matches.
   */
  drift(): MapDrift {
    const { keySize, valueSize, maxEntries } = this.map.info;
    const copy = this.#indexed();
    const positions = copy.positions;
    const s = scratchFor(keySize, valueSize, positions);
    const seen = s.seen;
    const d: MapDrift = { missing: [], changed: [], extra: [], scanned: 0 };
    // An array's copy by index (position + 1, 0: none), up to its highest index: no hashing per entry.
    let high = 0;
    if (this.#array) {
      for (let p = 0; p < positions; p++) {
        const h = copy.handleAt(p);
        if (h !== DEAD) high = Math.max(high, this.#indexOf(h) + 1);
      }
      high = Math.min(high, maxEntries);
      if (s.byIndex.length < high) s.byIndex = new Int32Array(Math.max(high, s.byIndex.length * 2));
      s.byIndex.fill(0, 0, high);
      for (let p = 0; p < positions; p++) {
        const h = copy.handleAt(p);
        if (h !== DEAD) s.byIndex[this.#indexOf(h)] = p + 1;
      }
    }
    const byIndex = s.byIndex;
    const compare = (keys: Uint8Array, values: Uint8Array, count: number) => {
      d.scanned += count;
      for (let i = 0; i < count; i++) {
        const ko = i * keySize, vo = i * valueSize;
        let pos: number;
        if (this.#array) {
          if (allZero(values, vo, valueSize)) continue;
          const ix = indexAt(keys, ko);
          pos = ix < high ? byIndex[ix]! - 1 : -1;
        } else pos = copy.positionOf(keys, ko, keySize);
        if (pos < 0) {
          d.extra.push(keys.slice(ko, ko + keySize));
          continue;
        }
        seen[pos] = 1;
        const h = copy.handleAt(pos);
        // Compared in place (no view per entry).
        const same = h >= 0
          ? sameAt(this.#segs[h >>> SEG_SHIFT]!.values, (h & POS_MASK) * valueSize, values, vo, valueSize)
          : copy.pairOf(h)[1].length === valueSize && sameAt(copy.pairOf(h)[1], 0, values, vo, valueSize);
        if (!same) d.changed.push({ key: this.#key(h), value: this.#value(h) });
      }
    };
    if (this.#array) {
      // The used range whole (every entry of the copy is in it), then one window of the tail.
      this.#scan(s, compare, 0, high);
      const w = tailWindow(high, maxEntries, this.#tailAt);
      this.#scan(s, compare, w.from, w.count);
      this.#tailAt = w.from + w.count;
    } else this.#scan(s, compare);
    for (let p = 0; p < positions; p++) {
      if (seen[p] === 1) continue;
      const h = copy.handleAt(p);
      if (h !== DEAD) d.missing.push({ key: this.#key(h), value: this.#value(h) });
    }
    return d;
  }

  /** The array index an entry's key names. */
  #indexOf(h: number): number {
    return h >= 0 ? indexAt(this.#segs[h >>> SEG_SHIFT]!.keys, (h & POS_MASK) * this.map.info.keySize) : indexAt(this.#copy.pairOf(h)[0], 0);
  }

  /** The batch lookup works on this map (cleared when the kernel refuses the first one). */
  #scanBatchOk = true;

  /**
   * Walk the kernel's entries into the scratch buffers, `each` chunk at a
   * time: from the start, or (array maps) `limit` indexes from index `from`.
   */
  #scan(s: typeof scratch, each: (keys: Uint8Array, values: Uint8Array, count: number) => void, from = 0, limit = Infinity): void {
    const { fd, info: { keySize, valueSize } } = this.map;
    if (limit <= 0) return;
    // Both walks go on from the key before `from` (array keys are indexes, walked in order).
    const start = (buf: Uint8Array): Uint8Array | null => {
      if (from === 0) return null;
      putIndex(buf, from - 1);
      return buf;
    };
    let read = 0;
    if (this.#scanBatchOk) {
      let inBatch = start(s.inBatch), first = true;
      for (;;) {
        let r: { count: number; done: boolean };
        try {
          r = mapLookupBatch(fd, inBatch, s.outBatch, s.keys, s.values, Math.min(SCAN_CHUNK, limit - read));
        } catch (e) {
          if (!first) throw e;
          this.#scanBatchOk = false; // no batch lookups (before 5.6): key by key below
          break;
        }
        first = false;
        if (r.count > 0) each(s.keys, s.values, r.count);
        read += r.count;
        if (r.done || read >= limit) return;
        s.inBatch.set(s.outBatch);
        inBatch = s.inBatch;
      }
    }
    let prev: Uint8Array | null = start(s.key2), n = 0;
    for (; read < limit;) {
      const next: Uint8Array = prev === s.key1 ? s.key2 : s.key1;
      if (!mapNextKey(fd, prev, next)) break;
      prev = next;
      read++;
      if (!mapTryLookup(fd, next, s.value)) continue; // deleted meanwhile
      s.keys.set(next, n * keySize);
      s.values.set(s.value, n * valueSize);
      if (++n === SCAN_CHUNK) {
        each(s.keys, s.values, n);
        n = 0;
      }
    }
    if (n > 0) each(s.keys, s.values, n);
  }

  /** Index the entries written packed now rather than on first use (when idle). */
  prepare(): void {
    this.#indexed();
  }

  /** The copy with every packed entry indexed. */
  #indexed(): ByteIndex {
    if (this.#pending.length > 0) {
      const { keySize, valueSize } = this.map.info;
      const copy = this.#copy;
      if (copy.size === 0) {
        this.#segs = []; // no entry refers to the old ones
        copy.clear();
      }
      copy.reserve(this.#pendingCount);
      for (const seg of this.#pending) {
        const keys = seg.keys;
        if (seg.count > POS_MASK + 1 || this.#segs.length >= (1 << (31 - SEG_SHIFT)) - 1) {
          // Out of places to number: entries as pairs of views.
          for (let i = 0; i < seg.count; i++) {
            copy.set(copy.pair(keys.subarray(i * keySize, (i + 1) * keySize), seg.values.subarray(i * valueSize, (i + 1) * valueSize)));
          }
          continue;
        }
        const base = (this.#segs.push(seg) - 1) << SEG_SHIFT;
        for (let i = 0; i < seg.count; i++) copy.set(base | i);
      }
      this.#pending = [];
      this.#pendingCount = 0;
    }
    return this.#copy;
  }

  #key(h: number): Uint8Array {
    if (h < 0) return this.#copy.pairOf(h)[0];
    const seg = this.#segs[h >>> SEG_SHIFT]!, i = h & POS_MASK, n = this.map.info.keySize;
    return seg.keys.subarray(i * n, (i + 1) * n);
  }

  #value(h: number): Uint8Array {
    if (h < 0) return this.#copy.pairOf(h)[1];
    const seg = this.#segs[h >>> SEG_SHIFT]!, i = h & POS_MASK, n = this.map.info.valueSize;
    return seg.values.subarray(i * n, (i + 1) * n);
  }

  get size(): number {
    return this.#copy.size + this.#pendingCount;
  }

  *entries(): Iterable<[Uint8Array, Uint8Array]> {
    const copy = this.#indexed();
    for (const h of copy.handles()) yield h < 0 ? copy.pairOf(h) : [this.#key(h), this.#value(h)];
  }

  /** The value as this process last wrote or read it (no system call). */
  get(key: Uint8Array): Uint8Array | undefined {
    const h = this.#indexed().get(key);
    return h === undefined ? undefined : this.#value(h);
  }

  update(key: Uint8Array, value: Uint8Array): void {
    this.map.set(key, value);
    const copy = this.#indexed();
    copy.set(copy.pair(Uint8Array.from(key), Uint8Array.from(value)));
  }

  /**
   * Many updates with bpf_map_update_batch (5.6+); entry by entry where the
   * kernel has no batch ops. The buffers must not be modified afterwards.
   */
  updateBatch(entries: readonly { key: Uint8Array; value: Uint8Array }[]): void {
    const { keySize, valueSize } = this.map.info;
    const copy = this.#indexed();
    for (let start = 0; start < entries.length; start += BATCH_CHUNK) {
      const part = entries.slice(start, start + BATCH_CHUNK);
      let done = 0;
      if (this.#batchOk) {
        const keys = Buffer.allocUnsafe(part.length * keySize);
        const values = Buffer.allocUnsafe(part.length * valueSize);
        let sizesOk = true;
        part.forEach((e, i) => {
          if (e.key.length !== keySize || e.value.length !== valueSize) sizesOk = false;
          keys.set(e.key, i * keySize);
          values.set(e.value, i * valueSize);
        });
        if (sizesOk) {
          try {
            done = mapUpdateBatch(this.map.fd, keys, values, part.length);
          } catch {
            this.#batchOk = false; // no batch ops here (or a real error, which update() below reports)
          }
          // The copy keeps the callers' buffers: encoded entries are never modified after the fact.
          for (let i = 0; i < done; i++) {
            const e = part[i]!;
            copy.set(copy.pair(e.key, e.value));
          }
        }
      }
      for (let i = done; i < part.length; i++) this.update(part[i]!.key, part[i]!.value);
    }
  }

  /**
   * Write `count` packed entries whose keys the map does not hold (the first
   * apply into an empty map), in order: bpf_map_update_batch straight from the
   * buffers, entry by entry where the kernel has no batch ops. The copy keeps
   * the buffers (they must not be modified afterwards) and indexes them on
   * first use. A failing write throws; what was written before it is kept.
   */
  writePacked(keys: Uint8Array, values: Uint8Array, count: number): void {
    const { keySize, valueSize } = this.map.info;
    if (keys.length !== count * keySize || values.length !== count * valueSize) {
      throw new Error(`${this.map.info.name}: ${count} packed entries of ${keySize}+${valueSize} bytes, got ${keys.length}+${values.length}`);
    }
    let written = 0;
    try {
      while (written < count) {
        const end = Math.min(written + BATCH_CHUNK, count);
        if (this.#batchOk) {
          try {
            written += mapUpdateBatch(this.map.fd, keys.subarray(written * keySize, end * keySize),
              values.subarray(written * valueSize, end * valueSize), end - written);
          } catch {
            this.#batchOk = false; // as in updateBatch: the per-entry writes below report a real error
          }
        }
        for (; written < end; written++) {
          this.map.set(keys.subarray(written * keySize, (written + 1) * keySize), values.subarray(written * valueSize, (written + 1) * valueSize));
        }
      }
    } finally {
      if (written > 0) {
        this.#pending.push({ keys: keys.subarray(0, written * keySize), values: values.subarray(0, written * valueSize), count: written });
        this.#pendingCount += written;
      }
    }
  }

  #batchOk = true;

  delete(key: Uint8Array): void {
    if (this.#array) this.map.set(key, (this.#zeros ??= new Uint8Array(this.map.info.valueSize)));
    else this.map.delete(key);
    this.#indexed().delete(key);
  }
}
