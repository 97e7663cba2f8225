// `kinglet connectivity test` against the stand-in API server (loopback),
// with a tiny simulated kubelet: it makes a pod per Deployment and flips its
// Ready condition as each test says (or records a probe failure event), so
// apply / wait / report / cleanup run end to end without containers.
import t from 'tap';
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeApiServer, WORKLOAD_RESOURCES, type Obj } from '../../../lib/fake-apiserver.ts';
import { runWith } from '../../../../agent/cli/commands/connectivity-test.ts';
import { SUITE } from '../../../../agent/connectivity/suite.ts';
import type { JsonReport } from '../../../../agent/connectivity/report.ts';

type PodFate = 'ready' | 'probe-fails' | 'unschedulable' | 'image-pull';

interface Kubelet {
  stop(): void;
  /** Pods made so far, by Deployment name. */
  made: Set<string>;
}

const labelsOf = (o: Obj): Record<string, string> => ((o.metadata as Obj | undefined)?.labels ?? {}) as Record<string, string>;

/** Every 10 ms: a pod for each Deployment without one, in the state `fate(name)` says. */
function kubelet(api: FakeApiServer, fate: (deployment: string) => PodFate = () => 'ready'): Kubelet {
  const made = new Set<string>();
  let seq = 0;
  const timer = setInterval(() => {
    for (const d of api.list('deployments')) {
      const md = d.metadata as Obj;
      const ns = md.namespace as string;
      const name = md.name as string;
      const key = `${ns}/${name}/${md.uid as string}`;
      if (made.has(key)) continue;
      if (!api.get('namespaces', '', ns)) continue;
      made.add(key);
      const template = ((d.spec as Obj).template as Obj);
      const podName = `${name}-${(++seq).toString(36).padStart(5, '0')}`;
      const f = fate(name);
      const now = new Date().toISOString();
      const conditions: Obj[] = f === 'unschedulable'
        ? [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules." }]
        : [{ type: 'PodScheduled', status: 'True' },
          { type: 'Ready', status: f === 'ready' ? 'True' : 'False', ...(f === 'ready' ? {} : { reason: 'ContainersNotReady', message: 'containers with unready status: [client]' }) }];
      const containerStatuses = f === 'image-pull'
        ? [{ name: 'client', ready: false, restartCount: 0, image: 'x', imageID: '', state: { waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image "registry.invalid/busybox"' } } }]
        : undefined;
      try {
        api.add({
          apiVersion: 'v1', kind: 'Pod',
          metadata: { name: podName, namespace: ns, labels: labelsOf(template), creationTimestamp: now },
          spec: { nodeName: f === 'unschedulable' ? undefined : 'node-1', containers: [] },
          status: { phase: f === 'ready' ? 'Running' : 'Pending', conditions, ...(containerStatuses ? { containerStatuses } : {}) },
        });
        if (f === 'probe-fails') {
          api.add({
            apiVersion: 'v1', kind: 'Event',
            metadata: { name: `${podName}.1`, namespace: ns },
            involvedObject: { kind: 'Pod', name: podName, namespace: ns },
            reason: 'Unhealthy', type: 'Warning', message: 'Readiness probe failed: wget: download timed out\n',
            lastTimestamp: now, count: 3,
          });
        }
      } catch { /* namespace finalized meanwhile */ }
    }
  }, 10);
  return { stop: () => clearInterval(timer), made };
}

const node = (name: string, ready = true): Obj => ({
  apiVersion: 'v1', kind: 'Node', metadata: { name },
  status: { conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
});

function capture(): { out: string; err: string; io: { out(s: string): void; err(s: string): void } } {
  const c = { out: '', err: '', io: { out: (s: string) => { c.out += s; }, err: (s: string) => { c.err += s; } } };
  return c;
}

t.test('kinglet connectivity test against the stand-in API server', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kinglet-conn-'));
  const api = await FakeApiServer.create({ resources: WORKLOAD_RESOURCES, namespaceFinalizeMs: 50 });
  t.teardown(async () => {
    await api.close();
    await rm(dir, { recursive: true, force: true });
  });
  api.add(node('node-1'));
  api.add(node('node-2'));
  api.add(node('node-3', false));
  const kubeconfig = await api.writeKubeconfig({ auth: 'token' });
  const noAgent = join(dir, 'no-agent.sock');
  const base = ['--kubeconfig', kubeconfig, '--api-socket', noAgent];
  const ns = 'kinglet-connectivity';
  const gone = async (name: string) => {
    for (let i = 0; i < 200 && api.get('namespaces', '', name); i++) await new Promise((r) => setTimeout(r, 10));
    return api.get('namespaces', '', name) === undefined;
  };

  t.test('all Ready: PASS table, exit 0, namespace deleted', async (t) => {
    const k = kubelet(api);
    t.teardown(() => k.stop());
    const c = capture();
    const rc = await runWith([...base, '--timeout', '10s'], c.io, { pollMs: 20 });
    t.equal(rc, 0, c.err);
    const rows = Object.fromEntries(c.out.split('\n').filter((l) => /^(pod|host)-/.test(l)).map((l) => [l.split(/\s+/)[0], l]));
    t.equal(Object.keys(rows).length, SUITE.checks.length, 'a row per check');
    for (const name of ['pod-to-a', 'pod-to-b-multi-node-clusterip', 'pod-to-b-multi-node-headless', 'host-to-b-multi-node-clusterip', 'host-to-b-multi-node-headless']) {
      t.match(rows[name], /\sPASS\s/, name);
    }
    t.match(rows['pod-to-a-denied-np'], /SKIP .*NetworkPolicy support unknown \(agent not reachable\)/);
    t.match(rows['pod-to-b-intra-node-nodeport'], /SKIP .*NodePort/);
    t.match(rows['pod-to-b-multi-node-hostport'], /SKIP .*HostPort/);
    t.match(rows['pod-to-external-1111'], /SKIP .*--capability internet/);
    t.match(c.out, /namespace kinglet-connectivity: 2 nodes; capabilities: multi-node/);
    t.match(c.out, /note: agent not reachable/);
    t.match(c.out, /OK: 12 checks, 5 passed, 0 failed, 7 skipped/);
    t.match(c.err, /--> applying \d+ objects \(5 checks\)/);
    t.match(c.err, /^PASS pod-to-a \(/m, 'a progress line per verdict');
    t.notMatch(c.err, /\r/, 'no redraws when not a terminal');
    t.ok(await gone(ns), 'namespace deleted');
    const made = [...k.made].map((x) => x.split('/')[1]).sort();
    t.same(made, ['echo-a', 'echo-b', 'echo-b-host', 'host-to-b-multi-node-clusterip', 'host-to-b-multi-node-headless',
      'pod-to-a', 'pod-to-b-multi-node-clusterip', 'pod-to-b-multi-node-headless'], 'only servers and planned checks were deployed');
  });

  t.test('one never Ready: FAIL with the probe failure, exit 1, --json', async (t) => {
    const k = kubelet(api, (d) => (d === 'pod-to-b-multi-node-headless' ? 'probe-fails' : 'ready'));
    t.teardown(() => k.stop());
    const c = capture();
    const rc = await runWith([...base, '--timeout', '1s', '--json'], c.io, { pollMs: 20 });
    t.equal(rc, 1);
    const rep = JSON.parse(c.out) as JsonReport;
    t.equal(rep.ok, false);
    t.same(rep.summary, { total: 12, pass: 4, fail: 1, skip: 7 });
    const failed = rep.results.find((r) => r.verdict === 'FAIL')!;
    t.equal(failed.name, 'pod-to-b-multi-node-headless');
    t.equal(failed.reason, 'not Ready within 1s: Readiness probe failed: wget: download timed out');
    t.ok(failed.durationMs >= 900);
    t.ok(await gone(ns), 'cleaned up after a failure too');
  });

  t.test('reasons: unschedulable, image pull, server not ready', async (t) => {
    const k = kubelet(api, (d) => (d === 'pod-to-b-multi-node-clusterip' ? 'unschedulable' : d === 'pod-to-a' ? 'image-pull' : d === 'echo-b' ? 'probe-fails' : 'ready'));
    t.teardown(() => k.stop());
    const c = capture();
    const rc = await runWith([...base, '--timeout', '500ms', '--json'], c.io, { pollMs: 20 });
    t.equal(rc, 1);
    const rep = JSON.parse(c.out) as JsonReport;
    const by = Object.fromEntries(rep.results.map((r) => [r.name, r]));
    t.match(by['pod-to-a']!.reason, /container client ImagePullBackOff: Back-off pulling image/);
    t.match(by['pod-to-b-multi-node-clusterip']!.reason, /^not Ready within 500ms: server echo-b not ready \(Readiness probe failed: wget: download timed out\); not scheduled: 0\/2 nodes are available/);
    t.equal(by['host-to-b-multi-node-clusterip']!.verdict, 'PASS', 'a client may pass whatever the server pod says');
    t.ok(await gone(ns));
  });

  t.test('--keep leaves the namespace; images and --single-node; a re-run reuses it', async (t) => {
    const k = kubelet(api);
    t.teardown(() => k.stop());
    const c = capture();
    const rc = await runWith([...base, '--keep', '--single-node', '--image-client', 'registry.local/busybox:1', '--image-echo', 'registry.local/echo:2', '--namespace', 'conn-keep'], c.io, { pollMs: 20 });
    t.equal(rc, 0, c.err);
    t.match(c.out, /pod-to-b-multi-node-clusterip\s+SKIP\s+-\s+single-node subset requested \(--single-node\)/);
    t.match(c.out, /note: namespace conn-keep kept \(--keep\)/);
    const nsObj = api.get('namespaces', '', 'conn-keep');
    t.ok(nsObj, 'namespace kept');
    t.match(nsObj, { metadata: { labels: { 'app.kubernetes.io/managed-by': 'kinglet-connectivity' } }, status: { phase: 'Active' } });
    const image = (name: string) => ((((api.get('deployments', 'conn-keep', name)!.spec as Obj).template as Obj).spec as Obj).containers as Obj[])[0]!.image;
    t.equal(image('pod-to-a'), 'registry.local/busybox:1');
    t.equal(image('echo-a'), 'registry.local/echo:2');
    t.equal(api.get('deployments', 'conn-keep', 'pod-to-b-multi-node-clusterip'), undefined, 'multi-node clients not applied');
    t.match(api.get('services', 'conn-keep', 'echo-b'), { spec: { type: 'NodePort', ports: [{ nodePort: 31414 }] } });
    const clusterIP = (api.get('services', 'conn-keep', 'echo-a')!.spec as Obj).clusterIP;

    const c2 = capture();
    t.equal(await runWith([...base, '--namespace', 'conn-keep', '--single-node'], c2.io, { pollMs: 20 }), 0, c2.err);
    t.match(c2.out, /note: reusing namespace conn-keep/);
    t.ok(api.requests.some((r) => r.method === 'PUT' && r.resource === 'services' && r.status === 200), 'existing objects replaced');
    t.ok(await gone('conn-keep'), 'deleted by the run without --keep');
    t.ok(clusterIP);
  });

  t.test('a re-run waits for the previous namespace to finish terminating', async (t) => {
    const slow = await FakeApiServer.create({ resources: WORKLOAD_RESOURCES, namespaceFinalizeMs: 2000 });
    t.teardown(() => slow.close());
    slow.add(node('node-1'));
    const k = kubelet(slow);
    t.teardown(() => k.stop());
    const kcf = await slow.writeKubeconfig({ auth: 'token' });
    const c1 = capture();
    t.equal(await runWith(['--kubeconfig', kcf, '--api-socket', noAgent], c1.io, { pollMs: 20 }), 0, c1.err);
    t.match(c1.out, /1 node, single-node subset/);
    t.ok(slow.get('namespaces', '', ns), 'still terminating');
    const c2 = capture();
    t.equal(await runWith(['--kubeconfig', kcf, '--api-socket', noAgent], c2.io, { pollMs: 20 }), 0, c2.err);
    t.match(c2.err, /waiting for the previous namespace kinglet-connectivity to be deleted/);
  });

  t.test('capabilities from the agent on this node', async (t) => {
    const sock = join(dir, 'agent.sock');
    const agent = http.createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({
        node: { name: 'node-1' },
        kubeProxyReplacement: { mode: 'Partial', features: [
          { name: 'ClusterIP (socket LB, TCP+UDP, v4+v6)', enabled: true, detail: '' },
          { name: 'NodePort / ExternalIP / LoadBalancer', enabled: true, detail: '' },
          { name: 'HostPort', enabled: false, detail: '' },
        ] },
      }));
    });
    await new Promise<void>((r) => agent.listen(sock, r));
    t.teardown(() => new Promise<void>((r) => agent.close(() => r())));
    const k = kubelet(api);
    t.teardown(() => k.stop());
    const c = capture();
    const rc = await runWith(['--kubeconfig', kubeconfig, '--api-socket', sock, '--capability', 'internet', '--json'], c.io, { pollMs: 20 });
    t.equal(rc, 0, c.err);
    const rep = JSON.parse(c.out) as JsonReport;
    t.same(rep.capabilities, ['nodeport', 'internet', 'multi-node']);
    const by = Object.fromEntries(rep.results.map((r) => [r.name, r]));
    t.equal(by['pod-to-b-intra-node-nodeport']!.verdict, 'PASS');
    t.equal(by['pod-to-b-multi-node-nodeport']!.verdict, 'PASS');
    t.equal(by['pod-to-external-1111']!.verdict, 'PASS');
    t.equal(by['pod-to-b-intra-node-hostport']!.reason, 'HostPort is not implemented by the datapath yet');
    t.equal(by['pod-to-a-allowed-np']!.reason, 'NetworkPolicy is not enforced by the datapath yet');
    t.match(rep.notes, [/datapath capabilities from the agent on node-1: nodeport/]);
    t.ok(await gone(ns));
  });

  t.test('refuses a namespace it did not make, and leaves it alone', async (t) => {
    api.add({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' }, status: { phase: 'Active' } });
    const c = capture();
    await t.rejects(runWith([...base, '--namespace', 'default'], c.io, { pollMs: 20 }), /namespace default exists and was not made by kinglet connectivity test/);
    t.ok(api.get('namespaces', '', 'default'), 'not deleted');
    t.equal(api.requests.filter((r) => r.method === 'DELETE' && r.path.endsWith('/namespaces/default')).length, 0);
  });

  t.test('API errors are reported clearly, and what was made is cleaned up', async (t) => {
    api.failNext({ verb: 'create', resource: 'deployments' }, 403);
    const c = capture();
    await t.rejects(runWith([...base], c.io, { pollMs: 20 }), /applying Deployment kinglet-connectivity\/echo-a: 403 Forbidden: injected failure \(403\)/);
    t.ok(await gone(ns), 'namespace deleted after the failed apply');

    api.failNext({ verb: 'list', resource: 'pods' }, 503, 3);
    const k = kubelet(api);
    t.teardown(() => k.stop());
    const c2 = capture();
    t.equal(await runWith([...base], c2.io, { pollMs: 20 }), 0, 'transient list errors are retried');
    t.match(c2.err, /listing pods failed, retrying: 503 ServiceUnavailable/);
    t.ok(await gone(ns));

    const bad = capture();
    await t.rejects(runWith(['--kubeconfig', join(dir, 'missing.yaml')], bad.io), /kubeconfig .*missing\.yaml \(--kubeconfig\) does not exist/);
  });

  t.test('the API server going away', async (t) => {
    const gonner = await FakeApiServer.create({ resources: WORKLOAD_RESOURCES });
    t.teardown(() => gonner.close());
    const kcf = await gonner.writeKubeconfig({ auth: 'token' });
    await gonner.stop();
    const c = capture();
    await t.rejects(runWith(['--kubeconfig', kcf, '--api-socket', noAgent], c.io, { pollMs: 20 }), /cannot use the Kubernetes API at https:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/);
  });

  t.test('interrupt: fails what is left, still cleans up', async (t) => {
    const k = kubelet(api, (d) => (d.startsWith('host-') ? 'probe-fails' : 'ready'));
    t.teardown(() => k.stop());
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 400);
    const c = capture();
    const rc = await runWith([...base, '--timeout', '60s'], c.io, { pollMs: 20, signal: ac.signal });
    t.equal(rc, 1);
    t.match(c.out, /host-to-b-multi-node-clusterip\s+FAIL\s+\S+\s+interrupted before the check was Ready/);
    t.ok(await gone(ns));
  });

  t.test('usage errors', async (t) => {
    await t.rejects(runWith(['--timeout', 'soon'], capture().io), { name: 'UsageError' });
    await t.rejects(runWith(['--capability', 'teleport'], capture().io), /unknown "teleport"/);
    await t.rejects(runWith(['--capability', 'multi-node'], capture().io), /--single-node/);
    await t.rejects(runWith(['--namespace', 'Bad_NS'], capture().io), { name: 'UsageError' });
    const h = capture();
    t.equal(await runWith(['--help'], h.io), 0);
    t.match(h.out, /usage: kinglet connectivity test/);
  });
});
