import { readFileSync } from 'node:fs';
import t from 'tap';
import {
  distroFamily,
  distroFromOsRelease,
  OsReleaseError,
  osReleaseFromName,
  parseDistroFile,
  parseOsRelease,
  parseRedhatRelease,
} from '../../../kernel/os-release.ts';

const fixture = (name: string) => readFileSync(new URL(`../../fixtures/os-release/${name}`, import.meta.url), 'utf8');

t.test('fixtures map to their family', async (t) => {
  const table: [string, string, string, string | undefined][] = [
    // file, id, family, versionCodename
    ['centos-7', 'centos', 'el7', undefined],
    ['rhel-8', 'rhel', 'el8', undefined],
    ['rocky-9', 'rocky', 'el9', undefined],
    ['almalinux-8', 'almalinux', 'el8', undefined],
    ['ol-7', 'ol', 'el7', undefined],
    ['debian-8', 'debian', 'debian', 'jessie'],
    ['debian-9', 'debian', 'debian', 'stretch'],
    ['debian-12', 'debian', 'debian', 'bookworm'],
    ['raspbian-9', 'raspbian', 'raspbian', 'stretch'],
    ['ubuntu-14.04', 'ubuntu', 'ubuntu', undefined],
    ['ubuntu-16.04', 'ubuntu', 'ubuntu', 'xenial'],
    ['linuxmint-18', 'linuxmint', 'ubuntu', 'sylvia'],
    ['alpine-3.5', 'alpine', 'alpine', undefined],
    ['amzn-2', 'amzn', 'amzn', undefined],
    ['amzn-2023', 'amzn', 'amzn', undefined],
    ['sles-12', 'sles', 'suse', undefined],
    ['unknown-os', 'pebble', 'unknown', undefined],
  ];
  for (const [file, id, family, codename] of table) {
    const os = parseDistroFile(fixture(file), file);
    t.equal(os.id, id, `${file}: id`);
    t.equal(os.family, family, `${file}: family`);
    t.equal(os.versionCodename, codename, `${file}: codename`);
  }
});

t.test('EL6 has only /etc/redhat-release', async (t) => {
  const os = parseDistroFile(fixture('centos-6.redhat-release'));
  t.equal(os.id, 'centos');
  t.equal(os.versionId, '6.10');
  t.equal(os.majorVersion, 6);
  t.equal(os.family, 'el6');
  t.equal(os.prettyName, 'CentOS release 6.10 (Final)');
  t.equal(parseRedhatRelease('Red Hat Enterprise Linux Server release 7.9 (Maipo)')?.family, 'el7');
  t.equal(parseRedhatRelease('nothing here'), undefined);
});

t.test('quoting per os-release(5)', async (t) => {
  const os = parseOsRelease(fixture('unknown-os'));
  t.equal(os.name, 'Pebble OS', 'single quotes');
  t.equal(os.prettyName, 'Pebble "tiny" OS 0.3', 'escaped double quote');
  t.equal(os.versionId, '0.3', 'unquoted');
  const crlf = parseOsRelease('ID="ubuntu"\r\nVERSION_ID="22.04"\r\nnot a line\r\n#ID=fedora\r\n');
  t.equal(crlf.id, 'ubuntu');
  t.equal(crlf.versionId, '22.04');
  t.equal(crlf.family, 'ubuntu');
  t.same(Object.keys(crlf.fields), ['ID', 'VERSION_ID']);
  t.equal(parseOsRelease('NAME=Thing\n').id, 'linux', 'ID defaults to linux');
});

t.test('Amazon Linux is not EL despite ID_LIKE="centos rhel fedora"', async (t) => {
  t.equal(distroFamily('amzn', ['centos', 'rhel', 'fedora'], '2'), 'amzn');
  t.equal(distroFamily('fedora', [], '39'), 'fedora');
  t.equal(distroFamily('nobara', ['fedora'], '39'), 'fedora');
  t.equal(distroFamily('eurolinux', ['rhel', 'fedora', 'centos'], '9.2'), 'el9');
  t.equal(distroFamily('centos', ['rhel', 'fedora']), 'el', 'EL without a version');
  t.equal(distroFamily('opensuse-leap', ['suse', 'opensuse'], '15.5'), 'suse');
  t.equal(distroFamily('manjaro', ['arch'], undefined), 'arch');
});

t.test('not an os-release file', async (t) => {
  t.throws(() => parseDistroFile(fixture('not-os-release'), 'x'), OsReleaseError);
  t.throws(() => parseDistroFile('', 'empty'), { message: /empty is not an os-release file/ });
});

t.test('names from other sources', async (t) => {
  t.equal(osReleaseFromName('CentOS Linux', '7.9.2009').family, 'el7');
  t.equal(osReleaseFromName('Debian GNU/Linux', '12').family, 'debian');
  t.equal(osReleaseFromName('Something Else').id, 'something-else');
});

t.test('distroFromOsRelease keeps what the check reports', async (t) => {
  const d = distroFromOsRelease(parseOsRelease(fixture('linuxmint-18')));
  t.same(d, {
    id: 'linuxmint',
    idLike: ['ubuntu', 'debian'],
    family: 'ubuntu',
    source: 'os-release',
    versionId: '18.3',
    versionCodename: 'sylvia',
    ubuntuCodename: 'xenial',
    name: 'Linux Mint 18.3',
  });
});
