// Cross-node routes (native routing): for every other node, its pod CIDRs
// via its InternalIP. The agent marks the routes it installs with its own
// route protocol number, so it can list exactly its own (`ip -json route
// show proto 185`) and remove stale ones without touching anything else.
// desiredRoutes and routeDiff are pure; applyRoutes runs `ip -batch`.
import { ipBatch, ipJson, type IpRoute } from './datapath/iproute.ts';
import { parseIp } from './model/ip.ts';

/** Route protocol number of kinglet's routes (0xb9). */
export const ROUTE_PROTO = 185;

export interface NodeRouteInput {
  name: string;
  podCIDRs: string[];
  /** InternalIP addresses of the node. */
  internalIPs: string[];
}

export interface NodeRoute {
  dst: string;
  via: string;
  node: string;
}

function cidrFamily(cidr: string): 4 | 6 | undefined {
  const [addr, len] = cidr.split('/');
  const p = parseIp(addr);
  const n = Number(len);
  if (!p || !Number.isInteger(n) || n < 0 || n > (p.family === 4 ? 32 : 128)) return undefined;
  return p.family;
}

/** Canonical spelling of a CIDR ("10.42.1.0/24"), as ip prints it. */
function canonCidr(cidr: string): string {
  const [addr, len] = cidr.split('/');
  return `${parseIp(addr)!.address}/${len}`;
}

/**
 * The routes this node wants: each other node's pod CIDRs via its InternalIP
 * of the same family. Nodes without a pod CIDR or an address of that family
 * are skipped (with the reason in `skipped`).
 */
export function desiredRoutes(nodes: NodeRouteInput[], self: string): { routes: NodeRoute[]; skipped: string[] } {
  const routes: NodeRoute[] = [];
  const skipped: string[] = [];
  const seen = new Map<string, string>();
  // Our own ranges are never routed elsewhere, whoever else claims them.
  for (const c of nodes.find((n) => n.name === self)?.podCIDRs ?? []) if (cidrFamily(c)) seen.set(canonCidr(c), self);
  for (const n of [...nodes].sort((a, b) => a.name.localeCompare(b.name))) {
    if (n.name === self) continue;
    for (const cidr of n.podCIDRs) {
      const fam = cidrFamily(cidr);
      if (!fam) {
        skipped.push(`node ${n.name}: podCIDR ${JSON.stringify(cidr)} is not a CIDR`);
        continue;
      }
      const via = n.internalIPs.map((a) => parseIp(a)).find((p) => p?.family === fam)?.address;
      if (!via) {
        skipped.push(`node ${n.name}: no IPv${fam} InternalIP for ${cidr}`);
        continue;
      }
      const dst = canonCidr(cidr);
      const other = seen.get(dst);
      if (other) {
        skipped.push(`node ${n.name}: podCIDR ${dst} is also node ${other}'s`);
        continue;
      }
      seen.set(dst, n.name);
      routes.push({ dst, via, node: n.name });
    }
  }
  return { routes, skipped };
}

/** Lines for `ip -batch`: replace what is missing or different, delete ours that are no longer wanted. */
export function routeDiff(desired: NodeRoute[], installed: { dst: string; gateway?: string }[]): { replace: string[]; remove: string[] } {
  const have = new Map(installed.map((r) => [r.dst, r.gateway]));
  const want = new Set(desired.map((r) => r.dst));
  const replace = desired.filter((r) => have.get(r.dst) !== r.via).map((r) => `route replace ${r.dst} via ${r.via} proto ${ROUTE_PROTO}`);
  const remove = installed.filter((r) => !want.has(r.dst)).map((r) => `route del ${r.dst} proto ${ROUTE_PROTO}`);
  return { replace, remove };
}

/** kinglet's routes as installed (both families). */
export async function installedRoutes(): Promise<{ dst: string; gateway?: string }[]> {
  const out: { dst: string; gateway?: string }[] = [];
  for (const fam of ['-4', '-6']) {
    const rs = await ipJson<IpRoute[]>([fam, 'route', 'show', 'proto', String(ROUTE_PROTO)]);
    for (const r of rs) out.push(r.gateway ? { dst: r.dst.includes('/') ? r.dst : `${r.dst}/${fam === '-4' ? 32 : 128}`, gateway: r.gateway } : { dst: r.dst });
  }
  return out;
}

export interface RouteSync {
  routes: NodeRoute[];
  replaced: number;
  removed: number;
  /** Lines that failed (e.g. a gateway not on any local subnet) with ip's message. */
  errors: string[];
  skipped: string[];
}

/** Bring kinglet's routes to `desired` in one `ip -force -batch` (a failing line does not stop the rest). */
export async function syncRoutes(desired: { routes: NodeRoute[]; skipped: string[] }): Promise<RouteSync> {
  const { replace, remove } = routeDiff(desired.routes, await installedRoutes());
  const errors = await ipBatch([...remove, ...replace], { force: true });
  return { routes: desired.routes, replaced: replace.length, removed: remove.length, errors, skipped: desired.skipped };
}
