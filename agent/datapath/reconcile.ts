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
  /** The value under `key`, when the map can answer without a full read (needed by reconcileDelta). */
  get?(key: Uint8Array): Uint8Array | undefined;
  /** Write many entries in one go (same effect as update() on each, in order). */
  updateBatch?(entries: readonly { key: Uint8Array; value: Uint8Array }[]): void;
  /**
   * Write `count` packed entries (keys back to back, values back to back) of
   * keys the map does not hold: same effect as update() on each, in order.
   * The buffers must not be modified afterwards.
   */
  writePacked?(keys: Uint8Array, values: Uint8Array, count: number): void;
}

/** Runs of at least this many upserts to one map are written with updateBatch when the map has it. */
const BATCH_MIN = 64;

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
  plan: { name: string; map: MapAccess };
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
  const q = new OpQueue();
  for (const plan of plans) {
    const phase = plan.phase ?? (() => 0);
    const current = new Map<string, [Uint8Array, Uint8Array]>();
    for (const kv of plan.map.entries()) current.set(bytesKey(kv[0]), kv);
    const wanted = queueUpserts(q, plan, phase, (key, h) => current.get(h)?.[1]);
    for (const [h, [k]] of current) {
      if (!wanted.has(h)) q.add({ plan, kind: 'delete', phase: phase(k), key: k });
    }
  }
  return q.ordered();
}

/**
 * Ops bucketed by phase, stable within a phase (plans' order, then desired
 * order): upserts by increasing phase, then deletes by decreasing phase.
 */
class OpQueue {
  readonly #upserts = new Map<number, Op[]>();
  readonly #deletes = new Map<number, Op[]>();

  add(op: Op): void {
    const m = op.kind === 'delete' ? this.#deletes : this.#upserts;
    const list = m.get(op.phase);
    if (list) list.push(op);
    else m.set(op.phase, [op]);
  }

