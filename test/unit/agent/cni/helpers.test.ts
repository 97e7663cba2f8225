// The plugin's own small helpers: SHA-256 (instead of loading node:crypto),
// the HTTP response parser of its agent client, names and MACs.
import t from 'tap';
import { createHash } from 'node:crypto';
import { sha256Hex } from '../../../../agent/cni/sha256.ts';
import { parseHttpResponse } from '../../../../agent/cni/agent-client.ts';
import { defaultRouteDev, hostBatch, hostIfname, inNetns, macFor, podBatch } from '../../../../agent/cni/plumbing.ts';

t.test('sha256 matches node:crypto', async (t) => {
  t.equal(sha256Hex('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  t.equal(sha256Hex(''), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  let bad = 0;
  for (let n = 0; n < 200; n++) {
    const s = Array.from({ length: n }, (_, i) => String.fromCodePoint(32 + ((i * 131 + n) % 900))).join('');
    if (sha256Hex(s) !== createHash('sha256').update(s).digest('hex')) bad++;
  }
  t.equal(bad, 0, 'every length 0..199 (one and several blocks), multi-byte UTF-8');
});

t.test('host veth names and MACs', async (t) => {
  const n = hostIfname('0123456789abcdef', 'eth0');
  t.match(n, /^kl[0-9a-f]{11}$/);
  t.ok(n.length <= 15, 'fits IFNAMSIZ');
  t.equal(hostIfname('0123456789abcdef', 'eth0'), n, 'stable');
  t.not(hostIfname('0123456789abcdef', 'net1'), n, 'per ifname');
  const mac = macFor('host', 'abc', 'eth0');
  t.match(mac, /^02(:[0-9a-f]{2}){5}$/, 'locally administered unicast');
  t.not(macFor('pod', 'abc', 'eth0'), mac, 'two sides, two MACs');
});

t.test('batches', async (t) => {
  const spec = { netns: '/run/netns/p', ifname: 'eth0', hostIfname: 'kl0123456789a', address: '10.42.0.5', gateway: '10.42.0.1', mtu: 1450, hostMac: '02:00:00:00:00:01', podMac: '02:00:00:00:00:02' };
  const h = hostBatch(spec);
  t.match(h, 'addr replace 10.42.0.1/32 dev kinglet_host');
  t.match(h, 'link add kl0123456789a mtu 1450 address 02:00:00:00:00:01 type veth peer name eth0 mtu 1450 address 02:00:00:00:00:02 netns /run/netns/p');
  t.match(h, 'route replace 10.42.0.5/32 dev kl0123456789a scope link');
  t.match(h, 'neigh replace 10.42.0.5 dev kl0123456789a lladdr 02:00:00:00:00:02 nud permanent');
  const p = podBatch(spec);
  t.match(p, 'addr replace 10.42.0.5/32 dev eth0');
  t.match(p, 'route replace default via 10.42.0.1 dev eth0 onlink');
  t.match(p, 'neigh replace 10.42.0.1 dev eth0 lladdr 02:00:00:00:00:01 nud permanent');
});

t.test('commands inside the pod namespace: ip -n for names under /var/run/netns, else nsenter', async (t) => {
  t.same(inNetns('/var/run/netns/cni-1234', ['-batch', '-'], false), ['ip', ['-n', 'cni-1234', '-batch', '-']]);
  t.same(inNetns('/run/netns/cni-1234', ['-batch', '-'], true), ['ip', ['-n', 'cni-1234', '-batch', '-']], '/run/netns where /var/run is /run');
  t.same(inNetns('/run/netns/cni-1234', ['-batch', '-'], false), ['nsenter', ['--net=/run/netns/cni-1234', 'ip', '-batch', '-']], '/run/netns where /var/run is not /run');
  const ctrd = '/var/lib/containerd/io.containerd.grpc.v1.cri/netns/cni-1';
  t.same(inNetns(ctrd, ['-j', 'link'], true), ['nsenter', [`--net=${ctrd}`, 'ip', '-j', 'link']], 'netns under the state dir');
  t.same(inNetns('/proc/123/ns/net', ['link'], true)[0], 'nsenter');
  t.same(inNetns('/run/netns/..', ['link'], true)[0], 'nsenter', 'no escape from the netns dir');
  t.same(inNetns('/run/netns/a/b', ['link'], true)[0], 'nsenter');
});

t.test('default route device from /proc/net/route', async (t) => {
  const head = 'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n';
  t.equal(defaultRouteDev(head), undefined, 'no routes');
  t.equal(defaultRouteDev(head + 'eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n'), undefined, 'no default route');
  const two = head + 'wlan0\t00000000\t010200C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\neth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n';
  t.equal(defaultRouteDev(two), 'eth0', 'lowest metric wins');
});

t.test('HTTP responses from the agent', async (t) => {
  const r = (s: string) => parseHttpResponse(Buffer.from(s, 'latin1'));
  t.same(r('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{"a":1}junk'), { status: 200, body: '{"a":1}' });
  t.same(r('HTTP/1.1 204 No Content\r\n\r\n'), { status: 204, body: '' });
  t.same(r('HTTP/1.1 500 Internal\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"err\r\n8\r\nor":"x"}\r\n0\r\n\r\n'), { status: 500, body: '{"error":"x"}' });
  t.same(r('HTTP/1.0 200 OK\r\n\r\n{"until":"close"}'), { status: 200, body: '{"until":"close"}' });
  t.throws(() => r('HTTP/1.1 200 OK\r\nContent-Length: 3'), 'headers never ended');
  t.throws(() => r('SSH-2.0-OpenSSH\r\n\r\n'), 'not HTTP');
});
