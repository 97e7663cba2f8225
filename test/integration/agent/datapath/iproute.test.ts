// iproute2 helpers against a network namespace of the test's own (root).
import t from 'tap';
import { netns, rootSkipReason } from '../../../lib/sandbox.ts';
import { ipBatch, ipJson, linkInNetns, type IpLink } from '../../../../agent/datapath/iproute.ts';

const skip = rootSkipReason();

t.test('batches run inside a namespace; failing lines are named; reads parse JSON', { skip }, async (t) => {
  const ns = await netns(t, 'kl-iproute');
  const path = `/var/run/netns/${ns.name}`;
  t.same(await ipBatch(['link add kl-d0 type veth peer name kl-p0', 'address add 10.99.7.1/24 dev kl-d0', 'link set kl-d0 up'], { netnsPath: path }), [], 'all applied');
  const link = await linkInNetns(path, 'kl-d0');
  t.equal(link?.ifname, 'kl-d0', 'read back from the namespace');
  t.equal(await linkInNetns(path, 'kl-nope'), undefined, 'a missing device is undefined');
  const errors = await ipBatch(['link add kl-d1 type veth peer name kl-p1', 'link add kl-d0 type veth peer name kl-p2', 'link set kl-nope up'], { netnsPath: path, force: true });
  t.equal(errors.length, 2, 'two lines failed, with -force the rest still ran');
  t.match(errors[0], /^link add kl-d0 type veth peer name kl-p2: /, 'each error names its line');
  t.match(errors[1], /^link set kl-nope up: /);
  t.ok(await linkInNetns(path, 'kl-d1'), 'the good line after a failing one was applied');
  // ipJson runs in our own namespace: only parse, no change.
  const links = await ipJson<IpLink[]>(['link', 'show', 'lo']);
  t.equal(links[0]?.ifname, 'lo');
});

t.test('a missing ip command is a clear error, not a crash', { skip }, async (t) => {
  const saved = process.env.PATH;
  process.env.PATH = '/nonexistent';
  t.teardown(() => { process.env.PATH = saved; });
  await t.rejects(ipJson(['link', 'show']), /ip not found: install iproute2/);
  const errors = await ipBatch(['link show'], {});
  t.match(errors[0], /ip not found: install iproute2/);
});
