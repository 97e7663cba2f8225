// A stand-in Kubernetes API server for tests. It speaks the parts of the real
// protocol that the agent's source uses, over HTTPS on 127.0.0.1 with an
// ephemeral port, so @kubernetes/client-node runs against it unchanged:
//
// - list (with metadata.resourceVersion from one cluster-wide counter, like
//   etcd's revision; limit/continue paging over a consistent snapshot) for
//   services, endpointslices, nodes, pods, namespaces and networkpolicies, on
//   all-namespaces, per-namespace and cluster-scoped paths; get by name;
// - watch (`?watch=true&resourceVersion=N`): a chunked stream of JSON lines
//   {type, object}, ADDED/MODIFIED/DELETED replayed from the retained history
//   after N and then live; BOOKMARK when allowWatchBookmarks=true; an ERROR
//   event with a 410 Expired Status (or plain HTTP 410) when N is older than the
//   retained history; an ERROR 504 ResourceVersionTooLarge when N is in the
//   future (what a restored or reset etcd looks like to a client);
// - /version, /api, /apis, /api/v1, /apis/<group>/<version>, /healthz;
// - labelSelector on list and watch (equality- and set-based; fieldSelector
//   is refused with 400 rather than ignored);
// - create (POST), replace (PUT) and delete (DELETE) with the real API's
//   status codes and Status bodies: 201, 404 for a missing namespace or
//   object, 409 AlreadyExists, 409 Conflict on a stale resourceVersion, 403
//   NamespaceTerminating, 422 Invalid; clusterIP and nodePort allocation kept
//   across a replace; namespace deletion as Terminating then, after
//   namespaceFinalizeMs, removal of its content and of itself;
// - TLS with a test CA; client-certificate and bearer-token authentication;
//   optional RBAC-like authorization from PolicyRules (403 otherwise).
//
// The resources served are FAKE_RESOURCES (the agent's six kinds) unless
// `resources` says otherwise; WORKLOAD_RESOURCES adds deployments and events.
//
// Test controls: add/update/apply/remove objects (malformed ones too), compact,
// dropWatches (clean end or abrupt reset), bookmark, failNext (inject error
// responses), listDelayMs, stop/start/restart on the same port with new data and
// a new resourceVersion epoch, and a log of every request.
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { makeTestPki, type TestPki } from './pki.ts';

export interface ResourceInfo {
  group: string;
  version: string;
  plural: string;
  singular: string;
  kind: string;
  namespaced: boolean;
}

export const FAKE_RESOURCES: readonly ResourceInfo[] = [
  { group: '', version: 'v1', plural: 'services', singular: 'service', kind: 'Service', namespaced: true },
  { group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices', singular: 'endpointslice', kind: 'EndpointSlice', namespaced: true },
  { group: '', version: 'v1', plural: 'nodes', singular: 'node', kind: 'Node', namespaced: false },
  { group: '', version: 'v1', plural: 'pods', singular: 'pod', kind: 'Pod', namespaced: true },
  { group: '', version: 'v1', plural: 'namespaces', singular: 'namespace', kind: 'Namespace', namespaced: false },
  { group: 'networking.k8s.io', version: 'v1', plural: 'networkpolicies', singular: 'networkpolicy', kind: 'NetworkPolicy', namespaced: true },
];

/** FAKE_RESOURCES plus what a workload runner needs (Deployments, Events). */
export const WORKLOAD_RESOURCES: readonly ResourceInfo[] = [
  ...FAKE_RESOURCES,
  { group: 'apps', version: 'v1', plural: 'deployments', singular: 'deployment', kind: 'Deployment', namespaced: true },
  { group: '', version: 'v1', plural: 'events', singular: 'event', kind: 'Event', namespaced: true },
];

const apiVersionOf = (r: ResourceInfo): string => (r.group ? `${r.group}/${r.version}` : r.version);

/** Any JSON object; malformed ones included on purpose. */
export type Obj = Record<string, unknown>;
type Meta = Record<string, unknown>;
export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface StoredEvent {
  rv: number;
  resource: string;
  namespace: string | undefined;
  type: EventType;
  object: Obj;
  /** The object before a MODIFIED (for label-selected watches: entering or leaving the selection). */
  prev?: Obj;
}

interface Watcher {
  resource: ResourceInfo;
  namespace: string | undefined;
  res: ServerResponse;
  bookmarks: boolean;
  timer: NodeJS.Timeout | undefined;
  selector: LabelSelector | undefined;
}

export type Verb = 'list' | 'watch' | 'get' | 'create' | 'update' | 'delete' | 'discovery' | 'version' | 'health' | 'other';

export interface RequestRecord {
  time: number;
  method: string;
  path: string;
  query: Record<string, string>;
  verb: Verb;
  resource?: string;
  namespace?: string;
  user?: string;
  status: number;
}

export interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs?: string[];
  nonResourceURLs?: string[];
}

export interface FakeApiServerOptions {
  /** Where certificates and kubeconfigs go; a temp dir (removed by close()) when absent. */
  dir?: string;
  /** Accepted bearer tokens and the user each stands for. Default: { 'test-token': 'token-user' }. */
  tokens?: Record<string, string>;
  /** When set, resource requests need a matching rule (403 Forbidden otherwise). */
  rules?: PolicyRule[];
  /** How a too-old resourceVersion on watch is reported: an ERROR event (current apiservers) or HTTP 410. */
  goneAs?: 'event' | 'http';
  /** Keep at most this many events of history (older ones are compacted away). */
  historyLimit?: number;
  gitVersion?: string;
  /** Server-side end of every watch after this long (the apiserver's request timeout). */
  watchTimeoutMs?: number;
  /** Send a BOOKMARK to watchers that allow them this often. */
  bookmarkIntervalMs?: number;
  /** First resourceVersion handed out. */
  rvBase?: number;
  /** The resources served (default FAKE_RESOURCES). */
  resources?: readonly ResourceInfo[];
  /** How long a deleted namespace stays Terminating before its content and itself are removed (default 0). */
  namespaceFinalizeMs?: number;
}

export interface KubeconfigOptions {
  auth: 'cert' | 'token';
  /** Bearer token (auth 'token'); default the first configured token. */
  token?: string;
  /** Which CA the client trusts: the server's, an unrelated one, or none configured. */
  ca?: 'right' | 'wrong' | 'none';
  server?: string;
  clusterName?: string;
  userName?: string;
  /** Embed certificates as *-data instead of file paths. */
  inline?: boolean;
}

interface Failure {
  verb?: Verb;
  resource?: string;
  status: number;
  remaining: number;
}

