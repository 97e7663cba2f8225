// The connectivity suite: one definition, two runners.
//
// The checks follow Cilium's connectivity-check (servers echo-a, echo-b,
// echo-b-headless, echo-b-host; clients named after the path they test), with
// standard Kubernetes NetworkPolicy in place of CiliumNetworkPolicy. This file
// is pure data plus the selection rule; it knows nothing about Kubernetes
// objects or network namespaces:
//
// - `kinglet connectivity test` (agent/connectivity/cluster.ts) applies
//   manifests/connectivity-check.yaml, whose client Deployments carry the label
//   `kinglet.io/check: <check name>` and whose readiness probes perform the
//   checks described here;
// - `kinglet lab` performs the same checks itself from the same data.
//
// Single-node clusters (edge): checks whose point is crossing nodes
// (requires 'multi-node') are left out and reported SKIP ("needs a second
// node"), never run against the same node under a multi-node name. The
// single-node subset is every other check; its intra-node NodePort and
// HostPort checks and the pod/host ClusterIP checks still run there.

/** Optional datapath or environment features a check may need. */
export type Capability = 'networkpolicy' | 'nodeport' | 'hostport' | 'internet' | 'multi-node';

export const CAPABILITIES: readonly Capability[] = ['networkpolicy', 'nodeport', 'hostport', 'internet', 'multi-node'];

/** Why a check is skipped when a capability is missing (runners may override, see SelectOptions.why). */
export const MISSING_REASON: Readonly<Record<Capability, string>> = {
  networkpolicy: 'NetworkPolicy is not enforced by the datapath yet',
  nodeport: 'NodePort is not implemented by the datapath yet',
  hostport: 'HostPort is not implemented by the datapath yet',
  internet: 'no internet access from pods (not declared available)',
  'multi-node': 'needs a second node',
};

export type Verdict = 'PASS' | 'FAIL' | 'SKIP';

/** Where the check's client runs: in a pod, or in the node's own network namespace. */
export type ClientKind = 'pod' | 'host';

/** Where the client runs relative to the check's server. */
export type Placement = 'any' | 'same-node' | 'other-node';

export type TargetKind = 'service' | 'headless' | 'nodeport' | 'hostport' | 'external';

/** success: the request gets an answer. denied: it is dropped (times out) while the name resolves. */
export type Expectation = 'success' | 'denied';

export interface Target {
  kind: TargetKind;
  /**
   * What the client connects to. service/headless: a Service name (resolved by
   * DNS in a cluster, by the runner in the lab). nodeport/hostport: the address
   * of the node that runs the server (in a cluster: the headless Service of the
   * host-network server, echo-b-host-headless, which resolves to that node).
   * external: a literal address.
   */
  host: string;
  port: number;
  /** For nodeport/hostport: the Service or server whose node is meant. */
  via?: string;
}

export interface ServerDef {
  name: string;
  description: string;
  hostNetwork: boolean;
  /** Port the server listens on (in its pod, or on the node when hostNetwork). */
  port: number;
  /** Services in front of it. */
  services: { name: string; type: 'ClusterIP' | 'NodePort' | 'headless'; port: number; nodePort?: number }[];
  /** A hostPort mapped to `port`, when it has one. */
  hostPort?: number;
  /** Runs on the node of this other server (the host-network echo-b-host follows echo-b). */
  colocatedWith?: string;
}

export interface CheckDef {
  name: string;
  description: string;
  client: { kind: ClientKind; placement: Placement };
  /** The server the check talks to (placement is relative to it); absent for external targets. */
  server?: string;
  target: Target;
  expect: Expectation;
  /** Capabilities that must all be present for the check to run. */
  requires: Capability[];
  /** Part of the single-node subset (edge clusters). */
  singleNode: boolean;
  /** Name of the NetworkPolicy the check depends on, if any. */
  policy?: string;
}

export interface Suite {
  name: string;
  /** Label on every object of the suite, with `app.kubernetes.io/part-of`. */
  partOf: string;
  /** Label key naming the check a client Deployment/Pod/NetworkPolicy belongs to. */
  checkLabel: string;
  /** Label key naming the server a Deployment/Pod belongs to. */
  serverLabel: string;
  servers: ServerDef[];
  checks: CheckDef[];
}

export const ECHO_PORT = 8080;
export const ECHO_B_NODE_PORT = 31414;
export const ECHO_B_HOST_PORT = 40080;
export const ECHO_B_HOST_NETWORK_PORT = 41080;

