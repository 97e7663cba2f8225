// The byte layouts of the pod datapath's maps (bpf/pod.bpf.c): the
// TypeScript twin of the "Pod datapath" part of bpf/include/kinglet.h,
// pinned against the object's BTF by test/unit/agent/datapath/pod-layout-pin.test.ts.
// Addresses and ports are network byte order; everything else host order.
import { fld, layout, LB_MAP_NAMES, LE, type StructLayout } from './lb-layout.ts';

// ---- maps ---------------------------------------------------------------------

export const EP4_MAP = 'kl_ep4_v1';
export const CT4_MAP = 'kl_ct4_v1';
export const SNAT4_MAP = 'kl_snat4_v1';
export const CFG_MAP = 'kl_cfg_v1';
export const DROP_MAP = 'kl_drop_v1';

export const POD_MAP_NAMES = [EP4_MAP, CT4_MAP, SNAT4_MAP, CFG_MAP, DROP_MAP] as const;
/** Every map in pod.bpf.o: its own and the socket LB's (shared through the pins). */
export const POD_OBJECT_MAPS = [...LB_MAP_NAMES, ...POD_MAP_NAMES] as const;

export const EP_MAX = 65536;
export const CT_MAX = 262144;
export const SNAT_MAX = 131072;
export const DROP_MAX = 64;

export const POD_OBJECT = 'pod.bpf.o';

/** Programs of pod.bpf.o and where they attach. */
export const POD_PROGRAMS = {
  kl_from_pod: { section: 'tc', attach: 'pod veth tc ingress' },
  kl_to_pod: { section: 'tc', attach: 'pod veth tc egress' },
  kl_nat_egress: { section: 'tc', attach: 'native device tc egress' },
  kl_nat_ingress: { section: 'tc', attach: 'native device tc ingress' },
} as const;
export type PodProgram = keyof typeof POD_PROGRAMS;

// ---- constants ------------------------------------------------------------------

export const Redirect = { stack: 0, neigh: 1, peer: 2 } as const;
export type RedirectMode = keyof typeof Redirect;
export const CFG_F_MASQ = 0x01;
/** The masquerade ports overlap the node's ephemeral ports: replies a node socket is connected for stay with the node. */
export const CFG_F_SNAT_SHARED = 0x02;

/** Drop reasons by number (kinglet.h KL_DROP_*). */
export const DROP_REASONS: Record<number, string> = {
  1: 'malformed IPv4 header',
  2: 'source address is not the pod\'s',
  3: 'service has no backends',
  4: 'service backend missing',
  5: 'header rewrite failed',
  6: 'TTL exceeded',
  7: 'no free masquerade port',
  8: 'denied by policy',
  9: 'conntrack table full',
  10: 'masquerade mapping not stored',
};

// ---- structs ----------------------------------------------------------------------

export const ENDPOINT = layout('kl_endpoint', [['ifindex', 4], ['identity', 4], ['pod_mac', 6], ['host_mac', 6], ['flags', 2], ['pad', 2]]);
export const CT4_KEY = layout('kl_ct4_key', [['saddr', 4], ['daddr', 4], ['sport', 2], ['dport', 2], ['proto', 1], ['scope', 1], ['pad', 2]]);
export const CT4_ENTRY = layout('kl_ct4_entry', [
  ['last_seen_ns', 8], ['created_ns', 8], ['packets_fwd', 4], ['packets_rev', 4], ['nat_addr', 4], ['nat_port', 2], ['flags', 2],
  ['rev_nat_id', 4], ['backend_id', 4],
]);
export const CFG = layout('kl_cfg', [
  ['node_ip', 4], ['cluster_net', 4], ['cluster_mask', 4], ['pod_net', 4], ['pod_mask', 4], ['flags', 4], ['redirect', 4],
  ['snat_port_min', 2], ['snat_port_max', 2],
]);
export const SNAT4_KEY = layout('kl_snat4_key', [['saddr', 4], ['daddr', 4], ['sport', 2], ['dport', 2], ['proto', 1], ['dir', 1], ['pad', 2]]);
export const SNAT4_ENTRY = layout('kl_snat4_entry', [['last_seen_ns', 8], ['to_addr', 4], ['to_port', 2], ['flags', 2]]);

