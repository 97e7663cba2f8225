// Both sides of ADD over rtnetlink, without an `ip` exec. The pod side: the
// agent opens a NETLINK_ROUTE socket inside the pod's network namespace and
// sends the same five changes as plumbing.ts podBatch (lo up, the interface
// up, its /32 address, the gateway's permanent neighbour, the default route
// onlink). The host side (what hostBatch does) goes over one socket of the
// agent's own namespace, kept open.
//
// A netlink socket belongs to the namespace it was created in, whatever the
// thread does afterwards. So the calling thread enters the pod's namespace
// (setns), creates the socket, and returns to its own at once; nothing else
// runs on the thread in between (the calls are synchronous, JavaScript is
// single-threaded, and libuv's pool threads have namespaces of their own).
// Everything after that is send/recv on the socket. rtnetlink handles a
// request inside the sender's sendmsg(), so the acknowledgements are queued
// when send() returns: they are read with MSG_DONTWAIT and never block the
// event loop; one missing is an error.
//
// Two layers: pure encoders/decoders (unit-tested byte for byte) and the
// thin adapter through koffi (libc): setupPodRtnl, setupHostRtnl. plumbing.ts
// falls back to the `ip` exec when the adapter cannot be used or fails.
import { closeSync, openSync } from 'node:fs';
import koffi from 'koffi';
import type { VethSpec } from './plumbing.ts';

// linux/netlink.h, linux/rtnetlink.h, linux/if_addr.h, linux/neighbour.h
export const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
export const RTM_NEWLINK = 16;
const RTM_GETLINK = 18;
const RTM_NEWADDR = 20;
const RTM_NEWROUTE = 24;
const RTM_NEWNEIGH = 28;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_REPLACE = 0x100;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const IFF_UP = 0x1;
const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_LINKINFO = 18;
const IFLA_NET_NS_FD = 28;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const VETH_INFO_PEER = 1;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const NDA_DST = 1;
const NDA_LLADDR = 2;
const NUD_PERMANENT = 0x80;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RT_TABLE_MAIN = 254;
const RT_SCOPE_UNIVERSE = 0;
const RT_SCOPE_LINK = 253;
const RTA_DST = 1;
const RTPROT_BOOT = 3;
const RTN_UNICAST = 1;
const RTNH_F_ONLINK = 4;
const AF_INET = 2;
const NLMSG_HDRLEN = 16;

export class RtnlError extends Error {
  override name = 'RtnlError';
  /** Positive errno (0 when the failure is not an errno). */
  readonly errno: number;
  constructor(message: string, errno = 0) {
    super(message);
    this.errno = errno;
  }
}

const align4 = (n: number) => (n + 3) & ~3;

/** One rtattr: u16 length, u16 type, payload padded to 4 bytes. */
export function attr(type: number, payload: Buffer): Buffer {
  const b = Buffer.alloc(align4(4 + payload.length));
  b.writeUInt16LE(4 + payload.length, 0);
  b.writeUInt16LE(type, 2);
  payload.copy(b, 4);
  return b;
}

/** One netlink message: the header (length, type, flags, seq, port 0) before `body`. */
export function message(type: number, flags: number, seq: number, body: Buffer): Buffer {
  const b = Buffer.alloc(align4(NLMSG_HDRLEN + body.length));
  b.writeUInt32LE(NLMSG_HDRLEN + body.length, 0);
  b.writeUInt16LE(type, 4);
  b.writeUInt16LE(flags, 6);
  b.writeUInt32LE(seq, 8);
  b.writeUInt32LE(0, 12);
  body.copy(b, NLMSG_HDRLEN);
  return b;
}

function ipv4(ip: string): Buffer {
  const p = ip.split('.').map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) throw new RtnlError(`not an IPv4 address: ${ip}`);
  return Buffer.from(p);
}

function macBytes(m: string): Buffer {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(m)) throw new RtnlError(`not a MAC address: ${m}`);
  return Buffer.from(m.split(':').map((x) => parseInt(x, 16)));
}

function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v, 0);
  return b;
}

/** struct ifinfomsg (16 bytes). */
function ifinfo(index: number, flags: number, change: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(0, 0); // AF_UNSPEC
  b.writeInt32LE(index, 4);
  b.writeUInt32LE(flags, 8);
  b.writeUInt32LE(change, 12);
  return b;
}

/** RTM_GETLINK for a device by name. */
export function getLinkByName(seq: number, name: string): Buffer {
  return message(RTM_GETLINK, NLM_F_REQUEST, seq, Buffer.concat([ifinfo(0, 0, 0), attr(IFLA_IFNAME, Buffer.from(`${name}\0`))]));
}

