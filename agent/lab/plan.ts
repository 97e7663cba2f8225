// What `kinglet lab up` creates, as data: names, addresses, placements and
// the Kubernetes objects the agents read. Pure (no I/O), so the whole layout
// can be checked without root.
//
// Layout of a lab named <name> with N nodes:
// - <root>/<name>/                 the lab's directory (state.json, logs, per-node dirs)
// - <root>/<name>/bpffs            a bpffs of the lab's own; node<i> pins under bpffs/node<i>
// - <cgroup2>/kinglet-lab-<name>/  cgroups of the lab's own: node<i> (socket LB; pods and
//                                  host processes of that node run there) and system
//                                  (agents, the external host's server)
// - network namespaces kllab-<name>-*: ul (a bridge, the underlay 10.99.0.0/24),
//   node<i> (eth0 on the bridge, 10.99.0.<10+i>), ext (an external host on the
//   bridge, no route to the pods) and one per pod. None of them has a default
//   route: nothing leaves the machine.
import { stringify } from 'yaml';
import { SUITE, type CheckDef, type Suite } from '../connectivity/suite.ts';

export const LAB_ROOT = '/run/kinglet-lab';
export const DEFAULT_LAB_NAME = 'lab';

/** The `--name` a command about lab `name` needs (none for the default lab), for advice like `kinglet lab down${nameFlag(n)}`. */
export function nameFlag(name: string): string {
  return name === DEFAULT_LAB_NAME ? '' : ` --name ${name}`;
}
export const MAX_NODES = 8;
export const UNDERLAY_PREFIX = '10.99.0';
export const CLUSTER_CIDR = '10.42.0.0/16';
export const SERVICE_CIDR = '10.43.0.0/16';
export const LAB_NAMESPACE = 'kinglet-lab';
export const BRIDGE = 'br0';
/** The external host's echo server (not part of the suite: for trying masquerade by hand). */
export const EXTERNAL_PORT = 8080;

export interface NodePlan {
  name: string;
  netns: string;
  /** Underlay address (InternalIP; masquerade address). */
  ip: string;
  podCIDR: string;
  /** This node's port on the underlay bridge (inside the ul namespace). */
  ulPort: string;
  /** The node's cgroup (socket LB attach point), absolute. */
  cgroup: string;
  /** The agent's directory of manifests. */
  objectsDir: string;
  bpfRoot: string;
  stateDir: string;
  cniDataDir: string;
  sock: string;
  log: string;
}

export interface PodPlan {
  name: string;
  node: string;
  netns: string;
  role: 'server' | 'client';
  /** server: the suite server it runs. */
  server?: string;
  /** client: the check it is the client of. */
  check?: string;
  labels: Record<string, string>;
}

export interface ServerPlan {
  /** Suite server name. */
  name: string;
  node: string;
  port: number;
  hostNetwork: boolean;
  /** Pod name (pod servers). */
  pod?: string;
  log: string;
}

export interface LabPlan {
  name: string;
  dir: string;
  stateFile: string;
  bpffs: string;
  /** The lab's own cgroup directory (absolute); node and system cgroups are below it. */
  cgroup: string;
  /** Agents and the external host's server run here. */
  systemCgroup: string;
  prefix: string;
  underlay: { netns: string; bridge: string; cidr: string };
  clusterCidr: string;
  namespace: string;
  nodes: NodePlan[];
  pods: PodPlan[];
  servers: ServerPlan[];
  external: { name: string; netns: string; ip: string; ulPort: string; port: number; log: string };
  /** Service name -> ClusterIP (headless Services are absent). */
  serviceIPs: Record<string, string>;
}

export interface PlanOptions {
  name: string;
  nodes: number;
  /** Where lab directories live (default LAB_ROOT). */
  root?: string;
  /** Where cgroup2 is mounted. */
  cgroup2: string;
  suite?: Suite;
}

const NAME_RE = /^[a-z][a-z0-9-]{0,15}$/;

/** Why a lab name cannot be used, or undefined. */
export function labNameProblem(name: string): string | undefined {
  if (!NAME_RE.test(name) || name.endsWith('-')) {
    return `--name ${JSON.stringify(name)}: use 1-16 lower-case letters, digits and dashes, starting with a letter`;
  }
  return undefined;
}

export function labDir(name: string, root = LAB_ROOT): string {
  return `${root}/${name}`;
}

export function nsPrefix(name: string): string {
  return `kllab-${name}-`;
}

export function labCgroup(cgroup2: string, name: string): string {
  return `${cgroup2}/kinglet-lab-${name}`;
}

