// Layout pin: build the socket-LB objects and compare the BTF of every
// struct in bpf/include/kinglet.h (size, member offsets and sizes) and of
// every map (name, type, key/value type, capacity) with agent/datapath/lb-layout.ts.
// A change on either side alone fails here.
import t from 'tap';
import { execa } from 'execa';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import {
  LB_MAP_NAMES, LB_MAP_TYPES, LB_STRUCTS, SOCK_LB_OBJECTS, SOCK_LB_PROGRAMS,
  LB_SVC_MAX, LB_SLOT_MAX, LB_BE_MAX, LB_RNAT_MAX, LB_RSK_MAX, LB_AFF_MAX,
  LB4_SVC_MAP, LB6_SVC_MAP, LB4_SLOT_MAP, LB6_SLOT_MAP, LB4_BE_MAP, LB6_BE_MAP, LB4_RNAT_MAP, LB6_RNAT_MAP, LB4_RSK_MAP, LB6_RSK_MAP, LB_AFF_MAP,
  type StructLayout,
} from '../../../../agent/datapath/lb-layout.ts';
import { MapType } from '../../../../agent/datapath/libbpf.ts';

const bpfDir = fileURLToPath(new URL('../../../../bpf/', import.meta.url));

interface BtfMember { name: string; type_id: number; bits_offset: number; bitfield_size?: number }
interface BtfType {
  id: number; kind: string; name: string; size?: number; type_id?: number; nr_elems?: number;
  members?: BtfMember[]; vars?: { type_id: number }[];
}

class Btf {
  readonly byId = new Map<number, BtfType>();
  constructor(types: BtfType[]) { for (const ty of types) this.byId.set(ty.id, ty); }
  get(id: number): BtfType {
    const ty = this.byId.get(id);
    if (!ty) throw new Error(`no BTF type ${id}`);
    return ty;
  }
  /** Skip typedefs and qualifiers. */
  resolve(id: number): BtfType {
    let ty = this.get(id);
    while (['TYPEDEF', 'CONST', 'VOLATILE', 'RESTRICT', 'TYPE_TAG'].includes(ty.kind)) ty = this.get(ty.type_id!);
    return ty;
  }
  sizeOf(id: number): number {
    const ty = this.resolve(id);
    if (ty.kind === 'ARRAY') return (ty.nr_elems ?? 0) * this.sizeOf(ty.type_id!);
    if (ty.size === undefined) throw new Error(`BTF type ${id} (${ty.kind}) has no size`);
    return ty.size;
  }
  structs(): BtfType[] { return [...this.byId.values()].filter((ty) => ty.kind === 'STRUCT'); }
}

const MAX_ENTRIES: Record<string, number> = {
  [LB4_SVC_MAP]: LB_SVC_MAX, [LB6_SVC_MAP]: LB_SVC_MAX,
  [LB4_SLOT_MAP]: LB_SLOT_MAX, [LB6_SLOT_MAP]: LB_SLOT_MAX,
  [LB4_BE_MAP]: LB_BE_MAX, [LB6_BE_MAP]: LB_BE_MAX,
  [LB4_RNAT_MAP]: LB_RNAT_MAX, [LB6_RNAT_MAP]: LB_RNAT_MAX,
  [LB4_RSK_MAP]: LB_RSK_MAX, [LB6_RSK_MAP]: LB_RSK_MAX,
  [LB_AFF_MAP]: LB_AFF_MAX,
};

t.before(async () => {
  await execa('make', ['-s', '-C', bpfDir]);
});

for (const obj of SOCK_LB_OBJECTS) {
  t.test(`${obj.file}: kinglet.h structs and maps match lb-layout.ts`, async (t) => {
    const file = join(bpfDir, 'build', obj.file);
    const { stdout } = await execa('bpftool', ['btf', 'dump', 'file', file, '-j']);
    const btf = new Btf((JSON.parse(stdout) as { types: BtfType[] }).types);

    const ours = new Map<string, StructLayout>(LB_STRUCTS.map((s) => [s.name, s]));
    const theirs = btf.structs().filter((s) => s.name.startsWith('kl_'));
    t.same(theirs.map((s) => s.name).sort(), [...ours.keys()].sort(), 'the same set of kl_* structs on both sides');

    for (const s of theirs) {
      const mine = ours.get(s.name);
      if (!mine) continue;
      t.equal(s.size, mine.size, `${s.name}: size`);
      const members = s.members ?? [];
      t.same(members.map((m) => m.name), Object.keys(mine.fields), `${s.name}: members in order`);
      for (const m of members) {
        const f = mine.fields[m.name];
        t.notOk(m.bitfield_size, `${s.name}.${m.name}: not a bitfield`);
        t.equal(m.bits_offset % 8, 0, `${s.name}.${m.name}: byte aligned`);
        t.equal(m.bits_offset / 8, f?.offset, `${s.name}.${m.name}: offset`);
        t.equal(btf.sizeOf(m.type_id), f?.size, `${s.name}.${m.name}: size`);
      }
    }

    // Maps: names (with the layout version), key/value types, capacities.
    const maps = [...btf.byId.values()].find((ty) => ty.kind === 'DATASEC' && ty.name === '.maps');
    t.ok(maps, '.maps section present');
    const vars = (maps?.vars ?? []).map((v) => btf.get(v.type_id));
    t.same(vars.map((v) => v.name).sort(), [...LB_MAP_NAMES].sort(), 'map names');
    for (const v of vars) {
      t.ok(v.name.length <= 15, `${v.name}: fits BPF_OBJ_NAME_LEN`);
      const def = btf.resolve(v.type_id!);
      const member = (n: string) => def.members?.find((m) => m.name === n);
      const ptrTarget = (n: string) => btf.get(btf.get(member(n)!.type_id).type_id!);
      const want = LB_MAP_TYPES[v.name as keyof typeof LB_MAP_TYPES];
      const key = btf.resolve(ptrTarget('key').id);
      const value = btf.resolve(ptrTarget('value').id);
      if (want.key === 'u32') {
        t.match(key, { kind: 'INT', size: 4 }, `${v.name}: key is a __u32`);
      } else {
        t.equal(key.name, want.key.name, `${v.name}: key struct`);
      }
      if (want.value === 'u32') {
        t.match(value, { kind: 'INT', size: 4 }, `${v.name}: value is a __u32`);
      } else {
        t.equal(value.name, want.value.name, `${v.name}: value struct`);
      }
      t.equal(ptrTarget('max_entries').nr_elems, MAX_ENTRIES[v.name], `${v.name}: max_entries`);
      t.equal(ptrTarget('type').nr_elems, MapType[want.kind.toUpperCase() as 'HASH' | 'ARRAY' | 'LRU_HASH'], `${v.name}: map type ${want.kind}`);
    }
  });

  t.test(`${obj.file}: programs and sections`, async (t) => {
    const { stdout } = await execa('bpftool', ['btf', 'dump', 'file', join(bpfDir, 'build', obj.file), '-j']);
    const funcs = (JSON.parse(stdout) as { types: BtfType[] }).types.filter((ty) => ty.kind === 'FUNC').map((f) => f.name);
    t.same(funcs.sort(), Object.keys(SOCK_LB_PROGRAMS).sort(), 'one BTF function per entry point, no other');
  });
}
