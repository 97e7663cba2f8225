// kinglet-cni: the CNI plugin (spec 0.3.0 .. 1.1.0: ADD, DEL, CHECK, VERSION,
// STATUS, GC). containerd (k3s's embedded one, or any CRI runtime) runs it
// for each pod sandbox; it allocates the pod an address from the node's
// podCIDR, wires a veth pair, and registers the endpoint with the agent.
//
// Conflist (the installer writes it to /etc/cni/net.d/10-kinglet.conflist):
//
//   {
//     "cniVersion": "1.0.0",
//     "name": "kinglet",
//     "plugins": [
//       {
//         "type": "kinglet-cni",
//         "podCIDR": "10.42.0.0/24",              optional; else the Node's podCIDRs from the agent (GET /v1/node)
//         "agent": true,                          optional, default true; false = never call the agent
//                                                 (tests, bring-up without an agent; podCIDR is then required)
//         "agentSocket": "/run/kinglet/agent.sock",  optional, the default shown
//         "dataDir": "/var/lib/kinglet/cni",      optional, the default shown; IPAM state in <dataDir>/ipam/<name>/
//         "mtu": 1500                             optional; default the MTU of the node's uplink (default route's
//                                                 device), 1500 when there is no default route
//       },
//       { "type": "loopback" }                    optional, brings lo up (kinglet-cni brings lo up too)
//     ]
//   }
//
// Unknown fields are refused (error 2) so a misspelt key is not silently
// ignored; "ipam" and "ipMasq": true are refused too (IPAM is built in,
// masquerade is the agent's job in BPF).
//
// What ADD makes (see plumbing.ts): host veth kl<11 hex of sha256(id/ifname)>,
// the pod's CNI_IFNAME with <address>/32 and a default route via the gateway
// (the range's first address, on kinglet_host in the node namespace) onlink,
// a /32 route to the pod on the host veth, static neighbours both ways.
// If anything fails (veth, addresses, the agent being down or refusing)
// everything made so far is undone and the address released.
//
// Error codes: the spec's 1-7, 11, 50 (see protocol.ts), and kinglet's own:
// 100 range exhausted, 101 datapath setup failed, 102 CHECK mismatch,
// 103 the agent refused the endpoint.
import { existsSync } from 'node:fs';
import { DEFAULT_API_SOCKET, type EndpointRegistration, type NodeInfo } from '../api/types.ts';
import {
  CniError,
  ErrorCode,
  formatError,
  formatResult,
  parseEnv,
  parseNetConf,
  sniffVersion,
  toCniError,
  versionResult,
  type AddResult,
  type CniEnv,
  type NetConf,
} from './protocol.ts';
import {
  allocate,
  collect,
  findByOwner,
  freeCount,
  IpamError,
  IpamStore,
  ownerKey,
  parseRange,
  release,
  type Allocation,
  type Range,
} from './ipam.ts';
import { AgentError } from './agent-client.ts';
import { checkVeth, hostIfname, macFor, PlumbingError, removeVeth, setupHost, setupPod, uplinkMtu, type VethSpec } from './plumbing.ts';

export const DEFAULT_DATA_DIR = '/var/lib/kinglet/cni';

export interface PluginOutcome {
  exitCode: number;
  /** What to print on stdout ('' for commands with no output). */
  stdout: string;
}

export type Log = (line: string) => void;

/** Milliseconds per phase of one ADD (see cmdAdd), for a debug log line. */
export type AddTimings = Record<string, number>;

/**
 * How the plugin reaches the agent's API: one JSON request, the answer's
 * body back. Rejects with AgentError (status undefined: the agent is not
 * there). The executable goes over the API socket of the netconf; the agent
 * running the plugin itself (POST /v1/cni from the native shim) calls its
 * own routes directly.
 */
export type AgentLink = (method: string, path: string, body?: unknown) => Promise<unknown>;

/** The AgentLink of a separate plugin process: the API socket named in the netconf. */
function socketLink(conf: NetConf): AgentLink {
  return async (method, path, body) => {
    const { agentRequest } = await import('./agent-client.ts');
    return agentRequest(socketOf(conf), method, path, body);
  };
}

interface Ctx {
  log: Log;
  call: AgentLink;
  timings?: ((containerId: string, ms: AddTimings) => void) | undefined;
}

