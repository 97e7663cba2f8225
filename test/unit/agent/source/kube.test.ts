// KubeSource pieces that need no server: endpoint choice (k3s -> 127.0.0.1:6444,
// never the kubernetes ClusterIP), validation of objects, error descriptions.
import t from 'tap';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import {
  K3S_LOCAL_APISERVER, KubeSource, WATCHED_RESOURCES, describeError, isClusterIpServer, isK3sKubeconfig, malformedReason, resolveEndpoint,
} from '../../../../agent/source/kube.ts';

function kubeconfig(server: string, cluster = 'default', user = 'default'): string {
  return stringify({
    apiVersion: 'v1', kind: 'Config',
    clusters: [{ name: cluster, cluster: { server, 'certificate-authority-data': Buffer.from('x').toString('base64') } }],
    users: [{ name: user, user: { token: 'abc' } }],
    contexts: [{ name: 'default', context: { cluster, user } }],
    'current-context': 'default',
  });
}

t.test('endpoint resolution', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kinglet-kube-unit-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const write = async (name: string, text: string): Promise<string> => {
    const p = join(dir, name);
    await mkdir(join(p, '..'), { recursive: true });
    await writeFile(p, text);
    return p;
  };
  const noK3s = join(dir, 'absent', 'k3s.yaml');

  t.test('k3s.yaml (127.0.0.1:6443, default names) via --kubeconfig -> 6444', async (t) => {
    const p = await write('copy-of-k3s.yaml', kubeconfig('https://127.0.0.1:6443'));
    const r = resolveEndpoint({ kubeconfig: p, env: {}, k3sKubeconfig: noK3s });
    t.equal(r.endpoint, K3S_LOCAL_APISERVER);
    t.equal(r.configured, 'https://127.0.0.1:6443');
    t.equal(r.kc.getCurrentCluster()?.server, K3S_LOCAL_APISERVER, 'the client config itself is rewritten');
    t.equal(r.kc.getCurrentUser()?.token, 'abc', 'credentials kept');
    t.match(r.reason, /k3s kubeconfig.*6444/);
  });

  t.test('the k3s default path, found when nothing else is given', async (t) => {
    const k3s = await write('etc/rancher/k3s/k3s.yaml', kubeconfig('https://127.0.0.1:6443', 'mycluster', 'me'));
    const r = resolveEndpoint({ env: {}, k3sKubeconfig: k3s });
    t.equal(r.source, k3s);
    t.equal(r.endpoint, K3S_LOCAL_APISERVER, 'any kubeconfig in the k3s directory counts as k3s');
    t.match(r.reason, /k3s default/);
  });

  t.test('KUBECONFIG beats the k3s path; a remote server is kept', async (t) => {
    const k3s = await write('etc2/rancher/k3s/k3s.yaml', kubeconfig('https://127.0.0.1:6443'));
    const p = await write('remote.yaml', kubeconfig('https://10.0.0.5:6443', 'prod', 'admin'));
    const r = resolveEndpoint({ env: { KUBECONFIG: `${join(dir, 'nope.yaml')}:${p}` }, k3sKubeconfig: k3s });
    t.equal(r.source, p);
    t.equal(r.endpoint, 'https://10.0.0.5:6443');
    t.match(r.reason, /KUBECONFIG/);
  });

  t.test('--api-server overrides everything', async (t) => {
    const p = await write('k3s-2.yaml', kubeconfig('https://127.0.0.1:6443'));
    const r = resolveEndpoint({ kubeconfig: p, apiServer: 'https://192.0.2.10:6443/', env: {}, k3sKubeconfig: noK3s });
    t.equal(r.endpoint, 'https://192.0.2.10:6443');
    t.equal(r.kc.getCurrentCluster()?.server, 'https://192.0.2.10:6443');
    t.match(r.reason, /--api-server/);
  });

  t.test('a kubeconfig naming the kubernetes ClusterIP is redirected', async (t) => {
    const p = await write('svc.yaml', kubeconfig('https://kubernetes.default.svc:443', 'c', 'u'));
    const r = resolveEndpoint({ kubeconfig: p, env: {}, k3sKubeconfig: noK3s });
    t.equal(r.endpoint, K3S_LOCAL_APISERVER);
    t.match(r.reason, /ClusterIP/);
  });

  t.test('errors', async (t) => {
    t.throws(() => resolveEndpoint({ kubeconfig: join(dir, 'missing.yaml'), env: {} }), /does not exist/);
    t.throws(() => resolveEndpoint({ env: {}, k3sKubeconfig: noK3s, exists: () => false }), /no kubeconfig/);
    t.throws(() => new KubeSource({ env: {}, k3sKubeconfig: noK3s, exists: () => false }), /no kubeconfig/);
  });

  t.test('KubeSource status before start names the endpoint and node', async (t) => {
    const p = await write('k3s-3.yaml', kubeconfig('https://127.0.0.1:6443'));
    const s = new KubeSource({ kubeconfig: p, env: {}, k3sKubeconfig: noK3s, nodeName: 'edge-1' });
    const st = s.status();
    t.match(st, { kind: 'kube', endpoint: K3S_LOCAL_APISERVER, nodeName: 'edge-1', synced: false, malformed: 0 });
    t.same(s.snapshot(), { services: [], endpointSlices: [], nodes: [], pods: [], namespaces: [], networkPolicies: [] });
    await s.stop();
  });
});

