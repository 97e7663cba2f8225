import t from 'tap';
import { readdir, readFile } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { trimObject } from '../../../../agent/source/trim.ts';
import { parseManifests, toSnapshot } from '../../../../agent/source/manifests.ts';
import { LbModel, buildLbState } from '../../../../agent/model/services.ts';
import type { KubeObject, Snapshot } from '../../../../agent/source/types.ts';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'fixtures', 'k8s');

/** What the API server adds to every object, none of which the agent reads. */
function withServerNoise(o: KubeObject): KubeObject {
  const md = o.metadata ?? {};
  return {
    ...o,
    metadata: {
      ...md,
      creationTimestamp: '2026-01-01T00:00:00Z',
      managedFields: [{ manager: 'kubectl', operation: 'Apply', fieldsV1: { 'f:spec': { 'f:ports': {} } } }],
      ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: md.name, uid: 'u' }],
      annotations: { ...(md.annotations as object | undefined), 'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify(o) },
    },
  };
}

async function fixtureSnapshot(noise: boolean, trim: boolean): Promise<Snapshot> {
  const all = [];
  for (const name of (await readdir(fixtures)).filter((n) => /\.(ya?ml|json)$/.test(n)).sort()) {
    const r = parseManifests(await readFile(join(fixtures, name), 'utf8'), name);
    if (!r.ok) throw new Error(r.error);
    for (const c of r.objects) {
      let o = noise ? withServerNoise(c.object) : c.object;
      if (trim) o = trimObject(o.kind ?? '', o);
      all.push({ ...c, object: o });
    }
  }
  return toSnapshot(all).snapshot;
}

t.test('consumers see the same thing: the model and the node view are unchanged by trimming', async (t) => {
  const full = await fixtureSnapshot(true, false);
  const trimmed = await fixtureSnapshot(true, true);
  t.ok(full.services.length >= 5 && full.endpointSlices.length >= 4 && full.nodes.length === 2, 'the fixtures are all there');
  const a = buildLbState(full);
  const b = buildLbState(trimmed);
  t.ok(a.state.frontends.length > 0, 'there is something to compare');
  t.same(b, a, 'same frontends, backends and warnings');
  // The agent's node view: name, podCIDR(s), addresses.
  const view = (s: Snapshot) => s.nodes.map((n) => {
    const spec = n.spec as Record<string, unknown>;
    return [n.metadata?.name, spec.podCIDR, spec.podCIDRs, (n.status as { addresses: unknown }).addresses];
  });
  t.same(view(trimmed), view(full));
  const size = (s: Snapshot) => JSON.stringify(s).length;
  t.ok(size(trimmed) < size(full) / 2, `the noise is gone (${size(full)} -> ${size(trimmed)} bytes as JSON)`);
});

