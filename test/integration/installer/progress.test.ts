// The real adapters behind installer progress: execaRunner streams a
// command's lines as they come and the real clock ticks "still running"
// lines while it runs (a harmless `sh -c 'echo; sleep; echo'`, nothing else).
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyStep } from '../../../installer/apply.ts';
import { execaRunner } from '../../../installer/cli.ts';
import { realClock } from '../../../installer/progress.ts';

t.test('output lines and heartbeats interleave in real time; secrets redacted', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'kinglet-progress-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const log: string[] = [];
  const ctx = { root, runner: execaRunner, bundleDir: root, log: (l: string) => { log.push(l); }, sleep: async () => {}, clock: realClock, progressSec: 1 };
  const started = Date.now();
  const r = await applyStep(ctx, {
    id: 'x', title: 'a slow command', kind: 'run',
    argv: ['sh', '-c', 'echo "first $SECRET_X"; sleep 2.4; echo second >&2'], secretEnv: { SECRET_X: 'hunter2' },
  });
  t.equal(r.outcome, 'applied');
  t.ok(Date.now() - started >= 2000);
  const first = log.indexOf('    | first <redacted>');
  const second = log.indexOf('    | second');
  t.ok(first >= 0 && second > first, `both lines, in order: ${JSON.stringify(log)}`);
  const beats = log.slice(first, second).filter((l) => /^ {4}still running: a slow command \(\d+s\)$/.test(l));
  t.ok(beats.length >= 1, `heartbeats while it sleeps (${beats.length})`);
  t.notOk(log.slice(second).some((l) => l.includes('still running')), 'the ticker stops with the command');
  t.notMatch(log.join('\n'), /hunter2/);

  await t.rejects(applyStep(ctx, { id: 'y', title: 'a failing command', kind: 'run', argv: ['sh', '-c', 'echo "bad $SECRET_X" >&2; exit 4'], secretEnv: { SECRET_X: 'hunter2' } }),
    { message: /a failing command: `sh -c .*` exited 4:\nbad <redacted>$/ });
});