  ordered(): Op[] {
    const out: Op[] = [];
    for (const p of [...this.#upserts.keys()].sort((a, b) => a - b)) for (const op of this.#upserts.get(p)!) out.push(op);
    for (const p of [...this.#deletes.keys()].sort((a, b) => b - a)) for (const op of this.#deletes.get(p)!) out.push(op);
    return out;
  }
}

/**
 * Queue an add or update for every desired entry whose current value
 * (`current(key, bytesKey(key))`) differs; returns the desired keys (bytesKey).
 */
function queueUpserts(
  q: OpQueue,
  plan: MapPlan | MapDelta,
  phase: (key: Uint8Array) => number,
  current: (key: Uint8Array, h: string) => Uint8Array | undefined,
): Set<string> {
  const wanted = new Set<string>();
  for (const { key, value } of plan.desired) {
    const h = bytesKey(key);
    if (wanted.has(h)) throw new Error(`${plan.name}: the same key twice in the desired entries (${toHex(key)})`);
    wanted.add(h);
    const cur = current(key, h);
    if (cur === undefined) q.add({ plan, kind: 'add', phase: phase(key), key, value });
    else if (!sameBytes(cur, value)) q.add({ plan, kind: 'update', phase: phase(key), key, value });
  }
  return wanted;
}

function execute(names: string[], ops: Op[]): ReconcileResult {
  const result: ReconcileResult = { added: 0, updated: 0, deleted: 0, byMap: {} };
  for (const n of names) result.byMap[n] = { added: 0, updated: 0, deleted: 0 };
  for (let i = 0; i < ops.length;) {
    const op = ops[i]!;
    const counts = result.byMap[op.plan.name]!;
    if (op.kind === 'delete') {
      op.plan.map.delete(op.key);
      counts.deleted++;
      result.deleted++;
      i++;
      continue;
    }
    // A run of upserts to the same map in the same phase: one batch when the map can.
    let j = i + 1;
    if (op.plan.map.updateBatch) {
      while (j < ops.length && ops[j]!.kind !== 'delete' && ops[j]!.plan === op.plan && ops[j]!.phase === op.phase) j++;
    }
    if (j - i >= BATCH_MIN) op.plan.map.updateBatch!(ops.slice(i, j) as { key: Uint8Array; value: Uint8Array }[]);
    else {
      j = i + 1;
      op.plan.map.update(op.key, op.value!);
    }
    for (let k = i; k < j; k++) {
      if (ops[k]!.kind === 'add') {
        counts.added++;
        result.added++;
      } else {
        counts.updated++;
        result.updated++;
      }
    }
    i = j;
  }
  return result;
}

/** Reconcile every plan; returns what was written. A failing write throws (the rest is left for the next run). */
export function reconcile(plans: MapPlan[]): ReconcileResult {
  return execute(plans.map((p) => p.name), planWrites(plans));
}

/** `count` entries of one map and one write phase, packed: keys back to back, values back to back. */
export interface PackedRun {
  name: string;
  phase: number;
  count: number;
  keySize: number;
  valueSize: number;
  keys: Uint8Array;
  values: Uint8Array;
}

/**
 * reconcile() into maps that hold none of the keys (empty maps), without
 * the diff: every entry is an add. `runs` must come in write order (by
 * increasing phase, as reconcile() orders upserts) with no key twice; each
 * run is one writePacked() where the map has it, else update() per entry.
 */
export function writeFresh(names: string[], runs: readonly PackedRun[], open: (name: string) => MapAccess): ReconcileResult {
  const result: ReconcileResult = { added: 0, updated: 0, deleted: 0, byMap: {} };
  for (const n of names) result.byMap[n] = { added: 0, updated: 0, deleted: 0 };
  let phase = -Infinity;
  for (const r of runs) {
    if (r.phase < phase) throw new Error(`writeFresh: ${r.name} phase ${r.phase} after phase ${phase}`);
    phase = r.phase;
    if (r.keys.length !== r.count * r.keySize || r.values.length !== r.count * r.valueSize) throw new Error(`writeFresh: ${r.name}: buffers do not hold ${r.count} entries`);
  }
  for (const r of runs) {
    if (r.count === 0) continue;
    const map = open(r.name);
    const counts = (result.byMap[r.name] ??= { added: 0, updated: 0, deleted: 0 });
    if (map.writePacked) map.writePacked(r.keys, r.values, r.count);
    else {
      for (let i = 0; i < r.count; i++) {
        map.update(r.keys.subarray(i * r.keySize, (i + 1) * r.keySize), r.values.subarray(i * r.valueSize, (i + 1) * r.valueSize));
      }
    }
    counts.added += r.count;
    result.added += r.count;
  }
  return result;
}

/**
 * A partial plan: the desired entries for some keys only, and the keys that
 * may have to go. Keys outside `desired` and `scope` are left alone.
 */
export interface MapDelta {
  name: string;
  map: MapAccess & { get(key: Uint8Array): Uint8Array | undefined };
  desired: Iterable<{ key: Uint8Array; value: Uint8Array }>;
  /** Deleted when the map holds them and they are not in `desired`. */
  scope: Iterable<Uint8Array>;
  phase?: (key: Uint8Array) => number;
}

/**
 * reconcile() for a part of each map: compares only the given keys (point
 * look-ups), in the same write order and with the same counts as reconcile()
 * gives for the same change.
 */
export function reconcileDelta(deltas: MapDelta[]): ReconcileResult {
  const q = new OpQueue();
  for (const plan of deltas) {
    const phase = plan.phase ?? (() => 0);
    const wanted = queueUpserts(q, plan, phase, (key) => plan.map.get(key));
    const gone = new Set<string>();
    for (const key of plan.scope) {
      const h = bytesKey(key);
      if (wanted.has(h) || gone.has(h)) continue;
      gone.add(h);
      if (plan.map.get(key) !== undefined) q.add({ plan, kind: 'delete', phase: phase(key), key });
    }
  }
  return execute(deltas.map((d) => d.name), q.ordered());
}

/**
 * Drift found in one map: entries to write back (missing in the map, or
 * holding another value) and keys to delete (the map holds them, nothing
 * wants them).
 */
export interface MapRepair {
  name: string;
  map: MapAccess;
  missing: Iterable<{ key: Uint8Array; value: Uint8Array }>;
  changed: Iterable<{ key: Uint8Array; value: Uint8Array }>;
  extra: Iterable<Uint8Array>;
  phase?: (key: Uint8Array) => number;
}

/**
 * Write the repairs in reconcile()'s order (upserts by increasing phase,
 * then deletes by decreasing phase); counts as reconcile() gives them:
 * missing entries are adds, changed ones updates, extra keys deletes.
 */
export function repair(plans: MapRepair[]): ReconcileResult {
  const q = new OpQueue();
  for (const plan of plans) {
    const phase = plan.phase ?? (() => 0);
    for (const { key, value } of plan.missing) q.add({ plan, kind: 'add', phase: phase(key), key, value });
    for (const { key, value } of plan.changed) q.add({ plan, kind: 'update', phase: phase(key), key, value });
    for (const key of plan.extra) q.add({ plan, kind: 'delete', phase: phase(key), key });
  }
  return execute(plans.map((p) => p.name), q.ordered());
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
