// The node agent: source -> model -> datapath, one reconcile at a time, with
// the local API for the CLI. The datapath is adopted from the pins on start
// and left in place on exit, so restarting the agent never interrupts traffic.
import { hostname } from 'node:os';
import type { Snapshot, Source } from './source/types.ts';
import type { Logger } from './log.ts';
import { Controller } from './controller.ts';
import { ApiServer, HttpError } from './api/server.ts';
import type { AgentStatus, NodeInfo } from './api/types.ts';
import { apiLink, cniHandler, CNI_ROUTE } from './cni/forward.ts';
import { DEFAULT_STATE_DIR } from './endpoints.ts';
import { PodNetwork, type NodeView } from './pod-network.ts';
import type { RedirectMode } from './datapath/pod-layout.ts';
import { removePinnedLinks } from './datapath/loader.ts';
import { SOCK_LB_PROGRAMS } from './datapath/lb-layout.ts';
import { LbModel } from './model/services.ts';
import { LbDatapath, type LbApplyResult, type LbDriftResult } from './datapath/lb.ts';
import { HeapCompactor, tuneMalloc } from './memory.ts';

export const AGENT_VERSION = '0.1.0';

/** A duration as logged and reported: milliseconds to two decimals. */
const roundMs = (ms: number): number => Math.round(ms * 100) / 100;

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
  /** Periodic resync: compare the maps with the agent's copy and repair drift (a full re-read after a failed write). Default 60 s. */
  resyncMs?: number;
  debounceMs?: number;
  /** Where the agent keeps its own state (endpoints). Default /var/lib/kinglet/agent. */
  stateDir?: string;
  /** Attach the socket LB to the cgroup (default true). Off: services are translated per packet in tc. */
  socketLb?: boolean;
  /** Pod networking (endpoints, tc programs, masquerade, routes). Default on. */
  podNetwork?: boolean;
  /** Native device for masquerade: a name, 'none', or undefined for the default route's device. */
  nativeDevice?: string;
  clusterCidr?: string;
  /** Masquerade source ports, inclusive (default DEFAULT_SNAT_PORTS, above Linux's default ephemeral range). */
  snatPorts?: [number, number];
  redirect?: RedirectMode | 'auto';
  /** Allow changing sysctls and routes when running in the initial network namespace. */
  manageSysctls?: boolean;
  /** Run a full GC once idle after work that grew the heap (see memory.ts). Default true. */
  compactHeap?: boolean;
}

export class Agent {
  readonly #o: AgentOptions;
  readonly #nodeName: string;
  readonly #startedAt = new Date();
  #lb: LbDatapath | undefined;
  #api: ApiServer | undefined;
  #controller: Controller | undefined;
  #lastApply: (LbApplyResult & { at: string }) | undefined;
  #lastResync: (LbDriftResult & { at: string }) | undefined;
  #warned = new Set<string>();
  #resyncDue = false;
  readonly #model = new LbModel();
  #pods: PodNetwork | undefined;
  #compactor: HeapCompactor | undefined;

  constructor(opts: AgentOptions) {
    this.#o = opts;
    this.#nodeName = opts.nodeName ?? hostname();
  }

  get datapath(): LbDatapath | undefined {
    return this.#lb;
  }

