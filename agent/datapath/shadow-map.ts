// A BPF map with an in-memory copy of what this process wrote, so a reconcile
// diffs against memory instead of reading every entry back from the kernel.
// `resync()` re-reads the kernel's contents (at start, and on the periodic
// resync that catches drift).
//
// Entries written packed (writePacked: the first apply into an empty map) are
// kept as the packed buffers and indexed on first use: the first apply
// allocates nothing per entry.
import { bytesKey } from './lb-layout.ts';
import type { MapAccess } from './reconcile.ts';
import { mapLookupAll, mapUpdateBatch, type BpfMap } from './libbpf.ts';

const BATCH_CHUNK = 16384;

/** bytesKey of the `size` bytes at `at`, made in one go for the key sizes of the LB maps (4, 12 and 24 bytes). */
function keyAt(b: Uint8Array, at: number, size: number): string {
  const u = (i: number) => b[at + i]! | (b[at + i + 1]! << 8);
  switch (size) {
    case 4:
      return String.fromCharCode(u(0), u(2));
    case 12:
      return String.fromCharCode(u(0), u(2), u(4), u(6), u(8), u(10));
    case 24:
      return String.fromCharCode(u(0), u(2), u(4), u(6), u(8), u(10), u(12), u(14), u(16), u(18), u(20), u(22));
    default:
      return bytesKey(b.subarray(at, at + size));
  }
}

function keyOf(b: Uint8Array): string {
  return keyAt(b, 0, b.length);
}

/** Entries of a packed segment are stored as segment << SEG_SHIFT | position (small integers, no object each). */
const SEG_SHIFT = 21;
const POS_MASK = (1 << SEG_SHIFT) - 1;

interface Packed {
  keys: Uint8Array;
  values: Uint8Array;
  count: number;
}

export class ShadowMap implements MapAccess {
  readonly map: BpfMap;
  /** Key -> [key, value], or the place of an entry in a packed segment. */
  readonly #copy = new Map<string, [Uint8Array, Uint8Array] | number>();
  /** Packed segments entries of #copy refer to. */
  #segs: Packed[] = [];
  /** Packed entries not in #copy yet (keys #copy does not hold). */
  #pending: Packed[] = [];
  #pendingCount = 0;

  constructor(map: BpfMap) {
    this.map = map;
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
      for (const [k, v] of this.map.entries()) this.#copy.set(keyOf(k), [k, v]);
      return;
    }
    const { keys, values, count } = batch;
    for (let i = 0; i < count; i++) {
      const k = Uint8Array.prototype.slice.call(keys, i * keySize, (i + 1) * keySize);
      const v = Uint8Array.prototype.slice.call(values, i * valueSize, (i + 1) * valueSize);
      this.#copy.set(keyOf(k), [k, v]);
    }
  }

  /** Index the entries written packed now rather than on first use (when idle). */
  prepare(): void {
    this.#indexed();
  }

  /** The copy with every packed entry indexed. */
  #indexed(): Map<string, [Uint8Array, Uint8Array] | number> {
    if (this.#pending.length > 0) {
      const { keySize, valueSize } = this.map.info;
      if (this.#copy.size === 0) this.#segs = []; // no entry refers to the old ones
      for (const seg of this.#pending) {
        const keys = seg.keys;
        if (seg.count > POS_MASK + 1 || this.#segs.length >= 1 << (31 - SEG_SHIFT)) {
          // Out of places to number: entries as pairs of views.
          for (let i = 0; i < seg.count; i++) {
            this.#copy.set(keyAt(keys, i * keySize, keySize), [keys.subarray(i * keySize, (i + 1) * keySize), seg.values.subarray(i * valueSize, (i + 1) * valueSize)]);
          }
          continue;
        }
        const base = (this.#segs.push(seg) - 1) << SEG_SHIFT;
        for (let i = 0; i < seg.count; i++) this.#copy.set(keyAt(keys, i * keySize, keySize), base | i);
      }
      this.#pending = [];
      this.#pendingCount = 0;
    }
    return this.#copy;
  }

  #value(e: [Uint8Array, Uint8Array] | number): Uint8Array {
    if (typeof e !== 'number') return e[1];
    const seg = this.#segs[e >>> SEG_SHIFT]!, i = e & POS_MASK, n = this.map.info.valueSize;
    return seg.values.subarray(i * n, (i + 1) * n);
  }

  get size(): number {
    return this.#copy.size + this.#pendingCount;
  }

  *entries(): Iterable<[Uint8Array, Uint8Array]> {
    const { keySize } = this.map.info;
    for (const e of this.#indexed().values()) {
      if (typeof e !== 'number') yield e;
      else {
        const i = e & POS_MASK;
        yield [this.#segs[e >>> SEG_SHIFT]!.keys.subarray(i * keySize, (i + 1) * keySize), this.#value(e)];
      }
    }
  }

  /** The value as this process last wrote or read it (no system call). */
  get(key: Uint8Array): Uint8Array | undefined {
    const e = this.#indexed().get(keyOf(key));
    return e === undefined ? undefined : this.#value(e);
  }

  update(key: Uint8Array, value: Uint8Array): void {
    this.map.set(key, value);
    this.#indexed().set(keyOf(key), [Uint8Array.from(key), Uint8Array.from(value)]);
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
            copy.set(keyOf(e.key), [e.key, e.value]);
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
    this.map.delete(key);
    this.#indexed().delete(keyOf(key));
  }
}
