// `--source kube`: Kubernetes objects from the API server, through informers
// (list + watch) of @kubernetes/client-node.
//
// Endpoint
// - Kubeconfig from --kubeconfig, else $KUBECONFIG, else /etc/rancher/k3s/k3s.yaml,
//   else the in-cluster service account.
// - With kube-proxy disabled, the agent itself implements the `kubernetes`
//   ClusterIP, so it must never depend on it. When the kubeconfig is k3s's
//   (a path under /etc/rancher/k3s/, or server https://127.0.0.1:6443 with
//   k3s's "default" cluster/user names), or the server is the kubernetes
//   ClusterIP (in-cluster config, kubernetes.default.svc, 10.43.0.1), the
//   agent talks to https://127.0.0.1:6444 instead, unless --api-server says
//   otherwise. status() tells which endpoint and why.
//   Note: on k3s servers kube-apiserver itself listens on 127.0.0.1:6444
//   (k3s-io/k3s#6107), on agents the supervisor's client load balancer does
//   (k3s-io/k3s#5973); ricsanfre/pi-cluster#512 uses it for Cilium for that reason.
//
// Informers (client-node ListWatch, one per kind; the version in
// node_modules/@kubernetes/client-node/dist/cache.js behaves so, over a watch
// with the contract of its watch.js):
// - it relists by itself only after 410 Gone (an HTTP 410 on watch, or an
//   ERROR event with code 410 followed by the end of the stream); after a
//   clean end of a watch it re-watches by itself (backoff 1 s doubling to 30 s,
//   reset by any event, no jitter); after a client-side idle timeout (30 s
//   without bytes) it re-watches at once; after ANY other error (list failure,
//   connection refused/reset, TLS, 401/403/5xx on watch) it calls the error
//   handlers and stays stopped. Its stop() also reports an AbortError.
// - So here: our own watch (kube-http.ts: client-node's Watch contract over
//   node:https, without undici) sits under each ListWatch. Clean ends and
//   ERROR events become errors, so one scheduler of ours restarts every
//   watch with exponential backoff and jitter and counts the restarts; a 504
//   "too large resource version" (the server's store was reset behind us)
//   becomes a 410 so that the informer relists; callbacks after stop() or
//   from a replaced informer are dropped; a failing reconnect cannot become
//   an unhandled rejection. Watches ask for bookmarks (the client does not).
// - Lists are ours (raw JSON over node:https with the kubeconfig's TLS and
//   credentials, paged with limit/continue): the typed client would
//   deserialize, and one odd object could fail a whole list. Each page is
//   validated and trimmed (trim.ts) as it arrives, so a list holds at most
//   one page of raw JSON; watch events are trimmed the same way. Each list
//   replaces the cached objects of its kind in one step, so a relist (after
//   410 or an apiserver restart with new data) applies deletions only once the
//   new list is complete; nothing disappears in between.
// - Handlers only update the cache and call onChange; the consumer debounces
//   and reconciles. synced becomes true once every kind has completed its
//   first list, and stays true: later outages keep the last known state.
// - A malformed object (not an object, no metadata.name, a namespaced kind
//   without namespace, another kind in this stream, spec/status or list
//   fields of the wrong type) is logged, counted once per version in
//   status().malformed and skipped; the last good version, if any, stays.
import type { ClientRequest } from 'node:http';
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
// The two files needed, not the package index (which loads every generated API client): see client-node-slim.ts.
import { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import { ListWatch } from '@kubernetes/client-node/dist/cache.js';
import type { Watch } from '@kubernetes/client-node/dist/watch.js';
import type { Cluster, KubernetesObject, KubernetesListObject } from '@kubernetes/client-node';
import { kubeGet, kubeRequestOptions, watchStream, type WatchCallback } from './kube-http.ts';
import type { Logger } from '../log.ts';
import type { KubeObject, Snapshot, Source, SourceStatus } from './types.ts';
import { trimObject } from './trim.ts';

export const K3S_KUBECONFIG = '/etc/rancher/k3s/k3s.yaml';
/** Reaches the apiserver on every k3s node: kube-apiserver on servers, the supervisor's load balancer on agents. */
export const K3S_LOCAL_APISERVER = 'https://127.0.0.1:6444';
const IN_CLUSTER_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

export interface WatchedResource {
  /** API group ('' for core). */
  group: string;
  version: string;
  /** Resource name as in RBAC rules and URLs. */
  resource: string;
  kind: string;
  namespaced: boolean;
  bucket: keyof Snapshot;
}

/** Exactly what the informers list and watch (cluster-wide); the RBAC manifest must grant get/list/watch on these and nothing else. */
export const WATCHED_RESOURCES: readonly WatchedResource[] = [
  { group: '', version: 'v1', resource: 'services', kind: 'Service', namespaced: true, bucket: 'services' },
  { group: 'discovery.k8s.io', version: 'v1', resource: 'endpointslices', kind: 'EndpointSlice', namespaced: true, bucket: 'endpointSlices' },
  { group: '', version: 'v1', resource: 'nodes', kind: 'Node', namespaced: false, bucket: 'nodes' },
  { group: '', version: 'v1', resource: 'pods', kind: 'Pod', namespaced: true, bucket: 'pods' },
  { group: '', version: 'v1', resource: 'namespaces', kind: 'Namespace', namespaced: false, bucket: 'namespaces' },
  { group: 'networking.k8s.io', version: 'v1', resource: 'networkpolicies', kind: 'NetworkPolicy', namespaced: true, bucket: 'networkPolicies' },
];

/** The verbs the agent uses on each watched resource. */
export const WATCH_VERBS: readonly string[] = ['get', 'list', 'watch'];

const apiVersionOf = (r: WatchedResource): string => (r.group ? `${r.group}/${r.version}` : r.version);
export const listPathOf = (r: WatchedResource): string =>
  r.group ? `/apis/${r.group}/${r.version}/${r.resource}` : `/api/${r.version}/${r.resource}`;

// ---------------------------------------------------------------- endpoint

export interface KubeconfigChoice {
  /** --kubeconfig */
  kubeconfig?: string;
  /** --api-server: overrides the kubeconfig's server. */
  apiServer?: string;
  /** Environment (KUBECONFIG, KUBERNETES_SERVICE_HOST/PORT); default process.env. */
  env?: Record<string, string | undefined>;
  /** Where k3s writes its kubeconfig; default /etc/rancher/k3s/k3s.yaml. */
  k3sKubeconfig?: string;
  /** Test seam for file existence. */
  exists?: (path: string) => boolean;
}

export interface ResolvedEndpoint {
  kc: KubeConfig;
  /** The API server URL the agent talks to. */
  endpoint: string;
  /** Why this endpoint (shown by status). */
  reason: string;
  /** Kubeconfig file used, or 'in-cluster'. */
  source: string;
  /** The server the kubeconfig itself names. */
  configured: string;
}

function hostOf(server: string): { host: string; port: string } | undefined {
  try {
    const u = new URL(server);
    return { host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port || (u.protocol === 'https:' ? '443' : '80') };
  } catch {
    return undefined;
  }
}

const isLoopback = (h: string): boolean => h === '127.0.0.1' || h === 'localhost' || h === '::1';

/** True when the kubeconfig looks like the one k3s writes (path, or 127.0.0.1:6443 with k3s's names). */
export function isK3sKubeconfig(path: string | undefined, server: string, clusterName: string, userName: string, k3sDir = '/etc/rancher/k3s/'): boolean {
  if (path && path.startsWith(k3sDir)) return true;
  const h = hostOf(server);
  if (!h || !isLoopback(h.host) || h.port !== '6443') return false;
  const k3sish = (n: string): boolean => n === 'default' || /k3s/i.test(n);
  return k3sish(clusterName) || k3sish(userName);
}

/** True when the server is (probably) the `kubernetes` Service's ClusterIP, which this agent itself implements. */
export function isClusterIpServer(server: string, env: Record<string, string | undefined>): boolean {
  const h = hostOf(server);
  if (!h) return false;
  if (/^kubernetes(\.default(\.svc(\..+)?)?)?$/.test(h.host)) return true;
  if (env.KUBERNETES_SERVICE_HOST && h.host === env.KUBERNETES_SERVICE_HOST) return true;
  return h.host === '10.43.0.1'; // k3s's default service CIDR 10.43.0.0/16
}

function withServer(kc: KubeConfig, server: string): KubeConfig {
  const cur = kc.getCurrentCluster();
  const out = new KubeConfig();
  out.loadFromOptions({
    clusters: kc.clusters.map((c): Cluster => (c.name === cur?.name ? { ...c, server } : c)),
    users: kc.users,
    contexts: kc.contexts,
    currentContext: kc.getCurrentContext(),
  });
  return out;
}

/** Load the kubeconfig (--kubeconfig, KUBECONFIG, k3s.yaml, in-cluster) and choose the endpoint. Throws when none is usable. */
export function resolveEndpoint(choice: KubeconfigChoice = {}): ResolvedEndpoint {
  const env = choice.env ?? process.env;
  const exists = choice.exists ?? existsSync;
  const k3sPath = choice.k3sKubeconfig ?? K3S_KUBECONFIG;
  let kc = new KubeConfig();
  let source: string;
  let via: string;
  if (choice.kubeconfig) {
    if (!exists(choice.kubeconfig)) throw new Error(`kube source: kubeconfig ${choice.kubeconfig} (--kubeconfig) does not exist`);
    kc.loadFromFile(choice.kubeconfig);
    source = choice.kubeconfig;
    via = '--kubeconfig';
  } else if (env.KUBECONFIG) {
    const files = env.KUBECONFIG.split(':').filter(Boolean);
    const first = files.find((f) => exists(f));
    if (!first) throw new Error(`kube source: no file of KUBECONFIG=${env.KUBECONFIG} exists`);
    kc.loadFromFile(first);
    for (const f of files.slice(files.indexOf(first) + 1)) {
      if (!exists(f)) continue;
      const more = new KubeConfig();
      more.loadFromFile(f);
      kc.mergeConfig(more);
    }
    source = first;
    via = 'KUBECONFIG';
  } else if (exists(k3sPath)) {
    kc.loadFromFile(k3sPath);
    source = k3sPath;
    via = 'k3s default';
  } else if (env.KUBERNETES_SERVICE_HOST && exists(IN_CLUSTER_TOKEN)) {
    kc.loadFromCluster();
    source = 'in-cluster';
    via = 'in-cluster service account';
  } else {
    throw new Error(`kube source: no kubeconfig: pass --kubeconfig, set KUBECONFIG, or run on a k3s node (${k3sPath})`);
  }
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  if (!cluster) throw new Error(`kube source: kubeconfig ${source} has no current cluster (current-context ${JSON.stringify(kc.getCurrentContext())})`);
  const configured = cluster.server;
  let endpoint = configured;
  let reason: string;
  if (choice.apiServer) {
    endpoint = choice.apiServer.replace(/\/+$/, '');
    reason = `--api-server (kubeconfig ${source} names ${configured})`;
  } else if (source === 'in-cluster' || isClusterIpServer(configured, env)) {
    endpoint = K3S_LOCAL_APISERVER;
    reason = `kubeconfig ${source} (${via}) points at the kubernetes ClusterIP (${configured}), which this agent implements; using k3s's node-local endpoint`;
  } else if (isK3sKubeconfig(source, configured, cluster.name, user?.name ?? '', `${k3sPath.replace(/[^/]*$/, '')}`)) {
    endpoint = K3S_LOCAL_APISERVER;
    reason = `k3s kubeconfig ${source} (${via}, server ${configured}); 127.0.0.1:6444 reaches the apiserver on every k3s node`;
  } else {
    reason = `kubeconfig ${source} (${via})`;
  }
  if (endpoint !== configured) kc = withServer(kc, endpoint);
  return { kc, endpoint, reason, source, configured };
}

// ---------------------------------------------------------------- validation

const isRec = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Fields that must be arrays when present, per kind (path from the object root). */
const ARRAY_FIELDS: Record<string, string[][]> = {
  Service: [['spec', 'ports'], ['spec', 'clusterIPs'], ['spec', 'externalIPs']],
  EndpointSlice: [['endpoints'], ['ports']],
  Node: [['spec', 'podCIDRs'], ['status', 'addresses']],
  Pod: [['status', 'podIPs'], ['spec', 'containers']],
  NetworkPolicy: [['spec', 'ingress'], ['spec', 'egress'], ['spec', 'policyTypes']],
  Namespace: [],
};

/** Why `obj` is not a usable object of kind `r`, or undefined when it is. */
export function malformedReason(r: WatchedResource, obj: unknown): string | undefined {
  if (!isRec(obj)) return 'not an object';
  const md = obj.metadata;
  if (!isRec(md)) return 'metadata missing';
  if (typeof md.name !== 'string' || md.name === '') return 'metadata.name missing';
  if (r.namespaced && (typeof md.namespace !== 'string' || md.namespace === '')) return 'metadata.namespace missing';
  if (obj.kind !== undefined && obj.kind !== r.kind) return `kind ${JSON.stringify(obj.kind)} in the ${r.resource} stream`;
  if (obj.apiVersion !== undefined && obj.apiVersion !== apiVersionOf(r)) return `apiVersion ${JSON.stringify(obj.apiVersion)} in the ${r.resource} stream`;
  if (md.labels !== undefined && (!isRec(md.labels) || Object.values(md.labels).some((v) => typeof v !== 'string'))) return 'metadata.labels is not a string map';
  for (const f of ['spec', 'status'] as const) {
    if (obj[f] !== undefined && obj[f] !== null && !isRec(obj[f])) return `${f} is not an object`;
  }
  if (r.kind === 'EndpointSlice' && typeof obj.addressType !== 'string') return 'addressType missing';
  for (const path of ARRAY_FIELDS[r.kind] ?? []) {
    let v: unknown = obj;
    for (const p of path) v = isRec(v) ? v[p] : undefined;
    if (v !== undefined && v !== null && !Array.isArray(v)) return `${path.join('.')} is not a list`;
  }
  return undefined;
}

function keyOf(o: KubeObject): string {
  const md = o.metadata ?? {};
  return `${md.namespace ?? ''}/${md.name ?? ''}`;
}

// ---------------------------------------------------------------- errors

interface HttpError extends Error {
  statusCode: number;
  status?: Record<string, unknown>;
}

function httpError(code: number, message: string, status?: Record<string, unknown>): HttpError {
  const e = new Error(message) as HttpError;
  e.statusCode = code;
  if (status) e.status = status;
  return e;
}

/** A watch that ended without a transport error; `gone`: after an ERROR 410 event. */
class WatchEnded extends Error {
  readonly reason: 'closed' | 'gone' | 'error-event';
  readonly healthy: boolean;
  constructor(reason: 'closed' | 'gone' | 'error-event', message: string, healthy: boolean) {
    super(message);
    this.name = 'WatchEnded';
    this.reason = reason;
    this.healthy = healthy;
  }
}

const TLS_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_SIGNATURE_FAILURE',
]);