t.test('irrelevant fields are dropped, relevant ones kept exactly, the input untouched', async (t) => {
  const slice: KubeObject = withServerNoise({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { name: 's', namespace: 'n', labels: { 'kubernetes.io/service-name': 'svc' }, resourceVersion: '7', uid: 'u1', generateName: 'svc-' },
    addressType: 'IPv4', ports: [{ name: 'http', port: 8080, protocol: 'TCP', appProtocol: 'http' }],
    endpoints: [
      { addresses: ['10.42.0.5'], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'edge-1', zone: 'z1', hostname: 'h', targetRef: { kind: 'Pod', name: 'p', namespace: 'n', uid: 'pu' } },
      { addresses: ['10.42.0.6'], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'edge-1', deprecatedTopology: { a: 'b' } },
    ],
  });
  const before = JSON.stringify(slice);
  const out = trimObject('EndpointSlice', slice) as Record<string, any>;
  t.equal(JSON.stringify(slice), before, 'the input is not changed');
  t.same(out, {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { name: 's', namespace: 'n', uid: 'u1', resourceVersion: '7', labels: { 'kubernetes.io/service-name': 'svc' } },
    addressType: 'IPv4', ports: [{ name: 'http', port: 8080, protocol: 'TCP', appProtocol: 'http' }],
    endpoints: [
      { addresses: ['10.42.0.5'], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'edge-1', zone: 'z1' },
      { addresses: ['10.42.0.6'], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'edge-1' },
    ],
  });
  t.equal(out.endpoints[0].conditions, out.endpoints[1].conditions, 'equal plain conditions are one shared object');
  t.ok(Object.isFrozen(out.endpoints[0].conditions), 'frozen: a consumer writing to it fails loudly');
  t.equal(out.metadata.labels, (slice as Record<string, any>).metadata.labels, 'kept values are the same objects, not copies');

  const svc = trimObject('Service', withServerNoise({
    apiVersion: 'v1', kind: 'Service', metadata: { name: 'a', namespace: 'n', annotations: { 'example.com/keep': 'yes' } },
    spec: { type: 'NodePort', clusterIP: '10.43.0.10', clusterIPs: ['10.43.0.10'], selector: { app: 'a' }, ipFamilyPolicy: 'SingleStack',
      ports: [{ name: 'http', port: 80, targetPort: 'http', nodePort: 30080 }], sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } },
      externalTrafficPolicy: 'Local', internalTrafficPolicy: 'Cluster' },
    status: { loadBalancer: {}, conditions: [] },
  })) as Record<string, any>;
  t.same(svc.metadata.annotations, { 'example.com/keep': 'yes' }, "other annotations stay, kubectl's copy of the object goes");
  t.notOk('managedFields' in svc.metadata || 'creationTimestamp' in svc.metadata || 'ownerReferences' in svc.metadata);
  t.same(Object.keys(svc.spec).sort(), ['clusterIP', 'clusterIPs', 'externalTrafficPolicy', 'internalTrafficPolicy', 'ports', 'sessionAffinity', 'sessionAffinityConfig', 'type']);
  t.same(svc.status, { loadBalancer: {} });

  const pod = trimObject('Pod', {
    apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'n', labels: { app: 'a' } },
    spec: { nodeName: 'edge-1', hostNetwork: false, volumes: [{ name: 'v' }], containers: [{ name: 'c', image: 'i', env: [{ name: 'X', value: 'y' }], ports: [{ name: 'http', containerPort: 8080 }] }] },
    status: { phase: 'Running', podIP: '10.42.0.5', podIPs: [{ ip: '10.42.0.5' }], containerStatuses: [{ name: 'c' }] },
  }) as Record<string, any>;
  t.same(pod.spec, { nodeName: 'edge-1', hostNetwork: false, containers: [{ name: 'c', ports: [{ name: 'http', containerPort: 8080 }] }] }, 'named ports kept for policy');
  t.same(pod.status, { phase: 'Running', podIP: '10.42.0.5', podIPs: [{ ip: '10.42.0.5' }] });

  const node = trimObject('Node', {
    apiVersion: 'v1', kind: 'Node', metadata: { name: 'edge-1' }, spec: { podCIDR: '10.42.0.0/24', podCIDRs: ['10.42.0.0/24'] },
    status: { addresses: [{ type: 'InternalIP', address: '192.0.2.1' }], images: [{ names: ['x'], sizeBytes: 1 }], nodeInfo: { kernelVersion: '6.1' }, capacity: { cpu: '2' } },
  }) as Record<string, any>;
  t.same(node.status, { addresses: [{ type: 'InternalIP', address: '192.0.2.1' }] }, "a node's image list is dropped");
  const np = { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'p', namespace: 'n' }, spec: { podSelector: {}, ingress: [] } };
  t.equal((trimObject('NetworkPolicy', np) as Record<string, any>).spec, np.spec, 'a policy spec is kept whole');
  const other = { kind: 'ConfigMap', data: { a: 'b' } };
  t.equal(trimObject('ConfigMap', other), other, 'kinds the agent does not watch are returned as they are');
});

