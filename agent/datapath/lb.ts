// The socket-LB datapath as one object: load (or adopt) the programs and
// pinned maps, recover the id allocation from the pins, and turn each new
// LbState into the minimal set of map writes.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LbState } from '../model/types.ts';
import type { ServiceEntry } from '../api/types.ts';
import { BpfMap } from './libbpf.ts';
import { load, LoaderError, type DatapathDescription, type Loaded } from './loader.ts';
import { LB_CONFIG_MAPS, SOCK_LB_OBJECTS, type LbConfigMapName, type SockLbObject } from './lb-layout.ts';
import { allocationFromMaps, l4Id, lbPhase, type LbAllocation } from './lb-entries.ts';
import { reconcile, reconcileDelta, repair, writeFresh, type MapRepair, type ReconcileResult } from './reconcile.ts';
import { LbTable, lbDeltas, lbFirst, lbFullPlans } from './lb-table.ts';
import type { FrontendChange } from '../model/services.ts';
import { ShadowMap } from './shadow-map.ts';

export const DEFAULT_BPF_OBJECT_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bpf', 'build');

export interface LbDatapathOptions {
  bpfRoot: string;
  /** cgroup2 directory the socket programs attach to. */
  cgroup: string;
  objectDir?: string;
  /** Force one object variant (file name under objectDir); default: the best that loads. */
  object?: string;
  replaceIncompatible?: boolean;
  /**
   * Leave the programs unattached (and old-layout pins in place) until
   * attach(), unless this is a plain restart onto the same pinned maps: the
   * caller programs the desired state first, so an upgrade that brings new
   * maps never has programs reading them empty.
   */
  fillFirst?: boolean;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

export interface LbApplyResult extends ReconcileResult {
  frontends: number;
  backends: number;
  durationMs: number;
}

/** What checkDrift() did. */
export interface LbDriftResult extends ReconcileResult {
  /**
   * 'drift': the maps were compared with the shadow copies and what differed
   * was written back (added: entries that were missing, updated: entries with
   * another value, deleted: entries nothing wants). 'full': a write failed
   * since the last full resync, so the copies were re-read instead (the next
   * update recomputes and diffs everything; the counts here are zero).
   */
  mode: 'drift' | 'full';
  /** Kernel entries read. */
  scanned: number;
  durationMs: number;
  /** The longest step (one map's scan, or the repair): what checkDriftYielding() blocks for at most; checkDrift() runs every step in one go. */
  longestBlockMs: number;
}

export class LbDatapath {
  readonly loaded: Loaded;
  readonly variant: SockLbObject;
  readonly #maps: Record<LbConfigMapName, ShadowMap>;
  /** Ids and slots when there is no table (the table holds them while there is one). */
  #allocation: LbAllocation;
  #state: LbState | undefined = { frontends: [] };
  /** The entries as last programmed, for incremental updates; undefined: the next update() is a full apply. */
  #table: LbTable | undefined;
  /** After a first apply into empty maps: the table (and allocation) of it, built on first use. */
  #pendingTable: (() => LbTable) | undefined;
  /**
   * The shadow copies hold what the kernel should hold: true after a full
   * re-read (resync), false once a write failed (the maps may be half-written).
   */
  #shadowGood = true;
  /** Counts apply/update/resync calls: a yielding drift check that sees it move rechecks. */
  #generation = 0;

  private constructor(loaded: Loaded, variant: SockLbObject) {
    this.loaded = loaded;
    this.variant = variant;
    const maps = {} as Record<LbConfigMapName, ShadowMap>;
    for (const name of LB_CONFIG_MAPS) {
      const fd = loaded.maps[name];
      if (fd === undefined) throw new Error(`map ${name} missing from the socket-LB object`);
      maps[name] = new ShadowMap(new BpfMap(fd));
    }
    this.#maps = maps;
    // Ids and slots as the pinned maps hold them: the first reconcile after a
    // restart writes nothing when nothing changed.
    this.#allocation = allocationFromMaps(Object.fromEntries(LB_CONFIG_MAPS.map((n) => [n, maps[n].entries()])));
  }

