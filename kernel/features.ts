// The BPF features kinglet's datapath uses, each with the upstream kernel
// that introduced it, and the pure derivation of datapath modes from what a
// kernel has (as Cilium's KubeProxyReplacement "probe" did). The probing
// itself is in probe.ts; this file has no I/O so the tables are unit-tested.
import semver from 'semver';

export type FeatureCategory = 'system' | 'config' | 'map' | 'program' | 'attach' | 'helper';

export interface FeatureSpec {
  id: string;
  category: FeatureCategory;
  title: string;
  /** Upstream kernel that introduced it ("4.19.57" where a stable backport is the documented minimum). */
  since?: string;
  /** Without it the datapath cannot run at all. */
  required?: boolean;
  /** What it is for, or a caveat. */
  note?: string;
}

/** Probe outcome: true found, false missing, null could not tell (e.g. no kernel config file). */
export type FeatureState = boolean | null;

export interface FeatureResult extends FeatureSpec {
  ok: FeatureState;
  /** Where/what was found, or why it is missing. */
  detail?: string;
}

const f = (id: string, category: FeatureCategory, title: string, since?: string, extra: Partial<FeatureSpec> = {}): FeatureSpec => ({
  id,
  category,
  title,
  ...(since ? { since } : {}),
  ...extra,
});

