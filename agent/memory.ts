// Process-level memory of the long-running agent: give back what a burst of
// work (the first sync, a relist, a full re-read) left behind.
//
// Why: V8 grows its old generation to hold the transient garbage of a burst
// (parsed lists, the model's and the datapath's intermediate arrays) and
// keeps that size while the process idles; its memory reducer does not run
// for a process that went quiet right after the burst. Measured with
// test/bench/program-maps.ts (10k services x 10 endpoints): the agent idled
// at ~250 MB RSS for 30 s and more, with 144 MB of heap in use of which 97 MB
// was live; one full GC once idle took it to ~208 MB at once.
//
// So: after work, once the process has been quiet for a moment, compare the
// heap in use with the live size measured after the last full GC, and run a
// full GC when it has grown well beyond it. The first check after start
// always collects (that is where the big burst is). That GC is V8's most
// thorough one: at 10k services x 10 endpoints it blocked the event loop for
// 0.6 to 1.6 s on a busy 2-core box, so it runs only when idle and
// at most once per `minIntervalMs`. The periodic drift check streams
// (LbDatapath.checkDrift: ~0.2 MB of heap at that scale) and seldom leaves
// enough behind to trigger it; a full re-read after a failed write still can.
import koffi from 'koffi';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export interface CompactorOptions {
  /** Runs a full GC that gives memory back (after work). Default: fullGc('last-resort'). */
  gc?: () => void;
  /** Runs a quick full GC (before the first work). Default: fullGc('regular'). */
  quickGc?: () => void;
  /** Bytes of JS heap in use. Default: v8 used_heap_size. */
  heapUsed?: () => number;
  /** Quiet time after the last piece of work before looking at the heap. Default 500 ms. */
  idleMs?: number;
  /**
   * The same before the first collection. Default 0: right after the first
   * reconcile (and after what the datapath defers to the next tick), the
   * heap holds the whole initial sync's garbage.
   */
  firstIdleMs?: number;
  /** Collect when in use > live * growth ... Default 1.25. */
  growth?: number;
  /** ... and in use - live > minGrowthBytes. Default 16 MiB. */
  minGrowthBytes?: number;
  /** Never collect more often than this. Default 30 s. */
  minIntervalMs?: number;
  now?: () => number;
  /** Told about every collection (for the log). */
  onCollect?: (info: { beforeBytes: number; afterBytes: number; ms: number }) => void;
}

type V8Gc = (opts?: { type: string; execution: string; flavor: string }) => void;
let v8Gc: V8Gc | undefined;

/**
 * A function that runs a full GC, also when node was started without
 * --expose-gc: the flag is turned on at run time and `gc` taken from a fresh
 * context (V8 installs it in contexts created after the flag is set).
 * 'last-resort' is V8's collect-all-available-garbage (several passes, freed
 * pages released): at 10k services x 10 endpoints the agent settles at ~183
 * MB RSS after it against ~205 MB after a 'regular' one, which is quicker.
 */
export function fullGc(flavor: 'regular' | 'last-resort' = 'last-resort'): () => void {
  if (!v8Gc) {
    let g = (globalThis as { gc?: unknown }).gc;
    if (typeof g !== 'function') {
      setFlagsFromString('--expose-gc');
      g = runInNewContext('gc') as unknown;
      if (typeof g !== 'function') throw new Error('could not obtain a gc function from V8');
    }
    v8Gc = g as V8Gc;
  }
  const gc = v8Gc;
  return () => gc({ type: 'major', execution: 'sync', flavor });
}

const M_TRIM_THRESHOLD = -1;
const M_MMAP_THRESHOLD = -3;
let mallocTrim: ((pad: number) => number) | undefined;

/**
 * glibc's malloc, left alone, raises its mmap and trim thresholds after a
 * large block is freed (up to 32 MB), so the memory a burst freed stays in
 * the process. Fixing both at 128 KiB (the default starting point) keeps
 * large blocks in mmap (returned on free) and the heap top trimmed; with a
 * malloc_trim after each compaction, the agent's [heap] mapping at 10k
 * services x 10 endpoints goes from ~24 to ~9 MB and its settled RSS from
 * ~183 to ~172 MB. Same as GLIBC_TUNABLES=glibc.malloc.
 * mmap_threshold=131072:glibc.malloc.trim_threshold=131072, but set from
 * inside, so every way of starting the agent gets it. Not glibc (musl): a
 * no-op, with the reason returned.
 */
export function tuneMalloc(): string | undefined {
  try {
    const libc = koffi.load('libc.so.6');
    const mallopt = libc.func('int mallopt(int param, int value)') as (p: number, v: number) => number;
    mallocTrim = libc.func('int malloc_trim(size_t pad)') as (pad: number) => number;
    if (mallopt(M_MMAP_THRESHOLD, 128 * 1024) !== 1 || mallopt(M_TRIM_THRESHOLD, 128 * 1024) !== 1) return 'mallopt refused the thresholds';
    return undefined;
  } catch (e) {
    mallocTrim = undefined;
    return `not glibc's malloc (${e instanceof Error ? e.message : String(e)})`;
  }
}

