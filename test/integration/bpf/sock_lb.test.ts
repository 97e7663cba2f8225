// Socket-LB in the running kernel: the sock_lb objects loaded by the agent's
// loader on a scratch bpffs, attached to a cgroup of the test's own, and
// programmed through lb-entries + reconcile. A client inside that cgroup and
// a netns without any default route reaches ClusterIPs that never exist on
// the wire: connect()/sendmsg() are translated to backends in other
// namespaces (over veths); anything not translated fails closed (no route).
import t from 'tap';
import { execa } from 'execa';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { netns, rootSkipReason, scratchBpffs, start, testCgroup, veth, type Netns, type Teardownable } from '../../lib/sandbox.ts';
import { cleanup, load, type Loaded } from '../../../agent/datapath/loader.ts';
import { kernelMap, type KernelMap } from '../../lib/kernel-map.ts';
import { allocationFromMaps, lbEntries, lbPlans, type LbAllocation } from '../../../agent/datapath/lb-entries.ts';
import { reconcile, type ReconcileResult } from '../../../agent/datapath/reconcile.ts';
import {
  affKeyCodec, affValueCodec, LB4_BE_MAP, LB4_SLOT_MAP, LB4_SVC_MAP, LB6_BE_MAP, LB6_SLOT_MAP, LB6_SVC_MAP, LB_AFF_MAP, LB_CONFIG_MAPS,
  lb4BackendCodec, lb4KeyCodec, lb6BackendCodec, lb6KeyCodec, SOCK_LB_OBJECTS, svcValueCodec, u32Codec, type AffValue, type LbConfigMapName,
} from '../../../agent/datapath/lb-layout.ts';
import type { LbBackend, LbFrontend, LbState, L4Protocol } from '../../../agent/model/types.ts';
import { Backends } from '../../../agent/model/backends.ts';

const skip = rootSkipReason();
const repo = fileURLToPath(new URL('../../../', import.meta.url));
const peer = fileURLToPath(new URL('../../lib/lb-peer.ts', import.meta.url));
const TCP_PORT = 8080;
const UDP_PORT = 5353;

interface Result { server?: string; peer?: string; from?: string; error?: string }
type Op = { op: 'tcp'; host: string; port: number; n: number } | { op: 'udp'; host: string; port: number; n: number; connected?: boolean };

interface Lab {
  loaded: Loaded;
  program(state: LbState): ReconcileResult;
  maps: Record<LbConfigMapName, KernelMap>;
  alloc: LbAllocation | undefined;
  client(ops: Op[]): Promise<Result[][]>;
}

const be4 = (i: number, port = TCP_PORT): LbBackend => ({ address: `10.200.${i}.2`, port, terminating: false });
const be6 = (i: number, port = TCP_PORT): LbBackend => ({ address: `fd00:200:${i}::2`, port, terminating: false });

function fe(address: string, port: number, protocol: L4Protocol, backends: LbBackend[], affinityTimeoutSeconds = 0): LbFrontend {
  return {
    service: 'default/test', portName: '', type: 'ClusterIP', family: address.includes(':') ? 6 : 4,
    address, port, protocol, backends: Backends.from(backends), affinityTimeoutSeconds,
  };
}

