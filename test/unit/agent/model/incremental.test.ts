// LbModel (incremental) against buildLbState (full) over random edit sequences.
import t from 'tap';
import { buildLbState, frontendSortKey, LbModel, sameFrontend, type ServicesInput } from '../../../../agent/model/services.ts';
import type { LbFrontend } from '../../../../agent/model/types.ts';
import type { KubeObject } from '../../../../agent/source/types.ts';
import { prng } from '../../../lib/prng.ts';

function gen(rnd: () => number) {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const names = ['a', 'b', 'c', 'd', 'e', 'f'];
  const service = (): unknown => {
    const r = rnd();
    if (r < 0.03) return { metadata: {} }; // no name
    if (r < 0.05) return 42;
    const ips = rnd() < 0.2 ? [pick(['10.96.0.1', '10.96.0.2']), pick(['fd00::1', 'fd00::2'])] : [pick(['10.96.0.1', '10.96.0.2', '10.96.0.3', '::ffff:10.96.0.3', ''])];
    const ports = [];
    const n = 1 + Math.floor(rnd() * 3);
    for (let i = 0; i < n; i++) ports.push({ name: pick(['', 'http', 'dns']), port: pick([80, 53, 443]), protocol: pick(['TCP', 'UDP', 'TCP', 'SCTP']) });
    const spec: Record<string, unknown> = { clusterIP: ips[0], clusterIPs: ips, ports };
    if (rnd() < 0.2) spec.sessionAffinity = pick(['ClientIP', 'None', 'Weird']);
    if (rnd() < 0.1) spec.type = pick(['ExternalName', 'NodePort', 'Bogus']);
    return { kind: 'Service', metadata: { name: pick(names), namespace: pick(['default', 'ns']) }, spec };
  };
  const slice = (): unknown => {
    if (rnd() < 0.03) return { metadata: { name: '' } };
    const family = rnd() < 0.8 ? 4 : 6;
    const eps = [];
    const n = Math.floor(rnd() * 4);
    for (let i = 0; i < n; i++) {
      const conditions: Record<string, unknown> = {};
      if (rnd() < 0.3) conditions.ready = rnd() < 0.5;
      if (rnd() < 0.3) conditions.serving = rnd() < 0.5;
      if (rnd() < 0.3) conditions.terminating = rnd() < 0.5;
      if (rnd() < 0.02) conditions.ready = 'yes';
      const ip = family === 4 ? `10.42.0.${1 + Math.floor(rnd() * 5)}` : `fd00:42::${1 + Math.floor(rnd() * 5)}`;
      const e: Record<string, unknown> = { addresses: [ip], conditions };
      if (rnd() < 0.3) e.nodeName = pick(['n1', 'n2']);
      eps.push(e);
    }
    const ports = [{ name: pick(['', 'http', 'dns']), port: pick([8080, 5353, 80]), protocol: pick(['TCP', 'UDP']) }];
    const labels: Record<string, unknown> = rnd() < 0.95 ? { 'kubernetes.io/service-name': pick(names) } : {};
    return {
      kind: 'EndpointSlice',
      metadata: { name: `${pick(names)}-${Math.floor(rnd() * 3)}`, namespace: pick(['default', 'ns']), labels },
      addressType: family === 4 ? 'IPv4' : pick(['IPv6', 'FQDN']),
      ports,
      endpoints: eps,
    };
  };
  return { service, slice, pick };
}

function edit(rnd: () => number, list: unknown[], make: () => unknown): unknown[] {
  const next = list.slice();
  const r = rnd();
  const i = Math.floor(rnd() * Math.max(1, next.length));
  if (r < 0.3 || next.length === 0) next.splice(i, 0, make());
  else if (r < 0.5) next.splice(i, 1);
  else if (r < 0.8) next[i] = make();
  else if (r < 0.9) next.push(next[i]); // the same object twice
  else {
    const [o] = next.splice(i, 1);
    next.splice(Math.floor(rnd() * (next.length + 1)), 0, o); // moved
  }
  return next;
}

