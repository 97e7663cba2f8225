// LbDatapath's first apply into empty pinned maps (packed, no diff, batch
// writes straight from the packed buffers) on real maps (scratch bpffs, a
// cgroup of the test's own, no traffic): the kernel holds exactly what the
// reference path (lbEntries) computes, and a restart that adopts the pins
// writes nothing.
import t from 'tap';
import { rootSkipReason, scratchBpffs, testCgroup } from '../../../lib/sandbox.ts';
import { LbDatapath } from '../../../../agent/datapath/lb.ts';
import { cleanup } from '../../../../agent/datapath/loader.ts';
import { kernelMap } from '../../../lib/kernel-map.ts';
import { lbEntries } from '../../../../agent/datapath/lb-entries.ts';
import { LB4_BE_MAP, LB4_SLOT_MAP, LB4_SVC_MAP, LB6_SVC_MAP, LB_CONFIG_MAPS, toHex } from '../../../../agent/datapath/lb-layout.ts';
import { frontendSortKey } from '../../../../agent/model/services.ts';
import type { LbBackend, LbFrontend, LbState } from '../../../../agent/model/types.ts';
import { Backends } from '../../../../agent/model/backends.ts';

const skip = rootSkipReason();

/** v4 and v6 frontends (TCP and UDP, some with affinity, one without backends), shared and terminating backends. */
function state(n: number): LbState {
  const frontends: LbFrontend[] = [];
  for (let i = 0; i < n; i++) {
    const v6 = i % 5 === 4;
    const backends: LbBackend[] = [];
    const nb = i % 7 === 0 ? 0 : 1 + (i % 6);
    for (let j = 0; j < nb; j++) {
      // Every 10th service shares its first backend with the service before it.
      const k = j === 0 && i % 10 === 9 ? i - 1 : i;
      backends.push({ address: v6 ? `fd00:42::${k.toString(16)}:${j}` : `10.42.${k >> 8}.${k & 255}`, port: 8000 + j, terminating: j === 2 });
    }
    frontends.push({
      service: `t/s${i}`, portName: '', type: 'ClusterIP', family: v6 ? 6 : 4,
      address: v6 ? `fd00:96::${i.toString(16)}` : `10.96.${i >> 8}.${i & 255}`,
      port: i % 3 === 0 ? 53 : 80, protocol: i % 3 === 0 ? 'UDP' : 'TCP', backends: Backends.from(backends), affinityTimeoutSeconds: i % 11 === 0 ? 10800 : 0,
    });
  }
  frontends.sort((a, b) => (frontendSortKey(a) < frontendSortKey(b) ? -1 : 1));
  return { frontends };
}

function kernelContents(lb: LbDatapath): Record<string, string[]> {
  return Object.fromEntries(LB_CONFIG_MAPS.map((n) => {
    const m = kernelMap(lb.loaded.maps[n]!);
    return [n, [...m.entries()].map(([k, v]) => `${toHex(k)}=${toHex(v)}`).sort()];
  }));
}

t.test('first apply into empty pinned maps: the reference entries, byte for byte; a restart writes nothing', { skip }, async (t) => {
  const bpfRoot = await scratchBpffs(t);
  const cgroup = await testCgroup(t);
  let lb = LbDatapath.open({ bpfRoot, cgroup });
  t.teardown(() => {
    lb.close();
    cleanup(bpfRoot);
  });
  // Big enough that the largest runs span more than one batch (16384 entries).
  const s = state(8000);
  const ref = lbEntries(s);
  const want = Object.fromEntries(LB_CONFIG_MAPS.map((n) => [n, ref.maps[n].map((e) => `${toHex(e.key)}=${toHex(e.value)}`).sort()]));
  const total = LB_CONFIG_MAPS.reduce((a, n) => a + ref.maps[n].length, 0);
  t.ok(ref.maps[LB6_SVC_MAP].length > 0 && ref.maps[LB4_SVC_MAP].length > 0, 'both families');
  t.ok(ref.maps[LB4_SLOT_MAP].length > 16384 && ref.maps[LB4_BE_MAP].length > 16384, 'runs over one batch');

  const first = lb.apply(s);
  t.same({ added: first.added, updated: first.updated, deleted: first.deleted }, { added: total, updated: 0, deleted: 0 });
  for (const n of LB_CONFIG_MAPS) t.same(first.byMap[n], { added: ref.maps[n].length, updated: 0, deleted: 0 }, `${n} counts`);
  t.same(kernelContents(lb), want, 'the kernel holds the reference entries');
  t.same(lb.fill().map((m) => m.entries), LB_CONFIG_MAPS.map((n) => ref.maps[n].length), 'the shadow copy counts them');

  // Same process: nothing to write (the shadow copy indexes the packed entries on first use).
  const again = lb.apply(s);
  t.equal(again.added + again.updated + again.deleted, 0, 'a second apply writes nothing');

  // Restart: adopt the pins, recover ids and slots from them.
  lb.close();
  lb = LbDatapath.open({ bpfRoot, cgroup });
  t.same(lb.fill().map((m) => m.entries), LB_CONFIG_MAPS.map((n) => ref.maps[n].length), 'adopted with every entry');
  const adopted = lb.apply(s);
  t.same({ added: adopted.added, updated: adopted.updated, deleted: adopted.deleted }, { added: 0, updated: 0, deleted: 0 }, 'after a restart: nothing written');
  t.same(lb.services().map((x) => x.id), s.frontends.map((f) => ref.allocation.frontends.get(`${f.family}|${f.address}|${f.port}|${f.protocol}`)), 'same rev-NAT ids');
  t.same(kernelContents(lb), want, 'and the maps unchanged');

  // Cleared and programmed again through the fast path: the same bytes.
  const cleared = lb.apply({ frontends: [] });
  t.equal(cleared.deleted, total);
  const refill = lb.apply(s);
  t.equal(refill.added, total);
  t.same(kernelContents(lb), want, 'programmed from empty again: the same entries');

  // Through update(): everything removed (incremental deletes), then everything added (into empty maps: apply).
  const removed = lb.update({ changes: new Map(s.frontends.map((f) => [frontendSortKey(f), { before: f, after: undefined }])), state: { frontends: [] } });
  t.equal(removed.deleted, total);
  t.ok(lb.fill().every((m) => m.entries === 0), 'empty');
  const added = lb.update({ changes: new Map(s.frontends.map((f) => [frontendSortKey(f), { before: undefined, after: f }])), state: s });
  t.equal(added.added, total);
  t.same(kernelContents(lb), want, 'update into empty maps: the same entries');
  const oneChange = s.frontends.find((f) => f.backends.length > 2)!;
  const [head, ...rest] = oneChange.backends;
  const moved = { ...oneChange, backends: Backends.from([{ ...head!, address: oneChange.family === 4 ? '10.99.0.1' : 'fd00:99::1' }, ...rest]) };
  const r = lb.update({ changes: new Map([[frontendSortKey(oneChange), { before: oneChange, after: moved }]]), state: { frontends: s.frontends.map((f) => (f === oneChange ? moved : f)) } });
  t.same({ added: r.added, updated: r.updated, deleted: r.deleted }, { added: 1, updated: 1, deleted: 1 }, 'then one endpoint moved: a handful of writes');
});
