// SlotRanges: the allocator of each frontend's contiguous range of backend
// slots. Property test against a per-index owner map: ranges never overlap,
// the free list is exactly the rest (sorted, coalesced), a grown frontend's
// old range stays allocated until it is freed, and releasing everything
// leaves one free range again.
import t, { type Test } from 'tap';
import { SlotRanges, type SlotRange } from '../../../../agent/datapath/lb-slots.ts';
import { prng } from '../../../lib/prng.ts';

/** Every index 1..capacity-1 is either in exactly one live range or in the free list; the free list is sorted and coalesced. */
function checkPartition(t: Test, s: SlotRanges, live: Map<number, SlotRange>): boolean {
  // NONE: not seen yet; FREE: in the free list; else the live range's id.
  const NONE = -1e9, FREE = -1e9 + 1;
  const owner = new Float64Array(s.capacity).fill(NONE);
  let used = 0;
  for (const [id, r] of live) {
    if (r.length === 0) continue;
    used += r.length;
    for (let i = r.start; i < r.start + r.length; i++) {
      if (i < 1 || i >= s.capacity) return t.fail(`range of ${id} outside the array: ${JSON.stringify(r)}`);
      if (owner[i] !== NONE) return t.fail(`index ${i} held by ${owner[i]} and ${id}`);
      owner[i] = id;
    }
  }
  if (s.used !== used) return t.fail(`used ${s.used}, live ranges hold ${used}`);
  const free = s.freeRanges();
  for (let k = 0; k < free.length; k++) {
    const f = free[k]!;
    if (f.length <= 0) return t.fail(`empty free range ${JSON.stringify(f)}`);
    if (k > 0 && free[k - 1]!.start + free[k - 1]!.length >= f.start) return t.fail(`free list not sorted and coalesced: ${JSON.stringify(free)}`);
    for (let i = f.start; i < f.start + f.length; i++) {
      if (owner[i] !== NONE) return t.fail(`index ${i} both free and held by ${owner[i]}`);
      owner[i] = FREE;
    }
  }
  for (let i = 1; i < s.capacity; i++) if (owner[i] === NONE) return t.fail(`index ${i} neither free nor held`);
  return true;
}

t.test('random create / grow / shrink / delete keeps ranges disjoint and the free list exact', async (t) => {
  for (let seed = 1; seed <= 60; seed++) {
    const rnd = prng(seed);
    const cap = 20 + Math.floor(rnd() * 200);
    const s = new SlotRanges(cap);
    const live = new Map<number, SlotRange>();
    let nextId = 0;
    let ok = true;
    for (let step = 0; step < 400 && ok; step++) {
      const ids = [...live.keys()];
      const op = rnd();
      if (op < 0.35 || ids.length === 0) {
        const n = Math.floor(rnd() * 12);
        const start = s.alloc(n);
        if (start === undefined) {
          // Only when no free range is that long.
          ok = t.ok(s.freeRanges().every((f) => f.length < n), `seed ${seed}: alloc(${n}) failed with room`);
          continue;
        }
        live.set(nextId++, { start, length: n });
      } else {
        const id = ids[Math.floor(rnd() * ids.length)]!;
        const r = live.get(id)!;
        if (op < 0.6) {
          const m = r.length + 1 + Math.floor(rnd() * 8);
          if (s.extend(r.start, r.length, m)) {
            live.set(id, { start: r.start, length: m });
          } else {
            const start = s.alloc(m);
            if (start === undefined) continue;
            // Before the switch both ranges are held: the new one never overlaps the old
            // (the old one is checked under a negative id).
            live.set(-1 - id, r);
            live.set(id, { start, length: m });
            ok = checkPartition(t, s, live);
            if (!ok) break;
            live.delete(-1 - id);
            s.free(r.start, r.length);
          }
        } else if (op < 0.8) {
          const m = Math.floor(rnd() * (r.length + 1));
          s.shrink(r.start, r.length, m);
          live.set(id, { start: m === 0 ? 0 : r.start, length: m });
        } else {
          s.free(r.start, r.length);
          live.delete(id);
        }
      }
      ok = checkPartition(t, s, live);
    }
    for (const r of live.values()) s.free(r.start, r.length);
    live.clear();
    if (ok) ok = checkPartition(t, s, live);
    t.same(s.freeRanges(), [{ start: 1, length: cap - 1 }], `seed ${seed}: everything freed is one range again`);
    t.equal(s.used, 0);
    if (!ok) break;
  }
});

t.test('first fit takes the lowest hole long enough; neighbours coalesce on free', async (t) => {
  const s = new SlotRanges(101);
  const a = s.alloc(10)!, b = s.alloc(5)!, c = s.alloc(10)!;
  t.same([a, b, c], [1, 11, 16]);
  s.free(a, 10);
  t.equal(s.alloc(11), 26, 'the hole of 10 is too short for 11');
  t.equal(s.alloc(4), 1, 'a short range goes into the first hole');
  s.free(b, 5);
  t.same(s.freeRanges(), [{ start: 5, length: 11 }, { start: 37, length: 64 }], 'the freed range joins the rest of the hole');
  s.free(1, 4);
  s.free(c, 10);
  s.free(26, 11);
  t.same(s.freeRanges(), [{ start: 1, length: 100 }]);
});

t.test('extend in place only into a free neighbour; shrink frees the tail', async (t) => {
  const s = new SlotRanges(41);
  const a = s.alloc(5)!, b = s.alloc(5)!;
  t.notOk(s.extend(a, 5, 6), 'the next index belongs to b');
  t.ok(s.extend(b, 5, 9), 'b has free space after it');
  t.equal(s.used, 14);
  s.shrink(b, 9, 3);
  t.same(s.freeRanges(), [{ start: 9, length: 32 }]);
  t.notOk(s.extend(b, 3, 40), 'not past the end of the array');
  t.notOk(s.extend(0, 0, 3), 'an empty frontend has no range to extend');
  t.equal(s.alloc(0), 0, 'no slots: base 0, nothing allocated');
});

t.test('full, double frees and conflicting claims are errors that name the slots', async (t) => {
  const s = new SlotRanges(11);
  t.equal(s.alloc(10), 1);
  t.equal(s.alloc(1), undefined, 'full');
  s.free(3, 2);
  t.throws(() => s.free(4, 1), /slots 4\.\.4 are already free/);
  t.throws(() => s.free(2, 2), /already free/, 'overlapping a free range');
  t.throws(() => s.reserve(2, 2), /slots 2\.\.3 are not free/);
  s.reserve(3, 2);
  t.throws(() => s.free(9, 5), /outside 1\.\.10/);
  t.throws(() => s.alloc(-1), /non-negative integer/);
  t.throws(() => s.alloc(1.5), /non-negative integer/);
  t.throws(() => new SlotRanges(0), /positive integer/);
});

t.test('rebuilt from pinned ranges: reserve then allocate around them', async (t) => {
  const s = new SlotRanges(31);
  s.reserve(11, 5);
  s.reserve(1, 3);
  t.equal(s.alloc(7), 4, 'the hole between the reserved ranges fits 7');
  t.equal(s.alloc(2), 16);
  t.equal(s.used, 17);
});
