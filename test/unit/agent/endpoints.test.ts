// Endpoint registrations: validation (what the API answers 400 for), conflicts
// (409), and the persisted store (atomic file, survives a reload).
import t from 'tap';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EndpointStore, EndpointValidationError, conflicts, validIfname, validateRegistration } from '../../../agent/endpoints.ts';
import type { EndpointInfo } from '../../../agent/api/types.ts';

const good = { containerId: 'abc123', netns: '/var/run/netns/cni-1', ifname: 'eth0', hostIfname: 'kl0123456789a', addresses: ['10.42.0.5'] };

t.test('a good registration passes, canonical addresses, optional pod fields', async (t) => {
  t.same(validateRegistration('abc123', good), good);
  const r = validateRegistration('abc123', { ...good, containerId: undefined, addresses: ['::ffff:10.42.0.9', 'FD00::1'], podNamespace: 'default', podName: 'p', podUid: 'u', extra: 1 });
  t.same(r.addresses, ['10.42.0.9', 'fd00::1'], 'v4-mapped folded, v6 lower-cased');
  t.match(r, { podNamespace: 'default', podName: 'p', podUid: 'u' });
  t.notOk('extra' in r, 'unknown fields ignored');
  const macs = validateRegistration('abc123', { ...good, podMac: '02:aa:bb:cc:dd:ee', hostMac: '0a:00:00:00:00:01' });
  t.match(macs, { podMac: '02:aa:bb:cc:dd:ee', hostMac: '0a:00:00:00:00:01' }, 'the MACs the plugin set');
});

t.test('bad registrations say what to fix', async (t) => {
  const bad: [string, unknown, RegExp][] = [
    ['', good, /invalid container id/],
    ['-abc', good, /invalid container id/],
    ['a/b', good, /invalid container id/],
    ['abc123', null, /JSON object/],
    ['abc123', [good], /JSON object/],
    ['abc123', { ...good, containerId: 'other' }, /differs from the one in the path/],
    ['abc123', { ...good, netns: 'cni-1' }, /netns must be the absolute path/],
    ['abc123', { ...good, netns: undefined }, /netns/],
    ['abc123', { ...good, ifname: '' }, /ifname/],
    ['abc123', { ...good, ifname: 'a-very-long-ifname' }, /ifname/],
    ['abc123', { ...good, hostIfname: 'kl/x' }, /hostIfname/],
    ['abc123', { ...good, addresses: [] }, /non-empty list/],
    ['abc123', { ...good, addresses: '10.42.0.5' }, /non-empty list/],
    ['abc123', { ...good, addresses: ['10.42.0.5/32'] }, /not an IP address/],
    ['abc123', { ...good, addresses: ['10.42.0.5', '10.42.0.5'] }, /listed twice/],
    ['abc123', { ...good, podName: 7 }, /podName must be a string/],
    ['abc123', { ...good, podMac: '02:AA:BB:CC:DD:EE' }, /podMac .* is not a unicast MAC/],
    ['abc123', { ...good, hostMac: '01:00:5e:00:00:01' }, /hostMac .* is not a unicast MAC/],
    ['abc123', { ...good, hostMac: '02:00:00:00:00' }, /hostMac/],
    ['abc123', { ...good, podMac: 2 }, /podMac/],
  ];
  for (const [id, body, re] of bad) {
    const e = (() => {
      try {
        validateRegistration(id, body);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    t.ok(e instanceof EndpointValidationError, `${id} ${JSON.stringify(body)?.slice(0, 60)} refused`);
    t.match((e as Error)?.message, re);
  }
  t.ok(validIfname('eth0') && validIfname('kl0123456789a') && !validIfname('..') && !validIfname('a b'));
});

const info = (id: string, addr: string, host: string): EndpointInfo => ({ ...good, containerId: id, addresses: [addr], hostIfname: host, identity: 0, programs: [], createdAt: 'x' });

t.test('conflicts: another endpoint holding the address or the interface', async (t) => {
  const existing = [info('a', '10.42.0.5', 'kla'), info('b', '10.42.0.6', 'klb')];
  t.same(conflicts({ ...good, containerId: 'a', addresses: ['10.42.0.5'], hostIfname: 'kla' }, existing), [], 're-registering itself is fine');
  t.same(conflicts({ ...good, containerId: 'c', addresses: ['10.42.0.6'], hostIfname: 'kla' }, existing), [
    'interface kla belongs to endpoint a',
    'address 10.42.0.6 belongs to endpoint b',
  ]);
});

t.test('store: persisted, reloaded, deletes idempotent, corrupt file refused', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kl-ep-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const s = new EndpointStore(join(dir, 'state'));
  t.same(s.load(), [], 'no file: empty');
  s.put(info('b', '10.42.0.6', 'klb'));
  s.put(info('a', '10.42.0.5', 'kla'));
  const again = new EndpointStore(join(dir, 'state'));
  t.same(again.load().map((e) => e.containerId), ['a', 'b'], 'reloaded, sorted');
  t.equal(again.delete('a'), true);
  t.equal(again.delete('a'), false, 'second delete: nothing to do');
  again.deleteMany(['b', 'zz']);
  t.same(new EndpointStore(join(dir, 'state')).load(), []);
  const file = JSON.parse(await readFile(join(dir, 'state', 'endpoints.json'), 'utf8')) as { version: number };
  t.equal(file.version, 1);
  await writeFile(join(dir, 'state', 'endpoints.json'), '{oops');
  t.throws(() => new EndpointStore(join(dir, 'state')).load(), /not valid JSON; move it aside/);
});
