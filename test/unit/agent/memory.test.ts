import t from 'tap';
import { HeapCompactor, fullGc, tuneMalloc } from '../../../agent/memory.ts';

const MB = 1024 * 1024;
const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A heap whose "in use" figure the test sets; gc() drops it to `live`. */
function fakeHeap(used: number, live: number) {
  const h = { used, live, gcs: 0 };
  return {
    h,
    gc: () => {
      h.gcs++;
      h.used = h.live;
    },
    heapUsed: () => h.used,
  };
}

t.test('the first check after start always collects, and records the live size', async (t) => {
  const f = fakeHeap(146 * MB, 97 * MB);
  const seen: number[] = [];
  const c = new HeapCompactor({ gc: f.gc, heapUsed: f.heapUsed, onCollect: (i) => seen.push(i.beforeBytes, i.afterBytes) });
  t.equal(c.check(), true);
  t.equal(f.h.gcs, 1);
  t.same(seen, [146 * MB, 97 * MB]);
  t.equal(c.status().liveBytes, 97 * MB);
  t.equal(c.status().collections, 1);
});

t.test('later checks collect only when the heap grew well beyond the live size', async (t) => {
  let now = 0;
  const f = fakeHeap(100 * MB, 80 * MB);
  const c = new HeapCompactor({ gc: f.gc, heapUsed: f.heapUsed, now: () => now, minIntervalMs: 1000 });
  c.check(); // live 80 MB
  now += 5000;
  f.h.used = 95 * MB; // 1.19x: small growth
  t.equal(c.check(), false, 'a little garbage is left to V8');
  f.h.used = 110 * MB; // 1.375x and +30 MB
  t.equal(c.check(), true, 'a burst of garbage is collected');
  t.equal(f.h.gcs, 2);
  // Small heaps: growth in ratio but not in bytes.
  const g = fakeHeap(10 * MB, 4 * MB);
  const d = new HeapCompactor({ gc: g.gc, heapUsed: g.heapUsed, now: () => now, minIntervalMs: 0 });
  d.check();
  g.h.used = 12 * MB;
  t.equal(d.check(), false, '3x of 4 MB is less than 16 MB: not worth a pause');
  c.stop();
  d.stop();
});

t.test('never more often than minIntervalMs', async (t) => {
  let now = 0;
  const f = fakeHeap(200 * MB, 50 * MB);
  const c = new HeapCompactor({ gc: f.gc, heapUsed: f.heapUsed, now: () => now, minIntervalMs: 30_000 });
  c.check();
  f.h.used = 200 * MB;
  now += 1000;
  t.equal(c.check(), false, 'too soon after the last collection');
  now += 30_000;
  t.equal(c.check(), true);
  c.stop();
});

/** Poll until `pred` holds (timers are real; only the compactor's clock is fake). */
async function eventually(pred: () => boolean): Promise<boolean> {
  for (let i = 0; i < 200 && !pred(); i++) await tick(10);
  return pred();
}

t.test('afterWork waits for a quiet moment, and stop cancels it', async (t) => {
  let now = 0;
  const f = fakeHeap(200 * MB, 50 * MB);
  const c = new HeapCompactor({ gc: f.gc, heapUsed: f.heapUsed, idleMs: 30, firstIdleMs: 30, now: () => now });
  c.afterWork();
  now = 25;
  c.afterWork(); // more work: the quiet time starts again
  now = 50; // quiet for 25 ms of the 30
  await tick(80); // the timer has fired at least once by now
  t.equal(f.h.gcs, 0, 'not while work is still coming in');
  now = 100;
  t.ok(await eventually(() => f.h.gcs === 1), 'once it has been quiet for idleMs');
  f.h.used = 200 * MB;
  const d = new HeapCompactor({ gc: f.gc, heapUsed: f.heapUsed, idleMs: 10, firstIdleMs: 10 });
  d.afterWork();
  d.stop();
  await tick(50);
  t.equal(f.h.gcs, 1, 'nothing after stop');
  c.stop();
});

t.test('the first collection comes right after the first work, later ones after idleMs', async (t) => {
  let now = 0;
  const f = fakeHeap(200 * MB, 50 * MB);
  const c = new HeapCompactor({ gc: f.gc, heapUsed: f.heapUsed, idleMs: 40, minIntervalMs: 0, now: () => now });
  c.afterWork();
  t.ok(await eventually(() => f.h.gcs === 1), 'the initial sync is collected on the next tick, with no quiet time');
  f.h.used = 200 * MB;
  c.afterWork();
  now = 30;
  await tick(80);
  t.equal(f.h.gcs, 1, 'later work waits for a quiet moment');
  now = 50;
  t.ok(await eventually(() => f.h.gcs === 2));
  c.stop();
});

t.test('beforeFirstWork collects once, and the first check after work still collects', async (t) => {
  let now = 0;
  const f = fakeHeap(60 * MB, 40 * MB);
  let quick = 0;
  const c = new HeapCompactor({ gc: f.gc, quickGc: () => { quick++; f.gc(); }, heapUsed: f.heapUsed, now: () => now, minIntervalMs: 30_000 });
  c.beforeFirstWork();
  t.equal(quick, 1, 'the quick kind');
  t.equal(f.h.gcs, 1);
  c.beforeFirstWork();
  t.equal(f.h.gcs, 1, 'only once');
  f.h.live = 90 * MB;
  f.h.used = 100 * MB; // 1.1x of 90: not "grown", but this is the first check after work
  now += 10;
  t.equal(c.check(), true, 'not held back by minIntervalMs nor by the growth rule');
  t.equal(c.status().collections, 2);
  c.stop();
});

t.test('fullGc works without --expose-gc and frees unreachable memory', async (t) => {
  t.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined', 'this test runs without --expose-gc');
  const gc = fullGc();
  let junk: number[][] | undefined = Array.from({ length: 200 }, () => new Array(10_000).fill(1.5));
  const ref = new WeakRef(junk);
  junk = undefined;
  await tick(0);
  gc();
  t.equal(ref.deref(), undefined, 'the garbage is gone after one call');
  junk = Array.from({ length: 200 }, () => new Array(10_000).fill(2.5));
  const ref2 = new WeakRef(junk);
  junk = undefined;
  await tick(0);
  fullGc('regular')();
  t.equal(ref2.deref(), undefined, 'the regular kind frees it too');
});

t.test("tuneMalloc sets glibc's thresholds (this host runs glibc), and says why not elsewhere", async (t) => {
  t.equal(tuneMalloc(), undefined, 'mallopt accepted both thresholds');
  t.equal(tuneMalloc(), undefined, 'setting them again is fine');
});
