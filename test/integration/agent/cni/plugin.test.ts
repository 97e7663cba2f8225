// kinglet-cni against real namespaces: the test makes a "node" namespace (the
// plugin runs inside it through `ip netns exec`, so the host sides of the
// veths land there, never in the host's namespace) and pod namespaces, and
// runs the real executable with the CNI environment and stdin, as a runtime
// would. ip_forward is turned on inside the node namespace only.
import t, { type Test } from 'tap';
import { execa } from 'execa';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { netns, rootSkipReason, type Netns } from '../../../lib/sandbox.ts';

const skip = rootSkipReason();
const BIN = fileURLToPath(new URL('../../../../agent/cni/kinglet-cni', import.meta.url));

interface CniRun {
  exitCode: number;
  json: Record<string, any> | undefined;
  stdout: string;
  stderr: string;
}

interface CallOpts {
  command: string;
  id?: string;
  pod?: Netns | string;
  ifname?: string;
  args?: string;
  conf: Record<string, unknown>;
}

/** Run the plugin inside the node namespace with a runtime-like, minimal environment. */
async function cni(node: Netns, o: CallOpts): Promise<CniRun> {
  const netnsPath = o.pod === undefined ? '' : typeof o.pod === 'string' ? o.pod : `/run/netns/${o.pod.name}`;
  const r = await execa('ip', ['netns', 'exec', node.name, BIN], {
    input: JSON.stringify(o.conf),
    extendEnv: false,
    env: {
      PATH: `${dirname(process.execPath)}:/usr/sbin:/usr/bin:/sbin:/bin`,
      CNI_COMMAND: o.command,
      CNI_CONTAINERID: o.id ?? '',
      CNI_NETNS: netnsPath,
      CNI_IFNAME: o.ifname ?? 'eth0',
      CNI_PATH: '/usr/lib/cni',
      CNI_ARGS: o.args ?? 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=p',
    },
    reject: false,
  });
  let json: Record<string, any> | undefined;
  try {
    json = r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, any>) : undefined;
  } catch {
    json = undefined;
  }
  return { exitCode: r.exitCode ?? -1, json, stdout: r.stdout, stderr: r.stderr };
}

interface Env {
  node: Netns;
  dataDir: string;
  conf(extra?: Record<string, unknown>): Record<string, unknown>;
}