/** Give free malloc pages back to the system (glibc; after tuneMalloc). */
function trimMalloc(): void {
  try {
    mallocTrim?.(0);
  } catch {
    // best effort
  }
}

export interface CompactorStatus {
  collections: number;
  /** Heap in use right after the last collection (the live size then). */
  liveBytes?: number;
  /** The last collection after work (beforeFirstWork's is not one). */
  lastCollection?: { at: number; beforeBytes: number; afterBytes: number; ms: number };
}

export class HeapCompactor {
  readonly #gc: () => void;
  readonly #quickGc: () => void;
  readonly #heapUsed: () => number;
  readonly #idleMs: number;
  readonly #firstIdleMs: number;
  readonly #growth: number;
  readonly #minGrowth: number;
  readonly #minInterval: number;
  readonly #now: () => number;
  readonly #onCollect: CompactorOptions['onCollect'];
  #timer: NodeJS.Timeout | undefined;
  #lastWork = 0;
  #stopped = false;
  #primed = false;
  #status: CompactorStatus = { collections: 0 };

  constructor(opts: CompactorOptions = {}) {
    this.#gc = opts.gc ?? fullGc('last-resort');
    this.#quickGc = opts.quickGc ?? fullGc('regular');
    this.#heapUsed = opts.heapUsed ?? (() => getHeapStatistics().used_heap_size);
    this.#idleMs = opts.idleMs ?? 500;
    this.#firstIdleMs = opts.firstIdleMs ?? 0;
    this.#growth = opts.growth ?? 1.25;
    this.#minGrowth = opts.minGrowthBytes ?? 16 * 1024 * 1024;
    this.#minInterval = opts.minIntervalMs ?? 30_000;
    this.#now = opts.now ?? Date.now;
    this.#onCollect = opts.onCollect;
  }

  /** Work happened (a reconcile): look at the heap once the process has been quiet for idleMs. */
  afterWork(): void {
    if (this.#stopped) return;
    this.#lastWork = this.#now();
    this.#arm(this.#idle());
  }

  #idle(): number {
    return this.#status.lastCollection === undefined ? this.#firstIdleMs : this.#idleMs;
  }

  #arm(ms: number): void {
    if (this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const quiet = this.#now() - this.#lastWork;
      // More work came meanwhile: wait until it has been quiet for idleMs.
      if (quiet < this.#idle()) this.#arm(this.#idle() - quiet);
      else this.check();
    }, ms);
    this.#timer.unref();
  }

  /**
   * Collect once before the first piece of work: by then the source's
   * initial read (file text, raw list pages) is garbage, and the first
   * reconcile then starts from a small heap, which lowers the peak (at 10k
   * services x 10 endpoints: VmHWM ~250 -> ~227 MB). A quick GC: little is
   * live yet. Does not count towards minIntervalMs. A 'last-resort' GC here
   * (pages released) was measured with test/bench/agent-rss.ts and left out:
   * RSS when programmed and VmHWM no lower (json x1.05 / x1.09, kube x0.99 /
   * x1.01, medians of 4), the GC itself slower.
   */
  beforeFirstWork(): void {
    if (this.#stopped || this.#primed) return;
    this.#primed = true;
    this.#collect(this.#heapUsed(), this.#quickGc);
  }

  /** Collect now if the heap has grown enough (what the idle timer calls). Returns whether it collected. */
  check(): boolean {
    if (this.#stopped) return false;
    const st = this.#status;
    const last = st.lastCollection;
    if (last && this.#now() - last.at < this.#minInterval) {
      // Too soon: look again when allowed.
      this.#arm(this.#minInterval - (this.#now() - last.at));
      return false;
    }
    const used = this.#heapUsed();
    const live = st.liveBytes;
    // The first check after work always collects: that is where the initial sync's garbage is.
    if (last && live !== undefined && !(used > live * this.#growth && used - live > this.#minGrowth)) return false;
    st.lastCollection = { at: this.#now(), ...this.#collect(used, this.#gc) };
    return true;
  }

  #collect(before: number, gc: () => void): { beforeBytes: number; afterBytes: number; ms: number } {
    const t0 = performance.now();
    gc();
    trimMalloc();
    const ms = performance.now() - t0;
    const after = this.#heapUsed();
    this.#status.collections++;
    this.#status.liveBytes = after;
    const info = { beforeBytes: before, afterBytes: after, ms };
    this.#onCollect?.(info);
    return info;
  }

  status(): CompactorStatus {
    return { ...this.#status, ...(this.#status.lastCollection ? { lastCollection: { ...this.#status.lastCollection } } : {}) };
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
