// A BPF map with an in-memory copy of what this process wrote, so a reconcile
// diffs against memory instead of reading every entry back from the kernel.
// `resync()` re-reads the kernel's contents (at start, and on the periodic
// resync that catches drift).
import { bytesKey } from './lb-layout.ts';
import type { MapAccess } from './reconcile.ts';
import { mapLookupAll, mapUpdateBatch, type BpfMap } from './libbpf.ts';

const BATCH_CHUNK = 16384;

export class ShadowMap implements MapAccess {
  readonly map: BpfMap;
  readonly #copy = new Map<string, [Uint8Array, Uint8Array]>();

  constructor(map: BpfMap) {
    this.map = map;
    this.resync();
  }

  /** Replace the copy with what the kernel holds now. */
  resync(): void {
    this.#copy.clear();
    const { keySize, valueSize } = this.map.info;
    let batch: ReturnType<typeof mapLookupAll>;
    try {
      batch = mapLookupAll(this.map.fd, keySize, valueSize);
    } catch {
      // Batch lookups need 5.6+: read key by key instead.
      for (const [k, v] of this.map.entries()) this.#copy.set(bytesKey(k), [k, v]);
      return;
    }
    const { keys, values, count } = batch;
    for (let i = 0; i < count; i++) {
      const k = Uint8Array.prototype.slice.call(keys, i * keySize, (i + 1) * keySize);
      const v = Uint8Array.prototype.slice.call(values, i * valueSize, (i + 1) * valueSize);
      this.#copy.set(bytesKey(k), [k, v]);
    }
  }

  get size(): number {
    return this.#copy.size;
  }

  entries(): Iterable<[Uint8Array, Uint8Array]> {
    return this.#copy.values();
  }

  /** The value as this process last wrote or read it (no system call). */
  get(key: Uint8Array): Uint8Array | undefined {
    return this.#copy.get(bytesKey(key))?.[1];
  }

  update(key: Uint8Array, value: Uint8Array): void {
    this.map.set(key, value);
    this.#copy.set(bytesKey(key), [Uint8Array.from(key), Uint8Array.from(value)]);
  }

  /**
   * Many updates with bpf_map_update_batch (5.6+); entry by entry where the
   * kernel has no batch ops. The buffers must not be modified afterwards.
   */
  updateBatch(entries: readonly { key: Uint8Array; value: Uint8Array }[]): void {
    const { keySize, valueSize } = this.map.info;
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
            this.#copy.set(bytesKey(e.key), [e.key, e.value]);
          }
        }
      }
      for (let i = done; i < part.length; i++) this.update(part[i]!.key, part[i]!.value);
    }
  }

  #batchOk = true;

  delete(key: Uint8Array): void {
    this.map.delete(key);
    this.#copy.delete(bytesKey(key));
  }
}
