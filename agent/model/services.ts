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
// - No usable endpoint: the frontend is still emitted, with no backends, so the
//   datapath refuses connections (kube-proxy's REJECT).
//
// Not handled yet (later issues): internalTrafficPolicy Local, topology
// hints / trafficDistribution, NodePort, externalIPs, LoadBalancer ingress IPs.
//
// Ordering: frontends sorted by family, address (numerically), port,
// protocol; backends by address (numerically), then port; warnings by object,
// then reason. The input order never changes the output.
import type { Snapshot, KubeObject } from '../source/types.ts';
import type { IpFamily, L4Protocol, LbFrontend, LbState, ModelWarning } from './types.ts';
import { Backends } from './backends.ts';
import { ipv4Value, parseIp, type ParsedIp } from './ip.ts';
import { packedEndpoints, type PackedEndpoints } from '../source/trim.ts';

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

/**
 * "namespace/name". Made by join, which gives a flat string: a template
 * literal gives a concatenation (an extra object per key for as long as the
 * model keeps the key, 10k's of them) that is flattened on first use anyway.
 */
function nameKey(namespace: string, name: string): string {
  return [namespace, '/', name].join('');
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

/**
 * A slice's usable endpoints as parallel arrays of exact length (no object
 * or key string per endpoint: the model keeps every slice). Endpoint i: the
 * first address as parseIp gives it, its rank (2: ready; 1: serving and
 * terminating, a fallback only; rank 0 endpoints are dropped at parse time;
 * `ranks` undefined: all ready) and its nodeName (`nodes` undefined: none has one).
 * When all are ready, `order` is the order they are backends in, computed
 * once per slice (see endpointOrder; undefined: the endpoints' own order).
 */
interface ParsedSlice {
  id: string;
  family: IpFamily;
  readonly ports: readonly SlicePort[];
  readonly addresses: readonly string[];
  readonly ranks: readonly number[] | undefined;
  readonly nodes: readonly (string | undefined)[] | undefined;
  readonly order: Uint32Array | undefined;
}

/** The sort key of an address parseSlice accepted: its value for IPv4, the hex key for IPv6 (numeric order either way). */
function addressKey(address: string, family: IpFamily): number | string {
  return family === 4 ? ipv4Value(address) : parseIp(address)!.key;
}

/** Compares two endpoints' nodeNames for the order of copies of one backend: none first, then by name. */
function compareNodes(a: string | undefined, b: string | undefined): number {
  const na = a ?? '', nb = b ?? '';
  return na < nb ? -1 : na > nb ? 1 : 0;
}

/**
 * The backend order of a slice whose endpoints are all ready (one port for
 * all of them): endpoint indexes by address, numerically; of copies of one
 * address the one with the smallest nodeName (none first), the others
 * dropped. Undefined when that is the endpoints' own order, i.e. addresses
 * strictly increasing (the usual case; `increasing` when already known).
 */
function endpointOrder(addresses: readonly string[], nodes: readonly (string | undefined)[] | undefined, family: IpFamily, increasing?: boolean): Uint32Array | undefined {
  if (increasing) return undefined;
  const n = addresses.length;
  const keys = new Array<number | string>(n);
  let sorted = true;
  for (let i = 0; i < n; i++) {
    keys[i] = addressKey(addresses[i]!, family);
    if (i > 0 && keys[i - 1]! >= keys[i]!) sorted = false;
  }
  if (sorted) return undefined;
  const idx = Array.from({ length: n }, (_, i) => i);
  idx.sort((a, b) => {
    const ka = keys[a]!, kb = keys[b]!;
    if (ka !== kb) return ka < kb ? -1 : 1;
    return nodes ? compareNodes(nodes[a], nodes[b]) : 0;
  });
  const out = new Uint32Array(n);
  let m = 0;
  for (let j = 0; j < n; j++) {
    if (j > 0 && keys[idx[j]!] === keys[idx[j - 1]!]) continue; // a copy of the backend just kept
    out[m++] = idx[j]!;
  }
  return m === n ? out : out.slice(0, m);
}


function parseCondition(conds: Rec, key: string): boolean | null | 'bad' {
  const v = get(conds, key);
  if (v === undefined || v === null) return null;
  if (typeof v === 'boolean') return v;
  return 'bad';
}

/** An endpoint's rank (see ParsedSlice) from its conditions object, or 'bad' for a non-boolean value. */
function rankOf(conds: Rec): number | 'bad' {
  const ready = parseCondition(conds, 'ready'), serving = parseCondition(conds, 'serving'), terminating = parseCondition(conds, 'terminating');
  if (ready === 'bad' || serving === 'bad' || terminating === 'bad') return 'bad';
  const isReady = ready ?? true;
  const isServing = serving ?? isReady;
  const isTerminating = terminating ?? false;
  return isReady ? 2 : isServing && isTerminating ? 1 : 0;
}

const readyConds = (c: Readonly<Rec> | undefined): boolean => c === undefined || rankOf(c) === 2;

/**
 * The usual slice as the source packed it (agent/source/trim.ts): every
 * endpoint ready, its address canonical and of the slice's family. Then the
 * parsed slice shares the source's arrays instead of holding a copy. Anything
 * else (undefined here) goes through the general path and its warnings.
 */
function sharedEndpoints(p: Readonly<PackedEndpoints>, family: IpFamily): Pick<ParsedSlice, 'addresses' | 'ranks' | 'nodes' | 'order'> | undefined {
  const { addresses, conditions, nodeNames } = p;
  let increasing = true, prev = -1;
  for (const a of addresses) {
    if (family === 4) {
      const v = ipv4Value(a);
      if (v < 0) return undefined;
      if (v <= prev) increasing = false;
      prev = v;
    } else {
      const ip = parseIp(a);
      if (ip?.family !== 6 || ip.address !== a) return undefined;
      increasing = false; // checked by endpointOrder
    }
  }
  if (Array.isArray(conditions) ? !conditions.every(readyConds) : !readyConds(conditions as Readonly<Rec> | undefined)) return undefined;
  let nodes: readonly (string | undefined)[] | undefined;
  if (Array.isArray(nodeNames)) {
    if (!nodeNames.every((n) => n !== undefined && n !== '')) return undefined;
    nodes = nodeNames;
  } else if (typeof nodeNames === 'string' && nodeNames !== '') nodes = new Array<string>(addresses.length).fill(nodeNames);
  return { addresses, ranks: undefined, nodes, order: endpointOrder(addresses, nodes, family, increasing) };
}

const NO_PORTS: readonly SlicePort[] = Object.freeze([]);
/** Parsed port lists of the source's shared (frozen) lists. */
const parsedPortLists = new WeakMap<readonly unknown[], readonly SlicePort[]>();

/**
 * A slice's ports (a warning each for unusable ones), or undefined when
 * `ports` is not a list. The frozen lists the source shares (trim.ts) are
 * parsed once: slices of one shape share the result, read-only.
 */
function slicePorts(rawPorts: unknown, warn: (reason: string) => void): readonly SlicePort[] | undefined {
  if (rawPorts === undefined || rawPorts === null) return NO_PORTS;
  if (!Array.isArray(rawPorts)) {
    warn('ports is not a list');
    return undefined;
  }
  const have = parsedPortLists.get(rawPorts);
  if (have) return have;
  const ports: SlicePort[] = [];
  let warned = false;
  const w = (reason: string) => {
    warned = true;
    warn(reason);
  };
  rawPorts.forEach((p, i) => {
    if (!isRec(p)) {
      w(`ports[${i}] is not an object`);
      return;
    }
    const port = get(p, 'port');
    if (port === undefined || port === null) return; // allowed: "all ports", unusable for a service
    if (!isPort(port)) {
      w(`ports[${i}].port ${describe(port)} is not in 1..65535`);
      return;
    }
    const name = get(p, 'name');
    if (name !== undefined && name !== null && typeof name !== 'string') {
      w(`ports[${i}].name is not a string`);
      return;
    }
    const proto = get(p, 'protocol');
    if (proto !== undefined && proto !== null && typeof proto !== 'string') {
      w(`ports[${i}].protocol is not a string`);
      return;
    }
    ports.push({ name: typeof name === 'string' ? name : '', protocol: typeof proto === 'string' ? proto : 'TCP', port });
  });
  const out = ports.slice(); // exact size: the model keeps it
  if (Object.isFrozen(rawPorts) && !warned) parsedPortLists.set(rawPorts, out);
  return out;
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

  const ports = slicePorts(get(o, 'ports'), warn);
  if (!ports) return undefined;

  const packed = packedEndpoints(o);
  const shared = packed ? sharedEndpoints(packed, family) : undefined;
  if (shared) {
    const { addresses, nodes, order } = shared;
    return { serviceKey: nameKey(meta.namespace, svcName), slice: { id, family, ports, addresses, ranks: undefined, nodes, order } };
  }

  const addresses: string[] = [], ranks: number[] = [], nodes: (string | undefined)[] = [];
  // (increasing: the kept addresses are plain dotted quads in strictly increasing order so far.)
  let allReady = true, anyNode = false, increasing = family === 4, last = -1;
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
      // A plain dotted quad (the common case) needs no ParsedIp.
      const raw: unknown = addrs[0];
      let address: string;
      const v = typeof raw === 'string' ? ipv4Value(raw) : -1;
      if (v >= 0) {
        address = raw as string;
        if (family !== 4) {
          warn(`endpoints[${i}].addresses[0] ${address} is not ${at}`);
          return;
        }
      } else {
        const ip = parseIp(raw);
        if (!ip) {
          warn(`endpoints[${i}].addresses[0] ${describe(raw)} is not an IP address`);
          return;
        }
        if (ip.family !== family) {
          warn(`endpoints[${i}].addresses[0] ${ip.address} is not ${at}`);
          return;
        }
        address = ip.address;
      }
      let rank: number | 'bad' = 2;
      const conds = get(ep, 'conditions');
      if (conds !== undefined && conds !== null) {
        if (!isRec(conds)) {
          warn(`endpoints[${i}].conditions is not an object`);
          return;
        }
        rank = rankOf(conds);
        if (rank === 'bad') {
          warn(`endpoints[${i}].conditions has a non-boolean value`);
          return;
        }
      }
      if (rank === 0) return;
      const node = get(ep, 'nodeName');
      if (v <= last) increasing = false; // a copy, out of order, or not a plain dotted quad (-1)
      last = v;
      addresses.push(address);
      ranks.push(rank);
      if (rank !== 2) allReady = false;
      if (typeof node === 'string' && node !== '') {
        nodes.push(node);
        anyNode = true;
      } else nodes.push(undefined);
    });
  }
  const kept = addresses.slice(), keptNodes = anyNode ? nodes.slice() : undefined;
  return { serviceKey: nameKey(meta.namespace, svcName), slice: {
    id, family, ports, addresses: kept, ranks: allReady ? undefined : ranks.slice(), nodes: keptNodes,
    order: allReady ? endpointOrder(kept, keptNodes, family, increasing) : undefined,
  } };
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
function parseService(obj: Rec, meta: Meta, key: string, warn: (reason: string) => void): ParsedService | undefined {
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
  // (A few addresses and ports: duplicates are found by a scan, no Set per service.)
  const ips: ParsedIp[] = [];
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
    if (ips.some((x) => x.key === ip.key)) return;
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
    if (ports.some((x) => x.port === port && x.protocol === proto)) {
      warn(`spec.ports[${i}] ${port}/${proto} is a duplicate`);
      return;
    }
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

  return { key, ips, ports, affinity };
}

