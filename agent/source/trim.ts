// Objects are trimmed when they come in, to what the agent reads (now, or in
// the features the model names as next): a Kubernetes object carries much the
// agent never looks at (managedFields, kubectl's last-applied annotation, a
// Pod's containers, a Node's image list, an endpoint's targetRef), and the
// sources keep every object for as long as it exists.
//
// The result keeps the Kubernetes shape (same field names and nesting, values
// taken as they are), so consumers need no change: a field is either kept
// exactly or absent. Values of an unexpected type are kept as they are, so
// the consumer that validates them still sees and reports them. To keep the
// copy small, values that repeat are shared (conditions and ports lists,
// frozen; common strings) and a slice's plain endpoints are packed, read back
// as plain objects. Pure apart from those shared caches (bounded).
//
// Readers of these objects: agent/model (Services, EndpointSlices), the
// agent's node view (Nodes: podCIDR(s), addresses), and the policy work to
// come (Pods, Namespaces, NetworkPolicies: labels, IPs, named ports).
// Whoever starts reading another field adds it here, with a test.
import type { KubeObject } from './types.ts';

type Rec = Record<string, unknown>;

const isRec = (v: unknown): v is Rec => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The fields of `o` named in `keys` that are present, in that order (the rest dropped). */
function pick(o: Rec, keys: readonly string[]): Rec {
  const out: Rec = {};
  for (const k of keys) if (Object.prototype.hasOwnProperty.call(o, k) && o[k] !== undefined) out[k] = o[k];
  return out;
}

/** `pick` on a record; anything else is returned as it is (for the consumer to report). */
function pickRec(v: unknown, keys: readonly string[]): unknown {
  return isRec(v) ? pick(v, keys) : v;
}

/** `pickRec` on every element of a list; a non-list is returned as it is. */
function pickEach(v: unknown, keys: readonly string[]): unknown {
  return Array.isArray(v) ? v.map((e) => pickRec(e, keys)) : v;
}

/**
 * Strings that repeat across many objects (apiVersion, kind, namespaces,
 * node names, zones: a few per cluster, on every object or endpoint) kept
 * once: parsers give each occurrence its own copy. Bounded: past that,
 * strings are kept as they come.
 */
const interned = new Map<string, string>();
const MAX_INTERNED = 4096;

function intern(s: string): string {
  const have = interned.get(s);
  if (have !== undefined) return have;
  if (interned.size < MAX_INTERNED) interned.set(s, s);
  return s;
}

/** `o[k]` interned when it is a string. */
function internField(o: Rec, k: string): void {
  const v = o[k];
  if (typeof v === 'string') o[k] = intern(v);
}

/** apiVersion and kind, the start of every trimmed object. */
function head(o: Rec): Rec {
  const out = pick(o, ['apiVersion', 'kind']);
  internField(out, 'apiVersion');
  internField(out, 'kind');
  return out;
}

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

const METADATA = ['name', 'namespace', 'uid', 'resourceVersion', 'generation', 'labels', 'annotations', 'deletionTimestamp'] as const;

function metadata(md: unknown): unknown {
  if (!isRec(md)) return md;
  const out = pick(md, METADATA);
  internField(out, 'namespace');
  const ann = out.annotations;
  // kubectl apply stores the whole object again in this annotation.
  if (isRec(ann) && Object.prototype.hasOwnProperty.call(ann, LAST_APPLIED)) {
    const rest = { ...ann };
    delete rest[LAST_APPLIED];
    if (Object.keys(rest).length > 0) out.annotations = rest;
    else delete out.annotations;
  }
  return out;
}

const SERVICE_SPEC = [
  'type', 'clusterIP', 'clusterIPs', 'ports', 'sessionAffinity', 'sessionAffinityConfig', 'externalIPs', 'externalName',
  'externalTrafficPolicy', 'internalTrafficPolicy', 'trafficDistribution', 'healthCheckNodePort', 'loadBalancerIP',
  'loadBalancerSourceRanges',
] as const;

const ENDPOINT = ['addresses', 'conditions', 'nodeName', 'zone', 'hints'] as const;
const CONDITIONS = ['ready', 'serving', 'terminating'] as const;

/**
 * Conditions objects are shared: a cluster has 100k endpoints but only a few
 * distinct {ready, serving, terminating}. Only plain ones (those three keys,
 * booleans or absent) are shared, frozen so a stray write fails loudly.
 */
const sharedConditions = new Map<string, Readonly<Rec>>();

