// Masquerade and reverse NAT of bpf/pod.bpf.c under the cases that break
// naive NAT, on one simulated node (test/lib/cluster.ts) with a router
// namespace beyond it and a far host behind the router on a link with a
// smaller MTU:
//
//   pods a1, a2 -- n1 (node, eth0 10.99.0.x) -- bridge -- rt (router) ==mtu 1280== far (10.98.0.2)
//
// Nothing has a default route: n1 reaches 10.98.0.0/24 through a route via
// rt, far reaches the underlay through a route via rt, and rt forwards in its
// own namespace. far has no route to the pods: only masqueraded traffic can
// be answered.
import t from 'tap';
import { execa } from 'execa';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { netns, rootSkipReason, start, veth } from '../../lib/sandbox.ts';
import { waitFor } from '../../lib/wait.ts';
import { UNDERLAY, cluster, kinglet, type EchoAnswer, type External, type Pod } from '../../lib/cluster.ts';
import { icmpError, pcapFrames, udpDatagram, type IcmpErrorView } from '../../lib/pcap.ts';
import type { AgentStatus } from '../../../agent/api/types.ts';

const skip = rootSkipReason();
const FAR_NET = '10.98.0';
const FAR = `${FAR_NET}.2`;
const LINK_MTU = 1280;

/** Connected UDP socket: send until answered or refused (argv: host port [localPort]). */
const UDP_CLIENT = `
const dgram = require('node:dgram');
const [host, port, localPort] = process.argv.slice(1);
const s = dgram.createSocket('udp4');
const done = (r) => { console.log(JSON.stringify(r)); process.exit(0); };
s.on('error', (e) => done({ error: e.code }));
s.on('message', (m, r) => done({ ...JSON.parse(String(m)), remote: r.address + ':' + r.port }));
const go = () => s.connect(Number(port), host, () => {
  let i = 0;
  const tick = () => { if (i++ < 10) { s.send('hi'); setTimeout(tick, 300); } else done({ error: 'TIMEOUT' }); };
  tick();
});
if (localPort) s.bind(Number(localPort), go); else go();
`;
/** One TCP connection from a fixed local port, held open ~1 s before reading the answer (argv: host port localPort). */
const TCP_SAME_PORT = `
const net = require('node:net');
const [host, port, localPort] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port), localPort: Number(localPort) });
let d = '', remote = '';
const done = (r) => { clearTimeout(timer); console.log(JSON.stringify(r)); s.destroy(); };
const timer = setTimeout(() => done({ error: 'TIMEOUT' }), 5000);
s.on('connect', () => { remote = s.remoteAddress + ':' + s.remotePort; });
s.on('data', (x) => { d += x; });
s.on('end', () => setTimeout(() => done({ ...JSON.parse(d), remote }), 1000));
s.on('error', (e) => done({ error: e.code }));
`;
/** Upload argv[3] bytes over TCP; prints what the sink counted. */
const UPLOAD = `
const net = require('node:net');
const [host, port, n] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port) });
let d = '';
const timer = setTimeout(() => { console.log(JSON.stringify({ error: 'TIMEOUT', acked: s.bytesWritten })); process.exit(0); }, 20000);
s.on('connect', () => s.end(Buffer.alloc(Number(n), 0x5a)));
s.on('data', (x) => { d += x; });
s.on('end', () => { clearTimeout(timer); console.log(JSON.stringify({ received: Number(d) })); });
s.on('error', (e) => { clearTimeout(timer); console.log(JSON.stringify({ error: e.code })); });
`;
/** A node socket: UDP from argv[3] (bound) to argv[1]:argv[2]; prints each answer, keeps the socket until killed. */
const NODE_UDP = `
const dgram = require('node:dgram');
const [host, port, localPort] = process.argv.slice(1);
const s = dgram.createSocket('udp4');
s.on('message', (m) => console.log(String(m)));
s.on('error', (e) => console.log(JSON.stringify({ error: e.code })));
s.bind(Number(localPort), () => s.connect(Number(port), host, () => setInterval(() => s.send('hi'), 300)));
`;
/**
 * UDP on argv[1] that answers late: for each datagram, a socket connected
 * back to its sender (same port, SO_REUSEADDR) sends "late" a few times and
 * prints the error it gets, if any.
 */
