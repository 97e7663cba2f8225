// The libbpf binding against the running kernel: maps by fd, pins on a
// scratch bpffs, error mapping, iteration, batch ops, probes, and the
// verifier log reaching the error.
import t from 'tap';
import { join } from 'node:path';
import { rootSkipReason, scratchBpffs } from '../../../lib/sandbox.ts';
import * as bpf from '../../../../agent/datapath/libbpf.ts';

const skip = rootSkipReason();

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
};
const u64 = (n: number): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
};

t.test('map create, update, lookup, delete, iterate', { skip }, async (t) => {
  const fd = bpf.mapCreate(bpf.MapType.HASH, 'kl_t_hash', 4, 8, 128);
  t.teardown(() => bpf.closeFd(fd));
  t.ok(fd > 0, 'got an fd');

  const info = bpf.mapInfo(fd);
  t.match(info, { type: bpf.MapType.HASH, typeName: 'hash', keySize: 4, valueSize: 8, maxEntries: 128, name: 'kl_t_hash' });
  t.ok(info.id > 0, 'map has an id');

  for (let i = 0; i < 10; i++) bpf.mapUpdate(fd, u32(i), u64(i * 100));
  const out = Buffer.alloc(8);
  bpf.mapLookup(fd, u32(7), out);
  t.equal(out.readBigUInt64LE(), 700n);

  // BPF_NOEXIST on an existing key: EEXIST.
  t.throws(() => bpf.mapUpdate(fd, u32(7), u64(1), bpf.BPF_NOEXIST), { name: 'BpfError', code: 'EEXIST', op: 'bpf_map_update_elem' });

  // A missing key: ENOENT, as a BpfError with the op and object.
  const err = (() => {
    try {
      bpf.mapLookup(fd, u32(999), out);
    } catch (e) {
      return e;
    }
  })() as bpf.BpfError;
  t.ok(err instanceof bpf.BpfError, 'BpfError');
  t.equal(err.code, 'ENOENT');
  t.equal(err.errno, 2);
  t.equal(err.op, 'bpf_map_lookup_elem');
  t.match(err.message, /ENOENT/);
  t.equal(bpf.mapTryLookup(fd, u32(999), out), false);

  bpf.mapDelete(fd, u32(7));
  t.throws(() => bpf.mapDelete(fd, u32(7)), { code: 'ENOENT', op: 'bpf_map_delete_elem' });
  t.equal(bpf.mapTryDelete(fd, u32(7)), false);

  const m = new bpf.BpfMap(fd);
  const keys = [...m.keys()].map((k) => k.readUInt32LE()).sort((a, b) => a - b);
  t.same(keys, [0, 1, 2, 3, 4, 5, 6, 8, 9]);
  const entries = new Map([...m.entries()].map(([k, v]) => [k.readUInt32LE(), Number(v.readBigUInt64LE())]));
  t.equal(entries.get(9), 900);
  t.equal(m.get(u32(7)), undefined);
  t.equal(m.delete(u32(8)), true);
  t.equal(m.delete(u32(8)), false);
});

t.test('bad fd and bad arguments map to errno names', { skip }, async (t) => {
  t.throws(() => bpf.mapUpdate(987654, u32(1), u64(1)), { code: 'EBADF', errno: 9 });
  // The kernel answers BPF_OBJ_GET_INFO_BY_FD on a bad fd with EBADFD (77), not EBADF.
  t.throws(() => bpf.mapInfo(987654), { code: /^EBADFD?$/ });
  t.throws(() => bpf.mapCreate(bpf.MapType.HASH, 'kl_t_bad', 0, 8, 16), { code: 'EINVAL', op: 'bpf_map_create', object: 'kl_t_bad' });
  t.throws(() => bpf.objGet('/nonexistent/kinglet/pin'), { code: 'ENOENT', op: 'bpf_obj_get', object: '/nonexistent/kinglet/pin' });
});

t.test('pin and get on a scratch bpffs', { skip }, async (t) => {
  const root = await scratchBpffs(t);
  const m = bpf.BpfMap.create(bpf.MapType.LRU_HASH, 'kl_t_lru', 4, 4, 64);
  t.teardown(() => m.close());
  m.set(u32(1), u32(11));
  const path = join(root, 'kl_t_lru');
  m.pin(path);
  t.throws(() => m.pin(path), { code: 'EEXIST' }, 'pinning twice');

  const again = bpf.openPinnedMap(path);
  t.teardown(() => again.close());
  t.not(again.fd, m.fd);
  t.equal(again.info.id, m.info.id, 'same map');
  t.equal(again.info.typeName, 'lru_hash');
  t.equal(again.get(u32(1))?.readUInt32LE(), 11);
  again.set(u32(2), u32(22));
  t.equal(m.get(u32(2))?.readUInt32LE(), 22, 'writes through either fd');
});

