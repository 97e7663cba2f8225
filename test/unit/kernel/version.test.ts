import t from 'tap';
import {
  classifyVersion,
  compareKernel,
  debianUpstreamFromVersion,
  effectiveKernel,
  KernelVersionError,
  parseProcVersion,
  parseRelease,
  parseVersionSignature,
  releaseHint,
  type EffectiveKernel,
  type VersionInput,
} from '../../../kernel/version.ts';

interface Row {
  what: string;
  input: VersionInput;
  effective: string;
  expect?: Partial<EffectiveKernel>;
}

// Real-world strings, by distribution.
const rows: Row[] = [
  // Red Hat and rebuilds: upstream base plus backports.
  { what: 'CentOS 6', input: { release: '2.6.32-754.35.1.el6.x86_64' }, effective: '2.6.32', expect: { vendor: 'redhat', el: 6, backports: true } },
  { what: 'CentOS 7', input: { release: '3.10.0-1160.119.1.el7.x86_64' }, effective: '3.10.0', expect: { vendor: 'redhat', el: 7, backports: true } },
  { what: 'RHEL 8.9', input: { release: '4.18.0-513.5.1.el8_9.x86_64' }, effective: '4.18.0', expect: { vendor: 'redhat', el: 8, backports: true } },
  { what: 'RHEL 9.3', input: { release: '5.14.0-362.8.1.el9_3.x86_64' }, effective: '5.14.0', expect: { vendor: 'redhat', el: 9 } },
  { what: 'CentOS Stream 9 aarch64', input: { release: '5.14.0-437.el9.aarch64' }, effective: '5.14.0', expect: { vendor: 'redhat', el: 9 } },
  { what: 'Oracle UEK 6', input: { release: '5.4.17-2136.330.7.1.el8uek.x86_64' }, effective: '5.4.17', expect: { vendor: 'oracle-uek', el: 8, backports: true } },
  // ELRepo: real upstream versions.
  { what: 'ELRepo kernel-lt el7', input: { release: '5.4.278-1.el7.elrepo.x86_64' }, effective: '5.4.278', expect: { vendor: 'elrepo', el: 7, backports: false } },
  { what: 'ELRepo kernel-ml el8', input: { release: '6.9.7-1.el8.elrepo.x86_64' }, effective: '6.9.7', expect: { vendor: 'elrepo', el: 8 } },
  { what: 'ELRepo kernel-lt el9', input: { release: '6.1.96-1.el9.elrepo.x86_64' }, effective: '6.1.96', expect: { vendor: 'elrepo', el: 9 } },
  // Debian: the upstream patch level is in uname -v.
  {
    what: 'Debian 8',
    input: { release: '3.16.0-11-amd64', version: '#1 SMP Debian 3.16.84-1 (2020-06-09)' },
    effective: '3.16.84',
    expect: { vendor: 'debian', source: 'debian-uname-v', flavour: 'amd64', patchLevelKnown: true },
  },
  {
    what: 'Debian 9',
    input: { release: '4.9.0-8-amd64', version: '#1 SMP Debian 4.9.144-3.1 (2019-02-19)' },
    effective: '4.9.144',
    expect: { vendor: 'debian', source: 'debian-uname-v', base: '4.9.0' },
  },
  {
    what: 'Debian 10',
    input: { release: '4.19.0-26-amd64', version: '#1 SMP Debian 4.19.304-1 (2024-01-09)' },
    effective: '4.19.304',
  },
  {
    what: 'Debian 11 stretch-style backport',
    input: { release: '5.10.0-0.deb10.16-amd64', version: '#1 SMP Debian 5.10.127-2~bpo10+1 (2022-07-28)' },
    effective: '5.10.127',
    expect: { vendor: 'debian', flavour: 'amd64' },
  },
  {
    what: 'Debian 12 arm64',
    input: { release: '6.1.0-18-arm64', version: '#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)' },
    effective: '6.1.76',
    expect: { flavour: 'arm64' },
  },
  {
    what: 'Debian 9, whole /proc/version line (the compiler says Debian 6.3.0 too)',
    input: {
      release: '4.9.0-8-amd64',
      version:
        'Linux version 4.9.0-8-amd64 (debian-kernel@lists.debian.org) (gcc version 6.3.0 20170516 (Debian 6.3.0-18+deb9u1) ) #1 SMP Debian 4.9.144-3.1 (2019-02-19)',
    },
    effective: '4.9.144',
  },
  {
    what: 'Debian release alone hides the patch level',
    input: { release: '4.9.0-8-amd64' },
    effective: '4.9.0',
    expect: { vendor: 'debian', patchLevelKnown: false, source: 'release' },
  },
  // Ubuntu: the patch level is in /proc/version_signature.
  {
    what: 'Ubuntu 22.04 without signature',
    input: { release: '5.15.0-91-generic', version: '#101-Ubuntu SMP Tue Nov 14 13:30:08 UTC 2023' },
    effective: '5.15.0',
    expect: { vendor: 'ubuntu', flavour: 'generic', patchLevelKnown: false },
  },
  {
    what: 'Ubuntu 22.04 with signature',
    input: {
      release: '5.15.0-91-generic',
      version: '#101-Ubuntu SMP Tue Nov 14 13:30:08 UTC 2023',
      versionSignature: 'Ubuntu 5.15.0-91.101-generic 5.15.131',
    },
    effective: '5.15.131',
    expect: { vendor: 'ubuntu', source: 'ubuntu-version-signature', patchLevelKnown: true },
  },
  {
    what: 'Ubuntu signature given as --version',
    input: { release: '6.5.0-14-generic', version: 'Ubuntu 6.5.0-14.14~22.04.1-generic 6.5.3' },
    effective: '6.5.3',
    expect: { source: 'ubuntu-version-signature' },
  },
  { what: 'Ubuntu 16.04', input: { release: '4.4.0-210-generic', version: '#242-Ubuntu SMP Fri Apr 16 09:57:56 UTC 2021' }, effective: '4.4.0' },
  { what: 'Ubuntu 20.04 HWE lowlatency', input: { release: '5.15.0-107-lowlatency' }, effective: '5.15.0', expect: { vendor: 'ubuntu', flavour: 'lowlatency' } },
  // Amazon Linux.
  { what: 'Amazon Linux 2 (4.14)', input: { release: '4.14.336-253.554.amzn2.x86_64' }, effective: '4.14.336', expect: { vendor: 'amazon', amzn: '2', backports: false } },
  { what: 'Amazon Linux 2 (5.10 extras)', input: { release: '5.10.210-201.852.amzn2.x86_64' }, effective: '5.10.210', expect: { amzn: '2' } },
  { what: 'Amazon Linux 2023', input: { release: '6.1.66-91.160.amzn2023.x86_64' }, effective: '6.1.66', expect: { amzn: '2023' } },
  { what: 'Amazon Linux 1', input: { release: '4.14.355-196.643.amzn1.x86_64' }, effective: '4.14.355', expect: { amzn: '1' } },
  // Alpine.
  { what: 'Alpine lts', input: { release: '5.15.74-0-lts' }, effective: '5.15.74', expect: { vendor: 'alpine', flavour: 'lts' } },
  { what: 'Alpine virt', input: { release: '6.6.31-0-virt' }, effective: '6.6.31', expect: { vendor: 'alpine', flavour: 'virt' } },
  { what: 'Alpine 3.5 hardened', input: { release: '4.4.59-0-hardened' }, effective: '4.4.59', expect: { vendor: 'alpine' } },
  // Raspberry Pi OS.
  { what: 'Raspberry Pi 4 32-bit', input: { release: '5.10.103-v7l+' }, effective: '5.10.103', expect: { vendor: 'raspberrypi' } },
  { what: 'Raspberry Pi 64-bit', input: { release: '6.1.21-v8+' }, effective: '6.1.21', expect: { vendor: 'raspberrypi' } },
  {
    what: 'Raspberry Pi OS bookworm',
    input: { release: '6.6.20+rpt-rpi-v8', version: '#1 SMP PREEMPT Debian 1:6.6.20-1+rpt1 (2024-03-07)' },
    effective: '6.6.20',
    expect: { vendor: 'raspberrypi' },
  },
  { what: 'Raspbian stretch', input: { release: '4.9.35-v7+' }, effective: '4.9.35', expect: { vendor: 'raspberrypi' } },
  // WSL.
  { what: 'WSL2 (four components)', input: { release: '5.15.153.1-microsoft-standard-WSL2' }, effective: '5.15.153', expect: { vendor: 'wsl2' } },
  { what: 'WSL2 (older)', input: { release: '4.19.128-microsoft-standard' }, effective: '4.19.128', expect: { vendor: 'wsl2' } },
  { what: 'WSL1', input: { release: '4.4.0-19041-Microsoft' }, effective: '4.4.0', expect: { vendor: 'wsl1' } },
  // Release candidates sort below their release.
  { what: 'mainline rc', input: { release: '6.7.0-rc3' }, effective: '6.7.0-rc.3', expect: { rc: 3 } },
  { what: 'rc with local changes', input: { release: '5.19.0-rc7+' }, effective: '5.19.0-rc.7' },
  {
    what: 'Fedora rawhide rc',
    input: { release: '6.7.0-0.rc3.20231201git815fb87b7530.31.fc40.x86_64' },
    effective: '6.7.0-rc.3',
    expect: { vendor: 'fedora' },
  },
  // Others.
  { what: 'Fedora 39', input: { release: '6.5.6-300.fc39.x86_64' }, effective: '6.5.6', expect: { vendor: 'fedora' } },
  { what: 'Arch', input: { release: '6.7.4-arch1-1' }, effective: '6.7.4', expect: { vendor: 'arch' } },
  { what: 'SLES 15 SP5', input: { release: '5.14.21-150500.55.39-default' }, effective: '5.14.21', expect: { vendor: 'suse', backports: true } },
  { what: 'Proxmox', input: { release: '6.5.11-7-pve' }, effective: '6.5.11', expect: { vendor: 'proxmox' } },
  { what: 'this sandbox (Firecracker)', input: { release: '6.18.44-fc-v669' }, effective: '6.18.44', expect: { vendor: undefined, backports: false } },
  { what: 'plain upstream', input: { release: '4.9.17' }, effective: '4.9.17', expect: { source: 'release', patchLevelKnown: true } },
  { what: 'two components', input: { release: '6.5' }, effective: '6.5.0' },
  { what: 'kernel.org build with +', input: { release: '6.6.8+' }, effective: '6.6.8', expect: { vendor: undefined } },
];

