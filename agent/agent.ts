// The node agent: source -> model -> datapath, one reconcile at a time, with
// the local API for the CLI. The datapath is adopted from the pins on start
// and left in place on exit, so restarting the agent never interrupts traffic.
import { hostname } from 'node:os';
import type { Source } from './source/types.ts';
import type { Logger } from './log.ts';
import { Controller } from './controller.ts';
import { ApiServer, HttpError } from './api/server.ts';
import type { AgentStatus, EndpointInfo, NodeInfo } from './api/types.ts';
import { DEFAULT_STATE_DIR, EndpointStore, EndpointValidationError, conflicts, validateRegistration } from './endpoints.ts';
import { listLinks } from './datapath/iproute.ts';
import { LbModel } from './model/services.ts';
import { LbDatapath, type LbApplyResult } from './datapath/lb.ts';

export const AGENT_VERSION = '0.1.0';

export interface AgentOptions {
  source: Source;
  bpfRoot: string;
  cgroup: string;
  apiSocket: string;
  nodeName?: string;
  log: Logger;
  objectDir?: string;
  /** Force a socket-LB object variant (file name). */
  object?: string;
  replaceIncompatible?: boolean;
  /** Periodic full resync (re-read the maps, recompute, repair). Default 60 s. */
  resyncMs?: number;
  debounceMs?: number;
  /** Where the agent keeps its own state (endpoints). Default /var/lib/kinglet/agent. */
  stateDir?: string;
}

export class Agent {
  readonly #o: AgentOptions;
  readonly #nodeName: string;
  readonly #startedAt = new Date();
  #lb: LbDatapath | undefined;
  #api: ApiServer | undefined;
  #controller: Controller | undefined;
  #lastApply: (LbApplyResult & { at: string }) | undefined;
  #warned = new Set<string>();
  #resyncDue = false;
  readonly #model = new LbModel();
  readonly #endpoints: EndpointStore;

  constructor(opts: AgentOptions) {
    this.#o = opts;
    this.#nodeName = opts.nodeName ?? hostname();
    this.#endpoints = new EndpointStore(opts.stateDir ?? DEFAULT_STATE_DIR);
  }

  get datapath(): LbDatapath | undefined {
    return this.#lb;
  }