/** The node a pod server runs on: pod servers round-robin over the nodes (echo-a on node1, echo-b on node2). */
function placeServers(suite: Suite, nodes: string[]): Map<string, string> {
  const at = new Map<string, string>();
  let i = 0;
  for (const s of suite.servers) {
    if (s.colocatedWith) continue;
    at.set(s.name, nodes[i % nodes.length]!);
    i++;
  }
  for (const s of suite.servers) {
    if (!s.colocatedWith) continue;
    const with_ = at.get(s.colocatedWith);
    if (!with_) throw new Error(`server ${s.name} follows unknown server ${s.colocatedWith}`);
    at.set(s.name, with_);
  }
  return at;
}

/**
 * The node a check's client runs on, or undefined when the lab cannot place it
 * (other-node with a single node: that check is skipped as multi-node).
 */
export function clientNode(check: CheckDef, serverNode: ReadonlyMap<string, string>, nodes: readonly string[]): string | undefined {
  const server = check.server ? serverNode.get(check.server) : undefined;
  switch (check.client.placement) {
    case 'any':
      return nodes[0];
    case 'same-node':
      return server ?? nodes[0];
    case 'other-node':
      return nodes.find((n) => n !== server);
  }
}

export function planLab(opts: PlanOptions): LabPlan {
  const suite = opts.suite ?? SUITE;
  const problem = labNameProblem(opts.name);
  if (problem) throw new Error(problem);
  if (!Number.isInteger(opts.nodes) || opts.nodes < 1 || opts.nodes > MAX_NODES) {
    throw new Error(`--nodes ${opts.nodes}: between 1 and ${MAX_NODES}`);
  }
  const dir = labDir(opts.name, opts.root);
  const prefix = nsPrefix(opts.name);
  const cgroup = labCgroup(opts.cgroup2, opts.name);
  const bpffs = `${dir}/bpffs`;
  const nodes: NodePlan[] = [];
  for (let i = 1; i <= opts.nodes; i++) {
    const name = `node${i}`;
    const nd = `${dir}/nodes/${name}`;
    nodes.push({
      name,
      netns: `${prefix}${name}`,
      ip: `${UNDERLAY_PREFIX}.${10 + i}`,
      podCIDR: `10.42.${i}.0/24`,
      ulPort: name,
      cgroup: `${cgroup}/${name}`,
      objectsDir: `${nd}/objects`,
      bpfRoot: `${bpffs}/${name}`,
      stateDir: `${nd}/state`,
      cniDataDir: `${nd}/cni`,
      sock: `${nd}/agent.sock`,
      log: `${dir}/logs/agent-${name}.log`,
    });
  }
  const nodeNames = nodes.map((n) => n.name);
  const serverNode = placeServers(suite, nodeNames);
  const pods: PodPlan[] = [];
  const servers: ServerPlan[] = [];
  for (const s of suite.servers) {
    const node = serverNode.get(s.name)!;
    if (s.hostNetwork) {
      servers.push({ name: s.name, node, port: s.port, hostNetwork: true, log: `${dir}/logs/server-${s.name}.log` });
      continue;
    }
    pods.push({
      name: s.name, node, netns: `${prefix}${s.name}`, role: 'server', server: s.name,
      labels: { 'app.kubernetes.io/part-of': suite.partOf, [suite.serverLabel]: s.name },
    });
    servers.push({ name: s.name, node, port: s.port, hostNetwork: false, pod: s.name, log: `${dir}/logs/server-${s.name}.log` });
  }
  for (const c of suite.checks) {
    if (c.client.kind !== 'pod') continue;
    const node = clientNode(c, serverNode, nodeNames);
    if (!node) continue;
    pods.push({
      name: c.name, node, netns: `${prefix}${c.name}`, role: 'client', check: c.name,
      labels: { 'app.kubernetes.io/part-of': suite.partOf, [suite.checkLabel]: c.name },
    });
  }
  const serviceIPs: Record<string, string> = {};
  let next = 10;
  for (const s of suite.servers) {
    for (const svc of s.services) if (svc.type !== 'headless') serviceIPs[svc.name] = `10.43.0.${next++}`;
  }
  return {
    name: opts.name,
    dir,
    stateFile: `${dir}/state.json`,
    bpffs,
    cgroup,
    systemCgroup: `${cgroup}/system`,
    prefix,
    underlay: { netns: `${prefix}ul`, bridge: BRIDGE, cidr: `${UNDERLAY_PREFIX}.0/24` },
    clusterCidr: CLUSTER_CIDR,
    namespace: LAB_NAMESPACE,
    nodes,
    pods,
    servers,
    external: { name: 'ext', netns: `${prefix}ext`, ip: `${UNDERLAY_PREFIX}.200`, ulPort: 'ext', port: EXTERNAL_PORT, log: `${dir}/logs/external.log` },
    serviceIPs,
  };
}

