import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  acquireAbstractLock,
  allocate,
  collect,
  emptyState,
  findByOwner,
  freeCount,
  ipToNum,
  IpamError,
  IpamStore,
  numToIp,
  ownerKey,
  parseRange,
  release,
  type RangeState,
} from '../../../../agent/cni/ipam.ts';
import { prng } from '../../../lib/prng.ts';

const WORKER = fileURLToPath(new URL('../../../fixtures/cni/ipam-worker.ts', import.meta.url));

async function tempDir(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'kl-ipam-'));
  t.teardown(() => rm(d, { recursive: true, force: true }));
  return d;
}

t.test('ranges', async (t) => {
  const r = parseRange('10.42.0.0/24');
  t.equal(r.gateway, '10.42.0.1');
  t.equal(numToIp(r.first), '10.42.0.2');
  t.equal(numToIp(r.last), '10.42.0.254');
  t.equal(r.size, 253);
  const small = parseRange('192.168.7.4/30');
  t.equal(small.size, 1, 'a /30 holds one pod');
  t.equal(numToIp(small.first), '192.168.7.6');
  t.equal(ipToNum('255.255.255.255'), 2 ** 32 - 1);
  t.equal(numToIp(ipToNum('200.1.2.3')), '200.1.2.3', 'high addresses round-trip');
  for (const bad of ['10.42.0.1/24', '10.42.0.0/31', '10.0.0.0/4', 'x/24', '10.42.0.0', '1.2.3.256/24']) {
    t.throws(() => parseRange(bad), IpamError, `${bad} refused`);
  }
});

t.test('allocate skips network, gateway and broadcast; goes round-robin', async (t) => {
  const r = parseRange('10.0.0.0/29'); // .0 net, .1 gw, .2-.6 pods, .7 bcast
  const st = emptyState(r);
  const got = [1, 2, 3, 4, 5].map((i) => allocate(st, r, { containerId: `c${i}`, ifname: 'eth0' }));
  t.same(got, ['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6']);
  t.equal(allocate(st, r, { containerId: 'c3', ifname: 'eth0' }), '10.0.0.4', 'same owner: same address');
  const e = t.throws(() => allocate(st, r, { containerId: 'c6', ifname: 'eth0' })) as IpamError;
  t.equal(e.kind, 'exhausted', 'a full range says so');
  t.match(e.message, /10\.0\.0\.0\/29/, 'naming the range');
  t.match(e.hint, /GC|larger/, 'and what to do');
  t.equal(release(st, { containerId: 'c2', ifname: 'eth0' })?.ip, '10.0.0.3');
  t.equal(release(st, { containerId: 'c2', ifname: 'eth0' }), undefined, 'second release: nothing');
  t.equal(allocate(st, r, { containerId: 'c7', ifname: 'eth0' }), '10.0.0.3', 'the freed one, after wrapping round');
  release(st, { containerId: 'c5', ifname: 'eth0' });
  t.equal(allocate(st, r, { containerId: 'c1', ifname: 'eth1' }), '10.0.0.6', 'another ifname of the same container is another owner');
});

t.test('round-robin does not reuse a just-freed address while others are free', async (t) => {
  const r = parseRange('10.0.0.0/28');
  const st = emptyState(r);
  const a = allocate(st, r, { containerId: 'a', ifname: 'eth0' });
  release(st, { containerId: 'a', ifname: 'eth0' });
  t.not(allocate(st, r, { containerId: 'b', ifname: 'eth0' }), a);
});

