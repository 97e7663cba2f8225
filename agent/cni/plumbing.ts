// Pod plumbing with iproute2: a veth pair per pod, the gateway on the host
// side, the pod's /32 address and routes, and static neighbours both ways.
//
//   pod netns                       node netns (where the plugin runs)
//   eth0 10.42.0.5/32  <--veth-->   kl<11 hex> (no address)
//   default via 10.42.0.1 onlink     route 10.42.0.5/32 dev kl<...>
//   neigh 10.42.0.1 -> host mac      neigh 10.42.0.5 -> pod mac
//                                    kinglet_host 10.42.0.1/32 (veth pair
//                                    kinglet_host/kinglet_net, like cilium_host)
//
// The gateway is the range's first address, configured once on kinglet_host
// as a /32; pods reach it "onlink" through their veth and a permanent
// neighbour entry for it (the host side's MAC, which we choose), so no ARP,
// proxy_arp or per-veth sysctl is needed. Both MACs derive from the container
// id, as does the host veth name, so DEL, CHECK and GC can find everything
// without the pod's netns.
//
// Commands run with node:child_process directly and not through execa: the
// plugin is a short-lived process on the pod start-up path, and importing
// execa costs ~80 ms here against ~20 ms for Node's whole start-up. Each side
// is one `ip -batch -`: two execs per ADD. The pod side is `ip -n <name>` when
// CNI_NETNS is a name under /run/netns (what k3s's containerd makes), else
// through nsenter (one exec more), since `ip -n` takes only those names.
// In the agent (forward.ts) neither exec runs on the way: both sides go over
// rtnetlink (rtnl.ts), with `ip` as the fallback (the host side's through
// one long-lived ip, ip-session.ts, which also does DEL's removal).
import { spawn } from 'node:child_process';
import { readFileSync, realpathSync } from 'node:fs';
import { sha256Hex } from './sha256.ts';
import type { IpLink, IpRoute } from '../datapath/iproute.ts';

export const GATEWAY_DEV = 'kinglet_host';
export const GATEWAY_PEER = 'kinglet_net';
export const DEFAULT_MTU = 1500;