/** One line that says what went wrong and, where it is clear, what to check. */
export function describeError(err: unknown): string {
  let e: unknown = err;
  // undici (client-node's fetch) wraps the socket/TLS error: TypeError('fetch failed', { cause })
  for (let i = 0; i < 3 && e instanceof Error && e.cause !== undefined && /fetch failed|terminated/.test(e.message); i++) e = e.cause;
  const rec = (isRec(e) ? e : {}) as Record<string, unknown>;
  const msg = e instanceof Error ? e.message : typeof rec.message === 'string' ? rec.message : String(e);
  const code = typeof rec.code === 'string' ? rec.code : undefined;
  const statusCode = typeof rec.statusCode === 'number' ? rec.statusCode : typeof rec.code === 'number' ? rec.code : undefined;
  if (code && TLS_CODES.has(code)) {
    return `TLS: cannot verify the API server's certificate: ${msg} (${code}); check certificate-authority in the kubeconfig`;
  }
  if (code && /^ERR_SSL|^ERR_TLS/.test(code)) return `TLS: ${msg} (${code})`;
  if (statusCode === 401) return `unauthorized (401): the API server rejected the credentials: ${msg}`;
  if (statusCode === 403) return `forbidden (403): ${msg}; check the agent's RBAC (manifests/agent-rbac.yaml)`;
  if (statusCode !== undefined) return `HTTP ${statusCode}: ${msg}`;
  if (code) return `${msg} (${code})`;
  return msg;
}

