// The byte layouts of the socket-LB maps: the TypeScript twin of
// bpf/include/kinglet.h. Sizes and offsets here are pinned against the BPF
// object's BTF by test/unit/agent/datapath/layout-pin.test.ts, so a change on
// either side without the other fails the tests.
//
// Conventions (as in kinglet.h): addresses and ports are network byte order;
// every other field is host byte order; padding is written as zero.
import { endianness } from 'node:os';
import { parseIp } from '../model/ip.ts';
import type { IpFamily, L4Protocol } from '../model/types.ts';

/** Host byte order is little-endian (every non-address field of the maps is host order). */
export const LE = endianness() === 'LE';

// ---- map names (the layout version is in the name) -------------------------

export const LB4_SVC_MAP = 'kl_lb4_svc_v2';
export const LB6_SVC_MAP = 'kl_lb6_svc_v2';
export const LB4_SLOT_MAP = 'kl_lb4_slot_v1';
export const LB6_SLOT_MAP = 'kl_lb6_slot_v1';
export const LB4_BE_MAP = 'kl_lb4_be_v2';
export const LB6_BE_MAP = 'kl_lb6_be_v2';
export const LB4_RNAT_MAP = 'kl_lb4_rnat_v2';
export const LB6_RNAT_MAP = 'kl_lb6_rnat_v2';
export const LB4_RSK_MAP = 'kl_lb4_rsk_v1';
export const LB6_RSK_MAP = 'kl_lb6_rsk_v1';
export const LB_AFF_MAP = 'kl_lb_aff_v1';

/** Every map of the socket-LB object. */
export const LB_MAP_NAMES = [
  LB4_SVC_MAP, LB6_SVC_MAP, LB4_SLOT_MAP, LB6_SLOT_MAP, LB4_BE_MAP, LB6_BE_MAP, LB4_RNAT_MAP, LB6_RNAT_MAP,
  LB4_RSK_MAP, LB6_RSK_MAP, LB_AFF_MAP,
] as const;
export type LbMapName = (typeof LB_MAP_NAMES)[number];

/** The maps the agent owns and reconciles (the others are written by the programs). */
export const LB_CONFIG_MAPS = [LB4_SVC_MAP, LB6_SVC_MAP, LB4_SLOT_MAP, LB6_SLOT_MAP, LB4_BE_MAP, LB6_BE_MAP, LB4_RNAT_MAP, LB6_RNAT_MAP] as const;
export type LbConfigMapName = (typeof LB_CONFIG_MAPS)[number];

// ---- capacities and constants (kinglet.h) -------------------------------------

export const LB_SVC_MAX = 65536;
export const LB_SLOT_MAX = 262144;
export const LB_BE_MAX = 131072;
export const LB_RNAT_MAX = 65536;
export const LB_RSK_MAX = 262144;
export const LB_AFF_MAX = 65536;

export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const SVC_F_AFFINITY = 0x01;
export const BE_F_TERMINATING = 0x01;

export function protoNumber(p: L4Protocol): number {
  return p === 'TCP' ? PROTO_TCP : PROTO_UDP;
}

export function protoName(n: number): L4Protocol | undefined {
  return n === PROTO_TCP ? 'TCP' : n === PROTO_UDP ? 'UDP' : undefined;
}

// ---- the objects built from bpf/sock_lb.bpf.c -----------------------------------

export interface SockLbObject {
  /** File under bpf/build/. */
  file: string;
  /** bpf_set_retval (5.18+): a refused connect() fails with ECONNREFUSED (else EPERM). */
  setRetval: boolean;
  /** bpf_get_netns_cookie in sock_addr programs (5.7+): affinity per netns (else node-wide). */
  netnsCookie: boolean;
}

/** Feature variants of the socket-LB object, best first (see bpf/Makefile). */
export const SOCK_LB_OBJECTS: readonly SockLbObject[] = [
  { file: 'sock_lb.bpf.o', setRetval: true, netnsCookie: true },
  { file: 'sock_lb-noretval.bpf.o', setRetval: false, netnsCookie: true },
  { file: 'sock_lb-compat.bpf.o', setRetval: false, netnsCookie: false },
];

/** The best object this kernel can load, given what the probe found. */
export function pickSockLbObject(have: { setRetval: boolean; netnsCookie: boolean }): SockLbObject {
  for (const o of SOCK_LB_OBJECTS) {
    if ((!o.setRetval || have.setRetval) && (!o.netnsCookie || have.netnsCookie)) return o;
  }
  return SOCK_LB_OBJECTS[SOCK_LB_OBJECTS.length - 1]!;
}

