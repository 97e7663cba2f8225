// The suite definition and the selection rule shared by both runners.
import t from 'tap';
import { CAPABILITIES, checkByName, MISSING_REASON, selectChecks, skippedResults, SUITE, type Capability } from '../../../../agent/connectivity/suite.ts';

const EXPECTED: Record<string, { requires: Capability[]; client: string; placement: string; target: string; expect: string; singleNode: boolean }> = {
  'pod-to-a': { requires: [], client: 'pod', placement: 'any', target: 'service', expect: 'success', singleNode: true },
  'pod-to-external-1111': { requires: ['internet'], client: 'pod', placement: 'any', target: 'external', expect: 'success', singleNode: true },
  'pod-to-a-denied-np': { requires: ['networkpolicy'], client: 'pod', placement: 'any', target: 'service', expect: 'denied', singleNode: true },
  'pod-to-a-allowed-np': { requires: ['networkpolicy'], client: 'pod', placement: 'any', target: 'service', expect: 'success', singleNode: true },
  'pod-to-b-multi-node-clusterip': { requires: ['multi-node'], client: 'pod', placement: 'other-node', target: 'service', expect: 'success', singleNode: false },
  'pod-to-b-multi-node-headless': { requires: ['multi-node'], client: 'pod', placement: 'other-node', target: 'headless', expect: 'success', singleNode: false },
  'host-to-b-multi-node-clusterip': { requires: ['multi-node'], client: 'host', placement: 'other-node', target: 'service', expect: 'success', singleNode: false },
  'host-to-b-multi-node-headless': { requires: ['multi-node'], client: 'host', placement: 'other-node', target: 'headless', expect: 'success', singleNode: false },
  'pod-to-b-multi-node-nodeport': { requires: ['nodeport', 'multi-node'], client: 'pod', placement: 'other-node', target: 'nodeport', expect: 'success', singleNode: false },
  'pod-to-b-intra-node-nodeport': { requires: ['nodeport'], client: 'pod', placement: 'same-node', target: 'nodeport', expect: 'success', singleNode: true },
  'pod-to-b-multi-node-hostport': { requires: ['hostport', 'multi-node'], client: 'pod', placement: 'other-node', target: 'hostport', expect: 'success', singleNode: false },
  'pod-to-b-intra-node-hostport': { requires: ['hostport'], client: 'pod', placement: 'same-node', target: 'hostport', expect: 'success', singleNode: true },
};

t.test('every check of the suite, with its requirements and placement', async (t) => {
  t.same(SUITE.checks.map((c) => c.name), Object.keys(EXPECTED), 'the twelve checks, in order');
  for (const c of SUITE.checks) {
    const e = EXPECTED[c.name]!;
    t.same(c.requires, e.requires, `${c.name} requires`);
    t.same([c.client.kind, c.client.placement, c.target.kind, c.expect, c.singleNode], [e.client, e.placement, e.target, e.expect, e.singleNode], c.name);
    t.equal(c.singleNode, !c.requires.includes('multi-node'), `${c.name}: single-node subset is exactly the checks not needing two nodes`);
    t.ok(c.description.length > 10);
    if (c.target.kind !== 'external') t.ok(SUITE.servers.some((s) => s.name === c.server), `${c.name} names a known server`);
    if (c.client.placement !== 'any') t.ok(c.server, `${c.name}: placement is relative to a server`);
    if (c.requires.includes('networkpolicy')) t.equal(c.policy, c.name, `${c.name} has its own policy`);
    for (const r of c.requires) t.ok(CAPABILITIES.includes(r));
  }
  t.same(SUITE.servers.map((s) => s.name), ['echo-a', 'echo-b', 'echo-b-host']);
  const services = SUITE.servers.flatMap((s) => s.services.map((x) => `${x.name}:${x.type}`));
  t.same(services, ['echo-a:ClusterIP', 'echo-b:NodePort', 'echo-b-headless:headless', 'echo-b-host-headless:headless']);
  t.equal(SUITE.servers.find((s) => s.name === 'echo-b')!.hostPort, 40080);
  t.ok(SUITE.servers.find((s) => s.name === 'echo-b-host')!.hostNetwork);
  t.equal(checkByName(SUITE, 'pod-to-a').target.host, 'echo-a');
  t.throws(() => checkByName(SUITE, 'pod-to-z'), /no check named "pod-to-z"/);
});