export const POD_STRUCTS: readonly StructLayout[] = [ENDPOINT, CT4_KEY, CT4_ENTRY, CFG, SNAT4_KEY, SNAT4_ENTRY];

export const POD_MAP_TYPES: Record<(typeof POD_MAP_NAMES)[number], { key: StructLayout | 'u32'; value: StructLayout | 'u64'; max: number }> = {
  [EP4_MAP]: { key: 'u32', value: ENDPOINT, max: EP_MAX },
  [CT4_MAP]: { key: CT4_KEY, value: CT4_ENTRY, max: CT_MAX },
  [SNAT4_MAP]: { key: SNAT4_KEY, value: SNAT4_ENTRY, max: SNAT_MAX },
  [CFG_MAP]: { key: 'u32', value: CFG, max: 1 },
  [DROP_MAP]: { key: 'u32', value: 'u64', max: DROP_MAX },
};

// ---- codecs ---------------------------------------------------------------------------

/** Network-order bytes of a dotted quad. */
export function ip4Bytes(addr: string): Buffer {
  const parts = addr.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`not an IPv4 address: ${addr}`);
  return Buffer.from(parts);
}

export function ip4Text(b: Uint8Array): string {
  return Array.from(b.subarray(0, 4)).join('.');
}

export function macBytes(mac: string): Buffer {
  const parts = mac.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) throw new Error(`not a MAC address: ${mac}`);
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

