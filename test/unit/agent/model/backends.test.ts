// Backends (the packed backends of a frontend), on its own and as the model makes it.
import t from 'tap';
import { Backends } from '../../../../agent/model/backends.ts';
import { buildLbState, LbModel, sameFrontend, type ServicesInput } from '../../../../agent/model/services.ts';
import { parseIp } from '../../../../agent/model/ip.ts';
import type { LbBackend, LbFrontend } from '../../../../agent/model/types.ts';
import { trimObject } from '../../../../agent/source/trim.ts';
import type { KubeObject } from '../../../../agent/source/types.ts';
import { prng } from '../../../lib/prng.ts';

const LIST: LbBackend[] = [
  { address: '10.42.0.9', port: 8080, terminating: false, nodeName: 'n1' },
  { address: '10.42.0.1', port: 8080, terminating: true },
  { address: 'fd00::1', port: 53, terminating: false, nodeName: 'n2' },
  { address: '10.42.0.1', port: 8080, terminating: true },
];

t.test('from: the list as given (order, copies), read back by index, by iteration and as JSON', async (t) => {
  const b = Backends.from(LIST);
  t.equal(b.length, 4);
  t.same([0, 1, 2, 3].map((i) => b.address(i)), ['10.42.0.9', '10.42.0.1', 'fd00::1', '10.42.0.1']);
  t.same([0, 1, 2, 3].map((i) => b.port(i)), [8080, 8080, 53, 8080]);
  t.same([0, 1, 2, 3].map((i) => b.terminating(i)), [false, true, false, true]);
  t.same([0, 1, 2, 3].map((i) => b.nodeName(i)), ['n1', undefined, 'n2', undefined]);
  t.same([0, 1, 2, 3].map((i) => b.ipv4(i)), [0x0a2a0009, 0x0a2a0001, -1, 0x0a2a0001], 'IPv4 values; -1 for anything else');
  t.strictSame([...b], LIST, 'iteration gives the objects, nodeName only where known');
  t.notOk('nodeName' in b.at(1), 'no nodeName key when there is none');
  t.equal(JSON.stringify(b), JSON.stringify(LIST), 'JSON: the plain array, key order included');
  t.equal(JSON.stringify({ backends: Backends.EMPTY }), '{"backends":[]}');
  t.equal(Backends.from([]), Backends.EMPTY);
  t.equal(Backends.from(new Set(LIST)).length, 4, 'any iterable');
});

t.test('at: fresh objects; an index out of range is an error that names the range', async (t) => {
  const b = Backends.from(LIST);
  const x = b.at(0);
  x.address = '1.1.1.1';
  t.equal(b.address(0), '10.42.0.9', 'changing a read object changes nothing');
  t.not(b.at(0), b.at(0));
  for (const i of [-1, 4, 1.5, NaN]) t.throws(() => b.at(i), { name: 'RangeError', message: /0\.\.3/ }, `index ${i}`);
  t.throws(() => Backends.EMPTY.at(0), RangeError);
});

t.test('columns: an order into shared arrays, one port or one per backend, one flag or one per backend', async (t) => {
  const addresses = ['10.0.0.3', '10.0.0.1', '10.0.0.2'], nodes = ['c', undefined, 'b'];
  const b = new Backends(2, addresses, nodes, Uint32Array.of(1, 2), 80, true);
  t.strictSame(b.toJSON(), [{ address: '10.0.0.1', port: 80, terminating: true }, { address: '10.0.0.2', port: 80, terminating: true, nodeName: 'b' }]);
  const c = new Backends(3, addresses, undefined, undefined, Uint16Array.of(1, 2, 3), Uint8Array.of(0, 1, 0));
  t.same([...c].map((x) => `${x.address}:${x.port}${x.terminating ? 't' : ''}`), ['10.0.0.3:1', '10.0.0.1:2t', '10.0.0.2:3']);
  t.same([0, 1].map((i) => b.ipv4(i)), [0x0a000001, 0x0a000002], 'IPv4 values in the order too');
});

