import t from 'tap';
import { Controller } from '../../../agent/controller.ts';

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));

t.test('a burst of triggers runs one reconcile, never two at once', async (t) => {
  let running = 0, maxRunning = 0, runs = 0;
  const c = new Controller({
    name: 'lb',
    debounceMs: 5,
    reconcile: async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      runs++;
      await tick(20);
      running--;
    },
  });
  c.start();
  for (let i = 0; i < 50; i++) c.trigger();
  await tick(10);
  for (let i = 0; i < 50; i++) c.trigger(); // arrives while the first run is going
  await c.idle();
  t.equal(maxRunning, 1);
  t.equal(runs, 2, 'one run for the burst, one for what came during it');
  t.equal(c.status().runs, 2);
  await c.stop();
});

t.test('nothing runs before the source is ready', async (t) => {
  let ready = false, runs = 0;
  const c = new Controller({ name: 'lb', debounceMs: 1, ready: () => ready, reconcile: async () => void runs++ });
  c.start();
  c.trigger();
  await tick(20);
  t.equal(runs, 0, 'no reconcile (and so no deletion) before the first full list');
  ready = true;
  c.trigger();
  await c.idle();
  t.equal(runs, 1);
  await c.stop();
});

t.test('a failure is recorded and retried with backoff until it succeeds', async (t) => {
  let n = 0;
  const errors: string[] = [];
  const c = new Controller({
    name: 'lb',
    debounceMs: 1,
    backoffMinMs: 60,
    reconcile: async () => {
      if (++n < 3) throw new Error(`map full (${n})`);
    },
    onError: (e) => errors.push((e as Error).message),
  });
  c.start();
  await tick(10);
  t.equal(c.status().lastError, 'map full (1)', 'last error kept for status');
  await c.idle();
  t.equal(n, 3);
  t.same(errors, ['map full (1)', 'map full (2)']);
  const s = c.status();
  t.equal(s.failures, 2);
  t.equal(s.consecutiveFailures, 0);
  t.notOk(s.lastError, 'cleared after success');
  await c.stop();
});

t.test('periodic resync runs without events; stop leaves no timer', async (t) => {
  let runs = 0;
  const c = new Controller({ name: 'lb', debounceMs: 1, resyncMs: 10, reconcile: async () => void runs++ });
  c.start();
  await tick(45);
  t.ok(runs >= 3, `resync ran ${runs} times`);
  await c.stop();
  const after = runs;
  await tick(30);
  t.equal(runs, after, 'no run after stop');
});
