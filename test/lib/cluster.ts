// A simulated kinglet cluster on one machine, for integration tests and the
// lab: nodes are network namespaces on a shared L2 (a bridge in a namespace
// of its own), each with its own `kinglet agent` (dir source, scratch bpffs
// directory, cgroup, state dir, API socket); pods are namespaces wired by
// the real kinglet-cni run inside their node's namespace (as installed: the
// native shim, forwarding to the node's agent, the Node plugin beside it as
// the fallback; test/lib/cni-bin.ts). Nothing has a
// route out of the machine: the underlay is 10.99.0.0/24 on the bridge, and
// "external" hosts are namespaces on that bridge without any route to the
// cluster. Everything is removed in the test's teardown (also on failure).
//
// API (everything is async unless noted):
//   const c = await cluster(t, { clusterCidr?, serviceCidr? })
//   const n1 = await c.makeNode('n1', { podCIDR: '10.42.1.0/24', socketLb?, redirect?, agentArgs? })
//       -> Node { name, ns, ip (underlay address), sock, bpfRoot, cgroup, stateDir, agent }
//   const p = await c.addPod(n1, 'client')      -> Pod { name, node, ns, ip, containerId, hostIfname }
//   await c.exec(p, ['ip', 'addr'], { cgroup?: true })   -> stdout (cgroup: inside the node's socket-LB cgroup)
//   c.spawn(p, argv, { cgroup? })               -> Started (long-running; killed in teardown)
//   await c.echoServer(p | ext, name, port?)    -> starts test/lib/echo-peer.ts server, resolves when listening
//   await c.echo(p, ops, { cgroup? })           -> echo-peer client answers (see echo-peer.ts)
//   const x = await c.external('ext')           -> External { name, ns, ip }: beyond the nodes, no route to pods
//   await c.writeObjects([...services, slices]) -> the dir source (Node objects are added by the harness)
//   await c.removePod(p)                        -> CNI DEL (twice, as containerd does)
//   await c.restartAgent(n1, { kill?, socketLb?, redirect? })
//   await c.api(n1, method, path, body?)        -> the agent's local API
//   await c.waitReady(n1)                       -> the agent answers and has synced
// Requires root (see test/lib/sandbox.ts rootSkipReason).
import { execa } from 'execa';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { netns, scratchBpffs, start, testCgroup, uniqueName, type Netns, type Started, type Teardownable } from './sandbox.ts';
import { waitFor } from './wait.ts';
import { installCniBin } from './cni-bin.ts';
import { apiRequest } from '../../agent/api/client.ts';
import type { AgentStatus } from '../../agent/api/types.ts';

export const repo = fileURLToPath(new URL('../../', import.meta.url));
export const kinglet = join(repo, 'agent', 'cli', 'kinglet.ts');
export const echoPeer = join(repo, 'test', 'lib', 'echo-peer.ts');

export const UNDERLAY = '10.99.0';
const BRIDGE = 'br0';

export interface NodeOptions {
  /** The node's pod range (spec.podCIDR). */
  podCIDR: string;
  /** Attach the socket LB to the node's cgroup (default true). */
  socketLb?: boolean;
  /** Local pod delivery: peer, neigh, stack (default: auto, the kernel's best). */
  redirect?: 'peer' | 'neigh' | 'stack' | 'auto';
  /** More `kinglet agent` arguments. */
  agentArgs?: string[];
}

export interface Node {
  name: string;
  ns: Netns;
  /** Underlay address (InternalIP, and the masquerade address). */
  ip: string;
  podCIDR: string;
  sock: string;
  bpfRoot: string;
  cgroup: string;
  stateDir: string;
  cniDataDir: string;
  opts: NodeOptions;
  agent: Started;
}

export interface Pod {
  name: string;
  node: Node;
  ns: Netns;
  ip: string;
  containerId: string;
  hostIfname: string;
}

export interface External {
  name: string;
  ns: Netns;
  ip: string;
}

export interface EchoAnswer { server?: string; peer?: string; remote?: string; error?: string; at?: number }

export interface Cluster {
  clusterCidr: string;
  nodes: Node[];
  makeNode(name: string, opts: NodeOptions): Promise<Node>;
  addPod(node: Node, name: string): Promise<Pod>;
  removePod(pod: Pod): Promise<void>;
  exec(target: Pod | External, argv: string[], opts?: { cgroup?: boolean; reject?: boolean }): Promise<string>;
  spawn(target: Pod | External, argv: string[], opts?: { cgroup?: boolean }): Started;
  echoServer(target: Pod | External, name: string, port?: number): Promise<Started>;
  echo(from: Pod, ops: { op: 'tcp' | 'udp'; host: string; port: number; n: number }[], opts?: { cgroup?: boolean }): Promise<EchoAnswer[][]>;
  external(name: string): Promise<External>;
  writeObjects(objs: object[]): Promise<void>;
  restartAgent(node: Node, opts?: { kill?: boolean } & Partial<Pick<NodeOptions, 'socketLb' | 'redirect' | 'agentArgs'>>): Promise<void>;
  api<T>(node: Node, method: string, path: string, body?: unknown): Promise<T>;
  waitReady(node: Node): Promise<AgentStatus>;
  cni(node: Node, command: string, env: { containerId: string; netns?: string; ifname?: string }, opts?: CniCallOptions): Promise<{ exitCode: number; stdout: string; stderr: string }>;
  /** The CNI bin directory (installed layout: the shim and kinglet-cni-node). */
  cniBinDir: string;
}

