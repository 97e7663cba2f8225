// bpffs and cgroup2 mount points from /proc/self/mounts (kernel/mounts.ts).
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { cgroup2Mount, parseMounts } from '../../../kernel/mounts.ts';

const MOUNTS = [
  'sysfs /sys sysfs rw 0 0',
  'bpf /sys/fs/bpf bpf rw 0 0',
  'cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0',
  'cgroup2 /sys/fs/cgroup/unified\\040v2 cgroup2 rw 0 0',
  'cgroup2 /run/other cgroup2 rw 0 0',
  'none /tmp/a\\040b bpf rw 0 0',
  '',
].join('\n');

t.test('parseMounts: in order, escapes undone, other types ignored', async (t) => {
  t.same(parseMounts(MOUNTS), { bpffs: ['/sys/fs/bpf', '/tmp/a b'], cgroup2: ['/sys/fs/cgroup/unified v2', '/run/other'] });
  t.same(parseMounts(''), { bpffs: [], cgroup2: [] });
});

t.test('cgroup2Mount: the first cgroup2 mount, as a usable path', async (t) => {
  t.equal(await cgroup2Mount(MOUNTS), '/sys/fs/cgroup/unified v2');
  t.equal(await cgroup2Mount('cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\n'), undefined, 'cgroup v1 only: none');
});

t.test('cgroup2Mount on this host agrees with /proc/self/mounts', async (t) => {
  const host = (await readFile('/proc/self/mounts', 'utf8')).split('\n').map((l) => l.split(' ')).find((f) => f[2] === 'cgroup2');
  t.equal(await cgroup2Mount(), host?.[1]?.replace(/\\040/g, ' '));
});
