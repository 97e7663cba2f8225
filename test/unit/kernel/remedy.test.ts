import { readFileSync } from 'node:fs';
import t from 'tap';
import { checkKernel } from '../../../kernel/check.ts';
import { parseDistroFile } from '../../../kernel/os-release.ts';
import { genericRemedy, KERNEL_UPGRADE_COMMAND } from '../../../kernel/remedy.ts';

const osRelease = (name: string) =>
  parseDistroFile(readFileSync(new URL(`../../fixtures/os-release/${name}`, import.meta.url), 'utf8'), name);

/** The remedy for an old kernel on the distribution of a fixture. */
function remedyOn(fixture: string, release: string, version?: string) {
  const r = checkKernel({ release, ...(version ? { version } : {}), osRelease: osRelease(fixture) });
  // Throwing fails the calling subtest.
  if (r.ok) throw new Error(`${fixture}: ${release} should be below the minimum`);
  if (!r.remedy) throw new Error(`${fixture}: no remedy`);
  return r.remedy;
}

t.test('EL7/8/9: the ELRepo upgrade that kinglet kernel upgrade runs', async (t) => {
  for (const [fixture, el] of [['centos-7', 7], ['ol-7', 7], ['rhel-8', 8], ['almalinux-8', 8], ['rocky-9', 9]] as const) {
    const r = remedyOn(fixture, '3.10.0-1160.el7.x86_64');
    t.equal(r.kind, 'elrepo', fixture);
    t.equal(r.kingletCommand, 'kinglet kernel upgrade');
    t.match(r.summary, /`kinglet kernel upgrade`/);
    t.match(r.summary, new RegExp(`EL${el}\\b`));
    t.same(r.packages, ['kernel-lt', 'kernel-ml']);
    t.ok(r.commands.some((c) => /--enablerepo=elrepo-kernel install -y kernel-lt/.test(c)), `${fixture}: installs kernel-lt`);
  }
  const el7 = remedyOn('centos-7', '3.10.0-1160.el7.x86_64');
  t.match(el7.summary, /el7 archive is gone/);
  t.match(el7.summary, /mirror/);
  t.ok(el7.commands[0]?.startsWith('yum '), 'EL7 uses yum');
  const el8 = remedyOn('rhel-8', '3.10.0-1160.el7.x86_64');
  t.notMatch(el8.summary, /mirror/, 'EL8 needs no mirror');
  t.equal(el8.commands[0], 'dnf install -y https://www.elrepo.org/elrepo-release-8.el8.elrepo.noarch.rpm');
  t.equal(KERNEL_UPGRADE_COMMAND, 'kinglet kernel upgrade');
});

t.test('EL7 inferred from the kernel alone still gets ELRepo', async (t) => {
  const r = checkKernel({ release: '3.10.0-957.el7.x86_64' });
  t.equal(r.remedy?.kind, 'elrepo');
  t.match(r.remedy?.summary ?? '', /el7 archive is gone/);
});

t.test('EL6: out of reach of ELRepo, reinstall', async (t) => {
  const r = remedyOn('centos-6.redhat-release', '2.6.32-754.35.1.el6.x86_64');
  t.equal(r.kind, 'os-upgrade');
  t.match(r.summary, /EL6/);
  t.notOk(r.kingletCommand);
});

t.test('Debian: linux-image from backports', async (t) => {
  const jessie = remedyOn('debian-8', '3.16.0-11-amd64', '#1 SMP Debian 3.16.84-1 (2020-06-09)');
  t.equal(jessie.kind, 'distro-package');
  t.same(jessie.packages, ['linux-image-amd64']);
  t.match(jessie.summary, /jessie-backports/);
  t.match(jessie.summary, /archive\.debian\.org/);
  t.ok(jessie.commands.includes('apt-get install -t jessie-backports linux-image-amd64'));
  const arm = remedyOn('debian-9', '4.9.0-3-arm64', '#1 SMP Debian 4.9.16-1 (2017-03-01)');
  t.same(arm.packages, ['linux-image-arm64'], 'the flavour of the running kernel');
  t.match(arm.summary, /stretch-backports/);
  t.notMatch(arm.summary, /archive/);
});

t.test('Raspberry Pi OS', async (t) => {
  const r = remedyOn('raspbian-9', '4.4.50-v7+');
  t.same(r.packages, ['raspberrypi-kernel']);
  t.match(r.summary, /apt full-upgrade/);
});

t.test('Ubuntu: HWE kernel, or a release upgrade', async (t) => {
  const xenial = remedyOn('ubuntu-16.04', '4.4.0-210-generic');
  t.equal(xenial.kind, 'distro-package');
  t.same(xenial.packages, ['linux-generic-hwe-16.04']);
  t.ok(xenial.commands.includes('apt-get install --install-recommends linux-generic-hwe-16.04'));
  const mint = remedyOn('linuxmint-18', '4.4.0-210-generic');
  t.same(mint.packages, ['linux-generic-hwe-16.04'], 'Mint 18 is based on xenial');
  const lowlatency = remedyOn('ubuntu-16.04', '4.4.0-210-lowlatency');
  t.same(lowlatency.packages, ['linux-lowlatency-hwe-16.04']);
  const trusty = remedyOn('ubuntu-14.04', '4.4.0-148-generic');
  t.equal(trusty.kind, 'os-upgrade');
  t.match(trusty.summary, /do-release-upgrade/);
  const yakkety = remedyOn('ubuntu-16.10', '4.8.0-59-generic');
  t.equal(yakkety.kind, 'os-upgrade', 'a non-LTS release has no HWE kernel');
});

t.test('Alpine: linux-lts or linux-virt', async (t) => {
  const hardened = remedyOn('alpine-3.5', '4.4.59-0-hardened');
  t.same(hardened.packages, ['linux-lts']);
  t.match(hardened.summary, /apk add linux-lts/);
  const virt = remedyOn('alpine-3.5', '4.4.59-0-virt');
  t.same(virt.packages, ['linux-virt']);
});

t.test('Amazon Linux', async (t) => {
  const al2 = remedyOn('amzn-2', '4.9.16-1.amzn2.x86_64');
  t.same(al2.packages, ['kernel-5.10']);
  t.match(al2.summary, /amazon-linux-extras install kernel-5\.10/);
  const al2023 = remedyOn('amzn-2023', '4.9.16-1.amzn2023.x86_64');
  t.same(al2023.packages, ['kernel']);
  t.match(al2023.summary, /dnf/);
});

t.test('SUSE', async (t) => {
  const r = remedyOn('sles-12', '4.4.180-94.97-default');
  t.same(r.packages, ['kernel-default']);
  t.match(r.summary, /SLES 15/);
});

t.test('WSL goes before the distribution', async (t) => {
  const wsl1 = remedyOn('ubuntu-16.04', '4.4.0-19041-Microsoft');
  t.equal(wsl1.kind, 'wsl');
  t.match(wsl1.summary, /wsl --set-version <distro> 2/);
  const wsl2 = checkKernel({ release: '4.4.1-microsoft-standard', osRelease: osRelease('debian-12') }).remedy;
  t.equal(wsl2?.kind, 'wsl');
  t.match(wsl2?.summary ?? '', /wsl --update/);
});

t.test('unknown distribution: generic advice', async (t) => {
  const r = remedyOn('unknown-os', '4.4.1');
  t.same(r, genericRemedy('4.9.17'));
  t.equal(r.kind, 'generic');
  t.match(r.summary, />= 4\.9\.17/);
  t.equal(checkKernel({ release: '4.4.1' }).remedy?.kind, 'generic', 'no os-release, no hint');
});