// ---------------------------------------------------------------- source

export interface KubeSourceOptions extends KubeconfigChoice {
  /** --node-name; default the hostname. Kept for per-node state later. */
  nodeName?: string;
  logger?: Logger;
  /** Backoff for watch/list restarts: first delay and cap. Default 500 ms .. 30 s, with jitter. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** A watch that lived this long counts as healthy (its end restarts without backoff). Default 10 s. */
  healthyWatchMs?: number;
  /** Page size for lists (limit/continue). Default 500. */
  listPageSize?: number;
  /** Timeout for one list page or /version request. Default 30 s. */
  requestTimeoutMs?: number;
  /** Randomness for jitter (tests). */
  random?: () => number;
  now?: () => Date;
}

export interface ResourceStatus {
  listed: boolean;
  objects: number;
  /** Last resourceVersion seen from a list. */
  listResourceVersion?: string;
  watching: boolean;
  restarts: number;
  lists: number;
  lastError?: string;
}

export interface KubeSourceStatus extends SourceStatus {
  kind: 'kube';
  /** Why this endpoint (k3s rewrite, --api-server, ...). */
  endpointReason: string;
  /** The kubeconfig used ('in-cluster' for the service account). */
  kubeconfig: string;
  nodeName: string;
  /** gitVersion from /version, once known. */
  version?: string;
  lastErrorAt?: string;
  /** Watch/list restarts since start, all kinds. */
  restarts: number;
  objects: number;
  resources: Record<string, ResourceStatus>;
}