export const SUITE: Suite = {
  name: 'connectivity-check',
  partOf: 'kinglet-connectivity',
  checkLabel: 'kinglet.io/check',
  serverLabel: 'kinglet.io/server',
  servers: [
    {
      name: 'echo-a',
      description: 'HTTP echo behind a ClusterIP Service',
      hostNetwork: false,
      port: ECHO_PORT,
      services: [{ name: 'echo-a', type: 'ClusterIP', port: ECHO_PORT }],
    },
    {
      name: 'echo-b',
      description: 'HTTP echo behind a NodePort Service and a headless Service, with a hostPort',
      hostNetwork: false,
      port: ECHO_PORT,
      services: [
        { name: 'echo-b', type: 'NodePort', port: ECHO_PORT, nodePort: ECHO_B_NODE_PORT },
        { name: 'echo-b-headless', type: 'headless', port: ECHO_PORT },
      ],
      hostPort: ECHO_B_HOST_PORT,
    },
    {
      name: 'echo-b-host',
      description: "HTTP echo in the host network of echo-b's node; its headless Service resolves to that node",
      hostNetwork: true,
      port: ECHO_B_HOST_NETWORK_PORT,
      services: [{ name: 'echo-b-host-headless', type: 'headless', port: ECHO_B_HOST_NETWORK_PORT }],
      colocatedWith: 'echo-b',
    },
  ],
  checks: [
    {
      name: 'pod-to-a',
      description: 'pod to a ClusterIP Service (echo-a)',
      client: { kind: 'pod', placement: 'any' },
      server: 'echo-a',
      target: { kind: 'service', host: 'echo-a', port: ECHO_PORT },
      expect: 'success',
      requires: [],
      singleNode: true,
    },
    {
      name: 'pod-to-external-1111',
      description: 'pod to an address outside the cluster (1.1.1.1:80)',
      client: { kind: 'pod', placement: 'any' },
      target: { kind: 'external', host: '1.1.1.1', port: 80 },
      expect: 'success',
      requires: ['internet'],
      singleNode: true,
    },
    {
      name: 'pod-to-a-denied-np',
      description: 'pod whose egress NetworkPolicy allows only DNS: echo-a must be unreachable',
      client: { kind: 'pod', placement: 'any' },
      server: 'echo-a',
      target: { kind: 'service', host: 'echo-a', port: ECHO_PORT },
      expect: 'denied',
      requires: ['networkpolicy'],
      singleNode: true,
      policy: 'pod-to-a-denied-np',
    },
    {
      name: 'pod-to-a-allowed-np',
      description: 'pod whose egress NetworkPolicy allows DNS and echo-a: echo-a must be reachable',
      client: { kind: 'pod', placement: 'any' },
      server: 'echo-a',
      target: { kind: 'service', host: 'echo-a', port: ECHO_PORT },
      expect: 'success',
      requires: ['networkpolicy'],
      singleNode: true,
      policy: 'pod-to-a-allowed-np',
    },
    {
      name: 'pod-to-b-multi-node-clusterip',
      description: 'pod to a ClusterIP Service whose backend is on another node',
      client: { kind: 'pod', placement: 'other-node' },
      server: 'echo-b',
      target: { kind: 'service', host: 'echo-b', port: ECHO_PORT },
      expect: 'success',
      requires: ['multi-node'],
      singleNode: false,
    },
    {
      name: 'pod-to-b-multi-node-headless',
      description: 'pod to a pod on another node by its headless Service name (no load balancing)',
      client: { kind: 'pod', placement: 'other-node' },
      server: 'echo-b',
      target: { kind: 'headless', host: 'echo-b-headless', port: ECHO_PORT },
      expect: 'success',
      requires: ['multi-node'],
      singleNode: false,
    },
    {
      name: 'host-to-b-multi-node-clusterip',
      description: 'host network to a ClusterIP Service whose backend is on another node',
      client: { kind: 'host', placement: 'other-node' },
      server: 'echo-b',
      target: { kind: 'service', host: 'echo-b', port: ECHO_PORT },
      expect: 'success',
      requires: ['multi-node'],
      singleNode: false,
    },
    {
      name: 'host-to-b-multi-node-headless',
      description: 'host network to a pod on another node by its headless Service name',
      client: { kind: 'host', placement: 'other-node' },
      server: 'echo-b',
      target: { kind: 'headless', host: 'echo-b-headless', port: ECHO_PORT },
      expect: 'success',
      requires: ['multi-node'],
      singleNode: false,
    },
    {
      name: 'pod-to-b-multi-node-nodeport',
      description: "pod to the NodePort of echo-b on the other node (that node's address)",
      client: { kind: 'pod', placement: 'other-node' },
      server: 'echo-b',
      target: { kind: 'nodeport', host: 'echo-b-host-headless', port: ECHO_B_NODE_PORT, via: 'echo-b' },
      expect: 'success',
      requires: ['nodeport', 'multi-node'],
      singleNode: false,
    },
    {
      name: 'pod-to-b-intra-node-nodeport',
      description: "pod to the NodePort of echo-b on its own node's address",
      client: { kind: 'pod', placement: 'same-node' },
      server: 'echo-b',
      target: { kind: 'nodeport', host: 'echo-b-host-headless', port: ECHO_B_NODE_PORT, via: 'echo-b' },
      expect: 'success',
      requires: ['nodeport'],
      singleNode: true,
    },
    {
      name: 'pod-to-b-multi-node-hostport',
      description: 'pod to the hostPort of echo-b on the other node',
      client: { kind: 'pod', placement: 'other-node' },
      server: 'echo-b',
      target: { kind: 'hostport', host: 'echo-b-host-headless', port: ECHO_B_HOST_PORT, via: 'echo-b' },
      expect: 'success',
      requires: ['hostport', 'multi-node'],
      singleNode: false,
    },
    {
      name: 'pod-to-b-intra-node-hostport',
      description: "pod to the hostPort of echo-b on its own node's address",
      client: { kind: 'pod', placement: 'same-node' },
      server: 'echo-b',
      target: { kind: 'hostport', host: 'echo-b-host-headless', port: ECHO_B_HOST_PORT, via: 'echo-b' },
      expect: 'success',
      requires: ['hostport'],
      singleNode: true,
    },
  ],
};

