// Services + EndpointSlices -> the desired load-balancing state (LbState).
//
// Pure: no I/O, no clocks, never throws. Objects that cannot be used are
// skipped and reported as ModelWarnings; the rest is still translated.
//
// The rules follow what kube-proxy does for ClusterIP traffic:
//
// Services
// - type ClusterIP (the default), NodePort and LoadBalancer get one frontend per
//   cluster IP x service port. The cluster IPs are spec.clusterIPs (dual stack)
//   or, when that is absent or empty, spec.clusterIP; the family comes from the
//   address itself. NodePort/LoadBalancer frontends come in a later issue.
// - Headless services (clusterIP "None") and type ExternalName are valid but
//   not load-balanced: skipped *without* a warning.
// - A service with no cluster IP at all (clusterIP "" or absent, i.e. not yet
//   allocated, which happens with hand-written YAML in a `dir` source) is
//   skipped *with* a warning, since the user most likely forgot it.
// - Ports: TCP and UDP (protocol absent = TCP). SCTP is skipped with a
//   warning (the datapath does not balance it), any other protocol too.
//   A second port with the same number and protocol is skipped with a warning.
// - metadata.namespace absent means "default" (what the API server would set);
//   the same rule applies to EndpointSlices so the two still join.
// - Two services claiming the same address/port/protocol: the one whose
//   "namespace/name" sorts first keeps it; the other gets a warning.
// - Two objects with the same "namespace/name" (e.g. the same Service in two
//   files): one is kept deterministically, the other is reported.
// - sessionAffinity ClientIP: affinityTimeoutSeconds is
//   spec.sessionAffinityConfig.clientIP.timeoutSeconds, 10800 when absent;
//   a value outside 1..86400 is reported and replaced by 10800.
//   None/absent: 0. Any other value: warning, treated as None.
//
// EndpointSlices
// - Joined to a service by the label kubernetes.io/service-name in the same
//   namespace. A slice without that label is not for a service: ignored
//   silently. addressType IPv4 / IPv6 feeds frontends of that family; FQDN is
//   ignored silently.
// - Port mapping: a service port uses, in each slice, the slice port with the
//   same name ("" and absent are the same) and protocol. That is how a
//   targetPort given by name ends up as a number. A slice without such a port
//   gives no backend to that frontend. Slice ports with a null port (allowed
//   by the API for non-service slices) are ignored.
// - Endpoints: the first address is used (the API says addresses are
//   fungible and consumers may use the first only). Conditions: ready absent
//   = true; serving absent = same as ready; terminating absent = false. A
//   condition that is present but not a boolean makes the endpoint unusable
//   (warning) rather than guessing.
// - Ready endpoints are the backends. Only when no endpoint is ready for the
//   frontend (across all its slices) are endpoints that are serving and
//   terminating used, marked terminating: true. Endpoints neither ready nor
//   serving are never used.
// - The same address+port in several slices (or twice in one) is one backend;
//   a ready copy beats a terminating one.
// - No usable endpoint: the frontend is still emitted with backends: [] so the
//   datapath refuses connections (kube-proxy's REJECT).
//
// Not handled yet (later issues): internalTrafficPolicy Local, topology
// hints / trafficDistribution, NodePort, externalIPs, LoadBalancer ingress IPs.
//
// Ordering: frontends sorted by family, address (numerically), port,
// protocol; backends by address (numerically), then port; warnings by object,
// then reason. The input order never changes the output.
import type { Snapshot, KubeObject } from '../source/types.ts';
import type { IpFamily, L4Protocol, LbBackend, LbFrontend, LbState, ModelWarning } from './types.ts';
import { parseIp, type ParsedIp } from './ip.ts';

export { parseIp, normalizeIp, type ParsedIp } from './ip.ts';

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
export const DEFAULT_AFFINITY_TIMEOUT_SECONDS = 10800;
export const MAX_AFFINITY_TIMEOUT_SECONDS = 86400;