/** The programs in the object (function name -> section). */
export const SOCK_LB_PROGRAMS = {
  kl_sock4_connect: 'cgroup/connect4',
  kl_sock4_sendmsg: 'cgroup/sendmsg4',
  kl_sock4_recvmsg: 'cgroup/recvmsg4',
  kl_sock4_getpeer: 'cgroup/getpeername4',
  kl_sock6_connect: 'cgroup/connect6',
  kl_sock6_sendmsg: 'cgroup/sendmsg6',
  kl_sock6_recvmsg: 'cgroup/recvmsg6',
  kl_sock6_getpeer: 'cgroup/getpeername6',
} as const;

// ---- struct layouts -------------------------------------------------------------

export interface FieldLayout {
  offset: number;
  size: number;
}

export interface StructLayout {
  /** The C struct name in kinglet.h. */
  name: string;
  size: number;
  /** Every member, padding included, by its C name. */
  fields: Record<string, FieldLayout>;
}

export function layout(name: string, fields: [string, number][]): StructLayout {
  const out: Record<string, FieldLayout> = {};
  let offset = 0;
  let align = 1;
  for (const [f, size] of fields) {
    // Natural alignment of scalars; arrays (odd sizes, or 16-byte addresses) are byte aligned.
    const a = size === 1 || size === 2 || size === 4 || size === 8 ? size : 1;
    offset = Math.ceil(offset / a) * a;
    out[f] = { offset, size };
    offset += size;
    align = Math.max(align, a);
  }
  return { name, size: Math.ceil(offset / align) * align, fields: out };
}

export const LB4_KEY = layout('kl_lb4_key', [['addr', 4], ['dport', 2], ['proto', 1], ['pad', 1]]);
export const LB6_KEY = layout('kl_lb6_key', [['addr', 16], ['dport', 2], ['proto', 1], ['pad', 1]]);
export const LB_SVC = layout('kl_lb_svc', [
  ['slot_base', 4], ['count', 2], ['flags', 1], ['pad', 1], ['rev_nat_id', 4], ['affinity_timeout', 4],
]);
export const LB4_BACKEND = layout('kl_lb4_backend', [['addr', 4], ['port', 2], ['proto', 1], ['flags', 1]]);
export const LB6_BACKEND = layout('kl_lb6_backend', [['addr', 16], ['port', 2], ['proto', 1], ['flags', 1]]);
export const LB4_RNAT = layout('kl_lb4_rnat', [['addr', 4], ['port', 2], ['pad', 2]]);
export const LB6_RNAT = layout('kl_lb6_rnat', [['addr', 16], ['port', 2], ['pad', 2]]);
export const LB4_RSK_KEY = layout('kl_lb4_rsk_key', [['cookie', 8], ['addr', 4], ['port', 2], ['pad', 2]]);
export const LB4_RSK = layout('kl_lb4_rsk', [['addr', 4], ['port', 2], ['pad', 2], ['rev_nat_id', 4]]);
export const LB6_RSK_KEY = layout('kl_lb6_rsk_key', [['cookie', 8], ['addr', 16], ['port', 2], ['pad', 2], ['pad2', 4]]);
export const LB6_RSK = layout('kl_lb6_rsk', [['addr', 16], ['port', 2], ['pad', 2], ['rev_nat_id', 4]]);
export const LB_AFF_KEY = layout('kl_lb_aff_key', [['client', 8], ['rev_nat_id', 4], ['pad', 4]]);
export const LB_AFF = layout('kl_lb_aff', [['last_used_ns', 8], ['backend_id', 4], ['slot', 2], ['pad', 2]]);

/** Every struct of kinglet.h, for the layout pin test. */
export const LB_STRUCTS: readonly StructLayout[] = [
  LB4_KEY, LB6_KEY, LB_SVC, LB4_BACKEND, LB6_BACKEND, LB4_RNAT, LB6_RNAT,
  LB4_RSK_KEY, LB4_RSK, LB6_RSK_KEY, LB6_RSK, LB_AFF_KEY, LB_AFF,
];