t.test('per-CPU values are sized for every possible CPU', { skip }, async (t) => {
  const m = bpf.BpfMap.create(bpf.MapType.PERCPU_ARRAY, 'kl_t_pcpu', 4, 4, 2);
  t.teardown(() => m.close());
  const ncpu = bpf.numPossibleCpus();
  t.equal(m.userValueSize, 8 * ncpu);
  const v = Buffer.alloc(m.userValueSize);
  for (let c = 0; c < ncpu; c++) v.writeUInt32LE(c + 1, c * 8);
  m.set(u32(0), v);
  t.same(m.get(u32(0)), v);
});

t.test('batch update, delete and dump', { skip }, async (t) => {
  const m = bpf.BpfMap.create(bpf.MapType.HASH, 'kl_t_batch', 4, 4, 4096);
  t.teardown(() => m.close());
  const n = 3000;
  const keys = Buffer.alloc(4 * n);
  const values = Buffer.alloc(4 * n);
  for (let i = 0; i < n; i++) {
    keys.writeUInt32LE(i, i * 4);
    values.writeUInt32LE(i * 3, i * 4);
  }
  t.equal(bpf.mapUpdateBatch(m.fd, keys, values, n), n);
  t.equal(m.get(u32(2999))?.readUInt32LE(), 8997);
  const all = bpf.mapLookupAll(m.fd, 4, 4, 512);
  t.equal(all.count, n);
  let sum = 0;
  for (let i = 0; i < all.count; i++) sum += all.values.readUInt32LE(i * 4) - all.keys.readUInt32LE(i * 4) * 3;
  t.equal(sum, 0, 'every dumped value matches its key');
  t.equal(bpf.mapDeleteBatch(m.fd, keys.subarray(0, 400), 100), 100);
  t.equal(m.get(u32(50)), undefined);
  t.equal([...m.keys()].length, n - 100);
});

t.test('100k map updates from TypeScript (timing printed, not asserted)', { skip }, async (t) => {
  const n = 100_000;
  const m = bpf.BpfMap.create(bpf.MapType.HASH, 'kl_t_perf', 8, 16, n);
  t.teardown(() => m.close());
  const key = Buffer.alloc(8);
  const value = Buffer.alloc(16);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    key.writeUInt32LE(i, 0);
    value.writeUInt32LE(i, 0);
    bpf.mapUpdate(m.fd, key, value);
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  t.comment(`100k bpf_map_update_elem: ${ms.toFixed(1)} ms (${Math.round(n / (ms / 1000))}/s)`);
  console.error(`# 100k bpf_map_update_elem: ${ms.toFixed(1)} ms`);
  key.writeUInt32LE(n - 1, 0);
  t.equal(m.get(key)?.readUInt32LE(0), n - 1);
});

t.test('probes and prog load with expected_attach_type', { skip }, async (t) => {
  t.equal(bpf.probeMapType(bpf.MapType.HASH), true);
  t.equal(bpf.probeProgType(bpf.ProgType.SCHED_CLS), true);
  t.equal(bpf.probeHelper(bpf.ProgType.SCHED_CLS, bpf.Helper.redirect), true);
  // r0 = 1; exit
  const ok = Buffer.from([0xb7, 0, 0, 0, 1, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]);
  const fd = bpf.progLoad(bpf.ProgType.CGROUP_SOCK_ADDR, ok, { expectedAttachType: bpf.AttachType.CGROUP_INET4_CONNECT });
  t.teardown(() => bpf.closeFd(fd));
  const info = bpf.progInfo(fd);
  t.equal(info.type, bpf.ProgType.CGROUP_SOCK_ADDR);
  t.ok(info.id > 0);
  t.throws(() => bpf.progLoad(bpf.ProgType.CGROUP_SOCK_ADDR, ok, { expectedAttachType: 250 }), { code: 'EINVAL' });
  // exit without setting r0: the verifier says why, and the error carries it.
  const bad = Buffer.from([0x95, 0, 0, 0, 0, 0, 0, 0]);
  t.throws(
    () => bpf.progLoad(bpf.ProgType.CGROUP_SOCK_ADDR, bad, { expectedAttachType: bpf.AttachType.CGROUP_INET4_CONNECT, logLevel: 1 }),
    { code: 'EACCES', log: /R0 !read_ok/, message: /R0 !read_ok/ },
  );
});

t.test('libbpf log reaches the error of a failed object open', { skip }, async (t) => {
  t.throws(() => bpf.BpfObject.open('/nonexistent/kinglet.bpf.o'), {
    name: 'BpfError',
    code: 'ENOENT',
    op: 'bpf_object__open_file',
    log: /failed to open/,
  });
  t.match(bpf.libbpfVersion(), { soname: /libbpf\.so\.[01]/ });
});
