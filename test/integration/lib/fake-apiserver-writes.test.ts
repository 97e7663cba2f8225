// The stand-in API server's writes (create / replace / delete), label
// selectors and namespace termination, exercised through @kubernetes/client-node
// as a runner uses them. Loopback only.
import t from 'tap';
import { AppsV1Api, CoreV1Api, KubeConfig, KubernetesObjectApi, Watch, type KubernetesObject, type V1Deployment, type V1Service } from '@kubernetes/client-node';
import { FakeApiServer, WORKLOAD_RESOURCES, parseLabelSelector } from '../../lib/fake-apiserver.ts';
import { waitFor } from '../../lib/wait.ts';

const deployment = (name: string, labels: Record<string, string> = {}): V1Deployment => ({
  apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, labels },
  spec: { selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } } },
});

/** The HTTP status and Status body of a rejected client-node call. */
async function failure(p: Promise<unknown>): Promise<{ code: number; body: any }> {
  try {
    await p;
  } catch (e) {
    const err = e as { code?: number; body?: unknown };
    return { code: err.code ?? 0, body: typeof err.body === 'string' ? JSON.parse(err.body) : err.body };
  }
  throw new Error('the call succeeded');
}

t.test('parseLabelSelector', async (t) => {
  const m = (sel: string, labels: Record<string, string>) => parseLabelSelector(sel)(labels);
  t.ok(m('a=b', { a: 'b' }));
  t.ok(m('a==b,c', { a: 'b', c: '' }));
  t.notOk(m('a!=b', { a: 'b' }));
  t.ok(m('a!=b', {}));
  t.ok(m('a in (x, y),!z', { a: 'y' }));
  t.notOk(m('a notin (x,y)', { a: 'x' }));
  t.ok(m('kinglet.io/check', { 'kinglet.io/check': 'pod-to-a' }));
  for (const bad of ['a in (b', '=b', 'a=b=c', 'a b']) t.throws(() => parseLabelSelector(bad), bad);
});