/** RTM_NEWLINK setting IFF_UP on a device, by index or (index 0) by name. */
export function linkUp(seq: number, index: number, name?: string): Buffer {
  const body = ifinfo(index, IFF_UP, IFF_UP);
  return message(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq, name === undefined ? body : Buffer.concat([body, attr(IFLA_IFNAME, Buffer.from(`${name}\0`))]));
}

/** RTM_NEWADDR: address/prefix on a device (replace: a repeated ADD is not an error). */
export function addAddress(seq: number, index: number, address: string, prefix: number): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt8(AF_INET, 0);
  h.writeUInt8(prefix, 1);
  h.writeUInt32LE(index, 4);
  const a = ipv4(address);
  return message(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, seq, Buffer.concat([h, attr(IFA_LOCAL, a), attr(IFA_ADDRESS, a)]));
}

/** RTM_NEWNEIGH: a permanent IPv4 neighbour. */
export function permanentNeighbour(seq: number, index: number, address: string, lladdr: string): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt8(AF_INET, 0);
  h.writeInt32LE(index, 4);
  h.writeUInt16LE(NUD_PERMANENT, 8);
  return message(RTM_NEWNEIGH, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, seq, Buffer.concat([h, attr(NDA_DST, ipv4(address)), attr(NDA_LLADDR, macBytes(lladdr))]));
}

/** struct rtmsg (12 bytes) of an IPv4 unicast route in the main table. */
function rtmsg(dstLen: number, scope: number, flags: number): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt8(AF_INET, 0); // family; src_len, tos 0
  h.writeUInt8(dstLen, 1);
  h.writeUInt8(RT_TABLE_MAIN, 4);
  h.writeUInt8(RTPROT_BOOT, 5);
  h.writeUInt8(scope, 6);
  h.writeUInt8(RTN_UNICAST, 7);
  h.writeUInt32LE(flags, 8);
  return h;
}

/** RTM_NEWROUTE: IPv4 default route via `gateway` out of device `index`, onlink, main table. */
export function defaultRouteOnlink(seq: number, index: number, gateway: string): Buffer {
  const h = rtmsg(0, RT_SCOPE_UNIVERSE, RTNH_F_ONLINK);
  return message(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, seq, Buffer.concat([h, attr(RTA_GATEWAY, ipv4(gateway)), attr(RTA_OIF, u32(index))]));
}

export interface VethPair {
  name: string;
  mtu?: number;
  mac?: string;
  peerName: string;
  peerMtu?: number;
  peerMac?: string;
  /** Create the peer right in the namespace open as this fd (else: here). Down: the kernel cannot open a veth before its pair is complete. */
  peerNetnsFd?: number;
}

function linkAttrs(name: string, mtu?: number, mac?: string, netnsFd?: number): Buffer[] {
  const out = [attr(IFLA_IFNAME, Buffer.from(`${name}\0`))];
  if (mtu !== undefined) out.push(attr(IFLA_MTU, u32(mtu)));
  if (mac !== undefined) out.push(attr(IFLA_ADDRESS, macBytes(mac)));
  if (netnsFd !== undefined) out.push(attr(IFLA_NET_NS_FD, u32(netnsFd)));
  return out;
}

/** RTM_NEWLINK creating a veth pair (create|excl): `name` here and up; the peer as `v` says, down. */
export function createVeth(seq: number, v: VethPair): Buffer {
  const peer = Buffer.concat([ifinfo(0, 0, 0), ...linkAttrs(v.peerName, v.peerMtu, v.peerMac, v.peerNetnsFd)]);
  const linkinfo = Buffer.concat([attr(IFLA_INFO_KIND, Buffer.from('veth\0')), attr(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer))]);
  return message(
    RTM_NEWLINK,
    NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
    seq,
    Buffer.concat([ifinfo(0, IFF_UP, IFF_UP), ...linkAttrs(v.name, v.mtu, v.mac), attr(IFLA_LINKINFO, linkinfo)]),
  );
}

/** RTM_NEWROUTE: `address`/32 out of device `index`, scope link, main table. */
export function hostRoute(seq: number, index: number, address: string): Buffer {
  const h = rtmsg(32, RT_SCOPE_LINK, 0);
  return message(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, seq, Buffer.concat([h, attr(RTA_DST, ipv4(address)), attr(RTA_OIF, u32(index))]));
}

/** The pod side's changes (what podBatch does), numbered from `seq`; `index` is the pod interface's. */
export function podMessages(s: VethSpec, index: number, seq: number): Buffer[] {
  return [
    linkUp(seq, 1), // lo is ifindex 1 in every namespace
    linkUp(seq + 1, index),
    addAddress(seq + 2, index, s.address, 32),
    permanentNeighbour(seq + 3, index, s.gateway, s.hostMac),
    defaultRouteOnlink(seq + 4, index, s.gateway),
  ];
}

