import { readFileSync } from 'node:fs';
import t from 'tap';
import { checkKernel, distroFromKernel, meetsMinimum, MINIMUM_KERNEL, type KernelCheckInput } from '../../../kernel/check.ts';
import { parseDistroFile } from '../../../kernel/os-release.ts';
import { effectiveKernel, KernelVersionError } from '../../../kernel/version.ts';

const osRelease = (name: string) =>
  parseDistroFile(readFileSync(new URL(`../../fixtures/os-release/${name}`, import.meta.url), 'utf8'), name);

t.test('the minimum is 4.9.17', async (t) => {
  t.equal(MINIMUM_KERNEL, '4.9.17');
});

t.test('boundaries around 4.9.17', async (t) => {
  const table: [string, KernelCheckInput, boolean, string][] = [
    ['4.9.16', { release: '4.9.16' }, false, '4.9.16'],
    ['4.9.17', { release: '4.9.17' }, true, '4.9.17'],
    ['4.9.18', { release: '4.9.18' }, true, '4.9.18'],
    ['4.9.17-rc1 sorts below 4.9.17', { release: '4.9.17-rc1' }, false, '4.9.17-rc.1'],
    ['4.10.0', { release: '4.10.0' }, true, '4.10.0'],
    ['4.10.0-rc1 is still above 4.9.17', { release: '4.10.0-rc1' }, true, '4.10.0-rc.1'],
    ['4.8.99', { release: '4.8.99' }, false, '4.8.99'],
    [
      '4.9.0-8 with Debian version 4.9.144',
      { release: '4.9.0-8-amd64', version: '#1 SMP Debian 4.9.144-3.1 (2019-02-19)' },
      true,
      '4.9.144',
    ],
    [
      '4.9.0-3 with Debian version 4.9.16 (hypothetical)',
      { release: '4.9.0-3-amd64', version: '#1 SMP Debian 4.9.16-1 (2017-03-01)' },
      false,
      '4.9.16',
    ],
    ['4.9.0-8 alone: the lower bound 4.9.0', { release: '4.9.0-8-amd64' }, false, '4.9.0'],
    ['3.10.0-1160.el7', { release: '3.10.0-1160.el7.x86_64' }, false, '3.10.0'],
    ['4.18.0-513.el8', { release: '4.18.0-513.5.1.el8_9.x86_64' }, true, '4.18.0'],
    ['Raspberry Pi 4.9.35-v7+', { release: '4.9.35-v7+' }, true, '4.9.35'],
    ['Raspberry Pi 4.4.50-v7+', { release: '4.4.50-v7+' }, false, '4.4.50'],
    ['Amazon Linux 2', { release: '4.14.336-253.554.amzn2.x86_64' }, true, '4.14.336'],
    ['WSL1', { release: '4.4.0-19041-Microsoft' }, false, '4.4.0'],
  ];
  for (const [what, input, ok, effective] of table) {
    const r = checkKernel(input);
    t.equal(r.ok, ok, `${what}: ok=${ok}`);
    t.equal(r.effective, effective, `${what}: effective`);
    t.equal(r.minimum, '4.9.17');
    t.equal(r.remedy === undefined, ok, `${what}: a remedy exactly when not ok`);
  }
});

t.test('meetsMinimum', async (t) => {
  t.ok(meetsMinimum('4.9.17'));
  t.notOk(meetsMinimum('4.9.16'));
  t.notOk(meetsMinimum('4.9.17-rc.9'));
  t.ok(meetsMinimum('5.4.0', '5.4.0'));
  t.notOk(meetsMinimum('5.3.99', '5.4.0'));
});