async function makeLab(t: Teardownable, object: string): Promise<Lab> {
  await execa('make', ['-s', '-C', join(repo, 'bpf')]);
  const fs = await scratchBpffs(t);
  const root = join(fs, 'kinglet');
  const cg = await testCgroup(t);
  const client = await netns(t, 'kl-lbc');
  for (const i of [1, 2, 3]) {
    const b: Netns = await netns(t, `kl-lb${i}`);
    const v = await veth(t, { ns: client, addr: `10.200.${i}.1/24` }, { ns: b, addr: `10.200.${i}.2/24` });
    await execa('ip', ['-n', client.name, 'addr', 'add', `fd00:200:${i}::1/64`, 'dev', v.a, 'nodad']);
    await execa('ip', ['-n', b.name, 'addr', 'add', `fd00:200:${i}::2/64`, 'dev', v.b, 'nodad']);
    const srv = start(t, [process.execPath, peer, 'server', `b${i}`, String(TCP_PORT), String(UDP_PORT)], { ns: b });
    await srv.waitForOutput((o) => o.includes('"listening":true'));
  }
  const routes = await client.run(['ip', '-j', 'route', 'show', 'default']);
  if (JSON.parse(routes).length !== 0) throw new Error('client namespace has a default route');

  const loaded = load({ object: join(repo, 'bpf', 'build', object), bpfRoot: root, cgroup: cg });
  t.teardown(() => {
    loaded.close();
    cleanup(root);
  });
  const maps = {} as Record<LbConfigMapName, KernelMap>;
  for (const name of LB_CONFIG_MAPS) {
    maps[name] = kernelMap(loaded.maps[name]!); // the fd stays owned by the object
  }
  const lab: Lab = {
    loaded,
    maps,
    alloc: undefined,
    program(state) {
      const e = lbEntries(state, lab.alloc);
      lab.alloc = e.allocation;
      return reconcile(lbPlans(e.maps, (n) => maps[n]));
    },
    async client(ops) {
      const p = start(t, [process.execPath, peer, 'client', JSON.stringify(ops)], { ns: client, cgroup: cg });
      const out = await p.waitForOutput((o) => o.includes('\n'), 60000);
      await p.proc;
      return JSON.parse(out.trim().split('\n').pop()!) as Result[][];
    },
  };
  return lab;
}

const servers = (rs: Result[]) => [...new Set(rs.map((r) => r.server ?? `error:${r.error}`))].sort();

const STATE: LbState = {
  frontends: [
    fe('10.96.0.10', 53, 'UDP', [1, 2, 3].map((i) => be4(i, UDP_PORT))),
    fe('10.96.0.10', 80, 'TCP', [1, 2, 3].map((i) => be4(i))),
    fe('10.96.0.11', 53, 'UDP', []),
    fe('10.96.0.11', 80, 'TCP', []),
    fe('10.96.0.12', 80, 'TCP', [1, 2, 3].map((i) => be4(i)), 60),
    fe('fd00:96::10', 53, 'UDP', [1, 2, 3].map((i) => be6(i, UDP_PORT))),
    fe('fd00:96::10', 80, 'TCP', [1, 2, 3].map((i) => be6(i))),
  ],
};

