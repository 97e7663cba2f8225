// The agent's side of the native shim: the framing of a forwarded CNI call,
// bad framings refused with a 400 that says what is wrong, and the handler
// answering with the plugin's exit code and exactly the Node executable's
// stdout, its agent calls going to the agent's own routes in-process.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiServer, HttpError, Reply } from '../../../../agent/api/server.ts';
import { apiLink, cniHandler, CNI_ROUTE, decodeCall, encodeCall, EXIT_HEADER, MAX_VARS } from '../../../../agent/cni/forward.ts';
import { AgentError } from '../../../../agent/cni/agent-client.ts';

const BIN = fileURLToPath(new URL('../../../../agent/cni/kinglet-cni', import.meta.url));

const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c0ffee', CNI_NETNS: '/var/run/netns/does-not-exist-kl', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin', CNI_ARGS: 'K8S_POD_NAME=a=b;IgnoreUnknown=1' };

t.test('framing: round trip, values with "=", empty values, stdin kept byte for byte', async (t) => {
  const stdin = '{"cniVersion":"1.0.0","name":"k\u00e9","x":"\\u0000"}\n';
  t.same(decodeCall(encodeCall(env, stdin)), { env, stdin });
  t.same(decodeCall(encodeCall({ CNI_COMMAND: 'DEL', CNI_NETNS: '' }, '')), { env: { CNI_COMMAND: 'DEL', CNI_NETNS: '' }, stdin: '' });
  t.same(decodeCall(Buffer.from('\0')), { env: {}, stdin: '' }, 'no variables at all: the plugin reports what is missing');
  const withNul = decodeCall(Buffer.concat([Buffer.from('CNI_COMMAND=ADD\0\0'), Buffer.from('{"a":1}\0tail')]));
  t.equal(withNul.stdin, '{"a":1}\0tail', 'a NUL in stdin is data, not framing');
});

t.test('framing: bad requests are a 400 saying what is wrong', async (t) => {
  const bad = (body: Buffer | string, re: RegExp, what: string) => {
    try {
      decodeCall(Buffer.from(body));
      t.fail(`${what}: accepted`);
    } catch (e) {
      t.ok(e instanceof HttpError && e.status === 400, `${what}: 400`);
      t.match((e as Error).message, re, what);
    }
  };
  bad('', /not terminated/, 'empty body');
  bad('CNI_COMMAND=ADD\0{"x":1}', /not terminated/, 'no end of the environment');
  bad('PATH=/bin\0\0{}', /not a CNI_\* variable/, 'a variable that is not CNI_*');
  bad('cni_command=ADD\0\0{}', /not a CNI_\* variable/, 'lower case');
  bad('CNI_COMMAND\0\0{}', /not a CNI_\* variable/, 'no "="');
  bad('CNI_COMMAND=ADD\0CNI_COMMAND=DEL\0\0{}', /twice/, 'a variable twice');
  bad(Array.from({ length: MAX_VARS + 1 }, (_, i) => `CNI_X${i}=1\0`).join('') + '\0', /more than/, 'too many variables');
});

t.test('handler: the Node executable\'s stdout and exit code, for results and errors', async (t) => {
  const api = new ApiServer();
  const handler = cniHandler(apiLink(api), () => {});
  const call = async (e: Record<string, string>, stdin: string) => {
    const r = await handler({ method: 'POST', path: CNI_ROUTE, params: {}, query: new URLSearchParams(), body: encodeCall(e, stdin) });
    t.ok(r instanceof Reply);
    return r as Reply;
  };
  const node = (e: Record<string, string>, stdin: string) => spawnSync(process.execPath, [BIN], { input: stdin, env: { ...e, PATH: process.env['PATH'] }, encoding: 'utf8' });
  const cases: [string, Record<string, string>, string][] = [
    ['VERSION', { CNI_COMMAND: 'VERSION' }, '{"cniVersion":"0.4.0"}'],
    ['bad JSON', env, '{not json'],
    ['missing netns', env, JSON.stringify({ cniVersion: '1.0.0', name: 'k', type: 'kinglet-cni', podCIDR: '10.42.0.0/24', agent: false })],
    ['unknown field', env, JSON.stringify({ cniVersion: '1.0.0', name: 'k', type: 'kinglet-cni', bogus: 1 })],
    ['no CNI_COMMAND', { CNI_IFNAME: 'eth0' }, '{}'],
  ];
  for (const [what, e, stdin] of cases) {
    const r = await call(e, stdin);
    const n = node(e, stdin);
    t.equal(r.status, 200, `${what}: 200 (the plugin ran)`);
    t.equal(r.headers[EXIT_HEADER], String(n.status), `${what}: exit ${n.status}, as the executable`);
    t.equal(r.body, n.stdout, `${what}: the executable's stdout, byte for byte`);
  }
  const dec = await Promise.resolve()
    .then(() => handler({ method: 'POST', path: CNI_ROUTE, params: {}, query: new URLSearchParams(), body: Buffer.from('junk') }))
    .catch((e: unknown) => e);
  t.match(dec, { status: 400 }, 'bad framing: 400, the plugin does not run');
});

t.test('in the agent the plugin reaches the agent\'s routes directly', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kl-fwd-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const seen: string[] = [];
  const api = new ApiServer()
    .route('GET', '/v1/node', () => (seen.push('GET /v1/node'), { name: 'n1', podCIDRs: ['10.42.7.0/24'], addresses: [] }))
    .route('GET', '/v1/endpoints', () => (seen.push('GET /v1/endpoints'), []))
    .route('PUT', '/v1/endpoints/{id}', () => {
      throw new HttpError(409, 'address taken', 'run GC');
    });
  const link = apiLink(api);
  t.same(await link('GET', '/v1/node'), { name: 'n1', podCIDRs: ['10.42.7.0/24'], addresses: [] });
  const refused = await link('PUT', '/v1/endpoints/x', {}).catch((e: unknown) => e);
  t.ok(refused instanceof AgentError, 'HttpError becomes AgentError');
  t.match(refused, { status: 409, message: 'address taken', hint: 'run GC' });
  t.match(await link('GET', '/v1/nope').catch((e: unknown) => e), { status: 404 });

  // STATUS through the handler: podCIDR from the agent's own /v1/node, IPAM in dataDir.
  const handler = cniHandler(link, () => {});
  const conf = JSON.stringify({ cniVersion: '1.1.0', name: 'k', type: 'kinglet-cni', dataDir: dir, agentSocket: join(dir, 'no-such.sock') });
  const r = (await handler({ method: 'POST', path: CNI_ROUTE, params: {}, query: new URLSearchParams(), body: encodeCall({ CNI_COMMAND: 'STATUS' }, conf) })) as Reply;
  t.equal(r.headers[EXIT_HEADER], '0', `STATUS ok without going through any socket: ${r.body}`);
  t.equal(r.body, '');
  t.same(seen.slice(-1), ['GET /v1/node']);
});
