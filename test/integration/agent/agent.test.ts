// The agent as users run it: `kinglet agent --source dir:<path>` programs the
// socket LB from Service + EndpointSlice YAML; a client in the agent's cgroup
// (inside a namespace with no default route) reaches the ClusterIP; backend
// changes are followed; a kill -9 and restart never fails a connect; and
// `--cleanup` leaves no pin and no attachment.
import t from 'tap';
import { execa } from 'execa';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { BpfMap } from '../../../agent/datapath/libbpf.ts';
import { mapsDir } from '../../../agent/datapath/loader.ts';
import { LB4_BE_MAP } from '../../../agent/datapath/lb-layout.ts';
import { rootSkipReason } from '../../lib/sandbox.ts';
import { kernelMap } from '../../lib/kernel-map.ts';
import { waitFor } from '../../lib/wait.ts';
import { CLUSTER_IP, kinglet, programmed, servers, service, slice, world, type Result } from '../../lib/agent-world.ts';
import { apiRequest } from '../../../agent/api/client.ts';
import type { AgentStatus, ServiceEntry } from '../../../agent/api/types.ts';

const skip = rootSkipReason();

t.test('kinglet agent with a dir source: ClusterIP, backend changes, restart, cleanup', { skip }, async (t) => {
  const w = await world(t);
  await w.writeObjects([service('echo', CLUSTER_IP), slice('echo', [1, 2, 3])]);
  let agent = w.startAgent();
  await programmed(w.sock, (s) => s.length === 2 && s.every((e) => e.backends.length === 3));

  await t.test('TCP and UDP to the ClusterIP reach every backend', async (t) => {
    const [tcp, udp] = await w.run([
      { op: 'tcp', host: CLUSTER_IP, port: 80, n: 40 },
      { op: 'udp', host: CLUSTER_IP, port: 53, n: 40 },
    ]);
    t.same(servers(tcp!), ['b1', 'b2', 'b3'], 'TCP spread over the three backends');
    t.same(servers(udp!), ['b1', 'b2', 'b3'], 'UDP spread over the three backends');
  });

  await t.test('service list shows what is programmed', async (t) => {
    const r = await execa(process.execPath, [kinglet, 'service', 'list', '--api-socket', w.sock, '--json']);
    const list = JSON.parse(r.stdout) as ServiceEntry[];
    const http = list.find((s) => s.protocol === 'TCP')!;
    t.match(http, { service: 'default/echo', address: CLUSTER_IP, port: 80, type: 'ClusterIP' });
    t.same(http.backends.map((b) => `${b.address}:${b.port}`).sort(), ['10.200.1.2:8080', '10.200.2.2:8080', '10.200.3.2:8080']);
    const human = await execa(process.execPath, [kinglet, 'service', 'list', '--api-socket', w.sock]);
    t.match(human.stdout, /10\.96\.0\.10:80\/TCP\s+ClusterIP/);
  });

  await t.test('a backend change is followed within a second', async (t) => {
    const t0 = Date.now();
    await w.writeObjects([service('echo', CLUSTER_IP), slice('echo', [2])]);
    await programmed(w.sock, (s) => s.every((e) => e.backends.length === 1));
    const took = Date.now() - t0;
    t.ok(took < 1000, `programmed in ${took} ms`);
    const [tcp] = await w.run([{ op: 'tcp', host: CLUSTER_IP, port: 80, n: 10 }]);
    t.same(servers(tcp!), ['b2']);
  });

  await t.test('no ready backend: connections are refused', async (t) => {
    await w.writeObjects([service('echo', CLUSTER_IP), slice('echo', [])]);
    await programmed(w.sock, (s) => s.every((e) => e.backends.length === 0));
    const [tcp] = await w.run([{ op: 'tcp', host: CLUSTER_IP, port: 80, n: 1 }]);
    t.match(tcp![0]!.error, /ECONNREFUSED|EPERM/, `refused (${tcp![0]!.error})`);
  });

  await t.test('kill -9 and restart the agent while a client connects: no connect fails', async (t) => {
    await w.writeObjects([service('echo', CLUSTER_IP), slice('echo', [1, 2, 3])]);
    await programmed(w.sock, (s) => s.every((e) => e.backends.length === 3));
    const N = 4000;
    // The client starts while no agent runs at all, and goes on across the restart.
    await agent.stop('SIGKILL');
    const client = w.startClient([{ op: 'tcp', host: CLUSTER_IP, port: 80, n: N }]);
    agent = w.startAgent();
    const log = await agent.waitForOutput((o) => o.includes('"agent started"'), 15_000);
    const out = await client.waitForOutput((o) => o.includes('\n'), 120_000);
    const [tcp] = JSON.parse(out.trim().split('\n').pop()!) as Result[][];
    const failed = tcp!.filter((r) => !r.server);
    t.equal(tcp!.length, N);
    t.equal(failed.length, 0, `failed connects: ${JSON.stringify(failed.slice(0, 3))}`);
    t.equal(log.match(/"msg":"program adopted"/g)?.length, 8, 'the restart adopted all eight pinned links');
    let st = await apiRequest<AgentStatus>(w.sock, 'GET', '/v1/status');
    await waitFor(async () => (st = await apiRequest<AgentStatus>(w.sock, 'GET', '/v1/status')).services.lastApply, 'first reconcile');
    const la = st.services.lastApply!;
    t.same([la.added, la.updated, la.deleted], [0, 0, 0], 'the first reconcile after the restart wrote nothing: the pins were already right');
    t.equal(st.healthy, true);
    t.equal(st.datapath.programs.length, 8, 'eight socket programs attached');
  });

  await t.test('the periodic check repairs an entry deleted behind the agent and reports it', async (t) => {
    await agent.stop('SIGTERM');
    agent = w.startAgent(['--source', `dir:${w.dir}`, '--resync', '1']);
    await agent.waitForOutput((o) => o.includes('"agent started"'), 15_000);
    const pinned = BpfMap.open(join(mapsDir(w.bpfRoot), LB4_BE_MAP));
    t.teardown(() => pinned.close());
    const be = kernelMap(pinned.fd);
    const [key, value] = [...be.entries()][0]!;
    const before = Buffer.from(value);
    be.delete(key); // an array map: kernelMap writes zeros, which are no entry
    const log = await agent.waitForOutput((o) => o.includes('datapath drift repaired'), 10_000);
    t.match(log, /"msg":"datapath drift repaired[^\n]*"added":1,"updated":0,"deleted":0/, 'logged with the counts');
    t.same(be.get(key), before, 'the backend entry is back');
    const st = await apiRequest<AgentStatus>(w.sock, 'GET', '/v1/status');
    t.match(st.services.lastResync, { mode: 'drift' }, 'the status shows the last check');
    t.ok(st.services.lastResync!.scanned > 0);
    const [tcp] = await w.run([{ op: 'tcp', host: CLUSTER_IP, port: 80, n: 20 }]);
    t.same(servers(tcp!), ['b1', 'b2', 'b3'], 'traffic reaches every backend');
  });

  await t.test('--cleanup removes every pin and attachment', async (t) => {
    await agent.stop('SIGTERM');
    const r = await execa(process.execPath, [kinglet, 'agent', '--cleanup', '--bpf-root', w.bpfRoot, '--json']);
    const report = JSON.parse(r.stdout) as { links: string[]; maps: string[]; errors: string[] };
    t.equal(report.links.length, 8);
    t.ok(report.maps.length >= 9, `${report.maps.length} maps unpinned`);
    t.same(report.errors, []);
    t.rejects(readdir(w.bpfRoot), 'bpf root removed');
    const show = await execa('bpftool', ['cgroup', 'show', w.cgroup, '-j']);
    t.same(JSON.parse(show.stdout || '[]'), [], 'nothing attached to the cgroup');
    const [tcp] = await w.run([{ op: 'tcp', host: CLUSTER_IP, port: 80, n: 1 }]);
    t.ok(tcp![0]!.error, `without the datapath the ClusterIP fails closed (${tcp![0]!.error})`);
  });
});
