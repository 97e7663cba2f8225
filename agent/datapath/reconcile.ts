// Diff desired map entries against what a map holds and write only the
// difference, in an order that never lets a reader see a dangling reference:
// upserts by increasing phase (e.g. backends, then slots, then the frontend
// with its count), deletes by decreasing phase (frontends first, backends
// last), every upsert before every delete. Pure apart from the map calls.
import { bytesKey, toHex } from './lb-layout.ts';

/** What the reconcile needs of a map (a pinned BPF map, or an in-memory one in tests). */
export interface MapAccess {
  entries(): Iterable<[Uint8Array, Uint8Array]>;
  update(key: Uint8Array, value: Uint8Array): void;
  delete(key: Uint8Array): void;
}

export interface MapPlan {
  name: string;
  map: MapAccess;
  desired: Iterable<{ key: Uint8Array; value: Uint8Array }>;
  /** Write phase of a key (default 0). */
  phase?: (key: Uint8Array) => number;
}

export interface ReconcileCounts {
  added: number;
  updated: number;
  deleted: number;
}

export interface ReconcileResult extends ReconcileCounts {
  byMap: Record<string, ReconcileCounts>;
}

interface Op {
  plan: MapPlan;
  kind: 'add' | 'update' | 'delete';
  phase: number;
  key: Uint8Array;
  value?: Uint8Array;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The writes that turn the maps' contents into the desired ones, in write order. */
export function planWrites(plans: MapPlan[]): Op[] {
  // Ops bucketed by phase: stable within a phase (plans' order, then desired order).
  const upserts = new Map<number, Op[]>();
  const deletes = new Map<number, Op[]>();
  const push = (m: Map<number, Op[]>, op: Op) => {
    const list = m.get(op.phase);
    if (list) list.push(op);
    else m.set(op.phase, [op]);
  };
  for (const plan of plans) {
    const phase = plan.phase ?? (() => 0);
    const current = new Map<string, [Uint8Array, Uint8Array]>();
    for (const kv of plan.map.entries()) current.set(bytesKey(kv[0]), kv);
    const wanted = new Set<string>();
    for (const { key, value } of plan.desired) {
      const h = bytesKey(key);
      if (wanted.has(h)) throw new Error(`${plan.name}: the same key twice in the desired entries (${toHex(key)})`);
      wanted.add(h);
      const cur = current.get(h);
      if (cur === undefined) push(upserts, { plan, kind: 'add', phase: phase(key), key, value });
      else if (!sameBytes(cur[1], value)) push(upserts, { plan, kind: 'update', phase: phase(key), key, value });
    }
    for (const [h, [k]] of current) {
      if (!wanted.has(h)) push(deletes, { plan, kind: 'delete', phase: phase(k), key: k });
    }
  }
  const out: Op[] = [];
  for (const p of [...upserts.keys()].sort((a, b) => a - b)) for (const op of upserts.get(p)!) out.push(op);
  for (const p of [...deletes.keys()].sort((a, b) => b - a)) for (const op of deletes.get(p)!) out.push(op);
  return out;
}

/** Reconcile every plan; returns what was written. A failing write throws (the rest is left for the next run). */
export function reconcile(plans: MapPlan[]): ReconcileResult {
  const result: ReconcileResult = { added: 0, updated: 0, deleted: 0, byMap: {} };
  for (const p of plans) result.byMap[p.name] = { added: 0, updated: 0, deleted: 0 };
  for (const op of planWrites(plans)) {
    const counts = result.byMap[op.plan.name]!;
    if (op.kind === 'delete') {
      op.plan.map.delete(op.key);
      counts.deleted++;
      result.deleted++;
    } else {
      op.plan.map.update(op.key, op.value!);
      if (op.kind === 'add') {
        counts.added++;
        result.added++;
      } else {
        counts.updated++;
        result.updated++;
      }
    }
  }
  return result;
}

/** An in-memory map with the MapAccess shape (tests, dry runs). */
export class MemoryMap implements MapAccess {
  readonly data = new Map<string, [Uint8Array, Uint8Array]>();
  readonly log: { op: 'update' | 'delete'; key: string }[] = [];
  readonly name: string;
  private readonly onWrite: ((op: 'update' | 'delete', name: string, key: Uint8Array) => void) | undefined;
  constructor(name = 'map', onWrite?: (op: 'update' | 'delete', name: string, key: Uint8Array) => void) {
    this.name = name;
    this.onWrite = onWrite;
  }
  entries(): Iterable<[Uint8Array, Uint8Array]> {
    return [...this.data.values()];
  }
  update(key: Uint8Array, value: Uint8Array): void {
    this.data.set(toHex(key), [Uint8Array.from(key), Uint8Array.from(value)]);
    this.log.push({ op: 'update', key: toHex(key) });
    this.onWrite?.('update', this.name, key);
  }
  delete(key: Uint8Array): void {
    if (!this.data.delete(toHex(key))) throw new Error(`${this.name}: no such key ${toHex(key)}`);
    this.log.push({ op: 'delete', key: toHex(key) });
    this.onWrite?.('delete', this.name, key);
  }
  get(key: Uint8Array): Uint8Array | undefined {
    return this.data.get(toHex(key))?.[1];
  }
}
