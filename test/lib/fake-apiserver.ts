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
// - TLS with a test CA; client-certificate and bearer-token authentication;
//   optional RBAC-like authorization from PolicyRules (403 otherwise).
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
}

interface Watcher {
  resource: ResourceInfo;
  namespace: string | undefined;
  res: ServerResponse;
  bookmarks: boolean;
  timer: NodeJS.Timeout | undefined;
}

export type Verb = 'list' | 'watch' | 'get' | 'discovery' | 'version' | 'health' | 'other';

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
  409: 'AlreadyExists', 410: 'Expired', 429: 'TooManyRequests', 500: 'InternalError', 503: 'ServiceUnavailable', 504: 'Timeout',
};

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

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

  private constructor(pki: TestPki, dir: string, ownDir: boolean, opts: FakeApiServerOptions) {
    this.pki = pki;
    this.dir = dir;
    this.#ownDir = ownDir;
    this.#opts = opts;
    this.#rv = opts.rvBase ?? 100;
    this.#compactedRv = this.#rv;
    this.#tokens = opts.tokens ?? { 'test-token': 'token-user' };
    for (const r of FAKE_RESOURCES) this.#objects.set(r.plural, new Map());
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
    const r = FAKE_RESOURCES.find((x) => x.plural === name || x.kind === name);
    if (!r) throw new Error(`fake-apiserver: unknown resource for ${JSON.stringify(resource ?? obj.kind)}`);
    return r;
  }

  #keyOf(r: ResourceInfo, obj: Obj): string | undefined {
    const md = isObj(obj.metadata) ? obj.metadata : undefined;
    if (!md || typeof md.name !== 'string' || md.name === '') return undefined;
    const ns = typeof md.namespace === 'string' ? md.namespace : '';
    return r.namespaced ? `${ns}/${md.name}` : md.name;
  }

  #record(type: EventType, r: ResourceInfo, obj: Obj): Obj {
    this.#rv++;
    const stored = structuredClone(obj);
    if (isObj(stored.metadata)) stored.metadata.resourceVersion = String(this.#rv);
    const ns = isObj(stored.metadata) && typeof stored.metadata.namespace === 'string' ? stored.metadata.namespace : undefined;
    this.#history.push({ rv: this.#rv, resource: r.plural, namespace: ns, type, object: stored });
    const limit = this.#opts.historyLimit;
    if (limit !== undefined) {
      while (this.#history.length > limit) {
        const dropped = this.#history.shift();
        if (dropped) this.#compactedRv = dropped.rv;
      }
    }
    for (const w of this.#watchers) {
      if (w.resource.plural === r.plural && (w.namespace === undefined || w.namespace === ns)) {
        this.#send(w, { type, object: this.#wire(r, stored) });
      }
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
    store.set(key, this.#record('MODIFIED', r, o));
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
    for (const r of FAKE_RESOURCES) {
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

  #fail(res: ServerResponse, rec: RequestRecord, code: number, message: string, details?: Obj): void {
    this.#json(res, rec, code, statusObj(code, REASONS[code] ?? 'Unknown', message, details));
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
      FAKE_RESOURCES.find((x) => x.group === group && x.version === version && x.plural === plural);
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
    else if (parsed && 'r' in parsed) verb = parsed.name !== undefined ? 'get' : isWatch ? 'watch' : 'list';
    const rec: RequestRecord = { time: Date.now(), method: req.method ?? 'GET', path, query, verb, status: 0 };
    if (parsed && 'r' in parsed) {
      rec.resource = parsed.r.plural;
      if (parsed.namespace !== undefined) rec.namespace = parsed.namespace;
    }
    this.requests.push(rec);

    const user = this.#authenticate(req);
    if (user === undefined) return this.#fail(res, rec, 401, 'Unauthorized');
    rec.user = user;
    if (req.method !== 'GET') return this.#fail(res, rec, 405, `the stand-in API server serves only GET, not ${req.method}`);

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
    if (query.labelSelector || query.fieldSelector) {
      return this.#fail(res, rec, 400, 'label and field selectors are not implemented by the stand-in API server');
    }
    if (parsed.name !== undefined) return this.#get(res, rec, parsed.r, parsed.namespace, parsed.name);
    if (isWatch) return this.#watch(res, rec, parsed.r, parsed.namespace, query);
    if (this.listDelayMs > 0) {
      const timer = setTimeout(() => this.#list(res, rec, parsed.r, parsed.namespace, query), this.listDelayMs);
      res.on('close', () => clearTimeout(timer));
      return;
    }
    this.#list(res, rec, parsed.r, parsed.namespace, query);
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
    const groups = [...new Set(FAKE_RESOURCES.filter((r) => r.group).map((r) => `${r.group}/${r.version}`))].map((gv) => {
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
    const rs = FAKE_RESOURCES.filter((r) => `${r.group}/${r.version}` === gv);
    if (rs.length === 0) return this.#fail(res, rec, 404, 'the server could not find the requested resource');
    return this.#json(res, rec, 200, {
      kind: 'APIResourceList', apiVersion: 'v1', groupVersion: gv.replace(/^\//, ''),
      resources: rs.map((r) => ({ name: r.plural, singularName: r.singular, namespaced: r.namespaced, kind: r.kind, verbs: ['get', 'list', 'watch'] })),
    });
  }

  #get(res: ServerResponse, rec: RequestRecord, r: ResourceInfo, namespace: string | undefined, name: string): void {
    const o = this.#objects.get(r.plural)!.get(r.namespaced ? `${namespace ?? ''}/${name}` : name);
    if (!o) return this.#fail(res, rec, 404, `${r.plural} "${name}" not found`, { name, kind: r.plural });
    this.#json(res, rec, 200, this.#wire(r, o));
  }

  #current(r: ResourceInfo, namespace: string | undefined): Obj[] {
    const m = this.#objects.get(r.plural)!;
    return [...m.keys()].sort().map((k) => m.get(k)!)
      .filter((o) => namespace === undefined || (isObj(o.metadata) && o.metadata.namespace === namespace));
  }

  #list(res: ServerResponse, rec: RequestRecord, r: ResourceInfo, namespace: string | undefined, q: Record<string, string>): void {
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
      items = this.#current(r, namespace).map((o) => this.#listItem(r, o));
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

  #watch(res: ServerResponse, rec: RequestRecord, r: ResourceInfo, namespace: string | undefined, q: Record<string, string>): void {
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
    const w: Watcher = { resource: r, namespace, res, bookmarks: q.allowWatchBookmarks === 'true', timer: undefined };
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
      for (const o of this.#current(r, namespace)) this.#send(w, { type: 'ADDED', object: this.#wire(r, o) });
    } else {
      for (const ev of this.#history) {
        if (ev.rv > from && ev.resource === r.plural && (namespace === undefined || ev.namespace === namespace)) {
          this.#send(w, { type: ev.type, object: this.#wire(r, ev.object) });
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
