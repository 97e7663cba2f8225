// Which part of an array map's unused tail each drift check reads: the
// windows cover the tail once every `rounds` checks, in order, and follow
// the high-water mark when it moves.
import t from 'tap';
import { tailWindow, TAIL_ROUNDS } from '../../../../agent/datapath/shadow-map.ts';

/** The windows of `checks` checks with a fixed high-water mark. */
function walk(high: number, max: number, rounds: number, checks: number): { from: number; count: number }[] {
  const out = [];
  let at = 0;
  for (let i = 0; i < checks; i++) {
    const w = tailWindow(high, max, at, rounds);
    out.push(w);
    at = w.from + w.count;
  }
  return out;
}

t.test('the tail is covered once every `rounds` checks, then again from the high-water mark', async (t) => {
  t.same(walk(100, 1000, 4, 5), [
    { from: 100, count: 225 }, { from: 325, count: 225 }, { from: 550, count: 225 }, { from: 775, count: 225 }, { from: 100, count: 225 },
  ]);
  // Not divisible: the last window is shorter, and nothing past the end is read.
  t.same(walk(0, 10, 4, 5), [{ from: 0, count: 3 }, { from: 3, count: 3 }, { from: 6, count: 3 }, { from: 9, count: 1 }, { from: 0, count: 3 }]);
  for (const [high, max] of [[1201, 262144], [0, 262144], [262143, 262144], [5, 7]] as const) {
    const ws = walk(high, max, TAIL_ROUNDS, TAIL_ROUNDS);
    const read = new Set<number>();
    for (const w of ws) for (let i = w.from; i < w.from + w.count; i++) read.add(i);
    t.equal(read.size, max - high, `high ${high}, max ${max}: every tail index read once in ${TAIL_ROUNDS} checks`);
    t.ok(ws.every((w) => w.from >= high && w.from + w.count <= max), 'never below the mark or past the end');
  }
});

t.test('no tail, and a moving high-water mark', async (t) => {
  t.same(tailWindow(1000, 1000, 0, 4), { from: 1000, count: 0 }, 'a full array has no tail');
  t.same(tailWindow(2000, 1000, 0, 4), { from: 1000, count: 0 }, 'a mark past the end: nothing');
  t.same(tailWindow(600, 1000, 550, 4), { from: 600, count: 100 }, 'the mark rose past the cursor: start over at the mark');
  t.same(tailWindow(100, 1000, 900, 4), { from: 900, count: 100 }, 'the mark fell: go on where the last window ended');
  t.same(tailWindow(100, 1000, 1000, 4), { from: 100, count: 225 }, 'the end reached: wrap to the mark');
});
