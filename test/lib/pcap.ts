// IPv4 packets for datapath tests that rewrite headers: read the frames
// tcpdump -w wrote (classic pcap, Ethernet), check every checksum of an
// ICMPv4 error including the quoted packet's, and build a UDP datagram with
// a full checksum to send from a raw socket (veths leave the checksums of
// ordinary sockets partial, so only a hand-made one can be checked after a
// rewrite).

/** The frames of a classic pcap file (either byte order). */
export function pcapFrames(b: Buffer): Buffer[] {
  if (b.length < 24) return [];
  const magic = b.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && b.readUInt32BE(0) !== 0xa1b2c3d4 && b.readUInt32BE(0) !== 0xa1b23c4d) throw new Error('not a pcap file');
  const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  if (u32(20) !== 1) throw new Error(`pcap link type ${u32(20)}: want Ethernet (capture on an Ethernet device, not "any")`);
  const out: Buffer[] = [];
  for (let o = 24; o + 16 <= b.length;) {
    const len = u32(o + 8);
    out.push(b.subarray(o + 16, o + 16 + len));
    o += 16 + len;
  }
  return out;
}

/** The folded one's complement sum of b (0xffff over a region whose checksum is right). */
function onesSum(b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i + 1 < b.length; i += 2) s += (b[i]! << 8) | b[i + 1]!;
  if (b.length % 2) s += b[b.length - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

const ip4 = (b: Uint8Array) => Array.from(b.subarray(0, 4)).join('.');
const ip4Bytes = (a: string) => Buffer.from(a.split('.').map(Number));

function pseudo(src: Uint8Array, dst: Uint8Array, proto: number, len: number): Buffer {
  const p = Buffer.alloc(12);
  Buffer.from(src).copy(p, 0, 0, 4);
  Buffer.from(dst).copy(p, 4, 0, 4);
  p[9] = proto;
  p.writeUInt16BE(len, 10);
  return p;
}

/** A UDP header and payload with its full checksum (for `socat STDIN IP4-SENDTO:<dst>:17` from src). */
export function udpDatagram(src: string, dst: string, sport: number, dport: number, payload: Buffer): Buffer {
  const d = Buffer.alloc(8 + payload.length);
  d.writeUInt16BE(sport, 0);
  d.writeUInt16BE(dport, 2);
  d.writeUInt16BE(d.length, 4);
  payload.copy(d, 8);
  const c = 0xffff - onesSum(Buffer.concat([pseudo(ip4Bytes(src), ip4Bytes(dst), 17, d.length), d]));
  d.writeUInt16BE(c === 0 ? 0xffff : c, 6);
  return d;
}

export interface IcmpErrorView {
  src: string;
  dst: string;
  type: number;
  code: number;
  /** The outer IPv4 header checksum, the ICMP checksum, the quoted IPv4 header checksum. */
  ipOk: boolean;
  icmpOk: boolean;
  quoteIpOk: boolean;
  /** The quoted UDP checksum over the quoted datagram; undefined when it is not all quoted, not UDP, or 0. */
  quoteUdpOk: boolean | undefined;
  quote: { src: string; dst: string; proto: number; sport: number; dport: number };
}

/** An Ethernet frame holding an ICMPv4 error, taken apart with its checksums checked; undefined for anything else. */
export function icmpError(frame: Buffer): IcmpErrorView | undefined {
  if (frame.length < 14 + 20 || frame.readUInt16BE(12) !== 0x0800) return undefined;
  const ip = frame.subarray(14);
  const ihl = (ip[0]! & 0x0f) * 4;
  if (ip[9] !== 1) return undefined;
  const total = ip.readUInt16BE(2);
  const icmp = ip.subarray(ihl, total);
  if (![3, 11, 12].includes(icmp[0]!) || icmp.length < 8 + 20 + 8) return undefined;
  const q = icmp.subarray(8);
  const qihl = (q[0]! & 0x0f) * 4;
  const ql4 = q.subarray(qihl);
  const qproto = q[9]!;
  let quoteUdpOk: boolean | undefined;
  if (qproto === 17 && ql4.readUInt16BE(6) !== 0) {
    const len = ql4.readUInt16BE(4);
    if (ql4.length >= len) quoteUdpOk = onesSum(Buffer.concat([pseudo(q.subarray(12, 16), q.subarray(16, 20), 17, len), ql4.subarray(0, len)])) === 0xffff;
  }
  return {
    src: ip4(ip.subarray(12)),
    dst: ip4(ip.subarray(16)),
    type: icmp[0]!,
    code: icmp[1]!,
    ipOk: onesSum(ip.subarray(0, ihl)) === 0xffff,
    icmpOk: onesSum(icmp) === 0xffff,
    quoteIpOk: onesSum(q.subarray(0, qihl)) === 0xffff,
    quoteUdpOk,
    quote: { src: ip4(q.subarray(12)), dst: ip4(q.subarray(16)), proto: qproto, sport: ql4.readUInt16BE(0), dport: ql4.readUInt16BE(2) },
  };
}