t.test('equals: same backends in the same order, whatever the storage', async (t) => {
  const a = Backends.from(LIST);
  t.ok(a.equals(a));
  t.ok(a.equals(Backends.from(LIST.map((x) => ({ ...x })))), 'equal content, other arrays');
  const addresses = ['10.0.0.2', '10.0.0.1'];
  const shared = new Backends(2, addresses, undefined, Uint32Array.of(1, 0), 80, false);
  t.ok(shared.equals(Backends.from([{ address: '10.0.0.1', port: 80, terminating: false }, { address: '10.0.0.2', port: 80, terminating: false }])), 'ordered view = own arrays');
  t.ok(Backends.EMPTY.equals(Backends.from([])));
  const differ: [string, LbBackend[]][] = [
    ['address', LIST.map((x, i) => (i === 2 ? { ...x, address: 'fd00::2' } : x))],
    ['port', LIST.map((x, i) => (i === 0 ? { ...x, port: 8081 } : x))],
    ['terminating', LIST.map((x, i) => (i === 3 ? { ...x, terminating: false } : x))],
    ['nodeName', LIST.map((x, i) => (i === 1 ? { ...x, nodeName: 'n1' } : x))],
    ['order', [LIST[1]!, LIST[0]!, LIST[2]!, LIST[3]!]],
    ['length', LIST.slice(0, 3)],
  ];
  for (const [what, list] of differ) {
    t.notOk(a.equals(Backends.from(list)), `${what} differs`);
    t.notOk(Backends.from(list).equals(a), `${what} differs (other way round)`);
  }
});

// ---- as the model makes them: the rules, checked against a plain reimplementation ----

interface Ep {
  ip: string;
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
  node?: string;
}

function sliceObj(name: string, family: 4 | 6, port: number, eps: Ep[]): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { name, namespace: 'default', labels: { 'kubernetes.io/service-name': 'svc' } },
    addressType: family === 4 ? 'IPv4' : 'IPv6',
    ports: [{ name: 'http', port, protocol: 'TCP' }],
    endpoints: eps.map((e) => {
      const conditions: Record<string, boolean> = {};
      if (e.ready !== undefined) conditions.ready = e.ready;
      if (e.serving !== undefined) conditions.serving = e.serving;
      if (e.terminating !== undefined) conditions.terminating = e.terminating;
      return { addresses: [e.ip], conditions, ...(e.node ? { nodeName: e.node } : {}) };
    }),
  };
}

const service: KubeObject = {
  apiVersion: 'v1', kind: 'Service', metadata: { name: 'svc', namespace: 'default' },
  spec: { clusterIPs: ['10.43.0.1', 'fd00:43::1'], ports: [{ name: 'http', port: 80 }] },
};

/** The rules of the model's comment, written plainly: one frontend of `family`, from slices [port, endpoints]. */
function reference(slices: [number, Ep[]][], family: 4 | 6): string[] {
  const all: { key: string; address: string; port: number; rank: number; node?: string }[] = [];
  for (const [port, eps] of slices) {
    for (const e of eps) {
      const ip = parseIp(e.ip)!;
      if (ip.family !== family) continue;
      const ready = e.ready ?? true, serving = e.serving ?? ready, terminating = e.terminating ?? false;
      const rank = ready ? 2 : serving && terminating ? 1 : 0;
      if (rank > 0) all.push({ key: ip.key, address: ip.address, port, rank, node: e.node });
    }
  }
  const want = all.some((x) => x.rank === 2) ? 2 : 1;
  const use = all.filter((x) => x.rank === want);
  use.sort((a, b) => (a.key !== b.key ? (a.key < b.key ? -1 : 1) : a.port !== b.port ? a.port - b.port : (a.node ?? '') < (b.node ?? '') ? -1 : (a.node ?? '') > (b.node ?? '') ? 1 : 0));
  const out: string[] = [];
  for (let i = 0; i < use.length; i++) {
    const x = use[i]!;
    if (i > 0 && use[i - 1]!.key === x.key && use[i - 1]!.port === x.port) continue;
    out.push(`${x.address}:${x.port}${x.node ? '@' + x.node : ''}${want === 1 ? ' T' : ''}`);
  }
  return out;
}

const brief = (fe: LbFrontend | undefined) => (fe ? [...fe.backends].map((x) => `${x.address}:${x.port}${x.nodeName ? '@' + x.nodeName : ''}${x.terminating ? ' T' : ''}`) : []);

