import { readFileSync } from 'node:fs';
import t from 'tap';
import { run } from '../../../../../agent/cli/commands/kernel-check.ts';
import { main } from '../../../../../agent/cli/main.ts';
import { UsageError, type Io } from '../../../../../agent/cli/io.ts';

const fixture = (name: string) => new URL(`../../../../fixtures/os-release/${name}`, import.meta.url).pathname;

function capture(): Io & { stdout: string; stderr: string } {
  const io = {
    stdout: '',
    stderr: '',
    out(s: string) {
      io.stdout += s;
    },
    err(s: string) {
      io.stderr += s;
    },
  };
  return io;
}

t.test('human output: one line when ok', async (t) => {
  const io = capture();
  const rc = await run(['--release', '6.18.44-fc-v669'], io);
  t.equal(rc, 0);
  t.equal(io.stdout, 'kernel 6.18.44 (release 6.18.44-fc-v669) meets the minimum 4.9.17\n');
  t.equal(io.stderr, '');
});

t.test('human output: the remedy on the next line when below', async (t) => {
  const io = capture();
  const rc = await run(['--release', '3.10.0-1160.el7.x86_64', '--os-release', fixture('centos-7')], io);
  t.equal(rc, 1);
  const lines = io.stdout.trimEnd().split('\n');
  t.equal(lines.length, 2);
  t.match(lines[0], /^kernel 3\.10\.0 \(release 3\.10\.0-1160\.el7\.x86_64\) is below the minimum 4\.9\.17; a Red Hat EL7 vendor kernel with backports/);
  t.match(lines[1], /^remedy: run `kinglet kernel upgrade`.*el7 archive is gone/);
});

t.test('Debian: --version carries the patch level', async (t) => {
  const io = capture();
  const rc = await run(['--release', '4.9.0-8-amd64', '--version', '#1 SMP Debian 4.9.144-3.1 (2019-02-19)', '--json'], io);
  t.equal(rc, 0);
  const r = JSON.parse(io.stdout);
  t.equal(r.effective, '4.9.144');
  t.equal(r.ok, true);
  t.equal(r.remedy, undefined);
  t.equal(r.distro.family, 'debian');
  t.equal(r.distro.source, 'kernel');

  const without = capture();
  t.equal(await run(['--release', '4.9.0-8-amd64', '--json'], without), 1, 'without it, 4.9.0 is below');
});

t.test('--version may be a whole /proc/version line and then names the release', async (t) => {
  const io = capture();
  const line =
    'Linux version 4.9.0-8-amd64 (debian-kernel@lists.debian.org) (gcc version 6.3.0 20170516 (Debian 6.3.0-18+deb9u1) ) #1 SMP Debian 4.9.144-3.1 (2019-02-19)';
  t.equal(await run(['--version', line, '--json'], io), 0);
  const r = JSON.parse(io.stdout);
  t.equal(r.release, '4.9.0-8-amd64');
  t.equal(r.effective, '4.9.144');
});

t.test('Ubuntu: --version-signature', async (t) => {
  const io = capture();
  const rc = await run(
    ['--release', '5.15.0-91-generic', '--version-signature', 'Ubuntu 5.15.0-91.101-generic 5.15.131', '--json'],
    io,
  );
  t.equal(rc, 0);
  t.equal(JSON.parse(io.stdout).effective, '5.15.131');
});

t.test('--json: the fields, and the remedy when not ok', async (t) => {
  const io = capture();
  const rc = await run(['--release', '4.4.0-210-generic', '--os-release', fixture('ubuntu-16.04'), '--json'], io);
  t.equal(rc, 1);
  const r = JSON.parse(io.stdout);
  t.equal(r.release, '4.4.0-210-generic');
  t.equal(r.effective, '4.4.0');
  t.equal(r.minimum, '4.9.17');
  t.equal(r.ok, false);
  t.match(r.reason, /is below the minimum 4\.9\.17/);
  t.equal(r.remedy.kind, 'distro-package');
  t.same(r.remedy.packages, ['linux-generic-hwe-16.04']);
  t.equal(r.distro.id, 'ubuntu');
  t.equal(r.distro.versionId, '16.04');
  t.equal(r.distro.source, 'os-release');
});

t.test('without flags it checks the running host', async (t) => {
  const io = capture();
  const rc = await run(['--json'], io);
  const r = JSON.parse(io.stdout);
  t.equal(r.release, readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim());
  t.equal(rc, r.ok ? 0 : 1);
  t.equal(r.minimum, '4.9.17');
  t.type(r.distro.family, 'string');
});

t.test('--os-release alone: the host kernel with that distribution', async (t) => {
  const io = capture();
  await run(['--os-release', fixture('rocky-9'), '--json'], io);
  const r = JSON.parse(io.stdout);
  t.equal(r.release, readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim());
  t.equal(r.distro.id, 'rocky');
  t.equal(r.distro.family, 'el9');
});

t.test('bad input: UsageError (exit 2) from run()', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--release', 'banana'], /"banana" is not a kernel release/],
    [['--release', ''], /empty kernel release/],
    [['--release', '5.4.0', '--version', 'hello'], /"hello" is not a kernel version string/],
    [['--version', '#1 SMP Debian 4.9.144-3.1 (2019-02-19)'], /--release <uname -r> is needed/],
    [['--release', '5.4.0', '--os-release', '/nonexistent/os-release'], /--os-release: cannot read/],
    [['--release', '5.4.0', '--os-release', fixture('not-os-release')], /--os-release: .* is not an os-release file/],
    [['--frobnicate'], /Unknown option/],
    [['extra'], /positional/i],
  ];
  for (const [args, message] of cases) {
    await t.rejects(run(args, capture()), { name: 'UsageError', exitCode: 2, message }, args.join(' '));
  }
  await t.rejects(run(['--release', 'x'], capture()), UsageError);
});

t.test('through the dispatcher: exit codes, no stack trace', async (t) => {
  const ok = capture();
  t.equal(await main(['kernel', 'check', '--release', '4.9.17'], ok), 0);
  const below = capture();
  t.equal(await main(['kernel', 'check', '--release', '4.9.16'], below), 1);
  t.match(below.stdout, /^remedy: /m);
  const bad = capture();
  t.equal(await main(['kernel', 'check', '--release', 'not-a-version'], bad), 2);
  t.match(bad.stderr, /^kinglet kernel check: "not-a-version" is not a kernel release/);
  t.notMatch(bad.stderr, /\n\s+at /, 'no stack trace');
  t.equal(bad.stdout, '');
  const unreadable = capture();
  t.equal(await main(['kernel', 'check', '--os-release', '/nonexistent/x'], unreadable), 2);
  t.notMatch(unreadable.stderr, /\n\s+at /);
});

t.test('--help', async (t) => {
  const io = capture();
  t.equal(await run(['--help'], io), 0);
  t.match(io.stdout, /usage: kinglet kernel check/);
  t.match(io.stdout, /Exit status: 0 meets the minimum, 1 below it, 2 bad input/);
});