t.test('socket LB (sock_lb.bpf.o): ClusterIP over TCP and UDP, v4, v6 and v4-mapped', { skip }, async (t) => {
  const lab = await makeLab(t, 'sock_lb.bpf.o');
  const w = lab.program(STATE);
  t.equal(w.added, 7 + 5 * 3 + 12 + 7, 'frontends + slots + backends (v4/v6, TCP/UDP) + rev-NAT written');

  const [tcp, udp, udpConn, refusedTcp, refusedUdp, refusedUdpConn, stray, aff, tcp6, udp6, mapped] = await lab.client([
    { op: 'tcp', host: '10.96.0.10', port: 80, n: 30 },
    { op: 'udp', host: '10.96.0.10', port: 53, n: 30 },
    { op: 'udp', host: '10.96.0.10', port: 53, n: 5, connected: true },
    { op: 'tcp', host: '10.96.0.11', port: 80, n: 1 },
    { op: 'udp', host: '10.96.0.11', port: 53, n: 1 },
    { op: 'udp', host: '10.96.0.11', port: 53, n: 1, connected: true },
    { op: 'tcp', host: '10.96.0.99', port: 80, n: 1 },
    { op: 'tcp', host: '10.96.0.12', port: 80, n: 12 },
    { op: 'tcp', host: 'fd00:96::10', port: 80, n: 30 },
    { op: 'udp', host: 'fd00:96::10', port: 53, n: 5 },
    { op: 'tcp', host: '::ffff:10.96.0.10', port: 80, n: 5 },
  ]);
  t.same(servers(tcp!), ['b1', 'b2', 'b3'], 'TCP: every backend reached, at random (30 connects)');
  t.ok(tcp!.every((r) => r.peer === '10.96.0.10:80'), 'TCP: getpeername shows the ClusterIP');
  t.same(servers(udp!), ['b1', 'b2', 'b3'], 'UDP sendto: every backend reached');
  t.ok(udp!.every((r) => r.from === '10.96.0.10:53'), 'UDP: replies come from the ClusterIP (recvmsg)');
  t.ok(udpConn!.every((r) => r.server && r.from === '10.96.0.10:53' && r.peer === '10.96.0.10:53'), 'connected UDP: reply and getpeername show the ClusterIP');
  t.same(refusedTcp, [{ error: 'ECONNREFUSED' }], 'no backends: TCP connect refused');
  t.same(refusedUdp, [{ error: 'ECONNREFUSED' }], 'no backends: UDP sendto refused');
  t.same(refusedUdpConn, [{ error: 'ECONNREFUSED' }], 'no backends: UDP connect refused');
  t.same(stray, [{ error: 'ENETUNREACH' }], 'not a frontend: passed through untranslated, fails closed (no route)');
  t.equal(servers(aff!).length, 1, 'affinity: one backend for every connect');
  t.notOk(aff!.some((r) => r.error), 'affinity: all connects succeed');
  t.same(servers(tcp6!), ['b1', 'b2', 'b3'], 'IPv6 TCP: every backend reached');
  t.ok(tcp6!.every((r) => r.peer === '[fd00:96::10]:80'), 'IPv6: getpeername shows the ClusterIP');
  t.ok(udp6!.every((r) => r.server && r.from === '[fd00:96::10]:53'), 'IPv6 UDP: replies from the ClusterIP');
  t.ok(mapped!.every((r) => r.server && r.peer === '[::ffff:10.96.0.10]:80'), 'IPv4-mapped on an IPv6 socket: translated via the v4 maps');

  // Nothing changed: nothing written, also with the allocation recovered from the maps (agent restart).
  const same = lab.program(STATE);
  t.same([same.added, same.updated, same.deleted], [0, 0, 0], 'second reconcile writes nothing');
  const recovered = allocationFromMaps(Object.fromEntries(LB_CONFIG_MAPS.map((n) => [n, lab.maps[n].entries()])));
  lab.alloc = recovered;
  const afterRestart = lab.program(STATE);
  t.same([afterRestart.added, afterRestart.updated, afterRestart.deleted], [0, 0, 0], 'after a restart (allocation from the pinned maps) nothing is written');

  // Backends change: the client follows at once.
  const only2: LbState = { frontends: STATE.frontends.map((f) => (f.address === '10.96.0.10' && f.protocol === 'TCP' ? { ...f, backends: Backends.from([be4(2)]) } : f)) };
  const w2 = lab.program(only2);
  t.ok(w2.added + w2.updated + w2.deleted <= 4, `a backend change touches few entries (${JSON.stringify(w2.byMap[LB_CONFIG_MAPS[0]])})`);
  const [after] = await lab.client([{ op: 'tcp', host: '10.96.0.10', port: 80, n: 10 }]);
  t.same(servers(after!), ['b2'], 'after the change only b2 answers');

  // A slot whose backend id holds zeros (the backends live in an array: an unused id is all zeros)
  // is no backend: the connect fails, it is never translated to 0.0.0.0:0. The next reconcile repairs it.
  const id = lab.alloc!.backends.get(`4|10.200.2.2|${TCP_PORT}|TCP`)!;
  t.ok(id > 0, 'b2 has a backend id');
  lab.maps[LB4_BE_MAP].delete(u32Codec.encode(id));
  const [stale] = await lab.client([{ op: 'tcp', host: '10.96.0.10', port: 80, n: 1 }]);
  t.same(stale, [{ error: 'EHOSTUNREACH' }], 'slot -> zeroed backend id: EHOSTUNREACH');
  const fixed = lab.program(only2);
  t.same([fixed.added, fixed.updated, fixed.deleted], [1, 0, 0], 'the reconcile writes the backend back');
  const [back] = await lab.client([{ op: 'tcp', host: '10.96.0.10', port: 80, n: 2 }]);
  t.same(servers(back!), ['b2'], 'and b2 answers again');

  // Affinity follows a backend removal: the client moves to a remaining backend and sticks there.
  const stuck = aff![0]!.server!;
  const without: LbState = { frontends: only2.frontends.map((f) => (f.address === '10.96.0.12' ? { ...f, backends: Backends.from([...f.backends].filter((b) => `b${b.address.split('.')[2]}` !== stuck)) } : f)) };
  lab.program(without);
  const [aff2] = await lab.client([{ op: 'tcp', host: '10.96.0.12', port: 80, n: 8 }]);
  t.equal(servers(aff2!).length, 1, 'affinity: one backend again');
  t.not(servers(aff2!)[0], stuck, 'and not the removed one');

  // Everything removed: the maps are empty and the ClusterIP is no longer translated.
  const gone = lab.program({ frontends: [] });
  t.ok(gone.deleted > 0, 'an empty state deletes entries');
  for (const n of LB_CONFIG_MAPS) t.equal([...lab.maps[n].entries()].length, 0, `${n} empty`);
  const [none] = await lab.client([{ op: 'tcp', host: '10.96.0.10', port: 80, n: 1 }]);
  t.same(none, [{ error: 'ENETUNREACH' }], 'no frontend: fails closed');
});

