// ShadowMap.drift() on real kernel maps (created by the test, never pinned,
// no program): entries deleted, changed and added behind the copy's back
// are found with the right counts, matching entries are not reported, and
// the scan writes nothing. Hash and array maps walk with batch lookups over
// several chunks; an LPM trie (no batch lookup in the kernel) walks key by key.
import t from 'tap';
import { rootSkipReason } from '../../../lib/sandbox.ts';
import { BpfMap, BPF_F_NO_PREALLOC, MapType } from '../../../../agent/datapath/libbpf.ts';
import { ShadowMap, TAIL_ROUNDS } from '../../../../agent/datapath/shadow-map.ts';
import { repair } from '../../../../agent/datapath/reconcile.ts';
import { toHex } from '../../../../agent/datapath/lb-layout.ts';

const skip = rootSkipReason();
const N = 3000; // more than one scan chunk

function key(i: number, size: number): Uint8Array {
  const k = new Uint8Array(size);
  new DataView(k.buffer).setUint32(size === 8 ? 4 : 0, i, size === 8 ? false : true);
  if (size === 8) new DataView(k.buffer).setUint32(0, 32, true); // LPM trie: prefix length 32
  return k;
}

function value(i: number, v = 1): Uint8Array {
  const b = new Uint8Array(16);
  new DataView(b.buffer).setUint32(0, i, true);
  new DataView(b.buffer).setUint32(8, v, true);
  return b;
}

/** Count the writes a BpfMap gets (set and delete). */
function counted(map: BpfMap): { writes: number } {
  const c = { writes: 0 };
  const set = map.set.bind(map), del = map.delete.bind(map);
  map.set = (k, v, f) => (c.writes++, set(k, v, f));
  map.delete = (k) => (c.writes++, del(k));
  return c;
}

const kinds = [
  { name: 'hash (batch lookup)', type: MapType.HASH, keySize: 4, flags: 0, first: 0 },
  { name: 'array (batch lookup, zeros are no entry)', type: MapType.ARRAY, keySize: 4, flags: 0, first: 1 },
  { name: 'LPM trie (key by key)', type: MapType.LPM_TRIE, keySize: 8, flags: BPF_F_NO_PREALLOC, first: 0 },
];

for (const kind of kinds) {
  t.test(`ShadowMap.drift on a ${kind.name}`, { skip }, async (t) => {
    const map = BpfMap.create(kind.type, 'kl_drift', kind.keySize, 16, N + 100, { flags: kind.flags });
    t.teardown(() => map.close());
    const shadow = new ShadowMap(map);
    const entries = [];
    for (let i = kind.first; i < kind.first + N; i++) entries.push({ key: key(i, kind.keySize), value: value(i) });
    shadow.updateBatch(entries);
    const writes = counted(map);

    const clean = shadow.drift();
    t.same({ missing: clean.missing.length, changed: clean.changed.length, extra: clean.extra.length }, { missing: 0, changed: 0, extra: 0 }, 'no drift');
    // An array: the used range (index 0 up to the copy's highest), and the first window of the rest.
    const arrayScan = kind.first + N + Math.ceil((N + 100 - kind.first - N) / TAIL_ROUNDS);
    t.equal(clean.scanned, kind.type === MapType.ARRAY ? arrayScan : N, 'every entry in use read');
    t.equal(writes.writes, 0, 'the scan writes nothing');

    // Behind the copy's back (another handle on the same map): one entry
    // deleted, two changed, one added.
    const other = new BpfMap(map.fd, map.info);
    const gone = key(kind.first + 7, kind.keySize);
    if (kind.type === MapType.ARRAY) other.set(gone, new Uint8Array(16));
    else other.delete(gone);
    other.set(key(kind.first + 1500, kind.keySize), value(kind.first + 1500, 9));
    other.set(key(kind.first + N - 1, kind.keySize), value(kind.first + N - 1, 9));
    // (An array: at an index below the high-water mark the copy does not hold; strays above it are the next test's.)
    const added = key(kind.type === MapType.ARRAY ? 0 : kind.first + N + 50, kind.keySize);
    other.set(added, value(N + 50));

    const d = shadow.drift();
    t.same(d.missing.map((e) => toHex(e.key)), [toHex(gone)], 'the deleted entry is missing');
    t.same(d.missing.map((e) => toHex(e.value)), [toHex(value(kind.first + 7))], 'with the copy\'s value');
    t.same(d.changed.map((e) => toHex(e.key)).sort(), [toHex(key(kind.first + 1500, kind.keySize)), toHex(key(kind.first + N - 1, kind.keySize))].sort(), 'both changed entries');
    t.same(d.changed.map((e) => toHex(e.value)).sort(), [toHex(value(kind.first + 1500)), toHex(value(kind.first + N - 1))].sort(), 'with the copy\'s values');
    t.same(d.extra.map(toHex), [toHex(added)], 'the added key');
    t.equal(writes.writes, 0, 'finding drift writes nothing');

    const r = repair([{ name: 'm', map: shadow, ...d }]);
    t.same({ added: r.added, updated: r.updated, deleted: r.deleted }, { added: 1, updated: 2, deleted: 1 });
    t.equal(writes.writes, 4, 'one write per drifted entry');
    const back = shadow.drift();
    t.same({ missing: back.missing.length, changed: back.changed.length, extra: back.extra.length }, { missing: 0, changed: 0, extra: 0 }, 'repaired');
    t.same(map.get(gone) && toHex(map.get(gone)!), toHex(value(kind.first + 7)));
    if (kind.type === MapType.ARRAY) t.equal(toHex(map.get(added)!), toHex(new Uint8Array(16)), 'the added index is zeros again');
    else t.equal(map.get(added), undefined, 'the added key is gone');
    t.equal(shadow.size, N);
  });
}

