// The loader on a scratch bpffs and a test cgroup: load with pins, attach,
// reload (adopt: same link, new program), incompatible pins, cleanup.
import t from 'tap';
import { execa } from 'execa';
import { existsSync, readdirSync, renameSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rootSkipReason, scratchBpffs, testCgroup, type Teardownable } from '../../../lib/sandbox.ts';
import * as bpf from '../../../../agent/datapath/libbpf.ts';
import { cleanup, describePinned, load, LoaderError, openPinnedMap, type Loaded } from '../../../../agent/datapath/loader.ts';

const skip = rootSkipReason();
const fixture = new URL('../../../fixtures/bpf/loader_test.bpf.c', import.meta.url).pathname;

async function build(t: Teardownable, defines: Record<string, number>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kl-bpfobj-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const out = join(dir, 'loader_test.bpf.o');
  const arch = process.arch === 'arm64' ? 'aarch64' : 'x86_64';
  await execa('clang', [
    '-O2', '-g', '-Wall', '-target', 'bpf', `-I/usr/include/${arch}-linux-gnu`,
    ...Object.entries(defines).map(([k, v]) => `-D${k}=${v}`),
    '-c', fixture, '-o', out,
  ]);
  return out;
}

/** UDP connect() to loopback from a process inside the cgroup: runs connect4, sends nothing. */
async function connectFrom(cgroup: string): Promise<void> {
  const js = "require('dgram').createSocket('udp4').connect(9, '127.0.0.1', () => process.exit(0))";
  await execa('sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$1" -e "$2"', cgroup, process.execPath, js]);
}

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};
const LOOPBACK = Buffer.from([127, 0, 0, 1]);

function attachedIds(cgroup: string, attachType: number): number[] {
  const fd = bpf.openCgroup(cgroup);
  try {
    return bpf.progQuery(fd, attachType).progIds;
  } finally {
    bpf.closeCgroup(fd);
  }
}

