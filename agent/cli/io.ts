// What a command needs from the outside world to print, so commands can be
// run in-process by tests.
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
export interface Io {
  out(text: string): void;
  err(text: string): void;
}

/** Bad invocation or bad input: exit status 2, a message, no stack trace. */
export class UsageError extends Error {
  override name = 'UsageError';
  readonly exitCode: number;
  constructor(message: string, options?: { cause?: unknown; exitCode?: number }) {
    super(message, options);
    this.exitCode = options?.exitCode ?? 2;
  }
}

/**
 * A command's flags (no positional arguments, no unknown flags): a bad
 * invocation is a UsageError that says what is wrong and then shows `help`.
 */
export function commandFlags<O extends ParseArgsOptionsConfig>(args: string[], options: O, help: string) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n\n${help}`, { cause: e });
  }
}

/** An expected failure with a remedy: printed as `error: message`, exit 1. */
export class CommandError extends Error {
  override name = 'CommandError';
  readonly exitCode: number;
  constructor(message: string, options?: { cause?: unknown; exitCode?: number }) {
    super(message, options);
    this.exitCode = options?.exitCode ?? 1;
  }
}

/**
 * While `fn` runs, SIGINT / SIGTERM print `message` and abort the signal `fn`
 * was given. With `once`, a second one is left to the default action (the
 * process stops at once); without, every further one is caught the same way.
 */
export async function withInterrupt<T>(io: Io, message: string, fn: (signal: AbortSignal) => Promise<T>, once = false): Promise<T> {
  const ac = new AbortController();
  const onSignal = () => {
    io.err(message);
    ac.abort();
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    if (once) process.once(sig, onSignal);
    else process.on(sig, onSignal);
  }
  try {
    return await fn(ac.signal);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export function printJson(io: Io, value: unknown): void {
  io.out(JSON.stringify(value, null, 2) + '\n');
}