for (const variant of SOCK_LB_OBJECTS.filter((o) => !o.setRetval)) {
  t.test(`socket LB (${variant.file}): refused connects fail with EPERM, affinity still holds`, { skip }, async (t) => {
    const lab = await makeLab(t, variant.file);
    lab.program(STATE);
    const [tcp, refused, refusedUdp, aff] = await lab.client([
      { op: 'tcp', host: '10.96.0.10', port: 80, n: 20 },
      { op: 'tcp', host: '10.96.0.11', port: 80, n: 1 },
      { op: 'udp', host: '10.96.0.11', port: 53, n: 1 },
      { op: 'tcp', host: '10.96.0.12', port: 80, n: 8 },
    ]);
    t.same(servers(tcp!), ['b1', 'b2', 'b3']);
    t.same(refused, [{ error: 'EPERM' }], 'without bpf_set_retval a rejecting program gives EPERM');
    t.same(refusedUdp, [{ error: 'EPERM' }]);
    t.equal(servers(aff!).length, 1, `affinity (${variant.netnsCookie ? 'per netns' : 'node-wide'})`);
  });
}

// The backend pick with sessionAffinity ClientIP, seen in the kernel's own
// affinity map: whose record it is (the client's netns, or the node without
// bpf_get_netns_cookie), that a live record is followed to the backend it
// names, and that one older than the timeout is not.
const AFF_TIMEOUT = 30;
const AFF_STATE: LbState = {
  frontends: [
    fe('10.96.0.12', 80, 'TCP', [1, 2, 3].map((i) => be4(i)), AFF_TIMEOUT),
    fe('fd00:96::12', 80, 'TCP', [1, 2, 3].map((i) => be6(i)), AFF_TIMEOUT),
  ],
};

interface Slot { slot: number; backendId: number; server: string }

/** The frontend's rev-NAT id and its slots (1..count) with the backend each holds, from the maps. */
function frontendSlots(lab: Lab, family: 4 | 6, address: string): { revNatId: number; slots: Slot[] } {
  const [svcMap, slotMap, beMap, keyCodec, beCodec] = family === 4
    ? [LB4_SVC_MAP, LB4_SLOT_MAP, LB4_BE_MAP, lb4KeyCodec, lb4BackendCodec] as const
    : [LB6_SVC_MAP, LB6_SLOT_MAP, LB6_BE_MAP, lb6KeyCodec, lb6BackendCodec] as const;
  const sv = lab.maps[svcMap].get(keyCodec.encode({ address, port: 80, proto: 6 }));
  if (!sv) throw new Error(`no frontend ${address}:80 in ${svcMap}`);
  const front = svcValueCodec.decode(sv);
  const slots: Slot[] = [];
  for (let slot = 1; slot <= front.count; slot++) {
    const backendId = u32Codec.decode(lab.maps[slotMap].get(u32Codec.encode(front.slotBase + slot - 1))!);
    const be = beCodec.decode(lab.maps[beMap].get(u32Codec.encode(backendId))!);
    const i = /^10\.200\.(\d+)\.2$|^fd00:200:(\d+)::2$/.exec(be.address);
    slots.push({ slot, backendId, server: `b${i?.[1] ?? i?.[2]}` });
  }
  return { revNatId: front.revNatId, slots };
}

/** bpf_ktime_get_ns()'s clock (CLOCK_MONOTONIC). */
const monotonicNs = (): bigint => process.hrtime.bigint();