t.test('load, attach, adopt on reload, cleanup', { skip }, async (t) => {
  const fs = await scratchBpffs(t);
  const root = join(fs, 'kinglet');
  const cg = await testCgroup(t);
  const v1 = await build(t, { VERSION: 1 });
  const v2 = await build(t, { VERSION: 2 });
  let current: Loaded | undefined;
  t.teardown(() => {
    current?.close();
    cleanup(root);
  });

  // First load: maps created and pinned, both programs attached with pinned links.
  current = load({ object: v1, bpfRoot: root, cgroup: cg });
  const d1 = current.describe();
  t.same(readdirSync(join(root, 'maps')).sort(), ['kl_test_counts', 'kl_test_seen']);
  t.same(readdirSync(join(root, 'links')).sort(), ['kl_connect4', 'kl_sendmsg4']);
  t.match(d1.maps.find((m) => m.name === 'kl_test_counts'), { action: 'created', type: 'array', maxEntries: 4 });
  t.match(d1.maps.find((m) => m.name.endsWith('.rodata')), { action: 'private' });
  t.match(d1.attachments, [
    { program: 'kl_connect4', section: 'cgroup/connect4', attachType: 'cgroup_inet4_connect', action: 'attached', cgroup: cg },
    { program: 'kl_sendmsg4', section: 'cgroup/sendmsg4', attachType: 'cgroup_udp4_sendmsg', action: 'attached' },
  ]);
  const a1 = d1.attachments[0]!;
  t.same(attachedIds(cg, bpf.AttachType.CGROUP_INET4_CONNECT), [a1.progId], 'connect4 attached to the test cgroup');
  t.ok(current.maps.kl_test_seen! > 0, 'map fds by name');

  await connectFrom(cg);
  const seen = openPinnedMap(join(root, 'maps', 'kl_test_seen'));
  t.teardown(() => seen.close());
  t.equal(seen.get(LOOPBACK)?.readUInt32LE(), 1, 'v1 program ran on connect()');
  const counts = openPinnedMap(join(root, 'maps', 'kl_test_counts'));
  t.teardown(() => counts.close());
  t.equal(counts.get(u32(0))?.readBigUInt64LE(), 1n);

  // The agent goes away (handles closed): the pins keep everything attached.
  current.close();
  current = undefined;
  t.same(attachedIds(cg, bpf.AttachType.CGROUP_INET4_CONNECT), [a1.progId], 'still attached without the loader');

  // Restart with v2: maps reused, links adopted (same link id), program swapped.
  current = load({ object: v2, bpfRoot: root, cgroup: cg });
  const d2 = current.describe();
  t.match(d2.maps.find((m) => m.name === 'kl_test_seen'), { action: 'reused', id: seen.info.id });
  const a2 = d2.attachments[0]!;
  t.equal(a2.action, 'adopted');
  t.equal(a2.linkId, a1.linkId, 'same link');
  t.not(a2.progId, a1.progId, 'new program');
  t.same(attachedIds(cg, bpf.AttachType.CGROUP_INET4_CONNECT), [a2.progId], 'only the new program is attached');
  await connectFrom(cg);
  t.equal(seen.get(LOOPBACK)?.readUInt32LE(), 2, 'v2 program runs');
  t.equal(counts.get(u32(0))?.readBigUInt64LE(), 2n, 'counter kept across the reload');

  const pinned = describePinned(root);
  t.match(pinned.links, [
    { linkId: a2.linkId, progId: a2.progId, program: 'kl_connect4', attachType: 'cgroup_inet4_connect' },
    { program: 'kl_sendmsg4' },
  ]);
  t.same(pinned.maps.map((m) => m.name), ['kl_test_counts', 'kl_test_seen']);

  // Cleanup: links detached, pins gone, directories gone.
  const report = cleanup(root, { loaded: current });
  current = undefined;
  t.equal(report.links.length, 2);
  t.equal(report.maps.length, 2);
  t.same(report.errors, []);
  t.equal(existsSync(root), false, 'bpf root removed');
  t.same(attachedIds(cg, bpf.AttachType.CGROUP_INET4_CONNECT), [], 'nothing attached at connect4');
  t.same(attachedIds(cg, bpf.AttachType.CGROUP_UDP4_SENDMSG), [], 'nothing attached at sendmsg4');
  const shown = await execa('bpftool', ['-j', 'cgroup', 'show', cg], { reject: false });
  t.same(JSON.parse(shown.stdout || '[]'), [], 'bpftool cgroup show: empty');
});

t.test('an incompatible pinned map fails clearly, or is replaced when asked', { skip }, async (t) => {
  const fs = await scratchBpffs(t);
  const root = join(fs, 'kinglet');
  const v1 = await build(t, { COUNTS_MAX: 4 });
  const bigger = await build(t, { COUNTS_MAX: 8 });
  t.teardown(() => cleanup(root));

  const first = load({ object: v1, bpfRoot: root });
  const oldId = first.describe().maps.find((m) => m.name === 'kl_test_counts')!.id;
  first.close();

  const err = (() => {
    try {
      load({ object: bigger, bpfRoot: root }).close();
    } catch (e) {
      return e;
    }
  })() as LoaderError;
  t.ok(err instanceof LoaderError, 'LoaderError');
  t.equal(err.code, 'INCOMPATIBLE_MAP');
  t.match(err.message, /kl_test_counts.*max_entries 4 != 8/);

  // The max_entries override makes the same object compatible again.
  const same = load({ object: bigger, bpfRoot: root, maxEntries: { kl_test_counts: 4 } });
  t.match(same.describe().maps.find((m) => m.name === 'kl_test_counts'), { action: 'reused', id: oldId });
  same.close();

  const replaced = load({ object: bigger, bpfRoot: root, replaceIncompatible: true });
  const st = replaced.describe().maps.find((m) => m.name === 'kl_test_counts')!;
  replaced.close();
  t.match(st, { action: 'replaced', maxEntries: 8, reason: /max_entries 4 != 8/ });
  t.not(st.id, oldId, 'a new map');
  const m = openPinnedMap(join(root, 'maps', 'kl_test_counts'));
  t.equal(m.info.maxEntries, 8, 'the pin now holds the new map');
  t.equal(m.info.id, st.id);
  m.close();
  t.equal(existsSync(join(root, 'maps', 'kl_test_counts__new')), false, 'no temp pin left');
});

