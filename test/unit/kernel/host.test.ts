import { readFileSync } from 'node:fs';
import t from 'tap';
import { readHostKernel, readHostOsRelease, readOsReleaseFile } from '../../../kernel/host.ts';
import { OsReleaseError } from '../../../kernel/os-release.ts';
import { effectiveKernel } from '../../../kernel/version.ts';

const fixtures = new URL('../../fixtures/os-release/', import.meta.url);

t.test('readHostKernel reads the running kernel', async (t) => {
  const k = await readHostKernel();
  t.equal(k.release, readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim());
  t.equal(k.version, readFileSync('/proc/sys/kernel/version', 'utf8').trim());
  t.match(k.version ?? '', /^#\d+/, 'uname -v starts with the build number');
  // Whatever this host runs, its strings are kernel versions.
  t.match(effectiveKernel(k).effective, /^\d+\.\d+\.\d+/);
});

t.test('readHostOsRelease reads /etc/os-release when there is one', { skip: !hasFile('/etc/os-release') && 'no /etc/os-release here' }, async (t) => {
  const os = await readHostOsRelease();
  const id = /^ID="?([^"\n]+)"?$/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1];
  t.equal(os?.id, id);
});

t.test('readOsReleaseFile', async (t) => {
  const os = await readOsReleaseFile(new URL('rocky-9', fixtures).pathname);
  t.equal(os.family, 'el9');
  const el6 = await readOsReleaseFile(new URL('centos-6.redhat-release', fixtures).pathname);
  t.equal(el6.family, 'el6');
  await t.rejects(readOsReleaseFile('/nonexistent/os-release'), { name: 'OsReleaseError', message: /cannot read \/nonexistent\/os-release: no such file/ });
  await t.rejects(readOsReleaseFile(new URL('.', fixtures).pathname), OsReleaseError, 'a directory');
  await t.rejects(readOsReleaseFile(new URL('not-os-release', fixtures).pathname), { message: /is not an os-release file/ });
});

function hasFile(p: string): boolean {
  try {
    readFileSync(p);
    return true;
  } catch {
    return false;
  }
}