// ---------------------------------------------------------------------------
// Backends

/**
 * The number the slice maps a service port to (by name and protocol), or -1
 * when it feeds no frontend of that family and port (another family, no
 * endpoints, or no such port).
 */
function feedingPort(s: ParsedSlice, family: IpFamily, port: ServicePort): number {
  if (s.family !== family || s.addresses.length === 0) return -1;
  const ports = s.ports;
  for (let i = 0; i < ports.length; i++) {
    const p = ports[i]!;
    if (p.name === port.name && p.protocol === port.protocol) return p.port;
  }
  return -1;
}

function selectBackends(slices: readonly ParsedSlice[] | undefined, family: IpFamily, port: ServicePort): Backends {
  if (!slices) return Backends.EMPTY;
  // The usual case, one slice feeding this frontend, all of it ready: its arrays in its precomputed
  // order, nothing copied (and no list of slices made).
  let only: ParsedSlice | undefined, onlyPort = -1, feeding = 0;
  for (let i = 0; i < slices.length && feeding < 2; i++) {
    const s = slices[i]!;
    const num = feedingPort(s, family, port);
    if (num < 0) continue;
    feeding++;
    only = s;
    onlyPort = num;
  }
  if (feeding === 0) return Backends.EMPTY;
  if (feeding === 1 && !only!.ranks) {
    const s = only!;
    return new Backends(s.order ? s.order.length : s.addresses.length, s.addresses, s.nodes, s.order, onlyPort, false);
  }
  // The slices feeding this frontend (those with endpoints), each with the port number it maps to.
  const use: ParsedSlice[] = [], nums: number[] = [];
  let anyReady = false;
  for (const s of slices) {
    const num = feedingPort(s, family, port);
    if (num < 0) continue;
    use.push(s);
    nums.push(num);
    if (!anyReady) anyReady = !s.ranks || s.ranks.includes(2);
  }
  // Only endpoints of the wanted rank count: a ready copy of an address+port
  // beats a terminating one, and terminating ones are used only when no
  // endpoint is ready. Candidate c: slice cs[c], endpoint ce[c].
  const want = anyReady ? 2 : 1;
  const cs: number[] = [], ce: number[] = [], keys: (number | string)[] = [];
  for (let u = 0; u < use.length; u++) {
    const { ranks, addresses } = use[u]!;
    for (let i = 0; i < addresses.length; i++) {
      if ((ranks ? ranks[i] : 2) !== want) continue;
      cs.push(u);
      ce.push(i);
      keys.push(addressKey(addresses[i]!, family));
    }
  }
  const order = cs.map((_, c) => c);
  let sorted = true;
  for (let c = 1; c < keys.length && sorted; c++) sorted = keys[c - 1]! < keys[c]!;
  // Strictly increasing addresses: already in order, no two the same backend. Else sort by address,
  // then port; among copies of one address+port the smaller nodeName first (so input order never matters).
  if (!sorted) order.sort((a, b) => {
    const ka = keys[a]!, kb = keys[b]!;
    if (ka !== kb) return ka < kb ? -1 : 1;
    const pa = nums[cs[a]!]!, pb = nums[cs[b]!]!;
    if (pa !== pb) return pa - pb;
    return compareNodes(use[cs[a]!]!.nodes?.[ce[a]!], use[cs[b]!]!.nodes?.[ce[b]!]);
  });
  const addresses: string[] = [], nodes: (string | undefined)[] = [], ports: number[] = [];
  let anyNode = false, lastKey: number | string | undefined, lastPort = -1;
  for (const c of order) {
    const s = use[cs[c]!]!, i = ce[c]!, p = nums[cs[c]!]!, k = keys[c]!;
    if (k === lastKey && p === lastPort) continue; // the same backend again
    lastKey = k;
    lastPort = p;
    const nodeName = s.nodes?.[i];
    if (nodeName !== undefined) anyNode = true;
    addresses.push(s.addresses[i]!);
    nodes.push(nodeName);
    ports.push(p);
  }
  const onePort = ports.every((p) => p === ports[0]);
  return new Backends(addresses.length, addresses, anyNode ? nodes : undefined, undefined, onePort ? ports[0]! : Uint16Array.from(ports), want === 1);
}