/** Times the phases of one call: `lap(name)` records the ms since the previous lap. */
class Stopwatch {
  readonly ms: AddTimings = {};
  readonly #t0 = performance.now();
  #last = this.#t0;
  lap(name: string): void {
    const now = performance.now();
    this.ms[name] = round(now - this.#last);
    this.#last = now;
  }
  /** Time `p` on its own (it runs beside other work). */
  async time<T>(name: string, p: Promise<T>): Promise<T> {
    const t = performance.now();
    try {
      return await p;
    } finally {
      this.ms[name] = round(performance.now() - t);
    }
  }
  total(): AddTimings {
    this.ms['total'] = round(performance.now() - this.#t0);
    return this.ms;
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

export interface RunOptions {
  /** Where the agent sends the ms per phase of each successful ADD. */
  timings?: (containerId: string, ms: AddTimings) => void;
}

/** Run one plugin invocation: environment + stdin in, exit code + stdout out. Never throws. */
export async function runPlugin(env: Record<string, string | undefined>, stdin: string, log: Log = () => {}, link?: AgentLink, opts: RunOptions = {}): Promise<PluginOutcome> {
  let version: string | undefined;
  try {
    const e = parseEnv(env);
    if (e.command === 'VERSION') {
      return { exitCode: 0, stdout: JSON.stringify(versionResult(stdin.trim() ? sniffVersion(stdin) : undefined)) };
    }
    version = sniffVersion(stdin);
    const conf = parseNetConf(stdin, e.command);
    version = conf.cniVersion;
    const ctx: Ctx = { log, call: link ?? socketLink(conf), timings: opts.timings };
    switch (e.command) {
      case 'ADD':
        return { exitCode: 0, stdout: JSON.stringify(formatResult(conf.cniVersion, await cmdAdd(e, conf, ctx))) };
      case 'DEL':
        await cmdDel(e, conf, ctx);
        return { exitCode: 0, stdout: '' };
      case 'CHECK':
        await cmdCheck(e, conf, ctx);
        return { exitCode: 0, stdout: '' };
      case 'STATUS':
        await cmdStatus(conf, ctx);
        return { exitCode: 0, stdout: '' };
      case 'GC':
        await cmdGc(conf, ctx);
        return { exitCode: 0, stdout: '' };
    }
  } catch (err) {
    const ce = toCniError(mapError(err));
    log(`${env['CNI_COMMAND'] ?? '?'} ${env['CNI_CONTAINERID'] ?? ''} failed: [${ce.code}] ${ce.message}${ce.details ? ` (${ce.details})` : ''}`);
    return { exitCode: 1, stdout: JSON.stringify(formatError(ce, version)) };
  }
}

/** Library errors to CNI errors. */
function mapError(err: unknown): unknown {
  if (err instanceof IpamError) {
    switch (err.kind) {
      case 'config':
        return new CniError(ErrorCode.InvalidNetworkConfig, err.message, err.hint);
      case 'exhausted':
        return new CniError(ErrorCode.RangeExhausted, err.message, err.hint);
      case 'busy':
        return new CniError(ErrorCode.TryAgainLater, err.message, err.hint);
      case 'io':
        return new CniError(ErrorCode.IoFailure, err.message, err.hint);
    }
  }
  if (err instanceof PlumbingError) {
    return new CniError(ErrorCode.DatapathFailed, err.message, 'the pod was not wired and its address was released; the runtime will retry. Check that iproute2 and nsenter are installed and CNI_NETNS is a network namespace');
  }
  return err;
}

function storeFor(conf: NetConf): IpamStore {
  return new IpamStore(conf.dataDir ?? DEFAULT_DATA_DIR, conf.name);
}

function socketOf(conf: NetConf): string {
  return conf.agentSocket ?? DEFAULT_API_SOCKET;
}

// --- agent calls ----------------------------------------------------------

interface AgentFailure {
  unreachable: boolean;
  message: string;
  hint?: string;
}

async function agentCall<T>(ctx: Ctx, method: string, path: string, body?: unknown): Promise<{ ok: true; value: T } | { ok: false; failure: AgentFailure }> {
  try {
    return { ok: true, value: (await ctx.call(method, path, body)) as T };
  } catch (e) {
    if (e instanceof AgentError) {
      const f: AgentFailure = { unreachable: e.status === undefined, message: e.message };
      if (e.hint) f.hint = e.hint;
      return { ok: false, failure: f };
    }
    throw e;
  }
}

function agentError(f: AgentFailure, what: string): CniError {
  if (f.unreachable) {
    return new CniError(
      ErrorCode.TryAgainLater,
      `the kinglet agent is not reachable: cannot ${what}`,
      `${f.message}. Nothing was left behind; the runtime retries. For a setup without an agent set "agent": false and "podCIDR" in the conflist`,
    );
  }
  return new CniError(ErrorCode.AgentRefused, `the kinglet agent refused to ${what}: ${f.message}`, f.hint ?? 'see the agent\'s log');
}

/** The pod range: the conflist's, else the first IPv4 podCIDR of the Node (from the agent). */
async function podRange(conf: NetConf, ctx: Ctx): Promise<Range> {
  if (conf.podCIDR) return parseRange(conf.podCIDR);
  const r = await agentCall<NodeInfo>(ctx, 'GET', '/v1/node');
  if (!r.ok) throw agentError(r.failure, 'read the node\'s podCIDR');
  const v4 = r.value.podCIDRs.find((c) => !c.includes(':'));
  if (!v4) {
    throw new CniError(
      ErrorCode.TryAgainLater,
      `node ${r.value.name} has no IPv4 podCIDR yet`,
      'k3s assigns one when the node registers (cluster-cidr, default 10.42.0.0/16); or set "podCIDR" in the conflist',
    );
  }
  return parseRange(v4);
}

function vethSpec(e: CniEnv, address: string, gateway: string, mtu: number): VethSpec {
  return {
    netns: e.netns,
    ifname: e.ifname,
    hostIfname: hostIfname(e.containerId, e.ifname),
    address,
    gateway,
    mtu,
    hostMac: macFor('host', e.containerId, e.ifname),
    podMac: macFor('pod', e.containerId, e.ifname),
  };
}

function requireNetns(e: CniEnv): void {
  if (!existsSync(e.netns)) {
    throw new CniError(
      ErrorCode.UnknownContainer,
      `network namespace ${e.netns} does not exist`,
      'the pod sandbox is gone or CNI_NETNS is wrong; nothing to clean up',
    );
  }
}

// --- ADD --------------------------------------------------------------------

async function cmdAdd(e: CniEnv, conf: NetConf, ctx: Ctx): Promise<AddResult> {
  const sw = new Stopwatch();
  requireNetns(e);
  const range = await podRange(conf, ctx);
  sw.lap('range');
  const store = storeFor(conf);
  const owner: Allocation = {
    containerId: e.containerId,
    ifname: e.ifname,
    hostIfname: hostIfname(e.containerId, e.ifname),
    at: new Date().toISOString(),
  };
  const address = await store.withLock(async (tx) => {
    const st = await tx.load(range);
    const ip = allocate(st, range, owner);
    await tx.save(st);
    return ip;
  });
  sw.lap('ipam');
  let spec: VethSpec | undefined;
  let registered = false;
  try {
    const mtu = conf.mtu ?? (await uplinkMtu());
    sw.lap('mtu');
    spec = vethSpec(e, address, range.gateway, mtu);
    await setupHost(spec);
    sw.lap('host');
    // The agent needs only the host side (and the MACs, which the registration
    // carries): it attaches the pod's programs while the pod side is set up.
    const register = async (s: VethSpec) => {
      if (!conf.agent) return;
      const reg: EndpointRegistration = {
        containerId: e.containerId,
        netns: e.netns,
        ifname: e.ifname,
        hostIfname: s.hostIfname,
        addresses: [address],
        podMac: s.podMac,
        hostMac: s.hostMac,
      };
      if (e.args.podNamespace) reg.podNamespace = e.args.podNamespace;
      if (e.args.podName) reg.podName = e.args.podName;
      if (e.args.podUid) reg.podUid = e.args.podUid;
      const r = await agentCall(ctx, 'PUT', `/v1/endpoints/${encodeURIComponent(e.containerId)}`, reg);
      if (!r.ok) throw agentError(r.failure, `register endpoint ${e.containerId}`);
      registered = true;
    };
    const [pod, agent] = await Promise.allSettled([sw.time('pod', setupPod(spec)), sw.time('register', register(spec))]);
    if (pod.status === 'rejected') throw pod.reason;
    if (agent.status === 'rejected') throw agent.reason;
    sw.lap('pod+register');
    ctx.timings?.(e.containerId, sw.total());
    return {
      interfaces: [
        { name: spec.hostIfname, mac: spec.hostMac, mtu: spec.mtu },
        { name: e.ifname, mac: spec.podMac, mtu: spec.mtu, sandbox: e.netns },
      ],
      ips: [{ address: `${address}/32`, gateway: range.gateway, interface: 1 }],
      routes: [{ dst: '0.0.0.0/0', gw: range.gateway }],
      dns: {},
    };
  } catch (err) {
    // Roll back: no half-wired pod, no endpoint without a pod, no leaked address.
    if (registered) {
      const r = await agentCall(ctx, 'DELETE', `/v1/endpoints/${encodeURIComponent(e.containerId)}`);
      if (!r.ok) ctx.log(`rollback: deleting endpoint ${e.containerId}: ${r.failure.message}`);
    }
    if (spec) await removeVeth(spec.hostIfname).catch((x: Error) => ctx.log(`rollback: ${x.message}`));
    await store
      .withLock(async (tx) => {
        const st = await tx.load(range);
        release(st, owner);
        await tx.save(st);
      })
      .catch((x: Error) => ctx.log(`rollback: releasing ${address} failed: ${x.message}`));
    throw err;
  }
}

// --- DEL --------------------------------------------------------------------

async function cmdDel(e: CniEnv, conf: NetConf, ctx: Ctx): Promise<void> {
  let agentFailure: AgentFailure | undefined;
  if (conf.agent) {
    const r = await agentCall(ctx, 'DELETE', `/v1/endpoints/${encodeURIComponent(e.containerId)}`);
    if (!r.ok) agentFailure = r.failure;
  }
  await removeVeth(hostIfname(e.containerId, e.ifname));
  await storeFor(conf).withLock(async (tx) => {
    for (const cidr of await tx.ranges()) {
      const range = parseRange(cidr);
      const st = await tx.load(range);
      if (release(st, e)) await tx.save(st);
    }
  });
  if (agentFailure) {
    if (agentFailure.unreachable) {
      // The pod's resources are gone; the agent drops endpoints whose veth is gone when it comes back.
      ctx.log(`DEL ${e.containerId}: agent not reachable (${agentFailure.message}); local cleanup done`);
    } else {
      throw agentError(agentFailure, `delete endpoint ${e.containerId}`);
    }
  }
}

// --- CHECK ------------------------------------------------------------------

async function cmdCheck(e: CniEnv, conf: NetConf, ctx: Ctx): Promise<void> {
  const prev = conf.prevResult;
  if (!prev) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, 'CHECK needs prevResult', 'the runtime must pass the result of the previous ADD as prevResult');
  }
  requireNetns(e);
  const found = await storeFor(conf).withLock(async (tx) => {
    for (const cidr of await tx.ranges()) {
      const range = parseRange(cidr);
      const ip = findByOwner(await tx.load(range), e);
      if (ip) return { ip, range };
    }
    return undefined;
  });
  const problems: string[] = [];
  if (!found) {
    problems.push(`no address is allocated to ${e.containerId}/${e.ifname}`);
  } else {
    const prevIp = prev.ips.find((i) => i.address.split('/')[0] === found.ip);
    if (!prevIp) problems.push(`prevResult does not list ${found.ip}, the address allocated to this pod`);
    problems.push(...(await checkVeth(vethSpec(e, found.ip, found.range.gateway, 0))));
  }
  if (conf.agent) {
    const r = await agentCall<{ containerId: string }[]>(ctx, 'GET', '/v1/endpoints');
    if (!r.ok) problems.push(`agent: ${r.failure.message}`);
    else if (!r.value.some((x) => x.containerId === e.containerId)) problems.push(`the agent does not know endpoint ${e.containerId}`);
  }
  if (problems.length > 0) {
    throw new CniError(ErrorCode.CheckFailed, `pod networking of ${e.containerId} is not as ADD left it`, problems.join('; '));
  }
}

// --- STATUS -----------------------------------------------------------------

async function cmdStatus(conf: NetConf, ctx: Ctx): Promise<void> {
  let range: Range;
  try {
    range = await podRange(conf, ctx);
  } catch (err) {
    const ce = toCniError(mapError(err));
    throw new CniError(ErrorCode.NotAvailable, `kinglet-cni cannot add pods: ${ce.message}`, ce.details);
  }
  let free: number;
  try {
    free = await storeFor(conf).withLock(async (tx) => freeCount(await tx.load(range), range), { timeoutMs: 5000 });
  } catch (err) {
    const ce = toCniError(mapError(err));
    throw new CniError(ErrorCode.NotAvailable, `kinglet-cni cannot add pods: ${ce.message}`, ce.details);
  }
  if (free === 0) {
    throw new CniError(ErrorCode.NotAvailable, `kinglet-cni cannot add pods: pod range ${range.cidr} is full`, 'delete pods on this node or run GC to reclaim leaked addresses');
  }
}

// --- GC ---------------------------------------------------------------------

async function cmdGc(conf: NetConf, ctx: Ctx): Promise<void> {
  const { log } = ctx;
  const valid = new Set((conf.validAttachments ?? []).map(ownerKey));
  const freed = await storeFor(conf).withLock(async (tx) => {
    const out: (Allocation & { ip: string })[] = [];
    for (const cidr of await tx.ranges()) {
      const range = parseRange(cidr);
      const st = await tx.load(range);
      const gone = collect(st, valid);
      if (gone.length > 0) {
        await tx.save(st);
        out.push(...gone);
      }
    }
    return out;
  });
  for (const a of freed) {
    log(`GC: released ${a.ip} of ${a.containerId}/${a.ifname}`);
    await removeVeth(a.hostIfname ?? hostIfname(a.containerId, a.ifname)).catch((x: Error) => log(`GC: ${x.message}`));
    if (conf.agent) {
      const r = await agentCall(ctx, 'DELETE', `/v1/endpoints/${encodeURIComponent(a.containerId)}`);
      if (!r.ok) log(`GC: agent: ${r.failure.message}`);
    }
  }
}