/** Key and value struct of each map ('u32' for a plain __u32 id key). */
export const LB_MAP_TYPES: Record<LbMapName, { kind: 'hash' | 'array' | 'lru_hash'; key: StructLayout | 'u32'; value: StructLayout | 'u32' }> = {
  [LB4_SVC_MAP]: { kind: 'hash', key: LB4_KEY, value: LB_SVC },
  [LB6_SVC_MAP]: { kind: 'hash', key: LB6_KEY, value: LB_SVC },
  // Backend slots: index -> backend id, a contiguous range per frontend (lb-slots.ts).
  [LB4_SLOT_MAP]: { kind: 'array', key: 'u32', value: 'u32' },
  [LB6_SLOT_MAP]: { kind: 'array', key: 'u32', value: 'u32' },
  // Keyed by dense ids: arrays (an unused id holds zeros).
  [LB4_BE_MAP]: { kind: 'array', key: 'u32', value: LB4_BACKEND },
  [LB6_BE_MAP]: { kind: 'array', key: 'u32', value: LB6_BACKEND },
  [LB4_RNAT_MAP]: { kind: 'array', key: 'u32', value: LB4_RNAT },
  [LB6_RNAT_MAP]: { kind: 'array', key: 'u32', value: LB6_RNAT },
  [LB4_RSK_MAP]: { kind: 'lru_hash', key: LB4_RSK_KEY, value: LB4_RSK },
  [LB6_RSK_MAP]: { kind: 'lru_hash', key: LB6_RSK_KEY, value: LB6_RSK },
  [LB_AFF_MAP]: { kind: 'lru_hash', key: LB_AFF_KEY, value: LB_AFF },
};

// ---- addresses ---------------------------------------------------------------------

const addrCache = new Map<string, Uint8Array>();

/** Network-order bytes of an address of the given family; throws on anything else. Do not modify the result. */
export function addrBytes(address: string, family: IpFamily): Uint8Array {
  const hit = addrCache.get(address);
  if (hit && hit.length === (family === 4 ? 4 : 16)) return hit;
  const p = parseIp(address);
  if (!p || p.family !== family) throw new Error(`not an IPv${family} address: ${address}`);
  const bytes = Uint8Array.from(Buffer.from(p.key, 'hex'));
  if (addrCache.size >= 1 << 18) addrCache.clear();
  addrCache.set(address, bytes);
  return bytes;
}

/** Canonical text of 4 or 16 network-order bytes. */
export function addrText(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  if (bytes.length !== 16) throw new Error(`address of ${bytes.length} bytes`);
  // An IPv4-mapped address is kept in IPv6 form here (parseIp would fold it to IPv4).
  if (bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return `::ffff:${Array.from(bytes.subarray(12)).join('.')}`;
  }
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  return parseIp(groups.join(':'))!.address;
}

// ---- codecs --------------------------------------------------------------------------

export interface Codec<T> {
  size: number;
  encode(v: T): Uint8Array;
  decode(b: Uint8Array): T;
}

// Encoded entries come out of shared slabs: one ArrayBuffer and one DataView
// per 64 KiB instead of one per entry (10k services x 10 backends are
// 220k keys and values: per-entry buffers cost more than the encoding).
const SLAB_SIZE = 64 * 1024;
let slab = new ArrayBuffer(SLAB_SIZE);
let slabView = new DataView(slab);
let slabUsed = 0;

class Writer {
  readonly buf: Uint8Array;
  readonly dv: DataView;
  readonly base: number;
  constructor(size: number) {
    if (slabUsed + size > SLAB_SIZE) {
      slab = new ArrayBuffer(SLAB_SIZE);
      slabView = new DataView(slab);
      slabUsed = 0;
    }
    this.base = slabUsed;
    // Keep 8-byte alignment between entries (cheap, and friendly to FFI callers).
    slabUsed += (size + 7) & ~7;
    this.buf = new Uint8Array(slab, this.base, size);
    this.dv = slabView;
  }
  u8(f: FieldLayout, v: number): void { this.dv.setUint8(this.base + f.offset, v); }
  u16(f: FieldLayout, v: number): void { this.dv.setUint16(this.base + f.offset, v, LE); }
  be16(f: FieldLayout, v: number): void { this.dv.setUint16(this.base + f.offset, v, false); }
  u32(f: FieldLayout, v: number): void { this.dv.setUint32(this.base + f.offset, v, LE); }
  u64(f: FieldLayout, v: bigint): void { this.dv.setBigUint64(this.base + f.offset, v, LE); }
  bytes(f: FieldLayout, b: Uint8Array): void {
    if (b.length !== f.size) throw new Error(`field of ${f.size} bytes given ${b.length}`);
    this.buf.set(b, f.offset);
  }
}