t.test('odd values are kept as they are, so the model still reports them', async (t) => {
  const slice = (conditions: unknown, endpoints?: unknown): KubeObject => ({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 's', namespace: 'n', labels: { 'kubernetes.io/service-name': 'a' } },
    addressType: 'IPv4', ports: [{ port: 80, protocol: 'TCP' }],
    endpoints: endpoints ?? [{ addresses: ['10.42.0.5'], conditions }],
  });
  const svc: KubeObject = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'a', namespace: 'n' }, spec: { clusterIP: '10.43.0.1', ports: [{ port: 80 }] } };
  for (const [what, s] of [
    ['a condition that is not a boolean', slice({ ready: 'yes' })],
    ['conditions with an extra key', slice({ ready: true, other: 1 })],
    ['conditions that are a list', slice([true])],
    ['an endpoint that is not an object', slice(undefined, ['10.42.0.5'])],
    ['endpoints that are not a list', slice(undefined, 'none')],
  ] as const) {
    const trimmed = trimObject('EndpointSlice', s);
    t.same(buildLbState({ services: [svc], endpointSlices: [trimmed] }), buildLbState({ services: [svc], endpointSlices: [s] }), what);
  }
  const extra = trimObject('EndpointSlice', slice({ ready: true, other: 1 })) as Record<string, any>;
  t.same(extra.endpoints[0].conditions, { ready: true, other: 1 }, 'not a plain shape: not shared, not changed');
  const spec = trimObject('Service', { kind: 'Service', metadata: { name: 'a' }, spec: 'oops' }) as Record<string, any>;
  t.equal(spec.spec, 'oops', 'a spec that is not an object stays for the model to report');
});

t.test('endpoints of the plain shape are packed, and read back as trimming gives them', async (t) => {
  const eps = (n: number, extra: (i: number) => Record<string, unknown> = () => ({})) => Array.from({ length: n }, (_, i) => ({
    addresses: [`10.42.0.${i + 1}`], conditions: { ready: i !== 1, serving: true, terminating: i === 1 }, nodeName: `edge-${i % 2}`, targetRef: { kind: 'Pod', name: `p${i}` }, ...extra(i),
  }));
  const slice = (endpoints: unknown): KubeObject => ({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 's', namespace: 'n', labels: { 'kubernetes.io/service-name': 'svc' } },
    addressType: 'IPv4', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }], endpoints,
  });
  const expected = (list: Record<string, unknown>[]) => list.map(({ targetRef: _, ...e }) => e);

  const input = eps(4, (i) => (i === 3 ? { zone: 'z1' } : {}));
  const out = trimObject('EndpointSlice', slice(input)) as Record<string, any>;
  t.same(out.endpoints, expected(input), 'the same endpoints, fields and values');
  t.same(Object.keys(out), ['apiVersion', 'kind', 'metadata', 'addressType', 'ports', 'endpoints'], 'the same keys, in order (no packed form among them)');
  t.same(JSON.parse(JSON.stringify(out)).endpoints, expected(input), 'JSON has them');
  t.same({ ...out }.endpoints, expected(input), 'a spread copy has them');
  t.not(out.endpoints, out.endpoints, 'built at each read (not kept)');
  t.equal(out.endpoints[0].conditions, out.endpoints[2].conditions, 'conditions still shared');
  t.ok(Object.isFrozen(out.endpoints[0].conditions));

  const other = trimObject('EndpointSlice', slice(eps(2, () => ({ nodeName: ['edge', '1'].join('-') })))) as Record<string, any>;
  t.equal(other.endpoints[0].nodeName, 'edge-1');
  t.equal(other.ports, out.ports, 'equal ports lists are one shared list');
  t.ok(Object.isFrozen(out.ports) && Object.isFrozen(out.ports[0]), 'frozen: a consumer writing to it fails loudly');
  const odd = [{ name: 'http', port: 8080, protocol: 'TCP', extra: { x: 1 } }];
  t.equal((trimObject('EndpointSlice', { ...slice([]), ports: odd }) as Record<string, any>).ports, odd, 'an unusual ports list is kept as it came');

  out.endpoints = [{ addresses: ['10.42.9.9'] }];
  t.same(out.endpoints, [{ addresses: ['10.42.9.9'] }], 'writing endpoints replaces them, as on a plain object');
  t.same(Object.keys(out), ['apiVersion', 'kind', 'metadata', 'addressType', 'ports', 'endpoints']);

  // Not the plain shape: kept as trimming keeps it (one copy, the same values), for the model to read or report.
  for (const [what, list] of [
    ['two addresses', eps(2, (i) => (i === 1 ? { addresses: ['10.42.0.2', '10.42.0.3'] } : {}))],
    ['hints', eps(2, () => ({ hints: { forZones: [{ name: 'z1' }] } }))],
    ['a non-boolean condition', eps(2, (i) => (i === 0 ? { conditions: { ready: 'yes' } } : {}))],
    ['a number for nodeName', eps(2, (i) => (i === 0 ? { nodeName: 7 } : {}))],
    ['a non-object endpoint', [...eps(1), 'x']],
  ] as const) {
    const o = trimObject('EndpointSlice', slice(list)) as Record<string, any>;
    t.same(o.endpoints, (list as unknown[]).map((e) => (typeof e === 'object' && e !== null ? expected([e as Record<string, unknown>])[0] : e)), `${what}: kept`);
    t.equal(o.endpoints, o.endpoints, `${what}: a plain property`);
  }
});