  async start(): Promise<void> {
    const { log } = this.#o;
    const socketLb = this.#o.socketLb ?? true;
    this.#lb = LbDatapath.open({
      bpfRoot: this.#o.bpfRoot,
      // Without the socket LB the object is loaded for its maps (the tc LB reads them) and attached nowhere.
      cgroup: socketLb ? this.#o.cgroup : '',
      objectDir: this.#o.objectDir,
      object: this.#o.object,
      replaceIncompatible: this.#o.replaceIncompatible,
      // New maps (an upgrade to another layout, or a first start) are filled by the first
      // reconcile before any program reads them; a plain restart adopts everything at once.
      fillFirst: true,
      log: (msg, fields) => log('info', msg, fields),
    });
    if (this.#lb.attachPending) log('info', 'socket LB programs attach after the first reconcile has filled the new maps; until then the programs already attached (if any) keep serving');
    else this.#logAttached();
    if (!socketLb) {
      const removed = removePinnedLinks(this.#o.bpfRoot, Object.keys(SOCK_LB_PROGRAMS));
      log('info', 'socket LB off: services are translated per packet by the pod programs', { detachedLinks: removed.length });
    }
    if (this.#o.podNetwork ?? true) {
      this.#pods = await PodNetwork.start({
        bpfRoot: this.#o.bpfRoot,
        stateDir: this.#o.stateDir ?? DEFAULT_STATE_DIR,
        objectDir: this.#o.objectDir,
        replaceIncompatible: this.#o.replaceIncompatible,
        nativeDevice: this.#o.nativeDevice,
        clusterCidr: this.#o.clusterCidr,
        snatPorts: this.#o.snatPorts,
        redirect: this.#o.redirect,
        manageSysctls: this.#o.manageSysctls,
        log,
      });
    }
    if (this.#o.compactHeap ?? true) {
      const why = tuneMalloc();
      if (why) log('debug', 'malloc left as it is', { reason: why });
      this.#compactor = new HeapCompactor({
        onCollect: ({ beforeBytes, afterBytes, ms }) =>
          log('info', 'heap compacted', { beforeMb: Math.round(beforeBytes / 1048576), afterMb: Math.round(afterBytes / 1048576), ms: Math.round(ms) }),
      });
    }
    this.#controller = new Controller({
      name: 'lb-services',
      debounceMs: this.#o.debounceMs ?? 10,
      resyncMs: 0,
      ready: () => this.#o.source.status().synced,
      reconcile: async () => {
        try {
          this.#compactor?.beforeFirstWork();
          await this.#reconcile();
        } finally {
          this.#compactor?.afterWork();
        }
      },
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
    this.#api = this.#routes();
    await this.#api.listen(this.#o.apiSocket);
    await this.#o.source.start(() => this.#controller?.trigger());
    this.#controller.start();
    log('info', 'agent started', { node: this.#nodeName, apiSocket: this.#o.apiSocket, bpfRoot: this.#o.bpfRoot, cgroup: this.#o.cgroup });
  }

  #logAttached(): void {
    const d = this.#lb!.describe();
    for (const a of d.attachments) {
      this.#o.log('info', `program ${a.action}`, { program: a.program, attach: a.attachType, cgroup: a.cgroup, linkId: a.linkId });
    }
    if (d.removedPins.length > 0) this.#o.log('info', 'map pins of an older layout removed', { pins: d.removedPins });
  }

  #resyncTimer: NodeJS.Timeout | undefined;
  #forceRoutes = false;

  /** Every node's pod CIDRs and InternalIPs (for routes and this node's configuration), from the reconcile's snapshot. */
  #nodeView(snap: Snapshot): NodeView {
    const nodes = snap.nodes.map((n) => {
      const spec = (n.spec ?? {}) as { podCIDR?: string; podCIDRs?: string[] };
      const status = (n.status ?? {}) as { addresses?: { type?: string; address?: string }[] };
      return {
        name: n.metadata?.name ?? '',
        podCIDRs: spec.podCIDRs ?? (spec.podCIDR ? [spec.podCIDR] : []),
        internalIPs: (status.addresses ?? []).filter((a) => a.type === 'InternalIP' && typeof a.address === 'string').map((a) => a.address!),
      };
    });
    return { self: this.#nodeName, nodes };
  }

  async #reconcile(): Promise<void> {
    const lb = this.#lb!;
    if (this.#resyncDue) {
      this.#resyncDue = false;
      this.#forceRoutes = true;
      const d = await lb.checkDriftYielding();
      this.#lastResync = { ...d, at: new Date().toISOString() };
      if (d.added + d.updated + d.deleted > 0) {
        const maps = Object.fromEntries(Object.entries(d.byMap).filter(([, c]) => c.added + c.updated + c.deleted > 0));
        this.#o.log('warn', 'datapath drift repaired: map entries changed behind the agent were written back', { added: d.added, updated: d.updated, deleted: d.deleted, maps });
      } else if (d.mode === 'full') this.#o.log('info', 'resync: maps re-read after a failed write; the next apply diffs everything');
    }
    // Incremental: only the objects that changed since the last reconcile are
    // translated, and only their frontends' entries are compared and written
    // (after a full resync, everything is).
    // One snapshot per reconcile (each copies every kind's list): the model and the node view read the same one.
    const snap = this.#o.source.snapshot();
    const u = this.#model.update(snap);
    const warnings = u.warnings;
    const current = new Set<string>();
    for (const w of warnings) {
      const k = `${w.object}: ${w.reason}`;
      current.add(k);
      if (!this.#warned.has(k)) this.#o.log('warn', 'skipped', { object: w.object, reason: w.reason });
    }
    this.#warned = current;
    const resynced = this.#lastApply === undefined;
    const r = lb.update(u);
    this.#lastApply = { ...r, at: new Date().toISOString() };
    if (lb.attachPending) {
      lb.attach();
      this.#logAttached();
    }
    await this.#pods?.syncNodes(this.#nodeView(snap), resynced || this.#forceRoutes);
    this.#forceRoutes = false;
    if (r.added + r.updated + r.deleted > 0) {
      this.#o.log('info', 'services programmed', {
        frontends: r.frontends,
        backends: r.backends,
        added: r.added,
        updated: r.updated,
        deleted: r.deleted,
        ms: roundMs(r.durationMs),
      });
    }
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
    else if (lb.attachPending) problems.push('the service maps are new and not programmed yet: the socket-LB programs attach (and old map pins go) after the first reconcile');
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
      capabilities: [...(lb ? ['clusterip'] : []), ...(this.#pods ? ['pod-network', 'masquerade'] : [])],
      kubeProxyReplacement: {
        mode: 'Partial',
        features: [
          { name: 'ClusterIP (socket LB, TCP+UDP, v4+v6)', enabled: !!lb, detail: lb ? 'translated once at connect()' : 'not loaded' },
          { name: 'connect to a service without backends', enabled: !!variant, detail: variant?.setRetval ? 'refused: ECONNREFUSED' : 'refused: EPERM (kernel < 5.18 has no bpf_set_retval)' },
          { name: 'session affinity', enabled: !!variant, detail: variant?.netnsCookie ? 'per client network namespace' : 'per node (kernel < 5.7 has no netns cookie)' },
          { name: 'ClusterIP per packet (tc, IPv4)', enabled: !!this.#pods, detail: this.#pods ? `for flows the socket LB did not translate${(this.#o.socketLb ?? true) ? '' : ' (socket LB off: all of them)'}` : 'pod datapath not loaded' },
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
          ? { lastApply: { at: this.#lastApply.at, added: this.#lastApply.added, updated: this.#lastApply.updated, deleted: this.#lastApply.deleted, durationMs: roundMs(this.#lastApply.durationMs) } }
          : {}),
        ...(this.#lastResync
          ? { lastResync: { at: this.#lastResync.at, mode: this.#lastResync.mode, added: this.#lastResync.added, updated: this.#lastResync.updated, deleted: this.#lastResync.deleted, scanned: this.#lastResync.scanned, durationMs: roundMs(this.#lastResync.durationMs) } }
          : {}),
      },
      controllers: ctl ? [ctl] : [],
      ...(node.podCIDRs.length ? { ipam: { podCIDRs: node.podCIDRs } } : {}),
      ...(this.#pods ? { podNetwork: this.#pods.status() } : {}),
    };
  }

  #routes(): ApiServer {
    const api = new ApiServer();
    // CNI calls forwarded by the native kinglet-cni shim run here, reaching the routes below directly.
    api.route(
      'POST',
      CNI_ROUTE,
      cniHandler(apiLink(api), (line) => this.#o.log('info', `kinglet-cni: ${line}`), {
        timings: (containerId, ms) => this.#o.log('debug', 'kinglet-cni ADD timings (ms)', { containerId, ...ms }),
      }),
      { raw: true },
    );
    return api
      .route('GET', '/v1/status', () => this.status())
      .route('GET', '/v1/services', () => this.#lb?.services() ?? [])
      .route('GET', '/v1/node', () => {
        if (!this.#o.source.status().synced) throw new HttpError(503, 'the agent has not synced with its source yet', 'retry in a moment');
        return this.#node();
      })
      .route('GET', '/v1/endpoints', () => this.#pods?.list() ?? [])
      .route('PUT', '/v1/endpoints/{containerId}', (r) => this.#podsOrFail().put(r.params.containerId ?? '', r.body))
      .route('DELETE', '/v1/endpoints/{containerId}', async (r) => {
        await this.#podsOrFail().delete(r.params.containerId ?? '');
        return undefined;
      });
  }

  #podsOrFail(): PodNetwork {
    if (!this.#pods) throw new HttpError(503, 'pod networking is not running in this agent', 'start the agent without --pod-network=false');
    return this.#pods;
  }

  /** Stop watching and serving. The datapath stays pinned and attached. */
  async stop(): Promise<void> {
    if (this.#resyncTimer) clearInterval(this.#resyncTimer);
    this.#compactor?.stop();
    await this.#controller?.stop();
    await this.#o.source.stop();
    await this.#api?.close();
    await this.#pods?.close();
    this.#lb?.close();
  }
}