const LATE_ANSWER = `
const dgram = require('node:dgram');
const port = Number(process.argv[1]);
const srv = dgram.createSocket({ type: 'udp4', reuseAddr: true });
srv.on('message', (m, r) => {
  const c = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  c.on('error', (e) => { console.log(JSON.stringify({ peer: r.address + ':' + r.port, error: e.code })); c.close(); });
  c.on('message', () => {});
  c.bind(port, () => c.connect(r.port, r.address, () => {
    let i = 0;
    const tick = () => { if (i++ < 10) { c.send('late'); setTimeout(tick, 300); } };
    setTimeout(tick, 300);
  }));
});
srv.bind(port, () => console.log('listening'));
`;
/** TCP sink on argv[1]: answers each connection with the number of bytes it got. */
const SINK = `
const net = require('node:net');
net.createServer((c) => { let n = 0; c.on('data', (x) => { n += x.length; }); c.on('end', () => c.end(String(n))); })
  .listen(Number(process.argv[1]), () => console.log('listening'));
`;

t.test('masquerade: ICMP, path MTU, port collisions; ICMP errors of tc-LB flows', { skip }, async (t) => {
  t.equal((await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim(), '0', 'precondition: the host does not forward');
  const c = await cluster(t);
  const n1 = await c.makeNode('n1', { podCIDR: '10.42.1.0/24', redirect: 'peer' });
  const a1 = await c.addPod(n1, 'a1');
  const a2 = await c.addPod(n1, 'a2');
  const rt = await c.external('rt');
  const farNs = await netns(t, 'kl-far');
  const link = await veth(t, { ns: rt.ns, addr: `${FAR_NET}.1/24` }, { ns: farNs, addr: `${FAR}/24` });
  await rt.ns.run(['sysctl', '-qw', 'net.ipv4.ip_forward=1']); // the router's own namespace
  await rt.ns.run(['ip', 'link', 'set', link.a, 'mtu', String(LINK_MTU)]);
  await farNs.run(['ip', 'route', 'add', `${UNDERLAY}.0/24`, 'via', `${FAR_NET}.1`]);
  await n1.ns.run(['ip', 'route', 'add', `${FAR_NET}.0/24`, 'via', rt.ip]);
  const far: External = { name: 'far', ns: farNs, ip: FAR };
  await c.echoServer(far, 'far');
  await c.echoServer(rt, 'rt');
  const sink = c.spawn(far, [process.execPath, '-e', SINK, '9000']);
  await sink.waitForOutput((o) => o.includes('listening'));

  const run = async (p: Pod, script: string, ...args: (string | number)[]) =>
    JSON.parse((await c.exec(p, [process.execPath, '-e', script, ...args.map(String)])).trim().split('\n').pop()!) as EchoAnswer & { received?: number; acked?: number };
  /** The first ICMP error a pod receives while `send` runs (tcpdump on its eth0), with its checksums checked. */
  const capturedError = async (p: Pod, send: () => Promise<unknown>): Promise<IcmpErrorView | undefined> => {
    const file = join(await mkdtemp(join(tmpdir(), 'kl-pcap-')), 'icmp.pcap');
    t.teardown(() => rm(join(file, '..'), { recursive: true, force: true }));
    const dump = start(t, ['tcpdump', '-i', 'eth0', '-n', '-U', '-c', '1', '-w', file, 'icmp and icmp[0] == 3'], { ns: p.ns });
    await dump.waitForOutput((o) => o.includes('listening on'));
    await send();
    await Promise.race([dump.proc, new Promise((r) => setTimeout(r, 5000))]);
    await dump.stop();
    return pcapFrames(await readFile(file)).map(icmpError).find((x) => x);
  };
  /** A UDP datagram with a full checksum from a raw socket in the pod. */
  const rawUdp = (p: Pod, dst: string, sport: number, dport: number) =>
    execa('ip', ['netns', 'exec', p.ns.name, 'socat', '-u', 'STDIN', `IP4-SENDTO:${dst}:17`], { input: udpDatagram(p.ip, dst, sport, dport, Buffer.from('checksums')) });
  const drops = async () => (await c.api<AgentStatus>(n1, 'GET', '/v1/status')).podNetwork!.drops;

  await t.test('the far host answers only what is masqueraded', async (t) => {
    t.notMatch(await farNs.run(['ip', 'route', 'show']), /10\.42\./, 'far has no route to the pods');
    const [tcp, udp] = await c.echo(a1, [{ op: 'tcp', host: FAR, port: 8080, n: 2 }, { op: 'udp', host: FAR, port: 8080, n: 2 }]);
    t.same([...new Set([...tcp!, ...udp!].map((a) => a.peer?.split(':')[0] ?? a.error))], [n1.ip], 'far sees the node address');
  });

  await t.test('ping from a pod: the echo identifier is translated both ways', async (t) => {
    const out = await c.exec(a1, ['ping', '-c', '3', '-i', '0.2', '-W', '2', FAR]);
    t.match(out, /3 received/, 'every echo answered (far can only answer the node address)');
  });

  await t.test('ICMP time exceeded from the router reaches the pinging pod', async (t) => {
    // TTL 2: n1 forwards (1 left), rt sees 1 and answers time exceeded to n1's address.
    const out = await c.exec(a1, ['ping', '-c', '1', '-t', '2', '-W', '2', FAR], { reject: false });
    t.match(out, new RegExp(`From ${rt.ip.replace(/\./g, '\\.')} icmp_seq=1 Time to live exceeded`), `ping reports the router's error (${out.trim()})`);
  });

  await t.test('UDP to a closed port on the far host: ECONNREFUSED in the pod', async (t) => {
    const r = await run(a1, UDP_CLIENT, FAR, 9999);
    t.equal(r.error, 'ECONNREFUSED', JSON.stringify(r));
    const ok = await run(a1, UDP_CLIENT, FAR, 8080);
    t.equal(ok.server, 'far', 'the same pod still talks UDP to an open port');
    const e = await capturedError(a1, () => rawUdp(a1, FAR, 40000, 9998));
    t.match(e, { src: FAR, dst: a1.ip, type: 3, code: 3, quote: { src: a1.ip, dst: FAR, proto: 17, sport: 40000, dport: 9998 } }, 'outer and quoted headers back to the pod');
    t.match(e, { ipOk: true, icmpOk: true, quoteIpOk: true, quoteUdpOk: true }, `every checksum right, the quoted UDP one too (${JSON.stringify(e)})`);
  });

  await t.test('a pod\'s port unreachable about a late reply leaves as the node, quoting the node port', async (t) => {
    const late = c.spawn(far, [process.execPath, '-e', LATE_ANSWER, '8082']);
    await late.waitForOutput((o) => o.includes('listening'));
    await c.exec(a1, [process.execPath, '-e', `const s = require('node:dgram').createSocket('udp4'); s.send('hi', 8082, '${FAR}', () => s.close());`]);
    const out = await late.waitForOutput((o) => o.includes('"error"'), 5000).catch(() => late.waitForOutput(() => true));
    const r = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as EchoAnswer)[0];
    t.equal(r?.error, 'ECONNREFUSED', `the far socket learns the pod's socket is gone (${out.trim()})`);
    t.match(r?.peer, new RegExp(`^${n1.ip.replace(/\./g, '\\.')}:6\\d{4}$`), 'from the node address and a masquerade port');
  });

  await t.test('fragmentation needed from the router: the pod learns the path MTU, a large TCP upload completes', async (t) => {
    const size = 512 * 1024;
    const r = await run(a1, UPLOAD, FAR, 9000, size);
    t.same(r, { received: size }, `${size} bytes over a ${LINK_MTU}-byte link with DF set`);
    const route = await c.exec(a1, ['ip', 'route', 'get', FAR]);
    t.match(route, new RegExp(`mtu ${LINK_MTU}`), `the pod's route cache holds the learned MTU (${route.trim()})`);
  });

  await t.test('two pods, one source port, one destination: distinct node ports, both answered', async (t) => {
    const both = async (script: string) => Promise.all([a1, a2].map((p) => run(p, script, rt.ip, 8080, 23456)));
    for (const [proto, script] of [['udp', UDP_CLIENT], ['tcp', TCP_SAME_PORT]] as const) {
      const rs = await both(script);
      t.same(rs.map((r) => r.server ?? r.error), ['rt', 'rt'], `${proto}: both answered (${JSON.stringify(rs)})`);
      t.same([...new Set(rs.map((r) => r.peer?.split(':')[0]))], [n1.ip], `${proto}: both leave with the node address`);
      const ports = rs.map((r) => Number(r.peer?.split(':')[1]));
      t.not(ports[0], ports[1], `${proto}: distinct node ports (${ports.join(', ')})`);
      t.same(rs.map((r) => r.remote), [`${rt.ip}:8080`, `${rt.ip}:8080`], `${proto}: each pod sees its own peer`);
    }
  });

  await t.test('ICMP errors of flows the per-packet LB translated: the client sees the ClusterIP, the backend itself', async (t) => {
    // a2 serves nothing on 9: its port unreachable quotes a1 -> a2:9, which
    // a1's socket (connected to the ClusterIP) only matches once translated.
    const VIP = '10.43.0.30';
    const LATE_VIP = '10.43.0.31';
    const late = c.spawn(a2, [process.execPath, '-e', LATE_ANSWER, '8082']);
    await late.waitForOutput((o) => o.includes('listening'));
    const udpService = (name: string, vip: string, port: number) => [
      {
        apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' },
        spec: { type: 'ClusterIP', clusterIP: vip, clusterIPs: [vip], ports: [{ name: 'udp', port: 80, protocol: 'UDP', targetPort: port }] },
      },
      {
        apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
        metadata: { name: `${name}-x1`, namespace: 'default', labels: { 'kubernetes.io/service-name': name } },
        ports: [{ name: 'udp', port, protocol: 'UDP' }],
        endpoints: [{ addresses: [a2.ip], conditions: { ready: true } }],
      },
    ];
    await c.writeObjects([...udpService('closed', VIP, 9), ...udpService('late', LATE_VIP, 8082)]);
    await waitFor(async () => (await c.api<{ address: string; backends: unknown[] }[]>(n1, 'GET', '/v1/services')).filter((s) => [VIP, LATE_VIP].includes(s.address) && s.backends.length === 1).length === 2, 'the services on n1');
    const r = await run(a1, UDP_CLIENT, VIP, 80); // outside the node cgroup: translated per packet in tc
    t.equal(r.error, 'ECONNREFUSED', JSON.stringify(r));
    const e = await capturedError(a1, () => rawUdp(a1, VIP, 40001, 80));
    t.match(e, { src: VIP, dst: a1.ip, type: 3, code: 3, quote: { src: a1.ip, dst: VIP, proto: 17, sport: 40001, dport: 80 } }, 'from the ClusterIP, quoting the ClusterIP');
    t.match(e, { ipOk: true, icmpOk: true, quoteIpOk: true, quoteUdpOk: true }, `every checksum right (${JSON.stringify(e)})`);
    // The other way: a1 is gone when a2's answer comes; a1's port unreachable
    // (to the ClusterIP, quoting it) must reach a2 as about a2's own packet.
    await c.exec(a1, [process.execPath, '-e', `const s = require('node:dgram').createSocket('udp4'); s.send('hi', 80, '${LATE_VIP}', () => s.close());`]);
    const out = await late.waitForOutput((o) => o.includes('"error"'), 5000).catch(() => late.waitForOutput(() => true));
    t.match(out, new RegExp(`"peer":"${a1.ip.replace(/\./g, '\\.')}:\\d+","error":"ECONNREFUSED"`), `the backend learns the client's socket is gone (${out.trim()})`);
    t.same((await drops()).filter((d) => d.reason === 'header rewrite failed'), [], 'no rewrite failures');
  });

  await t.test('two masquerade ports: a node socket keeps its port, a full range drops with a named reason, a closed TCP flow frees its port', async (t) => {
    // A destination nothing used before, so earlier claims cannot hold these ports.
    await c.echoServer(far, 'far2', 8081);
    await c.restartAgent(n1, { agentArgs: ['--masquerade-ports', '61000-61001'] });
    t.equal((await c.api<AgentStatus>(n1, 'GET', '/v1/status')).podNetwork!.masquerade.ports, '61000-61001', 'the range in the status');
    t.match((await execa(process.execPath, [kinglet, 'status', '--api-socket', n1.sock])).stdout, /Masquerade:\s+BPF .* ports 61000-61001\n/, 'and in kinglet status');
    const noPort = async () => (await drops()).find((d) => d.reason === 'no free masquerade port')?.count ?? 0;
    // The node itself talks UDP from 61000 to far:8081: masquerade must not hand 61000 out towards far:8081.
    const node = start(t, [process.execPath, '-e', NODE_UDP, FAR, '8081', '61000'], { ns: n1.ns });
    await node.waitForOutput((o) => o.includes(`"peer":"${n1.ip}:61000"`));
    const a = await run(a1, UDP_CLIENT, FAR, 8081);
    t.equal(a.peer, `${n1.ip}:61001`, `the pod's flow got the port the node does not use (${JSON.stringify(a)})`);
    const before = await noPort();
    const b = await run(a2, UDP_CLIENT, FAR, 8081);
    t.equal(b.error, 'TIMEOUT', `no port left for a second pod's flow (${JSON.stringify(b)})`);
    t.ok((await noPort()) > before, 'counted as "no free masquerade port"');
    const answers = (o: string) => o.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as EchoAnswer);
    const sofar = answers(await node.waitForOutput(() => true)).length;
    const seen = answers(await node.waitForOutput((o) => answers(o).length >= sofar + 3, 5000).catch(() => node.waitForOutput(() => true)));
    t.ok(seen.length >= sofar + 3, `the node socket still gets its answers after the pods' flows (${seen.length - sofar} more)`);
    t.same([...new Set(seen.map((x) => x.peer ?? x.error))], [`${n1.ip}:61000`], 'and nothing but its own');
    await node.stop();

    // TCP: two closed connections hold both ports for the FIN lifetime (10 s), then let go.
    const [first] = await c.echo(a1, [{ op: 'tcp', host: FAR, port: 8081, n: 2 }]);
    t.same(first!.map((x) => x.server ?? x.error), ['far2', 'far2'], 'two connections, one per port');
    const closedAt = Date.now();
    const [full] = await c.echo(a2, [{ op: 'tcp', host: FAR, port: 8081, n: 1 }]);
    t.equal(full![0]!.error, 'TIMEOUT', 'a third finds both ports held');
    await new Promise((r) => setTimeout(r, Math.max(0, closedAt + 11_000 - Date.now())));
    const [later] = await c.echo(a2, [{ op: 'tcp', host: FAR, port: 8081, n: 1 }]);
    t.equal(later![0]!.server, 'far2', `after the FIN lifetime a closed flow's port is free again (${JSON.stringify(later)})`);
  });

  await t.test('masquerade ports inside the node\'s ephemeral range: a node connection that gets a pod flow\'s port keeps its replies', async (t) => {
    const hostRange = await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8');
    await n1.ns.run(['sysctl', '-qw', 'net.ipv4.ip_local_port_range=61000 62000']); // the node namespace's own
    t.equal(await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8'), hostRange, 'the host\'s range is untouched');
    await c.restartAgent(n1, { agentArgs: ['--masquerade-ports', '61000-61001'] });
    await n1.agent.waitForOutput((o) => o.includes('overlap the node\'s ephemeral ports 61000-62000'));
    t.pass('the agent warns about the overlap');
    await c.echoServer(far, 'far3', 8083);
    const a = await run(a1, UDP_CLIENT, FAR, 8083);
    t.equal(a.server, 'far3', `the pod's flow (${JSON.stringify(a)})`);
    const port = a.peer!.split(':')[1]!;
    // As if the kernel had picked that port for a node connection to the same peer.
    const node = start(t, [process.execPath, '-e', NODE_UDP, FAR, '8083', port], { ns: n1.ns });
    const out = await node.waitForOutput((o) => o.includes(`"peer":"${n1.ip}:${port}"`), 5000).catch((e: Error) => e.message);
    t.match(out, `"server":"far3","peer":"${n1.ip}:${port}"`, `the node socket on ${port} gets its answers`);
    await node.stop();
  });
});
