// The pod side of ADD over rtnetlink (agent/cni/rtnl.ts) in namespaces the
// test makes: a "node" namespace holding the host end of a veth and a pod
// namespace with the other end, as setupHost leaves them. Checked with `ip`
// inside the pod namespace; the test's own thread must be back in its own
// namespace after each call, failed ones included.
import t, { type Test } from 'tap';
import { execa } from 'execa';
import { readlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { netns, rootSkipReason, type Netns } from '../../../lib/sandbox.ts';
import { setupHostRtnl, setupPodRtnl, RtnlError } from '../../../../agent/cni/rtnl.ts';
import { setupPod, useRtnl, type VethSpec } from '../../../../agent/cni/plumbing.ts';

const skip = rootSkipReason();
const HOST_CHILD = fileURLToPath(new URL('../../../lib/rtnl-host.ts', import.meta.url));

/** setupHost + setupPod over rtnetlink inside `node` (a child process there); the fallbacks it heard. */
async function wireFromNode(node: Netns, spec: VethSpec): Promise<string[]> {
  const r = await execa('ip', ['netns', 'exec', node.name, process.execPath, HOST_CHILD, JSON.stringify(spec)]);
  return (JSON.parse(r.stdout) as { fallbacks: string[] }).fallbacks;
}
const ownNs = () => readlinkSync('/proc/thread-self/ns/net');

async function pair(t: Test): Promise<{ node: Netns; pod: Netns; spec: VethSpec }> {
  const node = await netns(t, 'klrt-node');
  const pod = await netns(t, 'klrt-pod');
  // A pod namespace as the runtime makes it: lo down.
  await execa('ip', ['-n', pod.name, 'link', 'set', 'lo', 'down']);
  const spec: VethSpec = {
    netns: `/run/netns/${pod.name}`,
    ifname: 'eth0',
    hostIfname: 'klrthost',
    address: '10.77.0.9',
    gateway: '10.77.0.1',
    mtu: 1400,
    hostMac: '02:77:00:00:00:01',
    podMac: '02:77:00:00:00:02',
  };
  await execa('ip', ['-n', node.name, 'link', 'add', spec.hostIfname, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod.name]);
  return { node, pod, spec };
}

async function podState(pod: Netns) {
  const j = async (args: string[]) => JSON.parse((await execa('ip', ['-n', pod.name, '-j', ...args])).stdout) as any[];
  return { links: await j(['addr', 'show']), routes: await j(['route', 'show', 'default']), neigh: await j(['neigh', 'show', 'dev', 'eth0']) };
}

function assertWired(t: Test, st: Awaited<ReturnType<typeof podState>>, spec: VethSpec) {
  const lo = st.links.find((l) => l.ifname === 'lo');
  const eth = st.links.find((l) => l.ifname === 'eth0');
  t.ok(lo.flags.includes('UP'), 'lo up');
  t.ok(eth.flags.includes('UP'), 'eth0 up');
  t.ok(eth.addr_info.some((a: any) => a.family === 'inet' && a.local === spec.address && a.prefixlen === 32), 'the /32 address');
  t.match(st.routes, [{ dst: 'default', gateway: spec.gateway, dev: 'eth0', flags: ['onlink'] }], 'default route via the gateway, onlink');
  t.match(st.neigh, [{ dst: spec.gateway, lladdr: spec.hostMac, state: ['PERMANENT'] }], 'the gateway as a permanent neighbour');
}

t.test('rtnetlink pod side', { skip }, async (t) => {
  const before = ownNs();

  t.test('wires the pod like the ip batch does, and again without error', async (t) => {
    const { pod, spec } = await pair(t);
    setupPodRtnl(spec);
    t.equal(ownNs(), before, 'back in our own namespace');
    assertWired(t, await podState(pod), spec);
    t.doesNotThrow(() => setupPodRtnl(spec), 'a repeated ADD replaces');
    assertWired(t, await podState(pod), spec);
    const st = await podState(pod);
    t.equal(st.links.find((l) => l.ifname === 'eth0').addr_info.filter((a: any) => a.family === 'inet').length, 1, 'one address, not two');
  });

  t.test('a namespace that is not there, an interface that is not there: RtnlError, nothing changed, own namespace kept', async (t) => {
    const { pod, spec } = await pair(t);
    t.throws(() => setupPodRtnl({ ...spec, netns: `/run/netns/${pod.name}-gone` }), RtnlError);
    t.equal(ownNs(), before);
    t.throws(() => setupPodRtnl({ ...spec, ifname: 'eth7' }), { name: 'RtnlError', message: /eth7 not found/ });
    t.equal(ownNs(), before);
    t.throws(() => setupPodRtnl({ ...spec, netns: '/proc/self/status' }), RtnlError, 'a file that is not a namespace');
    t.equal(ownNs(), before);
    const st = await podState(pod);
    t.notOk(st.links.find((l) => l.ifname === 'eth0').flags.includes('UP'), 'eth0 untouched');
    t.same(st.routes, []);
  });

  t.test('setupPod falls back to the ip exec when netlink fails, and says why', async (t) => {
    const { pod, spec } = await pair(t);
    const heard: string[] = [];
    const no = () => {
      throw new RtnlError('simulated: netlink unavailable');
    };
    useRtnl({ host: no, pod: no, fallback: (side, _s, err) => heard.push(`${side}: ${err.message}`) });
    t.teardown(() => useRtnl(undefined));
    await setupPod(spec);
    t.same(heard, ['pod: simulated: netlink unavailable']);
    assertWired(t, await podState(pod), spec);
  });

  t.test('setupPod with the real netlink: no fallback', async (t) => {
    const { pod, spec } = await pair(t);
    const heard: string[] = [];
    useRtnl({ host: setupHostRtnl, pod: setupPodRtnl, fallback: (_side, _s, err) => heard.push(err.message) });
    t.teardown(() => useRtnl(undefined));
    await setupPod(spec);
    t.same(heard, []);
    assertWired(t, await podState(pod), spec);
  });

  t.test('host side from a fresh node namespace: gateway pair, veth with MTU and MACs, neighbour and route; no fallback', async (t) => {
    const node = await netns(t, 'klrt-node');
    const pod = await netns(t, 'klrt-pod');
    const spec: VethSpec = { netns: `/run/netns/${pod.name}`, ifname: 'eth0', hostIfname: 'klrth2', address: '10.78.0.7', gateway: '10.78.0.1', mtu: 1420, hostMac: '02:78:00:00:00:01', podMac: '02:78:00:00:00:02' };
    t.same(await wireFromNode(node, spec), []);
    const j = async (ns: Netns, args: string[]) => JSON.parse((await execa('ip', ['-n', ns.name, '-j', ...args])).stdout) as any[];
    const links = await j(node, ['addr', 'show']);
    const byName = (n: string) => links.find((l) => l.ifname === n);
    t.ok(byName('kinglet_host').flags.includes('UP') && byName('kinglet_net').flags.includes('UP'), 'the gateway pair, both ends up');
    t.ok(byName('kinglet_host').addr_info.some((a: any) => a.local === spec.gateway && a.prefixlen === 32), 'the gateway /32 on kinglet_host');
    t.match(byName('klrth2'), { mtu: 1420, address: spec.hostMac, flags: ['BROADCAST', 'MULTICAST', 'UP'] }, 'host veth: MTU, MAC, up');
    t.match(await j(node, ['route', 'show', `${spec.address}/32`]), [{ dst: spec.address, dev: 'klrth2', scope: 'link' }], 'the /32 route to the pod');
    t.match(await j(node, ['neigh', 'show', 'dev', 'klrth2']), [{ dst: spec.address, lladdr: spec.podMac, state: ['PERMANENT'] }]);
    const st = await podState(pod);
    t.match(st.links.find((l) => l.ifname === 'eth0'), { mtu: 1420, address: spec.podMac }, 'pod end: MTU and MAC');
    assertWired(t, st, spec);
    t.equal((await execa('ip', ['link', 'show', 'klrth2'], { reject: false })).exitCode, 1, 'nothing in the host\'s own namespace');
  });

  t.test('a host veth left by a half-finished ADD: netlink says so, ip replaces it', async (t) => {
    const node = await netns(t, 'klrt-node');
    const pod = await netns(t, 'klrt-pod');
    const spec: VethSpec = { netns: `/run/netns/${pod.name}`, ifname: 'eth0', hostIfname: 'klrth3', address: '10.79.0.7', gateway: '10.79.0.1', mtu: 1500, hostMac: '02:79:00:00:00:01', podMac: '02:79:00:00:00:02' };
    await execa('ip', ['-n', node.name, 'link', 'add', 'klrth3', 'type', 'veth', 'peer', 'name', 'klrtold']);
    const heard = await wireFromNode(node, spec);
    t.match(heard, [/^host: veth klrth3 in the node namespace: File exists/]);
    t.match((await execa('ip', ['-n', node.name, '-j', 'link', 'show', 'klrth3'])).stdout, spec.hostMac, 'the new veth');
    assertWired(t, await podState(pod), spec);
  });
});
