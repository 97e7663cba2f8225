// ShadowMap.drift() on real kernel maps (created by the test, never pinned,
// no program): entries deleted, changed and added behind the copy's back
// are found with the right counts, matching entries are not reported, and
// the scan writes nothing. Hash and array maps walk with batch lookups over
// several chunks; an LPM trie (no batch lookup in the kernel) walks key by key.
import t from 'tap';
import { rootSkipReason } from '../../../lib/sandbox.ts';
import { BpfMap, BPF_F_NO_PREALLOC, MapType } from '../../../../agent/datapath/libbpf.ts';
import { ShadowMap } from '../../../../agent/datapath/shadow-map.ts';
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
    t.equal(clean.scanned, kind.type === MapType.ARRAY ? N + 100 : N, 'every kernel entry read');
    t.equal(writes.writes, 0, 'the scan writes nothing');

    // Behind the copy's back (another handle on the same map): one entry
    // deleted, two changed, one added.
    const other = new BpfMap(map.fd, map.info);
    const gone = key(kind.first + 7, kind.keySize);
    if (kind.type === MapType.ARRAY) other.set(gone, new Uint8Array(16));
    else other.delete(gone);
    other.set(key(kind.first + 1500, kind.keySize), value(kind.first + 1500, 9));
    other.set(key(kind.first + N - 1, kind.keySize), value(kind.first + N - 1, 9));
    const added = key(kind.first + N + 50, kind.keySize);
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