export class PlumbingError extends Error {
  override name = 'PlumbingError';
  readonly stderr: string;
  constructor(message: string, stderr: string) {
    super(message);
    this.stderr = stderr;
  }
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a command, feed it `input`, collect its output. Never rejects for a non-zero exit. */
export function run(cmd: string, args: string[], input?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.stderr.on('data', (d: Buffer) => err.push(d));
    p.on('error', (e: NodeJS.ErrnoException) => {
      reject(new PlumbingError(e.code === 'ENOENT' ? `${cmd} not found: install iproute2 and util-linux (nsenter)` : `cannot run ${cmd}: ${e.message}`, ''));
    });
    p.on('close', (code) => {
      resolve({ code: code ?? 1, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
    p.stdin.on('error', () => {});
    p.stdin.end(input ?? '');
  });
}

/** What runs `ip -batch -` text: IpSession (ip-session.ts). */
type IpBatcher = { batch(text: string): Promise<RunResult> };

/** The agent's long-lived `ip` for the node namespace (ip-session.ts); unset: one exec per call. */
let session: IpBatcher | undefined;

/** Run host-side batches through `s` (the agent does, for the CNI calls it runs in-process). */
export function useIpSession(s: IpBatcher | undefined): void {
  session = s;
}

/** `ip -batch -` in the node namespace. */
function hostIp(text: string): Promise<RunResult> {
  return session ? session.batch(text) : run('ip', ['-batch', '-'], text);
}

/** Host-side veth name: "kl" + 11 hex of sha256(containerId/ifname): 13 characters, stable. */
export function hostIfname(containerId: string, ifname: string): string {
  return `kl${sha256Hex(`${containerId}/${ifname}`).slice(0, 11)}`;
}

/** A locally administered unicast MAC (02:...) derived from the container id, one per side. */
export function macFor(side: 'host' | 'pod', containerId: string, ifname: string): string {
  const d = sha256Hex(`${side}:${containerId}/${ifname}`);
  return ['02', d.slice(0, 2), d.slice(2, 4), d.slice(4, 6), d.slice(6, 8), d.slice(8, 10)].join(':');
}

export interface VethSpec {
  netns: string;
  /** Interface name inside the pod. */
  ifname: string;
  hostIfname: string;
  /** Pod address without prefix. */
  address: string;
  gateway: string;
  mtu: number;
  hostMac: string;
  podMac: string;
}

/** Lines for `ip -batch -` in the node namespace. */
export function hostBatch(s: VethSpec): string {
  return [
    `addr replace ${s.gateway}/32 dev ${GATEWAY_DEV}`,
    `link add ${s.hostIfname} mtu ${s.mtu} address ${s.hostMac} type veth peer name ${s.ifname} mtu ${s.mtu} address ${s.podMac} netns ${s.netns}`,
    `link set dev ${s.hostIfname} up`,
    `neigh replace ${s.address} dev ${s.hostIfname} lladdr ${s.podMac} nud permanent`,
    `route replace ${s.address}/32 dev ${s.hostIfname} scope link`,
  ].join('\n') + '\n';
}

/** Lines for `ip -batch -` inside the pod namespace. */
export function podBatch(s: VethSpec): string {
  return [
    `link set dev lo up`,
    `link set dev ${s.ifname} up`,
    `addr replace ${s.address}/32 dev ${s.ifname}`,
    `neigh replace ${s.gateway} dev ${s.ifname} lladdr ${s.hostMac} nud permanent`,
    `route replace default via ${s.gateway} dev ${s.ifname} onlink`,
  ].join('\n') + '\n';
}

const GATEWAY_DEV_BATCH = [
  `link add ${GATEWAY_DEV} type veth peer name ${GATEWAY_PEER}`,
  `link set dev ${GATEWAY_PEER} up`,
  `link set dev ${GATEWAY_DEV} up`,
].join('\n') + '\n';

function firstLine(s: string): string {
  return s.split('\n').filter((l) => l && !l.startsWith('Command failed')).join('; ') || s.trim();
}

/** Create the gateway device pair if missing (concurrent callers: the loser sees EEXIST, fine). */
async function ensureGatewayDev(): Promise<void> {
  await run('ip', ['-force', '-batch', '-'], GATEWAY_DEV_BATCH);
}

/**
 * The veth pair (its pod end moved into the pod's namespace), the gateway,
 * the route and neighbour to the pod. setupPod follows. On failure of either
 * nothing of it is left (the host veth is removed, which takes the pod side
 * with it) and PlumbingError says which step failed.
 */
export async function setupHost(s: VethSpec): Promise<void> {
  if (viaRtnl('host', s)) return;
  const batch = hostBatch(s);
  let r = await hostIp(batch);
  if (r.code !== 0 && r.stderr.includes(`"${GATEWAY_DEV}"`)) {
    await ensureGatewayDev();
    r = await hostIp(batch);
  }
  if (r.code !== 0 && /File exists/.test(r.stderr) && /-:2\b/.test(r.stderr)) {
    // A host veth of an earlier, half-finished ADD for the same container: replace it.
    await removeVeth(s.hostIfname);
    r = await hostIp(batch);
  }
  if (r.code !== 0) {
    await removeVeth(s.hostIfname).catch(() => {});
    throw new PlumbingError(`setting up the host side failed: ${firstLine(r.stderr)}`, r.stderr);
  }
}

/** The agent's rtnetlink for both sides (rtnl.ts); unset: `ip`. */
let rtnl: Rtnl | undefined;

export interface Rtnl {
  host(s: VethSpec, gatewayDev: string, gatewayPeer: string): void;
  pod(s: VethSpec): void;
  /** Hears why netlink failed before `ip` does that side after all. */
  fallback(side: 'host' | 'pod', s: VethSpec, err: Error): void;
}

/**
 * Do both sides of ADD with rtnetlink (rtnl.ts) instead of `ip`; where it
 * throws, `fallback` hears why and `ip` runs after all (its lines replace
 * what netlink may have done already; a veth it made is removed first).
 */
export function useRtnl(r: Rtnl | undefined): void {
  rtnl = r;
}

/** Do one side of ADD over rtnetlink when the agent set it up (useRtnl); false: `ip` is to do it (fallback heard why). */
function viaRtnl(side: 'host' | 'pod', s: VethSpec): boolean {
  if (!rtnl) return false;
  try {
    if (side === 'host') rtnl.host(s, GATEWAY_DEV, GATEWAY_PEER);
    else rtnl.pod(s);
    return true;
  } catch (e) {
    rtnl.fallback(side, s, e as Error);
    return false;
  }
}

/** Inside the pod (after setupHost): lo and the interface up, the address, the gateway's neighbour, the default route. */
export async function setupPod(s: VethSpec): Promise<void> {
  if (viaRtnl('pod', s)) return;
  const p = await run(...inNetns(s.netns, ['-batch', '-']), podBatch(s));
  if (p.code !== 0) {
    await removeVeth(s.hostIfname).catch(() => {});
    throw new PlumbingError(`setting up the pod side in ${s.netns} failed: ${firstLine(p.stderr)}`, p.stderr);
  }
}

let runIsVarRun: boolean | undefined;

/**
 * `ip <args>` run inside the network namespace at `path`: [command, argv].
 * `ip -n <name>` opens /var/run/netns/<name>: a /run/netns path qualifies
 * only where /var/run is /run.
 */
export function inNetns(path: string, args: string[], varRunIsRun = (runIsVarRun ??= sameDir('/var/run', '/run'))): [string, string[]] {
  const m = /^(\/var)?\/run\/netns\/([^/]+)$/.exec(path);
  if (m && m[2] !== '.' && m[2] !== '..' && (m[1] || varRunIsRun)) return ['ip', ['-n', m[2]!, ...args]];
  return ['nsenter', [`--net=${path}`, 'ip', ...args]];
}

function sameDir(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}

/** Remove the host veth (and with it the pod side). Idempotent: 'absent' when it was already gone. */
export async function removeVeth(hostIf: string): Promise<'removed' | 'absent'> {
  const r = await hostIp(`link del dev ${hostIf}\n`);
  if (r.code === 0) return 'removed';
  if (/Cannot find device|does not exist/.test(r.stderr)) return 'absent';
  throw new PlumbingError(`removing ${hostIf} failed: ${firstLine(r.stderr)}`, r.stderr);
}

function parseJsonLines(out: string): unknown[] {
  return out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      try {
        return JSON.parse(l) as unknown;
      } catch {
        return undefined;
      }
    });
}

/**
 * CHECK: what is not as setupHost and setupPod left it (empty when all is well). Looks at
 * the host veth (present, up, route and neighbour to the pod), the gateway
 * address, and inside the pod the interface, its address and default route.
 */
export async function checkVeth(s: VethSpec): Promise<string[]> {
  const problems: string[] = [];
  const h = await run('ip', ['-j', '-batch', '-'], [
    `addr show dev ${s.hostIfname}`,
    `route show ${s.address}/32`,
    `addr show dev ${GATEWAY_DEV}`,
  ].join('\n') + '\n');
  const [hostLinks, hostRoutes, gwLinks] = parseJsonLines(h.stdout) as [IpLink[] | undefined, IpRoute[] | undefined, IpLink[] | undefined];
  const hostLink = hostLinks?.[0];
  if (!hostLink) {
    problems.push(`host veth ${s.hostIfname} is missing`);
  } else {
    if (!hostLink.flags?.includes('UP')) problems.push(`host veth ${s.hostIfname} is down`);
    if (hostLink.address !== s.hostMac) problems.push(`host veth ${s.hostIfname} has MAC ${hostLink.address}, expected ${s.hostMac}`);
    if (!hostRoutes?.some((r) => r.dev === s.hostIfname)) problems.push(`no route ${s.address}/32 via ${s.hostIfname} in the node namespace`);
  }
  const gw = gwLinks?.[0];
  if (!gw?.addr_info?.some((a) => a.local === s.gateway)) problems.push(`gateway ${s.gateway} is not on ${GATEWAY_DEV}`);

  const p = await run(...inNetns(s.netns, ['-j', '-batch', '-']), [`addr show dev ${s.ifname}`, 'route show default'].join('\n') + '\n');
  if (p.code !== 0 && p.stdout.trim() === '') {
    problems.push(`cannot look inside ${s.netns}: ${firstLine(p.stderr)}`);
    return problems;
  }
  const [podLinks, podRoutes] = parseJsonLines(p.stdout) as [IpLink[] | undefined, IpRoute[] | undefined];
  const podLink = podLinks?.[0];
  if (!podLink) {
    problems.push(`${s.ifname} is missing in ${s.netns}`);
  } else {
    if (!podLink.flags?.includes('UP')) problems.push(`${s.ifname} is down in the pod`);
    if (!podLink.addr_info?.some((a) => a.family === 'inet' && a.local === s.address && a.prefixlen === 32)) {
      problems.push(`${s.ifname} in the pod does not have ${s.address}/32`);
    }
    if (!podRoutes?.some((r) => r.gateway === s.gateway && r.dev === s.ifname)) problems.push(`the pod has no default route via ${s.gateway}`);
  }
  return problems;
}

/** The interface of the IPv4 default route in /proc/net/route text, if any. */
export function defaultRouteDev(procNetRoute: string): string | undefined {
  let best: { dev: string; metric: number } | undefined;
  for (const line of procNetRoute.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const [dev, dst, , flags, , , metric, mask] = f;
    // RTF_UP = 0x1
    if (dst === '00000000' && mask === '00000000' && (parseInt(flags!, 16) & 1) === 1) {
      const m = Number(metric);
      if (!best || m < best.metric) best = { dev: dev!, metric: m };
    }
  }
  return best?.dev;
}

/** The last uplink MTU read, for a few seconds (the agent runs many ADDs; a plugin process one). */
let mtuMemo: { dev: string; mtu: number; until: number } | undefined;
const MTU_MEMO_MS = 5000;

/** MTU of the node's uplink (the default route's device), or DEFAULT_MTU when there is none. */
export async function uplinkMtu(): Promise<number> {
  let text = '';
  try {
    text = readFileSync('/proc/net/route', 'utf8');
  } catch {
    // no procfs: no uplink to ask
  }
  const dev = defaultRouteDev(text);
  if (!dev) return DEFAULT_MTU;
  const now = Date.now();
  if (mtuMemo && mtuMemo.dev === dev && now < mtuMemo.until) return mtuMemo.mtu;
  const r = await run('ip', ['-j', 'link', 'show', 'dev', dev]);
  const link = (parseJsonLines(r.stdout)[0] as IpLink[] | undefined)?.[0];
  const mtu = link?.mtu && link.mtu >= 576 ? link.mtu : DEFAULT_MTU;
  if (link?.mtu) mtuMemo = { dev, mtu, until: now + MTU_MEMO_MS };
  return mtu;
}
