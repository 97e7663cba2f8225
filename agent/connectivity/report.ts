// The verdict table, its JSON form and the exit status rule, shared by
// `kinglet connectivity test` and `kinglet lab test`. Pure.
import type { Capability, CheckResult, Verdict } from './suite.ts';

export interface RunInfo {
  /** 'cluster' or 'lab'. */
  runner: string;
  /** Kubernetes namespace (cluster runner). */
  namespace?: string;
  nodes: number;
  singleNode: boolean;
  capabilities: Capability[];
  /** Where the capabilities came from and anything the reader should know ("agent unreachable: ..."). */
  notes: string[];
  /** Whole run, apply to verdicts (cleanup excluded). */
  durationMs: number;
}

export interface Summary {
  total: number;
  pass: number;
  fail: number;
  skip: number;
}

export interface JsonReport extends RunInfo {
  /** False when any check failed (the exit status is then non-zero). */
  ok: boolean;
  summary: Summary;
  results: { name: string; description: string; verdict: Verdict; reason: string | null; durationMs: number }[];
}

export function summarize(results: readonly CheckResult[]): Summary {
  const n = (v: Verdict) => results.filter((r) => r.verdict === v).length;
  return { total: results.length, pass: n('PASS'), fail: n('FAIL'), skip: n('SKIP') };
}

/** Non-zero on any FAIL; skips alone never fail a run. */
export function exitStatus(results: readonly CheckResult[]): number {
  return results.some((r) => r.verdict === 'FAIL') ? 1 : 0;
}

export function formatDuration(ms: number): string {
  if (ms <= 0) return '-';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1).replace(/\.0$/, '')}s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

/** One line per check; reasons are kept on one line (newlines folded). */
export function renderTable(results: readonly CheckResult[]): string {
  const header = ['CHECK', 'VERDICT', 'DURATION', 'REASON'];
  const rows = results.map((r) => [r.name, r.verdict, formatDuration(r.durationMs), oneLine(r.reason ?? '')]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('   ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

export function renderSummary(results: readonly CheckResult[]): string {
  const s = summarize(results);
  const word = s.fail > 0 ? 'FAILED' : 'OK';
  return `${word}: ${s.total} checks, ${s.pass} passed, ${s.fail} failed, ${s.skip} skipped\n`;
}

/** The human report: notes, the table, the summary line. */
export function renderReport(info: RunInfo, results: readonly CheckResult[]): string {
  const caps = info.capabilities.length > 0 ? info.capabilities.join(', ') : 'none of the optional ones';
  const head = [
    `${info.runner === 'lab' ? 'lab' : `namespace ${info.namespace ?? '?'}`}: ${info.nodes} node${info.nodes === 1 ? '' : 's'}` +
      `${info.singleNode ? ', single-node subset' : ''}; capabilities: ${caps}`,
    ...info.notes.map((n) => `note: ${oneLine(n)}`),
  ];
  return `${head.join('\n')}\n\n${renderTable(results)}\n${renderSummary(results)}`;
}

export function jsonReport(info: RunInfo, results: readonly CheckResult[]): JsonReport {
  return {
    ...info,
    ok: exitStatus(results) === 0,
    summary: summarize(results),
    results: results.map((r) => ({ name: r.name, description: r.description, verdict: r.verdict, reason: r.reason ?? null, durationMs: Math.round(r.durationMs) })),
  };
}

function oneLine(s: string): string {
  return s.trim().replace(/\s*\n\s*/g, ' | ');
}