t.test('property: random alloc/release from several owners never double-allocates; full release frees all', async (t) => {
  for (let seed = 1; seed <= 40; seed++) {
    const rand = prng(seed);
    const r = parseRange(rand() < 0.5 ? '10.1.0.0/27' : '10.1.0.0/28');
    const st: RangeState = emptyState(r);
    // "processes" p0..p4, each with its own owners
    const held = new Map<string, string>(); // owner key -> ip
    let n = 0;
    let fulls = 0;
    for (let step = 0; step < 400; step++) {
      const proc = Math.floor(rand() * 5);
      if (held.size === 0 || rand() < 0.55) {
        const owner = { containerId: `p${proc}-${n++}`, ifname: rand() < 0.8 ? 'eth0' : 'net1' };
        try {
          const ip = allocate(st, r, owner);
          held.set(ownerKey(owner), ip);
        } catch (e) {
          t.equal((e as IpamError).kind, 'exhausted');
          t.equal(held.size, r.size, 'exhausted only when every address is held');
          fulls++;
        }
      } else {
        const keys = [...held.keys()];
        const k = keys[Math.floor(rand() * keys.length)]!;
        const [containerId, ifname] = k.split('/') as [string, string];
        t.equal(release(st, { containerId, ifname })?.ip, held.get(k));
        held.delete(k);
      }
      const ips = [...held.values()];
      if (new Set(ips).size !== ips.length) {
        t.fail(`seed ${seed} step ${step}: an address is held twice`);
        return;
      }
      for (const ip of ips) {
        const v = ipToNum(ip);
        if (v < r.first || v > r.last) t.fail(`seed ${seed}: ${ip} outside the pod addresses of ${r.cidr}`);
      }
    }
    t.equal(Object.keys(st.allocations).length, held.size, `seed ${seed}: state matches the model`);
    for (const k of [...held.keys()]) {
      const [containerId, ifname] = k.split('/') as [string, string];
      release(st, { containerId, ifname });
    }
    t.same(st.allocations, {}, `seed ${seed}: full release returns everything (exhausted ${fulls} times)`);
    t.equal(freeCount(st, r), r.size);
  }
});

t.test('GC keeps the valid attachments and frees the rest', async (t) => {
  const r = parseRange('10.2.0.0/24');
  const st = emptyState(r);
  for (const id of ['a', 'b', 'c', 'd']) allocate(st, r, { containerId: id, ifname: 'eth0', hostIfname: `kl-${id}` });
  allocate(st, r, { containerId: 'a', ifname: 'net1' });
  const freed = collect(st, new Set(['a/eth0', 'c/eth0']));
  t.same(freed.map((f) => ownerKey(f)).sort(), ['a/net1', 'b/eth0', 'd/eth0']);
  t.equal(freed.find((f) => f.containerId === 'b')?.hostIfname, 'kl-b', 'freed entries carry the host veth to remove');
  t.ok(findByOwner(st, { containerId: 'a', ifname: 'eth0' }));
  t.ok(findByOwner(st, { containerId: 'c', ifname: 'eth0' }));
  t.equal(Object.keys(st.allocations).length, 2);
  t.same(collect(st, new Set()).length, 2, 'empty valid set frees all');
});

t.test('store: persists, keeps the round-robin position when empty, refuses a corrupt file', async (t) => {
  const dir = await tempDir(t);
  const store = new IpamStore(dir, 'kinglet');
  const r = parseRange('10.3.0.0/24');
  const ip = await store.withLock(async (tx) => {
    const st = await tx.load(r);
    const ip = allocate(st, r, { containerId: 'x', ifname: 'eth0' });
    await tx.save(st);
    return ip;
  });
  const file = join(dir, 'ipam', 'kinglet', '10.3.0.0_24.json');
  t.match(JSON.parse(await readFile(file, 'utf8')), { range: '10.3.0.0/24', allocations: { [ip]: { containerId: 'x' } } });
  t.same(await store.withLock((tx) => tx.ranges()), ['10.3.0.0/24']);
  await store.withLock(async (tx) => {
    const st = await tx.load(r);
    release(st, { containerId: 'x', ifname: 'eth0' });
    await tx.save(st);
  });
  t.same(JSON.parse(await readFile(file, 'utf8')), { range: '10.3.0.0/24', allocations: {}, last: ip }, 'empty, with the round-robin position kept');
  const next = await store.withLock(async (tx) => {
    const st = await tx.load(r);
    return allocate(st, r, { containerId: 'y', ifname: 'eth0' });
  });
  t.not(next, ip, 'the next pod gets the next address, not the one just freed');
  await writeFile(file, '{"range":');
  const e = await store.withLock((tx) => tx.load(r)).catch((x: unknown) => x);
  t.ok(e instanceof IpamError && e.kind === 'io', 'a corrupt file is an error, never silently reset');
});

