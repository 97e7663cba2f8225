// The host-facts adapter's parsers: /proc/self/mounts and fstab lines, and
// the enabled cgroup controllers.
import t from 'tap';
import { parseCgroupControllers, parseMounts } from '../../../installer/gather.ts';

t.test('mounts and fstab: source, target (octal-escaped spaces), type; comments skipped', async (t) => {
  t.same(parseMounts('# /etc/fstab\nbpffs /sys/fs/bpf bpf rw 0 0\n\n/dev/sdb1 /mnt/my\\040disk ext4 defaults 0 2\nbroken-line\n'), [
    { source: 'bpffs', target: '/sys/fs/bpf', fstype: 'bpf' },
    { source: '/dev/sdb1', target: '/mnt/my disk', fstype: 'ext4' },
  ]);
});

t.test('cgroup controllers: enabled rows of /proc/cgroups plus cgroup.controllers', async (t) => {
  const proc = '#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpuset\t0\t1\t1\ncpu\t0\t1\t1\nmemory\t0\t80\t0\npids\t0\t1\t1\n';
  t.same(parseCgroupControllers(proc, ''), ['cpu', 'cpuset', 'pids'], 'memory disabled (cgroup_disable=memory, Raspberry Pi OS)');
  t.same(parseCgroupControllers(proc, 'cpuset cpu io memory pids\n'), ['cpu', 'cpuset', 'io', 'memory', 'pids'], 'v2 lists its own');
  t.same(parseCgroupControllers('', ''), []);
});