/** Where each suite server runs, from a plan. */
export function serverNodes(plan: LabPlan): Map<string, string> {
  return new Map(plan.servers.map((s) => [s.name, s.node]));
}

/** The node a check's client runs on in this lab, or undefined. */
export function clientNodeOf(plan: LabPlan, check: CheckDef): string | undefined {
  return clientNode(check, serverNodes(plan), plan.nodes.map((n) => n.name));
}

/** Pod addresses known so far (pod name -> IPv4). */
export type PodIPs = Readonly<Record<string, string>>;

/**
 * The Kubernetes objects every agent reads: the Namespace, the Nodes (with
 * podCIDRs and InternalIPs), the suite's Services (ClusterIPs assigned here),
 * their EndpointSlices (pod addresses, or the node address for the
 * host-network server), the Pods (for policies) and the suite's
 * NetworkPolicies. Pods without an address yet are left out, and so are
 * their endpoints.
 */
export function labObjects(plan: LabPlan, podIPs: PodIPs, opts: { suite?: Suite; policies?: object[] } = {}): object[] {
  const suite = opts.suite ?? SUITE;
  const ns = plan.namespace;
  const partOf = { 'app.kubernetes.io/part-of': suite.partOf };
  const out: object[] = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { 'kubernetes.io/metadata.name': ns } } },
  ];
  for (const n of plan.nodes) {
    out.push({
      apiVersion: 'v1', kind: 'Node',
      metadata: { name: n.name, labels: { 'kubernetes.io/hostname': n.name } },
      spec: { podCIDR: n.podCIDR, podCIDRs: [n.podCIDR] },
      status: { addresses: [{ type: 'InternalIP', address: n.ip }, { type: 'Hostname', address: n.name }] },
    });
  }
  const nodeIP = new Map(plan.nodes.map((n) => [n.name, n.ip]));
  for (const s of suite.servers) {
    const sp = plan.servers.find((x) => x.name === s.name);
    if (!sp) continue;
    const addr = s.hostNetwork ? nodeIP.get(sp.node) : sp.pod ? podIPs[sp.pod] : undefined;
    for (const svc of s.services) {
      const headless = svc.type === 'headless';
      const clusterIP = plan.serviceIPs[svc.name];
      out.push({
        apiVersion: 'v1', kind: 'Service',
        metadata: { name: svc.name, namespace: ns, labels: { ...partOf, [suite.serverLabel]: s.name } },
        spec: {
          type: headless ? 'ClusterIP' : svc.type,
          clusterIP: headless ? 'None' : clusterIP,
          clusterIPs: headless ? ['None'] : [clusterIP],
          selector: { [suite.serverLabel]: s.name },
          ports: [{ name: 'http', protocol: 'TCP', port: svc.port, targetPort: s.port, ...(svc.nodePort ? { nodePort: svc.nodePort } : {}) }],
        },
      });
      out.push({
        apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
        metadata: { name: `${svc.name}-lab`, namespace: ns, labels: { ...partOf, 'kubernetes.io/service-name': svc.name } },
        addressType: 'IPv4',
        ports: [{ name: 'http', protocol: 'TCP', port: s.port }],
        endpoints: addr ? [{ addresses: [addr], conditions: { ready: true }, nodeName: sp.node }] : [],
      });
    }
  }
  for (const p of plan.pods) {
    const ip = podIPs[p.name];
    if (!ip) continue;
    out.push({
      apiVersion: 'v1', kind: 'Pod',
      metadata: { name: p.name, namespace: ns, labels: p.labels },
      spec: { nodeName: p.node, containers: [{ name: p.role === 'server' ? 'echo' : 'client', image: 'kinglet-lab' }] },
      status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] },
    });
  }
  for (const pol of opts.policies ?? []) {
    const meta = (pol as { metadata?: Record<string, unknown> }).metadata ?? {};
    out.push({ ...pol, metadata: { ...meta, namespace: ns } });
  }
  return out;
}

/** The objects as one multi-document YAML file. */
export function objectsYaml(objs: readonly object[]): string {
  return `# written by kinglet lab; replaced as a whole on every change\n${objs.map((o) => `---\n${stringify(o)}`).join('')}`;
}
