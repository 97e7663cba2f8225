// A small world for agent tests: a client namespace (no default route) with
// veths to three backend namespaces running echo servers, a scratch bpffs, a
// test cgroup, and the `kinglet agent` process. Everything is removed in teardown.
import { execa } from 'execa';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { netns, scratchBpffs, start, testCgroup, veth, type Netns, type Teardownable } from './sandbox.ts';
import { waitFor } from './wait.ts';
import { apiRequest } from '../../agent/api/client.ts';
import type { ServiceEntry } from '../../agent/api/types.ts';

export const repo = fileURLToPath(new URL('../../', import.meta.url));
export const kinglet = join(repo, 'agent', 'cli', 'kinglet.ts');
export const peer = join(repo, 'test', 'lib', 'lb-peer.ts');
export const CLUSTER_IP = '10.96.0.10';

export interface Result { server?: string; error?: string; peer?: string }

export function service(name: string, clusterIP: string, affinity = false): Record<string, unknown> {
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

/** An EndpointSlice for `name` with backends 10.200.<i>.2 for each i. */
export function slice(name: string, backends: number[]): Record<string, unknown> {
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

export interface World {
  dir: string;
  bpfRoot: string;
  cgroup: string;
  sock: string;
  client: Netns;
  /** Replace the dir source's objects (write + rename: never half a file). */
  writeObjects(objs: object[]): Promise<void>;
  /** Start `kinglet agent` with the given source arguments (default: the dir source). */
  startAgent(sourceArgs?: string[]): ReturnType<typeof start>;
  /** Run the lb-peer client inside the client namespace and the test cgroup. */
  run(ops: object[], timeoutMs?: number): Promise<Result[][]>;
  /** Start the lb-peer client in the background. */
  startClient(ops: object[]): ReturnType<typeof start>;
}

export async function world(t: Teardownable): Promise<World> {
  await execa('make', ['-s', '-C', join(repo, 'bpf')]);
  const fs = await scratchBpffs(t);
  const bpfRoot = join(fs, 'kinglet');
  const cgroup = await testCgroup(t);
  const dir = await mkdtemp(join(tmpdir(), 'kl-agent-src-'));
  const runDir = await mkdtemp(join(tmpdir(), 'kl-agent-run-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  t.teardown(() => rm(runDir, { recursive: true, force: true }));
  const client = await netns(t, 'kl-agc');
  for (const i of [1, 2, 3]) {
    const b = await netns(t, `kl-agb${i}`);
    await veth(t, { ns: client, addr: `10.200.${i}.1/24` }, { ns: b, addr: `10.200.${i}.2/24` });
    const srv = start(t, [process.execPath, peer, 'server', `b${i}`, '8080', '5353'], { ns: b });
    await srv.waitForOutput((o) => o.includes('listening'));
  }
  const sock = join(runDir, 'agent.sock');
  const startClient = (ops: object[]) => start(t, [process.execPath, peer, 'client', JSON.stringify(ops)], { ns: client, cgroup });
  return {
    dir,
    bpfRoot,
    cgroup,
    sock,
    client,
    async writeObjects(objs) {
      const tmp = join(dir, '.objects.json.tmp');
      await writeFile(tmp, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objs }));
      await rename(tmp, join(dir, 'objects.json'));
    },
    startAgent(sourceArgs = ['--source', `dir:${dir}`]) {
      return start(t, [process.execPath, kinglet, 'agent', ...sourceArgs, '--bpf-root', bpfRoot, '--cgroup', cgroup, '--api-socket', sock, '--log-level', 'debug']);
    },
    startClient,
    async run(ops, timeoutMs = 60_000) {
      const p = startClient(ops);
      const out = await p.waitForOutput((o) => o.includes('\n'), timeoutMs);
      await p.proc;
      return JSON.parse(out.trim().split('\n').pop()!) as Result[][];
    },
  };
}

export const servers = (rs: Result[]): string[] => [...new Set(rs.map((r) => r.server ?? `error:${r.error}`))].sort();

/** Wait until the agent's programmed services satisfy `pred`. */
export async function programmed(sock: string, pred: (s: ServiceEntry[]) => boolean, timeoutMs = 15_000): Promise<void> {
  await waitFor(async () => {
    try {
      return pred(await apiRequest<ServiceEntry[]>(sock, 'GET', '/v1/services'));
    } catch {
      return false;
    }
  }, 'the agent to program the services', timeoutMs);
}
