// kinglet-cni under a real containerd over CRI (what k3s's kubelet does):
// pods get addresses from the podCIDR and talk, stop + remove leave nothing,
// 100 create/delete cycles leak nothing, and broken inputs give the right
// CNI errors. The harness (test/lib/containerd.ts) keeps containerd inside a
// namespace and a scratch dir of the test's own.
import t, { type Test } from 'tap';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { containerdSkipReason, startContainerd, type Containerd } from '../../lib/containerd.ts';
import type { EndpointInfo } from '../../../agent/api/types.ts';

const skip = containerdSkipReason();
const CIDR = '10.88.0.0/28'; // 13 pod addresses: small enough to exhaust

// kinglet-cni as installed (the native shim, kinglet-cni-node beside it)
// talking to the harness's real agent, which runs the plugin in-process and
// hands out addresses from its Node's podCIDR.
function kingletConflist(extra: Record<string, unknown> = {}) {
  return ({ network, scratch, agentSocket }: { network: string; scratch: string; agentSocket: string }) => ({
    cniVersion: '1.0.0',
    name: network,
    plugins: [{ type: 'kinglet-cni', agentSocket, dataDir: join(scratch, 'kinglet'), ...extra }, { type: 'loopback' }],
  });
}
const AGENT = { podCIDR: CIDR };

const SERVER = ['/bin/sh', '-c', 'mkdir -p /tmp/www && echo "hello from $(hostname)" > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www'];
const IDLE = ['/bin/sh', '-c', "trap 'exit 0' TERM; while :; do sleep 1; done"];

async function ipJson<T>(h: Containerd, args: string[]): Promise<T> {
  return JSON.parse(await h.ns.run(['ip', '-j', ...args])) as T;
}

/** Every allocation in the IPAM state files of a network. */
async function ipamAllocations(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const f of await readdir(dir).catch(() => [] as string[])) {
    if (!f.endsWith('.json')) {
      out.push(`stray file ${f}`);
      continue;
    }
    const st = JSON.parse(await readFile(join(dir, f), 'utf8')) as { allocations: Record<string, { containerId: string }> };
    for (const [ip, a] of Object.entries(st.allocations)) out.push(`${ip} ${a.containerId}`);
  }
  return out;
}

/** What pods leave behind in the node namespace, the IPAM dir, libcni's cache and containerd's netns dir. */
async function leftovers(h: Containerd) {
  const links = (await ipJson<{ ifname: string }[]>(h, ['link', 'show'])).map((l) => l.ifname);
  return {
    veths: links.filter((n) => /^kl[0-9a-f]{11}$/.test(n)),
    routes: (await ipJson<{ dst: string }[]>(h, ['-4', 'route', 'show'])).map((r) => r.dst),
    ipam: await ipamAllocations(join(h.scratch, 'kinglet', 'ipam', h.network)),
    cniCache: (await readdir('/var/lib/cni/results').catch(() => [] as string[])).filter((f) => f.startsWith(`${h.network}-`)),
    netns: await h.netnsMounts(),
    endpoints: h.agent ? (await h.agent.get<EndpointInfo[]>('/v1/endpoints')).map((e) => e.containerId) : [],
  };
}
const NOTHING = { veths: [], routes: [], ipam: [], cniCache: [], netns: [], endpoints: [] };

function inRange(ip: string): boolean {
  const m = /^10\.88\.0\.(\d+)$/.exec(ip);
  return !!m && Number(m[1]) >= 2 && Number(m[1]) <= 14;
}

/** The node namespaces and scratch directories of this file's harnesses (other runs on the host may have their own). */
const started: string[] = [];
const scratches: string[] = [];
async function harness(...args: Parameters<typeof startContainerd>): Promise<Containerd> {
  const h = await startContainerd(...args);
  started.push(h.ns.name);
  scratches.push(h.scratch);
  return h;
}

