import t from 'tap';
import { execa } from 'execa';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { netns, rootSkipReason, scratchBpffs, start, testCgroup, veth } from '../../lib/sandbox.ts';

const skip = rootSkipReason();

t.test('namespaces, veth, bpffs and cgroups are made and removed', { skip }, async (t) => {
  let nsName = '';
  let bpffs = '';
  let cg = '';
  await t.test('make', async (t) => {
    const a = await netns(t, 'kl-sbx');
    const b = await netns(t, 'kl-sbx');
    nsName = a.name;
    await veth(t, { ns: a, addr: '192.0.2.1/24' }, { ns: b, addr: '192.0.2.2/24' });
    const routes = await a.run(['ip', '-j', 'route', 'show', 'default']);
    t.same(JSON.parse(routes), [], 'no default route: nothing can leave the box');
    const link = JSON.parse(await b.run(['ip', '-j', 'link', 'show', 'up'])) as { ifname: string }[];
    t.equal(link.length, 2, 'loopback and the veth end are up');
    bpffs = await scratchBpffs(t);
    const mounts = await readFile('/proc/self/mounts', 'utf8');
    t.match(mounts, ` ${bpffs} bpf `, 'bpffs mounted on the scratch dir');
    cg = await testCgroup(t);
    const p = start(t, ['sleep', '30'], { ns: a, cgroup: cg });
    await new Promise((r) => setTimeout(r, 100));
    const procs = await readFile(join(cg, 'cgroup.procs'), 'utf8');
    t.ok(procs.split('\n').includes(String(p.pid)), 'process joined the test cgroup');
  });
  const list = (await execa('ip', ['netns', 'list'])).stdout;
  t.notMatch(list, nsName, 'namespace removed');
  t.notMatch(await readFile('/proc/self/mounts', 'utf8'), ` ${bpffs} bpf `, 'bpffs unmounted');
  await t.rejects(stat(cg), 'cgroup removed');
});