interface KindState {
  res: WatchedResource;
  objects: Map<string, KubeObject>;
  informer: ListWatch<KubernetesObject> | undefined;
  listed: boolean;
  listRv: string | undefined;
  lists: number;
  restarts: number;
  /** Consecutive failures, for backoff; reset by a list, an event, or a healthy watch. */
  failures: number;
  timer: NodeJS.Timeout | undefined;
  lastError: string | undefined;
  watching: boolean;
  /** objects in key order, kept up to date by every change once built (snapshot() is on the event path). */
  sorted: { keys: string[]; objs: KubeObject[] } | undefined;
}

/** Index of `key` in sorted `keys`, or -(insertion point) - 1. */
function search(keys: string[], key: string): number {
  let lo = 0, hi = keys.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const k = keys[mid]!;
    if (k < key) lo = mid + 1;
    else if (k > key) hi = mid - 1;
    else return mid;
  }
  return -lo - 1;
}

function sortedSet(st: KindState, key: string, obj: KubeObject): void {
  const s = st.sorted;
  if (!s) return;
  const i = search(s.keys, key);
  if (i >= 0) s.objs[i] = obj;
  else {
    s.keys.splice(-i - 1, 0, key);
    s.objs.splice(-i - 1, 0, obj);
  }
}

function sortedDelete(st: KindState, key: string): void {
  const s = st.sorted;
  if (!s) return;
  const i = search(s.keys, key);
  if (i >= 0) {
    s.keys.splice(i, 1);
    s.objs.splice(i, 1);
  }
}