interface Page {
  rv: number;
  resource: string;
  items: Obj[];
}

function statusObj(code: number, reason: string, message: string, details?: Obj): Obj {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code, ...(details ? { details } : {}) };
}

const REASONS: Record<number, string> = {
  400: 'BadRequest', 401: 'Unauthorized', 403: 'Forbidden', 404: 'NotFound', 405: 'MethodNotAllowed',
  409: 'AlreadyExists', 410: 'Expired', 415: 'UnsupportedMediaType', 422: 'Invalid', 429: 'TooManyRequests', 500: 'InternalError', 503: 'ServiceUnavailable', 504: 'Timeout',
};

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A parsed labelSelector: does a label set match. */
export type LabelSelector = (labels: Record<string, string>) => boolean;

function labelsOf(o: Obj): Record<string, string> {
  const md = isObj(o.metadata) ? o.metadata : undefined;
  const l = md && isObj(md.labels) ? md.labels : {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(l)) if (typeof v === 'string') out[k] = v;
  return out;
}

/**
 * The apiserver's label selector syntax: comma-separated requirements, each
 * `k`, `!k`, `k=v`, `k==v`, `k!=v`, `k in (a,b)` or `k notin (a,b)`; all must hold.
 * Throws on anything else.
 */
export function parseLabelSelector(text: string): LabelSelector {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else {
      cur += ch;
    }
  }
  parts.push(cur);
  const key = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
  const value = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;
  const tests = parts.map((raw): LabelSelector => {
    const p = raw.trim();
    let m: RegExpExecArray | null;
    if ((m = /^(\S+)\s+(in|notin)\s*\(([^)]*)\)$/.exec(p))) {
      const [, k, op, list] = m as unknown as [string, string, string, string];
      const vals = list.split(',').map((v) => v.trim());
      if (!key.test(k) || vals.some((v) => !value.test(v))) throw new Error(`invalid requirement ${JSON.stringify(p)}`);
      return op === 'in' ? (l) => vals.includes(l[k] ?? '\0') : (l) => !(k in l) || !vals.includes(l[k]!);
    }
    if ((m = /^([^!=\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(p))) {
      const [, k, op, v] = m as unknown as [string, string, string, string];
      if (!key.test(k) || !value.test(v)) throw new Error(`invalid requirement ${JSON.stringify(p)}`);
      return op === '!=' ? (l) => l[k] !== v : (l) => l[k] === v;
    }
    if ((m = /^!\s*(\S+)$/.exec(p)) && key.test(m[1]!)) {
      const k = m[1]!;
      return (l) => !(k in l);
    }
    if (key.test(p)) return (l) => p in l;
    throw new Error(`invalid requirement ${JSON.stringify(p)}`);
  });
  return (l) => tests.every((t) => t(l));
}

export class FakeApiServer {
  readonly pki: TestPki;
  readonly dir: string;
  /** All requests since start (or since clearRequests()). */
  requests: RequestRecord[] = [];
  /** Delay before answering list requests (widens the relist window in tests). */
  listDelayMs = 0;
  /** Incremented by each restart(). */
  epoch = 0;

  #opts: FakeApiServerOptions;
  #ownDir: boolean;
  #server: https.Server | undefined;
  #port = 0;
  #sockets = new Set<Socket>();
  #watchers = new Set<Watcher>();
  #objects = new Map<string, Map<string, Obj>>();
  #history: StoredEvent[] = [];
  #rv: number;
  #compactedRv: number;
  #pages = new Map<string, Page>();
  #failures: Failure[] = [];
  #malformedSeq = 0;
  #bookmarkTimer: NodeJS.Timeout | undefined;
  #tokens: Record<string, string>;
  #resources: readonly ResourceInfo[];
  #finalizers = new Set<NodeJS.Timeout>();
  #nextClusterIP = 100;