class Reader {
  readonly buf: Uint8Array;
  readonly dv: DataView;
  constructor(b: Uint8Array, size: number, what: string) {
    if (b.length !== size) throw new Error(`${what}: expected ${size} bytes, got ${b.length}`);
    this.buf = b;
    this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }
  u8(f: FieldLayout): number { return this.dv.getUint8(f.offset); }
  u16(f: FieldLayout): number { return this.dv.getUint16(f.offset, LE); }
  be16(f: FieldLayout): number { return this.dv.getUint16(f.offset, false); }
  u32(f: FieldLayout): number { return this.dv.getUint32(f.offset, LE); }
  u64(f: FieldLayout): bigint { return this.dv.getBigUint64(f.offset, LE); }
  bytes(f: FieldLayout): Uint8Array { return this.buf.slice(f.offset, f.offset + f.size); }
}

/** A field of `l` by name; throws when the layout has no such field. */
export function fld(l: StructLayout, name: string): FieldLayout {
  const f = l.fields[name];
  if (!f) throw new Error(`${l.name} has no field ${name}`);
  return f;
}

/** A __u32 key (backend id, rev-NAT id), host order. */
export const u32Codec: Codec<number> = {
  size: 4,
  encode(v) {
    const w = new Writer(4);
    w.u32({ offset: 0, size: 4 }, v);
    return w.buf;
  },
  decode(b) {
    return new Reader(b, 4, '__u32').u32({ offset: 0, size: 4 });
  },
};

/** A services-map key: a frontend. */
export interface SvcKey {
  address: string;
  port: number;
  /** IPPROTO_* number. */
  proto: number;
}

function svcKeyCodec(l: StructLayout, family: IpFamily): Codec<SvcKey> {
  const addr = fld(l, 'addr'), dport = fld(l, 'dport'), proto = fld(l, 'proto');
  return {
    size: l.size,
    encode(k) {
      const w = new Writer(l.size);
      w.bytes(addr, addrBytes(k.address, family));
      w.be16(dport, k.port);
      w.u8(proto, k.proto);
      return w.buf;
    },
    decode(b) {
      const r = new Reader(b, l.size, l.name);
      return { address: addrText(r.bytes(addr)), port: r.be16(dport), proto: r.u8(proto) };
    },
  };
}

export const lb4KeyCodec = svcKeyCodec(LB4_KEY, 4);
export const lb6KeyCodec = svcKeyCodec(LB6_KEY, 6);

/** A services-map value. */
export interface SvcValue {
  /** First slot-array index of the backend slots (0 when count is 0). */
  slotBase: number;
  /** Number of backend slots (0 refuses). */
  count: number;
  flags: number;
  revNatId: number;
  /** Seconds, when flags has SVC_F_AFFINITY. */
  affinityTimeout: number;
}

export const svcValueCodec: Codec<SvcValue> = (() => {
  const l = LB_SVC;
  const be = fld(l, 'slot_base'), count = fld(l, 'count'), flags = fld(l, 'flags');
  const rn = fld(l, 'rev_nat_id'), to = fld(l, 'affinity_timeout');
  return {
    size: l.size,
    encode(v) {
      const w = new Writer(l.size);
      w.u32(be, v.slotBase);
      w.u16(count, v.count);
      w.u8(flags, v.flags);
      w.u32(rn, v.revNatId);
      w.u32(to, v.affinityTimeout);
      return w.buf;
    },
    decode(b) {
      const r = new Reader(b, l.size, l.name);
      return { slotBase: r.u32(be), count: r.u16(count), flags: r.u8(flags), revNatId: r.u32(rn), affinityTimeout: r.u32(to) };
    },
  };
})();

export interface Backend {
  address: string;
  port: number;
  proto: number;
  flags: number;
}

function backendCodec(l: StructLayout, family: IpFamily): Codec<Backend> {
  const addr = fld(l, 'addr'), port = fld(l, 'port'), proto = fld(l, 'proto'), flags = fld(l, 'flags');
  return {
    size: l.size,
    encode(v) {
      const w = new Writer(l.size);
      w.bytes(addr, addrBytes(v.address, family));
      w.be16(port, v.port);
      w.u8(proto, v.proto);
      w.u8(flags, v.flags);
      return w.buf;
    },
    decode(b) {
      const r = new Reader(b, l.size, l.name);
      return { address: addrText(r.bytes(addr)), port: r.be16(port), proto: r.u8(proto), flags: r.u8(flags) };
    },
  };
}

export const lb4BackendCodec = backendCodec(LB4_BACKEND, 4);
export const lb6BackendCodec = backendCodec(LB6_BACKEND, 6);

export interface RevNat {
  address: string;
  port: number;
}