// ---------------------------------------------------------------------------

interface Named<T> {
  key: string;
  tie: string;
  value: T;
}

/**
 * One object among those sharing a "namespace/name": the first by content
 * (stable JSON), so the choice never depends on input order. Reports when the
 * copies differ.
 */
function chooseOne(key: string, objs: readonly unknown[], kind: string, warn: (object: string, reason: string) => void): unknown {
  if (objs.length === 1) return objs[0];
  const group = objs.map((value) => ({ tie: stableString(value), value }));
  group.sort((a, b) => (a.tie < b.tie ? -1 : a.tie > b.tie ? 1 : 0));
  const identical = group.every((g) => g.tie === group[0]?.tie);
  if (!identical) warn(`${kind} ${key}`, `defined ${group.length} times with different content; one copy used`);
  return group[0]?.value;
}

/** Sort by key; among equal keys keep one (chooseOne) and report differing copies. */
function dedupe<T>(items: Named<T>[], kind: string, warn: (object: string, reason: string) => void): Named<T>[] {
  items.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const out: Named<T>[] = [];
  for (let i = 0; i < items.length;) {
    let j = i + 1;
    while (j < items.length && items[j]?.key === items[i]?.key) j++;
    if (j - i === 1) out.push(items[i] as Named<T>);
    else {
      const key = items[i]!.key;
      out.push({ key, tie: '', value: chooseOne(key, items.slice(i, j).map((n) => n.value), kind, warn) as T });
    }
    i = j;
  }
  return out;
}

