// Progress for the installer's long steps (k3s's install script, kernel
// RPMs, grub2-mkconfig, waiting for the API and for node Ready): a line
// every few seconds saying what is still going on, for how long, and until
// when. Lines, so logs and CI output stay readable; only on a terminal is a
// download's size redrawn in place (apply.ts runShown, CLEAR_LINE).
// The clock is injected, so tests drive time by hand.

export interface Clock {
  now(): number;
  /** Call `fn` every `ms` until the returned function is called. */
  every(ms: number, fn: () => void): () => void;
}

export const realClock: Clock = {
  now: () => Date.now(),
  every(ms, fn) {
    const h = setInterval(fn, ms);
    return () => clearInterval(h);
  },
};

/** Seconds between progress lines unless KINGLET_PROGRESS_SECONDS says otherwise (install.sh reads the same). */
export const DEFAULT_PROGRESS_SECONDS = 15;

export function progressSeconds(env: Record<string, string | undefined>): number {
  const v = env['KINGLET_PROGRESS_SECONDS'];
  if (v === undefined || v === '') return DEFAULT_PROGRESS_SECONDS;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`KINGLET_PROGRESS_SECONDS must be a whole number of seconds >= 1, not "${v}"`);
  return n;
}

export function secondsSince(clock: Clock, start: number): number {
  return Math.round((clock.now() - start) / 1000);
}

/**
 * Start `work` and await it, logging `line(elapsed seconds)` every `everySec` while it
 * runs. The ticker stops when `work` settles, either way.
 */
export async function withHeartbeat<T>(clock: Clock, everySec: number, log: (l: string) => void, line: (sec: number) => string, work: () => Promise<T>): Promise<T> {
  const start = clock.now();
  const stop = clock.every(everySec * 1000, () => log(line(secondsSince(clock, start))));
  try {
    return await work();
  } finally {
    stop();
  }
}

/** 512 B, 1.5 KiB, 12.3 MiB: sizes in progress lines. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1048576).toFixed(1)} MiB`;
}

/** Erase the current terminal line and put the cursor at its start. */
export const CLEAR_LINE = '\r\x1b[2K';
