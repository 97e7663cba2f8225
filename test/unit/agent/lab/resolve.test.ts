// Target resolution and verdicts of the lab runner: no DNS, the names a
// cluster's clients resolve come from the plan (agent/lab/resolve.ts, run.ts).
import t from 'tap';
import { planLab } from '../../../../agent/lab/plan.ts';
import { clientPlace, resolveTarget, ResolveError } from '../../../../agent/lab/resolve.ts';
import { verdictOf } from '../../../../agent/lab/run.ts';
import { checkByName, SUITE } from '../../../../agent/connectivity/suite.ts';

const plan = planLab({ name: 'lab', nodes: 2, cgroup2: '/cg' });
const ips = { 'echo-a': '10.42.1.2', 'echo-b': '10.42.2.2' };
const c = (name: string) => checkByName(SUITE, name);

t.test('targets', async (t) => {
  t.match(resolveTarget(c('pod-to-a'), plan, ips), { host: '10.43.0.10', port: 8080, via: 'ClusterIP of echo-a' });
  t.match(resolveTarget(c('pod-to-b-multi-node-clusterip'), plan, ips), { host: '10.43.0.11', port: 8080 });
  t.match(resolveTarget(c('host-to-b-multi-node-clusterip'), plan, ips), { host: '10.43.0.11', port: 8080 });
  t.match(resolveTarget(c('pod-to-b-multi-node-headless'), plan, ips), { host: '10.42.2.2', port: 8080, via: /echo-b-headless/ });
  t.match(resolveTarget(c('host-to-b-multi-node-headless'), plan, ips), { host: '10.42.2.2' });
  t.match(resolveTarget(c('pod-to-b-multi-node-nodeport'), plan, ips), { host: '10.99.0.12', port: 31414, via: /node2.*NodePort of echo-b/ });
  t.match(resolveTarget(c('pod-to-b-intra-node-nodeport'), plan, ips), { host: '10.99.0.12', port: 31414 });
  t.match(resolveTarget(c('pod-to-b-multi-node-hostport'), plan, ips), { host: '10.99.0.12', port: 40080, via: /hostPort/ });
  t.match(resolveTarget(c('pod-to-external-1111'), plan, ips), { host: '1.1.1.1', port: 80 });
  t.throws(() => resolveTarget(c('pod-to-b-multi-node-headless'), plan, {}), ResolveError, 'a pod without an address yet');
});

t.test('client places: pods in their own namespace, hosts in the node\'s, both in the node cgroup', async (t) => {
  t.same(clientPlace(c('pod-to-a'), plan), { kind: 'pod', node: 'node1', netns: 'kllab-lab-pod-to-a', cgroup: '/cg/kinglet-lab-lab/node1', pod: 'pod-to-a' });
  t.same(clientPlace(c('host-to-b-multi-node-headless'), plan), { kind: 'host', node: 'node1', netns: 'kllab-lab-node1', cgroup: '/cg/kinglet-lab-lab/node1' });
  t.match(clientPlace(c('pod-to-b-intra-node-hostport'), plan), { node: 'node2', netns: 'kllab-lab-pod-to-b-intra-node-hostport' });
  const one = planLab({ name: 'lab', nodes: 1, cgroup2: '/cg' });
  t.throws(() => clientPlace(c('pod-to-b-multi-node-clusterip'), one), ResolveError);
});

t.test('verdicts', async (t) => {
  const ok = { ok: true, status: 200, body: 'kinglet echo-b 10.42.1.7\n', attempts: 1 };
  t.match(verdictOf(c('pod-to-b-multi-node-clusterip'), ok, 'T'), { verdict: 'PASS', reason: 'echo-b via T' });
  t.match(verdictOf(c('pod-to-a'), ok, 'T'), { verdict: 'FAIL', reason: /answered as echo-b, expected echo-a/ }, 'the wrong server is a failure');
  t.match(verdictOf(c('pod-to-a'), { ok: false, error: 'TIMEOUT', attempts: 3 }, 'T'), { verdict: 'FAIL', reason: 'T: timed out (3 attempts)' });
  t.match(verdictOf(c('pod-to-a'), { ok: false, error: 'ECONNREFUSED', attempts: 1 }, 'T'), { verdict: 'FAIL', reason: /ECONNREFUSED \(1 attempt\)/ });
  t.match(verdictOf(c('pod-to-a'), { ok: false, status: 500, body: '', attempts: 1 }, 'T'), { verdict: 'FAIL', reason: /HTTP 500/ });
  t.match(verdictOf(c('pod-to-a-denied-np'), { ok: false, error: 'TIMEOUT', attempts: 1 }, 'T'), { verdict: 'PASS' }, 'denied: no answer passes');
  t.match(verdictOf(c('pod-to-a-denied-np'), { ...ok, body: 'kinglet echo-a x' }, 'T'), { verdict: 'FAIL', reason: /although the policy denies it/ });
});