/** The parsed slice of one (deduplicated) EndpointSlice object, or undefined when it feeds no service. */
function sliceOf(key: string, obj: unknown, warn: (object: string, reason: string) => void): { serviceKey: string; slice: ParsedSlice } | undefined {
  const object = `EndpointSlice ${key}`;
  try {
    const meta = readMeta(obj) as Meta;
    return parseSlice(obj, meta, key, (reason) => warn(object, reason));
  } catch (e) {
    warn(object, `unexpected error: ${errText(e)}`);
    return undefined;
  }
}

/** A frontend a service asks for, before address conflicts between services are settled. */
interface Candidate {
  sortKey: string;
  fe: LbFrontend;
}

/** The frontends one (deduplicated) Service object asks for, given the slices labelled for it. */
function candidatesOf(key: string, obj: unknown, slices: ParsedSlice[] | undefined, warn: (object: string, reason: string) => void): Candidate[] {
  // One per address and port, sized up front (the model keeps it); n filled.
  let out: Candidate[] = [], n = 0;
  try {
    const meta = readMeta(obj) as Meta;
    const svc = parseService(obj as Rec, meta, key, (reason) => warn(`Service ${key}`, reason));
    if (!svc) return out;
    out = new Array<Candidate>(svc.ips.length * svc.ports.length);
    // Frontends of one family and port share their backends (immutable): looked up only when there are several.
    const backendCache = svc.ips.length > 1 ? new Map<string, Backends>() : undefined;
    for (let a = 0; a < svc.ips.length; a++) {
      const ip = svc.ips[a]!;
      for (let b = 0; b < svc.ports.length; b++) {
        const p = svc.ports[b]!;
        const sortKey = sortKeyOf(ip.family, ip.key, p.port, p.protocol);
        const bk = backendCache ? `${ip.family}|${p.name}|${p.protocol}` : '';
        let backends = backendCache?.get(bk);
        if (!backends) {
          backends = selectBackends(slices, ip.family, p);
          backendCache?.set(bk, backends);
        }
        out[n++] = {
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
        };
      }
    }
  } catch (e) {
    warn(`Service ${key}`, `unexpected error: ${errText(e)}`);
  }
  out.length = n;
  return out;
}

function conflictReason(fe: LbFrontend, owner: string): string {
  return `${fe.address}:${fe.port}/${fe.protocol} is already used by Service ${owner}; skipped`;
}

function compareWarnings(a: ModelWarning, b: ModelWarning): number {
  return a.object < b.object ? -1 : a.object > b.object ? 1 : a.reason < b.reason ? -1 : a.reason > b.reason ? 1 : 0;
}