t.test('reasons say how the version was read', async (t) => {
  const plain = checkKernel({ release: '6.18.44-fc-v669' });
  t.equal(plain.reason, 'kernel 6.18.44 (release 6.18.44-fc-v669) meets the minimum 4.9.17');

  const el7 = checkKernel({ release: '3.10.0-1160.el7.x86_64' });
  t.equal(
    el7.reason,
    'kernel 3.10.0 (release 3.10.0-1160.el7.x86_64) is below the minimum 4.9.17; ' +
      'a Red Hat EL7 vendor kernel with backports, counted as its upstream base 3.10.0',
  );
  t.equal(el7.backports, true);

  const deb = checkKernel({ release: '4.9.0-8-amd64', version: '#1 SMP Debian 4.9.144-3.1 (2019-02-19)' });
  t.match(deb.reason, /^kernel 4\.9\.144 \(release 4\.9\.0-8-amd64, upstream patch level from Debian's uname -v\) meets/);
  t.equal(deb.source, 'debian-uname-v');

  const debOnly = checkKernel({ release: '4.9.0-8-amd64' });
  t.match(debOnly.reason, /only a lower bound: pass --version "\$\(uname -v\)"/);
  t.equal(debOnly.patchLevelKnown, false);

  const ubuntu = checkKernel({ release: '5.15.0-91-generic', version: '#101-Ubuntu SMP Tue Nov 14 13:30:08 UTC 2023' });
  t.match(ubuntu.reason, /--version-signature/);
  t.equal(ubuntu.ok, true);
  const ubuntuSig = checkKernel({ release: '5.15.0-91-generic', versionSignature: 'Ubuntu 5.15.0-91.101-generic 5.15.131' });
  t.match(ubuntuSig.reason, /^kernel 5\.15\.131 \(release 5\.15\.0-91-generic, upstream patch level from \/proc\/version_signature\)/);
  t.notMatch(ubuntuSig.reason, /backports/, 'a real upstream version is not "counted as its base"');

  const rc = checkKernel({ release: '4.9.17-rc1' });
  t.match(rc.reason, /is below the minimum 4\.9\.17; a release candidate, which sorts below 4\.9\.17$/);

  const elrepo = checkKernel({ release: '5.4.278-1.el7.elrepo.x86_64' });
  t.notMatch(elrepo.reason, /backports/);
  t.equal(elrepo.ok, true);

  const wsl1 = checkKernel({ release: '4.4.0-19041-Microsoft' });
  t.match(wsl1.reason, /WSL 1 has no Linux kernel/);
});

t.test('the distribution: from os-release, else from the kernel strings', async (t) => {
  const withFile = checkKernel({ release: '3.10.0-1160.el7.x86_64', osRelease: osRelease('centos-7') });
  t.same(withFile.distro, {
    id: 'centos',
    idLike: ['rhel', 'fedora'],
    family: 'el7',
    source: 'os-release',
    versionId: '7',
    name: 'CentOS Linux 7 (Core)',
  });
  t.equal(checkKernel({ release: '3.10.0-1160.el7.x86_64' }).distro.family, 'el7');
  t.equal(checkKernel({ release: '4.14.336-253.554.amzn2.x86_64' }).distro.family, 'amzn');
  t.equal(checkKernel({ release: '5.15.74-0-lts' }).distro.family, 'alpine');
  t.equal(checkKernel({ release: '4.4.0-210-generic' }).distro.family, 'ubuntu');
  t.same(checkKernel({ release: '6.6.8' }).distro, { id: 'unknown', idLike: [], family: 'unknown', source: 'none' });
  // An os-release naming an unknown family borrows the kernel's.
  const mixed = checkKernel({ release: '3.10.0-1160.el7.x86_64', osRelease: osRelease('unknown-os') });
  t.equal(mixed.distro.id, 'pebble');
  t.equal(mixed.distro.family, 'el7');
  t.equal(mixed.remedy?.kind, 'elrepo');
});

t.test('distroFromKernel', async (t) => {
  t.equal(distroFromKernel(effectiveKernel({ release: '6.9.7-1.el8.elrepo.x86_64' })).family, 'el8');
  t.equal(distroFromKernel(effectiveKernel({ release: '6.1.66-91.160.amzn2023.x86_64' })).versionId, '2023');
  t.equal(distroFromKernel(effectiveKernel({ release: '5.10.103-v7l+' })).family, 'raspbian');
  t.equal(distroFromKernel(effectiveKernel({ release: '6.6.8', version: '#1 SMP Debian 6.6.8-1 (2023-12-22)' })).family, 'debian');
});

t.test('bad input throws KernelVersionError', async (t) => {
  t.throws(() => checkKernel({ release: 'not-a-kernel' }), KernelVersionError);
  t.throws(() => checkKernel({ release: '5.4.0', version: 'whatever' }), KernelVersionError);
  t.throws(() => checkKernel({ release: '5.4.0', minimum: '4.9' }), KernelVersionError);
});

t.test('JSON fields come in a readable order', async (t) => {
  const r = checkKernel({ release: '4.9.0-8-amd64', version: '#1 SMP Debian 4.9.144-3.1 (2019-02-19)' });
  t.same(Object.keys(r), ['release', 'version', 'effective', 'minimum', 'ok', 'reason', 'distro', 'source', 'vendor', 'backports', 'patchLevelKnown']);
  const below = checkKernel({ release: '4.9.16' });
  t.same(Object.keys(below).slice(0, 6), ['release', 'effective', 'minimum', 'ok', 'reason', 'remedy']);
});
