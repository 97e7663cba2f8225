// rtnetlink message encoding for the pod side of ADD, byte for byte against
// the kernel's layouts (linux/netlink.h, rtnetlink.h), and reply parsing.
import t from 'tap';
import {
  addAddress,
  attr,
  createVeth,
  hostRoute,
  defaultRouteOnlink,
  getLinkByName,
  linkUp,
  message,
  parseReplies,
  permanentNeighbour,
  podMessages,
  NLMSG_ERROR,
  RTM_NEWLINK,
  RtnlError,
} from '../../../../agent/cni/rtnl.ts';

const hex = (b: Buffer) => b.toString('hex');

t.test('attributes are length-prefixed and padded to 4 bytes', async (t) => {
  t.equal(hex(attr(3, Buffer.from('eth0\0'))), '0900' + '0300' + '6574683000' + '000000');
  t.equal(hex(attr(1, Buffer.from([10, 0, 0, 1]))), '0800' + '0100' + '0a000001');
});

t.test('a message has the netlink header before its body', async (t) => {
  const m = message(16, 0x5, 7, Buffer.from([1, 2, 3]));
  t.equal(m.length, 20, 'padded to 4');
  t.equal(m.readUInt32LE(0), 19, 'length without padding');
  t.equal(m.readUInt16LE(4), 16);
  t.equal(m.readUInt16LE(6), 0x5);
  t.equal(m.readUInt32LE(8), 7);
  t.equal(m.readUInt32LE(12), 0, 'port 0: the kernel');
});

t.test('link up: RTM_NEWLINK, ifinfomsg with IFF_UP in flags and change, ACK asked', async (t) => {
  const m = linkUp(3, 9);
  t.equal(hex(m), '20000000' + '1000' + '0500' + '03000000' + '00000000' + '00000000' + '09000000' + '01000000' + '01000000');
});

t.test('get link by name: no index, IFLA_IFNAME with the NUL', async (t) => {
  const m = getLinkByName(1, 'eth0');
  t.equal(m.readUInt16LE(4), 18, 'RTM_GETLINK');
  t.equal(m.readUInt16LE(6), 1, 'request, answered by the link itself');
  t.equal(m.readInt32LE(16 + 4), 0);
  t.equal(hex(m.subarray(32)), hex(attr(3, Buffer.from('eth0\0'))));
  t.equal(m.readUInt32LE(0), 16 + 16 + 12, "the attribute's padding counts, as iproute2 does");
});

t.test('address: ifaddrmsg AF_INET /32 on the index, IFA_LOCAL and IFA_ADDRESS, create|replace', async (t) => {
  const m = addAddress(4, 2, '10.42.0.5', 32);
  t.equal(m.readUInt16LE(4), 20, 'RTM_NEWADDR');
  t.equal(m.readUInt16LE(6), 0x1 | 0x4 | 0x100 | 0x400);
  t.equal(hex(m.subarray(16, 24)), '02' + '20' + '00' + '00' + '02000000');
  t.equal(hex(m.subarray(24)), '08000200' + '0a2a0005' + '08000100' + '0a2a0005');
});

t.test('neighbour: ndmsg AF_INET, NUD_PERMANENT, NDA_DST and NDA_LLADDR', async (t) => {
  const m = permanentNeighbour(5, 2, '10.42.0.1', '02:aa:bb:cc:dd:ee');
  t.equal(m.readUInt16LE(4), 28, 'RTM_NEWNEIGH');
  t.equal(hex(m.subarray(16, 28)), '02000000' + '02000000' + '8000' + '00' + '00');
  t.equal(hex(m.subarray(28)), '08000100' + '0a2a0001' + '0a000200' + '02aabbccddee' + '0000');
});

t.test('default route: main table, boot protocol, universe scope, unicast, onlink; gateway and oif', async (t) => {
  const m = defaultRouteOnlink(6, 2, '10.42.0.1');
  t.equal(m.readUInt16LE(4), 24, 'RTM_NEWROUTE');
  t.equal(hex(m.subarray(16, 28)), '02' + '00' + '00' + '00' + 'fe' + '03' + '00' + '01' + '04000000');
  t.equal(hex(m.subarray(28)), '08000500' + '0a2a0001' + '08000400' + '02000000');
});

t.test('the pod side: lo (index 1) and the interface up, address, neighbour, route, seqs in order', async (t) => {
  const spec = { netns: '/x', ifname: 'eth0', hostIfname: 'klx', address: '10.42.0.5', gateway: '10.42.0.1', mtu: 1500, hostMac: '02:00:00:00:00:01', podMac: '02:00:00:00:00:02' };
  const ms = podMessages(spec, 7, 2);
  t.same(ms.map((m) => m.readUInt16LE(4)), [16, 16, 20, 28, 24]);
  t.same(ms.map((m) => m.readUInt32LE(8)), [2, 3, 4, 5, 6]);
  t.equal(ms[0]!.readInt32LE(20), 1);
  t.equal(ms[1]!.readInt32LE(20), 7);
});

t.test('bad addresses are refused before anything is sent', async (t) => {
  t.throws(() => addAddress(1, 2, '10.42.0.256', 32), RtnlError);
  t.throws(() => permanentNeighbour(1, 2, '10.42.0.1', '02:aa:bb'), RtnlError);
  t.throws(() => defaultRouteOnlink(1, 2, 'fe80::1'), RtnlError);
});