/** The order of LbState.frontends: family, address (numerically), port, protocol. */
export function frontendSortKey(fe: Pick<LbFrontend, 'family' | 'address' | 'port' | 'protocol'>): string {
  const ip = parseIp(fe.address);
  return sortKeyOf(fe.family, ip ? ip.key : fe.address, fe.port, fe.protocol);
}

/** "family|address key|port (5 digits)|protocol", a flat string (see nameKey). */
function sortKeyOf(family: IpFamily, addressKey: string, port: number, protocol: string): string {
  return [family, '|', addressKey, '|', port.toString().padStart(5, '0'), '|', protocol].join('');
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
  const frontends: Candidate[] = [];
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
      else namedSlices.push({ key: nameKey(meta.namespace, meta.name), tie: '', value: obj });
    });
    const byService = new Map<string, ParsedSlice[]>();
    for (const n of dedupe(namedSlices, 'EndpointSlice', warn)) {
      const r = sliceOf(n.key, n.value, warn);
      if (!r) continue;
      const list = byService.get(r.serviceKey);
      if (list) list.push(r.slice);
      else byService.set(r.serviceKey, [r.slice]);
    }

    // Services, in name order, so conflicts are settled the same way every time.
    const namedServices: Named<unknown>[] = [];
    services.forEach((obj, i) => {
      const meta = readMeta(obj);
      if (typeof meta === 'string') warn(`Service #${i}`, meta);
      else namedServices.push({ key: nameKey(meta.namespace, meta.name), tie: '', value: obj });
    });
    for (const n of dedupe(namedServices, 'Service', warn)) {
      for (const c of candidatesOf(n.key, n.value, byService.get(n.key), warn)) frontends.push(c);
    }
  } catch (e) {
    warn('input', `unexpected error: ${errText(e)}`);
  }

  // A stable sort: services asking for one address stay in name order, and the first one gets it.
  frontends.sort((a, b) => (a.sortKey < b.sortKey ? -1 : a.sortKey > b.sortKey ? 1 : 0));
  const out: LbFrontend[] = [];
  for (let i = 0; i < frontends.length;) {
    const owner = frontends[i]!;
    out.push(owner.fe);
    for (i++; i < frontends.length && frontends[i]!.sortKey === owner.sortKey; i++) {
      const fe = frontends[i]!.fe;
      warn(`Service ${fe.service}`, conflictReason(fe, owner.fe.service));
    }
  }
  warnings.sort(compareWarnings);
  return { state: { frontends: out }, warnings };
}

// ---------------------------------------------------------------------------
// Incremental model

/** One frontend that differs from the previous update: `before` is what was there, `after` what is there now. */
export interface FrontendChange {
  before: LbFrontend | undefined;
  after: LbFrontend | undefined;
}

export interface LbModelUpdate {
  /** Frontends that changed, keyed by their sort key (frontendSortKey). */
  changes: Map<string, FrontendChange>;
  /** The whole state, as buildLbState gives it (computed on first access). */
  readonly state: LbState;
  /** Every warning, as buildLbState gives them (computed on first access; frozen, shared until a warning changes). */
  readonly warnings: readonly ModelWarning[];
}

export function sameFrontend(a: LbFrontend | undefined, b: LbFrontend | undefined): boolean {
  if (a === b) return true;
  if (!a || !b) return false;
  if (a.service !== b.service || a.portName !== b.portName || a.type !== b.type || a.family !== b.family || a.address !== b.address
    || a.port !== b.port || a.protocol !== b.protocol || a.affinityTimeoutSeconds !== b.affinityTimeoutSeconds) return false;
  return a.backends.equals(b.backends);
}

/**
 * What changed between two versions of a list of objects, by identity:
 * sources hand out the same object for an object that did not change, so a
 * common prefix and suffix are skipped and only the middle is compared.
 */
function diffRefs(prev: readonly unknown[], next: readonly unknown[]): { removed: unknown[]; added: unknown[] } {
  let s = 0;
  const m = Math.min(prev.length, next.length);
  while (s < m && prev[s] === next[s]) s++;
  let ep = prev.length, en = next.length;
  while (ep > s && en > s && prev[ep - 1] === next[en - 1]) {
    ep--;
    en--;
  }
  let removed = prev.slice(s, ep);
  let added = next.slice(s, en);
  if (removed.length > 0 && added.length > 0 && removed.length + added.length > 2) {
    // Moved objects cancel out (a multiset difference).
    const count = new Map<unknown, number>();
    for (const o of removed) count.set(o, (count.get(o) ?? 0) + 1);
    const keep: unknown[] = [];
    for (const o of added) {
      const c = count.get(o) ?? 0;
      if (c > 0) count.set(o, c - 1);
      else keep.push(o);
    }
    added = keep;
    removed = [];
    for (const [o, c] of count) for (let i = 0; i < c; i++) removed.push(o);
  }
  return { removed, added };
}

function removeOne(list: unknown[], o: unknown): void {
  const i = list.indexOf(o);
  if (i >= 0) list.splice(i, 1);
}

/** What produced a warning: a Service, an EndpointSlice, an address conflict (by frontend sort key), duplicate Services, duplicate slices. */
type WarningSource = 's' | 'e' | 'c' | 'ds' | 'de';

