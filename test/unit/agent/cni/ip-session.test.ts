// The agent's long-lived `ip -batch -`: answers like one exec per batch
// (exit code, stderr with the batch's own line numbers), goes on after a
// failing batch and after its ip was killed, and fails a batch that gets no
// answer. Nothing changes on this machine: successes are comment lines
// (no-ops to ip, and allowed without root), failures name no device.
import t from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IpSession } from '../../../../agent/cni/ip-session.ts';
import { run } from '../../../../agent/cni/plumbing.ts';

const MISSING = 'kl-no-such-dev';
const NOOP = '# nothing to do';

t.test('answers as a fresh `ip -batch -` would', async (t) => {
  const s = new IpSession();
  t.teardown(() => s.close());
  const ok = await s.batch(`${NOOP}\n`);
  t.same(ok, { code: 0, stdout: '', stderr: '' }, 'a batch that succeeds');
  const bad = `${NOOP}\nlink set dev ${MISSING} up\n${NOOP}\n`;
  const fresh = await run('ip', ['-batch', '-'], bad);
  const got = await s.batch(bad);
  t.equal(got.code, fresh.code, `exit code ${fresh.code}`);
  t.equal(got.stderr, fresh.stderr, 'the same stderr, line numbers counted in this batch');
  t.match(got.stderr, /Command failed -:2\b/);
  for (let i = 0; i < 3; i++) t.same(await s.batch(NOOP), { code: 0, stdout: '', stderr: '' }, `goes on after the failure (${i})`);
  const again = await s.batch(`link set dev ${MISSING} up\n`);
  t.match(again.stderr, /Command failed -:1\b/, 'numbering starts again for each batch');
});

t.test('concurrent batches are answered one by one, each with its own result', async (t) => {
  const s = new IpSession();
  t.teardown(() => s.close());
  const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => s.batch(i % 3 === 1 ? `link set dev ${MISSING}${i} up` : NOOP)));
  rs.forEach((r, i) => {
    if (i % 3 === 1) t.match(r, { code: 1, stderr: new RegExp(`${MISSING}${i}`) }, `batch ${i} failed with its own error`);
    else t.equal(r.code, 0, `batch ${i} succeeded`);
  });
});

t.test('a killed ip is replaced; a silent one times out', async (t) => {
  const s = new IpSession();
  t.teardown(() => s.close());
  t.equal((await s.batch(NOOP)).code, 0);
  s.close();
  t.equal((await s.batch(NOOP)).code, 0, 'after close: a new ip');

  const dir = await mkdtemp(join(tmpdir(), 'kl-ipsess-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const mute = join(dir, 'mute-ip');
  await writeFile(mute, '#!/bin/sh\nexec sleep 30\n', { mode: 0o755 });
  const m = new IpSession({ cmd: mute, timeoutMs: 200 });
  t.teardown(() => m.close());
  const r = await m.batch(NOOP);
  t.match(r, { code: 1, stderr: /no answer within 200 ms/ });
  const missing = new IpSession({ cmd: join(dir, 'no-such-ip') });
  t.match(await missing.batch(NOOP), { code: 127, stderr: /cannot run/ }, 'no ip at all: an error result, no throw');
});