for (const variant of SOCK_LB_OBJECTS) {
  t.test(`socket LB (${variant.file}): affinity records, live ones followed, expired ones not`, { skip }, async (t) => {
    const lab = await makeLab(t, variant.file);
    lab.program(AFF_STATE);
    const aff = kernelMap(lab.loaded.maps[LB_AFF_MAP]!);
    const fronts = [
      { family: 4 as const, host: '10.96.0.12', ...frontendSlots(lab, 4, '10.96.0.12') },
      { family: 6 as const, host: 'fd00:96::12', ...frontendSlots(lab, 6, 'fd00:96::12') },
    ];
    const connect = (n: number) => lab.client(fronts.map((f) => ({ op: 'tcp' as const, host: f.host, port: 80, n })));
    const records = () => [...aff.entries()].map(([k, v]) => ({ key: affKeyCodec.decode(k), value: affValueCodec.decode(v) }));

    const first = await connect(4);
    const recs = records();
    t.equal(recs.length, 2, 'one record per frontend');
    const client = recs[0]!.key.client;
    if (variant.netnsCookie) t.ok(client > 0n && client < 1n << 63n, `keyed by the client's netns cookie (${client})`);
    else t.equal(client, 0n, 'node-wide without bpf_get_netns_cookie: client 0');
    for (const [i, f] of fronts.entries()) {
      const got = first[i]!;
      t.equal(servers(got).length, 1, `IPv${f.family}: one backend for every connect (${servers(got)})`);
      const rec = recs.find((r) => r.key.revNatId === f.revNatId);
      t.ok(rec, `IPv${f.family}: the record is the frontend's`);
      t.equal(rec?.key.client, client, `IPv${f.family}: and the same client's`);
      const slot = f.slots.find((s) => s.slot === rec?.value.slot);
      t.same(slot && { backendId: slot.backendId, server: slot.server }, { backendId: rec?.value.backendId, server: got[0]?.server },
        `IPv${f.family}: it names the backend that answered and the slot that holds it`);
    }

    // A live record for another backend: every connect goes there.
    const write = (f: (typeof fronts)[number], s: Slot, lastUsedNs: bigint) => {
      const v: AffValue = { lastUsedNs, backendId: s.backendId, slot: s.slot };
      aff.update(affKeyCodec.encode({ client, revNatId: f.revNatId }), affValueCodec.encode(v));
    };
    const moved = fronts.map((f, i) => f.slots.find((s) => s.server !== first[i]![0]!.server)!);
    fronts.forEach((f, i) => write(f, moved[i]!, monotonicNs()));
    const followed = await connect(4);
    fronts.forEach((f, i) => t.same(servers(followed[i]!), [moved[i]!.server], `IPv${f.family}: a live record is followed (${moved[i]!.server})`));

    // An expired record: the pick is random again (12 rounds, each starting
    // from a record older than the timeout naming slot 1; all 12 landing on
    // slot 1's backend by chance has odds of 3^-12) and the record is renewed.
    const reached: string[][] = fronts.map(() => []);
    for (let round = 0; round < 12; round++) {
      const old = monotonicNs() - BigInt(AFF_TIMEOUT + 5) * 1_000_000_000n;
      fronts.forEach((f) => write(f, f.slots[0]!, old));
      const got = await connect(1);
      fronts.forEach((_, i) => reached[i]!.push(got[i]![0]?.server ?? `error:${got[i]![0]?.error}`));
      if (round === 0) {
        for (const [i, f] of fronts.entries()) {
          const rec = records().find((r) => r.key.revNatId === f.revNatId)!;
          t.ok(rec.value.lastUsedNs > old, `IPv${f.family}: the expired record is replaced by a fresh one`);
          t.equal(f.slots.find((s) => s.slot === rec.value.slot)?.server, reached[i]![0], `IPv${f.family}: naming the new pick`);
        }
      }
    }
    fronts.forEach((f, i) => {
      t.notOk(reached[i]!.some((s) => s.startsWith('error:')), `IPv${f.family}: every connect after expiry answered`);
      t.not(servers(reached[i]!.map((server) => ({ server }))).join(), f.slots[0]!.server, `IPv${f.family}: expired records are not followed (${reached[i]!.join(' ')})`);
    });
  });
}
