// The plan of what `kinglet lab up` creates: names, addresses, placements and
// the objects the agents read (agent/lab/plan.ts).
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import { parseManifests } from '../../../../agent/source/manifests.ts';
import {
  clientNodeOf, labNameProblem, labObjects, MAX_NODES, nameFlag, objectsYaml, planLab, type LabPlan,
} from '../../../../agent/lab/plan.ts';
import { checkByName, SUITE } from '../../../../agent/connectivity/suite.ts';
import { suitePolicies } from '../../../../agent/lab/lab.ts';

const CG = '/sys/fs/cgroup/unified';
const plan2 = planLab({ name: 'lab', nodes: 2, cgroup2: CG });

function within(p: LabPlan, path: string): boolean {
  return path === p.dir || path.startsWith(`${p.dir}/`);
}

t.test('nodes: namespaces, underlay addresses, pod ranges, own cgroups and dirs', async (t) => {
  t.same(plan2.nodes.map((n) => [n.name, n.netns, n.ip, n.podCIDR]), [
    ['node1', 'kllab-lab-node1', '10.99.0.11', '10.42.1.0/24'],
    ['node2', 'kllab-lab-node2', '10.99.0.12', '10.42.2.0/24'],
  ]);
  t.equal(plan2.dir, '/run/kinglet-lab/lab');
  t.equal(plan2.stateFile, '/run/kinglet-lab/lab/state.json');
  t.equal(plan2.cgroup, `${CG}/kinglet-lab-lab`);
  t.equal(plan2.underlay.netns, 'kllab-lab-ul');
  for (const n of plan2.nodes) {
    t.equal(n.cgroup, `${plan2.cgroup}/${n.name}`, `${n.name}: socket LB on a cgroup below the lab's, never the root`);
    for (const p of [n.objectsDir, n.bpfRoot, n.stateDir, n.cniDataDir, n.sock, n.log]) t.ok(within(plan2, p), `${p} inside the lab dir`);
    t.ok(n.bpfRoot.startsWith(`${plan2.bpffs}/`), 'pins on the lab bpffs');
    t.ok(n.ulPort.length <= 15, 'interface name fits');
  }
  t.ok(plan2.systemCgroup.startsWith(`${plan2.cgroup}/`));
  t.equal(plan2.external.netns, 'kllab-lab-ext');
  t.notOk(plan2.nodes.some((n) => n.ip === plan2.external.ip), 'the external host has an address of its own');
  const all = [plan2.underlay.netns, plan2.external.netns, ...plan2.nodes.map((n) => n.netns), ...plan2.pods.map((p) => p.netns)];
  t.equal(new Set(all).size, all.length, 'namespace names are unique');
  t.ok(all.every((n) => n.startsWith('kllab-lab-')), 'every namespace carries the lab prefix');
});

t.test('servers: echo-a on node1, echo-b on node2, echo-b-host in echo-b\'s node network', async (t) => {
  t.same(plan2.servers.map((s) => [s.name, s.node, s.hostNetwork, s.pod ?? null, s.port]), [
    ['echo-a', 'node1', false, 'echo-a', 8080],
    ['echo-b', 'node2', false, 'echo-b', 8080],
    ['echo-b-host', 'node2', true, null, 41080],
  ]);
  const one = planLab({ name: 'x', nodes: 1, cgroup2: CG });
  t.same(one.servers.map((s) => s.node), ['node1', 'node1', 'node1'], 'one node: everything on it');
});

t.test('client pods: one per pod check, placed relative to its server', async (t) => {
  const clients = plan2.pods.filter((p) => p.role === 'client');
  t.same(clients.map((p) => p.check), SUITE.checks.filter((c) => c.client.kind === 'pod').map((c) => c.name));
  const at = Object.fromEntries(clients.map((p) => [p.name, p.node]));
  t.equal(at['pod-to-b-multi-node-clusterip'], 'node1', 'other-node: not echo-b\'s node2');
  t.equal(at['pod-to-b-intra-node-nodeport'], 'node2', 'same-node: echo-b\'s node');
  t.equal(at['pod-to-a'], 'node1');
  t.equal(clientNodeOf(plan2, checkByName(SUITE, 'host-to-b-multi-node-clusterip')), 'node1', 'host client on the other node');
  for (const p of clients) t.equal(p.labels['kinglet.io/check'], p.check, 'labelled for its NetworkPolicy');
  const one = planLab({ name: 'x', nodes: 1, cgroup2: CG });
  t.notOk(one.pods.some((p) => p.check?.includes('multi-node')), 'one node: no client for multi-node checks');
  t.equal(clientNodeOf(one, checkByName(SUITE, 'host-to-b-multi-node-clusterip')), undefined);
});