t.test('pods get addresses from the podCIDR, talk, and leave nothing when removed', { skip }, async (t) => {
  const h = await harness(t, { record: true, agent: AGENT, conflist: kingletConflist() });
  const a = await h.runPod('pod-a');
  const b = await h.runPod('pod-b');
  t.ok(inRange(a.ip), `pod-a got ${a.ip} from ${CIDR}`);
  t.ok(inRange(b.ip), `pod-b got ${b.ip}`);
  t.not(a.ip, b.ip);

  const adds = (await h.calls()).filter((c) => c.command === 'ADD');
  t.equal(adds.length, 2, 'containerd ran ADD once per pod');
  t.same(adds.map((c) => c.out?.['ips'][0].address).sort(), [`${a.ip}/32`, `${b.ip}/32`].sort(), 'the CRI pod IP is the one ADD returned');
  t.match(adds[0]!.netns, /io\.containerd\.grpc\.v1\.cri\/netns\/cni-/, 'with containerd\'s netns path');

  const srv = await h.runContainer(b, 'server', SERVER);
  const cli = await h.runContainer(a, 'client', IDLE);
  let got = { exitCode: -1, stdout: '', stderr: '' };
  for (let i = 0; i < 50 && got.exitCode !== 0; i++) {
    // (busybox 1.35's wget crashes with -q -T together: plain -O - it is)
    got = await h.exec(cli, ['wget', '-O', '-', `http://${b.ip}:8080/`]);
    if (got.exitCode !== 0) await new Promise((r) => setTimeout(r, 100));
  }
  t.equal(got.exitCode, 0, `wget from pod-a to pod-b: ${got.stderr}`);
  t.equal(got.stdout.trim(), 'hello from pod-b', 'pod-a reads pod-b\'s web page');
  const ping = await h.exec(cli, ['ping', '-c', '1', '-W', '2', b.ip]);
  t.equal(ping.exitCode, 0, 'pod-a pings pod-b');
  const gw = await h.exec(srv, ['ping', '-c', '1', '-W', '2', '10.88.0.1']);
  t.equal(gw.exitCode, 0, 'pod-b pings the gateway');
  const routes = await h.exec(cli, ['ip', 'route']);
  t.match(routes.stdout, 'default via 10.88.0.1 dev eth0', 'default route via the gateway inside the pod');
  t.same(await ipJson(h, ['route', 'show', 'default']), [], 'the node namespace has no default route');

  for (const p of [a, b]) {
    await h.stopPod(p.id);
    await h.removePod(p.id);
  }
  const dels = (await h.calls()).filter((c) => c.command === 'DEL');
  t.equal(dels.length, 4, 'DEL twice per pod (stop, remove)');
  t.ok(dels.every((d) => d.exitCode === 0), 'every DEL succeeded');
  t.ok(dels.some((d) => d.netns === '') && dels.some((d) => d.netns !== ''), 'once with the netns, once without');
  t.same(await leftovers(h), NOTHING, 'no veth, route, IPAM entry, CNI cache file or netns left');
});

t.test('containerd\'s CNI_ARGS reach the agent\'s endpoint, which the pod\'s programs are attached to', { skip }, async (t) => {
  const h = await harness(t, { agent: AGENT, conflist: kingletConflist() });
  const p = await h.runPod('web-0');
  t.ok(inRange(p.ip), `address from the Node's podCIDR via the agent: ${p.ip}`);
  const eps = await h.agent!.get<EndpointInfo[]>('/v1/endpoints');
  t.equal(eps.length, 1);
  t.match(eps[0], { containerId: p.id, ifname: 'eth0', addresses: [p.ip], podName: 'web-0', podNamespace: 'default', podUid: (p.config['metadata'] as { uid: string }).uid });
  t.ok(eps[0]!.programs.length > 0, `pod programs attached: ${eps[0]!.programs.join(', ')}`);
  await h.stopPod(p.id);
  await h.removePod(p.id);
  t.same(await leftovers(h), NOTHING);
});

t.test('agent not running: the shim falls back to the Node plugin under containerd', { skip }, async (t) => {
  const h = await harness(t, { record: true, conflist: kingletConflist({ agent: false, podCIDR: CIDR, agentSocket: '/run/kinglet-test-no-agent.sock' }) });
  const p = await h.runPod('alone');
  t.ok(inRange(p.ip), `pod address without an agent (podCIDR from the conflist): ${p.ip}`);
  await h.stopPod(p.id);
  await h.removePod(p.id);
  t.ok((await h.calls()).every((c) => c.exitCode === 0), 'ADD and both DELs succeeded');
  t.same(await leftovers(h), NOTHING);
});

t.test('100 create/delete cycles leak nothing', { skip }, async (t) => {
  const h = await harness(t, { agent: AGENT, conflist: kingletConflist() });
  const ips = new Set<string>();
  const fdsBefore = (await readdir(`/proc/${h.pid}/fd`)).length;
  for (let i = 0; i < 100; i++) {
    const p = await h.runPod(`cycle-${i}`);
    if (!inRange(p.ip)) t.fail(`cycle ${i}: ${p.ip} not in range`);
    ips.add(p.ip);
    await h.stopPod(p.id);
    await h.removePod(p.id);
  }
  t.equal(ips.size, 13, 'round-robin went through every address of the range');
  t.same(await leftovers(h), NOTHING, 'nothing left after 100 cycles');
  const fdsAfter = (await readdir(`/proc/${h.pid}/fd`)).length;
  t.ok(fdsAfter - fdsBefore < 20, `containerd's open files ${fdsBefore} -> ${fdsAfter}`);
  const links = (await ipJson<{ ifname: string }[]>(h, ['link', 'show'])).map((l) => l.ifname).sort();
  t.same(links, ['kinglet_host', 'kinglet_net', 'lo'], 'the node namespace holds only the gateway pair');
});

