// manifests/connectivity-check*.yaml agree with the suite definition: a client
// Deployment per check whose probes perform that check from the right place,
// the servers and Services the checks name, a NetworkPolicy per policy check,
// and a single-node file that is the full one minus the multi-node checks.
import t from 'tap';
import { readFileSync } from 'node:fs';
import type { KubernetesObject } from '@kubernetes/client-node';
import { objectsFor, parseManifest, setImages } from '../../../agent/connectivity/cluster.ts';
import { selectChecks, SUITE } from '../../../agent/connectivity/suite.ts';

const read = (f: string) => readFileSync(new URL(`../../../manifests/${f}`, import.meta.url), 'utf8');
const full = parseManifest(read('connectivity-check.yaml'));
const single = parseManifest(read('connectivity-check-single-node.yaml'));

type Any = any; // manifest documents are checked field by field below
const find = (docs: KubernetesObject[], kind: string, name: string): Any => docs.find((d) => d.kind === kind && d.metadata?.name === name);
const podSpec = (d: Any) => d.spec.template.spec;
const probeText = (c: Any, which: 'readinessProbe' | 'livenessProbe'): string => (c[which]?.exec?.command ?? []).join(' ');

t.test('every object belongs to the suite and has no namespace of its own', async (t) => {
  for (const d of full) {
    t.equal(d.metadata?.labels?.['app.kubernetes.io/part-of'], SUITE.partOf, `${d.kind} ${d.metadata?.name}`);
    t.equal(d.metadata?.namespace, undefined);
    t.ok(['Deployment', 'Service', 'NetworkPolicy'].includes(d.kind!), String(d.kind));
  }
  const names = full.map((d) => `${d.kind}/${d.metadata?.name}`);
  t.equal(new Set(names).size, names.length, 'no duplicates');
});

t.test('servers and their Services', async (t) => {
  for (const s of SUITE.servers) {
    const d = find(full, 'Deployment', s.name);
    t.ok(d, s.name);
    t.equal(d.metadata.labels[SUITE.serverLabel], s.name);
    t.equal(d.spec.template.metadata.labels[SUITE.serverLabel], s.name);
    t.equal(d.spec.template.metadata.labels['app.kubernetes.io/part-of'], SUITE.partOf, 'pods are found by the part-of label');
    const spec = podSpec(d);
    t.equal(spec.hostNetwork === true, s.hostNetwork, `${s.name} hostNetwork`);
    const c = spec.containers[0];
    t.equal(c.name, 'echo');
    t.match(c.command.join(' '), new RegExp(`httpd -f -p ${s.port} `));
    t.same(c.ports, [{ name: 'http', containerPort: s.port, ...(s.hostPort ? { hostPort: s.hostPort } : {}) }]);
    t.equal(c.readinessProbe.httpGet.port, s.port);
    if (s.colocatedWith) {
      t.same(spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector.matchLabels, { [SUITE.serverLabel]: s.colocatedWith });
    }
    for (const svc of s.services) {
      const o = find(full, 'Service', svc.name);
      t.ok(o, svc.name);
      t.same(o.spec.selector, { [SUITE.serverLabel]: s.name });
      t.equal(o.spec.clusterIP, svc.type === 'headless' ? 'None' : undefined);
      if (svc.type !== 'headless') t.equal(o.spec.type, svc.type);
      t.match(o.spec.ports, [{ port: svc.port, targetPort: s.port, protocol: 'TCP', ...(svc.nodePort ? { nodePort: svc.nodePort } : {}) }]);
    }
  }
});