t.test('names and node counts are checked', async (t) => {
  for (const bad of ['', 'Lab', '1lab', 'a/b', 'lab-', 'a'.repeat(17), '../x']) t.ok(labNameProblem(bad), `${JSON.stringify(bad)} refused`);
  for (const good of ['lab', 'e2e-1a2b', 'a']) t.equal(labNameProblem(good), undefined, good);
  t.throws(() => planLab({ name: 'lab', nodes: 0, cgroup2: CG }), /between 1 and/);
  t.throws(() => planLab({ name: 'lab', nodes: MAX_NODES + 1, cgroup2: CG }), /between 1 and/);
  t.throws(() => planLab({ name: '../etc', nodes: 2, cgroup2: CG }), /--name/);
  t.equal(planLab({ name: 'lab', nodes: 2, cgroup2: CG, root: '/tmp/r' }).dir, '/tmp/r/lab');
});

t.test('objects: Nodes, Services with ClusterIPs, EndpointSlices, Pods, policies; valid for the dir source', async (t) => {
  const ips = Object.fromEntries(plan2.pods.map((p, i) => [p.name, `10.42.${p.node === 'node1' ? 1 : 2}.${i + 2}`]));
  const policies = await suitePolicies();
  t.same(policies.map((p) => (p as { metadata: { name: string } }).metadata.name), ['pod-to-a-denied-np', 'pod-to-a-allowed-np']);
  const objs = labObjects(plan2, ips, { policies });
  const yaml = objectsYaml(objs);
  const parsed = parseManifests(yaml, 'lab.yaml');
  if (!parsed.ok) throw new Error(parsed.error);
  t.same(parsed.skipped, [], 'every object is one the agent reads');
  const by = (kind: string) => parsed.objects.filter((o) => o.object.kind === kind).map((o) => o.object as Record<string, any>);
  t.same(by('Node').map((n) => [n.metadata.name, n.spec.podCIDR, n.status.addresses[0].address]), [['node1', '10.42.1.0/24', '10.99.0.11'], ['node2', '10.42.2.0/24', '10.99.0.12']]);
  const svc = Object.fromEntries(by('Service').map((s) => [s.metadata.name, s.spec]));
  t.same(Object.keys(svc).sort(), ['echo-a', 'echo-b', 'echo-b-headless', 'echo-b-host-headless']);
  t.equal(svc['echo-a'].clusterIP, '10.43.0.10');
  t.equal(svc['echo-b'].clusterIP, '10.43.0.11');
  t.equal(svc['echo-b'].type, 'NodePort');
  t.equal(svc['echo-b'].ports[0].nodePort, 31414);
  t.equal(svc['echo-b-headless'].clusterIP, 'None');
  t.same(plan2.serviceIPs, { 'echo-a': '10.43.0.10', 'echo-b': '10.43.0.11' });
  const slice = Object.fromEntries(by('EndpointSlice').map((s) => [s.metadata.labels['kubernetes.io/service-name'], s.endpoints.map((e: { addresses: string[] }) => e.addresses[0])]));
  t.same(slice['echo-a'], [ips['echo-a']]);
  t.same(slice['echo-b'], [ips['echo-b']]);
  t.same(slice['echo-b-headless'], [ips['echo-b']]);
  t.same(slice['echo-b-host-headless'], ['10.99.0.12'], 'the host-network server: its node\'s address');
  t.equal(by('Pod').length, plan2.pods.length);
  t.ok(by('NetworkPolicy').every((p) => p.metadata.namespace === 'kinglet-lab'));
  t.equal(parseAllDocuments(yaml).length, objs.length);

  const early = labObjects(plan2, {});
  t.equal(early.filter((o) => (o as { kind: string }).kind === 'Pod').length, 0, 'before the pods exist: no Pods');
  t.ok(early.filter((o) => (o as { kind: string }).kind === 'EndpointSlice').every((o) => {
    const s = o as { metadata: { name: string }; endpoints: unknown[] };
    return s.metadata.name.startsWith('echo-b-host') ? s.endpoints.length === 1 : s.endpoints.length === 0;
  }), 'and no pod endpoints');
});

t.test('advice names the lab only when it is not the default one', async (t) => {
  t.equal(`kinglet lab down${nameFlag('lab')}`, 'kinglet lab down');
  t.equal(`kinglet lab down${nameFlag('ci')}`, 'kinglet lab down --name ci');
});