t.test('k3s and ClusterIP detection', async (t) => {
  t.ok(isK3sKubeconfig('/etc/rancher/k3s/k3s.yaml', 'https://10.1.1.1:6443', 'x', 'y'));
  t.ok(isK3sKubeconfig('/root/k.yaml', 'https://127.0.0.1:6443', 'default', 'default'));
  t.ok(isK3sKubeconfig(undefined, 'https://localhost:6443', 'k3s-lab', 'admin'));
  t.ok(isK3sKubeconfig(undefined, 'https://[::1]:6443', 'default', 'x'));
  t.notOk(isK3sKubeconfig('/root/k.yaml', 'https://127.0.0.1:6443', 'kind-kind', 'kind-kind'), 'other local clusters keep their server');
  t.notOk(isK3sKubeconfig('/root/k.yaml', 'https://127.0.0.1:6444', 'default', 'default'), 'already 6444');
  t.notOk(isK3sKubeconfig('/root/k.yaml', 'https://10.0.0.1:6443', 'default', 'default'));
  t.ok(isClusterIpServer('https://10.43.0.1:443', {}));
  t.ok(isClusterIpServer('https://10.96.0.1:443', { KUBERNETES_SERVICE_HOST: '10.96.0.1' }));
  t.ok(isClusterIpServer('https://kubernetes:443', {}));
  t.notOk(isClusterIpServer('https://10.0.0.5:6443', {}));
});

t.test('malformed objects', async (t) => {
  const svc = WATCHED_RESOURCES.find((r) => r.kind === 'Service')!;
  const node = WATCHED_RESOURCES.find((r) => r.kind === 'Node')!;
  const eps = WATCHED_RESOURCES.find((r) => r.kind === 'EndpointSlice')!;
  const ok = { metadata: { name: 'a', namespace: 'default' }, spec: { ports: [] } };
  t.equal(malformedReason(svc, ok), undefined);
  t.equal(malformedReason(svc, { ...ok, kind: 'Service', apiVersion: 'v1' }), undefined);
  t.equal(malformedReason(node, { metadata: { name: 'n1' } }), undefined);
  t.match(malformedReason(svc, null), /not an object/);
  t.match(malformedReason(svc, [1]), /not an object/);
  t.match(malformedReason(svc, { spec: {} }), /metadata missing/);
  t.match(malformedReason(svc, { metadata: { namespace: 'x' } }), /metadata.name/);
  t.match(malformedReason(svc, { metadata: { name: 42, namespace: 'x' } }), /metadata.name/);
  t.match(malformedReason(svc, { metadata: { name: 'a' } }), /namespace/);
  t.match(malformedReason(svc, { ...ok, kind: 'Pod' }), /kind "Pod"/);
  t.match(malformedReason(svc, { ...ok, apiVersion: 'v2' }), /apiVersion/);
  t.match(malformedReason(svc, { ...ok, spec: 'oops' }), /spec is not an object/);
  t.match(malformedReason(svc, { ...ok, spec: { ports: 'x' } }), /spec.ports is not a list/);
  t.match(malformedReason(svc, { metadata: { ...ok.metadata, labels: { a: 1 } } }), /labels/);
  t.match(malformedReason(eps, { metadata: ok.metadata, endpoints: [] }), /addressType/);
  t.equal(malformedReason(eps, { metadata: ok.metadata, addressType: 'IPv4', endpoints: [] }), undefined);
  t.match(malformedReason(eps, { metadata: ok.metadata, addressType: 'IPv4', endpoints: {} }), /endpoints is not a list/);
});

t.test('error descriptions', async (t) => {
  const tls = Object.assign(new Error('self-signed certificate in certificate chain'), { code: 'SELF_SIGNED_CERT_IN_CHAIN' });
  t.match(describeError(tls), /^TLS: cannot verify.*certificate-authority/);
  t.match(describeError(new TypeError('fetch failed', { cause: tls })), /^TLS:/, 'undici cause unwrapped');
  t.match(describeError(Object.assign(new Error('Forbidden'), { statusCode: 403 })), /forbidden \(403\).*RBAC/);
  t.match(describeError(Object.assign(new Error('nope'), { statusCode: 401 })), /unauthorized \(401\)/);
  t.match(describeError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6444'), { code: 'ECONNREFUSED' })), /ECONNREFUSED/);
});