export const FEATURES: readonly FeatureSpec[] = [
  // The system around bpf()
  // (bpf() permission, the JIT sysctl and the mounts are host settings, not kernel versions.)
  f('bpf_syscall', 'system', 'bpf() syscall allowed', undefined, { required: true, note: 'root or CAP_BPF + CAP_NET_ADMIN' }),
  f('jit', 'system', 'BPF JIT enabled', undefined, { note: 'interpreted BPF works but is slow' }),
  f('btf', 'system', 'kernel BTF (/sys/kernel/btf/vmlinux)', '5.4', { note: 'CO-RE; not needed by the socket-LB object' }),
  f('bpffs', 'system', 'bpffs mounted', undefined, { note: 'pins survive agent restarts; the installer mounts /sys/fs/bpf' }),
  f('cgroup2', 'system', 'cgroup2 mounted', undefined, { note: 'socket LB attaches to a cgroup2 directory' }),
  f('cgroup_link', 'system', 'bpf_link for cgroup programs', '5.7', { note: 'pinned links: restart without detaching' }),

  // Kernel config (what Cilium's system requirements list for its base datapath)
  f('CONFIG_BPF', 'config', 'CONFIG_BPF', undefined, { required: true }),
  f('CONFIG_BPF_SYSCALL', 'config', 'CONFIG_BPF_SYSCALL', undefined, { required: true }),
  f('CONFIG_BPF_JIT', 'config', 'CONFIG_BPF_JIT'),
  f('CONFIG_CGROUPS', 'config', 'CONFIG_CGROUPS'),
  f('CONFIG_CGROUP_BPF', 'config', 'CONFIG_CGROUP_BPF', undefined, { note: 'socket LB' }),
  f('CONFIG_NET_CLS_BPF', 'config', 'CONFIG_NET_CLS_BPF', undefined, { required: true, note: 'tc BPF classifier' }),
  f('CONFIG_NET_CLS_ACT', 'config', 'CONFIG_NET_CLS_ACT', undefined, { required: true }),
  f('CONFIG_NET_SCH_INGRESS', 'config', 'CONFIG_NET_SCH_INGRESS', undefined, { required: true, note: 'ingress/clsact qdisc' }),
  f('CONFIG_PERF_EVENTS', 'config', 'CONFIG_PERF_EVENTS', undefined, { note: 'perf buffer for flow events' }),
  f('CONFIG_CRYPTO_USER_API_HASH', 'config', 'CONFIG_CRYPTO_USER_API_HASH', undefined, { note: 'listed by Cilium; program tags' }),
  f('CONFIG_DEBUG_INFO_BTF', 'config', 'CONFIG_DEBUG_INFO_BTF', undefined, { note: 'kernel BTF' }),
  f('CONFIG_VXLAN', 'config', 'CONFIG_VXLAN', undefined, { note: 'tunnel between nodes not on one L2' }),

  // Map types
  f('map_hash', 'map', 'hash map', '3.19', { required: true }),
  f('map_array', 'map', 'array map', '3.19', { required: true }),
  f('map_percpu_hash', 'map', 'per-CPU hash map', '4.6'),
  f('map_percpu_array', 'map', 'per-CPU array map', '4.6', { note: 'metrics counters' }),
  f('map_lru_hash', 'map', 'LRU hash map', '4.10', { note: 'connection tracking, affinity; plain hash + GC before' }),
  f('map_lpm_trie', 'map', 'LPM trie map', '4.11', { note: 'CIDR policy, node routes' }),
  f('map_perf_event_array', 'map', 'perf event array', '4.3', { note: 'flow events before ring buffers' }),
  f('map_ringbuf', 'map', 'ring buffer map', '5.8', { note: 'flow events' }),

  // Program types
  f('prog_sched_cls', 'program', 'tc (sched_cls) programs, clsact', '4.5', { required: true, note: 'per-packet datapath' }),
  f('prog_xdp', 'program', 'XDP programs', '4.8'),
  f('prog_cgroup_sock', 'program', 'cgroup sock programs', '4.10'),
  f('prog_cgroup_sock_addr', 'program', 'cgroup sock_addr programs', '4.17', { note: 'socket LB' }),

  // Attach points of sock_addr programs (expected_attach_type)
  f('attach_connect4', 'attach', 'cgroup/connect4', '4.17', { note: 'TCP + connected UDP socket LB' }),
  f('attach_connect6', 'attach', 'cgroup/connect6', '4.17'),
  f('attach_sendmsg4', 'attach', 'cgroup/sendmsg4', '4.18', { note: 'unconnected UDP' }),
  f('attach_sendmsg6', 'attach', 'cgroup/sendmsg6', '4.18'),
  f('attach_recvmsg4', 'attach', 'cgroup/recvmsg4', '4.19.57', { note: 'UDP replies from the service address (5.1.16, 5.2; not 5.0.y)' }),
  f('attach_recvmsg6', 'attach', 'cgroup/recvmsg6', '4.19.57'),
  f('attach_getpeername4', 'attach', 'cgroup/getpeername4', '5.8', { note: 'getpeername() shows the service address' }),
  f('attach_getpeername6', 'attach', 'cgroup/getpeername6', '5.8'),
  f('attach_sock_create', 'attach', 'cgroup/sock_create', '4.10'),

  // Helpers (probed in the program type that calls them)
  f('helper_get_netns_cookie', 'helper', 'bpf_get_netns_cookie (sock_addr)', '5.7', { note: 'affinity per network namespace' }),
  f('helper_get_socket_cookie', 'helper', 'bpf_get_socket_cookie (sock_addr)', '4.19'),
  f('helper_get_prandom_u32', 'helper', 'bpf_get_prandom_u32 (sock_addr)', '4.17', { note: 'random backend selection' }),
  f('helper_fib_lookup', 'helper', 'bpf_fib_lookup (tc)', '4.18', { note: 'NodePort forwarding' }),
  f('helper_redirect_neigh', 'helper', 'bpf_redirect_neigh (tc)', '5.10'),
  f('helper_redirect_peer', 'helper', 'bpf_redirect_peer (tc)', '5.10', { note: 'into a pod without a second stack pass' }),
  f('helper_skb_set_tunnel_key', 'helper', 'bpf_skb_set_tunnel_key (tc)', '4.3', { note: 'VXLAN' }),
  f('helper_csum_diff', 'helper', 'bpf_csum_diff (tc)', '4.6'),
  f('helper_ringbuf_output', 'helper', 'bpf_ringbuf_output (tc)', '5.8'),
  f('helper_perf_event_output', 'helper', 'bpf_perf_event_output (tc)', '4.4'),
  f('helper_jiffies64', 'helper', 'bpf_jiffies64 (tc)', '5.5', { note: 'cheap timestamps for CT' }),
] as const;

export const FEATURE_IDS: readonly string[] = FEATURES.map((x) => x.id);

export function featureSpec(id: string): FeatureSpec | undefined {
  return FEATURES.find((x) => x.id === id);
}

/** id -> found? The input of deriveModes. Missing ids count as absent. */
export type FeatureSet = Readonly<Record<string, FeatureState | undefined>>;

export function toFeatureSet(results: readonly FeatureResult[]): FeatureSet {
  return Object.fromEntries(results.map((r) => [r.id, r.ok]));
}

function cmp(a: string, b: string): number {
  const x = semver.coerce(a);
  const y = semver.coerce(b);
  if (!x || !y) throw new Error(`not a kernel version: ${!x ? a : b}`);
  return semver.compare(x, y);
}

