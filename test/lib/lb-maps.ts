// In-memory LB maps for reconcile tests. With `checked`, every write is
// followed by a check that no frontend points at a missing slot and no slot
// at a missing backend (what a BPF reader could otherwise see mid-reconcile).
import { MemoryMap } from '../../agent/datapath/reconcile.ts';
import {
  LB4_BE_MAP, LB4_SLOT_MAP, LB4_SVC_MAP, LB6_BE_MAP, LB6_SLOT_MAP, LB6_SVC_MAP, LB_CONFIG_MAPS, lb4KeyCodec, lb6KeyCodec, svcValueCodec, u32Codec,
  type LbConfigMapName,
} from '../../agent/datapath/lb-layout.ts';

export function lbMaps(checked = true): Record<LbConfigMapName, MemoryMap> {
  const maps = {} as Record<LbConfigMapName, MemoryMap>;
  const check = () => {
    for (const [svcName, slotName, beName, codec] of [
      [LB4_SVC_MAP, LB4_SLOT_MAP, LB4_BE_MAP, lb4KeyCodec], [LB6_SVC_MAP, LB6_SLOT_MAP, LB6_BE_MAP, lb6KeyCodec],
    ] as const) {
      for (const [k, v] of maps[slotName].entries()) {
        const id = u32Codec.decode(v);
        if (!maps[beName].get(u32Codec.encode(id))) throw new Error(`slot ${u32Codec.decode(k)} -> missing backend ${id}`);
      }
      for (const [k, v] of maps[svcName].entries()) {
        const key = codec.decode(k);
        const val = svcValueCodec.decode(v);
        for (let s = 0; s < val.count; s++) {
          if (!maps[slotName].get(u32Codec.encode(val.slotBase + s))) {
            throw new Error(`${key.address}:${key.port} count ${val.count} at ${val.slotBase} but slot ${s + 1} missing`);
          }
        }
      }
    }
  };
  for (const n of LB_CONFIG_MAPS) maps[n] = new MemoryMap(n, checked ? check : undefined);
  return maps;
}