t.test('pins of an older layout of our maps are removed once the new object is in place', { skip }, async (t) => {
  const fs = await scratchBpffs(t);
  const root = join(fs, 'kinglet');
  const cg = await testCgroup(t);
  const obj = await build(t, { VERSION: 1, WITH_LAYOUT: 1 });
  let current: Loaded | undefined;
  t.teardown(() => {
    current?.close();
    cleanup(root);
  });
  // What an older agent left: the same map in layout v1, and a map of another object.
  current = load({ object: obj, bpfRoot: root, cgroup: cg });
  current.close();
  current = undefined;
  for (const name of ['kl_test_layout_v1', 'kl_other_v1']) {
    const fd = bpf.mapCreate(bpf.MapType.ARRAY, name, 4, 4, 1);
    bpf.objPin(fd, join(root, 'maps', name));
    bpf.closeFd(fd);
  }
  current = load({ object: obj, bpfRoot: root, cgroup: cg });
  t.same(current.describe().removedPins, ['kl_test_layout_v1']);
  t.same(readdirSync(join(root, 'maps')).sort(), ['kl_other_v1', 'kl_test_counts', 'kl_test_layout_v2', 'kl_test_seen']);
  current.close();
  current = load({ object: obj, bpfRoot: root, cgroup: cg });
  t.same(current.describe().removedPins, [], 'nothing left to sweep on the next load');
});