/**
 * The features an upstream kernel of `version` has, by the table alone (no
 * probing): what `kernel probe --kernel <x.y.z>` shows. Config options and
 * mounts are assumed present.
 */
export function featuresAtVersion(version: string): FeatureSet {
  if (!semver.coerce(version)) throw new Error(`not a kernel version: ${version}`);
  const out: Record<string, FeatureState> = {};
  for (const s of FEATURES) out[s.id] = s.since ? cmp(version, s.since) >= 0 : true;
  return out;
}

// ---------------------------------------------------------------------------
// Modes

export interface Mode<T extends string> {
  mode: T;
  reason: string;
}

export interface DatapathModes {
  /** Can the datapath run at all? */
  ok: boolean;
  /** Required features that are missing. */
  missingRequired: string[];
  /** ClusterIP for TCP: translated once at connect(), or per packet in tc. */
  serviceLbTcp: Mode<'socket' | 'tc' | 'none'>;
  /** ClusterIP for UDP: sendmsg/recvmsg hooks, or per packet in tc. */
  serviceLbUdp: Mode<'socket' | 'tc' | 'none'>;
  /** IPv6 socket LB (connect6 & co). */
  serviceLbIpv6: Mode<'socket' | 'tc' | 'none'>;
  /** getpeername() answers with the service address. */
  getpeername: Mode<'hook' | 'none'>;
  /** sessionAffinity ClientIP keyed by. */
  affinity: Mode<'netns-cookie' | 'client-ip'>;
  /** How cgroup programs are attached (and adopted on restart). */
  cgroupAttach: Mode<'bpf_link' | 'prog_attach'>;
  /** Flow events from the datapath. */
  events: Mode<'ringbuf' | 'perf' | 'none'>;
  /** Forwarding into local pods. */
  podRedirect: Mode<'redirect_peer' | 'redirect_neigh' | 'stack'>;
  /** Connection-tracking and affinity tables. */
  conntrack: Mode<'lru' | 'hash-gc'>;
  /** NodePort / ExternalIP forwarding lookups. */
  nodePortFib: Mode<'fib_lookup' | 'stack'>;
  /** Like Cilium's KubeProxyReplacement line. */
  kubeProxyReplacement: Mode<'full' | 'partial' | 'tc' | 'none'>;
  /** One line for status output. */
  summary: string;
}

function needs(has: FeatureSet, ids: string[]): string[] {
  return ids.filter((id) => has[id] === false || has[id] === undefined);
}

function sinceOf(ids: string[]): string {
  const vs = ids.map((id) => featureSpec(id)?.since).filter((v): v is string => !!v);
  if (vs.length === 0) return '';
  const max = vs.reduce((a, b) => (cmp(a, b) >= 0 ? a : b));
  return ` (kernel >= ${max})`;
}

function missingText(ids: string[]): string {
  return `no ${ids.map((id) => featureSpec(id)?.title ?? id).join(', ')}${sinceOf(ids)}`;
}

/**
 * Datapath modes from a feature set. Unknown (null) config options do not
 * count as missing; unknown probes do.
 */