/** No warnings (shared; never added to: #setWarnings keeps only non-empty lists). */
const NO_WARNINGS: ModelWarning[] = [];

/** Objects sharing one "namespace/name" (a group of one is the object itself: no array per object). */
class Dups {
  readonly list: unknown[];
  constructor(list: unknown[]) {
    this.list = list;
  }
}
type Group = unknown;

/** No object chosen yet. */
const UNSET: unique symbol = Symbol('unset');

/** Objects of one "namespace/name", as LbModel keeps them: the group, and when it was last marked for work (update number). */
interface Entry {
  readonly key: string;
  group: Group | undefined;
  mark: number;
}

/** An EndpointSlice name: its objects, the one used, and the service its parsed slice feeds (if any). */
interface SliceEntry extends Entry {
  obj: unknown;
  svc: SvcEntry | undefined;
  parsed: ParsedSlice | undefined;
}

/**
 * A Service name: its objects, the one used, the frontends it asks for,
 * and the parsed slices labelled for it (in slice-name order, as
 * buildLbState sees them; there may be slices and no Service).
 */
interface SvcEntry extends Entry {
  obj: unknown;
  /** A few: an array, not a Map, per service. */
  cands: Candidate[];
  slices: ParsedSlice[];
}

/** A frontend address (by sort key): the services asking for it in name order (the first one gets it), and the one that has it. */
interface FrontEntry {
  readonly sk: string;
  claims: SvcEntry | SvcEntry[] | undefined;
  winner: LbFrontend | undefined;
  mark: number;
}

/** Shared empty lists (never added to: replaced by a list of their own). */
const NO_CANDIDATES: Candidate[] = [];
const NO_SLICES: ParsedSlice[] = [];

function candidate(cands: readonly Candidate[] | undefined, sortKey: string): LbFrontend | undefined {
  if (cands) {
    for (let i = 0; i < cands.length; i++) if (cands[i]!.sortKey === sortKey) return cands[i]!.fe;
  }
  return undefined;
}

/**
 * buildLbState, kept up to date one change at a time: update(snapshot) does
 * work in proportion to the objects that changed (by identity: a source must
 * hand out a new object when an object changes, never mutate one in place)
 * and reports the frontends that changed. The state and warnings it gives are
 * those buildLbState gives for the same input. The lists passed in are kept
 * until the next update and must not be changed in place meanwhile.
 *
 * One Map per kind of name (slice, service, frontend address) holds all
 * there is to know about it, and work is marked on the entries themselves
 * (no Set of keys per update): at 10k services the Map operations on string
 * keys were most of an update's time.
 */
export class LbModel {
  #services: unknown[] = [];
  #slicesIn: unknown[] = [];
  readonly #sliceEntries = new Map<string, SliceEntry>();
  readonly #svcEntries = new Map<string, SvcEntry>();
  readonly #fronts = new Map<string, FrontEntry>();
  /** Objects without a usable name, with how many times each is present. */
  readonly #badServices = new Map<unknown, number>();
  readonly #badSlices = new Map<unknown, number>();
  /** Warnings by what produced them (WarningSource), then by object key (frontend sort key for conflicts). */
  readonly #warn: Record<WarningSource, Map<string, ModelWarning[]>> = { s: new Map(), e: new Map(), c: new Map(), ds: new Map(), de: new Map() };
  #inputWarnings: ModelWarning[] = [];
  /** warnings(), until a warning changes. */
  #warnings: readonly ModelWarning[] | undefined;
  #state: LbState | undefined;
  /** The number of the update at hand (entries marked with it are in this update's work lists). */
  #epoch = 0;
  #dirtySvcs: SvcEntry[] = [];
  #touched: FrontEntry[] = [];

