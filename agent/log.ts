// JSON-lines logger: one object per line, {ts, level, msg, ...fields}.
export type Level = 'debug' | 'info' | 'warn' | 'error';
export type Logger = (level: Level, msg: string, fields?: Record<string, unknown>) => void;

const order: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function jsonLogger(write: (line: string) => void, min: Level = 'info', now: () => Date = () => new Date()): Logger {
  return (level, msg, fields) => {
    if (order[level] < order[min]) return;
    const rec: Record<string, unknown> = { ts: now().toISOString(), level, msg };
    for (const [k, v] of Object.entries(fields ?? {})) {
      rec[k] = v instanceof Error ? v.message : v;
    }
    write(JSON.stringify(rec) + '\n');
  };
}

export const silentLogger: Logger = () => {};

export function isLevel(s: string): s is Level {
  return s in order;
}