export function deriveModes(has: FeatureSet): DatapathModes {
  const isMissing = (id: string): boolean => {
    const v = has[id];
    if (featureSpec(id)?.category === 'config') return v === false;
    return v !== true;
  };
  const missingRequired = FEATURES.filter((s) => s.required && isMissing(s.id)).map((s) => s.id);
  const ok = missingRequired.length === 0;

  const socketTcpNeeds = needs(has, ['cgroup2', 'prog_cgroup_sock_addr', 'attach_connect4']).concat(has.CONFIG_CGROUP_BPF === false ? ['CONFIG_CGROUP_BPF'] : []);
  const socketTcp = socketTcpNeeds.length === 0;
  const serviceLbTcp: DatapathModes['serviceLbTcp'] = !ok
    ? { mode: 'none', reason: `datapath cannot run: ${missingText(missingRequired)}` }
    : socketTcp
      ? { mode: 'socket', reason: 'cgroup connect4: translated once at connect(), no per-packet NAT' }
      : { mode: 'tc', reason: `per-packet DNAT in tc: ${missingText(socketTcpNeeds)}` };

  const udpNeeds = needs(has, ['attach_sendmsg4', 'attach_recvmsg4']);
  const serviceLbUdp: DatapathModes['serviceLbUdp'] = !ok
    ? { mode: 'none', reason: 'datapath cannot run' }
    : socketTcp && udpNeeds.length === 0
      ? { mode: 'socket', reason: 'cgroup connect4 + sendmsg4 + recvmsg4' }
      : { mode: 'tc', reason: `per-packet DNAT in tc: ${missingText(socketTcp ? udpNeeds : socketTcpNeeds)}` };

  const v6Needs = needs(has, ['attach_connect6', 'attach_sendmsg6', 'attach_recvmsg6']);
  const serviceLbIpv6: DatapathModes['serviceLbIpv6'] = !ok
    ? { mode: 'none', reason: 'datapath cannot run' }
    : socketTcp && v6Needs.length === 0
      ? { mode: 'socket', reason: 'cgroup connect6 + sendmsg6 + recvmsg6' }
      : { mode: 'tc', reason: `per-packet DNAT in tc: ${missingText(socketTcp ? v6Needs : socketTcpNeeds)}` };

  const getpeername: DatapathModes['getpeername'] =
    serviceLbTcp.mode === 'socket' && has.attach_getpeername4 === true
      ? { mode: 'hook', reason: 'cgroup getpeername4/6: peers see the service address' }
      : serviceLbTcp.mode !== 'socket'
        ? { mode: 'none', reason: 'not needed: the service address is translated per packet' }
        : { mode: 'none', reason: `getpeername() returns the backend address: ${missingText(['attach_getpeername4'])}` };

  const affinity: DatapathModes['affinity'] =
    serviceLbTcp.mode === 'socket' && has.helper_get_netns_cookie === true
      ? { mode: 'netns-cookie', reason: 'bpf_get_netns_cookie in sock_addr: affinity per client network namespace' }
      : {
          mode: 'client-ip',
          reason:
            serviceLbTcp.mode === 'socket'
              ? `affinity keyed by client IP: ${missingText(['helper_get_netns_cookie'])}`
              : 'affinity keyed by client IP (per-packet LB)',
        };

  const cgroupAttach: DatapathModes['cgroupAttach'] =
    has.cgroup_link === true
      ? { mode: 'bpf_link', reason: 'pinned bpf_links, updated in place on agent restart' }
      : { mode: 'prog_attach', reason: `legacy bpf_prog_attach: ${missingText(['cgroup_link'])}` };

  const events: DatapathModes['events'] =
    has.map_ringbuf === true && has.helper_ringbuf_output === true
      ? { mode: 'ringbuf', reason: 'BPF ring buffer' }
      : has.map_perf_event_array === true
        ? { mode: 'perf', reason: `perf event buffer: ${missingText(needs(has, ['map_ringbuf', 'helper_ringbuf_output']))}` }
        : { mode: 'none', reason: `no flow events: ${missingText(['map_perf_event_array'])}` };

  const podRedirect: DatapathModes['podRedirect'] =
    has.helper_redirect_peer === true
      ? { mode: 'redirect_peer', reason: 'bpf_redirect_peer: straight into the pod netns' }
      : has.helper_redirect_neigh === true
        ? { mode: 'redirect_neigh', reason: `bpf_redirect_neigh: ${missingText(['helper_redirect_peer'])}` }
        : { mode: 'stack', reason: `routed by the kernel stack: ${missingText(['helper_redirect_peer', 'helper_redirect_neigh'])}` };

  const conntrack: DatapathModes['conntrack'] =
    has.map_lru_hash === true
      ? { mode: 'lru', reason: 'LRU hash maps evict the oldest entries' }
      : { mode: 'hash-gc', reason: `hash maps swept by the agent: ${missingText(['map_lru_hash'])}` };

  const nodePortFib: DatapathModes['nodePortFib'] =
    has.helper_fib_lookup === true
      ? { mode: 'fib_lookup', reason: 'bpf_fib_lookup' }
      : { mode: 'stack', reason: `routed by the kernel stack: ${missingText(['helper_fib_lookup'])}` };

  let kubeProxyReplacement: DatapathModes['kubeProxyReplacement'];
  if (!ok) kubeProxyReplacement = { mode: 'none', reason: `cannot run: ${missingText(missingRequired)}` };
  else if (serviceLbTcp.mode === 'socket' && serviceLbUdp.mode === 'socket')
    kubeProxyReplacement = { mode: 'full', reason: 'socket LB for TCP and UDP at the cgroup hooks, tc for NodePort/ExternalIP' };
  else if (serviceLbTcp.mode === 'socket')
    kubeProxyReplacement = { mode: 'partial', reason: 'socket LB for TCP, per-packet tc LB for UDP' };
  else kubeProxyReplacement = { mode: 'tc', reason: 'per-packet tc LB for every service' };

  const summary = !ok
    ? `KubeProxyReplacement: none (${kubeProxyReplacement.reason})`
    : `KubeProxyReplacement: ${kubeProxyReplacement.mode} [TCP ${serviceLbTcp.mode}, UDP ${serviceLbUdp.mode}, IPv6 ${serviceLbIpv6.mode}, ` +
      `getpeername ${getpeername.mode}, affinity ${affinity.mode}, attach ${cgroupAttach.mode}, events ${events.mode}, ` +
      `pod redirect ${podRedirect.mode}, conntrack ${conntrack.mode}]`;

  return {
    ok,
    missingRequired,
    serviceLbTcp,
    serviceLbUdp,
    serviceLbIpv6,
    getpeername,
    affinity,
    cgroupAttach,
    events,
    podRedirect,
    conntrack,
    nodePortFib,
    kubeProxyReplacement,
    summary,
  };
}