t.test('writes', async (t) => {
  const api = await FakeApiServer.create({ resources: WORKLOAD_RESOURCES, namespaceFinalizeMs: 1500 });
  t.teardown(() => api.close());
  const kc = new KubeConfig();
  kc.loadFromFile(await api.writeKubeconfig({ auth: 'token' }));
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const objs = KubernetesObjectApi.makeApiClient(kc);

  t.test('create: 201, then 409 AlreadyExists; 404 without the namespace', async (t) => {
    const missing = await failure(apps.createNamespacedDeployment({ namespace: 'w', body: deployment('d1') }));
    t.equal(missing.code, 404);
    t.match(missing.body, { kind: 'Status', reason: 'NotFound', message: 'namespaces "w" not found', details: { name: 'w', kind: 'namespaces' } });
    const ns = await core.createNamespace({ body: { metadata: { name: 'w' } } });
    t.equal(ns.status?.phase, 'Active');
    t.equal(ns.metadata?.labels?.['kubernetes.io/metadata.name'], 'w');
    const d = await apps.createNamespacedDeployment({ namespace: 'w', body: deployment('d1') });
    t.equal(d.metadata?.namespace, 'w');
    t.ok(d.metadata?.uid && d.metadata.resourceVersion);
    t.equal(api.requests.at(-1)?.status, 201);
    const again = await failure(apps.createNamespacedDeployment({ namespace: 'w', body: deployment('d1') }));
    t.equal(again.code, 409);
    t.match(again.body, { reason: 'AlreadyExists', message: 'deployments.apps "d1" already exists', details: { name: 'd1', group: 'apps', kind: 'deployments' } });
    const wrongNs = await failure(apps.createNamespacedDeployment({ namespace: 'w', body: { ...deployment('d3'), metadata: { name: 'd3', namespace: 'x' } } }));
    t.equal(wrongNs.code, 400, 'object namespace differs from the URL');
    const noName = await failure(apps.createNamespacedDeployment({ namespace: 'w', body: { ...deployment(''), metadata: {} } }));
    t.equal(noName.code, 422);
  });

  t.test('replace: resourceVersion conflicts, unconditional where allowed, service IPs kept', async (t) => {
    const cur = await apps.readNamespacedDeployment({ namespace: 'w', name: 'd1' });
    const stale = { ...deployment('d1', { v: '2' }), metadata: { name: 'd1', labels: { v: '2' }, resourceVersion: '1' } };
    const conflict = await failure(apps.replaceNamespacedDeployment({ namespace: 'w', name: 'd1', body: stale }));
    t.equal(conflict.code, 409);
    t.match(conflict.body, { reason: 'Conflict', message: /the object has been modified/ });
    const ok = await apps.replaceNamespacedDeployment({ namespace: 'w', name: 'd1', body: { ...stale, metadata: { ...stale.metadata, resourceVersion: cur.metadata!.resourceVersion! } } });
    t.equal(ok.metadata?.labels?.v, '2');
    t.equal(ok.metadata?.uid, cur.metadata?.uid, 'uid kept');
    const unconditional = await apps.replaceNamespacedDeployment({ namespace: 'w', name: 'd1', body: deployment('d1', { v: '3' }) });
    t.equal(unconditional.metadata?.labels?.v, '3', 'deployments allow an update without resourceVersion');
    const nameMismatch = await failure(apps.replaceNamespacedDeployment({ namespace: 'w', name: 'd1', body: deployment('zz') }));
    t.equal(nameMismatch.code, 400);
    const absent = await failure(apps.replaceNamespacedDeployment({ namespace: 'w', name: 'nope', body: deployment('nope') }));
    t.equal(absent.code, 404);

    const svc: V1Service = { metadata: { name: 's' }, spec: { type: 'NodePort', selector: { app: 'x' }, ports: [{ port: 80, protocol: 'TCP' }] } };
    const created = await core.createNamespacedService({ namespace: 'w', body: svc });
    t.match(created.spec?.clusterIP, /^10\.43\.\d+\.\d+$/);
    const np = created.spec?.ports?.[0]?.nodePort;
    t.ok(np && np >= 30000 && np <= 32767, 'nodePort allocated');
    const noRv = await failure(core.replaceNamespacedService({ namespace: 'w', name: 's', body: svc }));
    t.equal(noRv.code, 422, 'services refuse an update without resourceVersion');
    const replaced = await core.replaceNamespacedService({ namespace: 'w', name: 's', body: { ...svc, metadata: { name: 's', resourceVersion: created.metadata!.resourceVersion! } } });
    t.equal(replaced.spec?.clusterIP, created.spec?.clusterIP, 'clusterIP kept');
    t.equal(replaced.spec?.ports?.[0]?.nodePort, np, 'nodePort kept');
    const taken = await failure(core.createNamespacedService({ namespace: 'w', body: { metadata: { name: 's2' }, spec: { type: 'NodePort', ports: [{ port: 1, nodePort: np! }] } } }));
    t.equal(taken.code, 422);
    t.match(taken.body.message, /already allocated/);
  });

  t.test('label selectors on list and watch (objects enter and leave the selection)', async (t) => {
    await apps.createNamespacedDeployment({ namespace: 'w', body: deployment('sel-a', { role: 'x' }) });
    await apps.createNamespacedDeployment({ namespace: 'w', body: deployment('sel-b', { role: 'y' }) });
    const list = await apps.listNamespacedDeployment({ namespace: 'w', labelSelector: 'role=x' });
    t.same(list.items.map((d) => d.metadata?.name), ['sel-a']);
    const bad = await failure(apps.listNamespacedDeployment({ namespace: 'w', labelSelector: 'role in (x' }));
    t.equal(bad.code, 400);
    const rv = list.metadata!.resourceVersion!;
    const b = api.get('deployments', 'w', 'sel-b')!;
    api.update({ ...b, metadata: { ...(b.metadata as object), labels: { role: 'x' } } });
    api.update({ ...b, metadata: { ...(b.metadata as object), labels: { role: 'z' } } });
    const events: string[] = [];
    const req = await new Watch(kc).watch('/apis/apps/v1/namespaces/w/deployments', { resourceVersion: rv, labelSelector: 'role=x' },
      (type: string, obj: KubernetesObject) => events.push(`${type} ${obj.metadata?.name}`), () => {});
    await waitFor(() => events.length >= 2, 'two watch events', 3000);
    req.abort();
    t.same(events, ['ADDED sel-b', 'DELETED sel-b']);
  });

  t.test('delete: Status for most kinds; a namespace terminates, refuses new content, then goes with its content', async (t) => {
    const st = await apps.deleteNamespacedDeployment({ namespace: 'w', name: 'sel-a' });
    t.match(st, { status: 'Success', details: { name: 'sel-a', kind: 'deployments' } });
    t.equal((await failure(apps.deleteNamespacedDeployment({ namespace: 'w', name: 'sel-a' }))).code, 404);
    await core.deleteNamespace({ name: 'w' });
    const ns = await core.readNamespace({ name: 'w' });
    t.equal(ns.status?.phase, 'Terminating');
    t.ok(ns.metadata?.deletionTimestamp);
    const refused = await failure(apps.createNamespacedDeployment({ namespace: 'w', body: deployment('late') }));
    t.equal(refused.code, 403);
    t.match(refused.body, { reason: 'Forbidden', message: /because it is being terminated/, details: { causes: [{ reason: 'NamespaceTerminating' }] } });
    t.equal((await failure(core.deleteNamespace({ name: 'w' }))).code, 409, 'deleting a terminating namespace is a conflict');
    await waitFor(() => api.get('namespaces', '', 'w') === undefined, 'namespace finalized', 10_000);
    t.equal(api.list('deployments').length, 0, 'content removed with the namespace');
    t.equal(api.list('services').length, 0);
    t.equal((await failure(core.readNamespace({ name: 'w' }))).code, 404);
  });

  t.test('unimplemented methods are 405, not silently accepted', async (t) => {
    const r = await failure(objs.patch({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'x' } }));
    t.equal(r.code, 405);
  });
});