t.test('LbModel gives what buildLbState gives, over random edit sequences', async (t) => {
  let checks = 0, changed = 0;
  for (let seed = 1; seed <= 60; seed++) {
    const rnd = prng(seed);
    const g = gen(rnd);
    let services: unknown[] = [], endpointSlices: unknown[] = [];
    for (let i = 0; i < 6; i++) services.push(g.service());
    for (let i = 0; i < 8; i++) endpointSlices.push(g.slice());
    const model = new LbModel();
    let prev = new Map<string, LbFrontend>();
    for (let step = 0; step < 60; step++) {
      if (step > 0) {
        const edits = 1 + Math.floor(rnd() * 3);
        for (let e = 0; e < edits; e++) {
          if (rnd() < 0.5) services = edit(rnd, services, g.service);
          else endpointSlices = edit(rnd, endpointSlices, g.slice);
        }
      }
      const input = { services, endpointSlices } as ServicesInput;
      const full = buildLbState(input);
      const inc = model.update(input);
      const ok = JSON.stringify(inc.state) === JSON.stringify(full.state) && JSON.stringify(inc.warnings) === JSON.stringify(full.warnings);
      if (!ok) {
        t.same(inc.state, full.state, `seed ${seed} step ${step}: state`);
        t.same(inc.warnings, full.warnings, `seed ${seed} step ${step}: warnings`);
        return;
      }
      // The reported changes turn the previous state into this one, and name only real changes.
      const next = new Map(full.state.frontends.map((fe) => [frontendSortKey(fe), fe]));
      for (const [sk, c] of inc.changes) {
        if (sameFrontend(prev.get(sk), c.before) === false || sameFrontend(c.before, c.after) || !sameFrontend(next.get(sk), c.after)) {
          t.fail(`seed ${seed} step ${step}: bad change for ${sk}`);
          return;
        }
        changed++;
      }
      for (const [sk, fe] of next) {
        if (!inc.changes.has(sk) && !sameFrontend(prev.get(sk), fe)) {
          t.fail(`seed ${seed} step ${step}: unreported change for ${sk}`);
          return;
        }
      }
      for (const sk of prev.keys()) {
        if (!next.has(sk) && !inc.changes.has(sk)) {
          t.fail(`seed ${seed} step ${step}: unreported removal of ${sk}`);
          return;
        }
      }
      prev = next;
      checks++;
    }
  }
  t.ok(checks === 60 * 60, `${checks} steps equal to the full computation (${changed} frontend changes)`);
  t.ok(changed > 100, 'the sequences exercise changes');
});

t.test('LbModel: input that is not lists', async (t) => {
  const model = new LbModel();
  const bad = { services: 'x', endpointSlices: 3 } as unknown as Parameters<typeof buildLbState>[0];
  t.same(model.update(bad).warnings, buildLbState(bad).warnings);
  t.same(model.update(bad).state, { frontends: [] });
});

t.test('LbModel: one endpoint change among 2000 services touches one frontend', async (t) => {
  const services: KubeObject[] = [], endpointSlices: KubeObject[] = [];
  for (let i = 0; i < 2000; i++) {
    services.push({ metadata: { name: `s${i}`, namespace: 'default' }, spec: { clusterIP: `10.96.${i >> 8}.${i & 255}`, ports: [{ port: 80 }] } });
    endpointSlices.push({
      metadata: { name: `s${i}-x`, namespace: 'default', labels: { 'kubernetes.io/service-name': `s${i}` } },
      addressType: 'IPv4', ports: [{ port: 8080 }], endpoints: [{ addresses: [`10.42.${i >> 8}.${i & 255}`] }],
    });
  }
  const model = new LbModel();
  t.equal(model.update({ services, endpointSlices }).changes.size, 2000);
  t.equal(model.update({ services: services.slice(), endpointSlices: endpointSlices.slice() }).changes.size, 0, 'same objects: nothing changed');
  const edited = endpointSlices.slice();
  edited[777] = { ...edited[777]!, endpoints: [{ addresses: ['10.42.99.1'] }] };
  const u = model.update({ services, endpointSlices: edited });
  t.same([...u.changes.keys()], [frontendSortKey({ family: 4, address: '10.96.3.9', port: 80, protocol: 'TCP' })]);
  t.same(u.changes.values().next().value?.after?.backends.toJSON().map((b) => b.address), ['10.42.99.1']);
  t.same(u.state, buildLbState({ services, endpointSlices: edited }).state);
  // A copy of an object with equal content (e.g. a re-read file) changes nothing.
  const copied = edited.slice();
  copied[5] = structuredClone(copied[5]!);
  t.equal(model.update({ services, endpointSlices: copied }).changes.size, 0);
});

t.test('LbModel: warnings are kept (one frozen list) until a warning changes', async (t) => {
  const svc = (name: string, clusterIP: string) => ({ metadata: { name, namespace: 'default' }, spec: { clusterIP, ports: [{ port: 80 }] } });
  const good = svc('good', '10.96.0.1'), bad = svc('bad', ''), other = svc('other', '10.96.0.2');
  const model = new LbModel();
  const w1 = model.update({ services: [good, bad], endpointSlices: [] }).warnings;
  t.same(w1.map((w) => w.object), ['Service default/bad']);
  t.ok(Object.isFrozen(w1), 'frozen: a consumer cannot change the kept list');
  t.equal(model.update({ services: [good, bad, other], endpointSlices: [] }).warnings, w1, 'a change without warnings: the same list');
  t.equal(model.warnings(), w1);
  const w2 = model.update({ services: [good, other], endpointSlices: [] }).warnings;
  t.same(w2, [], 'the bad one gone: its warning too');
  // Unnamed objects are reported by position: moving one changes its warning.
  const unnamed = { metadata: {} };
  t.same(model.update({ services: [unnamed, good], endpointSlices: [] }).warnings.map((w) => w.object), ['Service #0']);
  t.same(model.update({ services: [good, unnamed], endpointSlices: [] }).warnings.map((w) => w.object), ['Service #1']);
  const input = { services: [good, unnamed], endpointSlices: [] };
  t.same(model.update(input).warnings, buildLbState(input).warnings);
});
