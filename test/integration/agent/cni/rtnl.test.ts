// The pod side of ADD over rtnetlink (agent/cni/rtnl.ts) in namespaces the
// test makes: a "node" namespace holding the host end of a veth and a pod
// namespace with the other end, as setupHost leaves them. Checked with `ip`
// inside the pod namespace; the test's own thread must be back in its own
// namespace after each call, failed ones included.
import t, { type Test } from 'tap';
import { execa } from 'execa';
import { readlinkSync } from 'node:fs';
import { netns, rootSkipReason, type Netns } from '../../../lib/sandbox.ts';
import { setupPodRtnl, RtnlError } from '../../../../agent/cni/rtnl.ts';
import { setupPod, usePodRtnl, type VethSpec } from '../../../../agent/cni/plumbing.ts';

const skip = rootSkipReason();
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
    usePodRtnl({
      setup: () => {
        throw new RtnlError('simulated: netlink unavailable');
      },
      fallback: (_s, err) => heard.push(err.message),
    });
    t.teardown(() => usePodRtnl(undefined));
    await setupPod(spec);
    t.same(heard, ['simulated: netlink unavailable']);
    assertWired(t, await podState(pod), spec);
  });

  t.test('setupPod with the real netlink: no fallback', async (t) => {
    const { pod, spec } = await pair(t);
    const heard: string[] = [];
    usePodRtnl({ setup: setupPodRtnl, fallback: (_s, err) => heard.push(err.message) });
    t.teardown(() => usePodRtnl(undefined));
    await setupPod(spec);
    t.same(heard, []);
    assertWired(t, await podState(pod), spec);
  });
});
