// The agent on a (stand-in) cluster: `kinglet agent --source kube` against the
// fake API server over TLS with a client certificate. Initial sync programs
// the datapath; watch events converge it; a malformed object is skipped; and
// an agent killed and restarted while the API server is down keeps serving
// from the pins, deletes nothing, reports itself unhealthy, and converges when
// the API server returns.
import t from 'tap';
import { execa } from 'execa';
import { rootSkipReason } from '../../lib/sandbox.ts';
import { waitFor } from '../../lib/wait.ts';
import { FakeApiServer } from '../../lib/fake-apiserver.ts';
import { CLUSTER_IP, kinglet, programmed, servers, service, slice, world, type Result } from '../../lib/agent-world.ts';
import { apiRequest } from '../../../agent/api/client.ts';
import type { AgentStatus } from '../../../agent/api/types.ts';

const skip = rootSkipReason();

t.test('kinglet agent --source kube against the stand-in API server', { skip }, async (t) => {
  const w = await world(t);
  const api = await FakeApiServer.create();
  t.teardown(() => api.close());
  api.add(service('echo', CLUSTER_IP));
  api.add(slice('echo', [1, 2, 3]));
  api.add({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a' }, spec: { podCIDR: '10.42.0.0/24', podCIDRs: ['10.42.0.0/24'] }, status: { addresses: [{ type: 'InternalIP', address: '192.0.2.10' }] } });
  const kubeconfig = await api.writeKubeconfig({ auth: 'cert' });
  const args = ['--source', 'kube', '--kubeconfig', kubeconfig, '--node-name', 'node-a'];
  let agent = w.startAgent(args);
  await programmed(w.sock, (s) => s.length === 2 && s.every((e) => e.backends.length === 3));

  await t.test('initial list programs the datapath; status is healthy', async (t) => {
    const [tcp] = await w.run([{ op: 'tcp', host: CLUSTER_IP, port: 80, n: 30 }]);
    t.same(servers(tcp!), ['b1', 'b2', 'b3']);
    const r = await execa(process.execPath, [kinglet, 'status', '--api-socket', w.sock], { reject: false });
    t.equal(r.exitCode, 0, 'kinglet status exits 0');
    t.match(r.stdout, /^Kubernetes:\s+OK\s+https:\/\/127\.0\.0\.1:\d+/m);
    t.match(r.stdout, /^IPAM:\s+10\.42\.0\.0\/24/m, 'the node podCIDR from the Node object');
    t.match(r.stdout, /^Services:\s+2 frontends, 6 backends/m, 'three pods x two ports');
  });

  await t.test('watch events converge; a malformed object is skipped and counted', async (t) => {
    api.add({ apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'default' }, spec: 'garbage' }, 'services');
    api.update(slice('echo', [3]));
    await programmed(w.sock, (s) => s.every((e) => e.backends.length === 1));
    const [tcp] = await w.run([{ op: 'tcp', host: CLUSTER_IP, port: 80, n: 10 }]);
    t.same(servers(tcp!), ['b3']);
    const st = await apiRequest<AgentStatus>(w.sock, 'GET', '/v1/status');
    t.ok(st.source.malformed >= 1, `malformed counted (${st.source.malformed})`);
    api.update(slice('echo', [1, 2, 3]));
    await programmed(w.sock, (s) => s.every((e) => e.backends.length === 3));
  });

  await t.test('agent kill -9 + restart while the API server is down: no failed connect, nothing deleted', async (t) => {
    await api.stop();
    const N = 3000;
    // The client starts while no agent runs at all, and goes on across the restart.
    await agent.stop('SIGKILL');
    const client = w.startClient([{ op: 'tcp', host: CLUSTER_IP, port: 80, n: N }]);
    agent = w.startAgent(args);
    await agent.waitForOutput((o) => o.includes('"agent started"'), 15_000);
    const r = await execa(process.execPath, [kinglet, 'status', '--api-socket', w.sock], { reject: false });
    t.equal(r.exitCode, 1, 'kinglet status exits 1 while the source has not synced');
    t.match(r.stdout, /has not completed its first full list/);
    const out = await client.waitForOutput((o) => o.includes('\n'), 120_000);
    const [tcp] = JSON.parse(out.trim().split('\n').pop()!) as Result[][];
    t.equal(tcp!.length, N);
    t.equal(tcp!.filter((x) => !x.server).length, 0, 'every connect succeeded from the pinned datapath');
    t.same(servers(tcp!), ['b1', 'b2', 'b3']);

    // The API server comes back with a change made meanwhile: the agent converges.
    api.update(slice('echo', [2]));
    await api.start();
    await programmed(w.sock, (s) => s.every((e) => e.backends.length === 1), 30_000);
    await waitFor(async () => (await apiRequest<AgentStatus>(w.sock, 'GET', '/v1/status')).healthy, 'healthy again', 30_000);
    const [after] = await w.run([{ op: 'tcp', host: CLUSTER_IP, port: 80, n: 10 }]);
    t.same(servers(after!), ['b2']);
  });
  await agent.stop('SIGTERM');
});
