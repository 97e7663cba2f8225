// In-memory LB maps for reconcile tests. With `checked`, every write is
// followed by a check that no frontend points at a missing slot and no slot
// at a missing backend (what a BPF reader could otherwise see mid-reconcile).
// changesBetween: the frontend changes from one state to another, keyed like LbModel's.
import { MemoryMap } from '../../agent/datapath/reconcile.ts';
import {
  LB4_BE_MAP, LB4_SLOT_MAP, LB4_SVC_MAP, LB6_BE_MAP, LB6_SLOT_MAP, LB6_SVC_MAP, LB_CONFIG_MAPS, lb4KeyCodec, lb6KeyCodec, svcValueCodec, u32Codec,
  type LbConfigMapName,
} from '../../agent/datapath/lb-layout.ts';
import { frontendSortKey, sameFrontend, type FrontendChange } from '../../agent/model/services.ts';
import type { LbState } from '../../agent/model/types.ts';

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

/** The frontends that differ between two states, keyed by frontendSortKey. */
export function changesBetween(a: LbState, b: LbState): Map<string, FrontendChange> {
  const before = new Map(a.frontends.map((f) => [frontendSortKey(f), f]));
  const after = new Map(b.frontends.map((f) => [frontendSortKey(f), f]));
  const out = new Map<string, FrontendChange>();
  for (const k of new Set([...before.keys(), ...after.keys()])) {
    if (!sameFrontend(before.get(k), after.get(k))) out.set(k, { before: before.get(k), after: after.get(k) });
  }
  return out;
}