t.test('ShadowMap.drift: an emptied map and a copy written packed', { skip }, async (t) => {
  const map = BpfMap.create(MapType.HASH, 'kl_drift2', 4, 16, 64);
  t.teardown(() => map.close());
  const shadow = new ShadowMap(map);
  const keys = new Uint8Array(10 * 4), values = new Uint8Array(10 * 16);
  for (let i = 0; i < 10; i++) {
    keys.set(key(i, 4), i * 4);
    values.set(value(i), i * 16);
  }
  shadow.writePacked(keys, values, 10);
  t.equal(shadow.drift().missing.length, 0, 'packed entries (not indexed yet) compare equal');
  for (let i = 0; i < 10; i++) map.delete(key(i, 4));
  const d = shadow.drift();
  t.equal(d.missing.length, 10, 'every entry missing');
  t.equal(d.scanned, 0);
  repair([{ name: 'm', map: shadow, ...d }]);
  t.equal(toHex(map.get(key(9, 4))!), toHex(value(9)));
});

t.test('ShadowMap.drift on an array reads the used range each time and the rest a window at a time', { skip }, async (t) => {
  const MAX = 10_000, USED = 1000;
  const map = BpfMap.create(MapType.ARRAY, 'kl_drift3', 4, 16, MAX);
  t.teardown(() => map.close());
  const shadow = new ShadowMap(map);
  shadow.updateBatch(Array.from({ length: USED }, (_, i) => ({ key: key(i + 1, 4), value: value(i + 1) })));
  const window = Math.ceil((MAX - USED - 1) / TAIL_ROUNDS);
  const scans: number[] = [];
  for (let i = 0; i < TAIL_ROUNDS; i++) scans.push(shadow.drift().scanned);
  t.ok(scans.every((n) => n <= USED + 1 + window), `each check reads the used range and one window: ${scans.join(', ')} of ${MAX}`);
  t.equal(scans.reduce((a, b) => a + b, 0), TAIL_ROUNDS * (USED + 1) + (MAX - USED - 1), 'over TAIL_ROUNDS checks every index of the tail is read once');

  // Strays written behind the copy's back at the top of the array and just above the used range.
  const other = new BpfMap(map.fd, map.info);
  const strays = [key(MAX - 1, 4), key(USED + 1, 4)];
  for (const k of strays) other.set(k, value(7, 7));
  const found: string[] = [];
  let checks = 0;
  while (found.length < strays.length && checks < TAIL_ROUNDS) {
    checks++;
    const d = shadow.drift();
    t.same([d.missing.length, d.changed.length], [0, 0]);
    found.push(...d.extra.map(toHex));
    repair([{ name: 'm', map: shadow, ...d }]);
  }
  t.same(found.sort(), strays.map(toHex).sort(), `both strays found and repaired within ${checks} checks (at most ${TAIL_ROUNDS})`);
  for (const k of strays) t.equal(toHex(map.get(k)!), toHex(new Uint8Array(16)), 'zeros again');

  // A copy entry above every other: the used range grows with it; deleting it shrinks it back.
  shadow.update(key(5000, 4), value(5000));
  other.set(key(5000, 4), new Uint8Array(16));
  const d = shadow.drift();
  t.same(d.missing.map((e) => toHex(e.key)), [toHex(key(5000, 4))], 'an entry at the new top is compared every time');
  repair([{ name: 'm', map: shadow, ...d }]);
  shadow.delete(key(5000, 4));
  shadow.drift();
  t.ok(shadow.drift().scanned <= USED + 1 + window, 'after the delete the used range is back to what the copy holds');
});