  update(input: ServicesInput): LbModelUpdate {
    const changes = new Map<string, FrontendChange>();
    const inputWarnings: ModelWarning[] = [];
    let services: unknown[] = [], slices: unknown[] = [];
    try {
      const servicesIn: unknown = isRec(input) ? get(input, 'services') : undefined;
      const slicesIn: unknown = isRec(input) ? get(input, 'endpointSlices') : undefined;
      if (Array.isArray(servicesIn)) services = servicesIn;
      else if (servicesIn !== undefined) inputWarnings.push({ object: 'input', reason: 'services is not a list' });
      if (Array.isArray(slicesIn)) slices = slicesIn;
      else if (slicesIn !== undefined) inputWarnings.push({ object: 'input', reason: 'endpointSlices is not a list' });
    } catch (e) {
      inputWarnings.push({ object: 'input', reason: `unexpected error: ${errText(e)}` });
    }
    if (inputWarnings.length > 0 || this.#inputWarnings.length > 0) this.#warnings = undefined;
    this.#inputWarnings = inputWarnings;

    this.#epoch++;
    const dirtySlices: SliceEntry[] = [];
    const dirtySvcs: SvcEntry[] = (this.#dirtySvcs = []);
    const touched: FrontEntry[] = (this.#touched = []);
    // Unnamed objects are reported by position, which any change of the lists may move.
    if (this.#badSlices.size > 0 || this.#badServices.size > 0) this.#warnings = undefined;
    this.#regroup(this.#slicesIn, slices, this.#sliceEntries, this.#badSlices, dirtySlices, newSliceEntry);
    this.#regroup(this.#services, services, this.#svcEntries, this.#badServices, dirtySvcs, newSvcEntry);
    if (this.#badSlices.size > 0 || this.#badServices.size > 0) this.#warnings = undefined;
    // Kept as given (sources hand out fresh lists): the next update diffs against them.
    this.#slicesIn = slices;
    this.#services = services;

    for (let i = 0; i < dirtySlices.length; i++) this.#updateSlice(dirtySlices[i]!);
    // (#updateSlice appends to dirtySvcs, #updateService to touched.)
    for (let i = 0; i < dirtySvcs.length; i++) this.#updateService(dirtySvcs[i]!);
    for (let i = 0; i < touched.length; i++) this.#settle(touched[i]!, changes);
    this.#dirtySvcs = [];
    this.#touched = [];
    if (changes.size > 0) this.#state = undefined;

    const self = this;
    let warnings: readonly ModelWarning[] | undefined;
    return {
      changes,
      get state() {
        return self.state();
      },
      get warnings() {
        return (warnings ??= self.warnings());
      },
    };
  }

  /** The current state (sorted like buildLbState's). */
  state(): LbState {
    if (!this.#state) {
      const won: FrontEntry[] = [];
      this.#fronts.forEach((f) => {
        if (f.winner) won.push(f);
      });
      won.sort((a, b) => (a.sk < b.sk ? -1 : a.sk > b.sk ? 1 : 0));
      this.#state = { frontends: won.map((f) => f.winner!) };
    }
    return this.#state;
  }

  /** The current warnings (sorted like buildLbState's; frozen: the same list is handed out until a warning changes). */
  warnings(): readonly ModelWarning[] {
    return (this.#warnings ??= this.#allWarnings());
  }

  #allWarnings(): readonly ModelWarning[] {
    const out: ModelWarning[] = [...this.#inputWarnings];
    const positional = (list: unknown[], bad: Map<unknown, number>, kind: string) => {
      if (bad.size === 0) return;
      list.forEach((o, i) => {
        if (!bad.has(o)) return;
        const meta = readMeta(o);
        if (typeof meta === 'string') out.push({ object: `${kind} #${i}`, reason: meta });
      });
    };
    positional(this.#slicesIn, this.#badSlices, 'EndpointSlice');
    positional(this.#services, this.#badServices, 'Service');
    for (const m of Object.values(this.#warn)) for (const list of m.values()) out.push(...list);
    return Object.freeze(out.sort(compareWarnings));
  }

  /** Warnings of the step at hand, collected without a list or a closure per object (most objects have none). */
  readonly #scratch: ModelWarning[] = [];
  readonly #collect = (object: string, reason: string): void => {
    this.#scratch.push({ object, reason });
  };

  /** What #collect gathered since the last call (and start over). */
  #collected(): ModelWarning[] {
    if (this.#scratch.length === 0) return NO_WARNINGS;
    return this.#scratch.splice(0);
  }

  #setWarnings(source: WarningSource, key: string, list: ModelWarning[]): void {
    const m = this.#warn[source];
    if (list.length > 0) {
      m.set(key, list);
      this.#warnings = undefined;
    } else if (m.size > 0 && m.delete(key)) this.#warnings = undefined;
  }

  /** Apply the difference between two versions of a list to the entries' groups; entries that changed go to `dirty`. */
  #regroup<E extends Entry>(prev: unknown[], next: unknown[], entries: Map<string, E>, bad: Map<unknown, number>, dirty: E[], make: (key: string) => E): void {
    const epoch = this.#epoch;
    const { removed, added } = diffRefs(prev, next);
    for (let i = 0; i < removed.length; i++) {
      const o = removed[i];
      const meta = readMeta(o);
      if (typeof meta === 'string') {
        const c = (bad.get(o) ?? 1) - 1;
        if (c > 0) bad.set(o, c);
        else bad.delete(o);
        continue;
      }
      const e = entries.get(nameKey(meta.namespace, meta.name));
      if (!e) continue; // never added: cannot happen
      const g = e.group;
      if (g instanceof Dups) {
        removeOne(g.list, o);
        if (g.list.length === 1) e.group = g.list[0];
      } else if (g === o) e.group = undefined;
      if (e.mark !== epoch) {
        e.mark = epoch;
        dirty.push(e);
      }
    }
    for (let i = 0; i < added.length; i++) {
      const o = added[i];
      const meta = readMeta(o);
      if (typeof meta === 'string') {
        bad.set(o, (bad.get(o) ?? 0) + 1);
        continue;
      }
      const key = nameKey(meta.namespace, meta.name);
      let e = entries.get(key);
      if (!e) entries.set(key, (e = make(key)));
      const g = e.group;
      if (g === undefined) e.group = o;
      else if (g instanceof Dups) g.list.push(o);
      else e.group = new Dups([g, o]);
      if (e.mark !== epoch) {
        e.mark = epoch;
        dirty.push(e);
      }
    }
  }

  #markSvc(s: SvcEntry): void {
    if (s.mark === this.#epoch) return;
    s.mark = this.#epoch;
    this.#dirtySvcs.push(s);
  }

  #updateSlice(e: SliceEntry): void {
    const group = e.group;
    const chosen = group instanceof Dups ? chooseOne(e.key, group.list, 'EndpointSlice', this.#collect) : group;
    this.#setWarnings('de', e.key, this.#collected());
    if (group !== undefined && e.obj === chosen) return;
    if (e.svc) {
      const list = e.svc.slices;
      const i = list.indexOf(e.parsed!);
      if (i >= 0) list.splice(i, 1);
      this.#markSvc(e.svc);
      e.svc = undefined;
      e.parsed = undefined;
    }
    if (group === undefined) {
      this.#sliceEntries.delete(e.key);
      this.#setWarnings('e', e.key, NO_WARNINGS);
      return;
    }
    const r = sliceOf(e.key, chosen, this.#collect);
    this.#setWarnings('e', e.key, this.#collected());
    e.obj = chosen;
    if (r) {
      let s = this.#svcEntries.get(r.serviceKey);
      if (!s) this.#svcEntries.set(r.serviceKey, (s = newSvcEntry(r.serviceKey)));
      const list = s.slices;
      if (list.length === 0) s.slices = [r.slice]; // usually the only one: no room for more
      else {
        let i = list.length;
        while (i > 0 && list[i - 1]!.id > e.key) i--;
        list.splice(i, 0, r.slice);
      }
      e.svc = s;
      e.parsed = r.slice;
      this.#markSvc(s);
    }
  }

  #touch(sk: string): FrontEntry {
    let f = this.#fronts.get(sk);
    if (!f) this.#fronts.set(sk, (f = { sk, claims: undefined, winner: undefined, mark: 0 }));
    if (f.mark !== this.#epoch) {
      f.mark = this.#epoch;
      this.#touched.push(f);
    }
    return f;
  }

  #updateService(e: SvcEntry): void {
    const group = e.group;
    const chosen = group instanceof Dups ? chooseOne(e.key, group.list, 'Service', this.#collect) : group;
    this.#setWarnings('ds', e.key, this.#collected());
    const old = e.cands;
    let cands = NO_CANDIDATES;
    if (group !== undefined) {
      cands = candidatesOf(e.key, chosen, e.slices, this.#collect);
      this.#setWarnings('s', e.key, this.#collected());
      e.obj = chosen;
    } else {
      this.#setWarnings('s', e.key, NO_WARNINGS);
      e.obj = UNSET;
    }
    e.cands = cands;
    for (let i = 0; i < old.length; i++) {
      const sk = old[i]!.sortKey;
      if (candidate(cands, sk)) continue;
      const f = this.#touch(sk);
      const list = f.claims;
      if (list === e) f.claims = undefined;
      else if (Array.isArray(list)) {
        removeOne(list, e);
        if (list.length === 1) f.claims = list[0]!;
      }
    }
    for (let i = 0; i < cands.length; i++) {
      const sk = cands[i]!.sortKey;
      const f = this.#touch(sk);
      if (candidate(old, sk)) continue;
      const list = f.claims;
      if (list === undefined) f.claims = e;
      else if (!Array.isArray(list)) f.claims = list.key < e.key ? [list, e] : [e, list];
      else {
        let i = 0;
        while (i < list.length && list[i]!.key < e.key) i++;
        list.splice(i, 0, e);
      }
    }
    if (group === undefined && e.slices.length === 0) this.#svcEntries.delete(e.key);
  }

  /** Settle who gets a frontend address and record the change, if any. */
  #settle(f: FrontEntry, changes: Map<string, FrontendChange>): void {
    const claims = f.claims;
    const owner = Array.isArray(claims) ? claims[0] : claims;
    const after = owner === undefined ? undefined : candidate(owner.cands, f.sk);
    if (Array.isArray(claims) && owner !== undefined) {
      for (let i = 1; i < claims.length; i++) {
        const c = claims[i]!;
        const fe = candidate(c.cands, f.sk);
        if (fe) this.#collect(`Service ${c.key}`, conflictReason(fe, owner.key));
      }
    }
    this.#setWarnings('c', f.sk, this.#collected());
    const before = f.winner;
    f.winner = after;
    if (owner === undefined) this.#fronts.delete(f.sk);
    if (sameFrontend(before, after)) return;
    changes.set(f.sk, { before, after });
  }
}

function newSliceEntry(key: string): SliceEntry {
  return { key, group: undefined, mark: 0, obj: UNSET, svc: undefined, parsed: undefined };
}

function newSvcEntry(key: string): SvcEntry {
  return { key, group: undefined, mark: 0, obj: UNSET, cands: NO_CANDIDATES, slices: NO_SLICES };
}