  /**
   * Load the best socket-LB variant this kernel accepts (bpf_set_retval and
   * netns cookies first, then without), adopting pinned maps and links.
   */
  static open(opts: LbDatapathOptions): LbDatapath {
    const dir = opts.objectDir ?? DEFAULT_BPF_OBJECT_DIR;
    const candidates = opts.object ? SOCK_LB_OBJECTS.filter((o) => o.file === opts.object) : SOCK_LB_OBJECTS;
    if (candidates.length === 0) throw new Error(`unknown socket-LB object ${opts.object}; one of ${SOCK_LB_OBJECTS.map((o) => o.file).join(', ')}`);
    let lastErr: unknown;
    for (const variant of candidates) {
      const object = join(dir, variant.file);
      if (!existsSync(object)) {
        lastErr = new Error(`${object} is missing: build the BPF objects with \`make -C bpf\``);
        continue;
      }
      try {
        const loaded = load({
          object, bpfRoot: opts.bpfRoot, cgroup: opts.cgroup, replaceIncompatible: opts.replaceIncompatible, fillFirst: opts.fillFirst,
          // The configuration maps refer to each other by ids and slot bases: an upgrade that
          // changes one gets a whole new set (the old programs keep theirs until the switch).
          ...(opts.fillFirst ? { renewTogether: LB_CONFIG_MAPS } : {}),
        });
        opts.log?.('socket LB loaded', { object: variant.file, setRetval: variant.setRetval, netnsCookie: variant.netnsCookie });
        return new LbDatapath(loaded, variant);
      } catch (e) {
        lastErr = e;
        // Only a verifier/load refusal means "try the next variant"; anything else is final.
        if (!(e instanceof LoaderError && e.code === 'LOAD')) throw e;
        opts.log?.('socket LB variant refused by this kernel, trying the next', { object: variant.file, error: (e as Error).message });
      }
    }
    throw lastErr instanceof Error ? lastErr : new Error(String(lastErr));
  }

  /**
   * Program `state`: compute every entry (the entries lbEntries gives,
   * built packed together with the table for later updates), diff against
   * every entry of the maps, write only the difference. Into empty maps
   * with nothing allocated (the first apply on fresh pins) there is nothing
   * to diff: every entry is written, phase by phase in batches, straight
   * from the packed buffers, and the table for later updates is built when
   * first needed (the next update, apply or services()).
   */
  apply(state: LbState): LbApplyResult {
    this.#generation++;
    const t0 = performance.now();
    this.#settle();
    this.#dropTable();
    const open = (name: string) => this.#maps[name as LbConfigMapName];
    if (this.#mapsEmpty()) {
      const a = this.#allocation;
      if (a.backends.size === 0 && a.frontends.size === 0 && a.slots.size === 0) {
        const first = lbFirst(state);
        const result = this.#writing(() => writeFresh([...LB_CONFIG_MAPS], first.packed, open));
        this.#pendingTable = first.table;
        this.#state = state;
        // Do the deferred work when the process is idle, so the first change does not wait for it.
        setTimeout(() => this.prepare(), 0).unref();
        return { ...result, frontends: state.frontends.length, backends: first.backends, durationMs: performance.now() - t0 };
      }
    }
    const { table, packed } = LbTable.full(state, this.#allocation);
    const result = this.#writing(() => this.#mapsEmpty()
      ? writeFresh([...LB_CONFIG_MAPS], packed, open)
      : reconcile(lbFullPlans(packed, open)));
    this.#state = state;
    this.#table = table;
    return { ...result, frontends: state.frontends.length, backends: table.backends, durationMs: performance.now() - t0 };
  }