t.test('effective upstream version of real-world kernels', async (t) => {
  for (const row of rows) {
    const k = effectiveKernel(row.input);
    t.equal(k.effective, row.effective, `${row.what}: ${row.input.release} -> ${row.effective}`);
    for (const [key, value] of Object.entries(row.expect ?? {})) {
      t.same((k as unknown as Record<string, unknown>)[key], value, `${row.what}: ${key}`);
    }
  }
});

t.test('upstream strings from another series are ignored, with a note', async (t) => {
  const k = effectiveKernel({ release: '4.19.0-8-amd64', version: '#1 SMP Debian 4.9.144-3.1 (2019-02-19)' });
  t.equal(k.effective, '4.19.0');
  t.equal(k.source, 'release');
  t.match(k.notes.join(' '), /ignored Debian's uname -v \(4\.9\.144\)/);
  const s = effectiveKernel({ release: '5.15.0-91-generic', versionSignature: 'Ubuntu 5.4.0-150.167-generic 5.4.268' });
  t.equal(s.effective, '5.15.0');
  t.equal(s.notes.length, 1);
});

t.test('release candidates sort below the release, and numerically', async (t) => {
  t.ok(compareKernel('4.9.17-rc.1', '4.9.17') < 0);
  t.ok(compareKernel('6.7.0-rc.10', '6.7.0-rc.9') > 0);
  t.ok(compareKernel('4.10.0', '4.9.17') > 0);
  t.equal(compareKernel('4.9.17', '4.9.17'), 0);
});

t.test('parseRelease', async (t) => {
  t.same(parseRelease('3.10.0-1160.el7.x86_64'), { major: 3, minor: 10, patch: 0, patchGiven: true, suffix: '-1160.el7.x86_64' });
  t.same(parseRelease(' 6.5 '), { major: 6, minor: 5, patch: 0, patchGiven: false, suffix: '' });
  t.equal(parseRelease('6.7.0-rc3').rc, 3);
  t.equal(parseRelease('5.4.0-src1').rc, undefined, '"src1" is not a release candidate');
});

t.test('garbage is not a kernel release', async (t) => {
  const garbage = ['', '   ', 'banana', 'v5.4.0', '5', '5.x', 'Linux', '4.9.17 extra', '-4.9.17', '4.9abc', '99999.1.1', '4.9.17/../x', '4..9'];
  for (const g of garbage) {
    t.throws(() => parseRelease(g), KernelVersionError, JSON.stringify(g));
    t.throws(() => effectiveKernel({ release: g }), KernelVersionError, `effectiveKernel ${JSON.stringify(g)}`);
  }
  t.throws(() => parseRelease('banana'), { message: /"banana" is not a kernel release/ });
});

t.test('garbage is not a kernel version string', async (t) => {
  for (const g of ['hello', 'SMP Debian 4.9.144-3.1', 'Linux version', 'Ubuntu nonsense']) {
    t.throws(() => classifyVersion(g), KernelVersionError, JSON.stringify(g));
    t.throws(() => effectiveKernel({ release: '4.9.0-8-amd64', version: g }), KernelVersionError);
  }
  t.throws(() => effectiveKernel({ release: '5.15.0-91-generic', versionSignature: 'garbage' }), KernelVersionError);
  t.throws(
    () => effectiveKernel({ release: '5.10.0-8-amd64', version: 'Linux version 4.9.0-8-amd64 (x) #1 SMP Debian 4.9.144-3.1 (2019-02-19)' }),
    { name: 'KernelVersionError', message: /differs/ },
    'a /proc/version line for another release',
  );
});

t.test('parseProcVersion splits release and uname -v', async (t) => {
  t.same(
    parseProcVersion(
      'Linux version 6.18.44-fc-v669 (builder@sandboxing) (gcc (GCC) 15.3.0, GNU ld (GNU Binutils) 2.46) #1 SMP PREEMPT_DYNAMIC @0\n',
    ),
    { release: '6.18.44-fc-v669', version: '#1 SMP PREEMPT_DYNAMIC @0' },
  );
  t.same(parseProcVersion('Linux version 3.10.0-1160.el7.x86_64 (mockbuild@kbuilder.bsys.centos.org) (gcc version 4.8.5 20150623 (Red Hat 4.8.5-44) (GCC) ) #1 SMP Mon Oct 19 16:18:59 UTC 2020'), {
    release: '3.10.0-1160.el7.x86_64',
    version: '#1 SMP Mon Oct 19 16:18:59 UTC 2020',
  });
  t.equal(parseProcVersion('not a proc version'), undefined);
});

t.test('version signature and Debian uname -v', async (t) => {
  const sig = parseVersionSignature('Ubuntu 5.15.0-91.101-generic 5.15.131');
  t.equal(sig?.build, '5.15.0-91.101-generic');
  t.equal(sig?.upstream.patch, 131);
  t.equal(parseVersionSignature('Debian 4.9.144'), undefined);
  t.equal(debianUpstreamFromVersion('#1 SMP Debian 6.7~rc3-1~exp1 (2023-12-01)')?.rc, 3);
  t.equal(debianUpstreamFromVersion('#1 SMP PREEMPT Debian 1:6.6.20-1+rpt1 (2024-03-07)')?.patch, 20);
  t.equal(debianUpstreamFromVersion('#101-Ubuntu SMP Tue Nov 14 13:30:08 UTC 2023'), undefined);
});

t.test('releaseHint does not take a bare + or -generic mainline suffix for a Pi', async (t) => {
  t.equal(releaseHint('6.6.8+').vendor, undefined);
  t.equal(releaseHint('5.10.103-v7l+').vendor, 'raspberrypi');
  t.equal(releaseHint('5.15.0-1034-raspi').vendor, 'ubuntu');
});