  private constructor(pki: TestPki, dir: string, ownDir: boolean, opts: FakeApiServerOptions) {
    this.pki = pki;
    this.dir = dir;
    this.#ownDir = ownDir;
    this.#opts = opts;
    this.#rv = opts.rvBase ?? 100;
    this.#compactedRv = this.#rv;
    this.#tokens = opts.tokens ?? { 'test-token': 'token-user' };
    this.#resources = opts.resources ?? FAKE_RESOURCES;
    for (const r of this.#resources) this.#objects.set(r.plural, new Map());
  }

  /** Make the PKI and start listening on 127.0.0.1 (ephemeral port). */
  static async create(opts: FakeApiServerOptions = {}): Promise<FakeApiServer> {
    const ownDir = opts.dir === undefined;
    const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'kinglet-apiserver-')));
    try {
      const pki = await makeTestPki(dir);
      const s = new FakeApiServer(pki, dir, ownDir, opts);
      await s.start();
      return s;
    } catch (e) {
      if (ownDir) await rm(dir, { recursive: true, force: true });
      throw e;
    }
  }

  get port(): number {
    return this.#port;
  }

  get url(): string {
    return `https://127.0.0.1:${this.#port}`;
  }

  get running(): boolean {
    return this.#server !== undefined;
  }

  /** The current (latest) resourceVersion. */
  get resourceVersion(): number {
    return this.#rv;
  }

  /** Watches from a resourceVersion below this get 410 Gone. */
  get compactedResourceVersion(): number {
    return this.#compactedRv;
  }

  get openWatches(): number {
    return this.#watchers.size;
  }

  // ---------- lifecycle ----------

  /** Listen (again) on 127.0.0.1; reuses the previous port after a stop(). */
  async start(): Promise<void> {
    if (this.#server) return;
    const server = https.createServer({
      key: this.pki.serverKey,
      cert: this.pki.serverCert,
      ca: this.pki.ca,
      requestCert: true,
      // Token clients present no certificate; a presented one is checked per request.
      rejectUnauthorized: false,
    }, (req, res) => this.#handle(req, res));
    server.on('connection', (sock: Socket) => {
      this.#sockets.add(sock);
      sock.on('close', () => this.#sockets.delete(sock));
    });
    server.on('tlsClientError', () => { /* a client that refused our certificate: its problem */ });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address();
    if (addr && typeof addr === 'object') this.#port = addr.port;
    this.#server = server;
    if (this.#opts.bookmarkIntervalMs) {
      this.#bookmarkTimer = setInterval(() => this.bookmark(), this.#opts.bookmarkIntervalMs);
    }
  }

  /** Stop listening and cut every connection (watches included). */
  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    clearInterval(this.#bookmarkTimer);
    this.#bookmarkTimer = undefined;
    for (const t of this.#finalizers) clearTimeout(t);
    this.#finalizers.clear();
    for (const w of this.#watchers) this.#endWatch(w, true);
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
    await closed;
  }

  /**
   * Stop, replace the data, start again on the same port. The new data gets a
   * new resourceVersion epoch with no history, so a client resuming a watch
   * from its old resourceVersion gets 410 (rvBase above the old one, the
   * default) or "too large" (rvBase below it, like an etcd restored from backup).
   */
  async restart(opts: { objects?: Obj[]; rvBase?: number } = {}): Promise<void> {
    await this.stop();
    this.epoch++;
    for (const m of this.#objects.values()) m.clear();
    this.#history = [];
    this.#pages.clear();
    this.#rv = opts.rvBase ?? this.#rv + 1000;
    for (const o of opts.objects ?? []) this.add(o);
    this.#history = [];
    this.#compactedRv = this.#rv;
    await this.start();
  }

  /** stop() and remove the temp dir if this server made it. */
  async close(): Promise<void> {
    await this.stop();
    if (this.#ownDir) await rm(this.dir, { recursive: true, force: true });
  }

  // ---------- data ----------

  #resourceFor(obj: Obj, resource?: string): ResourceInfo {
    const name = resource ?? (typeof obj.kind === 'string' ? obj.kind : undefined);
    const r = this.#resources.find((x) => x.plural === name || x.kind === name);
    if (!r) throw new Error(`fake-apiserver: unknown resource for ${JSON.stringify(resource ?? obj.kind)}`);
    return r;
  }

  #keyOf(r: ResourceInfo, obj: Obj): string | undefined {
    const md = isObj(obj.metadata) ? obj.metadata : undefined;
    if (!md || typeof md.name !== 'string' || md.name === '') return undefined;
    const ns = typeof md.namespace === 'string' ? md.namespace : '';
    return r.namespaced ? `${ns}/${md.name}` : md.name;
  }

  #record(type: EventType, r: ResourceInfo, obj: Obj, prev?: Obj): Obj {
    this.#rv++;
    const stored = structuredClone(obj);
    if (isObj(stored.metadata)) stored.metadata.resourceVersion = String(this.#rv);
    const ns = isObj(stored.metadata) && typeof stored.metadata.namespace === 'string' ? stored.metadata.namespace : undefined;
    const ev: StoredEvent = { rv: this.#rv, resource: r.plural, namespace: ns, type, object: stored, ...(prev ? { prev } : {}) };
    this.#history.push(ev);
    const limit = this.#opts.historyLimit;
    if (limit !== undefined) {
      while (this.#history.length > limit) {
        const dropped = this.#history.shift();
        if (dropped) this.#compactedRv = dropped.rv;
      }
    }
    for (const w of this.#watchers) {
      if (w.resource.plural === r.plural && (w.namespace === undefined || w.namespace === ns)) this.#sendEvent(w, r, ev);
    }
    return stored;
  }

  /**
   * Create an object. `resource` (plural or kind) is needed only when the
   * object has no usable kind. Objects without metadata.name are stored under a
   * synthetic key, so malformed objects show up in lists and watches too.
   */
  add(obj: Obj, resource?: string): Obj {
    const r = this.#resourceFor(obj, resource);
    const store = this.#objects.get(r.plural)!;
    const key = this.#keyOf(r, obj) ?? `~malformed-${++this.#malformedSeq}`;
    if (store.has(key)) throw new Error(`fake-apiserver: ${r.plural} ${key} already exists`);
    const o = structuredClone(obj);
    if (isObj(o.metadata)) {
      const md: Meta = o.metadata;
      md.uid ??= randomUUID();
      md.creationTimestamp ??= new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    }
    store.set(key, this.#record('ADDED', r, o));
    return store.get(key)!;
  }

  /** Replace an existing object (MODIFIED). */
  update(obj: Obj, resource?: string): Obj {
    const r = this.#resourceFor(obj, resource);
    const store = this.#objects.get(r.plural)!;
    const key = this.#keyOf(r, obj);
    const old = key === undefined ? undefined : store.get(key);
    if (key === undefined || !old) throw new Error(`fake-apiserver: ${r.plural} ${key ?? '(no name)'} not found`);
    const o = structuredClone(obj);
    if (isObj(o.metadata) && isObj(old.metadata)) {
      o.metadata.uid = old.metadata.uid;
      o.metadata.creationTimestamp = old.metadata.creationTimestamp;
    }
    store.set(key, this.#record('MODIFIED', r, o, old));
    return store.get(key)!;
  }

  /** add() or update(), whichever applies. */
  apply(obj: Obj, resource?: string): Obj {
    const r = this.#resourceFor(obj, resource);
    const key = this.#keyOf(r, obj);
    return key !== undefined && this.#objects.get(r.plural)!.has(key) ? this.update(obj, resource) : this.add(obj, resource);
  }

  /** Delete by resource (plural or kind), namespace ('' for cluster-scoped) and name. Returns false when absent. */
  remove(resource: string, namespace: string, name: string): boolean {
    const r = this.#resourceFor({}, resource);
    const key = r.namespaced ? `${namespace}/${name}` : name;
    const store = this.#objects.get(r.plural)!;
    const old = store.get(key);
    if (!old) return false;
    store.delete(key);
    this.#record('DELETED', r, old);
    return true;
  }

  /** Remove every malformed object stored under a synthetic key (with DELETED events). */
  removeMalformed(): number {
    let n = 0;
    for (const r of this.#resources) {
      const store = this.#objects.get(r.plural)!;
      for (const [key, obj] of store) {
        if (key.startsWith('~malformed-')) {
          store.delete(key);
          this.#record('DELETED', r, obj);
          n++;
        }
      }
    }
    return n;
  }

  get(resource: string, namespace: string, name: string): Obj | undefined {
    const r = this.#resourceFor({}, resource);
    const o = this.#objects.get(r.plural)!.get(r.namespaced ? `${namespace}/${name}` : name);
    return o ? structuredClone(o) : undefined;
  }

  list(resource: string): Obj[] {
    const r = this.#resourceFor({}, resource);
    return [...this.#objects.get(r.plural)!.values()].map((o) => structuredClone(o));
  }

  /** Send a raw line (not necessarily JSON) to the open watches of a resource. */
  sendRawLine(resource: string, line: string): number {
    const r = this.#resourceFor({}, resource);
    let n = 0;
    for (const w of this.#watchers) {
      if (w.resource.plural === r.plural) {
        w.res.write(line + '\n');
        n++;
      }
    }
    return n;
  }

  /** Forget all history: watches from an older resourceVersion now get 410. */
  compact(): void {
    this.#history = [];
    this.#compactedRv = this.#rv;
  }

  /** Send a BOOKMARK at the current resourceVersion to watchers that allow bookmarks. */
  bookmark(): number {
    let n = 0;
    for (const w of this.#watchers) {
      if (!w.bookmarks) continue;
      this.#send(w, {
        type: 'BOOKMARK',
        object: { kind: w.resource.kind, apiVersion: apiVersionOf(w.resource), metadata: { resourceVersion: String(this.#rv) } },
      });
      n++;
    }
    return n;
  }

  /** End every open watch: cleanly (end of the chunked body) or abruptly (socket reset). */
  dropWatches(opts: { abrupt?: boolean } = {}): number {
    const n = this.#watchers.size;
    for (const w of [...this.#watchers]) this.#endWatch(w, opts.abrupt ?? false);
    return n;
  }

  /** Answer the next `count` matching requests with `status` (a Status body). */
  failNext(match: { verb?: Verb; resource?: string }, status: number, count = 1): void {
    this.#failures.push({ ...match, status, remaining: count });
  }

  clearRequests(): void {
    this.requests = [];
  }

  /** Requests of a verb (and resource), for assertions such as "no list storm". */
  count(verb: Verb, resource?: string): number {
    return this.requests.filter((r) => r.verb === verb && (resource === undefined || r.resource === resource)).length;
  }

  // ---------- kubeconfig ----------

  kubeconfig(opts: KubeconfigOptions): string {
    const clusterName = opts.clusterName ?? 'fake';
    const userName = opts.userName ?? (opts.auth === 'cert' ? 'cert-user' : 'token-user');
    const caChoice = opts.ca ?? 'right';
    const caFile = caChoice === 'right' ? this.pki.caFile : caChoice === 'wrong' ? this.pki.otherCaFile : undefined;
    const cluster: Obj = { server: opts.server ?? this.url };
    if (caFile) {
      if (opts.inline) cluster['certificate-authority-data'] = '__CA__';
      else cluster['certificate-authority'] = caFile;
    }
    const user: Obj = {};
    if (opts.auth === 'cert') {
      if (opts.inline) {
        user['client-certificate-data'] = '__CERT__';
        user['client-key-data'] = '__KEY__';
      } else {
        user['client-certificate'] = this.pki.clientCertFile;
        user['client-key'] = this.pki.clientKeyFile;
      }
    } else {
      user.token = opts.token ?? Object.keys(this.#tokens)[0] ?? '';
    }
    const doc = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: clusterName, cluster }],
      users: [{ name: userName, user }],
      contexts: [{ name: 'default', context: { cluster: clusterName, user: userName } }],
      'current-context': 'default',
    };
    return toYaml(doc);
  }

  /** Write a kubeconfig (see kubeconfig()) into the server's dir; returns its path. */
  async writeKubeconfig(opts: KubeconfigOptions, name = `kubeconfig-${randomUUID().slice(0, 8)}.yaml`): Promise<string> {
    let text = this.kubeconfig(opts);
    if (opts.inline) {
      const b64 = async (f: string): Promise<string> => (await readFile(f)).toString('base64');
      const caFile = (opts.ca ?? 'right') === 'wrong' ? this.pki.otherCaFile : this.pki.caFile;
      text = text.replace('__CA__', await b64(caFile))
        .replace('__CERT__', await b64(this.pki.clientCertFile))
        .replace('__KEY__', await b64(this.pki.clientKeyFile));
    }
    const path = join(this.dir, name);
    await writeFile(path, text, { mode: 0o600 });
    return path;
  }

  // ---------- protocol ----------

  #wire(r: ResourceInfo, o: Obj): Obj {
    // Watch events carry kind/apiVersion; keep a (malformed) object's own if it has them.
    return { kind: r.kind, apiVersion: apiVersionOf(r), ...o };
  }

  #listItem(r: ResourceInfo, o: Obj): Obj {
    // Items of a JSON list come without kind/apiVersion, as from a real apiserver.
    const c = { ...o };
    if (c.kind === r.kind) delete c.kind;
    if (c.apiVersion === apiVersionOf(r)) delete c.apiVersion;
    return c;
  }

  /** A stored event as a watcher sees it: through its label selector, objects enter (ADDED) and leave (DELETED). */
  #sendEvent(w: Watcher, r: ResourceInfo, ev: StoredEvent): void {
    let type: EventType = ev.type;
    if (w.selector) {
      const now = w.selector(labelsOf(ev.object));
      const before = ev.prev ? w.selector(labelsOf(ev.prev)) : now;
      if (ev.type === 'MODIFIED') {
        if (!now && !before) return;
        if (now && !before) type = 'ADDED';
        if (!now && before) type = 'DELETED';
      } else if (!now) {
        return;
      }
    }
    this.#send(w, { type, object: this.#wire(r, ev.object) });
  }

  #send(w: Watcher, ev: Obj): void {
    if (!w.res.writableEnded) w.res.write(JSON.stringify(ev) + '\n');
  }

  #endWatch(w: Watcher, abrupt: boolean): void {
    this.#watchers.delete(w);
    clearTimeout(w.timer);
    if (abrupt) w.res.socket?.destroy();
    else if (!w.res.writableEnded) w.res.end();
  }

  #json(res: ServerResponse, rec: RequestRecord, code: number, body: unknown): void {
    rec.status = code;
    const text = JSON.stringify(body);
    res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-cache, private' });
    res.end(text);
  }

  #fail(res: ServerResponse, rec: RequestRecord, code: number, message: string, details?: Obj, reason?: string): void {
    this.#json(res, rec, code, statusObj(code, reason ?? REASONS[code] ?? 'Unknown', message, details));
  }

  #authenticate(req: IncomingMessage): string | undefined {
    const sock = req.socket as TLSSocket;
    if (sock.authorized) {
      const cn = sock.getPeerCertificate()?.subject?.CN;
      if (cn) return Array.isArray(cn) ? cn[0] : cn;
    }
    const auth = req.headers.authorization;
    if (auth?.startsWith('Bearer ')) {
      return this.#tokens[auth.slice(7).trim()];
    }
    return undefined;
  }

  #authorized(verb: Verb, r: ResourceInfo | undefined, path: string): boolean {
    const rules = this.#opts.rules;
    if (!rules) return true;
    if (!r) {
      // Discovery, version and health are open to authenticated users (system:discovery).
      return verb !== 'other' || rules.some((x) => x.nonResourceURLs?.includes(path));
    }
    return rules.some((x) =>
      (x.apiGroups ?? []).some((g) => g === '*' || g === r.group) &&
      (x.resources ?? []).some((p) => p === '*' || p === r.plural) &&
      (x.verbs ?? []).some((v) => v === '*' || v === verb));
  }

  #parse(path: string): { r: ResourceInfo; namespace?: string; name?: string } | { discovery: string } | undefined {
    const seg = path.split('/').filter(Boolean);
    let group: string;
    let version: string;
    let rest: string[];
    if (seg[0] === 'api') {
      if (seg.length === 1) return { discovery: 'api' };
      group = '';
      version = seg[1]!;
      rest = seg.slice(2);
    } else if (seg[0] === 'apis') {
      if (seg.length === 1) return { discovery: 'apis' };
      if (seg.length === 2) return { discovery: `group:${seg[1]}` };
      group = seg[1]!;
      version = seg[2]!;
      rest = seg.slice(3);
    } else {
      return undefined;
    }
    if (rest.length === 0) return { discovery: `gv:${group}/${version}` };
    const find = (plural: string | undefined): ResourceInfo | undefined =>
      this.#resources.find((x) => x.group === group && x.version === version && x.plural === plural);
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      const r = find(rest[2]);
      if (!r || !r.namespaced || rest.length > 4) return undefined;
      return { r, namespace: rest[1], ...(rest[3] !== undefined ? { name: rest[3] } : {}) };
    }
    const r = find(rest[0]);
    if (!r || rest.length > 2) return undefined;
    return { r, ...(rest[1] !== undefined ? { name: rest[1] } : {}) };
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1');
    const query: Record<string, string> = {};
    url.searchParams.forEach((v, k) => { query[k] = v; });
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const parsed = this.#parse(path);
    const isWatch = query.watch === 'true' || query.watch === '1';
    let verb: Verb = 'other';
    if (path === '/version') verb = 'version';
    else if (['/healthz', '/livez', '/readyz'].includes(path)) verb = 'health';
    else if (parsed && 'discovery' in parsed) verb = 'discovery';
    else if (parsed && 'r' in parsed) {
      const named = parsed.name !== undefined;
      const m = req.method ?? 'GET';
      if (m === 'GET') verb = named ? 'get' : isWatch ? 'watch' : 'list';
      else if (m === 'POST' && !named) verb = 'create';
      else if (m === 'PUT' && named) verb = 'update';
      else if (m === 'DELETE' && named) verb = 'delete';
    }
    const rec: RequestRecord = { time: Date.now(), method: req.method ?? 'GET', path, query, verb, status: 0 };
    if (parsed && 'r' in parsed) {
      rec.resource = parsed.r.plural;
      if (parsed.namespace !== undefined) rec.namespace = parsed.namespace;
    }
    this.requests.push(rec);

    const user = this.#authenticate(req);
    if (user === undefined) return this.#fail(res, rec, 401, 'Unauthorized');
    rec.user = user;
    if (req.method !== 'GET' && !['create', 'update', 'delete'].includes(verb)) {
      return this.#fail(res, rec, 405, `the stand-in API server does not implement ${req.method} ${path}`);
    }

    const fi = this.#failures.findIndex((f) => (f.verb === undefined || f.verb === verb) && (f.resource === undefined || f.resource === rec.resource));
    if (fi >= 0) {
      const f = this.#failures[fi]!;
      if (--f.remaining <= 0) this.#failures.splice(fi, 1);
      return this.#fail(res, rec, f.status, `injected failure (${f.status})`);
    }

    const r = parsed && 'r' in parsed ? parsed.r : undefined;
    if (!this.#authorized(verb, r, path)) {
      const scope = parsed && 'r' in parsed && parsed.namespace !== undefined ? `in the namespace "${parsed.namespace}"` : 'at the cluster scope';
      const what = r ? `${r.plural} is forbidden: User "${user}" cannot ${verb} resource "${r.plural}" in API group "${r.group}" ${scope}` : `forbidden: User "${user}" cannot get path "${path}"`;
      return this.#fail(res, rec, 403, what, r ? { kind: r.plural } : undefined);
    }

    if (verb === 'version') return this.#json(res, rec, 200, this.#version());
    if (verb === 'health') {
      rec.status = 200;
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
      return void res.end('ok');
    }
    if (parsed && 'discovery' in parsed) return this.#discovery(res, rec, parsed.discovery);
    if (!parsed) return this.#fail(res, rec, 404, `the server could not find the requested resource (${path})`);
    if (verb === 'create' || verb === 'update' || verb === 'delete') {
      return void this.#write(req, res, rec, verb, parsed.r, parsed.namespace, parsed.name);
    }
    if (query.fieldSelector) {
      return this.#fail(res, rec, 400, 'field selectors are not implemented by the stand-in API server');
    }
    let selector: LabelSelector | undefined;
    if (query.labelSelector) {
      try {
        selector = parseLabelSelector(query.labelSelector);
      } catch (e) {
        return this.#fail(res, rec, 400, `unable to parse requirement: ${(e as Error).message}`);
      }
    }
    if (parsed.name !== undefined) return this.#get(res, rec, parsed.r, parsed.namespace, parsed.name);
    if (isWatch) return this.#watch(res, rec, parsed.r, parsed.namespace, query, selector);
    if (this.listDelayMs > 0) {
      const timer = setTimeout(() => this.#list(res, rec, parsed.r, parsed.namespace, query, selector), this.listDelayMs);
      res.on('close', () => clearTimeout(timer));
      return;
    }
    this.#list(res, rec, parsed.r, parsed.namespace, query, selector);
  }

  // ---------- writes ----------

  /** `deployments.apps`, `services`: how the real API names a resource in messages. */
  #qualified(r: ResourceInfo): string {
    return r.group ? `${r.plural}.${r.group}` : r.plural;
  }

  #write(req: IncomingMessage, res: ServerResponse, rec: RequestRecord, verb: 'create' | 'update' | 'delete',
    r: ResourceInfo, namespace: string | undefined, name: string | undefined): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (res.destroyed) return;
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      if (text.trim() !== '') {
        try {
          body = JSON.parse(text);
        } catch (e) {
          return this.#fail(res, rec, 400, `the request body is not valid JSON: ${(e as Error).message}`);
        }
      }
      if (verb === 'delete') return this.#delete(res, rec, r, namespace, name!);
      if (!isObj(body)) return this.#fail(res, rec, 400, 'the request body must be a JSON object');
      if (verb === 'create') return this.#create(res, rec, r, namespace, body);
      this.#replace(res, rec, r, namespace, name!, body);
    });
  }

  /** Checks common to create and replace; returns an error already sent, or the object to store. */
  #admit(res: ServerResponse, rec: RequestRecord, r: ResourceInfo, namespace: string | undefined, body: Obj): Obj | undefined {
    const o = structuredClone(body);
    if (o.kind !== undefined && o.kind !== r.kind) {
      this.#fail(res, rec, 400, `the kind of the object (${String(o.kind)}) does not match the resource (${r.kind})`);
      return undefined;
    }
    if (o.apiVersion !== undefined && o.apiVersion !== apiVersionOf(r)) {
      this.#fail(res, rec, 400, `the API version of the object (${String(o.apiVersion)}) does not match ${apiVersionOf(r)}`);
      return undefined;
    }
    if (!isObj(o.metadata)) o.metadata = {};
    const md = o.metadata as Meta;
    if (r.namespaced) {
      if (md.namespace !== undefined && md.namespace !== '' && md.namespace !== namespace) {
        this.#fail(res, rec, 400, 'the namespace of the provided object does not match the namespace sent on the request');
        return undefined;
      }
      md.namespace = namespace;
    } else {
      delete md.namespace;
    }
    o.kind = r.kind;
    o.apiVersion = apiVersionOf(r);
    return o;
  }

  #namespaceProblem(res: ServerResponse, rec: RequestRecord, r: ResourceInfo, namespace: string | undefined, name: string): boolean {
    if (!r.namespaced || namespace === undefined) return false;
    const nsStore = this.#objects.get('namespaces');
    if (!nsStore) return false;
    const ns = nsStore.get(namespace);
    if (!ns) {
      this.#fail(res, rec, 404, `namespaces "${namespace}" not found`, { name: namespace, kind: 'namespaces' });
      return true;
    }
    if (isObj(ns.metadata) && ns.metadata.deletionTimestamp) {
      this.#fail(res, rec, 403,
        `${this.#qualified(r)} "${name}" is forbidden: unable to create new content in namespace ${namespace} because it is being terminated`,
        { name, group: r.group, kind: r.plural, causes: [{ reason: 'NamespaceTerminating', message: `namespace ${namespace} is being terminated`, field: 'metadata.namespace' }] });
      return true;
    }
    return false;
  }

  #create(res: ServerResponse, rec: RequestRecord, r: ResourceInfo, namespace: string | undefined, body: Obj): void {
    const o = this.#admit(res, rec, r, namespace, body);
    if (!o) return;
    const md = o.metadata as Meta;
    if ((md.name === undefined || md.name === '') && typeof md.generateName === 'string' && md.generateName !== '') {
      md.name = md.generateName + randomUUID().replace(/-/g, '').slice(0, 5);
    }
    if (typeof md.name !== 'string' || md.name === '') {
      return this.#fail(res, rec, 422, `${r.kind} "" is invalid: metadata.name: Required value: name or generateName is required`,
        { kind: r.kind, causes: [{ reason: 'FieldValueRequired', message: 'Required value: name or generateName is required', field: 'metadata.name' }] });
    }
    const name = md.name;
    if (this.#namespaceProblem(res, rec, r, namespace, name)) return;
    const key = this.#keyOf(r, o)!;
    if (this.#objects.get(r.plural)!.has(key)) {
      return this.#fail(res, rec, 409, `${this.#qualified(r)} "${name}" already exists`, { name, group: r.group, kind: r.plural });
    }
    delete md.resourceVersion;
    delete md.uid;
    delete md.deletionTimestamp;
    md.creationTimestamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    if (r.plural === 'namespaces') {
      md.labels = { ...(isObj(md.labels) ? md.labels : {}), 'kubernetes.io/metadata.name': name };
      o.spec = { finalizers: ['kubernetes'] };
      o.status = { phase: 'Active' };
    }
    if (r.plural === 'deployments') md.generation = 1;
    if (r.plural === 'services') {
      const bad = this.#allocateService(o, undefined);
      if (bad) return this.#fail(res, rec, 422, `Service "${name}" is invalid: ${bad}`, { name, kind: 'Service' });
    }
    this.#json(res, rec, 201, this.#wire(r, this.add(o)));
  }

  #replace(res: ServerResponse, rec: RequestRecord, r: ResourceInfo, namespace: string | undefined, name: string, body: Obj): void {
    const o = this.#admit(res, rec, r, namespace, body);
    if (!o) return;
    const md = o.metadata as Meta;
    if (md.name !== name) {
      return this.#fail(res, rec, 400, `the name of the object (${String(md.name ?? '')}) does not match the name on the URL (${name})`);
    }
    const store = this.#objects.get(r.plural)!;
    const old = store.get(this.#keyOf(r, o)!);
    if (!old || !isObj(old.metadata)) {
      return this.#fail(res, rec, 404, `${this.#qualified(r)} "${name}" not found`, { name, group: r.group, kind: r.plural });
    }
    const rv = md.resourceVersion;
    if (rv === undefined || rv === '') {
      // Services and namespaces refuse unconditional updates; most other kinds allow them.
      if (r.plural === 'services' || r.plural === 'namespaces') {
        return this.#fail(res, rec, 422, `${r.kind} "${name}" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update`,
          { name, kind: r.kind, causes: [{ reason: 'FieldValueInvalid', message: 'must be specified for an update', field: 'metadata.resourceVersion' }] });
      }
    } else if (rv !== old.metadata.resourceVersion) {
      return this.#fail(res, rec, 409,
        `Operation cannot be fulfilled on ${this.#qualified(r)} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
        { name, group: r.group, kind: r.plural }, 'Conflict');
    }
    // The status is a subresource: a PUT of the object leaves it as it was.
    if ('status' in old) o.status = structuredClone(old.status);
    else delete o.status;
    if (old.metadata.deletionTimestamp !== undefined) md.deletionTimestamp = old.metadata.deletionTimestamp;
    if (r.plural === 'namespaces') {
      md.labels = { ...(isObj(md.labels) ? md.labels : {}), 'kubernetes.io/metadata.name': name };
      o.spec = structuredClone(old.spec);
    }
    if (r.plural === 'deployments') {
      const sameSpec = JSON.stringify(o.spec) === JSON.stringify(old.spec);
      md.generation = (typeof old.metadata.generation === 'number' ? old.metadata.generation : 1) + (sameSpec ? 0 : 1);
    }
    if (r.plural === 'services') {
      const bad = this.#allocateService(o, old);
      if (bad) return this.#fail(res, rec, 422, `Service "${name}" is invalid: ${bad}`, { name, kind: 'Service' });
    }
    this.#json(res, rec, 200, this.#wire(r, this.update(o)));
  }

  /** clusterIP and nodePorts as the apiserver allocates them; kept from `old` when unset. Returns an error text. */
  #allocateService(o: Obj, old: Obj | undefined): string | undefined {
    if (!isObj(o.spec)) o.spec = {};
    const spec = o.spec as Obj;
    const oldSpec = old && isObj(old.spec) ? old.spec : undefined;
    const type = typeof spec.type === 'string' ? spec.type : 'ClusterIP';
    spec.type = type;
    if (type !== 'ExternalName') {
      if (spec.clusterIP === undefined || spec.clusterIP === '') {
        if (oldSpec && typeof oldSpec.clusterIP === 'string') spec.clusterIP = oldSpec.clusterIP;
        else {
          const n = this.#nextClusterIP++;
          spec.clusterIP = `10.43.${Math.floor(n / 256) % 256}.${n % 256}`;
        }
      } else if (oldSpec && oldSpec.clusterIP !== spec.clusterIP) {
        return `spec.clusterIP: Invalid value: ${JSON.stringify(spec.clusterIP)}: field is immutable`;
      }
      spec.clusterIPs = [spec.clusterIP];
    }
    const ports = Array.isArray(spec.ports) ? spec.ports.filter(isObj) : [];
    const oldPorts = oldSpec && Array.isArray(oldSpec.ports) ? oldSpec.ports.filter(isObj) : [];
    if (type === 'NodePort' || type === 'LoadBalancer') {
      const mine = new Set(oldPorts.map((p) => p.nodePort));
      const taken = new Set<unknown>();
      for (const svc of this.#objects.get('services')!.values()) {
        if (svc === old || !isObj(svc.spec) || !Array.isArray(svc.spec.ports)) continue;
        for (const p of svc.spec.ports) if (isObj(p) && p.nodePort !== undefined) taken.add(p.nodePort);
      }
      for (const [i, p] of ports.entries()) {
        if (p.nodePort === undefined || p.nodePort === 0) {
          const same = oldPorts.find((q) => q.port === p.port && (q.protocol ?? 'TCP') === (p.protocol ?? 'TCP'));
          if (same?.nodePort !== undefined) p.nodePort = same.nodePort;
          else {
            let n = 30000;
            while (taken.has(n) || mine.has(n)) n++;
            p.nodePort = n;
          }
        } else if (typeof p.nodePort !== 'number' || p.nodePort < 30000 || p.nodePort > 32767) {
          return `spec.ports[${i}].nodePort: Invalid value: ${JSON.stringify(p.nodePort)}: provided port is not in the valid range. The range of valid ports is 30000-32767`;
        } else if (taken.has(p.nodePort)) {
          return `spec.ports[${i}].nodePort: Invalid value: ${p.nodePort}: provided port is already allocated`;
        }
        taken.add(p.nodePort);
      }
    }
    return undefined;
  }

  #delete(res: ServerResponse, rec: RequestRecord, r: ResourceInfo, namespace: string | undefined, name: string): void {
    const key = r.namespaced ? `${namespace ?? ''}/${name}` : name;
    const store = this.#objects.get(r.plural)!;
    const old = store.get(key);
    if (!old) return this.#fail(res, rec, 404, `${this.#qualified(r)} "${name}" not found`, { name, group: r.group, kind: r.plural });
    if (r.plural === 'namespaces') {
      if (isObj(old.metadata) && old.metadata.deletionTimestamp) {
        return this.#fail(res, rec, 409, 'The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will automatically be purged by the system.',
          { name, kind: 'namespaces' }, 'Conflict');
      }
      const o = structuredClone(old);
      (o.metadata as Meta).deletionTimestamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
      o.status = { ...(isObj(o.status) ? o.status : {}), phase: 'Terminating' };
      const stored = this.update(o, 'namespaces');
      const timer = setTimeout(() => {
        this.#finalizers.delete(timer);
        this.#finalizeNamespace(name);
      }, this.#opts.namespaceFinalizeMs ?? 0);
      this.#finalizers.add(timer);
      return this.#json(res, rec, 200, this.#wire(r, stored));
    }
    this.remove(r.plural, namespace ?? '', name);
    if (r.plural === 'pods') return this.#json(res, rec, 200, this.#wire(r, old));
    const uid = isObj(old.metadata) ? old.metadata.uid : undefined;
    this.#json(res, rec, 200, {
      kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success',
      details: { name, group: r.group, kind: r.plural, ...(uid ? { uid } : {}) },
    });
  }

  /** What the namespace controller does: remove every object in the namespace, then the namespace. */
  #finalizeNamespace(name: string): void {
    for (const r of this.#resources) {
      if (!r.namespaced) continue;
      for (const [key, o] of [...this.#objects.get(r.plural)!]) {
        if (isObj(o.metadata) && o.metadata.namespace === name) {
          this.#objects.get(r.plural)!.delete(key);
          this.#record('DELETED', r, o);
        }
      }
    }
    this.remove('namespaces', '', name);
  }

  /** Namespaces still Terminating (deleted, not yet finalized). */
  get terminatingNamespaces(): number {
    return this.#finalizers.size;
  }

  #version(): Obj {
    const gitVersion = this.#opts.gitVersion ?? 'v1.31.4+k3s1';
    const m = /^v(\d+)\.(\d+)/.exec(gitVersion);
    return {
      major: m?.[1] ?? '1', minor: m?.[2] ?? '31', gitVersion, gitCommit: '0000000000000000000000000000000000000000',
      gitTreeState: 'clean', buildDate: '2025-01-01T00:00:00Z', goVersion: 'go1.23.4', compiler: 'gc', platform: 'linux/amd64',
    };
  }

  #discovery(res: ServerResponse, rec: RequestRecord, what: string): void {
    if (what === 'api') {
      return this.#json(res, rec, 200, {
        kind: 'APIVersions', versions: ['v1'],
        serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: `127.0.0.1:${this.#port}` }],
      });
    }
    const groups = [...new Set(this.#resources.filter((r) => r.group).map((r) => `${r.group}/${r.version}`))].map((gv) => {
      const [name, version] = gv.split('/') as [string, string];
      return { name, versions: [{ groupVersion: gv, version }], preferredVersion: { groupVersion: gv, version } };
    });
    if (what === 'apis') return this.#json(res, rec, 200, { kind: 'APIGroupList', apiVersion: 'v1', groups });
    if (what.startsWith('group:')) {
      const g = groups.find((x) => x.name === what.slice(6));
      if (!g) return this.#fail(res, rec, 404, 'the server could not find the requested resource');
      return this.#json(res, rec, 200, { kind: 'APIGroup', apiVersion: 'v1', ...g });
    }
    const gv = what.slice(3);
    const rs = this.#resources.filter((r) => `${r.group}/${r.version}` === gv);
    if (rs.length === 0) return this.#fail(res, rec, 404, 'the server could not find the requested resource');
    return this.#json(res, rec, 200, {
      kind: 'APIResourceList', apiVersion: 'v1', groupVersion: gv.replace(/^\//, ''),
      resources: rs.map((r) => ({ name: r.plural, singularName: r.singular, namespaced: r.namespaced, kind: r.kind, verbs: ['create', 'delete', 'get', 'list', 'update', 'watch'] })),
    });
  }

  #get(res: ServerResponse, rec: RequestRecord, r: ResourceInfo, namespace: string | undefined, name: string): void {
    const o = this.#objects.get(r.plural)!.get(r.namespaced ? `${namespace ?? ''}/${name}` : name);
    if (!o) return this.#fail(res, rec, 404, `${r.plural} "${name}" not found`, { name, kind: r.plural });
    this.#json(res, rec, 200, this.#wire(r, o));
  }

  #current(r: ResourceInfo, namespace: string | undefined, selector?: LabelSelector): Obj[] {
    const m = this.#objects.get(r.plural)!;
    return [...m.keys()].sort().map((k) => m.get(k)!)
      .filter((o) => namespace === undefined || (isObj(o.metadata) && o.metadata.namespace === namespace))
      .filter((o) => !selector || selector(labelsOf(o)));
  }

  #list(res: ServerResponse, rec: RequestRecord, r: ResourceInfo, namespace: string | undefined, q: Record<string, string>, selector: LabelSelector | undefined): void {
    if (res.destroyed) return;
    const limit = q.limit ? Number.parseInt(q.limit, 10) : 0;
    let rv = this.#rv;
    let items: Obj[];
    let offset = 0;
    let pageId: string | undefined;
    if (q.continue) {
      let tok: { id?: string; offset?: number } = {};
      try {
        tok = JSON.parse(Buffer.from(q.continue, 'base64url').toString('utf8')) as typeof tok;
      } catch { /* reported below */ }
      const page = tok.id ? this.#pages.get(tok.id) : undefined;
      if (!page || page.resource !== r.plural) return this.#fail(res, rec, 400, 'invalid continue token');
      if (page.rv < this.#compactedRv) {
        this.#pages.delete(tok.id!);
        return this.#fail(res, rec, 410, 'the continue token is too old (its resourceVersion was compacted); start a new list');
      }
      ({ rv, items } = page);
      offset = tok.offset ?? 0;
      pageId = tok.id;
    } else {
      if (q.resourceVersion && q.resourceVersion !== '0') {
        const want = Number(q.resourceVersion);
        if (!Number.isInteger(want)) return this.#fail(res, rec, 400, `invalid resourceVersion ${JSON.stringify(q.resourceVersion)}`);
        if (want > this.#rv) {
          return this.#fail(res, rec, 504, `Too large resource version: ${want}, current: ${this.#rv}`,
            { causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }], retryAfterSeconds: 1 });
        }
        if (q.resourceVersionMatch === 'Exact' && want !== this.#rv) {
          return this.#fail(res, rec, 410, `too old resource version: ${want} (${this.#rv})`);
        }
      }
      items = this.#current(r, namespace, selector).map((o) => this.#listItem(r, o));
    }
    let page = items;
    const meta: Obj = { resourceVersion: String(rv) };
    if (limit > 0 && items.length - offset > limit) {
      page = items.slice(offset, offset + limit);
      if (!pageId) {
        pageId = randomUUID();
        this.#pages.set(pageId, { rv, resource: r.plural, items });
      }
      meta.continue = Buffer.from(JSON.stringify({ id: pageId, offset: offset + limit })).toString('base64url');
      meta.remainingItemCount = items.length - offset - limit;
    } else {
      page = items.slice(offset);
      if (pageId) this.#pages.delete(pageId);
    }
    this.#json(res, rec, 200, { kind: `${r.kind}List`, apiVersion: apiVersionOf(r), metadata: meta, items: page });
  }

  #watch(res: ServerResponse, rec: RequestRecord, r: ResourceInfo, namespace: string | undefined, q: Record<string, string>, selector: LabelSelector | undefined): void {
    const rvParam = q.resourceVersion;
    let from: number | undefined;
    if (rvParam !== undefined && rvParam !== '' && rvParam !== '0') {
      from = Number(rvParam);
      if (!Number.isInteger(from)) return this.#fail(res, rec, 400, `invalid resourceVersion ${JSON.stringify(rvParam)}`);
      if (from < this.#compactedRv && this.#opts.goneAs === 'http') {
        return this.#fail(res, rec, 410, `too old resource version: ${from} (${this.#compactedRv + 1})`);
      }
    }
    rec.status = 200;
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    const w: Watcher = { resource: r, namespace, res, bookmarks: q.allowWatchBookmarks === 'true', timer: undefined, selector };
    const errorEvent = (code: number, message: string, details?: Obj): void => {
      res.write(JSON.stringify({ type: 'ERROR', object: statusObj(code, REASONS[code] ?? 'Unknown', message, details) }) + '\n');
      res.end();
    };
    if (from !== undefined && from < this.#compactedRv) {
      return errorEvent(410, `too old resource version: ${from} (${this.#compactedRv + 1})`);
    }
    if (from !== undefined && from > this.#rv) {
      return errorEvent(504, `Too large resource version: ${from}, current: ${this.#rv}`,
        { causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }], retryAfterSeconds: 1 });
    }
    if (from === undefined) {
      // "Any" resourceVersion: synthetic ADDED for the current state, then live events.
      for (const o of this.#current(r, namespace, selector)) this.#send(w, { type: 'ADDED', object: this.#wire(r, o) });
    } else {
      for (const ev of this.#history) {
        if (ev.rv > from && ev.resource === r.plural && (namespace === undefined || ev.namespace === namespace)) {
          this.#sendEvent(w, r, ev);
        }
      }
    }
    this.#watchers.add(w);
    const timeoutMs = q.timeoutSeconds ? Number(q.timeoutSeconds) * 1000 : this.#opts.watchTimeoutMs;
    if (timeoutMs && Number.isFinite(timeoutMs)) w.timer = setTimeout(() => this.#endWatch(w, false), timeoutMs);
    res.on('close', () => {
      this.#watchers.delete(w);
      clearTimeout(w.timer);
    });
  }
}
