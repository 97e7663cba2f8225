// The agent's local API (HTTP/1.1 + JSON over a root-only unix socket).
// Read by the CLI (`status`, `service list`, ...) and called by the CNI plugin.
//
//   GET    /v1/status                 -> AgentStatus (defined by the agent)
//   GET    /v1/services               -> ServiceEntry[]
//   GET    /v1/node                   -> NodeInfo
//   PUT    /v1/endpoints/{containerId} (EndpointRegistration) -> EndpointInfo
//   DELETE /v1/endpoints/{containerId} -> 204 (also when unknown: idempotent)
//   GET    /v1/endpoints              -> EndpointInfo[]
//   POST   /v1/cni                    a CNI call forwarded by the native kinglet-cni shim, run by the
//                                     agent in-process (framing and answer: agent/cni/forward.ts)
// Errors: a non-2xx status with body ApiError.

export const DEFAULT_API_SOCKET = '/run/kinglet/agent.sock';

export interface ApiError {
  error: string;
  /** What to do about it, when known. */
  hint?: string;
}

export interface NodeInfo {
  name: string;
  /** The node's pod ranges (spec.podCIDRs), e.g. ["10.42.0.0/24"]. Empty until the node has one. */
  podCIDRs: string[];
  /** Addresses of the node (InternalIP first). */
  addresses: string[];
}

export interface EndpointRegistration {
  containerId: string;
  /** Path of the pod's network namespace (CNI_NETNS). */
  netns: string;
  /** Interface name inside the pod (CNI_IFNAME). */
  ifname: string;
  /** Host side of the veth. */
  hostIfname: string;
  /** Pod addresses without prefix length. */
  addresses: string[];
  podNamespace?: string;
  podName?: string;
  podUid?: string;
  /**
   * MACs of the pod's interface and of the host side, when the plugin set
   * them (kinglet-cni does): the agent then reads neither interface. In an
   * EndpointInfo, the MACs the datapath was given (redirect_peer writes them).
   */
  podMac?: string;
  hostMac?: string;
}

export interface EndpointInfo extends EndpointRegistration {
  /** Numeric identity the datapath uses for this endpoint (0 until policy exists). */
  identity: number;
  /** Programs attached to the host side, e.g. ["tc/ingress:kl_from_pod"]. */
  programs: string[];
  createdAt: string;
  /** The host veth's ifindex when it was programmed. */
  ifindex?: number;
}

export interface ServiceBackendEntry {
  address: string;
  port: number;
  state: 'active' | 'terminating';
}

export interface ServiceEntry {
  id: number;
  service: string;
  portName: string;
  type: string;
  address: string;
  port: number;
  protocol: string;
  affinityTimeoutSeconds: number;
  backends: ServiceBackendEntry[];
}

export interface AgentStatus {
  /** False when something below needs attention (see problems); `kinglet status` then exits 1. */
  healthy: boolean;
  problems: string[];
  version: string;
  node: { name: string };
  startedAt: string;
  uptimeSeconds: number;
  /** Where Kubernetes objects come from, and whether the first full list is done. */
  source: { kind: string; endpoint: string; synced: boolean; lastSync?: string; lastError?: string; malformed: number; [k: string]: unknown };
  /**
   * What this datapath does, as stable names the connectivity runners read:
   * 'clusterip', 'pod-network', 'masquerade' today; 'networkpolicy',
   * 'nodeport', 'hostport' once those features exist.
   */
  capabilities: string[];
  kubeProxyReplacement: {
    /** "True" when every service type kinglet handles is handled in BPF here. */
    mode: 'True' | 'Partial' | 'False';
    features: { name: string; enabled: boolean; detail: string }[];
  };
  datapath: {
    bpfRoot: string;
    cgroup: string;
    object: string;
    programs: { name: string; attach: string; progId: number; linkId: number }[];
    maps: { name: string; entries: number; max: number }[];
  };
  services: {
    frontends: number;
    backends: number;
    lastApply?: { at: string; added: number; updated: number; deleted: number; durationMs: number };
    /** The last periodic resync: 'drift' compared the maps with the agent's copy and repaired the differences (the counts); 'full' re-read them. */
    lastResync?: { at: string; mode: 'drift' | 'full'; added: number; updated: number; deleted: number; scanned: number; durationMs: number };
  };
  controllers: { name: string; runs: number; failures: number; lastRun?: string; lastSuccess?: string; lastError?: string }[];
  ipam?: { podCIDRs: string[] };
  /** Pod networking (absent when the pod datapath is not loaded). */
  podNetwork?: {
    endpoints: number;
    redirect: string;
    /** tc programs on the native device (the pod veths' are per endpoint: kinglet endpoint list). */
    tc: { device: string; direction: string; program: string; progId: number }[];
    masquerade: { enabled: boolean; device?: string; nodeIP?: string; clusterCIDR: string; podCIDR?: string; reason?: string; /** Source ports, "min-max". */ ports?: string };
    routes: { installed: string[]; errors: string[]; skipped: string[]; reason?: string };
    ipForward: { value: string; managed: boolean; reason?: string };
    drops: { reason: string; count: number }[];
  };
}
