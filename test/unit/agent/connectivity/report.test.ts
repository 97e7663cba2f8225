// The verdict table, the JSON shape and the exit status rule.
import t from 'tap';
import { exitStatus, formatDuration, jsonReport, renderReport, renderSummary, renderTable, summarize, type RunInfo } from '../../../../agent/connectivity/report.ts';
import type { CheckResult } from '../../../../agent/connectivity/suite.ts';

const results: CheckResult[] = [
  { name: 'pod-to-a', description: 'pod to a ClusterIP Service', verdict: 'PASS', durationMs: 4200 },
  { name: 'pod-to-b-multi-node-headless', description: 'headless', verdict: 'FAIL', reason: 'Readiness probe failed: wget: download timed out\n', durationMs: 300_000 },
  { name: 'pod-to-a-denied-np', description: 'denied', verdict: 'SKIP', reason: 'NetworkPolicy is not enforced by the datapath yet', durationMs: 0 },
];
const info: RunInfo = { runner: 'cluster', namespace: 'kinglet-connectivity', nodes: 2, singleNode: false, capabilities: ['multi-node'], notes: ['agent not reachable'], durationMs: 301_000 };

t.test('durations', async (t) => {
  t.equal(formatDuration(0), '-');
  t.equal(formatDuration(12.4), '12ms');
  t.equal(formatDuration(1000), '1s');
  t.equal(formatDuration(4250), '4.3s');
  t.equal(formatDuration(300_000), '5m00s');
  t.equal(formatDuration(61_400), '1m01s');
});

t.test('table: a row per check, aligned, reasons on one line', async (t) => {
  const text = renderTable(results);
  t.equal(text, [
    'CHECK                          VERDICT   DURATION   REASON',
    'pod-to-a                       PASS      4.2s',
    'pod-to-b-multi-node-headless   FAIL      5m00s      Readiness probe failed: wget: download timed out',
    'pod-to-a-denied-np             SKIP      -          NetworkPolicy is not enforced by the datapath yet',
    '',
  ].join('\n'));
  t.equal(renderTable([{ ...results[0]!, reason: 'a\n  b' }]).split('\n')[1], 'pod-to-a   PASS      4.2s       a | b');
});

t.test('summary and exit status: non-zero on any FAIL, skips alone never fail', async (t) => {
  t.same(summarize(results), { total: 3, pass: 1, fail: 1, skip: 1 });
  t.equal(exitStatus(results), 1);
  t.equal(exitStatus(results.filter((r) => r.verdict !== 'FAIL')), 0);
  t.equal(exitStatus(results.filter((r) => r.verdict === 'SKIP')), 0);
  t.equal(exitStatus([]), 0);
  t.equal(renderSummary(results), 'FAILED: 3 checks, 1 passed, 1 failed, 1 skipped\n');
  t.equal(renderSummary([results[0]!]), 'OK: 1 checks, 1 passed, 0 failed, 0 skipped\n');
});

t.test('report and JSON', async (t) => {
  const text = renderReport(info, results);
  t.match(text, /^namespace kinglet-connectivity: 2 nodes; capabilities: multi-node\nnote: agent not reachable\n\nCHECK/);
  t.match(text, /FAILED: 3 checks/);
  t.match(renderReport({ ...info, runner: 'lab', nodes: 1, singleNode: true, capabilities: [], notes: [] }, results),
    /^lab: 1 node, single-node subset; capabilities: none of the optional ones\n\nCHECK/);
  const j = jsonReport(info, results);
  t.same(j, {
    ...info,
    ok: false,
    summary: { total: 3, pass: 1, fail: 1, skip: 1 },
    results: [
      { name: 'pod-to-a', description: 'pod to a ClusterIP Service', verdict: 'PASS', reason: null, durationMs: 4200 },
      { name: 'pod-to-b-multi-node-headless', description: 'headless', verdict: 'FAIL', reason: 'Readiness probe failed: wget: download timed out\n', durationMs: 300000 },
      { name: 'pod-to-a-denied-np', description: 'denied', verdict: 'SKIP', reason: 'NetworkPolicy is not enforced by the datapath yet', durationMs: 0 },
    ],
  });
  t.same(JSON.parse(JSON.stringify(j)), j, 'plain JSON');
  t.equal(jsonReport(info, [results[0]!]).ok, true);
});
