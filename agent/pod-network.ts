// Pod networking in the agent: the endpoints the CNI plugin registers get
// the pod programs on their host veth and an entry in the endpoints map; the
// native device gets the masquerade programs and the node configuration;
// other nodes' pod CIDRs get routes via their InternalIP; ip_forward is on.
//
// All of it acts on the agent's own network namespace (the node's). When
// that is the machine's initial namespace, the agent changes sysctls, picks
// a native device by itself and installs routes only with --manage-sysctls
// (an explicit --native-device is always honoured): a test or a tool that
// runs the agent in the host namespace cannot change the host by accident.
import { readdirSync, readFileSync, readlinkSync, writeFileSync, renameSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { EndpointInfo, EndpointRegistration } from './api/types.ts';
import type { Logger } from './log.ts';
import { HttpError } from './api/server.ts';
import { EndpointStore, EndpointValidationError, conflicts, validateRegistration } from './endpoints.ts';
import { defaultRouteDevice, linkByName, linkInNetns, listLinks, type IpLink } from './datapath/iproute.ts';
import { PodDatapath, NATIVE_HOOKS, POD_HOOKS } from './datapath/pod.ts';
import { tcDetachProgram, type TcAttachment } from './datapath/loader.ts';
import { Helper, ProgType, probeHelper } from './datapath/libbpf.ts';
import { portRangeOverlap, type NodeConfig, type RedirectMode } from './datapath/pod-layout.ts';
import { ifNameToIndex } from './cni/ifindex.ts';
import { desiredRoutes, syncRoutes, type NodeRouteInput, type RouteSync } from './routes.ts';

export const DEFAULT_CLUSTER_CIDR = '10.42.0.0/16';
export const DEFAULT_SNAT_PORTS: [number, number] = [61000, 65535];

export interface PodNetworkOptions {
  bpfRoot: string;
  stateDir: string;
  objectDir?: string;
  replaceIncompatible?: boolean;
  /** A device name; 'none' for no native device; undefined: the default route's device. */
  nativeDevice?: string;
  clusterCidr?: string;
  /** How local pods are reached; 'auto' (default): the best the kernel has. */
  redirect?: RedirectMode | 'auto';
  /** Allow changing sysctls, routes and picking a native device in the initial network namespace. */
  manageSysctls?: boolean;
  masquerade?: boolean;
  snatPorts?: [number, number];
  log: Logger;
}

export interface NodeView {
  self: string;
  nodes: NodeRouteInput[];
}

/** Inode of the initial network namespace on kernels that fix it (PROC_NET_INIT_INO). */
const PROC_NET_INIT_INO = 0xeffffff9;

/**
 * True when this process is in the machine's initial network namespace (or
 * that cannot be told). Compares with PID 1's namespace; where that is not
 * readable (no ptrace access to PID 1), the fixed inode of the initial
 * namespace, and else the devices sysfs shows (the namespace that mounted
 * /sys, normally the initial one) with those this process sees.
 */
export function inInitialNetns(): boolean {
  let self: string;
  try {
    self = readlinkSync('/proc/self/ns/net');
  } catch {
    return true;
  }
  try {
    return self === readlinkSync('/proc/1/ns/net');
  } catch {
    // not allowed to look at PID 1
  }
  if (self === `net:[${PROC_NET_INIT_INO}]`) return true;
  try {
    const mine = readFileSync('/proc/self/net/dev', 'utf8').split('\n').slice(2).map((l) => l.split(':')[0]!.trim()).filter(Boolean).sort();
    const sysfs = readdirSync('/sys/class/net').sort();
    return mine.join(',') === sysfs.join(',');
  } catch {
    return true;
  }
}

/** The best local-pod delivery this kernel supports (tc programs). */
export function probeRedirect(): RedirectMode {
  try {
    if (probeHelper(ProgType.SCHED_CLS, Helper.redirect_peer)) return 'peer';
    if (probeHelper(ProgType.SCHED_CLS, Helper.redirect_neigh)) return 'neigh';
  } catch {
    // cannot probe: the stack always works
  }
  return 'stack';
}

interface NativeState {
  device: string;
  ifindex: number;
  createdQdisc: boolean;
}

const progLabel = (a: { direction: string; program: string }) => `tc/${a.direction}:${a.program}`;

export interface PodNetworkStatus {
  endpoints: number;
  redirect: RedirectMode;
  tc: { device: string; direction: string; program: string; progId: number }[];
  masquerade: { enabled: boolean; device?: string; nodeIP?: string; clusterCIDR: string; podCIDR?: string; reason?: string; /** Source ports, "min-max". */ ports: string };
  routes: { installed: string[]; errors: string[]; skipped: string[]; reason?: string };
  ipForward: { value: string; managed: boolean; reason?: string };
  drops: { reason: string; count: number }[];
}

export class PodNetwork {
  readonly #o: PodNetworkOptions;
  readonly #store: EndpointStore;
  readonly #dp: PodDatapath;
  readonly #initialNs: boolean;
  readonly #redirect: RedirectMode;
  #native: NativeState | undefined;
  #nativeTc: TcAttachment[] = [];
  #nativeReason: string | undefined;
  #config: NodeConfig;
  #routes: RouteSync | undefined;
  #routesKey = '';
  #routesReason: string | undefined;
  #ipForward: PodNetworkStatus['ipForward'] = { value: '?', managed: false };
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(o: PodNetworkOptions, dp: PodDatapath) {
    this.#o = o;
    this.#dp = dp;
    this.#store = new EndpointStore(o.stateDir);
    this.#initialNs = inInitialNetns();
    this.#redirect = !o.redirect || o.redirect === 'auto' ? probeRedirect() : o.redirect;
    const [min, max] = o.snatPorts ?? DEFAULT_SNAT_PORTS;
    this.#config = { clusterCidr: o.clusterCidr ?? DEFAULT_CLUSTER_CIDR, masquerade: o.masquerade ?? true, redirect: this.#redirect, snatPortMin: min, snatPortMax: max };
  }

  /** Load the programs, turn on forwarding, restore the endpoints, attach to the native device. */
  static async start(o: PodNetworkOptions): Promise<PodNetwork> {
    const dp = PodDatapath.open({ bpfRoot: o.bpfRoot, objectDir: o.objectDir, replaceIncompatible: o.replaceIncompatible, log: (m, f) => o.log('info', m, f) });
    const pn = new PodNetwork(o, dp);
    try {
      // The pod CIDR comes from this node's Node object, which the agent has
      // not read yet. Until it has (syncNodes), keep the one the previous
      // agent wrote: a configuration without it turns masquerade off, and
      // the replies of masqueraded flows would reach the node untranslated
      // (and new flows leave with the pod's address) while the agent starts.
      const podCidr = dp.writtenPodCidr();
      if (podCidr) pn.#config.podCidr = podCidr;
      pn.#sysctls();
      pn.#checkSnatPorts();
      await pn.#restoreEndpoints();
      await pn.#attachNative();
      pn.#dp.setConfig(pn.#config);
      o.log('info', 'pod network ready', { redirect: pn.#redirect, endpoints: pn.#store.size, nativeDevice: pn.#native?.device ?? null, initialNetns: pn.#initialNs });
    } catch (e) {
      dp.close();
      throw e;
    }
    return pn;
  }

  get datapath(): PodDatapath {
    return this.#dp;
  }

  /** One change at a time (API calls and node syncs interleave otherwise). */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => {});
    return run;
  }

  #sysctls(): void {
    const path = '/proc/sys/net/ipv4/ip_forward';
    let value = '?';
    try {
      value = readFileSync(path, 'utf8').trim();
    } catch {
      // no procfs
    }
    if (this.#initialNs && !this.#o.manageSysctls) {
      this.#ipForward = { value, managed: false, reason: 'the agent runs in the initial network namespace: sysctls are left alone without --manage-sysctls' };
      if (value !== '1') this.#o.log('warn', 'net.ipv4.ip_forward is not 1 and the agent may not change it here; pods cannot be routed (pass --manage-sysctls)', { value });
      return;
    }
    if (value !== '1') {
      writeFileSync(path, '1');
      this.#o.log('info', 'net.ipv4.ip_forward turned on in the agent\'s network namespace', { was: value });
    }
    this.#ipForward = { value: '1', managed: true };
  }

  /** When the masquerade ports overlap the node's ephemeral ports (this namespace's): warn, and have the datapath guard node sockets. */
  #checkSnatPorts(): void {
    let text = '';
    try {
      text = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8');
    } catch {
      return; // no procfs
    }
    const [lo, hi] = text.trim().split(/\s+/).map(Number);
    if (!lo || !hi) return;
    const snat: [number, number] = [this.#config.snatPortMin, this.#config.snatPortMax];
    const shared = portRangeOverlap(snat, [lo, hi]);
    this.#config.snatShared = !!shared;
    if (shared) {
      this.#o.log('warn', `the masquerade ports ${snat.join('-')} overlap the node's ephemeral ports ${lo}-${hi} (net.ipv4.ip_local_port_range): a node connection may get a port a pod's flow holds towards the same peer; the node keeps those replies (a socket lookup per masqueraded reply) and the pod's flow loses them; pass --masquerade-ports outside ${lo}-${hi}`, { shared: shared.join('-') });
    }
  }

  // ---- endpoints --------------------------------------------------------------

  async #restoreEndpoints(): Promise<void> {
    const eps = this.#store.load();
    const links = new Map((await listLinks()).map((l) => [l.ifname, l]));
    const gone: string[] = [];
    for (const e of eps) {
      const link = links.get(e.hostIfname);
      if (!link) {
        gone.push(e.containerId);
        this.#o.log('info', 'endpoint dropped: its host interface is gone', { containerId: e.containerId, hostIfname: e.hostIfname });
        continue;
      }
      try {
        const info = await this.#program(e, link, e.createdAt);
        this.#store.put(info);
      } catch (err) {
        this.#o.log('error', 'endpoint could not be re-attached', { containerId: e.containerId, error: (err as Error).message });
      }
    }
    this.#store.deleteMany(gone);
    // Entries of the endpoints map that no endpoint claims any more.
    const wanted = new Set(this.#store.list().flatMap((e) => e.addresses));
    for (const addr of this.#dp.endpoints().keys()) if (!wanted.has(addr)) this.#dp.deleteEndpoint(addr);
    this.#o.log('info', 'endpoints restored', { count: this.#store.size, dropped: gone.length });
  }

  /** Write the map entries and attach the programs for one endpoint; returns its info. */
  async #program(reg: EndpointRegistration, link: IpLink, createdAt: string): Promise<EndpointInfo> {
    let podMac = reg.podMac;
    if (!podMac) {
      const pod = await linkInNetns(reg.netns, reg.ifname);
      if (!pod?.address) {
        throw new HttpError(400, `cannot read ${reg.ifname} in ${reg.netns}`, 'the pod\'s network namespace must exist and hold the interface when the endpoint is registered');
      }
      podMac = pod.address;
    }
    const hostMac = link.address ?? '00:00:00:00:00:00';
    const v4 = reg.addresses.filter((a) => !a.includes(':'));
    const written: string[] = [];
    try {
      for (const a of v4) {
        this.#dp.setEndpoint(a, { ifindex: link.ifindex, identity: 0, podMac, hostMac });
        written.push(a);
      }
      const att = this.#dp.attachEndpoint(link.ifindex);
      return { ...stripRuntime(reg), identity: 0, programs: att.map(progLabel), createdAt, ifindex: link.ifindex, podMac, hostMac };
    } catch (e) {
      for (const a of written) this.#dp.deleteEndpoint(a);
      throw e;
    }
  }

  put(containerId: string, body: unknown): Promise<EndpointInfo> {
    return this.#serial(async () => {
      let reg: EndpointRegistration;
      try {
        reg = validateRegistration(containerId, body);
      } catch (e) {
        if (e instanceof EndpointValidationError) throw new HttpError(400, e.message, e.hint);
        throw e;
      }
      const clash = conflicts(reg, this.#store.list());
      if (clash.length > 0) throw new HttpError(409, clash.join('; '), 'delete the other endpoint first (CNI DEL), or run CNI GC');
      // The plugin says which MAC it gave the host side: then the index is all to look up (no `ip` exec).
      const link = reg.hostMac ? hostLink(reg.hostIfname, reg.hostMac) : await linkByName(reg.hostIfname);
      if (!link) {
        throw new HttpError(400, `host interface ${reg.hostIfname} does not exist in the agent's network namespace`, 'the CNI plugin and the agent must run in the same (the node\'s) network namespace');
      }
      const prev = this.#store.get(containerId);
      const info = await this.#program(reg, link, prev?.createdAt ?? new Date().toISOString());
      // Addresses the previous registration had and this one has not.
      for (const a of prev?.addresses ?? []) if (!info.addresses.includes(a) && !a.includes(':')) this.#dp.deleteEndpoint(a);
      this.#store.put(info);
      this.#o.log('info', prev ? 'endpoint updated' : 'endpoint added', { containerId, hostIfname: info.hostIfname, ifindex: info.ifindex, addresses: info.addresses });
      return info;
    });
  }

  delete(containerId: string): Promise<void> {
    return this.#serial(async () => {
      const e = this.#store.get(containerId);
      if (!e) return;
      const owned = this.#dp.endpoints();
      for (const a of e.addresses) {
        if (a.includes(':')) continue;
        const cur = owned.get(a);
        if (!cur || e.ifindex === undefined || cur.ifindex === e.ifindex) this.#dp.deleteEndpoint(a);
      }
      // Still the veth the programs went on (by index, no `ip` exec)? Else they went with it.
      const ifindex = ifNameToIndex(e.hostIfname);
      if (ifindex > 0 && ifindex === e.ifindex) {
        for (const h of POD_HOOKS) {
          try {
            tcDetachProgram(ifindex, h.direction);
          } catch (err) {
            this.#o.log('warn', 'detaching a pod program failed', { containerId, hostIfname: e.hostIfname, error: (err as Error).message });
          }
        }
      }
      this.#store.delete(containerId);
      this.#o.log('info', 'endpoint removed', { containerId, hostIfname: e.hostIfname });
    });
  }

  list(): EndpointInfo[] {
    return this.#store.list();
  }

  // ---- native device, configuration, routes -----------------------------------

  get #nativeStatePath(): string {
    return join(this.#o.stateDir, 'native-device.json');
  }

  #readNativeState(): NativeState | undefined {
    try {
      return JSON.parse(readFileSync(this.#nativeStatePath, 'utf8')) as NativeState;
    } catch {
      return undefined;
    }
  }

  #writeNativeState(s: NativeState | undefined): void {
    mkdirSync(this.#o.stateDir, { recursive: true, mode: 0o700 });
    const tmp = `${this.#nativeStatePath}.tmp`;
    writeFileSync(tmp, JSON.stringify(s ?? null) + '\n', { mode: 0o600 });
    renameSync(tmp, this.#nativeStatePath);
  }

  async #attachNative(): Promise<void> {
    let name = this.#o.nativeDevice;
    if (name === undefined) {
      if (this.#initialNs && !this.#o.manageSysctls) {
        this.#nativeReason = 'no --native-device, and the agent runs in the initial network namespace: pass --native-device or --manage-sysctls';
        name = 'none';
      } else {
        name = (await defaultRouteDevice()) ?? 'none';
        if (name === 'none') this.#nativeReason = 'no default route: no native device (pass --native-device)';
      }
    } else if (name === 'none') {
      this.#nativeReason = '--native-device none';
    }
    const prev = this.#readNativeState();
    if (prev && prev.device !== name) {
      const old = await linkByName(prev.device).catch(() => undefined);
      if (old && old.ifindex === prev.ifindex) {
        this.#dp.detachNative(old.ifindex, prev.createdQdisc);
        this.#o.log('info', 'masquerade removed from the former native device', { device: prev.device });
      }
      this.#writeNativeState(undefined);
    }
    if (name === 'none') {
      this.#native = undefined;
      return;
    }
    const link = await linkByName(name);
    if (!link) throw new Error(`native device ${name} does not exist in the agent's network namespace (pass --native-device <ifname> or none)`);
    const att = this.#dp.attachNative(link.ifindex);
    const created = att.some((a) => a.createdQdisc) || (prev?.device === name && prev.ifindex === link.ifindex && prev.createdQdisc);
    this.#native = { device: name, ifindex: link.ifindex, createdQdisc: created };
    this.#nativeTc = att;
    this.#writeNativeState(this.#native);
    const v4 = link.addr_info?.find((a) => a.family === 'inet' && a.scope !== 'host')?.local;
    if (v4) this.#config.nodeIp = v4;
    else this.#nativeReason = `native device ${name} has no IPv4 address`;
    this.#o.log('info', `masquerade programs ${att[0]?.action ?? 'attached'}`, { device: name, ifindex: link.ifindex, nodeIP: v4 ?? null });
  }

  /** Follow the Node objects: this node's pod CIDR into the config map, routes to the others. */
  syncNodes(view: NodeView, force = false): Promise<void> {
    return this.#serial(async () => {
      const self = view.nodes.find((n) => n.name === view.self);
      const podCidr = self?.podCIDRs.find((c) => !c.includes(':'));
      this.#config = { ...this.#config, ...(podCidr ? { podCidr } : {}) };
      if (this.#dp.setConfig(this.#config)) {
        this.#o.log('info', 'node configuration written', { nodeIP: this.#config.nodeIp ?? null, podCIDR: this.#config.podCidr ?? null, clusterCIDR: this.#config.clusterCidr, redirect: this.#config.redirect });
      }
      if (this.#initialNs && !this.#o.manageSysctls) {
        this.#routesReason = 'the agent runs in the initial network namespace: routes are left alone without --manage-sysctls';
        return;
      }
      const desired = desiredRoutes(view.nodes, view.self);
      const key = JSON.stringify(desired);
      if (!force && key === this.#routesKey) return;
      const r = await syncRoutes(desired);
      this.#routes = r;
      this.#routesKey = r.errors.length ? '' : key;
      if (r.replaced + r.removed > 0 || r.errors.length) {
        this.#o.log(r.errors.length ? 'warn' : 'info', 'node routes synced', { routes: r.routes.map((x) => `${x.dst} via ${x.via}`), replaced: r.replaced, removed: r.removed, errors: r.errors });
      }
      for (const s of r.skipped) this.#o.log('debug', 'node route skipped', { reason: s });
    });
  }

  status(): PodNetworkStatus {
    const tc: PodNetworkStatus['tc'] = [];
    for (const a of this.#nativeTc) tc.push({ device: this.#native?.device ?? '?', direction: a.direction, program: a.program, progId: a.progId });
    const masqOn = this.#config.masquerade && !!this.#native && !!this.#config.nodeIp && !!this.#config.podCidr;
    return {
      endpoints: this.#store.size,
      redirect: this.#redirect,
      tc,
      masquerade: {
        enabled: masqOn,
        clusterCIDR: this.#config.clusterCidr,
        ports: `${this.#config.snatPortMin}-${this.#config.snatPortMax}`,
        ...(this.#native ? { device: this.#native.device } : {}),
        ...(this.#config.nodeIp ? { nodeIP: this.#config.nodeIp } : {}),
        ...(this.#config.podCidr ? { podCIDR: this.#config.podCidr } : {}),
        ...(!masqOn ? { reason: this.#nativeReason ?? (!this.#config.podCidr ? 'this node has no IPv4 podCIDR yet' : 'masquerade off') } : {}),
      },
      routes: {
        installed: (this.#routes?.routes ?? []).map((r) => `${r.dst} via ${r.via} (${r.node})`),
        errors: this.#routes?.errors ?? [],
        skipped: this.#routes?.skipped ?? [],
        ...(this.#routesReason ? { reason: this.#routesReason } : {}),
      },
      ipForward: this.#ipForward,
      drops: this.#dp.drops().map((d) => ({ reason: d.reason, count: d.count })),
    };
  }

  /** Wait for pending changes, then close handles. Programs, filters and pins stay. */
  async close(): Promise<void> {
    await this.#queue;
    this.#dp.close();
  }
}

/** The host side of a pod's veth by its index in this network namespace (if_nametoindex), or undefined. */
function hostLink(ifname: string, mac: string): IpLink | undefined {
  const ifindex = ifNameToIndex(ifname);
  return ifindex > 0 ? { ifindex, ifname, address: mac } : undefined;
}

function stripRuntime(reg: EndpointRegistration): EndpointRegistration {
  const { containerId, netns, ifname, hostIfname, addresses, podNamespace, podName, podUid } = reg;
  return { containerId, netns, ifname, hostIfname, addresses, ...(podNamespace ? { podNamespace } : {}), ...(podName ? { podName } : {}), ...(podUid ? { podUid } : {}) };
}

/**
 * Remove the tc programs kinglet attached in this network namespace (for
 * `kinglet agent --cleanup`): the pod programs on the registered endpoints'
 * veths and the masquerade programs on the native device (with the clsact
 * qdisc when kinglet added it). Returns what it did.
 */
export async function cleanupPodNetwork(stateDir: string): Promise<{ detached: string[]; errors: string[] }> {
  const detached: string[] = [];
  const errors: string[] = [];
  const store = new EndpointStore(stateDir);
  let eps: EndpointInfo[] = [];
  try {
    eps = store.load();
  } catch (e) {
    errors.push((e as Error).message);
  }
  const links = new Map((await listLinks()).map((l) => [l.ifname, l]));
  for (const e of eps) {
    const l = links.get(e.hostIfname);
    if (!l) continue;
    for (const h of POD_HOOKS) {
      try {
        if (tcDetachProgram(l.ifindex, h.direction)) detached.push(`${e.hostIfname} ${h.direction}`);
      } catch (err) {
        errors.push(`${e.hostIfname} ${h.direction}: ${(err as Error).message}`);
      }
    }
  }
  store.deleteMany(eps.map((e) => e.containerId));
  let native: NativeState | undefined;
  try {
    native = JSON.parse(readFileSync(join(stateDir, 'native-device.json'), 'utf8')) as NativeState | undefined;
  } catch {
    native = undefined;
  }
  if (native) {
    const l = links.get(native.device);
    if (l && l.ifindex === native.ifindex) {
      NATIVE_HOOKS.forEach((h, i) => {
        try {
          if (tcDetachProgram(l.ifindex, h.direction, { removeQdisc: native!.createdQdisc && i === NATIVE_HOOKS.length - 1 })) detached.push(`${native!.device} ${h.direction}`);
        } catch (err) {
          errors.push(`${native!.device} ${h.direction}: ${(err as Error).message}`);
        }
      });
    }
    writeFileSync(join(stateDir, 'native-device.json'), 'null\n');
  }
  return { detached, errors };
}
