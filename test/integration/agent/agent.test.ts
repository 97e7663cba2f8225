// The agent as users run it: `kinglet agent --source dir:<path>` programs the
// socket LB from Service + EndpointSlice YAML; a client in the agent's cgroup
// (inside a namespace with no default route) reaches the ClusterIP; backend
// changes are followed; a kill -9 and restart never fails a connect; and
// `--cleanup` leaves no pin and no attachment.
import t from 'tap';
import { execa } from 'execa';
import { readdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { netns, rootSkipReason, scratchBpffs, start, testCgroup, veth, type Netns, type Teardownable } from '../../lib/sandbox.ts';
import { waitFor } from '../../lib/wait.ts';
import { apiRequest } from '../../../agent/api/client.ts';
import type { AgentStatus, ServiceEntry } from '../../../agent/api/types.ts';

const skip = rootSkipReason();
const repo = fileURLToPath(new URL('../../../', import.meta.url));
const kinglet = join(repo, 'agent', 'cli', 'kinglet.ts');
const peer = join(repo, 'test', 'integration', 'bpf', 'lb-peer.ts');
const CLUSTER_IP = '10.96.0.10';

interface Result { server?: string; error?: string; peer?: string }

function service(name: string, clusterIP: string, affinity = false): object {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'default' },
    spec: {
      type: 'ClusterIP',
      clusterIP,
      clusterIPs: [clusterIP],
      ports: [
        { name: 'http', port: 80, protocol: 'TCP', targetPort: 'http' },
        { name: 'dns', port: 53, protocol: 'UDP', targetPort: 5353 },
      ],
      sessionAffinity: affinity ? 'ClientIP' : 'None',
    },
  };
}

function slice(name: string, backends: number[]): object {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `${name}-abcde`, namespace: 'default', labels: { 'kubernetes.io/service-name': name } },
    addressType: 'IPv4',
    ports: [
      { name: 'http', port: 8080, protocol: 'TCP' },
      { name: 'dns', port: 5353, protocol: 'UDP' },
    ],
    endpoints: backends.map((i) => ({ addresses: [`10.200.${i}.2`], conditions: { ready: true } })),
  };
}

interface World {
  dir: string;
  bpfRoot: string;
  cgroup: string;
  sock: string;
  client: Netns;
  writeObjects(objs: object[]): Promise<void>;
  startAgent(): ReturnType<typeof start>;
  run(ops: object[], timeoutMs?: number): Promise<Result[][]>;
}

async function world(t: Teardownable): Promise<World> {
  await execa('make', ['-s', '-C', join(repo, 'bpf')]);
  const fs = await scratchBpffs(t);
  const bpfRoot = join(fs, 'kinglet');
  const cgroup = await testCgroup(t);
  const dir = await mkdtemp(join(tmpdir(), 'kl-agent-src-'));
  const run = await mkdtemp(join(tmpdir(), 'kl-agent-run-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  t.teardown(() => rm(run, { recursive: true, force: true }));
  const client = await netns(t, 'kl-agc');
  for (const i of [1, 2, 3]) {
    const b = await netns(t, `kl-agb${i}`);
    await veth(t, { ns: client, addr: `10.200.${i}.1/24` }, { ns: b, addr: `10.200.${i}.2/24` });
    const srv = start(t, [process.execPath, peer, 'server', `b${i}`, '8080', '5353'], { ns: b });
    await srv.waitForOutput((o) => o.includes('listening'));
  }
  const sock = join(run, 'agent.sock');
  return {
    dir,
    bpfRoot,
    cgroup,
    sock,
    client,
    async writeObjects(objs) {
      // write + rename, as a careful writer does, so the agent never reads half a file
      const tmp = join(dir, '.objects.json.tmp');
      await writeFile(tmp, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objs }));
      await rename(tmp, join(dir, 'objects.json'));
    },
    startAgent() {
      return start(t, [process.execPath, kinglet, 'agent', '--source', `dir:${dir}`, '--bpf-root', bpfRoot, '--cgroup', cgroup, '--api-socket', sock, '--log-level', 'debug']);
    },
    async run(ops, timeoutMs = 60_000) {
      const p = start(t, [process.execPath, peer, 'client', JSON.stringify(ops)], { ns: client, cgroup });
      const out = await p.waitForOutput((o) => o.includes('\n'), timeoutMs);
      await p.proc;
      return JSON.parse(out.trim().split('\n').pop()!) as Result[][];
    },
  };
}

const servers = (rs: Result[]) => [...new Set(rs.map((r) => r.server ?? `error:${r.error}`))].sort();

async function programmed(sock: string, pred: (s: ServiceEntry[]) => boolean): Promise<void> {
  await waitFor(async () => {
    try {
      return pred(await apiRequest<ServiceEntry[]>(sock, 'GET', '/v1/services'));
    } catch {
      return false;
    }
  }, 'the agent to program the services', 15_000);
}

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
    const client = start(t, [process.execPath, peer, 'client', JSON.stringify([{ op: 'tcp', host: CLUSTER_IP, port: 80, n: N }])], { ns: w.client, cgroup: w.cgroup });
    let clientDone = false;
    void client.proc.then(() => (clientDone = true));
    await new Promise((r) => setTimeout(r, 150));
    await agent.stop('SIGKILL');
    agent = w.startAgent();
    const log = await agent.waitForOutput((o) => o.includes('"agent started"'), 15_000);
    t.notOk(clientDone, 'the client was still connecting across the kill and the restart');
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