// ---------------------------------------------------------------------------
// Rendering

export interface ProbeReport {
  kernel: { release: string; version?: string };
  libbpf?: { soname: string; version: string };
  /** 'probe' for the running kernel, or 'table' for --kernel <version>. */
  source: 'probe' | 'table';
  features: FeatureResult[];
  modes: DatapathModes;
}

const CATEGORY_TITLES: Record<FeatureCategory, string> = {
  system: 'system',
  config: 'kernel config',
  map: 'map types',
  program: 'program types',
  attach: 'attach points',
  helper: 'helpers',
};

function statusText(r: FeatureResult): string {
  if (r.ok === true) return 'ok';
  if (r.ok === null) return 'unknown';
  return r.since ? `missing, needs kernel >= ${r.since}` : 'missing';
}

export function renderHuman(report: ProbeReport): string {
  const lines: string[] = [];
  const lib = report.libbpf ? `, libbpf ${report.libbpf.version} (${report.libbpf.soname})` : '';
  lines.push(
    report.source === 'table'
      ? `kernel ${report.kernel.release} (from the feature table, not probed)`
      : `kernel ${report.kernel.release}${lib}`,
  );
  const width = Math.max(...report.features.map((r) => r.title.length)) + 2;
  const status = (r: FeatureResult): string => statusText(r) + (r.required && r.ok === false ? ' [required]' : '');
  const swidth = Math.max(...report.features.map((r) => status(r).length)) + 2;
  for (const cat of Object.keys(CATEGORY_TITLES) as FeatureCategory[]) {
    const rows = report.features.filter((r) => r.category === cat);
    if (rows.length === 0) continue;
    lines.push('', `${CATEGORY_TITLES[cat]}:`);
    for (const r of rows) {
      lines.push(`  ${r.title.padEnd(width)}${status(r).padEnd(swidth)}${r.detail ?? ''}`.trimEnd());
    }
  }
  const m = report.modes;
  const modeRows: [string, Mode<string>][] = [
    ['service LB, TCP', m.serviceLbTcp],
    ['service LB, UDP', m.serviceLbUdp],
    ['service LB, IPv6', m.serviceLbIpv6],
    ['getpeername fixup', m.getpeername],
    ['session affinity', m.affinity],
    ['cgroup attach', m.cgroupAttach],
    ['flow events', m.events],
    ['pod redirect', m.podRedirect],
    ['conntrack tables', m.conntrack],
    ['NodePort forwarding', m.nodePortFib],
  ];
  const mw = Math.max(...modeRows.map(([k]) => k.length)) + 2;
  const vw = Math.max(...modeRows.map(([, v]) => v.mode.length)) + 2;
  lines.push('', 'datapath modes:');
  for (const [k, v] of modeRows) lines.push(`  ${k.padEnd(mw)}${v.mode.padEnd(vw)}${v.reason}`);
  lines.push('', m.summary);
  if (!m.ok) lines.push(`the datapath cannot run here: missing ${m.missingRequired.join(', ')}`);
  return lines.join('\n') + '\n';
}

export function renderJson(report: ProbeReport): string {
  return JSON.stringify(report, null, 2) + '\n';
}

/** A report from the table alone, for a kernel version given on the command line. */
export function reportForVersion(version: string): ProbeReport {
  const has = featuresAtVersion(version);
  const features: FeatureResult[] = FEATURES.map((s) => ({ ...s, ok: has[s.id] ?? false }));
  return { kernel: { release: version }, source: 'table', features, modes: deriveModes(has) };
}