const runs = (p: ReturnType<typeof selectChecks>) => p.checks.filter((x) => x.run).map((x) => x.check.name);
const reasons = (p: ReturnType<typeof selectChecks>) => Object.fromEntries(p.checks.flatMap((x) => (x.run ? [] : [[x.check.name, x.reason]])));

t.test('selectChecks: today (no NetworkPolicy, NodePort, HostPort), two nodes', async (t) => {
  const p = selectChecks(SUITE, { nodes: 2, capabilities: [] });
  t.equal(p.singleNode, false);
  t.same(p.capabilities, ['multi-node']);
  t.same(runs(p), ['pod-to-a', 'pod-to-b-multi-node-clusterip', 'pod-to-b-multi-node-headless', 'host-to-b-multi-node-clusterip', 'host-to-b-multi-node-headless']);
  const r = reasons(p);
  t.equal(r['pod-to-a-denied-np'], MISSING_REASON.networkpolicy);
  t.equal(r['pod-to-b-intra-node-nodeport'], MISSING_REASON.nodeport);
  t.equal(r['pod-to-b-multi-node-hostport'], MISSING_REASON.hostport);
  t.equal(r['pod-to-external-1111'], MISSING_REASON.internet);
  const skipped = skippedResults(p);
  t.equal(skipped.length, 7);
  t.ok(skipped.every((s) => s.verdict === 'SKIP' && s.durationMs === 0 && s.reason), 'skips carry a reason, never PASS');
});

t.test('selectChecks: one node is the single-node subset', async (t) => {
  const p = selectChecks(SUITE, { nodes: 1, capabilities: ['networkpolicy', 'nodeport', 'hostport', 'internet', 'multi-node'] });
  t.equal(p.singleNode, true);
  t.notOk(p.capabilities.includes('multi-node'), 'multi-node comes from the node count, not from the caller');
  t.same(runs(p), SUITE.checks.filter((c) => c.singleNode).map((c) => c.name));
  t.equal(reasons(p)['pod-to-b-multi-node-clusterip'], 'needs a second node (the cluster has 1)');
  const zero = selectChecks(SUITE, { nodes: 0, capabilities: [] });
  t.equal(reasons(zero)['host-to-b-multi-node-headless'], 'needs a second node (the cluster has 0)');
});

t.test('selectChecks: forced single-node, all capabilities, several reasons, overrides, only', async (t) => {
  const forced = selectChecks(SUITE, { nodes: 3, capabilities: [], singleNode: true });
  t.equal(forced.singleNode, true);
  t.equal(reasons(forced)['pod-to-b-multi-node-headless'], 'single-node subset requested (--single-node)');
  t.equal(reasons(forced)['pod-to-b-multi-node-nodeport'], `${MISSING_REASON.nodeport}; single-node subset requested (--single-node)`, 'every missing requirement is named');

  const all = selectChecks(SUITE, { nodes: 2, capabilities: new Set<Capability>(['networkpolicy', 'nodeport', 'hostport', 'internet']) });
  t.equal(runs(all).length, 12, 'everything runs when everything is there');
  t.same(all.capabilities, [...CAPABILITIES]);

  const why = selectChecks(SUITE, { nodes: 2, capabilities: [], why: { nodeport: 'agent unreachable' } });
  t.equal(reasons(why)['pod-to-b-intra-node-nodeport'], 'agent unreachable');
  t.equal(reasons(why)['pod-to-b-intra-node-hostport'], MISSING_REASON.hostport);

  const only = selectChecks(SUITE, { nodes: 2, capabilities: [], only: ['pod-to-a', 'pod-to-a-denied-np'] });
  t.same(runs(only), ['pod-to-a']);
  t.equal(reasons(only)['pod-to-b-multi-node-clusterip'], 'not selected');
  t.equal(reasons(only)['pod-to-a-denied-np'], MISSING_REASON.networkpolicy);
});
