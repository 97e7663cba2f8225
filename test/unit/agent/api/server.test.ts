import t from 'tap';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiServer, HttpError, Reply } from '../../../../agent/api/server.ts';
import { apiRequest, ApiClientError } from '../../../../agent/api/client.ts';

t.test('routes, params, bodies, errors over a 0600 unix socket', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kl-api-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const sock = join(dir, 'run', 'agent.sock');
  const seen: unknown[] = [];
  const s = new ApiServer()
    .route('GET', '/v1/things', () => [{ id: 1 }])
    .route('PUT', '/v1/things/{id}', (r) => (seen.push([r.params.id, r.body]), { ok: r.params.id }))
    .route('DELETE', '/v1/things/{id}', () => undefined)
    .route('GET', '/v1/fail', () => {
      throw new HttpError(503, 'not synced yet', 'wait for the first list');
    });
  await s.listen(sock);
  t.teardown(() => s.close());
  t.equal((await stat(sock)).mode & 0o777, 0o600, 'root-only socket');
  t.same(await apiRequest(sock, 'GET', '/v1/things'), [{ id: 1 }]);
  t.same(await apiRequest(sock, 'PUT', '/v1/things/abc', { x: 1 }), { ok: 'abc' });
  t.same(seen, [['abc', { x: 1 }]]);
  t.equal(await apiRequest(sock, 'DELETE', '/v1/things/abc'), undefined);
  const e = await apiRequest(sock, 'GET', '/v1/fail').catch((e: unknown) => e);
  t.ok(e instanceof ApiClientError);
  t.match(e, { status: 503, message: 'not synced yet', hint: 'wait for the first list' });
  t.match(await apiRequest(sock, 'GET', '/v1/nope').catch((e: unknown) => e), { status: 404 });
  t.match(await apiRequest(sock, 'POST', '/v1/things').catch((e: unknown) => e), { status: 405 });
});

t.test('a stale socket is replaced, a live one refused, a non-socket refused', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kl-api-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const sock = join(dir, 'agent.sock');
  const a = new ApiServer().route('GET', '/v1/x', () => 'a');
  await a.listen(sock);
  const b = new ApiServer();
  await t.rejects(b.listen(sock), /already serving/);
  await a.close();
  const file = join(dir, 'file');
  await writeFile(file, 'x');
  await t.rejects(new ApiServer().listen(file), /not a socket/);
});

t.test('the client says how to fix a missing agent', async (t) => {
  const e = await apiRequest('/nonexistent/kinglet.sock', 'GET', '/v1/status').catch((e: unknown) => e);
  t.match(e, { message: /agent is not running.*--api-socket/ });
});

t.test('raw routes get the bytes and answer with a Reply as is; dispatch calls a route in-process', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kl-api-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const sock = join(dir, 'agent.sock');
  let got: unknown;
  const s = new ApiServer()
    .route('POST', '/v1/raw', (r) => ((got = r.body), new Reply(200, 'plain\n', { 'content-type': 'text/plain', 'x-exit': '3' })), { raw: true })
    .route('GET', '/v1/things/{id}', (r) => ({ id: r.params.id }));
  await s.listen(sock);
  t.teardown(() => s.close());
  const { request } = await import('node:http');
  const res = await new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
    const req = request({ socketPath: sock, method: 'POST', path: '/v1/raw', headers: { 'content-type': 'application/octet-stream' } }, (r) => {
      let body = '';
      r.on('data', (c: Buffer) => (body += c.toString()));
      r.on('end', () => resolve({ status: r.statusCode ?? 0, headers: r.headers, body }));
    });
    req.on('error', reject);
    req.end(Buffer.from('a\0b{not json'));
  });
  t.ok(Buffer.isBuffer(got) && (got as Buffer).equals(Buffer.from('a\0b{not json')), 'the body as bytes, not parsed');
  t.match(res, { status: 200, headers: { 'content-type': 'text/plain', 'x-exit': '3', 'content-length': '6' }, body: 'plain\n' });
  t.same(await s.dispatch('GET', '/v1/things/x'), { id: 'x' });
  t.match(await s.dispatch('GET', '/v1/nope').catch((e: unknown) => e), { status: 404 });
  t.match(await s.dispatch('DELETE', '/v1/things/x').catch((e: unknown) => e), { status: 405 });
});