export interface Reply {
  type: number;
  seq: number;
  /** NLMSG_ERROR: 0 for an ACK, else the positive errno. */
  errno?: number;
  /** RTM_NEWLINK: the device's index. */
  ifindex?: number;
}

/** Split what recv() gave into messages (malformed trailing bytes: RtnlError). */
export function parseReplies(buf: Buffer): Reply[] {
  const out: Reply[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) throw new RtnlError(`malformed netlink reply (length ${len} at ${off} of ${buf.length})`);
    const r: Reply = { type: buf.readUInt16LE(off + 4), seq: buf.readUInt32LE(off + 8) };
    if (r.type === NLMSG_ERROR && len >= NLMSG_HDRLEN + 4) r.errno = -buf.readInt32LE(off + NLMSG_HDRLEN);
    if (r.type === RTM_NEWLINK && len >= NLMSG_HDRLEN + 16) r.ifindex = buf.readInt32LE(off + NLMSG_HDRLEN + 4);
    out.push(r);
    off += align4(len);
  }
  return out;
}

// --- the adapter (koffi) ------------------------------------------------------

interface Libc {
  setns(fd: number, nstype: number): number;
  socket(domain: number, type: number, protocol: number): number;
  send(fd: number, buf: Buffer, len: number, flags: number): number;
  recv(fd: number, buf: Buffer, len: number, flags: number): number;
  strerror(errnum: number): string;
}

const CLONE_NEWNET = 0x40000000;
const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_ROUTE = 0;
const MSG_DONTWAIT = 0x40;
const EAGAIN = 11;
const EEXIST = 17;
const ENODEV = 19;

let libc: Libc | undefined;
let ownNetns: number | undefined;

function bind(): Libc {
  if (libc) return libc;
  const l = koffi.load('libc.so.6');
  libc = {
    setns: l.func('int setns(int fd, int nstype)') as Libc['setns'],
    socket: l.func('int socket(int domain, int type, int protocol)') as Libc['socket'],
    send: l.func('long send(int fd, const void *buf, size_t len, int flags)') as Libc['send'],
    recv: l.func('long recv(int fd, _Out_ void *buf, size_t len, int flags)') as Libc['recv'],
    strerror: l.func('const char *strerror(int errnum)') as Libc['strerror'],
  };
  return libc;
}

function fail(c: Libc, what: string): never {
  const e = koffi.errno();
  throw new RtnlError(`${what}: ${c.strerror(e)}`, e);
}

/**
 * A NETLINK_ROUTE socket in the network namespace at `netnsPath`. If the
 * thread cannot return to its own namespace afterwards (which needs the
 * privilege it just used) the process must not go on in the wrong one: it
 * exits, saying so.
 */
function openRtnlIn(netnsPath: string): number {
  const c = bind();
  ownNetns ??= openSync('/proc/thread-self/ns/net', 'r');
  let target: number;
  try {
    target = openSync(netnsPath, 'r');
  } catch (e) {
    throw new RtnlError(`cannot open network namespace ${netnsPath}: ${(e as Error).message}`, 0);
  }
  try {
    if (c.setns(target, CLONE_NEWNET) !== 0) fail(c, `setns(${netnsPath})`);
    const sock = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    const sockErr = sock < 0 ? koffi.errno() : 0;
    if (c.setns(ownNetns, CLONE_NEWNET) !== 0) {
      process.stderr.write(`kinglet: cannot return to the agent's network namespace after entering ${netnsPath}: ${c.strerror(koffi.errno())}; exiting\n`);
      process.exit(70);
    }
    if (sock < 0) throw new RtnlError(`netlink socket in ${netnsPath}: ${c.strerror(sockErr)}`, sockErr);
    return sock;
  } finally {
    closeSync(target);
  }
}

/** Send `msgs` in one write and collect replies until every ACK-requesting seq in `want` has answered. */
function exchange(sock: number, msgs: Buffer[], want: number[]): Reply[] {
  const c = bind();
  const out = Buffer.concat(msgs);
  if (c.send(sock, out, out.length, 0) !== out.length) fail(c, 'netlink send');
  const pending = new Set(want);
  const replies: Reply[] = [];
  const buf = Buffer.alloc(32 * 1024);
  while (pending.size > 0) {
    const n = c.recv(sock, buf, buf.length, MSG_DONTWAIT);
    if (n < 0) {
      const e = koffi.errno();
      throw new RtnlError(e === EAGAIN ? `netlink: no answer to ${pending.size} request(s)` : `netlink recv: ${c.strerror(e)}`, e);
    }
    for (const r of parseReplies(buf.subarray(0, n))) {
      replies.push(r);
      if (r.type === NLMSG_ERROR || r.type === NLMSG_DONE || r.type === RTM_NEWLINK) pending.delete(r.seq);
    }
  }
  return replies;
}

