// Layout pin of the pod datapath: build bpf/pod.bpf.o and compare the BTF of
// every kl_* struct (size, member offsets and sizes), every map (name with
// its layout version, key/value type, capacity) and the programs with
// agent/datapath/pod-layout.ts and lb-layout.ts. The object also defines the
// socket-LB maps (shared by pin), so those must match lb-layout.ts too.
import t from 'tap';
import { execa } from 'execa';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { LB_MAP_TYPES, LB_STRUCTS, type StructLayout } from '../../../../agent/datapath/lb-layout.ts';
import { CFG_F_MASQ, CFG_F_SNAT_SHARED, DROP_MAX, DROP_REASONS, POD_MAP_TYPES, POD_OBJECT, POD_OBJECT_MAPS, POD_PROGRAMS, POD_STRUCTS, encodeConfig, encodeEndpoint, decodeEndpoint, cidr4, configPodCidr } from '../../../../agent/datapath/pod-layout.ts';

const bpfDir = fileURLToPath(new URL('../../../../bpf/', import.meta.url));

interface BtfMember { name: string; type_id: number; bits_offset: number; bitfield_size?: number }
interface BtfType { id: number; kind: string; name: string; size?: number; type_id?: number; nr_elems?: number; members?: BtfMember[]; vars?: { type_id: number }[] }

t.before(async () => {
  await execa('make', ['-s', '-C', bpfDir]);
});

t.test(`${POD_OBJECT}: structs, maps and programs match pod-layout.ts`, async (t) => {
  const { stdout } = await execa('bpftool', ['btf', 'dump', 'file', join(bpfDir, 'build', POD_OBJECT), '-j']);
  const types = (JSON.parse(stdout) as { types: BtfType[] }).types;
  const byId = new Map(types.map((x) => [x.id, x]));
  const get = (id: number) => byId.get(id)!;
  const resolve = (id: number) => {
    let ty = get(id);
    while (['TYPEDEF', 'CONST', 'VOLATILE', 'RESTRICT', 'TYPE_TAG'].includes(ty.kind)) ty = get(ty.type_id!);
    return ty;
  };
  const sizeOf = (id: number): number => {
    const ty = resolve(id);
    return ty.kind === 'ARRAY' ? (ty.nr_elems ?? 0) * sizeOf(ty.type_id!) : ty.size!;
  };

  const ours = new Map<string, StructLayout>([...LB_STRUCTS, ...POD_STRUCTS].map((s) => [s.name, s]));
  const theirs = types.filter((x) => x.kind === 'STRUCT' && x.name.startsWith('kl_'));
  t.same(theirs.map((s) => s.name).sort(), [...ours.keys()].sort(), 'the same kl_* structs on both sides');
  for (const s of theirs) {
    const mine = ours.get(s.name)!;
    t.equal(s.size, mine.size, `${s.name}: size`);
    t.same((s.members ?? []).map((m) => m.name), Object.keys(mine.fields), `${s.name}: members in order`);
    for (const m of s.members ?? []) {
      t.equal(m.bits_offset / 8, mine.fields[m.name]?.offset, `${s.name}.${m.name}: offset`);
      t.equal(sizeOf(m.type_id), mine.fields[m.name]?.size, `${s.name}.${m.name}: size`);
    }
  }

  const maps = types.find((x) => x.kind === 'DATASEC' && x.name === '.maps');
  const vars = (maps?.vars ?? []).map((v) => get(v.type_id));
  t.same(vars.map((v) => v.name).sort(), [...POD_OBJECT_MAPS].sort(), 'map names');
  for (const v of vars) {
    t.ok(v.name.length <= 15, `${v.name}: fits BPF_OBJ_NAME_LEN`);
    const def = resolve(v.type_id!);
    const member = (n: string) => def.members!.find((m) => m.name === n)!;
    const target = (n: string) => get(get(member(n).type_id).type_id!);
    const want = (POD_MAP_TYPES as Record<string, { key: StructLayout | 'u32'; value: StructLayout | 'u64'; max?: number }>)[v.name]
      ?? (LB_MAP_TYPES as Record<string, { key: StructLayout | 'u32'; value: StructLayout | 'u32' }>)[v.name]!;
    const key = resolve(target('key').id);
    const value = resolve(target('value').id);
    if (want.key === 'u32') t.match(key, { kind: 'INT', size: 4 }, `${v.name}: key is a __u32`);
    else t.equal(key.name, want.key.name, `${v.name}: key struct`);
    if (want.value === 'u64') t.match(value, { kind: 'INT', size: 8 }, `${v.name}: value is a __u64`);
    else if (want.value === 'u32') t.match(value, { kind: 'INT', size: 4 }, `${v.name}: value is a __u32`);
    else t.equal(value.name, want.value.name, `${v.name}: value struct`);
    if ('max' in want && want.max !== undefined) t.equal(target('max_entries').nr_elems, want.max, `${v.name}: max_entries`);
  }

  const funcs = types.filter((x) => x.kind === 'FUNC').map((x) => x.name).sort();
  t.same(funcs, Object.keys(POD_PROGRAMS).sort(), 'one BTF function per entry point');
});