t.test('the model: backends ordered, deduplicated and ranked as the rules say, raw and packed slices, every path', async (t) => {
  const rnd = prng(4242);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const paths = { oneReadySorted: 0, oneReadyUnsorted: 0, oneRanked: 0, several: 0 };
  for (let round = 0; round < 600; round++) {
    const nSlices = rnd() < 0.6 ? 1 : 1 + Math.floor(rnd() * 3);
    const slices: [number, Ep[]][] = [];
    const objs: KubeObject[] = [];
    for (let s = 0; s < nSlices; s++) {
      const family = rnd() < 0.75 ? 4 : 6;
      const port = pick([8080, 8080, 9090]);
      const n = Math.floor(rnd() * 7);
      const eps: Ep[] = [];
      const sortedRun = rnd() < 0.4;
      for (let i = 0; i < n; i++) {
        const k = sortedRun ? i * 2 + 1 : 1 + Math.floor(rnd() * (rnd() < 0.5 ? 4 : 300));
        const ip = family === 4 ? pick([`10.42.${k >> 8}.${k & 255}`, `192.168.0.${k & 255}`, `9.0.0.${k & 255}`, `::ffff:10.42.0.${k & 255}`]) : pick([`fd00::${k.toString(16)}`, `FD00:0::${k.toString(16)}`, `2001:db8::${k.toString(16)}`]);
        const e: Ep = { ip };
        if (rnd() < 0.25) {
          e.ready = rnd() < 0.5;
          e.serving = rnd() < 0.7;
          e.terminating = rnd() < 0.7;
        }
        if (rnd() < 0.5) e.node = pick(['a', 'b', 'c']);
        eps.push(e);
      }
      slices.push([port, eps]);
      objs.push(sliceObj(`svc-${s}`, family, port, eps));
    }
    for (const trimmed of [false, true]) {
      const input = { services: [service], endpointSlices: trimmed ? objs.map((o) => trimObject('EndpointSlice', o)) : objs } as ServicesInput;
      const { state, warnings } = buildLbState(input);
      t.same(warnings, [], 'no warnings');
      for (const family of [4, 6] as const) {
        const fe = state.frontends.find((f) => f.family === family);
        const want = reference(slices.filter((_, s) => (objs[s]!.addressType === 'IPv4') === (family === 4)), family);
        const got = brief(fe);
        if (JSON.stringify(got) !== JSON.stringify(want)) {
          t.same(got, want, `round ${round} family ${family}${trimmed ? ' (packed)' : ''}`);
          return;
        }
      }
      const inc = new LbModel().update(input);
      if (!inc.state.frontends.every((f, i) => sameFrontend(f, state.frontends[i]))) {
        t.fail(`round ${round}: LbModel differs`);
        return;
      }
    }
    const ranked = slices.some(([, eps]) => eps.some((e) => e.ready !== undefined));
    const usable = slices.filter(([, eps]) => eps.length > 0);
    if (usable.length > 1) paths.several++;
    else if (ranked) paths.oneRanked++;
    else if (usable.length === 1) {
      const keys = usable[0]![1].map((e) => parseIp(e.ip)!.key);
      if (keys.every((k, i) => i === 0 || keys[i - 1]! < k)) paths.oneReadySorted++;
      else paths.oneReadyUnsorted++;
    }
  }
  t.ok(Object.values(paths).every((n) => n > 30), `every path exercised: ${JSON.stringify(paths)}`);
});

t.test('the model: one slice shared by frontends; a change of the slice is a change of the backends', async (t) => {
  const eps: Ep[] = [{ ip: '10.42.0.3', node: 'b' }, { ip: '10.42.0.1' }, { ip: '10.42.0.3', node: 'a' }];
  const two: KubeObject = {
    apiVersion: 'v1', kind: 'Service', metadata: { name: 'svc', namespace: 'default' },
    spec: { clusterIPs: ['10.43.0.1', '10.43.0.2'], ports: [{ name: 'http', port: 80 }] },
  };
  const model = new LbModel();
  const s1 = trimObject('EndpointSlice', sliceObj('svc-a', 4, 8080, eps));
  const u1 = model.update({ services: [two], endpointSlices: [s1] });
  const [f1, f2] = u1.state.frontends;
  t.equal(f1!.backends, f2!.backends, 'one value for both cluster IPs');
  t.same(brief(f1), ['10.42.0.1:8080', '10.42.0.3:8080@a'], 'sorted, the copy with the smaller nodeName kept');
  // The same content in a new object: no change reported.
  const u2 = model.update({ services: [two], endpointSlices: [trimObject('EndpointSlice', sliceObj('svc-a', 4, 8080, eps))] });
  t.equal(u2.changes.size, 0, 'equal backends from new arrays: no change');
  // Another node for the kept copy: a change.
  const u3 = model.update({ services: [two], endpointSlices: [trimObject('EndpointSlice', sliceObj('svc-a', 4, 8080, [eps[0]!, eps[1]!, { ip: '10.42.0.3', node: 'c' }]))] });
  t.equal(u3.changes.size, 2, 'both frontends changed');
  t.same(brief(u3.state.frontends[0]), ['10.42.0.1:8080', '10.42.0.3:8080@b']);
});