function rnatCodec(l: StructLayout, family: IpFamily): Codec<RevNat> {
  const addr = fld(l, 'addr'), port = fld(l, 'port');
  return {
    size: l.size,
    encode(v) {
      const w = new Writer(l.size);
      w.bytes(addr, addrBytes(v.address, family));
      w.be16(port, v.port);
      return w.buf;
    },
    decode(b) {
      const r = new Reader(b, l.size, l.name);
      return { address: addrText(r.bytes(addr)), port: r.be16(port) };
    },
  };
}

export const lb4RevNatCodec = rnatCodec(LB4_RNAT, 4);
export const lb6RevNatCodec = rnatCodec(LB6_RNAT, 6);

/** Reverse-socket key: this socket's peer at a backend address. */
export interface RskKey {
  cookie: bigint;
  address: string;
  port: number;
}

/** Reverse-socket value: the frontend to show instead. */
export interface RskValue {
  address: string;
  port: number;
  revNatId: number;
}

function rskKeyCodec(l: StructLayout, family: IpFamily): Codec<RskKey> {
  const cookie = fld(l, 'cookie'), addr = fld(l, 'addr'), port = fld(l, 'port');
  return {
    size: l.size,
    encode(k) {
      const w = new Writer(l.size);
      w.u64(cookie, k.cookie);
      w.bytes(addr, addrBytes(k.address, family));
      w.be16(port, k.port);
      return w.buf;
    },
    decode(b) {
      const r = new Reader(b, l.size, l.name);
      return { cookie: r.u64(cookie), address: addrText(r.bytes(addr)), port: r.be16(port) };
    },
  };
}

function rskValueCodec(l: StructLayout, family: IpFamily): Codec<RskValue> {
  const addr = fld(l, 'addr'), port = fld(l, 'port'), rn = fld(l, 'rev_nat_id');
  return {
    size: l.size,
    encode(v) {
      const w = new Writer(l.size);
      w.bytes(addr, addrBytes(v.address, family));
      w.be16(port, v.port);
      w.u32(rn, v.revNatId);
      return w.buf;
    },
    decode(b) {
      const r = new Reader(b, l.size, l.name);
      return { address: addrText(r.bytes(addr)), port: r.be16(port), revNatId: r.u32(rn) };
    },
  };
}

export const lb4RskKeyCodec = rskKeyCodec(LB4_RSK_KEY, 4);
export const lb6RskKeyCodec = rskKeyCodec(LB6_RSK_KEY, 6);
export const lb4RskCodec = rskValueCodec(LB4_RSK, 4);
export const lb6RskCodec = rskValueCodec(LB6_RSK, 6);

export interface AffKey {
  /** Network namespace cookie of the client, or 0n (node-wide) without that helper. */
  client: bigint;
  revNatId: number;
}

export interface AffValue {
  lastUsedNs: bigint;
  backendId: number;
  slot: number;
}

export const affKeyCodec: Codec<AffKey> = (() => {
  const l = LB_AFF_KEY;
  const client = fld(l, 'client'), rn = fld(l, 'rev_nat_id');
  return {
    size: l.size,
    encode(k) {
      const w = new Writer(l.size);
      w.u64(client, k.client);
      w.u32(rn, k.revNatId);
      return w.buf;
    },
    decode(b) {
      const r = new Reader(b, l.size, l.name);
      return { client: r.u64(client), revNatId: r.u32(rn) };
    },
  };
})();

export const affValueCodec: Codec<AffValue> = (() => {
  const l = LB_AFF;
  const last = fld(l, 'last_used_ns'), be = fld(l, 'backend_id'), slot = fld(l, 'slot');
  return {
    size: l.size,
    encode(v) {
      const w = new Writer(l.size);
      w.u64(last, v.lastUsedNs);
      w.u32(be, v.backendId);
      w.u16(slot, v.slot);
      return w.buf;
    },
    decode(b) {
      const r = new Reader(b, l.size, l.name);
      return { lastUsedNs: r.u64(last), backendId: r.u32(be), slot: r.u16(slot) };
    },
  };
})();

/**
 * A string that identifies the bytes among bytes of the same length (one
 * UTF-16 unit per byte pair): the fast way to use keys in a Map. Not for display.
 */
export function bytesKey(b: Uint8Array): string {
  let s = '';
  const n = b.length;
  let i = 0;
  for (; i + 1 < n; i += 2) s += String.fromCharCode(b[i]! | (b[i + 1]! << 8));
  if (i < n) s += String.fromCharCode(b[i]!);
  return s;
}

/** Lowercase hex of bytes (display, bpftool arguments). */
export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}