t.test('an exhausted range fails RunPodSandbox with error 100 and leaves nothing of the refused pod', { skip }, async (t) => {
  const h = await harness(t, { record: true, agent: AGENT, conflist: kingletConflist() });
  const pods = [];
  for (let i = 0; i < 13; i++) pods.push(await h.runPod(`fill-${i}`));
  t.equal(new Set(pods.map((p) => p.ip)).size, 13, '13 pods fill the /28');
  const err = await h.runPod('one-too-many').catch((e: Error) => e);
  t.ok(err instanceof Error, 'the 14th RunPodSandbox fails');
  t.match((err as Error).message, /no free address in pod range 10\.88\.0\.0\/28/, 'containerd passes on the plugin\'s message');
  const failed = (await h.calls()).filter((c) => c.command === 'ADD' && c.exitCode !== 0);
  t.equal(failed.length, 1);
  t.equal(failed[0]!.out?.['code'], 100, 'CNI error code 100');
  t.equal((await ipJson<{ ifname: string }[]>(h, ['link', 'show'])).filter((l) => /^kl[0-9a-f]{11}$/.test(l.ifname)).length, 13, 'no veth for the refused pod');
  const list = await h.cri.call<{ items: unknown[] }>('ListPodSandbox', {});
  t.ok(list.items.length <= 14, 'containerd cleaned the failed sandbox up (or keeps it NOTREADY)');
  for (const p of pods) {
    await h.stopPod(p.id);
    await h.removePod(p.id);
  }
  t.same((await leftovers(h)).veths, []);
  t.same((await leftovers(h)).ipam, []);
});

t.test('bad configuration, bad stdin and a missing netns give the right CNI errors', { skip }, async (t) => {
  const bad = await harness(t, { record: true, agent: AGENT, conflist: kingletConflist({ podCIDR: '10.88.0.5/28' }) });
  const err = await bad.runPod('bad-cidr').catch((e: Error) => e);
  t.ok(err instanceof Error, 'RunPodSandbox fails');
  t.match((err as Error).message, /host bits set; did you mean "10\.88\.0\.0\/28"/, 'with the plugin\'s message and what to fix');
  const calls = await bad.calls();
  t.equal(calls.find((c) => c.command === 'ADD')?.out?.['code'], 7, 'ADD: code 7 (invalid network config)');
  t.ok(calls.filter((c) => c.command === 'DEL').every((c) => c.exitCode === 0), 'the clean-up DEL still succeeds with the broken conflist');
  t.same(await leftovers(bad), NOTHING);

  // The plugin from containerd's bin_dir, in its namespace and environment.
  const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'f00d', CNI_IFNAME: 'eth0', CNI_PATH: bad.binDir };
  const garbage = await bad.invoke('kinglet-cni', { ...env, CNI_NETNS: '/proc/self/ns/net' }, '{"cniVersion": "1.0.0", "name": ');
  t.equal(garbage.exitCode, 1);
  t.equal(garbage.out?.['code'], 6, 'bad stdin: code 6');
  const conf = JSON.stringify({ cniVersion: '1.0.0', name: bad.network, type: 'kinglet-cni', agentSocket: bad.agent!.socket, dataDir: join(bad.scratch, 'kinglet') });
  const nons = await bad.invoke('kinglet-cni', { ...env, CNI_NETNS: join(bad.scratch, 'containerd/state/io.containerd.grpc.v1.cri/netns/cni-gone') }, conf);
  t.equal(nons.out?.['code'], 3, 'missing netns on ADD: code 3');
  const del = await bad.invoke('kinglet-cni', { ...env, CNI_COMMAND: 'DEL', CNI_NETNS: '' }, conf);
  t.equal(del.exitCode, 0, 'DEL of an unknown container without a netns: success');
  const ver = await bad.invoke('kinglet-cni', { CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.0.0"}');
  t.same(ver.out?.['supportedVersions'], ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'], 'VERSION under containerd\'s environment');
  t.same(await leftovers(bad), NOTHING);
});

t.test('teardown left nothing on the host', { skip }, async (t: Test) => {
  const { execa } = await import('execa');
  const names = (await execa('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]);
  t.same(started.filter((n) => names.includes(n)), [], 'no harness namespace of this run left');
  t.notMatch((await execa('ip', ['-br', 'link'])).stdout, /kinglet_host|kl[0-9a-f]{11}/, 'no kinglet link in the host namespace');
  t.equal((await execa('sysctl', ['-n', 'net.ipv4.ip_forward'])).stdout.trim(), '0', 'host ip_forward untouched');
  const procs = (await execa('ps', ['-eo', 'args'])).stdout.split('\n');
  t.same(procs.filter((p) => scratches.some((d) => p.includes(d))), [], 'no containerd or shim of this run\'s harnesses left');
});