  /**
   * Do what a first apply into empty maps left for later: build the table
   * for incremental updates and index the shadow copies. Runs by itself
   * once the event loop is idle after such an apply; otherwise on first use.
   */
  prepare(): void {
    if (this.#closed) return;
    this.#settle();
    for (const m of Object.values(this.#maps)) m.prepare();
  }

  #closed = false;

  /** Build the table of a first apply, if still pending. */
  #settle(): void {
    const pending = this.#pendingTable;
    if (!pending) return;
    this.#pendingTable = undefined;
    this.#table = pending();
  }

  /**
   * Forget the table (the next update is a full apply); the allocation, which
   * the table held while it was there, is taken from it.
   */
  #dropTable(): void {
    if (!this.#table) return;
    this.#allocation = this.#table.allocation;
    this.#table = undefined;
  }

  /**
   * Program what changed since the last apply/update (as LbModel.update
   * reports it): only the entries of the changed frontends, and of backends
   * whose use changed, are encoded and compared. The first call, and the
   * first after resync() or a failed write, is a full apply of `state`; so
   * is a change into empty maps with nothing programmed.
   */
  update(u: { changes: ReadonlyMap<string, FrontendChange>; readonly state: LbState }): LbApplyResult {
    this.#generation++;
    this.#settle();
    const table = this.#table;
    if (!table) return this.apply(u.state);
    // Nothing programmed: the whole state is new, which apply() writes without a diff.
    if (table.frontends === 0 && u.changes.size > 0 && this.#mapsEmpty()) return this.apply(u.state);
    const t0 = performance.now();
    let result: ReconcileResult;
    try {
      result = this.#writing(() => reconcileDelta(lbDeltas(table.change(u.changes), (name) => this.#maps[name])));
    } catch (e) {
      this.#dropTable(); // the maps may be half-written: next time diff everything
      throw e;
    }
    if (u.changes.size > 0) this.#state = undefined;
    return { ...result, frontends: table.frontends, backends: table.backends, durationMs: performance.now() - t0 };
  }

  /** No configuration map holds an entry. */
  #mapsEmpty(): boolean {
    return LB_CONFIG_MAPS.every((n) => this.#maps[n].size === 0);
  }

  /** Run map writes; a failure leaves the shadow copies in doubt until the next resync(). */
  #writing<T>(fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      this.#shadowGood = false;
      throw e;
    }
  }

  /**
   * Re-read the kernel's map contents into the shadow copies and forget the
   * table, so the next apply (or update) recomputes everything and repairs
   * any drift with a full diff.
   */
  resync(): void {
    this.#generation++;
    this.#settle();
    for (const m of Object.values(this.#maps)) m.resync();
    this.#dropTable();
    this.#shadowGood = true;
  }

  /**
   * The periodic check: compare every map with its shadow copy (streamed,
   * nothing kept) and write back only what differs, keeping the table (no
   * recompute, no full diff). When a write failed since the last resync()
   * the copies are not trusted and this is a resync() instead.
   */
  checkDrift(): LbDriftResult {
    const steps = this.#driftSteps();
    for (;;) {
      const r = steps.next();
      if (r.done) return r.value;
    }
  }

  /**
   * checkDrift() with a break for the event loop after each map, so other
   * work (API requests) waits for one map's scan at most. Should an apply,
   * update or resync run during a break, the check starts over without breaks.
   */
  async checkDriftYielding(): Promise<LbDriftResult> {
    const gen = this.#generation;
    const steps = this.#driftSteps(() => this.#generation !== gen);
    for (;;) {
      const r = steps.next();
      if (r.done) return r.value;
      await new Promise((resolve) => setImmediate(resolve));
      if (this.#closed) throw new Error('the datapath was closed during the drift check');
    }
  }

  /** The drift check, pausing (yield) after each map's scan; `moved()`: the maps were written meanwhile. */
  *#driftSteps(moved: () => boolean = () => false): Generator<void, LbDriftResult> {
    const t0 = performance.now();
    if (!this.#shadowGood) {
      this.resync();
      const ms = performance.now() - t0;
      return { mode: 'full', added: 0, updated: 0, deleted: 0, byMap: {}, scanned: 0, durationMs: ms, longestBlockMs: ms };
    }
    let scanned = 0, longest = 0;
    const plans: MapRepair[] = [];
    for (const name of LB_CONFIG_MAPS) {
      const s0 = performance.now();
      const d = this.#maps[name].drift();
      longest = Math.max(longest, performance.now() - s0);
      scanned += d.scanned;
      plans.push({ name, map: this.#maps[name], ...d, phase: () => lbPhase(name) });
      yield;
    }
    if (moved()) {
      const again = this.checkDrift(); // what was found may be stale: once more, in one go
      return { ...again, durationMs: performance.now() - t0, longestBlockMs: Math.max(longest, again.longestBlockMs) };
    }
    const r0 = performance.now();
    this.#generation++; // another check paused meanwhile rechecks too
    const result = this.#writing(() => repair(plans));
    longest = Math.max(longest, performance.now() - r0);
    return { ...result, mode: 'drift', scanned, durationMs: performance.now() - t0, longestBlockMs: longest };
  }

  /** The frontends as last programmed, with their ids (the rev-NAT id). */
  services(): ServiceEntry[] {
    this.#settle();
    this.#state ??= this.#table?.state() ?? { frontends: [] };
    const table = this.#table;
    return this.#state.frontends.map((fe) => ({
      id: (table ? table.revNatId(fe) : this.#allocation.frontends.get(l4Id(fe.family, fe.address, fe.port, fe.protocol))) ?? 0,
      service: fe.service,
      portName: fe.portName,
      type: fe.type,
      address: fe.address,
      port: fe.port,
      protocol: fe.protocol,
      affinityTimeoutSeconds: fe.affinityTimeoutSeconds,
      backends: [...fe.backends].map((b) => ({ address: b.address, port: b.port, state: b.terminating ? 'terminating' : 'active' })),
    }));
  }

  /** Entries per configuration map, with capacity. */
  fill(): { name: string; entries: number; max: number }[] {
    return LB_CONFIG_MAPS.map((name) => ({ name, entries: this.#maps[name].size, max: this.#maps[name].map.info.maxEntries }));
  }

  /** Opened with fillFirst and waiting for attach(). */
  get attachPending(): boolean {
    return this.loaded.attachPending;
  }

  /**
   * Attach the programs (a pinned link: swap in place) and remove the pins of
   * older map layouts, once apply()/update() has programmed the maps.
   */
  attach(): void {
    this.loaded.attach();
  }

  describe(): DatapathDescription {
    return this.loaded.describe();
  }

  /** Close handles; the pinned programs and maps keep working. */
  close(): void {
    this.#closed = true;
    this.loaded.close();
  }
}