export interface CniCallOptions {
  /** Another plugin executable (default: the cluster's installed kinglet-cni shim). */
  bin?: string;
  /** Netconf fields over the default (agentSocket and dataDir of the node). */
  conf?: Record<string, unknown>;
  /** Raw stdin instead of the netconf. */
  stdin?: string;
}

export async function cluster(t: Teardownable, opts: { clusterCidr?: string } = {}): Promise<Cluster> {
  await execa('make', ['-s', '-C', join(repo, 'bpf')]);
  const clusterCidr = opts.clusterCidr ?? '10.42.0.0/16';
  const fs = await scratchBpffs(t);
  const work = await mkdtemp(join(tmpdir(), 'kl-cluster-'));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  const cniBinDir = join(work, 'cni-bin');
  const cniBin = await installCniBin(cniBinDir);
  const srcDir = join(work, 'objects');
  await execa('mkdir', ['-p', srcDir]);
  const ul = await netns(t, 'kl-ul');
  await execa('ip', ['-n', ul.name, 'link', 'add', BRIDGE, 'type', 'bridge']);
  await execa('ip', ['-n', ul.name, 'link', 'set', BRIDGE, 'up']);
  let hostNo = 10;
  const nodes: Node[] = [];
  let userObjects: object[] = [];

  /** A veth from `ns` (named eth0 there, with addr) to the bridge. */
  const plug = async (ns: Netns, addr: string) => {
    const port = uniqueName('ul', 15);
    await execa('ip', ['link', 'add', port, 'netns', ul.name, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.name]);
    await execa('ip', ['-n', ul.name, 'link', 'set', port, 'master', BRIDGE, 'up']);
    await execa('ip', ['-n', ns.name, 'addr', 'add', `${addr}/24`, 'dev', 'eth0']);
    await execa('ip', ['-n', ns.name, 'link', 'set', 'eth0', 'up']);
  };

  const writeAll = async () => {
    const nodeObjs = nodes.map((n) => ({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: n.name },
      spec: { podCIDR: n.podCIDR, podCIDRs: [n.podCIDR] },
      status: { addresses: [{ type: 'InternalIP', address: n.ip }, { type: 'Hostname', address: n.name }] },
    }));
    const tmp = join(srcDir, '.objects.json.tmp');
    await writeFile(tmp, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [...nodeObjs, ...userObjects] }));
    await rename(tmp, join(srcDir, 'objects.json'));
  };

  const agentArgv = (n: Node): string[] => {
    const o = n.opts;
    return [
      'nsenter', `--net=/run/netns/${n.ns.name}`,
      process.execPath, kinglet, 'agent',
      '--source', `dir:${srcDir}`, '--node-name', n.name,
      '--bpf-root', n.bpfRoot, '--cgroup', n.cgroup, '--api-socket', n.sock, '--state-dir', n.stateDir,
      '--native-device', 'eth0', '--cluster-cidr', clusterCidr,
      `--socket-lb=${o.socketLb ?? true}`, '--pod-redirect', o.redirect ?? 'auto',
      '--log-level', 'debug', '--resync', '5',
      ...(o.agentArgs ?? []),
    ];
  };

  const api = <T>(n: Node, method: string, path: string, body?: unknown) => apiRequest<T>(n.sock, method, path, body);

  const waitReady = async (n: Node): Promise<AgentStatus> => {
    let st: AgentStatus | undefined;
    await waitFor(async () => {
      try {
        st = await api<AgentStatus>(n, 'GET', '/v1/status');
        return st.source.synced && st.services.lastApply !== undefined && st.podNetwork?.masquerade.podCIDR !== undefined;
      } catch {
        return false;
      }
    }, `the agent of ${n.name} to be ready`, 20_000);
    return st!;
  };

  const nsPath = (x: { ns: Netns }) => `/run/netns/${x.ns.name}`;

  const cmdIn = (x: Pod | External, argv: string[], cgroup: boolean): string[] => {
    let cmd = ['nsenter', `--net=${nsPath(x)}`, ...argv];
    if (cgroup) {
      if (!('node' in x)) throw new Error('only pods run in a node cgroup');
      cmd = ['sh', '-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', x.node.cgroup, ...cmd];
    }
    return cmd;
  };

  const cni = async (n: Node, command: string, env: { containerId: string; netns?: string; ifname?: string }, o: CniCallOptions = {}) => {
    const conf = { cniVersion: '1.0.0', name: 'kinglet', type: 'kinglet-cni', agentSocket: n.sock, dataDir: n.cniDataDir, ...o.conf };
    const r = await execa('nsenter', [`--net=/run/netns/${n.ns.name}`, o.bin ?? cniBin], {
      input: o.stdin ?? JSON.stringify(conf),
      extendEnv: false,
      env: {
        PATH: `${join(process.execPath, '..')}:/usr/sbin:/usr/bin:/sbin:/bin`,
        CNI_COMMAND: command,
        CNI_CONTAINERID: env.containerId,
        CNI_NETNS: env.netns ?? '',
        CNI_IFNAME: env.ifname ?? 'eth0',
        CNI_PATH: '/opt/cni/bin',
        CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=p',
      },
      reject: false,
    });
    return { exitCode: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
  };

  const c: Cluster = {
    clusterCidr,
    nodes,
    async makeNode(name, o) {
      const ns = await netns(t, `kl-${name}`);
      const ip = `${UNDERLAY}.${hostNo++}`;
      await plug(ns, ip);
      const dir = join(work, name);
      const n: Node = {
        name,
        ns,
        ip,
        podCIDR: o.podCIDR,
        sock: join(dir, 'agent.sock'),
        bpfRoot: join(fs, name),
        cgroup: await testCgroup(t, `kinglet-${name}`),
        stateDir: join(dir, 'state'),
        cniDataDir: join(dir, 'cni'),
        opts: { ...o },
        agent: undefined as unknown as Started,
      };
      nodes.push(n);
      await writeAll();
      n.agent = start(t, agentArgv(n));
      await waitReady(n);
      return n;
    },
    async addPod(n, name) {
      const ns = await netns(t, `kl-p${name}`);
      const containerId = `${n.name}-${name}-${randomBytes(4).toString('hex')}`;
      const r = await cni(n, 'ADD', { containerId, netns: `/run/netns/${ns.name}` });
      if (r.exitCode !== 0) throw new Error(`CNI ADD of ${name} on ${n.name} failed: ${r.stdout} ${r.stderr}`);
      const res = JSON.parse(r.stdout) as { ips: { address: string }[]; interfaces: { name: string }[] };
      return { name, node: n, ns, ip: res.ips[0]!.address.split('/')[0]!, containerId, hostIfname: res.interfaces[0]!.name };
    },
    async removePod(p) {
      for (let i = 0; i < 2; i++) {
        const r = await cni(p.node, 'DEL', { containerId: p.containerId, netns: i === 0 ? nsPath(p) : '' });
        if (r.exitCode !== 0) throw new Error(`CNI DEL of ${p.name} failed: ${r.stdout} ${r.stderr}`);
      }
    },
    async exec(x, argv, o = {}) {
      const cmd = cmdIn(x, argv, o.cgroup ?? false);
      const r = await execa(cmd[0]!, cmd.slice(1), { reject: o.reject ?? true });
      return r.stdout;
    },
    spawn(x, argv, o = {}) {
      return start(t, cmdIn(x, argv, o.cgroup ?? false));
    },
    async echoServer(x, name, port = 8080) {
      const s = c.spawn(x, [process.execPath, echoPeer, 'server', name, String(port)]);
      await s.waitForOutput((out) => out.includes('listening'));
      return s;
    },
    async echo(from, ops, o = {}) {
      const out = await c.exec(from, [process.execPath, echoPeer, 'client', JSON.stringify(ops)], o);
      return JSON.parse(out.trim().split('\n').pop()!) as EchoAnswer[][];
    },
    async external(name) {
      const ns = await netns(t, `kl-x${name}`);
      const ip = `${UNDERLAY}.${200 + (hostNo % 50)}`;
      hostNo++;
      await plug(ns, ip);
      return { name, ns, ip };
    },
    async writeObjects(objs) {
      userObjects = objs;
      await writeAll();
    },
    async restartAgent(n, o = {}) {
      await n.agent.stop(o.kill ? 'SIGKILL' : 'SIGTERM');
      if (o.socketLb !== undefined) n.opts.socketLb = o.socketLb;
      if (o.redirect !== undefined) n.opts.redirect = o.redirect;
      if (o.agentArgs !== undefined) n.opts.agentArgs = o.agentArgs;
      n.agent = start(t, agentArgv(n));
      await n.agent.waitForOutput((out) => out.includes('"agent started"'), 20_000);
      await waitReady(n);
    },
    api,
    waitReady,
    cni,
    cniBinDir,
  };
  return c;
}

/** A ClusterIP Service `name` on TCP+UDP port 80 -> targetPort 8080. */
export function clusterIpService(name: string, clusterIP: string): object {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'default' },
    spec: {
      type: 'ClusterIP', clusterIP, clusterIPs: [clusterIP],
      ports: [{ name: 'tcp', port: 80, protocol: 'TCP', targetPort: 8080 }, { name: 'udp', port: 80, protocol: 'UDP', targetPort: 8080 }],
    },
  };
}

/** An EndpointSlice for `name` with the given pod addresses (ready). */
export function endpointSlice(name: string, addresses: string[]): object {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `${name}-x1`, namespace: 'default', labels: { 'kubernetes.io/service-name': name } },
    addressType: 'IPv4',
    ports: [{ name: 'tcp', port: 8080, protocol: 'TCP' }, { name: 'udp', port: 8080, protocol: 'UDP' }],
    endpoints: addresses.map((a) => ({ addresses: [a], conditions: { ready: true } })),
  };
}