t.test('a client Deployment per check, its probes performing the check from the right place', async (t) => {
  for (const check of SUITE.checks) {
    const d = find(full, 'Deployment', check.name);
    t.ok(d, check.name);
    t.equal(d.metadata.labels[SUITE.checkLabel], check.name);
    t.equal(d.spec.template.metadata.labels[SUITE.checkLabel], check.name);
    const spec = podSpec(d);
    t.equal(spec.hostNetwork === true, check.client.kind === 'host', `${check.name}: host network iff a host client`);
    if (check.client.kind === 'host') t.equal(spec.dnsPolicy, 'ClusterFirstWithHostNet', 'host clients still resolve Service names');
    if (check.client.placement === 'any') t.equal(spec.affinity, undefined);
    else {
      const kind = check.client.placement === 'same-node' ? 'podAffinity' : 'podAntiAffinity';
      const term = spec.affinity?.[kind]?.requiredDuringSchedulingIgnoredDuringExecution?.[0];
      t.equal(term?.topologyKey, 'kubernetes.io/hostname', `${check.name}: ${kind}`);
      t.same(term?.labelSelector?.matchLabels, { [SUITE.serverLabel]: check.server });
    }
    const c = spec.containers[0];
    t.equal(c.name, 'client');
    const ready = probeText(c, 'readinessProbe');
    t.ok(ready.includes(`http://${check.target.host}:${check.target.port}/`), `${check.name}: probe targets ${check.target.host}:${check.target.port}`);
    t.equal(probeText(c, 'livenessProbe'), ready, 'liveness runs the same check');
    t.ok(c.readinessProbe.timeoutSeconds > 3, 'probe timeout longer than the wget timeout');
    if (check.expect === 'denied') t.match(ready, /&& \{ echo .*not denied"; exit 1; \}/, 'denied: an answer fails the probe');
    else t.notMatch(ready, /not denied/);
  }
});

t.test('NetworkPolicies of the policy checks', async (t) => {
  const policies = full.filter((d) => d.kind === 'NetworkPolicy');
  t.same(policies.map((p) => p.metadata?.name).sort(), SUITE.checks.filter((c) => c.policy).map((c) => c.policy).sort());
  for (const check of SUITE.checks.filter((c) => c.policy)) {
    const p = find(full, 'NetworkPolicy', check.policy!);
    t.same(p.spec.podSelector, { matchLabels: { [SUITE.checkLabel]: check.name } }, 'selects only its client');
    t.same(p.spec.policyTypes, ['Egress']);
    t.match(p.spec.egress[0], { to: [{ podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }], ports: [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }] }, 'DNS allowed');
    const toServer = p.spec.egress.some((r: Any) => r.to?.some((x: Any) => x.podSelector?.matchLabels?.[SUITE.serverLabel] === check.server));
    t.equal(toServer, check.expect === 'success', `${check.name}: ${check.server} allowed iff the check expects success`);
  }
});

t.test('the single-node file is the full one minus the multi-node checks', async (t) => {
  const multi = new Set(SUITE.checks.filter((c) => !c.singleNode).map((c) => c.name));
  const expected = full.filter((d) => !multi.has(d.metadata?.labels?.[SUITE.checkLabel] ?? ''));
  t.same(single, expected);
  t.ok(single.length < full.length);
});

t.test('objectsFor: servers always, checks when they run; policies first; namespace and images set', async (t) => {
  const plan = selectChecks(SUITE, { nodes: 2, capabilities: ['networkpolicy'] });
  const objs = objectsFor(SUITE, plan, full, 'conn', { echo: 'e:1', client: 'c:1' });
  const names = objs.map((o) => `${o.kind}/${o.metadata?.name}`);
  t.same(names.slice(0, 2), ['NetworkPolicy/pod-to-a-denied-np', 'NetworkPolicy/pod-to-a-allowed-np']);
  t.ok(names.includes('Deployment/echo-b-host') && names.includes('Service/echo-b-host-headless'));
  t.notOk(names.includes('Deployment/pod-to-b-intra-node-nodeport'));
  t.ok(names.includes('Deployment/pod-to-a-denied-np'));
  const kinds = objs.map((o) => o.kind);
  t.same(kinds, [...kinds].sort((a, b) => ['NetworkPolicy', 'Service', 'Deployment'].indexOf(a!) - ['NetworkPolicy', 'Service', 'Deployment'].indexOf(b!)));
  t.ok(objs.every((o) => o.metadata?.namespace === 'conn'));
  t.equal(podSpec(find(objs, 'Deployment', 'echo-a')).containers[0].image, 'e:1');
  t.equal(podSpec(find(objs, 'Deployment', 'pod-to-a')).containers[0].image, 'c:1');
  t.equal(podSpec(find(full, 'Deployment', 'pod-to-a')).containers[0].image, 'docker.io/library/busybox:1.36.1', 'the parsed manifest is not changed');
  const d: Any = { kind: 'Deployment', spec: { template: { spec: { containers: [{ name: 'other', image: 'x' }], initContainers: [{ name: 'client', image: 'y' }] } } } };
  setImages(d, { client: 'z' });
  t.same([d.spec.template.spec.containers[0].image, d.spec.template.spec.initContainers[0].image], ['x', 'z']);
});

t.test('parseManifest refuses broken YAML', async (t) => {
  t.throws(() => parseManifest('a: [\n'), /connectivity manifest/);
  t.throws(() => parseManifest('- 1\n'), /not an object/);
  t.same(parseManifest('# only a comment\n---\n'), []);
});
