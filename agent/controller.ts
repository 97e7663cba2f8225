// The control loop discipline: event handlers only mark the state dirty; one
// reconcile runs at a time; a periodic resync catches drift; failures are
// retried with backoff and reported per controller. Nothing is reconciled
// before the source has completed its first full read, so a restart against
// a slow or absent API server never deletes what the datapath already holds.

export interface ControllerStatus {
  name: string;
  runs: number;
  failures: number;
  consecutiveFailures: number;
  lastRun?: string;
  lastSuccess?: string;
  lastError?: string;
  lastDurationMs?: number;
}

export interface ControllerOptions {
  name: string;
  /** Does the work; may throw. */
  reconcile: () => Promise<void>;
  /** Reconcile only once this holds (e.g. the source's first full list is done). */
  ready?: () => boolean;
  /** Coalesce bursts of events for this long before running. */
  debounceMs?: number;
  /** Full resync period (0 = never). */
  resyncMs?: number;
  /** Retry delay after a failure: min * 2^n, capped. */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  now?: () => Date;
  onError?: (err: unknown, status: ControllerStatus) => void;
}

export class Controller {
  readonly #o: Required<Omit<ControllerOptions, 'onError'>> & Pick<ControllerOptions, 'onError'>;
  readonly #status: ControllerStatus;
  #dirty = false;
  #running: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #resync: NodeJS.Timeout | undefined;
  #stopped = false;
  #idleWaiters: (() => void)[] = [];

  constructor(opts: ControllerOptions) {
    this.#o = {
      ready: () => true,
      debounceMs: 10,
      resyncMs: 0,
      backoffMinMs: 100,
      backoffMaxMs: 30_000,
      now: () => new Date(),
      ...opts,
    };
    this.#status = { name: opts.name, runs: 0, failures: 0, consecutiveFailures: 0 };
  }

  start(): void {
    if (this.#o.resyncMs > 0) {
      this.#resync = setInterval(() => this.trigger(), this.#o.resyncMs);
      this.#resync.unref();
    }
    this.trigger();
  }

  /** Mark dirty; the reconcile runs after the debounce, never two at once. */
  trigger(delayMs = this.#o.debounceMs): void {
    if (this.#stopped) return;
    this.#dirty = true;
    if (this.#running || this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#runLoop();
    }, delayMs);
  }

  async #runLoop(): Promise<void> {
    if (this.#running || this.#stopped) return;
    if (!this.#o.ready()) {
      // Keep the dirty mark; the source calls trigger() again when it syncs.
      this.#notifyIdle();
      return;
    }
    this.#dirty = false;
    const started = Date.now();
    this.#running = (async () => {
      this.#status.runs++;
      this.#status.lastRun = this.#o.now().toISOString();
      try {
        await this.#o.reconcile();
        this.#status.consecutiveFailures = 0;
        this.#status.lastSuccess = this.#o.now().toISOString();
        delete this.#status.lastError;
      } catch (err) {
        this.#status.failures++;
        this.#status.consecutiveFailures++;
        this.#status.lastError = err instanceof Error ? err.message : String(err);
        this.#o.onError?.(err, this.status());
        this.#dirty = true;
      } finally {
        this.#status.lastDurationMs = Date.now() - started;
      }
    })();
    await this.#running;
    this.#running = undefined;
    if (this.#dirty && !this.#stopped) {
      const n = this.#status.consecutiveFailures;
      const delay = n === 0 ? 0 : Math.min(this.#o.backoffMaxMs, this.#o.backoffMinMs * 2 ** (n - 1));
      this.trigger(delay);
    } else {
      this.#notifyIdle();
    }
  }

  #notifyIdle(): void {
    const w = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const f of w) f();
  }

  /** Resolves when no reconcile is running or pending (for tests and shutdown). */
  async idle(): Promise<void> {
    while (this.#running || this.#timer) {
      if (this.#running) await this.#running;
      else await new Promise<void>((r) => this.#idleWaiters.push(r));
    }
  }

  status(): ControllerStatus {
    return { ...this.#status };
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#resync) clearInterval(this.#resync);
    if (this.#running) await this.#running;
    this.#notifyIdle();
  }
}
