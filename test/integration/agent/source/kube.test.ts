// KubeSource against the stand-in API server: real @kubernetes/client-node
// informers over HTTPS on 127.0.0.1. No root needed.
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { parseAllDocuments } from 'yaml';
import { KubeSource, type KubeSourceOptions } from '../../../../agent/source/kube.ts';
import type { Snapshot } from '../../../../agent/source/types.ts';
import { FakeApiServer, type FakeApiServerOptions, type Obj, type PolicyRule } from '../../../lib/fake-apiserver.ts';
import { sleep, waitFor } from '../../../lib/wait.ts';

type Bucket = keyof Snapshot;
type Teardown = { teardown(fn: () => unknown): void };

const svc = (ns: string, name: string, ip: string): Obj => ({
  apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns },
  spec: { clusterIP: ip, clusterIPs: [ip], ports: [{ port: 80, protocol: 'TCP', targetPort: 8080 }] },
});
const slice = (ns: string, name: string, service: string, ips: string[]): Obj => ({
  apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
  metadata: { name, namespace: ns, labels: { 'kubernetes.io/service-name': service } },
  addressType: 'IPv4', endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true } })), ports: [{ port: 8080, protocol: 'TCP' }],
});
const node = (name: string, cidr: string): Obj => ({
  apiVersion: 'v1', kind: 'Node', metadata: { name }, spec: { podCIDR: cidr, podCIDRs: [cidr] },
  status: { addresses: [{ type: 'InternalIP', address: '192.0.2.1' }] },
});
const pod = (ns: string, name: string, ip: string): Obj => ({
  apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns, labels: { app: name } }, spec: { nodeName: 'n1', containers: [] },
  status: { podIP: ip, podIPs: [{ ip }] },
});
const namespace = (name: string): Obj => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
const netpol = (ns: string, name: string): Obj => ({
  apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace: ns },
  spec: { podSelector: {}, policyTypes: ['Ingress'], ingress: [] },
});

function seed(api: FakeApiServer): void {
  api.add(namespace('default'));
  api.add(namespace('web'));
  api.add(node('n1', '10.42.0.0/24'));
  api.add(svc('web', 'front', '10.43.0.10'));
  api.add(svc('web', 'back', '10.43.0.11'));
  api.add(slice('web', 'front-abc', 'front', ['10.42.0.5']));
  api.add(pod('web', 'front-1', '10.42.0.5'));
  api.add(netpol('web', 'deny-all'));
}

