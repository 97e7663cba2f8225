// Pure parts of the in-cluster runner: failure explanations, API error text,
// capabilities from the agent's status, durations, progress display.
import t from 'tap';
import type { CoreV1Event, V1Pod } from '@kubernetes/client-node';
import { capabilitiesFromAgent, describeApiError, explainCheck, explainPod, isReady } from '../../../../agent/connectivity/cluster.ts';
import { checkByName, SUITE } from '../../../../agent/connectivity/suite.ts';
import { parseDuration, progressPrinter } from '../../../../agent/cli/commands/connectivity-test.ts';

const pod = (name: string, labels: Record<string, string>, status: V1Pod['status']): V1Pod => ({ metadata: { name, labels, creationTimestamp: new Date(0) }, status });
const ev = (podName: string, reason: string, message: string, at: string, type = 'Warning'): CoreV1Event =>
  ({ metadata: {}, involvedObject: { kind: 'Pod', name: podName }, reason, message, type, lastTimestamp: new Date(at) });

t.test('explainPod: scheduling, container state, probe events, conditions', async (t) => {
  t.equal(explainPod(pod('p', {}, { conditions: [{ type: 'PodScheduled', status: 'False', message: '0/1 nodes are available' }] }), []),
    'not scheduled: 0/1 nodes are available');
  t.equal(explainPod(pod('p', {}, { containerStatuses: [{ name: 'client', ready: false, restartCount: 0, image: '', imageID: '', state: { waiting: { reason: 'ErrImagePull', message: 'not found' } } }] }), []),
    'container client ErrImagePull: not found');
  t.equal(explainPod(pod('p', {}, { containerStatuses: [{ name: 'client', ready: false, restartCount: 0, image: '', imageID: '', state: { waiting: { reason: 'ContainerCreating' } } }], phase: 'Pending' }), []),
    'pod Pending', 'ContainerCreating is not a reason by itself');
  const events = [
    ev('p', 'Unhealthy', 'Readiness probe failed: old', '2025-01-01T00:00:00Z'),
    ev('p', 'Unhealthy', 'Readiness probe failed: wget: bad address \'echo-a:8080\'\n', '2025-01-01T00:01:00Z'),
    ev('q', 'Unhealthy', 'Readiness probe failed: other pod', '2025-01-01T00:02:00Z'),
    ev('p', 'Unhealthy', 'Liveness probe failed: x', '2025-01-01T00:03:00Z'),
  ];
  t.equal(explainPod(pod('p', {}, { phase: 'Running', conditions: [{ type: 'Ready', status: 'False' }] }), events),
    "Readiness probe failed: wget: bad address 'echo-a:8080'", 'the latest readiness failure of this pod');
  t.equal(explainPod(pod('p', {}, { phase: 'Running' }), [ev('p', 'FailedMount', 'no volume', '2025-01-01T00:00:00Z')]), 'FailedMount: no volume');
  t.equal(explainPod(pod('p', {}, { phase: 'Running', conditions: [{ type: 'Ready', status: 'False', reason: 'ContainersNotReady', message: 'containers with unready status: [client]' }] }), []),
    'not Ready (Running): containers with unready status: [client]; no probe failure recorded');
  t.ok(isReady(pod('p', {}, { conditions: [{ type: 'Ready', status: 'True' }] })));
  t.notOk(isReady({ ...pod('p', {}, { conditions: [{ type: 'Ready', status: 'True' }] }), metadata: { deletionTimestamp: new Date() } }), 'a terminating pod does not count');
});

t.test('explainCheck: no pod, newest pod, server not ready', async (t) => {
  const check = checkByName(SUITE, 'pod-to-b-multi-node-clusterip');
  const server = pod('echo-b-1', { [SUITE.serverLabel]: 'echo-b' }, { conditions: [{ type: 'Ready', status: 'True' }] });
  t.match(explainCheck(SUITE, check, [server], []), /^no pod was created for Deployment pod-to-b-multi-node-clusterip/);
  const old = { ...pod('c-old', { [SUITE.checkLabel]: check.name }, { conditions: [{ type: 'PodScheduled', status: 'False', message: 'old' }] }), metadata: { name: 'c-old', labels: { [SUITE.checkLabel]: check.name }, creationTimestamp: new Date(1000) } };
  const neu = { ...pod('c-new', { [SUITE.checkLabel]: check.name }, { conditions: [{ type: 'PodScheduled', status: 'False', message: 'new' }] }), metadata: { name: 'c-new', labels: { [SUITE.checkLabel]: check.name }, creationTimestamp: new Date(2000) } };
  t.equal(explainCheck(SUITE, check, [server, old, neu], []), 'not scheduled: new');
  t.equal(explainCheck(SUITE, check, [old], []), 'server echo-b not ready (no pod); not scheduled: old');
  t.equal(explainCheck(SUITE, checkByName(SUITE, 'pod-to-external-1111'), [], []).startsWith('no pod'), true, 'external checks have no server');
});