t.test('drop reasons: every KL_DROP_* of kinglet.h is named by the agent, under its number', async (t) => {
  const header = await readFile(join(bpfDir, 'include', 'kinglet.h'), 'utf8');
  const codes = [...header.matchAll(/^#define KL_DROP_(\w+)\s+(\d+)\s/gm)].filter((m) => m[1] !== 'MAP' && m[1] !== 'MAX').map((m) => Number(m[2]));
  t.ok(codes.length >= 10, `${codes.length} reasons in kinglet.h`);
  t.same(Object.keys(DROP_REASONS).map(Number).sort((a, b) => a - b), codes.sort((a, b) => a - b));
  t.ok(codes.every((c) => c < DROP_MAX), 'each fits the drop map');
});

t.test('config flags: the same bits as kinglet.h', async (t) => {
  const header = await readFile(join(bpfDir, 'include', 'kinglet.h'), 'utf8');
  const flags = Object.fromEntries([...header.matchAll(/^#define KL_CFG_F_(\w+)\s+(0x[0-9a-f]+)/gm)].map((m) => [m[1], Number(m[2])]));
  t.same(flags, { MASQ: CFG_F_MASQ, SNAT_SHARED: CFG_F_SNAT_SHARED });
});

t.test('codecs', async (t) => {
  const ep = { ifindex: 7, identity: 0, podMac: '02:aa:bb:cc:dd:ee', hostMac: '02:11:22:33:44:55' };
  t.same(decodeEndpoint(encodeEndpoint(ep)), ep, 'endpoint round trip');
  t.same([...cidr4('10.42.7.9/16').net], [10, 42, 0, 0], 'network of a CIDR');
  t.same([...cidr4('10.42.0.0/24').mask], [255, 255, 255, 0]);
  t.same([...cidr4('0.0.0.0/0').mask], [0, 0, 0, 0]);
  const cfg = encodeConfig({ nodeIp: '10.99.0.1', clusterCidr: '10.42.0.0/16', podCidr: '10.42.1.0/24', masquerade: true, redirect: 'peer', snatPortMin: 61000, snatPortMax: 65535 });
  t.same([...cfg.subarray(0, 4)], [10, 99, 0, 1], 'node ip in network order');
  t.equal(cfg.readUInt32LE(20), 1, 'masquerade flag');
  const shared = encodeConfig({ nodeIp: '10.99.0.1', clusterCidr: '10.42.0.0/16', podCidr: '10.42.1.0/24', masquerade: true, redirect: 'peer', snatPortMin: 32768, snatPortMax: 65535, snatShared: true });
  t.equal(shared.readUInt32LE(20), 3, 'masquerade and shared-ports flags');
  t.equal(cfg.readUInt32LE(24), 2, 'redirect peer');
  const off = encodeConfig({ clusterCidr: '10.42.0.0/16', masquerade: true, redirect: 'stack', snatPortMin: 1, snatPortMax: 2 });
  t.equal(off.readUInt32LE(20), 0, 'no node ip or pod CIDR: masquerade off');
  t.equal(configPodCidr(cfg), '10.42.1.0/24', 'the pod CIDR read back from a written configuration (kept across an agent restart)');
  t.equal(configPodCidr(off), undefined, 'none written');
});
