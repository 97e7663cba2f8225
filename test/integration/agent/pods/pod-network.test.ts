// Pod networking end to end on two simulated nodes (test/lib/cluster.ts):
// pods wired by the real kinglet-cni, each node's own agent attaching the pod
// programs, routes between the nodes, ClusterIP through the socket LB and
// through the per-packet tc LB, masquerade to an "external" namespace, an
// agent restart under traffic, the endpoints API and cleanup.
import t from 'tap';
import { execa } from 'execa';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { rootSkipReason } from '../../../lib/sandbox.ts';
import { waitFor } from '../../../lib/wait.ts';
import { cluster, clusterIpService, endpointSlice, echoPeer, kinglet, type EchoAnswer } from '../../../lib/cluster.ts';
import type { AgentStatus, EndpointInfo } from '../../../../agent/api/types.ts';
import { openPinnedMap } from '../../../../agent/datapath/libbpf.ts';
import { ipv4Value } from '../../../../agent/model/ip.ts';
import { affKeyCodec, affValueCodec, LB4_BE_MAP, LB_AFF_MAP, lb4BackendCodec, u32Codec } from '../../../../agent/datapath/lb-layout.ts';

const skip = rootSkipReason();
/** One TCP connection from local port 23456 (argv: host port), answered like echo-peer's client. */
const SAME_PORT_CLIENT = `
const net = require('node:net');
const [host, port] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port), localPort: 23456 });
let d = '';
const done = (r) => { clearTimeout(timer); console.log(JSON.stringify(r)); s.destroy(); };
const timer = setTimeout(() => done({ error: 'TIMEOUT' }), 3000);
s.on('data', (x) => { d += x; });
s.on('end', () => done({ ...JSON.parse(d), remote: s.remoteAddress + ':' + s.remotePort }));
s.on('error', (e) => done({ error: e.code }));
`;
const VIP = '10.43.0.10';
const hostOf = (a: EchoAnswer) => a.peer?.split(':')[0];
const servers = (rs: EchoAnswer[]) => [...new Set(rs.map((r) => r.server ?? `error:${r.error}`))].sort();

