import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiServer } from '../../../../agent/api/server.ts';
import { main } from '../../../../agent/cli/main.ts';

function io() {
  const o = { out: '', err: '' };
  return { o, io: { out: (s: string) => void (o.out += s), err: (s: string) => void (o.err += s) } };
}

t.test('status and service list read the agent over its socket', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kl-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const sock = join(dir, 'agent.sock');
  let healthy = true;
  const server = new ApiServer()
    .route('GET', '/v1/services', () => [])
    .route('GET', '/v1/endpoints', () => [])
    .route('GET', '/v1/status', () => ({ healthy, problems: healthy ? [] : ['x'] }));
  await server.listen(sock);
  t.teardown(() => server.close());

  let r = io();
  for (const cmd of [['service', 'list'], ['endpoint', 'list']]) {
    r = io();
    t.equal(await main([...cmd, '--api-socket', sock, '--json'], r.io), 0);
    t.same(JSON.parse(r.o.out), [], `${cmd.join(' ')} --json`);
  }
  r = io();
  t.equal(await main(['status', '--api-socket', sock, '--json'], r.io), 0, 'healthy: exit 0');
  healthy = false;
  r = io();
  t.equal(await main(['status', '--api-socket', sock, '--json'], r.io), 1, 'unhealthy: exit 1');
  t.same(JSON.parse(r.o.out).problems, ['x'], '--json still prints the status');
});

t.test('an absent agent is an error that says what to do, exit 1', async (t) => {
  for (const cmd of [['status'], ['service', 'list'], ['endpoint', 'list']]) {
    const r = io();
    t.equal(await main([...cmd, '--api-socket', '/nonexistent/agent.sock'], r.io), 1);
    t.match(r.o.err, /agent is not running.*start it/);
    t.equal(r.o.out, '');
  }
});

t.test('bad flags: exit 2 without a stack trace', async (t) => {
  const r = io();
  t.equal(await main(['status', '--frobnicate'], r.io), 2);
  t.match(r.o.err, /Unknown option '--frobnicate'/);
  t.notMatch(r.o.err, /\n\s+at /);
});
