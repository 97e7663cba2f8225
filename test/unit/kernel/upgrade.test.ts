// The ELRepo runbook planner (kernel/upgrade.ts): pure, from facts.
import t from 'tap';
import { planKernelUpgrade } from '../../../kernel/upgrade.ts';
import { describe } from '../../../installer/steps.ts';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixture, kernelStubs, runWithStubs } from '../../lib/installer-helpers.ts';

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
    p.steps[4] ? describe(p.steps[4]) : '',
  ]);
  t.match(describe(p.steps[3]!), /^run .*rpm -q --qf .*grubby --set-default .* kernel-ml$/);
  t.match(p.steps[4], { kind: 'check', id: 'kernel.verify-default', argv: ['sh', '-c', /grubby --default-kernel/, 'kernel-ml'] });
});

// The default-entry steps' shell, run for real against rpm and grubby stand-ins.
async function stubs(t: Tap, installed: string[], bootDefault: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kinglet-kstubs-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return kernelStubs(dir, installed, bootDefault);
}
type Tap = { teardown(fn: () => unknown): void };
const step = (p: ReturnType<typeof planKernelUpgrade>, id: string) => {
  const s = p.steps.find((x) => x.id === id);
  if (!s || (s.kind !== 'run' && s.kind !== 'check')) throw new Error(`no ${id}`);
  return s.argv;
};

t.test('grubby: the newest installed kernel of the channel becomes the default, and only it passes the check', async (t) => {
  const p = planKernelUpgrade({ ...(await fixture('rhel8')), kernel: old }, { channel: 'lt', elrepoUrl: ELREPO });
  const older = '5.4.99-1.el8.elrepo.x86_64';
  const newer = '5.4.278-1.el8.elrepo.x86_64';
  const dir = await stubs(t, [older, newer], '/boot/vmlinuz-4.18.0-513.el8.x86_64');
  const before = runWithStubs(step(p, 'kernel.verify-default'), dir);
  t.equal(before.exitCode, 1, 'the distribution kernel is still the default: fails');
  t.match(before.stdout, `boot default: /boot/vmlinuz-4.18.0-513.el8.x86_64; newest kernel-lt: ${newer}`);
  t.equal(runWithStubs(step(p, 'kernel.default'), dir).exitCode, 0);
  t.equal(await readFile(join(dir, 'default'), 'utf8'), `/boot/vmlinuz-${newer}\n`, 'version-sorted: 5.4.278 over 5.4.99');
  t.equal(runWithStubs(step(p, 'kernel.verify-default'), dir).exitCode, 0);
  // An older ELRepo kernel as the default is not the new one (an "elrepo" match would pass it).
  await writeFile(join(dir, 'default'), `/boot/vmlinuz-${older}\n`);
  t.equal(runWithStubs(step(p, 'kernel.verify-default'), dir).exitCode, 1);

  const none = await stubs(t, [], '/boot/vmlinuz-4.18.0-513.el8.x86_64');
  const r = runWithStubs(step(p, 'kernel.default'), none);
  t.equal(r.exitCode, 1);
  t.match(r.stderr, /no kernel-lt is installed/);
  t.equal(await readFile(join(none, 'default'), 'utf8'), '/boot/vmlinuz-4.18.0-513.el8.x86_64\n', 'grubby not called');
  t.equal(runWithStubs(step(p, 'kernel.verify-default'), none).exitCode, 1);
});

t.test('grub2-mkconfig: the check reads the first menu entry of the right grub.cfg', async (t) => {
  const f = { ...(await fixture('centos7-uefi')) };
  const p = planKernelUpgrade(f, { channel: 'ml', elrepoUrl: ELREPO, rpmDir: '/srv/rpms' });
  const argv = step(p, 'kernel.verify-default');
  t.equal(argv.at(-1), '/boot/efi/EFI/centos/grub.cfg', 'UEFI on EL7: the vendor grub.cfg');
  const dir = await stubs(t, ['6.9.7-1.el7.elrepo.x86_64'], '');
  const cfg = join(dir, 'grub.cfg');
  const entry = (v: string) => `menuentry 'CentOS Linux (${v}) 7 (Core)' --class centos {\n}\n`;
  await writeFile(cfg, entry('6.9.7-1.el7.elrepo.x86_64') + entry('3.10.0-1160.el7.x86_64'));
  const ok = runWithStubs([...argv.slice(0, -1), cfg], dir);
  t.equal(ok.exitCode, 0, ok.stdout + ok.stderr);
  await writeFile(cfg, entry('3.10.0-1160.el7.x86_64') + entry('6.9.7-1.el7.elrepo.x86_64'));
  const bad = runWithStubs([...argv.slice(0, -1), cfg], dir);
  t.equal(bad.exitCode, 1);
  t.match(bad.stdout, /first entry: menuentry 'CentOS Linux \(3\.10\.0-1160/);
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