export function macText(b: Uint8Array): string {
  return Array.from(b).map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** The endpoints map key: the pod's IPv4 address. */
export function ep4Key(addr: string): Buffer {
  return ip4Bytes(addr);
}

export interface EndpointValue {
  ifindex: number;
  identity: number;
  podMac: string;
  hostMac: string;
}

export function encodeEndpoint(v: EndpointValue): Buffer {
  const b = Buffer.alloc(ENDPOINT.size);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  dv.setUint32(fld(ENDPOINT, 'ifindex').offset, v.ifindex, LE);
  dv.setUint32(fld(ENDPOINT, 'identity').offset, v.identity, LE);
  macBytes(v.podMac).copy(b, fld(ENDPOINT, 'pod_mac').offset);
  macBytes(v.hostMac).copy(b, fld(ENDPOINT, 'host_mac').offset);
  return b;
}

export function decodeEndpoint(b: Uint8Array): EndpointValue {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const pm = fld(ENDPOINT, 'pod_mac'), hm = fld(ENDPOINT, 'host_mac');
  return {
    ifindex: dv.getUint32(fld(ENDPOINT, 'ifindex').offset, LE),
    identity: dv.getUint32(fld(ENDPOINT, 'identity').offset, LE),
    podMac: macText(b.subarray(pm.offset, pm.offset + 6)),
    hostMac: macText(b.subarray(hm.offset, hm.offset + 6)),
  };
}

export interface NodeConfig {
  /** Masquerade address; undefined: masquerade off. */
  nodeIp?: string;
  clusterCidr: string;
  /** This node's IPv4 pod CIDR; undefined: masquerade off (nothing to match). */
  podCidr?: string;
  masquerade: boolean;
  redirect: RedirectMode;
  snatPortMin: number;
  snatPortMax: number;
  /** The masquerade ports overlap the node's ephemeral ports (portRangeOverlap). */
  snatShared?: boolean;
}

/**
 * "61000-65535" -> [61000, 65535]: the masquerade port range (inclusive).
 * Throws with what to pass instead on anything else.
 */
export function parsePortRange(text: string): [number, number] {
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(text.trim());
  const min = Number(m?.[1]), max = Number(m?.[2]);
  if (!m || min < 1 || max > 65535 || min > max) throw new Error(`not a port range: "${text}" (want <min>-<max> with 1 <= min <= max <= 65535, like 61000-65535)`);
  return [min, max];
}

/**
 * The ports two inclusive ranges share, or undefined. Used against the
 * node's ephemeral range (net.ipv4.ip_local_port_range): a node connection
 * may get a port that a pod's flow holds towards the same peer while they
 * overlap (CFG_F_SNAT_SHARED then keeps such replies with the node).
 */
export function portRangeOverlap(a: readonly [number, number], b: readonly [number, number]): [number, number] | undefined {
  const lo = Math.max(a[0], b[0]), hi = Math.min(a[1], b[1]);
  return lo <= hi ? [lo, hi] : undefined;
}

/** "10.42.0.0/16" -> network and mask bytes (network order). */
export function cidr4(cidr: string): { net: Buffer; mask: Buffer; prefix: number } {
  const [addr, len] = cidr.split('/');
  const prefix = Number(len);
  if (!addr || !Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw new Error(`not an IPv4 CIDR: ${cidr}`);
  const a = ip4Bytes(addr).readUInt32BE(0);
  const m = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  const net = Buffer.alloc(4);
  const mask = Buffer.alloc(4);
  net.writeUInt32BE((a & m) >>> 0);
  mask.writeUInt32BE(m);
  return { net, mask, prefix };
}

export function encodeConfig(c: NodeConfig): Buffer {
  const b = Buffer.alloc(CFG.size);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const on = c.masquerade && !!c.nodeIp && !!c.podCidr;
  if (c.nodeIp) ip4Bytes(c.nodeIp).copy(b, fld(CFG, 'node_ip').offset);
  const cl = cidr4(c.clusterCidr);
  cl.net.copy(b, fld(CFG, 'cluster_net').offset);
  cl.mask.copy(b, fld(CFG, 'cluster_mask').offset);
  if (c.podCidr) {
    const pc = cidr4(c.podCidr);
    pc.net.copy(b, fld(CFG, 'pod_net').offset);
    pc.mask.copy(b, fld(CFG, 'pod_mask').offset);
  }
  dv.setUint32(fld(CFG, 'flags').offset, (on ? CFG_F_MASQ : 0) | (c.snatShared ? CFG_F_SNAT_SHARED : 0), LE);
  dv.setUint32(fld(CFG, 'redirect').offset, Redirect[c.redirect], LE);
  dv.setUint16(fld(CFG, 'snat_port_min').offset, c.snatPortMin, LE);
  dv.setUint16(fld(CFG, 'snat_port_max').offset, c.snatPortMax, LE);
  return b;
}

/** The pod CIDR a written configuration holds ("10.42.1.0/24"), or undefined when it has none. */
export function configPodCidr(b: Uint8Array): string | undefined {
  if (b.byteLength < CFG.size) return undefined;
  const v = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  const mask = v.readUInt32BE(fld(CFG, 'pod_mask').offset);
  if (mask === 0) return undefined;
  const off = fld(CFG, 'pod_net').offset;
  const net = v.subarray(off, off + 4);
  const cidr = `${ip4Text(net)}/${Math.clz32(~mask)}`;
  // Only what encodeConfig writes: a contiguous mask and the network address.
  const c = cidr4(cidr);
  return c.mask.readUInt32BE(0) === mask && c.net.equals(net) ? cidr : undefined;
}

export interface SnatEntry {
  dir: 'out' | 'in';
  proto: number;
  saddr: string;
  daddr: string;
  sport: number;
  dport: number;
  toAddr: string;
  toPort: number;
}

export function decodeSnat(key: Uint8Array, value: Uint8Array): SnatEntry {
  const k = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
  const v = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  return {
    dir: k[fld(SNAT4_KEY, 'dir').offset] === 1 ? 'in' : 'out',
    proto: k[fld(SNAT4_KEY, 'proto').offset]!,
    saddr: ip4Text(k.subarray(0, 4)),
    daddr: ip4Text(k.subarray(4, 8)),
    sport: k.readUInt16BE(fld(SNAT4_KEY, 'sport').offset),
    dport: k.readUInt16BE(fld(SNAT4_KEY, 'dport').offset),
    toAddr: ip4Text(v.subarray(fld(SNAT4_ENTRY, 'to_addr').offset)),
    toPort: v.readUInt16BE(fld(SNAT4_ENTRY, 'to_port').offset),
  };
}
