// The stand-in API server, exercised with the real @kubernetes/client-node
// (typed API client, Watch, ListWatch) and with raw HTTPS. Loopback only.
import t from 'tap';
import https from 'node:https';
import { CoreV1Api, KubeConfig, ListWatch, Watch, type KubernetesObject } from '@kubernetes/client-node';
import { FakeApiServer, type Obj } from '../../lib/fake-apiserver.ts';
import { sleep, waitFor } from '../../lib/wait.ts';

const svc = (ns: string, name: string, ip = '10.43.0.10'): Obj => ({
  apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns }, spec: { clusterIP: ip, ports: [{ port: 80, protocol: 'TCP' }] },
});

async function kc(api: FakeApiServer, auth: 'cert' | 'token', ca: 'right' | 'wrong' | 'none' = 'right'): Promise<KubeConfig> {
  const k = new KubeConfig();
  k.loadFromFile(await api.writeKubeconfig({ auth, ca }));
  return k;
}

/** Raw GET with the kubeconfig's credentials; returns status and parsed body (or text). */
async function rawGet(k: KubeConfig, path: string): Promise<{ status: number; body: any; text: string }> {
  const opts: https.RequestOptions = {};
  await k.applyToHTTPSOptions(opts);
  const url = new URL(k.getCurrentCluster()!.server + path);
  return new Promise((resolve, reject) => {
    const req = https.request(url, { ...opts, method: 'GET', timeout: 5000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { text += c; });
      res.on('end', () => {
        let body: unknown;
        try { body = JSON.parse(text); } catch { body = undefined; }
        resolve({ status: res.statusCode ?? 0, body, text });
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Open a raw watch and collect its JSON lines until it ends or `ms` pass. */
async function rawWatch(k: KubeConfig, path: string, ms = 500): Promise<{ status: number; events: any[]; ended: boolean }> {
  const opts: https.RequestOptions = {};
  await k.applyToHTTPSOptions(opts);
  const url = new URL(k.getCurrentCluster()!.server + path);
  return new Promise((resolve, reject) => {
    const events: any[] = [];
    let buf = '';
    const req = https.request(url, { ...opts, method: 'GET' }, (res) => {
      const timer = setTimeout(() => { req.destroy(); resolve({ status: res.statusCode ?? 0, events, ended: false }); }, ms);
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        buf += c;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line.trim()) events.push(JSON.parse(line));
        }
      });
      res.on('end', () => { clearTimeout(timer); resolve({ status: res.statusCode ?? 0, events, ended: true }); });
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('fake API server', async (t) => {
  const api = await FakeApiServer.create({ tokens: { 'good-token': 'alice' } });
  t.teardown(() => api.close());

  t.test('typed client lists with cert and token auth; resourceVersion is cluster-wide', async (t) => {
    api.add(svc('default', 'a'));
    api.add({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' } });
    api.add(svc('kube-system', 'b'));
    for (const auth of ['cert', 'token'] as const) {
      const core = (await kc(api, auth)).makeApiClient(CoreV1Api);
      const list = await core.listServiceForAllNamespaces();
      t.same(list.items.map((s) => `${s.metadata?.namespace}/${s.metadata?.name}`), ['default/a', 'kube-system/b'], auth);
      t.equal(list.metadata?.resourceVersion, String(api.resourceVersion), `${auth}: list RV is the global counter`);
      const nodes = await core.listNode();
      t.equal(nodes.metadata?.resourceVersion, String(api.resourceVersion), 'same counter across kinds');
      const inNs = await core.listNamespacedService({ namespace: 'kube-system' });
      t.same(inNs.items.map((s) => s.metadata?.name), ['b']);
    }
    const users = api.requests.filter((r) => r.verb === 'list').map((r) => r.user);
    t.ok(users.includes('kinglet-agent') && users.includes('alice'), 'users from the client cert CN and from the token');
  });

  t.test('auth failures', async (t) => {
    const bad = new KubeConfig();
    bad.loadFromString((api.kubeconfig({ auth: 'token', token: 'nope' })));
    const r = await rawGet(bad, '/api/v1/services');
    t.equal(r.status, 401);
    t.equal(r.body.kind, 'Status');
    t.equal(r.body.reason, 'Unauthorized');
    const wrongCa = await kc(api, 'token', 'wrong');
    await t.rejects(rawGet(wrongCa, '/version'), /self[- ]signed|unable to verify|certificate/i, 'a wrong CA fails the TLS handshake');
  });

  t.test('version and discovery', async (t) => {
    const k = await kc(api, 'token');
    const v = await rawGet(k, '/version');
    t.match(v.body, { major: '1', gitVersion: /^v1\.\d+/ });
    t.same((await rawGet(k, '/api')).body.versions, ['v1']);
    const groups = (await rawGet(k, '/apis')).body.groups.map((g: any) => g.name).sort();
    t.same(groups, ['discovery.k8s.io', 'networking.k8s.io']);
    const core = (await rawGet(k, '/api/v1')).body.resources.map((r: any) => r.name).sort();
    t.same(core, ['namespaces', 'nodes', 'pods', 'services']);
    const disc = (await rawGet(k, '/apis/discovery.k8s.io/v1')).body;
    t.match(disc.resources, [{ name: 'endpointslices', namespaced: true, kind: 'EndpointSlice' }]);
    t.equal((await rawGet(k, '/apis/nope.io/v1')).status, 404);
  });

  t.test('list items carry no kind; get and watch objects do; paging is consistent', async (t) => {
    const k = await kc(api, 'token');
    const list = (await rawGet(k, '/api/v1/services')).body;
    t.equal(list.kind, 'ServiceList');
    t.equal(list.items[0].kind, undefined);
    const one = (await rawGet(k, '/api/v1/namespaces/default/services/a')).body;
    t.equal(one.kind, 'Service');
    t.equal((await rawGet(k, '/api/v1/namespaces/default/services/zzz')).status, 404);
    for (let i = 0; i < 5; i++) api.add(svc('paged', `s${i}`));
    const p1 = (await rawGet(k, '/api/v1/namespaces/paged/services?limit=2')).body;
    t.equal(p1.items.length, 2);
    t.equal(p1.metadata.remainingItemCount, 3);
    api.add(svc('paged', 's9')); // not visible in the paged snapshot
    const p2 = (await rawGet(k, `/api/v1/namespaces/paged/services?limit=2&continue=${p1.metadata.continue}`)).body;
    const p3 = (await rawGet(k, `/api/v1/namespaces/paged/services?limit=2&continue=${p2.metadata.continue}`)).body;
    t.same([...p1.items, ...p2.items, ...p3.items].map((s: any) => s.metadata.name), ['s0', 's1', 's2', 's3', 's4']);
    t.equal(p3.metadata.continue, undefined);
    t.equal(p1.metadata.resourceVersion, p3.metadata.resourceVersion, 'all pages at one resourceVersion');
    const q1 = (await rawGet(k, '/api/v1/namespaces/paged/services?limit=2')).body;
    api.add(svc('paged', 's10'));
    api.compact();
    const q2 = await rawGet(k, `/api/v1/namespaces/paged/services?limit=2&continue=${q1.metadata.continue}`);
    t.equal(q2.status, 410, 'a continue token past compaction is expired');
    t.equal((await rawGet(k, '/api/v1/services?fieldSelector=a%3Db')).status, 400, 'field selectors are refused, not ignored');
    t.equal((await rawGet(k, '/api/v1/services?labelSelector=a%20in%20(b')).status, 400, 'a malformed label selector is refused');
    t.same((await rawGet(k, '/api/v1/services?labelSelector=nope%3Db')).body.items, [], 'label selectors filter');
  });

  t.test('watch: replay from RV, bookmarks, 410 as event or HTTP, too-large RV', async (t) => {
    const k = await kc(api, 'token');
    const rv0 = api.resourceVersion;
    api.add(svc('w', 'x'));
    api.update(svc('w', 'x', '10.43.0.99'));
    api.remove('services', 'w', 'x');
    const r = await rawWatch(k, `/api/v1/services?watch=true&resourceVersion=${rv0}`, 300);
    t.same(r.events.map((e) => e.type), ['ADDED', 'MODIFIED', 'DELETED']);
    t.equal(r.events[1].object.spec.clusterIP, '10.43.0.99');
    t.equal(r.events[2].object.kind, 'Service');
    t.equal(Number(r.events[2].object.metadata.resourceVersion), api.resourceVersion, 'DELETED carries the deletion RV');
    const ns = await rawWatch(k, `/api/v1/namespaces/default/services?watch=true&resourceVersion=${rv0}`, 200);
    t.same(ns.events, [], 'namespace filter');

    const pending = rawWatch(k, `/api/v1/services?watch=true&allowWatchBookmarks=true&resourceVersion=${api.resourceVersion}`, 400);
    await waitFor(() => api.bookmark() === 1, 'a watch that allows bookmarks', 3000);
    const b = await pending;
    t.match(b.events, [{ type: 'BOOKMARK', object: { kind: 'Service', metadata: { resourceVersion: String(api.resourceVersion) } } }]);

    api.compact();
    api.add(svc('w', 'y'));
    const gone = await rawWatch(k, `/api/v1/services?watch=true&resourceVersion=${rv0}`, 1000);
    t.equal(gone.status, 200);
    t.ok(gone.ended, 'the server ends the stream after the error');
    t.match(gone.events, [{ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } }]);
    const future = await rawWatch(k, `/api/v1/services?watch=true&resourceVersion=${api.resourceVersion + 50}`, 1000);
    t.match(future.events, [{ type: 'ERROR', object: { code: 504, details: { causes: [{ reason: 'ResourceVersionTooLarge' }] } } }]);
    const any = await rawWatch(k, '/api/v1/services?watch=true', 200);
    t.ok(any.events.length >= 3 && any.events.every((e) => e.type === 'ADDED'), 'no RV: synthetic ADDED for current state');
  });

  t.test('client-node ListWatch: list, watch, reconnect after drops, relist after 410', async (t) => {
    const k = await kc(api, 'cert');
    const core = k.makeApiClient(CoreV1Api);
    const lw = new ListWatch<KubernetesObject>('/api/v1/nodes', new Watch(k), () => core.listNode(), false);
    const errors: unknown[] = [];
    lw.on('error', (e) => errors.push(e));
    t.teardown(() => lw.stop());
    api.clearRequests();
    await lw.start();
    t.equal(lw.list().length, 1);
    t.equal(api.count('list', 'nodes'), 1);
    await waitFor(() => api.count('watch', 'nodes') === 1 && api.openWatches >= 1, 'watch', 3000);
    const watchReq = api.requests.find((r) => r.verb === 'watch')!;
    t.equal(watchReq.query.resourceVersion, lw.latestResourceVersion(), 'watch resumes at the list RV');
    t.notOk('allowWatchBookmarks' in watchReq.query, 'this client does not ask for bookmarks');

    api.add({ kind: 'Node', metadata: { name: 'n2' } });
    await waitFor(() => lw.list().length === 2, 'ADDED seen', 3000);

    api.dropWatches();
    await waitFor(() => api.count('watch', 'nodes') === 2, 'client reconnects by itself after a clean close', 3000);
    t.equal(api.count('list', 'nodes'), 1, 'no relist after a clean close');
    api.add({ kind: 'Node', metadata: { name: 'n3' } });
    await waitFor(() => lw.list().length === 3, 'event after reconnect', 3000);

    // Changes while the client is disconnected, then compaction: the reconnect
    // finds its RV compacted (ERROR 410 event, end of stream) and relists.
    api.dropWatches();
    api.remove('nodes', '', 'n2');
    api.compact();
    await waitFor(() => api.count('list', 'nodes') === 2, 'relist after 410', 5000);
    await waitFor(() => lw.list().length === 2, 'deletion applied by the relist', 3000);
    t.same(errors, [], 'no error callbacks so far');

    // (this client waits 1 s, doubling, before re-watching when no event came in between)
    await waitFor(() => api.openWatches === 1, 'watch after relist', 5000);
    api.dropWatches({ abrupt: true });
    await waitFor(() => errors.length === 1, 'an abrupt reset is an error', 3000);
    await sleep(300);
    t.equal(api.openWatches, 0, 'after an error this client version stays down (the caller must restart it)');
    await lw.start();
    await waitFor(() => api.openWatches === 1, 'restarted by the caller', 3000);
    t.equal(api.count('list', 'nodes'), 2, 'a restart resumes from the last RV without a list');
    await lw.stop();
    await sleep(100);
    t.match(String(errors[1]), /abort/i, 'stop() itself is reported to error callbacks (an AbortError)');
  });

  t.test('failNext, RBAC rules, restart on the same port with a new epoch', async (t) => {
    const k = await kc(api, 'token');
    api.failNext({ verb: 'list', resource: 'pods' }, 503);
    t.equal((await rawGet(k, '/api/v1/pods')).status, 503);
    t.equal((await rawGet(k, '/api/v1/pods')).status, 200);

    const port = api.port;
    const oldRv = api.resourceVersion;
    await api.restart({ objects: [svc('new', 'only')] });
    t.equal(api.port, port);
    t.ok(api.resourceVersion > oldRv);
    const l = (await rawGet(k, '/api/v1/services')).body;
    t.same(l.items.map((s: any) => s.metadata.name), ['only']);
    const w = await rawWatch(k, `/api/v1/services?watch=true&resourceVersion=${oldRv}`, 1000);
    t.match(w.events, [{ type: 'ERROR', object: { code: 410 } }], 'old RV is gone in the new epoch');

    const rbac = await FakeApiServer.create({ rules: [{ apiGroups: [''], resources: ['services'], verbs: ['list', 'watch'] }], goneAs: 'http' });
    t.teardown(() => rbac.close());
    const rk = await kc(rbac, 'cert');
    t.equal((await rawGet(rk, '/api/v1/services')).status, 200);
    const denied = await rawGet(rk, '/api/v1/pods');
    t.equal(denied.status, 403);
    t.match(denied.body.message, /cannot list resource "pods"/);
    t.equal((await rawGet(rk, '/version')).status, 200, 'version is open to authenticated users');
    rbac.add(svc('a', 'b'));
    rbac.compact();
    t.equal((await rawGet(rk, '/api/v1/services?watch=true&resourceVersion=1')).status, 410, 'goneAs http');
  });
});