t.test('fillFirst: on new maps the old programs keep running until attach(); a plain restart swaps at once', { skip }, async (t) => {
  const fs = await scratchBpffs(t);
  const root = join(fs, 'kinglet');
  const cg = await testCgroup(t);
  const v1 = await build(t, { VERSION: 1, WITH_LAYOUT: 1 });
  const v2 = await build(t, { VERSION: 2, WITH_LAYOUT: 1 });
  let current: Loaded | undefined;
  t.teardown(() => {
    current?.close();
    cleanup(root);
  });
  current = load({ object: v1, bpfRoot: root, cgroup: cg, fillFirst: true });
  t.equal(current.attachPending, true, 'a first load (maps created) waits for attach()');
  t.same(current.describe().attachments, []);
  t.same(attachedIds(cg, bpf.AttachType.CGROUP_INET4_CONNECT), [], 'nothing attached before attach()');
  current.attach();
  const oldProg = current.describe().attachments[0]!.progId;
  t.same(attachedIds(cg, bpf.AttachType.CGROUP_INET4_CONNECT), [oldProg]);
  current.close();
  current = undefined;
  // The old agent's map under an older layout name: its program still reads it.
  const mdir = join(root, 'maps');
  renameSync(join(mdir, 'kl_test_layout_v2'), join(mdir, 'kl_test_layout_v1'));

  const oldSeen = openPinnedMap(join(mdir, 'kl_test_seen'));
  t.teardown(() => oldSeen.close());
  current = load({ object: v2, bpfRoot: root, cgroup: cg, fillFirst: true, renewTogether: ['kl_test_layout_v2', 'kl_test_seen'] });
  t.equal(current.attachPending, true, 'a new map: attach waits');
  const maps = current.describe().maps;
  t.match(maps.find((m) => m.name === 'kl_test_layout_v2'), { action: 'created' });
  t.match(maps.find((m) => m.name === 'kl_test_seen'), { action: 'replaced', reason: /renewed with kl_test_layout_v2/ }, 'its partner is made anew');
  t.not(maps.find((m) => m.name === 'kl_test_seen')!.id, oldSeen.info.id);
  t.match(maps.find((m) => m.name === 'kl_test_counts'), { action: 'reused' }, 'a map outside the set is adopted');
  t.same(attachedIds(cg, bpf.AttachType.CGROUP_INET4_CONNECT), [oldProg], 'the old program still serves');
  t.ok(existsSync(join(mdir, 'kl_test_layout_v1')), 'the old pin stays until the switch');
  oldSeen.delete(LOOPBACK);
  await connectFrom(cg);
  t.equal(oldSeen.get(LOOPBACK)?.readUInt32LE(), 1, 'meanwhile the old program writes its own (old) map');
  t.equal(new bpf.BpfMap(current.maps.kl_test_seen!).get(LOOPBACK), undefined, 'and not the new one');
  const layout = new bpf.BpfMap(current.maps.kl_test_layout_v2!);
  layout.set(u32(0), u32(7)); // fill
  current.attach();
  current.attach(); // idempotent
  t.equal(current.attachPending, false);
  const d = current.describe();
  t.match(d.attachments, [{ program: 'kl_connect4', action: 'adopted' }, { program: 'kl_sendmsg4', action: 'adopted' }]);
  t.same(attachedIds(cg, bpf.AttachType.CGROUP_INET4_CONNECT), [d.attachments[0]!.progId], 'the new program replaced the old one');
  t.not(d.attachments[0]!.progId, oldProg);
  t.same(d.removedPins, ['kl_test_layout_v1'], 'then the old pin is swept');
  await connectFrom(cg);
  const seen = openPinnedMap(join(mdir, 'kl_test_seen'));
  t.teardown(() => seen.close());
  t.equal(seen.get(LOOPBACK)?.readUInt32LE(), 2, 'v2 runs');
  current.close();
  current = undefined;

  current = load({ object: v1, bpfRoot: root, cgroup: cg, fillFirst: true });
  t.equal(current.attachPending, false, 'a plain restart (every map and link adopted) swaps at once');
  t.match(current.describe().attachments, [{ action: 'adopted' }, { action: 'adopted' }]);
  current.close();
  current = undefined;

  // Another loader's stale pins are left to it.
  const fd = bpf.mapCreate(bpf.MapType.ARRAY, 'kl_test_layout_v1', 4, 4, 1);
  bpf.objPin(fd, join(mdir, 'kl_test_layout_v1'));
  bpf.closeFd(fd);
  current = load({ object: v1, bpfRoot: root, keepStalePins: ['kl_test_layout_v2'] });
  t.same(current.describe().removedPins, []);
  t.ok(existsSync(join(mdir, 'kl_test_layout_v1')), 'kept for the loader that owns the map');
});

t.test('errors: not a bpffs, missing program, verifier-free bad object', { skip }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kl-notbpffs-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const obj = await build(t, {});
  t.throws(() => load({ object: obj, bpfRoot: dir }), { name: 'LoaderError', code: 'NOT_BPFFS', message: /not on a bpf filesystem/ });

  const fs = await scratchBpffs(t);
  const root = join(fs, 'kinglet');
  const cg = await testCgroup(t);
  t.teardown(() => cleanup(root));
  t.throws(() => load({ object: obj, bpfRoot: root, cgroup: cg, attach: ['nope'] }), { code: 'NO_PROGRAM', message: /kl_connect4/ });
  t.same(readdirSync(join(root, 'links')), [], 'no link left behind');
  t.throws(() => load({ object: join(dir, 'missing.bpf.o'), bpfRoot: root }), { name: 'BpfError', code: 'ENOENT' });

  // Attach only one program; the other is loaded but not attached.
  const l = load({ object: obj, bpfRoot: root, cgroup: cg, attach: ['kl_sendmsg4'] });
  t.same(Object.keys(l.links), ['kl_sendmsg4']);
  t.same(attachedIds(cg, bpf.AttachType.CGROUP_INET4_CONNECT), []);
  t.equal(attachedIds(cg, bpf.AttachType.CGROUP_UDP4_SENDMSG).length, 1);
  cleanup(root, { loaded: l });
  t.same(attachedIds(cg, bpf.AttachType.CGROUP_UDP4_SENDMSG), []);
});