const names = (s: Snapshot, b: Bucket): string[] =>
  s[b].map((o) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`);

interface Harness {
  api: FakeApiServer;
  src: KubeSource;
  /** Every snapshot the consumer saw, with synced at that moment. */
  seen: Array<{ synced: boolean; snap: Snapshot }>;
  logs: Array<{ level: string; msg: string; fields?: Record<string, unknown> }>;
  start(): Promise<void>;
}

async function server(t: Teardown, opts: FakeApiServerOptions = {}): Promise<FakeApiServer> {
  const api = await FakeApiServer.create(opts);
  t.teardown(() => api.close());
  return api;
}

async function harness(t: Teardown, api: FakeApiServer, kc: { auth: 'cert' | 'token'; ca?: 'right' | 'wrong'; token?: string } = { auth: 'cert' }, opts: KubeSourceOptions = {}): Promise<Harness> {
  const kubeconfig = await api.writeKubeconfig(kc);
  const logs: Harness['logs'] = [];
  const src = new KubeSource({
    kubeconfig, env: {}, nodeName: 'n1', backoffBaseMs: 20, backoffMaxMs: 200,
    logger: (level, msg, fields) => logs.push({ level, msg, ...(fields ? { fields } : {}) }),
    ...opts,
  });
  t.teardown(() => src.stop());
  const seen: Harness['seen'] = [];
  return {
    api, src, seen, logs,
    start: () => src.start(() => seen.push({ synced: src.status().synced, snap: src.snapshot() })),
  };
}

const synced = (h: Harness): Promise<void> => waitFor(() => h.src.status().synced, 'synced', 10_000);

t.test('initial sync over client-cert TLS', async (t) => {
  const api = await server(t);
  seed(api);
  const h = await harness(t, api);
  api.clearRequests();
  await h.start();
  await synced(h);
  const snap = h.src.snapshot();
  t.same(names(snap, 'services'), ['web/back', 'web/front']);
  t.same(names(snap, 'endpointSlices'), ['web/front-abc']);
  t.same(names(snap, 'nodes'), ['/n1']);
  t.same(names(snap, 'pods'), ['web/front-1']);
  t.same(names(snap, 'namespaces'), ['/default', '/web']);
  t.same(names(snap, 'networkPolicies'), ['web/deny-all']);
  t.match(snap.services[0], { apiVersion: 'v1', kind: 'Service' }, 'list items get kind/apiVersion like dir-source objects');
  t.match(snap.endpointSlices[0], { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice' });
  await waitFor(() => h.src.status().version !== undefined, 'version', 5000);
  const st = h.src.status();
  t.match(st, { kind: 'kube', endpoint: api.url, synced: true, malformed: 0, version: 'v1.31.4+k3s1', nodeName: 'n1', objects: 8 });
  t.ok(st.lastSync, 'lastSync set');
  t.notOk(st.lastError, 'no error');
  for (const r of ['services', 'endpointslices', 'nodes', 'pods', 'namespaces', 'networkpolicies']) {
    t.equal(api.count('list', r), 1, `one list of ${r}`);
    t.ok(api.requests.some((q) => q.verb === 'list' && q.resource === r && q.path.endsWith(`/${r}`) && q.namespace === undefined), `${r} listed across all namespaces`);
  }
  await waitFor(() => api.openWatches === 6, 'six watches', 5000);
  t.ok(h.seen.length > 0, 'onChange called');
  t.ok(h.seen.filter((s) => s.synced).every((s) => s.snap.services.length === 2), 'never synced with a partial snapshot');
});

t.test('watch events converge the snapshot', async (t) => {
  const api = await server(t);
  seed(api);
  const h = await harness(t, api, { auth: 'token' });
  await h.start();
  await synced(h);
  await waitFor(() => api.openWatches === 6, 'watches', 5000);
  const n = h.seen.length;
  api.add(svc('web', 'new', '10.43.0.12'));
  api.update(slice('web', 'front-abc', 'front', ['10.42.0.5', '10.42.0.6']));
  api.remove('services', 'web', 'back');
  api.add(node('n2', '10.42.1.0/24'));
  api.remove('networkpolicies', 'web', 'deny-all');
  await waitFor(() => {
    const s = h.src.snapshot();
    return names(s, 'services').join() === 'web/front,web/new' && names(s, 'nodes').length === 2 && s.networkPolicies.length === 0 &&
      (s.endpointSlices[0] as any)?.endpoints?.length === 2;
  }, 'events applied', 5000);
  t.ok(h.seen.length >= n + 5, 'onChange per change');
  t.equal(api.count('list'), 6, 'no relist');
  t.equal(h.src.snapshot().services.find((s) => s.metadata?.name === 'new')?.kind, 'Service');
});

t.test('lists come in pages; objects are kept trimmed; a malformed one in a page is counted', async (t) => {
  const api = await server(t);
  seed(api);
  const noisy = (o: Obj): Obj => ({
    ...o,
    metadata: { ...(o.metadata as Obj), managedFields: [{ manager: 'kubectl', fieldsV1: { 'f:spec': {} } }], annotations: { 'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify(o) } },
  });
  for (let i = 0; i < 23; i++) api.add(noisy(svc('paged', `s${String(i).padStart(2, '0')}`, `10.43.1.${i + 1}`)));
  api.add({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'zz-bad', namespace: 'paged' }, spec: 'oops' });
  const h = await harness(t, api, { auth: 'cert' }, { listPageSize: 10 });
  api.clearRequests();
  await h.start();
  await synced(h);
  const lists = api.requests.filter((q) => q.verb === 'list' && q.resource === 'services');
  t.equal(lists.length, 3, '2 + 23 + 1 services in pages of 10: three requests');
  t.ok(lists.every((q) => q.query.limit === '10'), 'each asks for at most 10');
  t.same(lists.map((q) => q.query.continue !== undefined), [false, true, true], 'the later ones continue the first');
  const svcs = h.src.snapshot().services;
  t.equal(svcs.length, 25, 'every good service, none lost between pages');
  t.equal(h.src.status().malformed, 1, 'the malformed one in the last page is counted');
  t.ok(svcs.every((o) => o.metadata?.managedFields === undefined && o.metadata?.annotations === undefined), 'managedFields and the last-applied copy are not kept');
  t.match(svcs.find((o) => o.metadata?.name === 's07'), { apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'paged', resourceVersion: String }, spec: { clusterIP: '10.43.1.8', ports: [{ port: 80 }] } });

  await waitFor(() => api.openWatches === 6, 'watches', 5000);
  api.update(noisy(svc('paged', 's07', '10.43.1.99')));
  await waitFor(() => (h.src.snapshot().services.find((o) => o.metadata?.name === 's07')?.spec as Obj | undefined)?.clusterIP === '10.43.1.99', 'update', 5000);
  const s07 = h.src.snapshot().services.find((o) => o.metadata?.name === 's07')!;
  t.equal(s07.metadata?.managedFields, undefined, 'watch events are trimmed too');
});

t.test('dropped watches: reconnect without relisting and converge', async (t) => {
  const api = await server(t);
  seed(api);
  const h = await harness(t, api);
  await h.start();
  await synced(h);
  await waitFor(() => api.openWatches === 6, 'watches', 5000);

  t.equal(api.dropWatches(), 6, 'clean end of every watch');
  api.add(svc('web', 'during-drop', '10.43.0.20'));
  await waitFor(() => api.openWatches === 6, 'watches back', 5000);
  await waitFor(() => names(h.src.snapshot(), 'services').includes('web/during-drop'), 'change made during the drop', 5000);
  t.equal(api.count('list'), 6, 'resumed from the last resourceVersion, no list');
  t.ok(h.src.status().restarts >= 6, 'restarts counted');

  api.dropWatches({ abrupt: true });
  api.remove('services', 'web', 'during-drop');
  await waitFor(() => api.openWatches === 6, 'watches back after reset', 5000);
  await waitFor(() => !names(h.src.snapshot(), 'services').includes('web/during-drop'), 'deletion made during the reset', 5000);
  t.equal(api.count('list'), 6, 'still no list');
  t.match(h.src.status().lastError, /terminated|closed|reset|socket/i, 'the reset is recorded');
  t.ok(h.src.status().restarts >= 12);
});

for (const goneAs of ['event', 'http'] as const) {
  t.test(`410 Gone (${goneAs}): relist and converge`, async (t) => {
    const api = await server(t, { goneAs });
    seed(api);
    const h = await harness(t, api);
    await h.start();
    await synced(h);
    await waitFor(() => api.openWatches === 6, 'watches', 5000);
    // While disconnected: changes, then compaction past the client's resourceVersion.
    api.dropWatches();
    api.remove('services', 'web', 'back');
    api.add(svc('web', 'after-compaction', '10.43.0.30'));
    api.compact();
    await waitFor(() => names(h.src.snapshot(), 'services').join() === 'web/after-compaction,web/front', 'relisted state', 8000);
    t.equal(api.count('list', 'services'), 2, 'services relisted once');
    t.ok(api.requests.some((r) => r.verb === 'watch' && r.status === (goneAs === 'http' ? 410 : 200)), 'the server said Gone');
    await waitFor(() => api.openWatches === 6, 'watching again', 8000);
    api.add(svc('web', 'live', '10.43.0.31'));
    await waitFor(() => names(h.src.snapshot(), 'services').includes('web/live'), 'live again after relist', 5000);
    t.ok(h.src.status().synced);
  });
}

t.test('bookmarks keep quiet kinds from relisting after compaction', async (t) => {
  const api = await server(t);
  seed(api);
  const h = await harness(t, api);
  await h.start();
  await synced(h);
  await waitFor(() => api.openWatches === 6, 'watches', 5000);
  t.ok(api.requests.filter((r) => r.verb === 'watch').every((r) => r.query.allowWatchBookmarks === 'true'), 'watches ask for bookmarks');
  for (let i = 0; i < 5; i++) api.add(svc('web', `busy-${i}`, `10.43.1.${i}`));
  await waitFor(() => h.src.snapshot().services.length === 7, 'busy kind caught up', 5000);
  t.equal(api.bookmark(), 6);
  await sleep(100);
  api.dropWatches();
  api.compact();
  await waitFor(() => api.openWatches === 6, 'watches back', 5000);
  t.equal(api.count('list'), 6, 'no kind relisted: every resourceVersion was current');
});

for (const mode of ['newer epoch (410)', 'older epoch (resourceVersion too large)'] as const) {
  t.test(`server restart with new data, ${mode}: converge, nothing vanishes before the new list`, async (t) => {
    const api = await server(t, { rvBase: 5000 });
    seed(api);
    const h = await harness(t, api);
    await h.start();
    await synced(h);
    await waitFor(() => api.openWatches === 6, 'watches', 5000);
    const before = new Set(names(h.src.snapshot(), 'services'));
    const seenBefore = h.seen.length;

    api.listDelayMs = 150; // widen the window between "server back" and "list complete"
    await api.restart({
      rvBase: mode.startsWith('newer') ? undefined : 10,
      objects: [namespace('web'), node('n9', '10.42.9.0/24'), svc('web', 'front', '10.43.0.10'), svc('web', 'fresh', '10.43.0.40'),
        slice('web', 'fresh-1', 'fresh', ['10.42.9.3']), pod('web', 'fresh-1', '10.42.9.3')],
    });
    const want = 'web/fresh,web/front';
    await waitFor(() => names(h.src.snapshot(), 'services').join() === want && names(h.src.snapshot(), 'nodes').join() === '/n9' &&
      h.src.snapshot().networkPolicies.length === 0 && h.src.snapshot().namespaces.length === 1, 'new state', 10_000);
    t.ok(api.count('list', 'services') >= 1, 'relisted from the restarted server');

    // Every snapshot the consumer saw in between: still the whole old set, or the whole new one.
    for (const s of h.seen.slice(seenBefore)) {
      t.ok(s.synced, 'synced never went back to false');
      const cur = names(s.snap, 'services');
      const ok = cur.join() === want || [...before].every((k) => cur.includes(k));
      if (!ok) t.fail(`an old service vanished before the relist completed: ${cur.join()}`);
      t.ok(s.snap.namespaces.length > 0 && s.snap.nodes.length > 0, 'never an empty snapshot');
    }
    api.add(svc('web', 'post-restart', '10.43.0.41'));
    await waitFor(() => names(h.src.snapshot(), 'services').includes('web/post-restart'), 'watching the new epoch', 8000);
    if (mode.startsWith('older')) {
      t.ok(h.logs.some((l) => /ahead of the server/.test(l.msg)), 'too-large resourceVersion logged and relisted');
    }
  });
}

t.test('malformed objects are skipped and counted; the others still arrive', async (t) => {
  const api = await server(t);
  seed(api);
  api.add({ metadata: { namespace: 'web' }, spec: {} }, 'services'); // no name
  api.add({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'bad-spec', namespace: 'web' }, spec: 'oops' });
  const h = await harness(t, api);
  await h.start();
  await synced(h);
  t.same(names(h.src.snapshot(), 'services'), ['web/back', 'web/front'], 'list: malformed skipped, others kept');
  t.equal(h.src.status().malformed, 2);
  await waitFor(() => api.openWatches === 6, 'watches', 5000);

  api.add({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'no-type', namespace: 'web' }, endpoints: [] });
  api.add({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'in-wrong-stream', namespace: 'web' } }, 'services');
  api.sendRawLine('services', 'this is not JSON');
  api.update({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'front', namespace: 'web' }, spec: { ports: 'not-a-list' } });
  api.add(svc('web', 'good-after-bad', '10.43.0.50'));
  api.add(slice('web', 'good-slice', 'good-after-bad', ['10.42.0.9']));
  await waitFor(() => names(h.src.snapshot(), 'services').includes('web/good-after-bad') &&
    names(h.src.snapshot(), 'endpointSlices').includes('web/good-slice'), 'good objects after bad ones', 5000);
  const st = h.src.status();
  t.equal(st.malformed, 5, 'three more counted (a non-JSON line is dropped by the client itself)');
  t.equal((h.src.snapshot().services.find((s) => s.metadata?.name === 'front')?.spec as any)?.clusterIP, '10.43.0.10', 'last good version kept');
  const warn = h.logs.filter((l) => l.msg.includes('malformed'));
  t.equal(warn.length, 5);
  const reasons = warn.map((w) => String(w.fields?.reason));
  for (const re of [/metadata.name/, /spec is not an object/, /addressType/, /kind "Pod"/, /spec.ports/]) {
    t.ok(reasons.some((r) => re.test(r)), `logged: ${re}`);
  }

  // A relist sees the same malformed objects again: not counted twice.
  api.dropWatches();
  api.add(svc('web', 'x', '10.43.0.51'));
  api.compact();
  await waitFor(() => api.count('list', 'services') === 2 && names(h.src.snapshot(), 'services').includes('web/x'), 'relist', 8000);
  t.equal(h.src.status().malformed, 5, 'same versions, same count');
});

t.test('list failures restart with backoff and recover', async (t) => {
  const api = await server(t);
  seed(api);
  api.failNext({ verb: 'list', resource: 'pods' }, 503, 3);
  const h = await harness(t, api);
  await h.start();
  await synced(h);
  const st = h.src.status();
  t.equal(api.count('list', 'pods'), 4, 'three failures, then success');
  t.equal(st.resources.pods?.restarts, 3);
  t.match(st.resources.pods?.lastError, /HTTP 503/);
  t.match(st.lastError, /^pods: HTTP 503/);
  t.equal(api.count('list', 'services'), 1, 'other kinds unaffected');
});

t.test('auth: token works; wrong CA and bad token fail with a clear status', async (t) => {
  const api = await server(t);
  seed(api);
  const good = await harness(t, api, { auth: 'token' });
  await good.start();
  await synced(good);
  t.equal(good.src.snapshot().services.length, 2);
  t.ok(api.requests.some((r) => r.user === 'token-user'));

  const wrong = await harness(t, api, { auth: 'cert', ca: 'wrong' });
  await wrong.start();
  await waitFor(() => wrong.src.status().lastError !== undefined, 'error', 5000);
  const ws = wrong.src.status();
  t.equal(ws.synced, false);
  t.match(ws.lastError, /TLS: cannot verify the API server's certificate.*certificate-authority/);
  t.same(wrong.src.snapshot().services, []);

  const bad = await harness(t, api, { auth: 'token', token: 'wrong-token' });
  await bad.start();
  await waitFor(() => bad.src.status().lastError !== undefined, 'error', 5000);
  t.match(bad.src.status().lastError, /unauthorized \(401\)/);
  await sleep(300);
  const lists = api.count('list');
  await sleep(300);
  t.ok(api.count('list') - lists < 6 * 4, 'backoff: no hammering while failing');
});

t.test('RBAC from manifests/agent-rbac.yaml is enough, and needed', async (t) => {
  const text = await readFile(new URL('../../../../manifests/agent-rbac.yaml', import.meta.url), 'utf8');
  const role = parseAllDocuments(text).map((d) => d.toJS() as Obj).find((o) => o.kind === 'ClusterRole')!;
  const rules = role.rules as PolicyRule[];
  const api = await server(t, { rules });
  seed(api);
  const h = await harness(t, api);
  await h.start();
  await synced(h);
  t.equal(api.requests.filter((r) => r.status === 403).length, 0, 'no request denied');

  const partial = await server(t, { rules: rules.map((r) => ({ ...r, resources: r.resources?.filter((x) => x !== 'networkpolicies') })) });
  seed(partial);
  const p = await harness(t, partial);
  await p.start();
  await waitFor(() => p.src.status().resources.networkpolicies?.lastError !== undefined, '403', 5000);
  t.match(p.src.status().lastError, /forbidden \(403\).*networkpolicies.*RBAC/);
  t.equal(p.src.status().synced, false, 'not synced without every kind');
});

t.test('stop() ends everything', async (t) => {
  const api = await server(t);
  seed(api);
  api.failNext({ verb: 'list', resource: 'nodes' }, 500, 1000); // one kind stuck in backoff
  const timersBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const h = await harness(t, api, { auth: 'cert' }, { backoffBaseMs: 2000, backoffMaxMs: 5000 });
  await h.start();
  await waitFor(() => api.openWatches === 5 && h.src.status().resources.nodes?.restarts === 1, 'five watching, nodes backing off', 5000);
  await h.src.stop();
  const calls = h.seen.length;
  await waitFor(() => api.openWatches === 0, 'server sees the watches go', 3000);
  api.add(svc('web', 'after-stop', '10.43.0.60'));
  await sleep(200);
  t.equal(h.seen.length, calls, 'no onChange after stop');
  t.equal(api.count('list', 'nodes'), 1, 'no restart after stop');
  const timersAfter = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  t.ok(timersAfter <= timersBefore, `no timers left (${timersBefore} before, ${timersAfter} after)`);
  await h.src.stop();
});