t.test('packed slices give the model the same state and warnings', async (t) => {
  const mk = (name: string, endpoints: unknown[]): KubeObject => ({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name, namespace: 'n', labels: { 'kubernetes.io/service-name': 'svc' } },
    addressType: 'IPv4', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }], endpoints,
  });
  const slices = [
    mk('a', [{ addresses: ['10.42.0.2'], conditions: { ready: true }, nodeName: 'n1' }, { addresses: ['10.42.0.1'], conditions: { ready: false, serving: true, terminating: true } }]),
    mk('b', [{ addresses: ['fd00::1'], conditions: {} }, { addresses: ['10.42.0.3'], conditions: { ready: false } }, { addresses: ['10.42.0.1'], nodeName: 'n0', zone: 'z' }]),
  ];
  const v6 = (name: string, svc: string, endpoints: unknown[]): KubeObject => ({ ...mk(name, endpoints), metadata: { name, namespace: 'n', labels: { 'kubernetes.io/service-name': svc } }, addressType: 'IPv6' });
  // All ready, canonical addresses: the model shares the packed arrays.
  slices.push(mk('c', [{ addresses: ['10.42.0.9'], conditions: { ready: true }, nodeName: 'n1' }, { addresses: ['10.42.0.8'], conditions: { ready: true }, nodeName: 'n2' }]));
  slices.push(v6('d', 'svc6', [{ addresses: ['fd00::2'], nodeName: 'n1' }, { addresses: ['fd00::1'], nodeName: 'n1' }]));
  slices.push(v6('e', 'svc6', [{ addresses: ['FD00:0::3'], nodeName: '' }, { addresses: ['10.42.0.7'] }]));
  const service = (name: string, ip: string): KubeObject => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'n' }, spec: { clusterIP: ip, ports: [{ name: 'http', port: 80, targetPort: 8080 }] } });
  const services = [service('svc', '10.43.0.1'), service('svc6', 'fd43::1')];
  const plain = { services, endpointSlices: slices };
  const trimmed = { services, endpointSlices: slices.map((s) => trimObject('EndpointSlice', s)) };
  const a = buildLbState(plain), b = buildLbState(trimmed);
  t.same(a.state.frontends.map((f) => f.backends.length), [4, 3], 'backends to compare');
  t.same(a.warnings.map((w) => w.object), ['EndpointSlice n/b', 'EndpointSlice n/e'], 'warnings to compare');
  t.same(b, a);
  const model = new LbModel();
  model.update({ services, endpointSlices: trimmed.endpointSlices.slice(0, 3) });
  const u = model.update(trimmed);
  t.same({ state: u.state, warnings: u.warnings }, a, 'the incremental model too');
});

t.test('equal Service ports lists are shared, frozen; unusual ones kept as they came', async (t) => {
  const svc = (ports: unknown): Record<string, any> => trimObject('Service', {
    apiVersion: 'v1', kind: 'Service', metadata: { name: 'a', namespace: 'n' }, spec: { clusterIP: '10.43.0.10', ports },
  }) as Record<string, any>;
  const ports = () => [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 'http' }, { name: 'm', port: 9090, targetPort: 9090 }];
  const a = svc(ports()), b = svc(ports());
  t.same(a.spec.ports, ports(), 'the same values');
  t.equal(a.spec.ports, b.spec.ports, 'one shared list');
  t.ok(Object.isFrozen(a.spec.ports) && Object.isFrozen(a.spec.ports[1]));
  t.not(svc([{ port: 80, targetPort: 8080 }]).spec.ports, a.spec.ports, 'a different list is not shared');
  const odd = [{ port: 80, targetPort: { x: 1 } }];
  t.equal(svc(odd).spec.ports, odd, 'a nested value: kept as it came (the model reports it)');
  t.equal(svc('80').spec.ports, '80', 'not a list: kept as it came');
});