/** The shared object for `v` when it is one of the plain shapes, else undefined. */
function plainConditions(v: unknown): Readonly<Rec> | undefined {
  if (!isRec(v)) return undefined;
  let key = '';
  let n = 0;
  for (const k of CONDITIONS) {
    if (!Object.prototype.hasOwnProperty.call(v, k) || v[k] === undefined) {
      key += '-';
      continue;
    }
    const b = v[k];
    if (typeof b !== 'boolean') return undefined; // odd: the model reports it
    key += b ? 't' : 'f';
    n++;
  }
  if (Object.keys(v).length !== n) return undefined; // other keys: not one of the plain shapes
  let c = sharedConditions.get(key);
  if (!c) {
    c = Object.freeze(pick(v, CONDITIONS));
    sharedConditions.set(key, c);
  }
  return c;
}

/** `v` as a shared object when plain, else as it is. */
const conditions = (v: unknown): unknown => plainConditions(v) ?? v;

function endpoint(e: unknown): unknown {
  if (!isRec(e)) return e;
  const out = pick(e, ENDPOINT);
  if (out.conditions !== undefined) out.conditions = conditions(out.conditions);
  return out;
}

/** One value for every endpoint (a field most slices have the same on each), or one per endpoint. */
type PerEndpoint<T> = T | T[];

const at = <T>(v: PerEndpoint<T>, i: number): T => (Array.isArray(v) ? v[i] : v) as T;

/** `values` as one value when they are all the same. */
function compact<T>(values: T[]): PerEndpoint<T> {
  for (let i = 1; i < values.length; i++) if (values[i] !== values[0]) return values;
  return values[0] as T;
}

/**
 * The endpoints of an EndpointSlice, packed: the slices are the bulk of what
 * the agent keeps (at 10k services x 10 endpoints, one object and one
 * addresses array per endpoint: ~7 of ~18 MB), and the model keeps its own
 * parsed copy of them. Only the plain shape is packed: one address, shared
 * conditions, string nodeName and zone, no hints (anything else is kept as it
 * came, for the model to read or report).
 */
export class PackedEndpoints {
  readonly addresses: string[];
  readonly conditions: PerEndpoint<Readonly<Rec> | undefined>;
  readonly nodeNames: PerEndpoint<string | undefined>;
  readonly zones: PerEndpoint<string | undefined>;
  constructor(addresses: string[], conditions: PerEndpoint<Readonly<Rec> | undefined>, nodeNames: PerEndpoint<string | undefined>, zones: PerEndpoint<string | undefined>) {
    this.addresses = addresses;
    this.conditions = conditions;
    this.nodeNames = nodeNames;
    this.zones = zones;
  }
}

const optionalString = (v: unknown): v is string | undefined => v === undefined || typeof v === 'string';

/** `eps` (a slice's endpoints as they came) packed, or undefined when one is not of the plain shape. */
function pack(eps: unknown[]): PackedEndpoints | undefined {
  const n = eps.length;
  const addresses = new Array<string>(n), conds = new Array<Readonly<Rec> | undefined>(n);
  const nodes = new Array<string | undefined>(n), zones = new Array<string | undefined>(n);
  for (let i = 0; i < n; i++) {
    const e = eps[i];
    if (!isRec(e) || e.hints !== undefined) return undefined;
    const a = e.addresses, node = e.nodeName, zone = e.zone;
    if (!Array.isArray(a) || a.length !== 1 || typeof a[0] !== 'string' || !optionalString(node) || !optionalString(zone)) return undefined;
    const c = e.conditions === undefined ? undefined : plainConditions(e.conditions);
    if (e.conditions !== undefined && c === undefined) return undefined;
    addresses[i] = a[0];
    conds[i] = c;
    nodes[i] = node === undefined ? undefined : intern(node);
    zones[i] = zone === undefined ? undefined : intern(zone);
  }
  return new PackedEndpoints(addresses, compact(conds), compact(nodes), compact(zones));
}

/**
 * Equal `ports` lists of EndpointSlices and Services shared, frozen (most
 * of a cluster's carry one of a few: name, port, protocol, targetPort).
 * Only lists of records of strings and numbers; bounded like `interned`.
 */
const sharedPortLists = new Map<string, readonly Rec[]>();
const PORT_KEYS = new Set(['name', 'port', 'protocol', 'appProtocol', 'targetPort', 'nodePort']);

function sharedPorts(v: unknown): unknown {
  if (!Array.isArray(v)) return v;
  for (const p of v) {
    if (!isRec(p)) return v;
    for (const k of Object.keys(p)) {
      const x = p[k];
      if (!PORT_KEYS.has(k) || (typeof x !== 'string' && typeof x !== 'number')) return v;
    }
  }
  const key = JSON.stringify(v);
  const have = sharedPortLists.get(key);
  if (have) return have;
  if (sharedPortLists.size >= MAX_INTERNED) return v;
  const list = Object.freeze(v.map((p: Rec) => Object.freeze({ ...p })));
  sharedPortLists.set(key, list);
  return list;
}

const PACKED = Symbol('kinglet.packedEndpoints');