t.test('describeApiError', async (t) => {
  t.same(describeApiError({ code: 403, body: JSON.stringify({ kind: 'Status', reason: 'Forbidden', message: 'deployments.apps is forbidden' }) }),
    { status: 403, text: '403 Forbidden: deployments.apps is forbidden' });
  t.same(describeApiError({ code: 500, body: 'oops\n' }), { status: 500, text: '500: oops' });
  t.same(describeApiError({ code: 404, body: { reason: 'NotFound', message: 'x' } }), { status: 404, text: '404 NotFound: x' });
  t.same(describeApiError(Object.assign(new Error('fetch failed'), { cause: { code: 'ECONNREFUSED' } })), { status: undefined, text: 'fetch failed (ECONNREFUSED)' });
});

t.test('capabilitiesFromAgent', async (t) => {
  const features = (...on: string[]) => ({ kubeProxyReplacement: { features: ['ClusterIP (socket LB)', 'NodePort / ExternalIP / LoadBalancer', 'HostPort', 'NetworkPolicy (ingress + egress)'].map((name) => ({ name, enabled: on.includes(name) })) } });
  t.same(capabilitiesFromAgent(features('ClusterIP (socket LB)')), [], 'today: none');
  t.same(capabilitiesFromAgent(features('NodePort / ExternalIP / LoadBalancer')), ['nodeport']);
  t.same(capabilitiesFromAgent(features('HostPort', 'NetworkPolicy (ingress + egress)')), ['networkpolicy', 'hostport']);
  t.same(capabilitiesFromAgent({ capabilities: ['NodePort', 'internet', 'multi-node', 42], ...features('HostPort') }), ['nodeport'],
    'an explicit list wins; internet and multi-node are never the agent\'s to say');
  t.same(capabilitiesFromAgent({}), []);
});

t.test('parseDuration', async (t) => {
  t.equal(parseDuration('300'), 300_000);
  t.equal(parseDuration('300s'), 300_000);
  t.equal(parseDuration('5m'), 300_000);
  t.equal(parseDuration('1m30s'), 90_000);
  t.equal(parseDuration('1500ms'), 1500);
  t.equal(parseDuration('1h'), 3_600_000);
  for (const bad of ['', 'soon', '5 m', '5x', 's5', '-1s']) t.throws(() => parseDuration(bad), { name: 'UsageError' }, bad);
});

t.test('progress: a line per change, or a redrawn line on a terminal', async (t) => {
  const run = (tty: boolean) => {
    let err = '';
    const p = progressPrinter({ out: () => {}, err: (s) => { err += s; } }, tty);
    p.onProgress({ kind: 'step', text: 'applying' });
    p.onProgress({ kind: 'waiting', ready: 0, total: 2, pending: ['a', 'b'], elapsedMs: 10 });
    p.onProgress({ kind: 'verdict', result: { name: 'a', description: '', verdict: 'PASS', durationMs: 1500 } });
    p.onProgress({ kind: 'waiting', ready: 1, total: 2, pending: ['b'], elapsedMs: 2000 });
    p.done();
    return err;
  };
  t.equal(run(false), '--> applying\nwaiting: 0/2 ready, 10ms; pending: a, b\nPASS a (1.5s)\nwaiting: 1/2 ready, 2s; pending: b\n');
  t.equal(run(true), '--> applying\nwaiting: 0/2 ready, 10ms; pending: a, b\r\x1b[2KPASS a (1.5s)\nwaiting: 1/2 ready, 2s; pending: b\r\x1b[2K');
});