/**
 * The watch under the ListWatch of one kind (in place of client-node's
 * Watch, same contract: kube-http.ts), guarding the ListWatch: validates
 * events, turns ends/ERROR events into errors our scheduler sees, and goes
 * quiet after stop.
 */
class GuardedWatch {
  readonly #kc: KubeConfig;
  readonly #src: KubeSource;
  readonly #st: KindState;
  readonly #controllers = new Set<AbortController>();

  constructor(kc: KubeConfig, src: KubeSource, st: KindState) {
    this.#kc = kc;
    this.#src = src;
    this.#st = st;
  }

  abortAll(): void {
    for (const c of this.#controllers) c.abort();
    this.#controllers.clear();
  }

  async watch(path: string, queryParams: Record<string, string | number | boolean | undefined>, callback: WatchCallback, done: (err: any) => void): Promise<AbortController> {
    const st = this.#st;
    const src = this.#src;
    if (src.stopped) {
      const c = new AbortController();
      c.abort();
      return c;
    }
    let errorEvent: Record<string, unknown> | undefined;
    let events = 0;
    let openedAt = 0;
    const forward = (err: unknown): void => {
      try {
        void Promise.resolve(done(err)).catch((e: unknown) => src.onInformerError(st, e));
      } catch (e) {
        src.onInformerError(st, e);
      }
    };
    const cb: WatchCallback = (phase, obj, raw) => {
      if (src.stopped) return;
      if (phase === 'ERROR') {
        errorEvent = isRec(obj) ? obj : { message: String(obj) };
        callback(phase, obj, raw); // the client clears its resourceVersion on code 410
        return;
      }
      if (phase === 'ADDED' || phase === 'MODIFIED' || phase === 'DELETED') {
        const why = malformedReason(st.res, obj);
        const identified = isRec(obj) && isRec(obj.metadata) && typeof obj.metadata.name === 'string' && obj.metadata.name !== '' &&
          (!st.res.namespaced || (typeof obj.metadata.namespace === 'string' && obj.metadata.namespace !== ''));
        if (why && !(phase === 'DELETED' && identified)) {
          src.malformed(st, obj, why, phase);
          return;
        }
        obj = src.ingest(st.res, obj as KubeObject);
      }
      events++;
      st.failures = 0;
      callback(phase, obj, raw);
    };
    const wrappedDone = (err: unknown): void => {
      st.watching = false;
      if (src.stopped) return; // includes the AbortError of our own stop()
      const healthy = events > 0 || (openedAt > 0 && Date.now() - openedAt >= src.healthyWatchMs);
      const e = isRec(err) ? err : undefined;
      if (err && ((e && (e.statusCode === 410 || e.code === 410)) || (err instanceof Error && err.name === 'TimeoutError'))) {
        // The client relists (410) or re-watches at once (its idle timeout) by itself.
        st.restarts++;
        src.log('debug', 'kube watch restarting (client)', { resource: st.res.resource, reason: err instanceof Error ? err.name : 410 });
        return forward(err);
      }
      if (err) return forward(err);
      if (errorEvent) {
        const code = errorEvent.code;
        const details = isRec(errorEvent.details) ? errorEvent.details : {};
        const causes = Array.isArray(details.causes) ? details.causes : [];
        const tooLarge = causes.some((c) => isRec(c) && c.reason === 'ResourceVersionTooLarge') || /too large resource version/i.test(String(errorEvent.message));
        if (code === 410) return forward(new WatchEnded('gone', `watch expired (410): ${String(errorEvent.message)}`, true));
        if (tooLarge) {
          // Our resourceVersion is ahead of the server: its store was reset. Relist.
          st.restarts++;
          src.log('warn', 'kube watch: resourceVersion ahead of the server, relisting', { resource: st.res.resource, message: errorEvent.message });
          return forward(httpError(410, `resourceVersion too large: ${String(errorEvent.message)}`));
        }
        return forward(new WatchEnded('error-event', `watch ERROR event: ${describeError(httpError(typeof code === 'number' ? code : 500, String(errorEvent.message)))}`, false));
      }
      forward(new WatchEnded('closed', 'watch closed by the server', healthy));
    };
    let ctl: AbortController;
    try {
      // Bookmarks keep a quiet kind's resourceVersion fresh, so its next re-watch
      // is not answered with 410 (and a relist) after compaction.
      ctl = await watchStream(this.#kc, path, { ...queryParams, allowWatchBookmarks: true }, cb, wrappedDone);
    } catch (err) {
      // e.g. the kubeconfig's credentials could not be applied
      wrappedDone(err);
      ctl = new AbortController();
      ctl.abort();
      return ctl;
    }
    if (src.stopped) {
      ctl.abort();
      return ctl;
    }
    if (!ctl.signal.aborted) {
      openedAt = Date.now();
      st.watching = true;
      this.#controllers.add(ctl);
      ctl.signal.addEventListener('abort', () => this.#controllers.delete(ctl), { once: true });
    }
    return ctl;
  }
}

export class KubeSource implements Source {
  readonly endpoint: string;
  readonly endpointReason: string;
  readonly kubeconfigSource: string;
  readonly nodeName: string;
  readonly healthyWatchMs: number;

  readonly #kc: KubeConfig;
  readonly #log: Logger;
  readonly #baseMs: number;
  readonly #maxMs: number;
  readonly #pageSize: number;
  readonly #timeoutMs: number;
  readonly #random: () => number;
  readonly #now: () => Date;
  readonly #kinds: KindState[];
  readonly #watches = new Map<KindState, GuardedWatch>();
  readonly #requests = new Set<ClientRequest>();
  readonly #delays = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();
  readonly #seenMalformed = new Set<string>();

  #onChange: (() => void) | undefined;
  #started = false;
  #stopped = false;
  #malformed = 0;
  #lastError: string | undefined;
  #lastErrorAt: string | undefined;
  #lastSync: string | undefined;
  #version: string | undefined;
  #versionPending = false;

  constructor(opts: KubeSourceOptions = {}) {
    const r = resolveEndpoint(opts);
    this.#kc = r.kc;
    this.endpoint = r.endpoint;
    this.endpointReason = r.reason;
    this.kubeconfigSource = r.source;
    this.nodeName = opts.nodeName || hostname();
    this.#log = opts.logger ?? (() => {});
    this.#baseMs = opts.backoffBaseMs ?? 500;
    this.#maxMs = opts.backoffMaxMs ?? 30_000;
    this.healthyWatchMs = opts.healthyWatchMs ?? 10_000;
    this.#pageSize = opts.listPageSize ?? 500;
    this.#timeoutMs = opts.requestTimeoutMs ?? 30_000;
    this.#random = opts.random ?? Math.random;
    this.#now = opts.now ?? (() => new Date());
    this.#kinds = WATCHED_RESOURCES.map((res) => ({
      res, objects: new Map(), informer: undefined, listed: false, listRv: undefined, lists: 0, restarts: 0,
      failures: 0, timer: undefined, lastError: undefined, watching: false, sorted: undefined,
    }));
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** Start every informer; resolves once they are launched (not synced: see status().synced). */
  async start(onChange: () => void): Promise<void> {
    if (this.#started) throw new Error('kube source: already started');
    this.#started = true;
    this.#onChange = onChange;
    this.#log('info', 'kube source starting', { endpoint: this.endpoint, reason: this.endpointReason, nodeName: this.nodeName });
    void this.#fetchVersion();
    for (const st of this.#kinds) this.#startInformer(st);
  }

  snapshot(): Snapshot {
    const out: Snapshot = { services: [], endpointSlices: [], nodes: [], pods: [], namespaces: [], networkPolicies: [] };
    for (const st of this.#kinds) {
      if (!st.sorted) {
        const keys = [...st.objects.keys()].sort();
        st.sorted = { keys, objs: keys.map((k) => st.objects.get(k)!) };
      }
      // A fresh array each time: consumers keep the previous one to diff against.
      out[st.res.bucket] = st.sorted.objs.slice();
    }
    return out;
  }

  status(): KubeSourceStatus {
    const resources: Record<string, ResourceStatus> = {};
    let restarts = 0;
    let objects = 0;
    for (const st of this.#kinds) {
      restarts += st.restarts;
      objects += st.objects.size;
      resources[st.res.resource] = {
        listed: st.listed, objects: st.objects.size, watching: st.watching, restarts: st.restarts, lists: st.lists,
        ...(st.listRv !== undefined ? { listResourceVersion: st.listRv } : {}),
        ...(st.lastError !== undefined ? { lastError: st.lastError } : {}),
      };
    }
    return {
      kind: 'kube',
      endpoint: this.endpoint,
      endpointReason: this.endpointReason,
      kubeconfig: this.kubeconfigSource,
      nodeName: this.nodeName,
      synced: this.#kinds.every((s) => s.listed),
      ...(this.#lastSync !== undefined ? { lastSync: this.#lastSync } : {}),
      ...(this.#lastError !== undefined ? { lastError: this.#lastError } : {}),
      ...(this.#lastErrorAt !== undefined ? { lastErrorAt: this.#lastErrorAt } : {}),
      ...(this.#version !== undefined ? { version: this.#version } : {}),
      malformed: this.#malformed,
      restarts,
      objects,
      resources,
    };
  }

  /** Stop every informer, request and timer. No onChange after this resolves. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#onChange = undefined;
    for (const st of this.#kinds) {
      clearTimeout(st.timer);
      st.timer = undefined;
    }
    for (const d of this.#delays) {
      clearTimeout(d.timer);
      d.resolve();
    }
    this.#delays.clear();
    for (const st of this.#kinds) {
      try {
        await st.informer?.stop();
      } catch { /* stopping */ }
      st.watching = false;
    }
    for (const w of this.#watches.values()) w.abortAll();
    for (const req of this.#requests) req.destroy(new Error('kube source stopped'));
    this.#requests.clear();
    this.#log('info', 'kube source stopped', {});
  }

  // ---- internals shared with GuardedWatch ----

  log(level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown>): void {
    this.#log(level, msg, fields);
  }

  /** A valid object as it will be kept: apiVersion and kind filled in, trimmed to what the agent reads (trim.ts). */
  ingest(res: WatchedResource, o: KubeObject): KubeObject {
    if (o.apiVersion === undefined) o.apiVersion = apiVersionOf(res);
    if (o.kind === undefined) o.kind = res.kind;
    return trimObject(res.kind, o);
  }

  malformed(st: KindState, obj: unknown, why: string, phase: string): void {
    const md = isRec(obj) && isRec(obj.metadata) ? obj.metadata : undefined;
    let id: string;
    try {
      id = md && md.resourceVersion !== undefined ? `rv:${String(md.resourceVersion)}` : `json:${JSON.stringify(obj)}`;
    } catch {
      id = `obj:${String(obj)}`;
    }
    const key = `${st.res.resource}|${String(md?.namespace ?? '')}/${String(md?.name ?? '')}|${id}`;
    if (this.#seenMalformed.has(key)) return;
    if (this.#seenMalformed.size >= 10_000) this.#seenMalformed.clear();
    this.#seenMalformed.add(key);
    this.#malformed++;
    this.#log('warn', 'kube source: malformed object skipped', {
      resource: st.res.resource, phase, reason: why,
      namespace: md?.namespace, name: md?.name, resourceVersion: md?.resourceVersion,
    });
  }

  onInformerError(st: KindState, err: unknown): void {
    if (this.#stopped) return;
    st.watching = false;
    st.restarts++;
    let delay: number;
    if (err instanceof WatchEnded && err.reason !== 'error-event') {
      if (err.healthy) st.failures = 0;
      else st.failures++;
      delay = err.reason === 'gone' || st.failures === 0 ? this.#random() * Math.min(this.#baseMs, 100) : this.#backoff(st.failures);
      this.#log('debug', 'kube watch ended, restarting', { resource: st.res.resource, reason: err.message, delayMs: Math.round(delay) });
    } else {
      st.failures++;
      delay = this.#backoff(st.failures);
      const msg = describeError(err);
      st.lastError = msg;
      this.#lastError = `${st.res.resource}: ${msg}`;
      this.#lastErrorAt = this.#now().toISOString();
      this.#log('warn', 'kube informer error, restarting', { resource: st.res.resource, error: msg, attempt: st.failures, delayMs: Math.round(delay) });
    }
    clearTimeout(st.timer);
    st.timer = setTimeout(() => {
      st.timer = undefined;
      if (this.#stopped || !st.informer) return;
      st.informer.start().catch((e: unknown) => this.onInformerError(st, e));
    }, delay);
  }

  // ---- private ----

  #backoff(failures: number): number {
    const d = Math.min(this.#maxMs, this.#baseMs * 2 ** Math.min(failures - 1, 30));
    return d / 2 + (this.#random() * d) / 2;
  }

  #changed(): void {
    const cb = this.#onChange;
    if (!cb || this.#stopped) return;
    try {
      cb();
    } catch (e) {
      this.#log('error', 'kube source: onChange threw', { error: e instanceof Error ? e.message : String(e) });
    }
  }

  #delay(ms: number): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const d = { timer: setTimeout(() => { this.#delays.delete(d); resolve(); }, ms), resolve };
      this.#delays.add(d);
    });
  }

  #startInformer(st: KindState): void {
    const watch = new GuardedWatch(this.#kc, this, st);
    this.#watches.set(st, watch);
    // Typed as client-node's Watch (whose private field makes the type nominal); ListWatch only calls watch().
    const lw = new ListWatch<KubernetesObject>(listPathOf(st.res), watch as unknown as Watch, () => this.#list(st), false, undefined, undefined,
      { delayFn: (ms) => this.#delay(ms) });
    const upsert = (o: KubernetesObject): void => {
      if (this.#stopped) return;
      const obj = o as KubeObject;
      const key = keyOf(obj);
      const old = st.objects.get(key);
      if (old === obj || (old && old.metadata?.resourceVersion !== undefined && old.metadata.resourceVersion === obj.metadata?.resourceVersion)) return;
      st.objects.set(key, obj);
      sortedSet(st, key, obj);
      this.#changed();
    };
    lw.on('add', upsert);
    lw.on('update', upsert);
    lw.on('delete', (o) => {
      if (this.#stopped) return;
      const key = keyOf(o as KubeObject);
      if (st.objects.delete(key)) {
        sortedDelete(st, key);
        this.#changed();
      }
    });
    lw.on('error', (err) => this.onInformerError(st, err));
    st.informer = lw;
    lw.start().catch((e: unknown) => this.onInformerError(st, e));
  }

  async #list(st: KindState): Promise<KubernetesListObject<KubernetesObject>> {
    const path = listPathOf(st.res);
    // Page by page: each page is validated and trimmed as it arrives, so the
    // raw JSON of a page is garbage before the next one is fetched.
    const good: KubeObject[] = [];
    const next = new Map<string, KubeObject>();
    let cont: string | undefined;
    let rv = '';
    do {
      const q = new URLSearchParams({ limit: String(this.#pageSize) });
      if (cont) q.set('continue', cont);
      const page = await this.#getJson(`${path}?${q}`);
      if (!isRec(page) || !Array.isArray(page.items)) throw new Error(`list ${st.res.resource}: response is not a list`);
      for (const it of page.items) {
        const why = malformedReason(st.res, it);
        if (why) {
          this.malformed(st, it, why, 'LIST');
          continue;
        }
        const o = this.ingest(st.res, it as KubeObject);
        good.push(o);
        next.set(keyOf(o), o);
      }
      const md = isRec(page.metadata) ? page.metadata : {};
      rv = typeof md.resourceVersion === 'string' ? md.resourceVersion : '';
      cont = typeof md.continue === 'string' && md.continue !== '' ? md.continue : undefined;
    } while (cont);
    if (this.#stopped) throw new Error('kube source stopped');
    // Replace the whole kind at once: deletions take effect only now, with the complete new list.
    const wasSynced = this.#kinds.every((s) => s.listed);
    st.objects = next;
    st.sorted = undefined;
    st.listed = true;
    st.listRv = rv;
    st.lists++;
    st.failures = 0;
    if (this.#kinds.every((s) => s.listed)) {
      this.#lastSync = this.#now().toISOString();
      if (!wasSynced) this.#log('info', 'kube source synced', { endpoint: this.endpoint, objects: this.#kinds.reduce((n, s) => n + s.objects.size, 0) });
    }
    this.#log('debug', 'kube list', { resource: st.res.resource, items: good.length, resourceVersion: rv });
    if (this.#version === undefined) void this.#fetchVersion();
    this.#changed();
    return { apiVersion: apiVersionOf(st.res), kind: `${st.res.kind}List`, metadata: { resourceVersion: rv }, items: good as KubernetesObject[] };
  }

  async #fetchVersion(): Promise<void> {
    if (this.#versionPending || this.#stopped) return;
    this.#versionPending = true;
    try {
      const v = await this.#getJson('/version');
      if (isRec(v) && typeof v.gitVersion === 'string') this.#version = v.gitVersion;
    } catch (e) {
      this.#log('debug', 'kube /version failed', { error: describeError(e) });
    } finally {
      this.#versionPending = false;
    }
  }

  async #getJson(path: string): Promise<unknown> {
    if (this.#stopped) throw new Error('kube source stopped');
    const opts = await kubeRequestOptions(this.#kc);
    const url = new URL(this.endpoint + path);
    return new Promise((resolve, reject) => {
      const req = kubeGet(url, opts, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          this.#requests.delete(req);
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown;
          try {
            body = JSON.parse(text);
          } catch {
            body = undefined;
          }
          const code = res.statusCode ?? 0;
          if (code !== 200) {
            const st = isRec(body) ? body : undefined;
            const msg = st && typeof st.message === 'string' ? st.message : text.slice(0, 200) || res.statusMessage || 'error';
            return reject(httpError(code, msg, st));
          }
          if (body === undefined) return reject(new Error(`GET ${path}: response is not JSON`));
          resolve(body);
        });
      });
      this.#requests.add(req);
      req.setTimeout(this.#timeoutMs, () => req.destroy(new Error(`GET ${path}: no answer in ${this.#timeoutMs} ms`)));
      req.on('error', (e) => {
        this.#requests.delete(req);
        reject(e);
      });
    });
  }
}
