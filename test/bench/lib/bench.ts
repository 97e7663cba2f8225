// Shared pieces of the benchmarks: a teardown collector (reverse order, also
// on Ctrl-C / SIGTERM), medians and a plain text table. Benchmarks print
// figures; they assert nothing about timing.
import type { Teardownable } from '../../lib/sandbox.ts';
import { rootSkipReason } from '../../lib/sandbox.ts';

/** Collects teardowns and runs them newest first. */
export class Collector implements Teardownable {
  readonly #fns: (() => unknown)[] = [];
  #running: Promise<void> | undefined;

  teardown(fn: () => unknown): void {
    this.#fns.push(fn);
  }

  /** Run every teardown once; a second caller waits for the same run. */
  runAll(): Promise<void> {
    return (this.#running ??= this.#run());
  }

  async #run(): Promise<void> {
    while (this.#fns.length > 0) {
      const fn = this.#fns.pop()!;
      try {
        await fn();
      } catch (e) {
        process.stderr.write(`teardown failed: ${(e as Error).message}\n`);
      }
    }
  }
}

/**
 * Run `body` with a collector whose teardowns run in a `finally`, and on
 * SIGINT/SIGTERM (then exit 130/143). Skips (exit 0) when not root.
 */
export async function bench(name: string, body: (c: Collector) => Promise<void>): Promise<void> {
  const skip = rootSkipReason();
  if (skip) {
    console.log(`${name}: skipped: ${skip}`);
    return;
  }
  const c = new Collector();
  let stopping = false;
  // Keep the handlers installed while cleaning up: a handler removed after the
  // first signal would let execa's exit hook re-raise the signal and kill
  // this process before the teardowns ran. A second Ctrl-C is ignored.
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`${name}: ${sig}, cleaning up\n`);
    void c.runAll().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await body(c);
  } finally {
    await c.runAll();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Left-aligned first column, right-aligned others. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export const fmtInt = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
export const fmtMs = (ms: number): string => `${ms.toFixed(1)} ms`;
export const fmtRatio = (r: number): string => (Number.isFinite(r) ? r.toFixed(3) : 'n/a');