  async start(): Promise<void> {
    const { log } = this.#o;
    this.#lb = LbDatapath.open({
      bpfRoot: this.#o.bpfRoot,
      cgroup: this.#o.cgroup,
      objectDir: this.#o.objectDir,
      object: this.#o.object,
      replaceIncompatible: this.#o.replaceIncompatible,
      log: (msg, fields) => log('info', msg, fields),
    });
    for (const a of this.#lb.describe().attachments) {
      log('info', `program ${a.action}`, { program: a.program, attach: a.attachType, cgroup: a.cgroup, linkId: a.linkId });
    }
    this.#controller = new Controller({
      name: 'lb-services',
      debounceMs: this.#o.debounceMs ?? 10,
      resyncMs: 0,
      ready: () => this.#o.source.status().synced,
      reconcile: async () => this.#reconcile(),
      onError: (err, st) => log('error', 'reconcile failed; will retry', { controller: st.name, error: err, failures: st.consecutiveFailures }),
    });
    const resyncMs = this.#o.resyncMs ?? 60_000;
    if (resyncMs > 0) {
      const t = setInterval(() => {
        this.#resyncDue = true;
        this.#controller?.trigger();
      }, resyncMs);
      t.unref();
      this.#resyncTimer = t;
    }
    await this.#loadEndpoints();
    this.#api = this.#routes();
    await this.#api.listen(this.#o.apiSocket);
    await this.#o.source.start(() => this.#controller?.trigger());
    this.#controller.start();
    log('info', 'agent started', { node: this.#nodeName, apiSocket: this.#o.apiSocket, bpfRoot: this.#o.bpfRoot, cgroup: this.#o.cgroup });
  }

  #resyncTimer: NodeJS.Timeout | undefined;

  async #reconcile(): Promise<void> {
    const lb = this.#lb!;
    if (this.#resyncDue) {
      this.#resyncDue = false;
      lb.resync();
    }
    // Incremental: only the objects that changed since the last reconcile are
    // translated, and only their frontends' entries are compared and written
    // (after a resync, everything is).
    const u = this.#model.update(this.#o.source.snapshot());
    const warnings = u.warnings;
    const current = new Set<string>();
    for (const w of warnings) {
      const k = `${w.object}: ${w.reason}`;
      current.add(k);
      if (!this.#warned.has(k)) this.#o.log('warn', 'skipped', { object: w.object, reason: w.reason });
    }
    this.#warned = current;
    const r = lb.update(u);
    this.#lastApply = { ...r, at: new Date().toISOString() };
    if (r.added + r.updated + r.deleted > 0) {
      this.#o.log('info', 'services programmed', {
        frontends: r.frontends,
        backends: r.backends,
        added: r.added,
        updated: r.updated,
        deleted: r.deleted,
        ms: Math.round(r.durationMs * 100) / 100,
      });
    }
  }

  /** Read the persisted endpoints and drop those whose host veth is gone (the pod went while we were down). */
  async #loadEndpoints(): Promise<void> {
    const eps = this.#endpoints.load();
    if (eps.length === 0) return;
    const present = new Set((await listLinks()).map((l) => l.ifname));
    const gone = eps.filter((e) => !present.has(e.hostIfname));
    for (const e of gone) this.#o.log('info', 'endpoint dropped: its host interface is gone', { containerId: e.containerId, hostIfname: e.hostIfname });
    this.#endpoints.deleteMany(gone.map((e) => e.containerId));
    this.#o.log('info', 'endpoints restored', { count: this.#endpoints.size, dropped: gone.length });
  }

  #putEndpoint(containerId: string, body: unknown): EndpointInfo {
    let reg;
    try {
      reg = validateRegistration(containerId, body);
    } catch (e) {
      if (e instanceof EndpointValidationError) throw new HttpError(400, e.message, e.hint);
      throw e;
    }
    const clash = conflicts(reg, this.#endpoints.list());
    if (clash.length > 0) throw new HttpError(409, clash.join('; '), 'delete the other endpoint first (CNI DEL), or run CNI GC');
    const prev = this.#endpoints.get(containerId);
    const info: EndpointInfo = { ...reg, identity: 0, programs: [], createdAt: prev?.createdAt ?? new Date().toISOString() };
    this.#endpoints.put(info);
    this.#o.log('info', prev ? 'endpoint updated' : 'endpoint added', { containerId, hostIfname: info.hostIfname, addresses: info.addresses });
    return info;
  }

  #deleteEndpoint(containerId: string): undefined {
    if (this.#endpoints.delete(containerId)) this.#o.log('info', 'endpoint removed', { containerId });
    return undefined;
  }

  /** Resolves when no reconcile is pending (tests). */
  async idle(): Promise<void> {
    await this.#controller?.idle();
  }

  #node(): NodeInfo {
    const node = this.#o.source.snapshot().nodes.find((n) => n.metadata?.name === this.#nodeName);
    const spec = (node?.spec ?? {}) as { podCIDR?: string; podCIDRs?: string[] };
    const status = (node?.status ?? {}) as { addresses?: { type?: string; address?: string }[] };
    const addrs = [...(status.addresses ?? [])]
      .filter((a) => a.type === 'InternalIP' || a.type === 'ExternalIP')
      .sort((a, b) => (a.type === b.type ? 0 : a.type === 'InternalIP' ? -1 : 1))
      .map((a) => a.address)
      .filter((a): a is string => typeof a === 'string');
    return { name: this.#nodeName, podCIDRs: spec.podCIDRs ?? (spec.podCIDR ? [spec.podCIDR] : []), addresses: addrs };
  }

  status(): AgentStatus {
    const lb = this.#lb;
    const src = this.#o.source.status();
    const ctl = this.#controller?.status();
    const problems: string[] = [];
    if (!lb) problems.push('datapath not loaded');
    if (!src.synced) problems.push(`source ${src.kind} (${src.endpoint}) has not completed its first full list${src.lastError ? `: ${src.lastError}` : ''}`);
    if (ctl?.lastError) problems.push(`controller ${ctl.name}: ${ctl.lastError}`);
    const desc = lb?.describe();
    const variant = lb?.variant;
    const node = this.#node();
    return {
      healthy: problems.length === 0,
      problems,
      version: AGENT_VERSION,
      node: { name: this.#nodeName },
      startedAt: this.#startedAt.toISOString(),
      uptimeSeconds: Math.round((Date.now() - this.#startedAt.getTime()) / 1000),
      source: { ...src },
      kubeProxyReplacement: {
        mode: 'Partial',
        features: [
          { name: 'ClusterIP (socket LB, TCP+UDP, v4+v6)', enabled: !!lb, detail: lb ? 'translated once at connect()' : 'not loaded' },
          { name: 'connect to a service without backends', enabled: !!variant, detail: variant?.setRetval ? 'refused: ECONNREFUSED' : 'refused: EPERM (kernel < 5.18 has no bpf_set_retval)' },
          { name: 'session affinity', enabled: !!variant, detail: variant?.netnsCookie ? 'per client network namespace' : 'per node (kernel < 5.7 has no netns cookie)' },
          { name: 'NodePort / ExternalIP / LoadBalancer', enabled: false, detail: 'not implemented yet' },
        ],
      },
      datapath: {
        bpfRoot: this.#o.bpfRoot,
        cgroup: this.#o.cgroup,
        object: variant?.file ?? '',
        programs: (desc?.attachments ?? []).map((a) => ({ name: a.program, attach: a.attachType, progId: a.progId, linkId: a.linkId })),
        maps: lb?.fill() ?? [],
      },
      services: {
        frontends: this.#lastApply?.frontends ?? 0,
        backends: this.#lastApply?.backends ?? 0,
        ...(this.#lastApply
          ? { lastApply: { at: this.#lastApply.at, added: this.#lastApply.added, updated: this.#lastApply.updated, deleted: this.#lastApply.deleted, durationMs: Math.round(this.#lastApply.durationMs * 100) / 100 } }
          : {}),
      },
      controllers: ctl ? [ctl] : [],
      ...(node.podCIDRs.length ? { ipam: { podCIDRs: node.podCIDRs } } : {}),
    };
  }

  #routes(): ApiServer {
    return new ApiServer()
      .route('GET', '/v1/status', () => this.status())
      .route('GET', '/v1/services', () => this.#lb?.services() ?? [])
      .route('GET', '/v1/node', () => {
        if (!this.#o.source.status().synced) throw new HttpError(503, 'the agent has not synced with its source yet', 'retry in a moment');
        return this.#node();
      })
      .route('GET', '/v1/endpoints', () => this.#endpoints.list())
      .route('PUT', '/v1/endpoints/{containerId}', (r) => this.#putEndpoint(r.params.containerId ?? '', r.body))
      .route('DELETE', '/v1/endpoints/{containerId}', (r) => this.#deleteEndpoint(r.params.containerId ?? ''));
  }

  /** Stop watching and serving. The datapath stays pinned and attached. */
  async stop(): Promise<void> {
    if (this.#resyncTimer) clearInterval(this.#resyncTimer);
    await this.#controller?.stop();
    await this.#o.source.stop();
    await this.#api?.close();
    this.#lb?.close();
  }
}