async function setup(t: Test, podCIDR = '10.244.7.0/24'): Promise<Env> {
  const node = await netns(t, 'kl-cninode');
  await node.run(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
  const dataDir = await mkdtemp(join(tmpdir(), 'kl-cni-data-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  return {
    node,
    dataDir,
    conf: (extra = {}) => ({ cniVersion: '1.0.0', name: 'kinglet', type: 'kinglet-cni', podCIDR, agent: false, dataDir, ...extra }),
  };
}

async function ipJson<T>(ns: Netns, args: string[]): Promise<T> {
  return JSON.parse(await ns.run(['ip', '-j', ...args])) as T;
}

async function podVeths(node: Netns): Promise<string[]> {
  const links = await ipJson<{ ifname: string }[]>(node, ['link', 'show']);
  return links.map((l) => l.ifname).filter((n) => /^kl[0-9a-f]{11}$/.test(n));
}

/** Every allocation in the IPAM state files ("ip owner/ifname"), and stray files (temp files, locks). */
async function ipamState(dataDir: string): Promise<{ allocations: string[]; stray: string[] }> {
  const dir = join(dataDir, 'ipam', 'kinglet');
  const allocations: string[] = [];
  const stray: string[] = [];
  for (const f of await readdir(dir).catch(() => [] as string[])) {
    if (!/^[\d.]+_\d+\.json$/.test(f)) {
      stray.push(f);
      continue;
    }
    const st = JSON.parse(await readFile(join(dir, f), 'utf8')) as { allocations: Record<string, { containerId: string; ifname: string }> };
    for (const [ip, a] of Object.entries(st.allocations)) allocations.push(`${ip} ${a.containerId}/${a.ifname}`);
  }
  return { allocations, stray };
}

/** What the plugin left: pod veths, /32 routes, IPAM allocations and stray files. */
async function leftovers(e: Env): Promise<{ veths: string[]; routes: string[]; ipam: { allocations: string[]; stray: string[] } }> {
  const routes = (await ipJson<{ dst: string }[]>(e.node, ['-4', 'route', 'show'])).map((r) => r.dst);
  return { veths: await podVeths(e.node), routes, ipam: await ipamState(e.dataDir) };
}

const NOTHING = { veths: [], routes: [], ipam: { allocations: [], stray: [] } };

t.test('two pods on one node: ADD, ping, CHECK, DEL twice, nothing left', { skip }, async (t) => {
  const e = await setup(t);
  const pods = [await netns(t, 'kl-cnipod'), await netns(t, 'kl-cnipod')];
  const results = [];
  for (const [i, pod] of pods.entries()) {
    const r = await cni(e.node, { command: 'ADD', id: `pod${i}`, pod, conf: e.conf() });
    t.equal(r.exitCode, 0, `ADD pod${i}: ${r.stdout} ${r.stderr}`);
    results.push(r.json!);
  }
  const ips = results.map((r) => (r['ips'][0].address as string).split('/')[0]!);
  for (const ip of ips) t.match(ip, /^10\.244\.7\.\d+$/, `${ip} is in the range`);
  t.not(ips[0], ips[1], 'different addresses');
  t.notOk(ips.includes('10.244.7.0') || ips.includes('10.244.7.1') || ips.includes('10.244.7.255'), 'not network, gateway or broadcast');
  t.equal(results[0]!['ips'][0].gateway, '10.244.7.1');
  t.equal(results[0]!['interfaces'][1].sandbox, `/run/netns/${pods[0]!.name}`);
  t.equal(results[0]!['interfaces'][1].name, 'eth0');
  t.same(results[0]!['routes'], [{ dst: '0.0.0.0/0', gw: '10.244.7.1' }]);

  const eth0 = await ipJson<{ mtu: number; addr_info: { local: string; prefixlen: number; family: string }[] }[]>(pods[0]!, ['addr', 'show', 'dev', 'eth0']);
  t.same(eth0[0]!.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`), [`${ips[0]}/32`], 'pod has its /32');
  t.equal(eth0[0]!.mtu, 1500, 'no uplink in the node namespace: MTU 1500');
  const def = await ipJson<{ gateway: string; flags: string[] }[]>(pods[0]!, ['route', 'show', 'default']);
  t.equal(def[0]?.gateway, '10.244.7.1', 'default route via the gateway');
  t.ok(def[0]?.flags.includes('onlink'), 'onlink');
  t.same(await ipJson(e.node, ['route', 'show', 'default']), [], 'the node namespace has no default route');

  await pods[0]!.run(['ping', '-c', '2', '-W', '2', '-i', '0.2', ips[1]!]);
  t.pass('pod0 pings pod1 through the node namespace');
  await pods[1]!.run(['ping', '-c', '1', '-W', '2', ips[0]!]);
  await pods[1]!.run(['ping', '-c', '1', '-W', '2', '10.244.7.1']);
  t.pass('pod1 pings pod0 and the gateway');

  const check = await cni(e.node, { command: 'CHECK', id: 'pod0', pod: pods[0], conf: e.conf({ prevResult: results[0] }) });
  t.equal(check.exitCode, 0, `CHECK passes: ${check.stdout}`);
  t.equal(check.stdout, '', 'CHECK prints nothing on success');
  const hostIf = results[0]!['interfaces'][0].name as string;
  await e.node.run(['ip', 'link', 'del', hostIf]);
  const check2 = await cni(e.node, { command: 'CHECK', id: 'pod0', pod: pods[0], conf: e.conf({ prevResult: results[0] }) });
  t.equal(check2.exitCode, 1, 'CHECK fails once the veth is gone');
  t.equal(check2.json?.['code'], 102);
  t.match(check2.json?.['details'], hostIf, 'naming the missing veth');

  for (const [i, pod] of pods.entries()) {
    const d1 = await cni(e.node, { command: 'DEL', id: `pod${i}`, pod, conf: e.conf({ prevResult: results[i] }) });
    t.equal(d1.exitCode, 0, `DEL pod${i}: ${d1.stdout}`);
    const d2 = await cni(e.node, { command: 'DEL', id: `pod${i}`, conf: e.conf() });
    t.equal(d2.exitCode, 0, `second DEL pod${i} without netns: ${d2.stdout}`);
  }
  t.same(await leftovers(e), NOTHING, 'no veth, no route, no IPAM allocation left');
  t.same(await ipJson(pods[1]!, ['-4', 'addr', 'show', 'dev', 'lo']).then((x) => (x as unknown[]).length), 1, 'pod namespace keeps only lo');
});

t.test('20 concurrent ADDs never share an address', { skip }, async (t) => {
  const e = await setup(t);
  const pods = await Promise.all(Array.from({ length: 20 }, () => netns(t, 'kl-cnipod')));
  const runs = await Promise.all(pods.map((pod, i) => cni(e.node, { command: 'ADD', id: `cc${i}`, pod, conf: e.conf() })));
  t.same(runs.map((r) => r.exitCode), Array(20).fill(0), 'all ADDs succeed');
  const ips = runs.map((r) => r.json?.['ips'][0].address as string);
  t.equal(new Set(ips).size, 20, 'twenty different addresses');
  t.equal((await podVeths(e.node)).length, 20, 'twenty veths');
  const state = JSON.parse(await readFile(join(e.dataDir, 'ipam', 'kinglet', '10.244.7.0_24.json'), 'utf8')) as { allocations: Record<string, unknown> };
  t.equal(Object.keys(state.allocations).length, 20, 'twenty allocations on disk');
  // a spot check of the datapath under load
  await pods[3]!.run(['ping', '-c', '1', '-W', '2', ips[17]!.split('/')[0]!]);
  const dels = await Promise.all(pods.map((pod, i) => cni(e.node, { command: 'DEL', id: `cc${i}`, pod, conf: e.conf() })));
  t.same(dels.map((r) => r.exitCode), Array(20).fill(0), 'all DELs succeed');
  t.same(await leftovers(e), NOTHING);
});

t.test('an exhausted range gives error 100 and leaves nothing of the refused pod', { skip }, async (t) => {
  const e = await setup(t, '10.244.9.0/30'); // room for one pod
  const [a, b] = [await netns(t, 'kl-cnipod'), await netns(t, 'kl-cnipod')];
  const ok = await cni(e.node, { command: 'ADD', id: 'first', pod: a, conf: e.conf() });
  t.equal(ok.exitCode, 0);
  t.equal(ok.json?.['ips'][0].address, '10.244.9.2/32');
  const full = await cni(e.node, { command: 'ADD', id: 'second', pod: b, conf: e.conf() });
  t.equal(full.exitCode, 1);
  t.equal(full.json?.['code'], 100, `range exhausted: ${full.json?.['msg']}`);
  t.match(full.json?.['msg'], '10.244.9.0/30');
  t.equal((await podVeths(e.node)).length, 1, 'only the first pod is wired');
  t.same((await ipJson<{ ifname: string }[]>(b, ['link', 'show'])).map((l) => l.ifname), ['lo'], 'the refused pod has no interface');
  const status = await cni(e.node, { command: 'STATUS', conf: e.conf({ cniVersion: '1.1.0' }) });
  t.equal(status.json?.['code'], 50, 'STATUS: not available while full');
  await cni(e.node, { command: 'DEL', id: 'first', pod: a, conf: e.conf() });
  t.equal((await cni(e.node, { command: 'STATUS', conf: e.conf({ cniVersion: '1.1.0' }) })).exitCode, 0, 'STATUS ok again');
  t.same(await leftovers(e), NOTHING);
});

t.test('result versions and MTU from the conflist', { skip }, async (t) => {
  const e = await setup(t);
  const [a, b] = [await netns(t, 'kl-cnipod'), await netns(t, 'kl-cnipod')];
  const r04 = await cni(e.node, { command: 'ADD', id: 'v04', pod: a, conf: e.conf({ cniVersion: '0.4.0', mtu: 1400 }) });
  t.equal(r04.json?.['cniVersion'], '0.4.0');
  t.equal(r04.json?.['ips'][0].version, '4', '0.4.0 result carries ips[].version');
  const eth0 = await ipJson<{ mtu: number }[]>(a, ['link', 'show', 'dev', 'eth0']);
  t.equal(eth0[0]!.mtu, 1400, 'pod MTU from the conflist');
  const host = await ipJson<{ mtu: number }[]>(e.node, ['link', 'show', 'dev', r04.json?.['interfaces'][0].name]);
  t.equal(host[0]!.mtu, 1400, 'host side too');
  const r11 = await cni(e.node, { command: 'ADD', id: 'v11', pod: b, conf: e.conf({ cniVersion: '1.1.0' }) });
  t.equal(r11.json?.['interfaces'][1].mtu, 1500, '1.1.0 result carries the interface MTU');
  for (const [id, pod] of [['v04', a], ['v11', b]] as const) await cni(e.node, { command: 'DEL', id, pod, conf: e.conf() });
  t.same(await leftovers(e), NOTHING);
});

t.test('a missing netns on ADD is error 3 and leaves nothing', { skip }, async (t) => {
  const e = await setup(t);
  const r = await cni(e.node, { command: 'ADD', id: 'ghost', pod: '/run/netns/kl-no-such-ns', conf: e.conf() });
  t.equal(r.json?.['code'], 3);
  t.same(await leftovers(e), NOTHING);
});

t.test('GC releases what is not in the valid attachments', { skip }, async (t) => {
  const e = await setup(t);
  const pods = [await netns(t, 'kl-cnipod'), await netns(t, 'kl-cnipod'), await netns(t, 'kl-cnipod')];
  for (const [i, pod] of pods.entries()) t.equal((await cni(e.node, { command: 'ADD', id: `gc${i}`, pod, conf: e.conf() })).exitCode, 0);
  const gc = await cni(e.node, {
    command: 'GC',
    conf: e.conf({ cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: 'gc1', ifname: 'eth0' }] }),
  });
  t.equal(gc.exitCode, 0, `GC: ${gc.stdout}`);
  t.equal((await podVeths(e.node)).length, 1, 'only gc1 keeps its veth');
  const state = JSON.parse(await readFile(join(e.dataDir, 'ipam', 'kinglet', '10.244.7.0_24.json'), 'utf8')) as { allocations: Record<string, { containerId: string }> };
  t.same(Object.values(state.allocations).map((a) => a.containerId), ['gc1'], 'only gc1 keeps its address');
  t.same((await ipJson<{ ifname: string }[]>(pods[0]!, ['link', 'show'])).map((l) => l.ifname), ['lo'], 'gc0 lost its interface');
  t.equal((await cni(e.node, { command: 'GC', conf: e.conf({ cniVersion: '1.1.0', 'cni.dev/valid-attachments': [] }) })).exitCode, 0);
  t.same(await leftovers(e), NOTHING, 'GC with nothing valid frees everything');
});

interface Seen {
  method: string;
  url: string;
  body: any;
}

/** A fake agent on a unix socket: records requests, answers per `answer`. */
async function fakeAgent(t: Test, dir: string, answer: (req: IncomingMessage) => { status: number; body?: unknown }) {
  const socket = join(dir, 'agent.sock');
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, body: body ? JSON.parse(body) : undefined });
      const a = answer(req);
      res.statusCode = a.status;
      res.setHeader('content-type', 'application/json');
      res.end(a.body === undefined ? '' : JSON.stringify(a.body));
    });
  });
  await new Promise<void>((r) => server.listen(socket, r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { socket, seen };
}

t.test('with an agent: podCIDR from GET /v1/node, PUT on ADD, DELETE on DEL', { skip }, async (t) => {
  const e = await setup(t);
  const agent = await fakeAgent(t, e.dataDir, (req) => {
    if (req.method === 'GET' && req.url === '/v1/node') return { status: 200, body: { name: 'node-a', podCIDRs: ['fd00:42::/64', '10.244.33.0/24'], addresses: ['192.0.2.10'] } };
    if (req.method === 'PUT') return { status: 200, body: {} };
    if (req.method === 'DELETE') return { status: 204 };
    return { status: 404, body: { error: 'no' } };
  });
  const pod = await netns(t, 'kl-cnipod');
  const conf = e.conf({ agent: true, agentSocket: agent.socket, podCIDR: undefined });
  const r = await cni(e.node, { command: 'ADD', id: 'ag1', pod, conf, args: 'K8S_POD_UID=uid-1;IgnoreUnknown=1;K8S_POD_NAME=web-0;K8S_POD_NAMESPACE=shop' });
  t.equal(r.exitCode, 0, r.stdout);
  t.match(r.json?.['ips'][0].address, /^10\.244\.33\./, 'address from the Node\'s IPv4 podCIDR');
  t.same(agent.seen.map((s) => `${s.method} ${s.url}`), ['GET /v1/node', 'PUT /v1/endpoints/ag1']);
  t.same(agent.seen[1]!.body, {
    containerId: 'ag1',
    netns: `/run/netns/${pod.name}`,
    ifname: 'eth0',
    hostIfname: r.json?.['interfaces'][0].name,
    addresses: [(r.json?.['ips'][0].address as string).split('/')[0]],
    podNamespace: 'shop',
    podName: 'web-0',
    podUid: 'uid-1',
    podMac: r.json?.['interfaces'][1].mac,
    hostMac: r.json?.['interfaces'][0].mac,
  }, 'the registration carries the pod identity and the MACs the plugin set');
  const d = await cni(e.node, { command: 'DEL', id: 'ag1', pod, conf });
  t.equal(d.exitCode, 0);
  t.same(agent.seen.slice(2).map((s) => `${s.method} ${s.url}`), ['DELETE /v1/endpoints/ag1']);
  t.same(await leftovers(e), NOTHING);
});

t.test('agent down or refusing: ADD fails cleanly, nothing left behind', { skip }, async (t) => {
  const e = await setup(t);
  const pod = await netns(t, 'kl-cnipod');
  const down = await cni(e.node, { command: 'ADD', id: 'nd1', pod, conf: e.conf({ agent: true, agentSocket: join(e.dataDir, 'none.sock') }) });
  t.equal(down.exitCode, 1);
  t.equal(down.json?.['code'], 11, `agent down: try again later: ${down.json?.['msg']}`);
  t.match(down.json?.['details'], /not running|agent/);
  t.same(await leftovers(e), NOTHING, 'agent down: no veth, route or address left');
  t.same((await ipJson<{ ifname: string }[]>(pod, ['link', 'show'])).map((l) => l.ifname), ['lo'], 'no interface in the pod');

  const agent = await fakeAgent(t, e.dataDir, () => ({ status: 500, body: { error: 'cannot attach programs', hint: 'see agent log' } }));
  const refused = await cni(e.node, { command: 'ADD', id: 'nd2', pod, conf: e.conf({ agent: true, agentSocket: agent.socket }) });
  t.equal(refused.json?.['code'], 103, 'agent refusing: 103');
  t.match(refused.json?.['msg'], 'cannot attach programs');
  t.same(await leftovers(e), NOTHING, 'agent refusing: nothing left');

  // DEL with the agent down still cleans up locally and succeeds (the runtime must not get stuck).
  const ok = await cni(e.node, { command: 'ADD', id: 'nd3', pod, conf: e.conf() });
  t.equal(ok.exitCode, 0);
  const del = await cni(e.node, { command: 'DEL', id: 'nd3', pod, conf: e.conf({ agent: true, agentSocket: join(e.dataDir, 'none.sock') }) });
  t.equal(del.exitCode, 0, 'DEL with the agent down succeeds');
  t.match(del.stderr, 'agent not reachable', 'and says so on stderr');
  t.same(await leftovers(e), NOTHING);
});