t.test('lock: exclusive within one process too, and times out clearly', async (t) => {
  const name = `\0kinglet-test-lock-${process.pid}-${Math.random()}`;
  const unlock = await acquireAbstractLock(name, 1000);
  const e = await acquireAbstractLock(name, 150).catch((x: unknown) => x);
  t.ok(e instanceof IpamError && e.kind === 'busy', 'second taker times out while held');
  const second = acquireAbstractLock(name, 2000);
  setTimeout(() => void unlock(), 50);
  const unlock2 = await second;
  t.pass('taken after release');
  await unlock2();
});

function runWorker(args: string[]): Promise<{ code: number; out: string; pid: number }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [WORKER, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('close', (code) => resolve({ code: code ?? 1, out, pid: p.pid! }));
  });
}

t.test('store under real concurrent processes: the journal never shows an address held twice', async (t) => {
  const dir = await tempDir(t);
  const journal = join(dir, 'journal');
  await writeFile(journal, '');
  const cidr = '10.4.0.0/27'; // 29 addresses: small enough to hit exhaustion
  const workers = 6;
  const results = await Promise.all(
    Array.from({ length: workers }, (_, w) => runWorker([dir, cidr, String(w), '120', String(1000 + w), journal])),
  );
  t.same(results.map((r) => r.code), Array(workers).fill(0), 'every worker finished');
  const lines = (await readFile(journal, 'utf8')).trim().split('\n');
  t.equal(lines.length, workers * 120, 'every step journaled');
  const owner = new Map<string, string>();
  let bad = 0;
  let fulls = 0;
  for (const l of lines) {
    const [op, ip, id] = l.split(' ') as [string, string, string];
    if (op === 'alloc') {
      if (owner.has(ip)) bad++;
      owner.set(ip, id);
    } else if (op === 'release') {
      if (owner.get(ip) !== id) bad++;
      owner.delete(ip);
    } else if (op === 'full') {
      fulls++;
      if (owner.size !== parseRange(cidr).size) bad++;
    }
  }
  t.equal(bad, 0, 'no double allocation, no lost release, exhaustion only when full');
  t.comment(`${fulls} exhausted allocations`);
  const store = new IpamStore(dir, 'kinglet');
  const r = parseRange(cidr);
  const st = await store.withLock((tx) => tx.load(r));
  t.same(
    Object.fromEntries(Object.entries(st.allocations).map(([ip, a]) => [ip, a.containerId])),
    Object.fromEntries(owner),
    'the state on disk is exactly what the journal says is held (no lost update)',
  );
  const held = results.flatMap((x) => JSON.parse(x.out.trim()) as string[]);
  t.equal(held.length, owner.size, 'and what the workers think they hold');
});

t.test('a lock holder killed with SIGKILL leaves no stale lock', async (t) => {
  const dir = await tempDir(t);
  const p = spawn(process.execPath, [WORKER, dir, '10.5.0.0/24', 'hold', '60000'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => {
    if (p.exitCode === null) p.kill('SIGKILL');
  });
  await new Promise<void>((resolve) => p.stdout.on('data', (d: Buffer) => d.toString().includes('locked') && resolve()));
  const store = new IpamStore(dir, 'kinglet');
  const waiting = store.withLock(async () => 'got it', { timeoutMs: 10_000 });
  await new Promise((r) => setTimeout(r, 100));
  const t0 = Date.now();
  p.kill('SIGKILL');
  t.equal(await waiting, 'got it');
  t.ok(Date.now() - t0 < 1000, `the waiter got the lock ${Date.now() - t0} ms after the kill`);
});