t.test('replies: ACKs, errors (negative errno), a link with its index; malformed lengths refused', async (t) => {
  const ack = Buffer.alloc(36);
  ack.writeUInt32LE(36, 0);
  ack.writeUInt16LE(NLMSG_ERROR, 4);
  ack.writeUInt32LE(4, 8);
  ack.writeInt32LE(0, 16);
  const err = Buffer.from(ack);
  err.writeUInt32LE(5, 8);
  err.writeInt32LE(-17, 16);
  const link = message(RTM_NEWLINK, 0, 1, Buffer.concat([Buffer.from([0, 0, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), attr(3, Buffer.from('eth0\0'))]));
  t.same(parseReplies(Buffer.concat([link, ack, err])), [
    { type: RTM_NEWLINK, seq: 1, ifindex: 5 },
    { type: NLMSG_ERROR, seq: 4, errno: 0 },
    { type: NLMSG_ERROR, seq: 5, errno: 17 },
  ]);
  const bad = Buffer.from(ack);
  bad.writeUInt32LE(400, 0);
  t.throws(() => parseReplies(bad), RtnlError);
  t.same(parseReplies(Buffer.alloc(0)), []);
});

/** The attributes of a buffer of rtattrs: [type, payload]. */
function attrs(b: Buffer): [number, Buffer][] {
  const out: [number, Buffer][] = [];
  for (let off = 0; off + 4 <= b.length; ) {
    const len = b.readUInt16LE(off);
    out.push([b.readUInt16LE(off + 2), b.subarray(off + 4, off + len)]);
    off += (len + 3) & ~3;
  }
  return out;
}

t.test('veth: the host end up with name, MTU, MAC; the peer in linkinfo/data/peer with its own and the netns fd', async (t) => {
  const m = createVeth(3, { name: 'klabc', mtu: 1450, mac: '02:00:00:00:00:01', peerName: 'eth0', peerMtu: 1450, peerMac: '02:00:00:00:00:02', peerNetnsFd: 42 });
  t.equal(m.readUInt16LE(4), 16, 'RTM_NEWLINK');
  t.equal(m.readUInt16LE(6), 0x1 | 0x4 | 0x200 | 0x400, 'request, ack, create, excl');
  t.equal(m.readUInt32LE(0), m.length, 'the whole buffer');
  t.equal(hex(m.subarray(16, 32)), '0000' + '0000' + '00000000' + '01000000' + '01000000', 'ifinfomsg: new, IFF_UP');
  const top = attrs(m.subarray(32));
  t.same(top.map(([k]) => k), [3, 4, 1, 18], 'IFLA_IFNAME, IFLA_MTU, IFLA_ADDRESS, IFLA_LINKINFO');
  t.equal(top[0]![1].toString(), 'klabc\0');
  t.equal(top[1]![1].readUInt32LE(0), 1450);
  t.equal(hex(top[2]![1]), '020000000001');
  const info = attrs(top[3]![1]);
  t.same(info.map(([k]) => k), [1, 2], 'IFLA_INFO_KIND, IFLA_INFO_DATA');
  t.equal(info[0]![1].toString(), 'veth\0');
  const data = attrs(info[1]![1]);
  t.equal(data[0]![0], 1, 'VETH_INFO_PEER');
  const peer = data[0]![1];
  t.equal(hex(peer.subarray(0, 16)), '00'.repeat(16), 'the peer\'s ifinfomsg: down (it cannot open before its pair is complete)');
  const pa = attrs(peer.subarray(16));
  t.same(pa.map(([k]) => k), [3, 4, 1, 28], 'IFLA_IFNAME, IFLA_MTU, IFLA_ADDRESS, IFLA_NET_NS_FD');
  t.equal(pa[0]![1].toString(), 'eth0\0');
  t.equal(hex(pa[2]![1]), '020000000002');
  t.equal(pa[3]![1].readUInt32LE(0), 42);
});

t.test('veth without MTU, MAC or netns: just the names', async (t) => {
  const m = createVeth(1, { name: 'kinglet_host', peerName: 'kinglet_net' });
  const top = attrs(m.subarray(32));
  t.same(top.map(([k]) => k), [3, 18]);
  const peer = attrs(attrs(attrs(top[1]![1])[1]![1])[0]![1].subarray(16));
  t.same(peer.map(([k]) => k), [3]);
  t.equal(peer[0]![1].toString(), 'kinglet_net\0');
});

t.test('link up by name: index 0 and IFLA_IFNAME', async (t) => {
  const m = linkUp(2, 0, 'kinglet_net');
  t.equal(m.readInt32LE(20), 0);
  t.same(attrs(m.subarray(32)).map(([k, v]) => [k, v.toString()]), [[3, 'kinglet_net\0']]);
});

t.test('host route: /32, scope link, main table, RTA_DST and RTA_OIF', async (t) => {
  const m = hostRoute(6, 9, '10.42.0.5');
  t.equal(m.readUInt16LE(4), 24, 'RTM_NEWROUTE');
  t.equal(m.readUInt16LE(6), 0x1 | 0x4 | 0x100 | 0x400);
  t.equal(hex(m.subarray(16, 28)), '02' + '20' + '00' + '00' + 'fe' + '03' + 'fd' + '01' + '00000000');
  t.equal(hex(m.subarray(28)), '08000100' + '0a2a0005' + '08000400' + '09000000');
});