/**
 * The packed endpoints of a slice trimObject gave, or undefined (not packed,
 * or its endpoints were replaced since). Read-only: a consumer that keeps
 * its arrays shares them instead of copying them (the model does).
 */
export function packedEndpoints(slice: unknown): Readonly<PackedEndpoints> | undefined {
  if (!isRec(slice)) return undefined;
  const p = (slice as Record<symbol, unknown>)[PACKED];
  return p instanceof PackedEndpoints ? p : undefined;
}

/**
 * `endpoints` of a packed slice: plain objects built at each read (the
 * model reads them once per change of the slice), the same as trimming
 * gives for an unpacked one. Shared by every packed slice.
 */
function unpack(this: Rec): Rec[] {
  const p = this[PACKED as unknown as string] as PackedEndpoints;
  const out = new Array<Rec>(p.addresses.length);
  for (let i = 0; i < out.length; i++) {
    const e: Rec = { addresses: [p.addresses[i]] };
    const c = at(p.conditions, i), node = at(p.nodeNames, i), zone = at(p.zones, i);
    if (c !== undefined) e.conditions = c;
    if (node !== undefined) e.nodeName = node;
    if (zone !== undefined) e.zone = zone;
    out[i] = e;
  }
  return out;
}

/** Writing `endpoints` makes it a plain property again. */
function replaceEndpoints(this: Rec, v: unknown): void {
  Object.defineProperty(this, 'endpoints', { value: v, writable: true, enumerable: true, configurable: true });
  delete this[PACKED as unknown as string];
}

const PACKED_ENDPOINTS: PropertyDescriptor = { get: unpack, set: replaceEndpoints, enumerable: true, configurable: true };

function sliceEndpoints(out: Rec, eps: unknown): void {
  const p = Array.isArray(eps) && eps.length > 0 ? pack(eps) : undefined;
  if (!p) {
    out.endpoints = Array.isArray(eps) ? eps.map(endpoint) : eps;
    return;
  }
  Object.defineProperty(out, PACKED, { value: p, enumerable: false, writable: true, configurable: true });
  Object.defineProperty(out, 'endpoints', PACKED_ENDPOINTS);
}

/** apiVersion, kind and the trimmed metadata: what every kind keeps. */
function base(o: Rec): Rec {
  const out = head(o);
  out.metadata = metadata(o.metadata);
  return out;
}

function withSpecStatus(o: Rec, spec: ((s: Rec) => Rec) | undefined, status: ((s: Rec) => Rec) | undefined): Rec {
  const out = base(o);
  if (o.spec !== undefined) out.spec = spec && isRec(o.spec) ? spec(o.spec) : o.spec;
  if (o.status !== undefined) out.status = status && isRec(o.status) ? status(o.status) : o.status;
  return out;
}

const TRIM: Record<string, (o: Rec) => Rec> = {
  Service: (o) => withSpecStatus(o, (s) => {
    const out = pick(s, SERVICE_SPEC);
    if (out.ports !== undefined) out.ports = sharedPorts(out.ports);
    internField(out, 'type');
    internField(out, 'sessionAffinity');
    return out;
  }, (s) => pick(s, ['loadBalancer'])),
  EndpointSlice: (o) => {
    const out = base(o);
    for (const k of ['addressType', 'ports'] as const) if (o[k] !== undefined) out[k] = o[k];
    internField(out, 'addressType');
    if (out.ports !== undefined) out.ports = sharedPorts(out.ports);
    if (o.endpoints !== undefined) sliceEndpoints(out, o.endpoints);
    return out;
  },
  Node: (o) => withSpecStatus(o, (s) => pick(s, ['podCIDR', 'podCIDRs', 'providerID', 'unschedulable', 'taints']), (s) => pick(s, ['addresses', 'conditions'])),
  Pod: (o) => withSpecStatus(
    o,
    (s) => {
      const out = pick(s, ['nodeName', 'hostNetwork']);
      // Named ports, for NetworkPolicy.
      if (s.containers !== undefined) out.containers = pickEach(s.containers, ['name', 'ports']);
      return out;
    },
    (s) => pick(s, ['phase', 'podIP', 'podIPs', 'hostIP', 'hostIPs']),
  ),
  Namespace: (o) => withSpecStatus(o, () => ({}), (s) => pick(s, ['phase'])),
  NetworkPolicy: (o) => withSpecStatus(o, undefined, undefined),
};

/**
 * A trimmed copy of `obj`, an object of `kind` (one of the watched kinds;
 * any other kind, or a non-object, is returned as it is). The input is not
 * changed; unchanged sub-objects are shared with it.
 */
export function trimObject(kind: string, obj: KubeObject): KubeObject {
  const f = Object.prototype.hasOwnProperty.call(TRIM, kind) ? TRIM[kind] : undefined;
  if (!f || !isRec(obj)) return obj;
  return f(obj) as KubeObject;
}
