// The ELRepo runbook planner (kernel/upgrade.ts): pure, from facts.
import t from 'tap';
import { planKernelUpgrade } from '../../../kernel/upgrade.ts';
import { describe } from '../../../installer/steps.ts';
import { fixture } from '../../lib/installer-helpers.ts';

const ELREPO = 'https://www.elrepo.org';
// Below the minimum by kernel/check.ts (EL8 never shipped one, but the
// planner must not care which EL release the old kernel came from).
const old = { release: '4.4.0-1.el8.x86_64' };

t.test('a current kernel plans nothing', async (t) => {
  const p = planKernelUpgrade(await fixture('rocky9'), { channel: 'lt', elrepoUrl: ELREPO });
  t.same([p.current, p.needsReboot, p.steps, p.problems], [true, false, [], []]);
});

t.test('EL8 kernel-ml: key, elrepo-release, kernel, grubby default, verified', async (t) => {
  const f = { ...(await fixture('rhel8')), kernel: old };
  const p = planKernelUpgrade(f, { channel: 'ml', elrepoUrl: ELREPO });
  t.equal(p.needsReboot, true);
  t.same(p.steps.map(describe), [
    'run     rpm --import https://www.elrepo.org/RPM-GPG-KEY-elrepo.org',
    'run     dnf install -y https://www.elrepo.org/elrepo-release-8.el8.elrepo.noarch.rpm',
    'run     dnf --enablerepo=elrepo-kernel install -y kernel-ml',
    p.steps[3] ? describe(p.steps[3]) : '',
    'check   grubby --default-kernel (stdout must match /elrepo/)',
  ]);
  t.match(describe(p.steps[3]!), /rpm -q --qf .* kernel-ml .*grubby --set-default/);
});

t.test('EL9 uses the v2 key; UEFI without grubby writes /boot/grub2/grub.cfg', async (t) => {
  const f = { ...(await fixture('rocky9')), kernel: old, commands: ['rpm', 'dnf', 'grub2-mkconfig'] };
  const p = planKernelUpgrade(f, { channel: 'lt', elrepoUrl: ELREPO });
  t.match(describe(p.steps[0]!), /RPM-GPG-KEY-v2-elrepo\.org$/);
  t.ok(p.steps.map(describe).includes('run     grub2-mkconfig -o /boot/grub2/grub.cfg'));
});

t.test('EL7: refuses without a mirror or RPMs, uses either when given', async (t) => {
  const f = await fixture('centos7-bios');
  const none = planKernelUpgrade(f, { channel: 'lt', elrepoUrl: ELREPO });
  t.equal(none.steps.length, 0);
  t.match(none.problems[0], { severity: 'fatal', message: /no longer serves EL7/, fix: /KINGLET_KERNEL_MIRROR/ });
  const dir = planKernelUpgrade(f, { channel: 'lt', elrepoUrl: ELREPO, rpmDir: '/srv/rpms' });
  t.match(describe(dir.steps[0]!), /yum localinstall -y .* \/srv\/rpms$/);
  const mirror = planKernelUpgrade({ ...f, commands: f.commands.filter((c) => c !== 'grubby') }, { channel: 'lt', elrepoUrl: ELREPO, mirror: 'http://m.example/el7' });
  t.ok(mirror.steps.map(describe).includes('run     grub2-mkconfig -o /boot/grub2/grub.cfg'), 'BIOS grub.cfg');
});

t.test('other distributions: which package gives a newer kernel', async (t) => {
  const cases: [string, RegExp][] = [['ubuntu2204', /linux-generic-hwe-22\.04/], ['debian12', /backports linux-image-arm64/], ['alpine', /apk add linux-lts/]];
  for (const [name, re] of cases) {
    const f = { ...(await fixture(name)), kernel: { release: '4.4.0' } };
    const p = planKernelUpgrade(f, { channel: 'lt', elrepoUrl: ELREPO });
    t.match(p.problems[0]?.fix, re, name);
    t.same(p.steps, []);
  }
});