t.test('two nodes: pods, services, masquerade, restart, cleanup', { skip }, async (t) => {
  t.equal((await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim(), '0', 'precondition: the host does not forward');
  const c = await cluster(t);
  const n1 = await c.makeNode('n1', { podCIDR: '10.42.1.0/24', redirect: 'peer' });
  const n2 = await c.makeNode('n2', { podCIDR: '10.42.2.0/24', redirect: 'neigh' });
  const a1 = await c.addPod(n1, 'a1');
  const a2 = await c.addPod(n1, 'a2');
  const b1 = await c.addPod(n2, 'b1');
  const b2 = await c.addPod(n2, 'b2');
  for (const p of [a2, b1, b2]) await c.echoServer(p, p.name);
  const ext = await c.external('ext');
  await c.echoServer(ext, 'ext');

  await t.test('agents: ip_forward on in the node namespaces, routes to the other node, masquerade configured', async (t) => {
    for (const n of [n1, n2]) {
      t.equal((await n.ns.run(['cat', '/proc/sys/net/ipv4/ip_forward'])).trim(), '1', `${n.name} forwards`);
      const st = await c.waitReady(n);
      t.match(st.podNetwork, { masquerade: { enabled: true, device: 'eth0', nodeIP: n.ip, podCIDR: n.podCIDR, clusterCIDR: '10.42.0.0/16' } });
      t.same(st.podNetwork!.tc.map((x) => `${x.direction}:${x.program}`).sort(), ['egress:kl_nat_egress', 'ingress:kl_nat_ingress']);
    }
    await waitFor(async () => (await n1.ns.run(['ip', 'route', 'show', 'proto', '185'])).includes('10.42.2.0/24'), 'route on n1');
    t.match(await n1.ns.run(['ip', 'route', 'show', 'proto', '185']), `10.42.2.0/24 via ${n2.ip} dev eth0`);
    await waitFor(async () => (await n2.ns.run(['ip', 'route', 'show', 'proto', '185'])).includes('10.42.1.0/24'), 'route on n2');
    t.equal((await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim(), '0', 'the host still does not forward');
  });

  await t.test('endpoints are registered with their programs', async (t) => {
    const eps = await c.api<EndpointInfo[]>(n1, 'GET', '/v1/endpoints');
    t.same(eps.map((e) => e.addresses[0]).sort(), [a1.ip, a2.ip].sort());
    for (const e of eps) t.same(e.programs, ['tc/ingress:kl_from_pod', 'tc/egress:kl_to_pod']);
    const filters = await n1.ns.run(['tc', 'filter', 'show', 'dev', a1.hostIfname, 'ingress']);
    t.match(filters, /kl_from_pod/, 'from-pod on the host veth');
    const cli = await execa(process.execPath, [kinglet, 'endpoint', 'list', '--api-socket', n1.sock, '--json']);
    t.equal((JSON.parse(cli.stdout) as EndpointInfo[]).length, 2, 'kinglet endpoint list --json');
    const human = await execa(process.execPath, [kinglet, 'endpoint', 'list', '--api-socket', n1.sock]);
    t.match(human.stdout, new RegExp(`${a1.ip.replace(/\./g, '\\.')}\\s+${a1.hostIfname}`));
  });

  await t.test('same node, bpf_redirect_peer (n1) and bpf_redirect_neigh (n2): the server sees the pod address', async (t) => {
    const [tcp, udp] = await c.echo(a1, [{ op: 'tcp', host: a2.ip, port: 8080, n: 5 }, { op: 'udp', host: a2.ip, port: 8080, n: 5 }]);
    t.same(servers(tcp!), ['a2']);
    t.same(servers(udp!), ['a2']);
    t.same([...new Set(tcp!.map(hostOf))], [a1.ip]);
    const [tcp2] = await c.echo(b2, [{ op: 'tcp', host: b1.ip, port: 8080, n: 5 }]);
    t.same(servers(tcp2!), ['b1']);
    t.same([...new Set(tcp2!.map(hostOf))], [b2.ip]);
    await c.exec(a1, ['ping', '-c', '2', '-i', '0.2', '-W', '2', a2.ip]);
    t.pass('ping a1 -> a2');
  });

  await t.test('cross node through the routes: no NAT between pods', async (t) => {
    const [tcp, udp] = await c.echo(a1, [{ op: 'tcp', host: b1.ip, port: 8080, n: 5 }, { op: 'udp', host: b1.ip, port: 8080, n: 5 }]);
    t.same(servers(tcp!), ['b1']);
    t.same(servers(udp!), ['b1']);
    t.same([...new Set(tcp!.map(hostOf))], [a1.ip], 'b1 sees a1\'s own address');
    const [back] = await c.echo(b2, [{ op: 'tcp', host: a2.ip, port: 8080, n: 3 }]);
    t.same(servers(back!), ['a2']);
  });

  await t.test('masquerade: the external host sees the node address', async (t) => {
    const [tcp, udp] = await c.echo(a1, [{ op: 'tcp', host: ext.ip, port: 8080, n: 5 }, { op: 'udp', host: ext.ip, port: 8080, n: 5 }]);
    t.same(servers(tcp!), ['ext']);
    t.same(servers(udp!), ['ext']);
    t.same([...new Set([...tcp!, ...udp!].map(hostOf))], [n1.ip], 'peer is n1\'s address, not the pod\'s');
    for (const a of tcp!) t.ok(Number(a.peer!.split(':')[1]) >= 61000, `source port ${a.peer} from the masquerade range`);
    const [fromB] = await c.echo(b1, [{ op: 'tcp', host: ext.ip, port: 8080, n: 2 }]);
    t.same([...new Set(fromB!.map(hostOf))], [n2.ip], 'n2\'s pods leave with n2\'s address');
    await c.exec(a1, ['ping', '-c', '2', '-i', '0.2', '-W', '2', ext.ip]);
    t.pass('ICMP echo is masqueraded too');
    const routes = await ext.ns.run(['ip', 'route', 'show']);
    t.notMatch(routes, /10\.42\./, 'the external host has no route to the pods');
  });

  await t.test('a node reaches a pod on the other node: the pod\'s replies are not masqueraded', async (t) => {
    // n1's own process (its namespace, outside any pod) to b1 on n2: n1's
    // address is outside the cluster CIDR, but the connection came in to b1,
    // so b1's replies must leave n2 with b1's address (a SYN-ACK from n2's
    // address would be answered with RST; a UDP reply would come from the
    // wrong peer).
    const ops = [{ op: 'tcp', host: b1.ip, port: 8080, n: 5 }, { op: 'udp', host: b1.ip, port: 8080, n: 5 }];
    const out = await n1.ns.run([process.execPath, echoPeer, 'client', JSON.stringify(ops)]);
    const [tcp, udp] = JSON.parse(out.trim().split('\n').pop()!) as EchoAnswer[][];
    t.same(servers(tcp!), ['b1'], `TCP answered (${JSON.stringify(tcp)})`);
    t.same(servers(udp!), ['b1'], `UDP answered (${JSON.stringify(udp)})`);
    t.same([...new Set([...tcp!, ...udp!].map(hostOf))], [n1.ip], 'b1 sees n1\'s address');
    t.same([...new Set([...tcp!, ...udp!].map((a) => a.remote))], [`${b1.ip}:8080`], 'the replies come from b1 itself');
    // And the other way round: n2's own process to a2 on n1 (redirect peer).
    const back = await n2.ns.run([process.execPath, echoPeer, 'client', JSON.stringify([{ op: 'tcp', host: a2.ip, port: 8080, n: 3 }])]);
    const [toA2] = JSON.parse(back.trim().split('\n').pop()!) as EchoAnswer[][];
    t.same(servers(toA2!), ['a2'], 'n2 -> a2 on n1');
    t.same([...new Set(toA2!.map((a) => a.remote))], [`${a2.ip}:8080`]);
    // Masquerade of what the pods open is unchanged meanwhile.
    const [ext1] = await c.echo(b1, [{ op: 'tcp', host: ext.ip, port: 8080, n: 2 }]);
    t.same([...new Set(ext1!.map(hostOf))], [n2.ip], 'b1 -> external still leaves with n2\'s address');
  });

  await c.writeObjects([clusterIpService('echo', VIP), endpointSlice('echo', [a2.ip, b1.ip, b2.ip])]);
  const programmed = (n: typeof n1) =>
    waitFor(async () => (await c.api<{ backends: unknown[] }[]>(n, 'GET', '/v1/services')).some((s) => s.backends.length === 3), `services on ${n.name}`);
  await programmed(n1);
  await programmed(n2);

  await t.test('ClusterIP with the socket LB (client in the node cgroup)', async (t) => {
    const [tcp, udp] = await c.echo(a1, [{ op: 'tcp', host: VIP, port: 80, n: 30 }, { op: 'udp', host: VIP, port: 80, n: 30 }], { cgroup: true });
    t.same(servers(tcp!), ['a2', 'b1', 'b2'], 'TCP spread over all backends, local and remote');
    t.same(servers(udp!), ['a2', 'b1', 'b2']);
    t.same([...new Set(tcp!.map(hostOf))], [a1.ip], 'backends see the client pod');
  });

  await t.test('ClusterIP per packet in tc (client outside the socket-LB cgroup)', async (t) => {
    const [tcp, udp] = await c.echo(a1, [{ op: 'tcp', host: VIP, port: 80, n: 30 }, { op: 'udp', host: VIP, port: 80, n: 30 }]);
    t.same(servers(tcp!), ['a2', 'b1', 'b2']);
    t.same(servers(udp!), ['a2', 'b1', 'b2']);
    t.same([...new Set(tcp!.map((a) => a.remote))], [`${VIP}:80`], 'the client sees the ClusterIP as its peer (reverse NAT)');
    t.same([...new Set(udp!.map((a) => a.remote))], [`${VIP}:80`], 'UDP replies come from the ClusterIP');
  });

  await t.test('sessionAffinity ClientIP per packet in tc: one client, one backend', async (t) => {
    const STICKY = '10.43.0.20';
    const sticky = { ...(clusterIpService('sticky', STICKY) as { spec: Record<string, unknown> }) };
    sticky.spec = { ...sticky.spec, sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } };
    await c.writeObjects([clusterIpService('echo', VIP), endpointSlice('echo', [a2.ip, b1.ip, b2.ip]), sticky, endpointSlice('sticky', [a2.ip, b1.ip, b2.ip])]);
    await waitFor(async () => (await c.api<{ address: string; backends: unknown[] }[]>(n1, 'GET', '/v1/services')).some((s) => s.address === STICKY && s.backends.length === 3), 'sticky service on n1');
    const [tcp, spread] = await c.echo(a1, [{ op: 'tcp', host: STICKY, port: 80, n: 12 }, { op: 'tcp', host: VIP, port: 80, n: 30 }]);
    t.equal(servers(tcp!).length, 1, `every connection to the affine service went to one backend (${servers(tcp!).join(', ')})`);
    t.notOk(servers(tcp!)[0]!.startsWith('error:'), 'and was answered');
    t.same(servers(spread!), ['a2', 'b1', 'b2'], 'the service without affinity still spreads');
    // The per-packet LB keys the record by the client's address (marked so it
    // never equals a netns cookie), and it names the backend that answered.
    const aff = openPinnedMap(join(n1.bpfRoot, 'maps', LB_AFF_MAP));
    const bes = openPinnedMap(join(n1.bpfRoot, 'maps', LB4_BE_MAP));
    t.teardown(() => { aff.close(); bes.close(); });
    const recs = [...aff.entries()].map(([k, v]) => ({ key: affKeyCodec.decode(k), value: affValueCodec.decode(v) }));
    t.same(recs.map((r) => r.key.client), [(1n << 63n) | BigInt(ipv4Value(a1.ip))], `one record, keyed by ${a1.ip}`);
    const be = recs[0] && bes.get(u32Codec.encode(recs[0].value.backendId));
    const byIp: Record<string, string> = { [a2.ip]: 'a2', [b1.ip]: 'b1', [b2.ip]: 'b2' };
    t.equal(be && byIp[lb4BackendCodec.decode(be).address], servers(tcp!)[0], 'naming the backend that answered');
    await c.writeObjects([clusterIpService('echo', VIP), endpointSlice('echo', [a2.ip, b1.ip, b2.ip])]);
  });

  await t.test('a new connection on the tuple of a closed ClusterIP flow is its own flow, not reverse-translated', async (t) => {
    // Same client port twice: first to the ClusterIP (translated in tc, its
    // conntrack entry kept ~10 s after the FIN), then straight to the
    // backend it reached. The second must not inherit the first's reverse NAT.
    const run = async (host: string, port: number) => JSON.parse(await c.exec(a1, [process.execPath, '-e', SAME_PORT_CLIENT, host, String(port)])) as EchoAnswer;
    const first = await run(VIP, 80);
    t.equal(first.remote, `${VIP}:80`, `translated (${JSON.stringify(first)})`);
    const backend = { a2, b1, b2 }[first.server as 'a2' | 'b1' | 'b2']!;
    const second = await run(backend.ip, 8080);
    t.same({ server: second.server, remote: second.remote, error: second.error }, { server: backend.name, remote: `${backend.ip}:8080`, error: undefined }, 'answered by the backend itself');
  });

  await t.test('socket LB forced off: --socket-lb=false, the tc LB serves even the cgroup\'s processes', async (t) => {
    await c.restartAgent(n1, { socketLb: false, redirect: 'stack' });
    const st = await c.waitReady(n1);
    t.equal(st.datapath.programs.length, 0, 'no cgroup program attached');
    const show = await execa('bpftool', ['cgroup', 'show', n1.cgroup, '-j']);
    t.same(JSON.parse(show.stdout || '[]'), [], 'nothing attached to the node cgroup');
    const [tcp] = await c.echo(a1, [{ op: 'tcp', host: VIP, port: 80, n: 30 }], { cgroup: true });
    t.same(servers(tcp!), ['a2', 'b1', 'b2']);
    t.same([...new Set(tcp!.map((a) => a.remote))], [`${VIP}:80`], 'translated per packet');
    const [local] = await c.echo(a1, [{ op: 'tcp', host: a2.ip, port: 8080, n: 3 }]);
    t.same(servers(local!), ['a2'], 'same node through the stack (--pod-redirect stack)');
  });

  await t.test('service without backends: dropped with a named reason', async (t) => {
    await c.writeObjects([clusterIpService('echo', VIP), endpointSlice('echo', [])]);
    await waitFor(async () => (await c.api<{ backends: unknown[] }[]>(n1, 'GET', '/v1/services')).every((s) => s.backends.length === 0), 'no backends');
    const [tcp] = await c.echo(a1, [{ op: 'tcp', host: VIP, port: 80, n: 1 }]);
    t.ok(tcp![0]!.error, `connection fails (${tcp![0]!.error})`);
    const st = await c.api<AgentStatus>(n1, 'GET', '/v1/status');
    t.ok(st.podNetwork!.drops.some((d) => d.reason === 'service has no backends' && d.count > 0), `drops: ${JSON.stringify(st.podNetwork!.drops)}`);
    await c.writeObjects([clusterIpService('echo', VIP), endpointSlice('echo', [a2.ip, b1.ip, b2.ip])]);
    await programmed(n1);
  });

  await t.test('kill -9 and restart the agent under traffic: no connection fails', async (t) => {
    const client = c.spawn(a1, [process.execPath, (await import('../../../lib/cluster.ts')).echoPeer, 'client', JSON.stringify([{ op: 'tcp', host: b1.ip, port: 8080, n: 1500 }, { op: 'tcp', host: ext.ip, port: 8080, n: 300 }])]);
    await new Promise((r) => setTimeout(r, 300));
    const from = Date.now() - 1000;
    await c.restartAgent(n1, { kill: true, redirect: 'peer', socketLb: false });
    const to = Date.now() + 1000;
    const out = await client.waitForOutput((o) => o.includes('\n'), 120_000);
    const [pods, outside] = JSON.parse(out.trim().split('\n').pop()!) as EchoAnswer[][];
    // Judged on the connections started from 1 s before the kill to 1 s after
    // the new agent was ready; a timeout long after that is load on a busy
    // test machine, not the restart (reported, not failed).
    const inWindow = pods!.filter((a) => a.at! >= from && a.at! <= to);
    const failedAt = pods!.map((a, i) => (a.error ? `${i}:${a.error}@${a.at! - from}ms` : '')).filter(Boolean);
    const drops = [(await c.api<AgentStatus>(n1, 'GET', '/v1/status')).podNetwork?.drops, (await c.api<AgentStatus>(n2, 'GET', '/v1/status')).podNetwork?.drops];
    t.ok(inWindow.length > 20, `${inWindow.length} connections during the restart`);
    t.equal(inWindow.filter((a) => a.error).length, 0, `failures around the restart (all: ${failedAt.slice(0, 10).join(' ') || 'none'}; drops ${JSON.stringify(drops)})`);
    t.ok(failedAt.length <= 3, `at most a few timeouts over ${pods!.length} connections (${failedAt.length})`);
    t.equal(outside!.filter((a) => a.error).length, 0, 'masqueraded flows after the restart');
    const filters = (await n1.ns.run(['tc', 'filter', 'show', 'dev', a1.hostIfname, 'ingress'])).split('\n').filter((l) => l.includes('handle'));
    t.equal(filters.length, 1, 'the filter was replaced in place, not added');
  });

  await t.test('endpoints API: validation, idempotent DELETE, CNI DEL removes the endpoint', async (t) => {
    const bad = await c.api(n1, 'PUT', '/v1/endpoints/x1', { netns: 'rel', ifname: 'eth0', hostIfname: 'klx', addresses: ['10.42.1.77'] }).catch((e: unknown) => e);
    t.match(bad, { status: 400, message: /netns must be the absolute path/ });
    const noif = await c.api(n1, 'PUT', '/v1/endpoints/x1', { netns: '/run/netns/none', ifname: 'eth0', hostIfname: 'klnosuch', addresses: ['10.42.1.77'] }).catch((e: unknown) => e);
    t.match(noif, { status: 400, message: /does not exist in the agent's network namespace/ });
    const clash = await c.api(n1, 'PUT', '/v1/endpoints/x2', { netns: '/run/netns/none', ifname: 'eth0', hostIfname: 'klnosuch', addresses: [a1.ip] }).catch((e: unknown) => e);
    t.match(clash, { status: 409 });
    t.equal(await c.api(n1, 'DELETE', '/v1/endpoints/never-registered'), undefined, 'DELETE of an unknown endpoint: 204');
    await c.removePod(a2);
    const eps = await c.api<EndpointInfo[]>(n1, 'GET', '/v1/endpoints');
    t.same(eps.map((e) => e.containerId), [a1.containerId], 'a2 gone after CNI DEL (sent twice)');
    const [r] = await c.echo(a1, [{ op: 'tcp', host: a2.ip, port: 8080, n: 1 }]);
    t.ok(r![0]!.error, 'a2 no longer reachable');
  });

  await t.test('a restarted agent drops endpoints whose veth vanished while it was down', async (t) => {
    await n2.agent.stop('SIGTERM');
    // The pod went while the agent was down (its veth deleted with it).
    await n2.ns.run(['ip', 'link', 'del', b2.hostIfname]);
    await c.restartAgent(n2);
    const eps = await c.api<EndpointInfo[]>(n2, 'GET', '/v1/endpoints');
    t.same(eps.map((e) => e.addresses[0]), [b1.ip]);
    const st = await c.api<AgentStatus>(n2, 'GET', '/v1/status');
    t.equal(st.podNetwork!.endpoints, 1);
    const human = await execa(process.execPath, [kinglet, 'status', '--api-socket', n2.sock], { reject: false });
    t.match(human.stdout, /Masquerade:\s+BPF\s+10\.42\.2\.0\/24 -> 10\.99\.0\.\d+ on eth0/);
    t.match(human.stdout, /Node routes:\s+1 installed/);
  });

  await t.test('--cleanup removes the tc programs and the qdisc it added on the native device', async (t) => {
    await n1.agent.stop('SIGTERM');
    const r = await execa('nsenter', [`--net=/run/netns/${n1.ns.name}`, process.execPath, kinglet, 'agent', '--cleanup', '--bpf-root', n1.bpfRoot, '--state-dir', n1.stateDir, '--json']);
    const rep = JSON.parse(r.stdout) as { tc: string[]; errors: string[] };
    t.same(rep.errors, []);
    t.same(rep.tc.sort(), [`${a1.hostIfname} egress`, `${a1.hostIfname} ingress`, 'eth0 egress', 'eth0 ingress'].sort());
    t.notMatch(await n1.ns.run(['tc', 'qdisc', 'show', 'dev', 'eth0']), /clsact/);
    t.equal((await n1.ns.run(['tc', 'filter', 'show', 'dev', a1.hostIfname, 'ingress'])).trim(), '');
  });
});