export interface SelectOptions {
  /** Schedulable nodes in the cluster (lab: simulated nodes). */
  nodes: number;
  /** Optional capabilities present. 'multi-node' is derived from `nodes` and `singleNode`; passing it has no effect. */
  capabilities: Iterable<Capability>;
  /** Run the single-node subset even when there are more nodes. */
  singleNode?: boolean;
  /** Runner-specific skip reasons, e.g. "the agent is unreachable; assuming no NodePort". */
  why?: Partial<Record<Capability, string>>;
  /** Run only these checks (by name); others are skipped as "not selected". */
  only?: readonly string[];
}

export type PlannedCheck =
  | { check: CheckDef; run: true }
  | { check: CheckDef; run: false; reason: string };

export interface Plan {
  /** True when the single-node subset is in use (forced, or fewer than 2 nodes). */
  singleNode: boolean;
  /** The capabilities in effect, 'multi-node' included when it applies. */
  capabilities: Capability[];
  checks: PlannedCheck[];
}

/** Which checks run, and why each other one is skipped. Order follows the suite. */
export function selectChecks(suite: Suite, opts: SelectOptions): Plan {
  const singleNode = opts.singleNode === true || opts.nodes < 2;
  const have = new Set<Capability>();
  for (const c of opts.capabilities) if (c !== 'multi-node') have.add(c);
  if (!singleNode) have.add('multi-node');
  const multiNodeWhy = opts.singleNode === true && opts.nodes >= 2
    ? 'single-node subset requested (--single-node)'
    : `${MISSING_REASON['multi-node']} (the cluster has ${opts.nodes})`;
  const reasonFor = (c: Capability): string =>
    opts.why?.[c] ?? (c === 'multi-node' ? multiNodeWhy : MISSING_REASON[c]);
  const only = opts.only ? new Set(opts.only) : undefined;
  const checks = suite.checks.map((check): PlannedCheck => {
    if (only && !only.has(check.name)) return { check, run: false, reason: 'not selected' };
    const missing = check.requires.filter((c) => !have.has(c));
    if (missing.length === 0) return { check, run: true };
    return { check, run: false, reason: missing.map(reasonFor).join('; ') };
  });
  return { singleNode, capabilities: CAPABILITIES.filter((c) => have.has(c)), checks };
}

export interface CheckResult {
  name: string;
  description: string;
  verdict: Verdict;
  /** Why it failed or was skipped; optional detail for a pass. */
  reason?: string;
  /** Time from the start of the checks (for the cluster runner: the end of the apply) to the verdict; 0 for skips. */
  durationMs: number;
}

/** The results of the skipped checks of a plan, for runners to merge with their own. */
export function skippedResults(plan: Plan): CheckResult[] {
  return plan.checks.flatMap((p) =>
    p.run ? [] : [{ name: p.check.name, description: p.check.description, verdict: 'SKIP' as const, reason: p.reason, durationMs: 0 }]);
}

/** A check by name (throws on an unknown name: a typo in a runner is a bug). */
export function checkByName(suite: Suite, name: string): CheckDef {
  const c = suite.checks.find((x) => x.name === name);
  if (!c) throw new Error(`no check named ${JSON.stringify(name)} in the ${suite.name} suite`);
  return c;
}

export function isCapability(s: string): s is Capability {
  return (CAPABILITIES as readonly string[]).includes(s);
}