export type ServicesInput = Pick<Snapshot, 'services' | 'endpointSlices'>;

export interface LbBuildResult {
  state: LbState;
  warnings: ModelWarning[];
}

type Rec = Record<string, unknown>;

function isRec(v: unknown): v is Rec {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Own data property only: tolerates prototype-less and odd objects. */
function get(o: Rec, k: string): unknown {
  return Object.prototype.hasOwnProperty.call(o, k) ? o[k] : undefined;
}

function isPort(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '...' : v);
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

interface Meta {
  namespace: string;
  name: string;
  labels: Rec | undefined;
}

/** metadata.name / namespace, or a reason why they are unusable. */
function readMeta(obj: unknown): Meta | string {
  if (!isRec(obj)) return `not an object (${describe(obj)})`;
  const md = get(obj, 'metadata');
  if (!isRec(md)) return 'metadata missing or not an object';
  const name = get(md, 'name');
  if (typeof name !== 'string' || name === '') return 'metadata.name missing or not a non-empty string';
  const ns = get(md, 'namespace');
  if (ns !== undefined && ns !== null && (typeof ns !== 'string' || ns === '')) {
    return 'metadata.namespace is not a non-empty string';
  }
  const labels = get(md, 'labels');
  return { namespace: typeof ns === 'string' ? ns : 'default', name, labels: isRec(labels) ? labels : undefined };
}

function errText(e: unknown): string {
  try {
    return e instanceof Error ? e.message : String(e);
  } catch {
    return 'unprintable error';
  }
}

function stableString(v: unknown): string {
  try {
    return JSON.stringify(v) ?? '';
  } catch {
    return '';
  }
}

// ---------------------------------------------------------------------------
// EndpointSlices

interface SlicePort {
  name: string;
  protocol: string;
  port: number;
}

interface SliceEndpoint {
  ip: ParsedIp;
  /** 2: ready; 1: serving and terminating (fallback only); 0 endpoints are dropped at parse time. */
  rank: 1 | 2;
  nodeName?: string;
}

interface ParsedSlice {
  id: string;
  family: IpFamily;
  ports: SlicePort[];
  endpoints: SliceEndpoint[];
}

function parseCondition(conds: Rec, key: string): boolean | null | 'bad' {
  const v = get(conds, key);
  if (v === undefined || v === null) return null;
  if (typeof v === 'boolean') return v;
  return 'bad';
}

function parseSlice(obj: unknown, meta: Meta, id: string, warn: (reason: string) => void): { serviceKey: string; slice: ParsedSlice } | undefined {
  const svcName = meta.labels ? get(meta.labels, SERVICE_NAME_LABEL) : undefined;
  if (svcName === undefined || svcName === null) return undefined; // not managed for a service
  if (typeof svcName !== 'string' || svcName === '') {
    warn(`label ${SERVICE_NAME_LABEL} is not a non-empty string`);
    return undefined;
  }
  const o = obj as Rec;
  const at = get(o, 'addressType');
  let family: IpFamily;
  if (at === 'IPv4') family = 4;
  else if (at === 'IPv6') family = 6;
  else if (at === 'FQDN') return undefined;
  else {
    warn(`addressType ${describe(at)} is not IPv4, IPv6 or FQDN`);
    return undefined;
  }

  const ports: SlicePort[] = [];
  const rawPorts = get(o, 'ports');
  if (rawPorts !== undefined && rawPorts !== null) {
    if (!Array.isArray(rawPorts)) {
      warn('ports is not a list');
      return undefined;
    }
    rawPorts.forEach((p, i) => {
      if (!isRec(p)) {
        warn(`ports[${i}] is not an object`);
        return;
      }
      const port = get(p, 'port');
      if (port === undefined || port === null) return; // allowed: "all ports", unusable for a service
      if (!isPort(port)) {
        warn(`ports[${i}].port ${describe(port)} is not in 1..65535`);
        return;
      }
      const name = get(p, 'name');
      if (name !== undefined && name !== null && typeof name !== 'string') {
        warn(`ports[${i}].name is not a string`);
        return;
      }
      const proto = get(p, 'protocol');
      if (proto !== undefined && proto !== null && typeof proto !== 'string') {
        warn(`ports[${i}].protocol is not a string`);
        return;
      }
      ports.push({ name: typeof name === 'string' ? name : '', protocol: typeof proto === 'string' ? proto : 'TCP', port });
    });
  }

  const endpoints: SliceEndpoint[] = [];
  const rawEps = get(o, 'endpoints');
  if (rawEps !== undefined && rawEps !== null) {
    if (!Array.isArray(rawEps)) {
      warn('endpoints is not a list');
      return undefined;
    }
    rawEps.forEach((ep, i) => {
      if (!isRec(ep)) {
        warn(`endpoints[${i}] is not an object`);
        return;
      }
      const addrs = get(ep, 'addresses');
      if (!Array.isArray(addrs) || addrs.length === 0) {
        warn(`endpoints[${i}].addresses missing or empty`);
        return;
      }
      const ip = parseIp(addrs[0]);
      if (!ip) {
        warn(`endpoints[${i}].addresses[0] ${describe(addrs[0])} is not an IP address`);
        return;
      }
      if (ip.family !== family) {
        warn(`endpoints[${i}].addresses[0] ${ip.address} is not ${at}`);
        return;
      }
      let ready: boolean | null | 'bad' = null, serving: boolean | null | 'bad' = null, terminating: boolean | null | 'bad' = null;
      const conds = get(ep, 'conditions');
      if (conds !== undefined && conds !== null) {
        if (!isRec(conds)) {
          warn(`endpoints[${i}].conditions is not an object`);
          return;
        }
        ready = parseCondition(conds, 'ready');
        serving = parseCondition(conds, 'serving');
        terminating = parseCondition(conds, 'terminating');
        if (ready === 'bad' || serving === 'bad' || terminating === 'bad') {
          warn(`endpoints[${i}].conditions has a non-boolean value`);
          return;
        }
      }
      const isReady = ready ?? true;
      const isServing = serving ?? isReady;
      const isTerminating = terminating ?? false;
      const rank = isReady ? 2 : isServing && isTerminating ? 1 : 0;
      if (rank === 0) return;
      const e: SliceEndpoint = { ip, rank };
      const node = get(ep, 'nodeName');
      if (typeof node === 'string' && node !== '') e.nodeName = node;
      endpoints.push(e);
    });
  }
  return { serviceKey: `${meta.namespace}/${svcName}`, slice: { id, family, ports, endpoints } };
}

// ---------------------------------------------------------------------------
// Services

interface ServicePort {
  name: string;
  protocol: L4Protocol;
  port: number;
}

interface ParsedService {
  key: string;
  ips: ParsedIp[];
  ports: ServicePort[];
  affinity: number;
}

/** Returns the parsed service, or undefined when it has no ClusterIP frontend (with or without a warning). */
function parseService(obj: Rec, meta: Meta, warn: (reason: string) => void): ParsedService | undefined {
  const spec = get(obj, 'spec');
  if (!isRec(spec)) {
    warn('spec missing or not an object');
    return undefined;
  }
  const type = get(spec, 'type');
  if (type === 'ExternalName') return undefined;
  if (type !== undefined && type !== null && type !== 'ClusterIP' && type !== 'NodePort' && type !== 'LoadBalancer') {
    warn(`spec.type ${describe(type)} is not ClusterIP, NodePort, LoadBalancer or ExternalName`);
    return undefined;
  }

  // Cluster IPs.
  const clusterIP = get(spec, 'clusterIP');
  const clusterIPs = get(spec, 'clusterIPs');
  if (clusterIP !== undefined && clusterIP !== null && typeof clusterIP !== 'string') {
    warn('spec.clusterIP is not a string');
    return undefined;
  }
  if (clusterIPs !== undefined && clusterIPs !== null && !Array.isArray(clusterIPs)) {
    warn('spec.clusterIPs is not a list');
    return undefined;
  }
  let rawIps: unknown[];
  if (Array.isArray(clusterIPs) && clusterIPs.length > 0) {
    rawIps = clusterIPs;
    if (typeof clusterIP === 'string' && clusterIP !== '' && clusterIP !== clusterIPs[0]) {
      warn(`spec.clusterIP ${describe(clusterIP)} differs from spec.clusterIPs[0]; using spec.clusterIPs`);
    }
  } else if (typeof clusterIP === 'string' && clusterIP !== '') {
    rawIps = [clusterIP];
  } else {
    warn('no cluster IP (spec.clusterIP is empty): not load-balanced');
    return undefined;
  }
  if (rawIps.includes('None')) return undefined; // headless
  const ips: ParsedIp[] = [];
  const seenIp = new Set<string>();
  rawIps.forEach((raw, i) => {
    const ip = parseIp(raw);
    if (!ip) {
      warn(`spec.clusterIPs[${i}] ${describe(raw)} is not an IP address`);
      return;
    }
    if (/^0+$/.test(ip.key)) {
      warn(`spec.clusterIPs[${i}] ${ip.address} is the unspecified address`);
      return;
    }
    if (seenIp.has(ip.key)) return;
    seenIp.add(ip.key);
    ips.push(ip);
  });
  if (ips.length === 0) return undefined; // every address already warned about

  // Ports.
  const rawPorts = get(spec, 'ports');
  if (!Array.isArray(rawPorts) || rawPorts.length === 0) {
    warn('spec.ports missing or empty');
    return undefined;
  }
  const ports: ServicePort[] = [];
  const seenPort = new Set<string>();
  rawPorts.forEach((p, i) => {
    if (!isRec(p)) {
      warn(`spec.ports[${i}] is not an object`);
      return;
    }
    const port = get(p, 'port');
    if (!isPort(port)) {
      warn(`spec.ports[${i}].port ${describe(port)} is not in 1..65535`);
      return;
    }
    const name = get(p, 'name');
    if (name !== undefined && name !== null && typeof name !== 'string') {
      warn(`spec.ports[${i}].name is not a string`);
      return;
    }
    const proto = get(p, 'protocol') ?? 'TCP';
    if (proto === 'SCTP') {
      warn(`spec.ports[${i}] ${port}/SCTP skipped: SCTP is not load-balanced`);
      return;
    }
    if (proto !== 'TCP' && proto !== 'UDP') {
      warn(`spec.ports[${i}].protocol ${describe(proto)} is not TCP, UDP or SCTP`);
      return;
    }
    const k = `${port}/${proto}`;
    if (seenPort.has(k)) {
      warn(`spec.ports[${i}] ${k} is a duplicate`);
      return;
    }
    seenPort.add(k);
    ports.push({ name: typeof name === 'string' ? name : '', protocol: proto, port });
  });
  if (ports.length === 0) return undefined;

  // Session affinity.
  let affinity = 0;
  const sa = get(spec, 'sessionAffinity');
  if (sa === 'ClientIP') {
    affinity = DEFAULT_AFFINITY_TIMEOUT_SECONDS;
    const cfg = get(spec, 'sessionAffinityConfig');
    const cip = isRec(cfg) ? get(cfg, 'clientIP') : undefined;
    const t = isRec(cip) ? get(cip, 'timeoutSeconds') : undefined;
    if (t !== undefined && t !== null) {
      if (typeof t === 'number' && Number.isInteger(t) && t >= 1 && t <= MAX_AFFINITY_TIMEOUT_SECONDS) affinity = t;
      else warn(`spec.sessionAffinityConfig.clientIP.timeoutSeconds ${describe(t)} is not in 1..${MAX_AFFINITY_TIMEOUT_SECONDS}; using ${DEFAULT_AFFINITY_TIMEOUT_SECONDS}`);
    }
  } else if (sa !== undefined && sa !== null && sa !== 'None') {
    warn(`spec.sessionAffinity ${describe(sa)} is not None or ClientIP; using None`);
  }

  return { key: `${meta.namespace}/${meta.name}`, ips, ports, affinity };
}

// ---------------------------------------------------------------------------
// Backends

function selectBackends(slices: ParsedSlice[] | undefined, family: IpFamily, port: ServicePort): LbBackend[] {
  if (!slices) return [];
  const best = new Map<string, { ip: ParsedIp; port: number; rank: number; nodeName?: string }>();
  let anyReady = false;
  for (const s of slices) {
    if (s.family !== family) continue;
    const sp = s.ports.find((p) => p.name === port.name && p.protocol === port.protocol);
    if (!sp) continue;
    for (const e of s.endpoints) {
      if (e.rank === 2) anyReady = true;
      const k = `${e.ip.key}:${sp.port}`;
      const cur = best.get(k);
      // Higher rank wins; on a tie the smaller nodeName, so input order never matters.
      if (!cur || e.rank > cur.rank || (e.rank === cur.rank && (e.nodeName ?? '') < (cur.nodeName ?? ''))) {
        const v: { ip: ParsedIp; port: number; rank: number; nodeName?: string } = { ip: e.ip, port: sp.port, rank: e.rank };
        if (e.nodeName !== undefined) v.nodeName = e.nodeName;
        best.set(k, v);
      }
    }
  }
  const want = anyReady ? 2 : 1;
  const chosen = [...best.values()].filter((b) => b.rank === want);
  chosen.sort((a, b) => (a.ip.key < b.ip.key ? -1 : a.ip.key > b.ip.key ? 1 : a.port - b.port));
  return chosen.map((b) => {
    const out: LbBackend = { address: b.ip.address, port: b.port, terminating: want === 1 };
    if (b.nodeName !== undefined) out.nodeName = b.nodeName;
    return out;
  });
}

// ---------------------------------------------------------------------------

interface Named<T> {
  key: string;
  tie: string;
  value: T;
}

/** Sort by key; among equal keys keep the first by `tie` and report the others. */
function dedupe<T>(items: Named<T>[], kind: string, warn: (object: string, reason: string) => void): Named<T>[] {
  items.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const out: Named<T>[] = [];
  for (let i = 0; i < items.length;) {
    let j = i + 1;
    while (j < items.length && items[j]?.key === items[i]?.key) j++;
    if (j - i === 1) {
      out.push(items[i] as Named<T>);
    } else {
      const group = items.slice(i, j);
      for (const g of group) g.tie = stableString(g.value);
      group.sort((a, b) => (a.tie < b.tie ? -1 : a.tie > b.tie ? 1 : 0));
      out.push(group[0] as Named<T>);
      const identical = group.every((g) => g.tie === group[0]?.tie);
      if (!identical) warn(`${kind} ${items[i]?.key}`, `defined ${j - i} times with different content; one copy used`);
    }
    i = j;
  }
  return out;
}

/**
 * Translate Services and EndpointSlices into the desired LB state.
 *
 * Never throws: a malformed object is skipped and named in `warnings`
 * (object "Service ns/name", "EndpointSlice ns/name", or "Service #index" when
 * it has no usable name). Equal inputs in any order give equal output.
 */
export function buildLbState(input: ServicesInput): LbBuildResult {
  const warnings: ModelWarning[] = [];
  const warn = (object: string, reason: string) => warnings.push({ object, reason });
  const frontends: { sortKey: string; fe: LbFrontend }[] = [];
  try {
    const servicesIn: unknown = isRec(input) ? get(input, 'services') : undefined;
    const slicesIn: unknown = isRec(input) ? get(input, 'endpointSlices') : undefined;
    const services: unknown[] = Array.isArray(servicesIn) ? servicesIn : [];
    const slicesArr: unknown[] = Array.isArray(slicesIn) ? slicesIn : [];
    if (!Array.isArray(servicesIn) && servicesIn !== undefined) warn('input', 'services is not a list');
    if (!Array.isArray(slicesIn) && slicesIn !== undefined) warn('input', 'endpointSlices is not a list');

    // Slices, indexed by "namespace/service".
    const namedSlices: Named<unknown>[] = [];
    slicesArr.forEach((obj, i) => {
      const meta = readMeta(obj);
      if (typeof meta === 'string') warn(`EndpointSlice #${i}`, meta);
      else namedSlices.push({ key: `${meta.namespace}/${meta.name}`, tie: '', value: obj });
    });
    const byService = new Map<string, ParsedSlice[]>();
    for (const n of dedupe(namedSlices, 'EndpointSlice', warn)) {
      const object = `EndpointSlice ${n.key}`;
      try {
        const meta = readMeta(n.value) as Meta;
        const r = parseSlice(n.value, meta, n.key, (reason) => warn(object, reason));
        if (!r) continue;
        const list = byService.get(r.serviceKey);
        if (list) list.push(r.slice);
        else byService.set(r.serviceKey, [r.slice]);
      } catch (e) {
        warn(object, `unexpected error: ${errText(e)}`);
      }
    }

    // Services, in name order, so conflicts are settled the same way every time.
    const namedServices: Named<unknown>[] = [];
    services.forEach((obj, i) => {
      const meta = readMeta(obj);
      if (typeof meta === 'string') warn(`Service #${i}`, meta);
      else namedServices.push({ key: `${meta.namespace}/${meta.name}`, tie: '', value: obj });
    });
    const claimed = new Map<string, string>();
    for (const n of dedupe(namedServices, 'Service', warn)) {
      const object = `Service ${n.key}`;
      try {
        const meta = readMeta(n.value) as Meta;
        const svc = parseService(n.value as Rec, meta, (reason) => warn(object, reason));
        if (!svc) continue;
        const slices = byService.get(svc.key);
        const backendCache = new Map<string, LbBackend[]>();
        for (const ip of svc.ips) {
          for (const p of svc.ports) {
            const sortKey = `${ip.family}|${ip.key}|${p.port.toString().padStart(5, '0')}|${p.protocol}`;
            const owner = claimed.get(sortKey);
            if (owner !== undefined) {
              warn(object, `${ip.address}:${p.port}/${p.protocol} is already used by Service ${owner}; skipped`);
              continue;
            }
            claimed.set(sortKey, svc.key);
            const bk = `${ip.family}|${p.name}|${p.protocol}`;
            let backends = backendCache.get(bk);
            if (!backends) {
              backends = selectBackends(slices, ip.family, p);
              backendCache.set(bk, backends);
            } else {
              // Each frontend gets its own array, so a consumer may mutate one safely.
              backends = backends.map((b) => ({ ...b }));
            }
            frontends.push({
              sortKey,
              fe: {
                service: svc.key,
                portName: p.name,
                type: 'ClusterIP',
                family: ip.family,
                address: ip.address,
                port: p.port,
                protocol: p.protocol,
                backends,
                affinityTimeoutSeconds: svc.affinity,
              },
            });
          }
        }
      } catch (e) {
        warn(object, `unexpected error: ${errText(e)}`);
      }
    }
  } catch (e) {
    warn('input', `unexpected error: ${errText(e)}`);
  }

  frontends.sort((a, b) => (a.sortKey < b.sortKey ? -1 : a.sortKey > b.sortKey ? 1 : 0));
  warnings.sort((a, b) => (a.object < b.object ? -1 : a.object > b.object ? 1 : a.reason < b.reason ? -1 : a.reason > b.reason ? 1 : 0));
  return { state: { frontends: frontends.map((f) => f.fe) }, warnings };
}
