// What a pinned LB map holds, read from the kernel (not through the agent's
// shadow copy), with the map semantics the agent gives both kinds of map: in
// an array (the maps keyed by dense ids) an all-zero value is no entry and
// deleting one writes zeros.
import { BpfMap, MapType, mapLookupAll } from '../../agent/datapath/libbpf.ts';
import type { MapAccess } from '../../agent/datapath/reconcile.ts';

function zero(b: Uint8Array): boolean {
  return b.every((x) => x === 0);
}

export interface KernelMap extends MapAccess {
  readonly map: BpfMap;
  get(key: Uint8Array): Uint8Array | undefined;
}

/** A view of the map behind `fd` (the fd stays owned by the caller). */
export function kernelMap(fd: number): KernelMap {
  const map = new BpfMap(fd);
  const { keySize, valueSize, type } = map.info;
  const array = type === MapType.ARRAY;
  return {
    map,
    *entries(): Iterable<[Uint8Array, Uint8Array]> {
      const { keys, values, count } = mapLookupAll(fd, keySize, valueSize);
      for (let i = 0; i < count; i++) {
        const v = values.subarray(i * valueSize, (i + 1) * valueSize);
        if (array && zero(v)) continue;
        yield [keys.subarray(i * keySize, (i + 1) * keySize), v];
      }
    },
    get(key: Uint8Array): Uint8Array | undefined {
      const v = map.get(key);
      return v === undefined || (array && zero(v)) ? undefined : v;
    },
    update(key: Uint8Array, value: Uint8Array): void {
      map.set(key, value);
    },
    delete(key: Uint8Array): void {
      if (array) map.set(key, new Uint8Array(valueSize));
      else map.delete(key);
    },
  };
}
