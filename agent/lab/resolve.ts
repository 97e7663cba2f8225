// Where a check's client runs and what it connects to, in a lab. There is no
// DNS in the lab: the names a cluster's clients resolve are resolved here from
// the plan (ClusterIPs), the pods' addresses (headless Services) and the nodes'
// addresses (NodePort / HostPort on the node of the server). Pure.
import type { CheckDef, Suite } from '../connectivity/suite.ts';
import { SUITE } from '../connectivity/suite.ts';
import { clientNodeOf, type LabPlan, type PodIPs } from './plan.ts';

export interface ResolvedTarget {
  host: string;
  port: number;
  /** How the address was found, for the report ("ClusterIP of echo-b"). */
  via: string;
}

export interface ClientPlace {
  kind: 'pod' | 'host';
  node: string;
  /** Network namespace the client runs in. */
  netns: string;
  /** The node's cgroup (the socket LB's attach point): pods and host processes live below it on a real node. */
  cgroup: string;
  /** The pod it runs in (pod clients). */
  pod?: string;
}

export class ResolveError extends Error {
  override name = 'ResolveError';
}

/** The suite server whose address answers a Service name (echo-b-headless -> echo-b). */
function serverOfService(suite: Suite, service: string): string | undefined {
  return suite.servers.find((s) => s.services.some((x) => x.name === service))?.name;
}

export function resolveTarget(check: CheckDef, plan: LabPlan, podIPs: PodIPs, suite: Suite = SUITE): ResolvedTarget {
  const t = check.target;
  switch (t.kind) {
    case 'external':
      return { host: t.host, port: t.port, via: 'literal address' };
    case 'service': {
      const ip = plan.serviceIPs[t.host];
      if (!ip) throw new ResolveError(`no ClusterIP for Service ${t.host} in the lab`);
      return { host: ip, port: t.port, via: `ClusterIP of ${t.host}` };
    }
    case 'headless': {
      const server = serverOfService(suite, t.host);
      const sp = plan.servers.find((s) => s.name === server);
      if (!sp) throw new ResolveError(`headless Service ${t.host}: no server behind it in the lab`);
      const ip = sp.hostNetwork ? plan.nodes.find((n) => n.name === sp.node)?.ip : sp.pod ? podIPs[sp.pod] : undefined;
      if (!ip) throw new ResolveError(`headless Service ${t.host}: ${server} has no address yet`);
      return { host: ip, port: t.port, via: `endpoint of ${t.host} (${server})` };
    }
    case 'nodeport':
    case 'hostport': {
      const server = t.via ?? check.server;
      const sp = plan.servers.find((s) => s.name === server);
      const node = sp ? plan.nodes.find((n) => n.name === sp.node) : undefined;
      if (!node) throw new ResolveError(`${t.kind}: no node runs ${server ?? '(no server)'}`);
      return { host: node.ip, port: t.port, via: `${node.name}'s address (${t.kind === 'nodeport' ? 'NodePort' : 'hostPort'} of ${server})` };
    }
  }
}

export function clientPlace(check: CheckDef, plan: LabPlan): ClientPlace {
  const nodeName = clientNodeOf(plan, check);
  const node = plan.nodes.find((n) => n.name === nodeName);
  if (!node) throw new ResolveError(`${check.name}: the lab has no node for its client (${check.client.placement})`);
  if (check.client.kind === 'host') return { kind: 'host', node: node.name, netns: node.netns, cgroup: node.cgroup };
  const pod = plan.pods.find((p) => p.role === 'client' && p.check === check.name);
  if (!pod) throw new ResolveError(`${check.name}: no client pod in the lab`);
  return { kind: 'pod', node: node.name, netns: pod.netns, cgroup: node.cgroup, pod: pod.name };
}

/** The server name an answer must carry for a success check (undefined: any answer, e.g. external). */
export function expectedServer(check: CheckDef): string | undefined {
  return check.server;
}
