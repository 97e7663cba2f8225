// The plugin's answers on paths that stop before touching any interface:
// exit code, error code and the JSON shape, run in-process, plus the real
// executable for VERSION. Nothing here needs root or changes the host.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runPlugin } from '../../../../agent/cni/plugin.ts';

const BIN = fileURLToPath(new URL('../../../../agent/cni/kinglet-cni', import.meta.url));

const env = (over: Record<string, string | undefined> = {}) => ({
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'c0ffee',
  CNI_NETNS: '/proc/self/ns/net',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin',
  ...over,
});
const conf = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({ cniVersion: '1.0.0', name: 'kinglet', type: 'kinglet-cni', podCIDR: '10.42.0.0/24', agent: false, ...extra });

async function expectError(t: Pick<Test, 'equal' | 'type' | 'ok'>, e: Record<string, string | undefined>, stdin: string, code: number, what: string) {
  const out = await runPlugin(e, stdin);
  t.equal(out.exitCode, 1, `${what}: exit 1`);
  const j = JSON.parse(out.stdout) as { code: number; msg: string; details?: string; cniVersion: string };
  t.equal(j.code, code, `${what}: code ${code} (${j.msg})`);
  t.type(j.msg, 'string');
  t.ok(j.details && j.details.length > 10, `${what}: details say what to do: ${j.details}`);
  return j;
}

t.test('error results', async (t) => {
  await expectError(t, env(), '{not json', 6, 'bad JSON');
  await expectError(t, env(), '', 6, 'empty stdin');
  await expectError(t, env({ CNI_COMMAND: undefined }), conf(), 4, 'missing CNI_COMMAND');
  await expectError(t, env({ CNI_COMMAND: 'REBOOT' }), conf(), 4, 'unknown command');
  await expectError(t, env({ CNI_IFNAME: '' }), conf(), 4, 'missing CNI_IFNAME');
  const v = await expectError(t, env(), conf({ cniVersion: '9.0.0' }), 1, 'unsupported version');
  t.match(v.details, '1.0.0', 'lists what is supported');
  await expectError(t, env(), conf({ podCIDR: '10.42.0.0/33' }), 7, 'bad podCIDR');
  await expectError(t, env(), conf({ podCIDR: '10.42.0.9/24' }), 7, 'podCIDR with host bits');
  await expectError(t, env(), conf({ bogus: 1 }), 2, 'unknown field');
  const nons = await expectError(t, env({ CNI_NETNS: '/var/run/netns/does-not-exist-kl' }), conf(), 3, 'missing netns');
  t.match(nons.msg, 'does-not-exist-kl');
  const e04 = await expectError(t, env(), conf({ cniVersion: '0.4.0', mtu: 1 }), 7, 'error in an 0.4.0 config');
  t.equal(e04.cniVersion, '0.4.0', 'the error speaks the config version');
  await expectError(t, env({ CNI_COMMAND: 'STATUS' }), conf({ cniVersion: '1.0.0' }), 1, 'STATUS on a 1.0.0 config');
});

t.test('agent down: ADD fails with try-again, STATUS says not available', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kl-cni-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const sock = join(dir, 'agent.sock');
  const add = await expectError(t, env(), conf({ agent: true, podCIDR: undefined, agentSocket: sock, dataDir: dir }), 11, 'ADD, agent down');
  t.match(add.msg, 'agent');
  await expectError(t, env({ CNI_COMMAND: 'STATUS' }), conf({ cniVersion: '1.1.0', agent: true, podCIDR: undefined, agentSocket: sock, dataDir: dir }), 50, 'STATUS, agent down');
});

t.test('agent up but the node has no podCIDR yet', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kl-cni-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const sock = join(dir, 'agent.sock');
  const server: Server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ name: 'n1', podCIDRs: [], addresses: [] }));
  });
  await new Promise<void>((r) => server.listen(sock, r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const j = await expectError(t, env(), conf({ agent: true, podCIDR: undefined, agentSocket: sock, dataDir: dir }), 11, 'no podCIDR');
  t.match(j.msg, 'n1');
});

t.test('STATUS ok and VERSION', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kl-cni-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const ok = await runPlugin(env({ CNI_COMMAND: 'STATUS' }), conf({ cniVersion: '1.1.0', dataDir: dir }));
  t.same(ok, { exitCode: 0, stdout: '' }, 'STATUS with a range and a writable data dir: available');
  const full = await runPlugin(env({ CNI_COMMAND: 'STATUS' }), conf({ cniVersion: '1.1.0', dataDir: dir, podCIDR: '10.9.9.0/30' }));
  t.equal(full.exitCode, 0, 'a /30 with its one address free is available');

  const v = await runPlugin({ CNI_COMMAND: 'VERSION' }, '');
  t.same(JSON.parse(v.stdout), { cniVersion: '1.1.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  const v04 = await runPlugin({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"0.4.0"}');
  t.equal(JSON.parse(v04.stdout).cniVersion, '0.4.0');
});

t.test('the executable', async (t) => {
  const r = spawnSync(BIN, [], { env: { ...process.env, CNI_COMMAND: 'VERSION' }, input: '{"cniVersion":"1.0.0"}', encoding: 'utf8' });
  t.equal(r.status, 0, `exit 0 ${r.stderr}`);
  t.same(JSON.parse(r.stdout), { cniVersion: '1.0.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  const bad = spawnSync(BIN, [], { env: { ...process.env, CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'x', CNI_IFNAME: 'eth0', CNI_NETNS: '/x' }, input: 'nope', encoding: 'utf8' });
  t.equal(bad.status, 1, 'error: exit 1');
  t.equal(JSON.parse(bad.stdout).code, 6, 'error result on stdout');
  t.match(bad.stderr, 'kinglet-cni:', 'a log line on stderr');
});