/** Send `msgs` (seqs from `first`, in order) and throw on the first error, naming its step. Returns the replies. */
function steps(sock: number, first: number, msgs: Buffer[], names: string[], where: string): Reply[] {
  const replies = exchange(sock, msgs, msgs.map((_, i) => first + i));
  for (const r of replies) {
    if (r.type === NLMSG_ERROR && r.errno) throw new RtnlError(`${names[r.seq - first] ?? 'netlink'} in ${where}: ${bind().strerror(r.errno)}`, r.errno);
  }
  return replies;
}

/** The index of device `name` (through `sock`); RtnlError when there is none. */
function linkIndex(sock: number, name: string, where: string): number {
  const link = exchange(sock, [getLinkByName(1, name)], [1]).find((r) => r.seq === 1);
  if (!link?.ifindex) throw new RtnlError(`${name} not found in ${where}${link?.errno ? `: ${bind().strerror(link.errno)}` : ''}`, link?.errno ?? 0);
  return link.ifindex;
}

/** The pod side of ADD over rtnetlink. RtnlError says which step failed. */
export function setupPodRtnl(s: VethSpec): void {
  const sock = openRtnlIn(s.netns);
  try {
    const index = linkIndex(sock, s.ifname, s.netns);
    steps(sock, 2, podMessages(s, index, 2), ['lo up', 'interface up', 'address', 'gateway neighbour', 'default route'], s.netns);
  } finally {
    closeSync(sock);
  }
}

let hostSock: number | undefined;

/** The agent's own NETLINK_ROUTE socket (its namespace), made once. */
function ownRtnl(): number {
  if (hostSock !== undefined) return hostSock;
  const c = bind();
  const sock = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (sock < 0) fail(c, 'netlink socket');
  return (hostSock = sock);
}

/**
 * The host side of ADD over rtnetlink (what plumbing.ts hostBatch does): the
 * gateway on `gatewayDev` (made with its peer `gatewayPeer` when missing), the veth pair with its pod end created inside the
 * pod's namespace, the permanent neighbour and /32 route to the pod.
 * RtnlError says which step failed (the gateway device missing included);
 * a veth it created stays for the caller's cleanup.
 */
export function setupHostRtnl(s: VethSpec, gatewayDev: string, gatewayPeer: string): void {
  try {
    hostSteps(ownRtnl(), s, gatewayDev, gatewayPeer);
  } catch (e) {
    // A fresh socket next time: nothing an interrupted exchange left queued answers the next one.
    if (hostSock !== undefined) closeSync(hostSock);
    hostSock = undefined;
    throw e;
  }
}

function hostSteps(sock: number, s: VethSpec, gatewayDev: string, gatewayPeer: string): void {
  let gw: number;
  try {
    gw = linkIndex(sock, gatewayDev, 'the node namespace');
  } catch (e) {
    if (!(e instanceof RtnlError) || e.errno !== ENODEV) throw e;
    // The node's first pod: the gateway pair (both ends up). A concurrent ADD making it too is fine.
    const r = exchange(sock, [createVeth(1, { name: gatewayDev, peerName: gatewayPeer }), linkUp(2, 0, gatewayPeer)], [1, 2]);
    for (const x of r) {
      if (x.errno && (x.seq !== 1 || x.errno !== EEXIST)) throw new RtnlError(`creating ${gatewayDev}: ${bind().strerror(x.errno)}`, x.errno);
    }
    gw = linkIndex(sock, gatewayDev, 'the node namespace');
  }
  let nsFd: number;
  try {
    nsFd = openSync(s.netns, 'r');
  } catch (e) {
    throw new RtnlError(`cannot open network namespace ${s.netns}: ${(e as Error).message}`, 0);
  }
  let replies: Reply[];
  try {
    replies = steps(
      sock,
      2,
      [
        addAddress(2, gw, s.gateway, 32),
        createVeth(3, { name: s.hostIfname, mtu: s.mtu, mac: s.hostMac, peerName: s.ifname, peerMtu: s.mtu, peerMac: s.podMac, peerNetnsFd: nsFd }),
        getLinkByName(4, s.hostIfname),
      ],
      [`gateway address on ${gatewayDev}`, `veth ${s.hostIfname}`, `looking up ${s.hostIfname}`],
      'the node namespace',
    );
  } finally {
    closeSync(nsFd);
  }
  const index = replies.find((r) => r.seq === 4)?.ifindex;
  if (!index) throw new RtnlError(`${s.hostIfname} not found after creating it`);
  steps(sock, 5, [permanentNeighbour(5, index, s.address, s.podMac), hostRoute(6, index, s.address)], ['neighbour to the pod', 'route to the pod'], 'the node namespace');
}
