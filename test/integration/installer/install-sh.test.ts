// install.sh: dash and shellcheck clean; against a loopback HTTP mirror
// (127.0.0.1, ephemeral port, started and stopped here) serving fixture
// tarballs built by this test: checksums verified, a wrong one rejected,
// the hand-over to `kinglet install` carries the settings intact, and a
// truncated script runs nothing.
import t from 'tap';
import { spawnSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '../../../install.sh');
const NODE_V = '22.99.0';

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

t.test('dash -n', { skip: !have('dash') && 'dash is not installed (apt-get install dash)' }, async (t) => {
  const r = spawnSync('dash', ['-n', SCRIPT], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
});

t.test('shellcheck', { skip: !have('shellcheck') && 'shellcheck is not installed (apt-get install shellcheck)' }, async (t) => {
  const r = spawnSync('shellcheck', ['-s', 'sh', SCRIPT], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stdout + r.stderr);
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

// What the hand-over target does in these tests: write its argv and the
// settings it received to $KINGLET_TEST_RECORD.
const RECORDER_TS = `import { writeFileSync } from 'node:fs';
const env = Object.entries(process.env).filter(([k]) => /^(KINGLET|K3S|INSTALL_K3S)_/.test(k)).sort();
writeFileSync(process.env.KINGLET_TEST_RECORD!, JSON.stringify({ via: 'kinglet.ts', argv: process.argv.slice(2), env: Object.fromEntries(env) }));
`;
const STUB_NODE = `#!/bin/sh
# A stand-in node binary: answers the version probe, records the hand-over.
if [ "$1" = -p ]; then echo ${NODE_V}; exit 0; fi
{ printf 'script=%s\\n' "$1"; shift; printf 'arg=%s\\n' "$@"; env | grep -E '^(KINGLET|K3S|INSTALL_K3S)_' | sort; } > "$KINGLET_TEST_RECORD"
`;

async function tarball(src: string, out: string): Promise<Buffer> {
  const r = spawnSync('tar', ['-czf', out, '-C', dirname(src), src.split('/').at(-1)!]);
  if (r.status !== 0) throw new Error(`tar failed: ${r.stderr}`);
  return readFile(out);
}

interface Mirror { base: string; requests: string[]; server: Server }

async function setup(t: Tap): Promise<{ dir: string; script: string; mirror: Mirror; bundleSha: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'kinglet-installsh-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const www = join(dir, 'www');
  // Node.js, both flavours, nodejs.org/dist layout.
  for (const [sub, flavour] of [['node', ''], ['node217', '-glibc-217']] as const) {
    const name = `node-v${NODE_V}-linux-x64${flavour}`;
    const src = join(dir, 'src', sub, name);
    await mkdir(join(src, 'bin'), { recursive: true });
    await writeFile(join(src, 'bin/node'), STUB_NODE);
    await chmod(join(src, 'bin/node'), 0o755);
    await mkdir(join(www, sub, `v${NODE_V}`), { recursive: true });
    const tgz = await tarball(src, join(www, sub, `v${NODE_V}`, `${name}.tar.gz`));
    await writeFile(join(www, sub, `v${NODE_V}`, 'SHASUMS256.txt'), `${'0'.repeat(64)}  node-v${NODE_V}-linux-arm64${flavour}.tar.gz\n${sha(tgz)}  ${name}.tar.gz\n`);
  }
  // The kinglet bundle: one top-level directory, with a recording kinglet.ts.
  const b = join(dir, 'src', 'kinglet-0.1.0');
  await mkdir(join(b, 'agent/cli'), { recursive: true });
  await writeFile(join(b, 'agent/cli/kinglet.ts'), RECORDER_TS);
  const tgz = await tarball(b, join(www, 'kinglet-0.1.0.tar.gz'));
  await writeFile(join(www, 'kinglet-0.1.0.tar.gz.sha256'), `${sha(tgz)}  kinglet-0.1.0.tar.gz\n`);

  const requests: string[] = [];
  const server = createServer(async (req, res) => {
    requests.push(req.url ?? '');
    // /slow/<path>: the first half at once, the rest 2.5s later (a slow link);
    // /late/<path>: nothing for 1.5s, then all of it (a slow server).
    const slow = (req.url ?? '').startsWith('/slow/');
    const late = (req.url ?? '').startsWith('/late/');
    try {
      const body = await readFile(join(www, decodeURIComponent((req.url ?? '/').replace(/^\/(slow|late)\//, '/').split('?')[0]!)));
      if (late) await new Promise((r) => setTimeout(r, 1500));
      res.writeHead(200, { 'content-length': body.length });
      if (!slow) return void res.end(body);
      res.write(body.subarray(0, body.length >> 1));
      setTimeout(() => res.end(body.subarray(body.length >> 1)), 2500);
    } catch {
      res.writeHead(404).end('not found\n');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const addr = server.address();
  if (!addr || typeof addr === 'string') throw new Error('no port');
  // The script runs as a copy outside the checkout (from a checkout it would use that instead of a bundle).
  const script = join(dir, 'install.sh');
  await copyFile(SCRIPT, script);
  return { dir, script, bundleSha: sha(tgz), mirror: { base: `http://127.0.0.1:${addr.port}`, requests, server } };
}

type Tap = { teardown(fn: () => unknown): void };

/** What the script runs with besides the test's own settings. */
function scriptEnv(): Record<string, string> {
  return { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: '/tmp' };
}

function runScript(script: string, env: Record<string, string>): Promise<{ code: number; stderr: string; stdout: string }> {
  return new Promise((resolve) => {
    const p = spawn('dash', [script], { env: { ...scriptEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('close', (code) => resolve({ code: code ?? 1, stderr, stdout }));
  });
}

const root = process.getuid?.() === 0;
const why = 'install.sh uses sudo when not root; run the integration suite as root';

t.test('downloads Node.js and the bundle, verifies both, hands over with settings intact', { skip: !have('dash') ? 'dash missing' : !root && why }, async (t) => {
  const { dir, mirror, script } = await setup(t);
  const record = join(dir, 'record.txt');
  const env = {
    KINGLET_INSTALL_DIR: join(dir, 'opt'),
    KINGLET_NODE_MIRROR: `${mirror.base}/node`,
    KINGLET_NODE_VERSION: NODE_V,
    KINGLET_FORCE_NODE_DOWNLOAD: '1',
    KINGLET_GLIBC_VERSION: '2.36',
    KINGLET_BUNDLE_URL: `${mirror.base}/kinglet-0.1.0.tar.gz`,
    KINGLET_DRY_RUN: '1',
    KINGLET_KERNEL_CHANNEL: 'ml',
    K3S_URL: 'https://10.0.0.1:6443',
    K3S_TOKEN: "K10tok'en with spaces",
    INSTALL_K3S_EXEC: '--node-label a=b --node-ip 10.0.0.2',
    KINGLET_TEST_RECORD: record,
  };
  const r = await runScript(script, env);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, /sha256 verified: node-v22\.99\.0-linux-x64\.tar\.gz/);
  t.match(r.stderr, /sha256 verified: kinglet bundle/);
  const rec = await readFile(record, 'utf8');
  t.match(rec, `script=${join(dir, 'opt/bundle/agent/cli/kinglet.ts')}\n`);
  t.match(rec, 'arg=install\narg=--dry-run\n');
  t.match(rec, "K3S_TOKEN=K10tok'en with spaces\n");
  t.match(rec, 'INSTALL_K3S_EXEC=--node-label a=b --node-ip 10.0.0.2\n');
  t.match(rec, 'K3S_URL=https://10.0.0.1:6443\n');
  t.match(rec, 'KINGLET_KERNEL_CHANNEL=ml\n');
  t.ok((await stat(join(dir, 'opt/node/bin/node'))).isFile(), 'node unpacked');
  t.notMatch(r.stderr, /K10tok/, 'the token is not logged');
  t.same(mirror.requests, [`/node/v${NODE_V}/SHASUMS256.txt`, `/node/v${NODE_V}/node-v${NODE_V}-linux-x64.tar.gz`, '/kinglet-0.1.0.tar.gz', '/kinglet-0.1.0.tar.gz.sha256']);
});

t.test('glibc < 2.28 gets the glibc-2.17 build; system node >= 22 is used when present', { skip: !have('dash') ? 'dash missing' : !root && why }, async (t) => {
  const { dir, mirror, bundleSha, script } = await setup(t);
  const record = join(dir, 'record.txt');
  const base = {
    KINGLET_INSTALL_DIR: join(dir, 'opt'), KINGLET_NODE_VERSION: NODE_V,
    KINGLET_BUNDLE_URL: `${mirror.base}/kinglet-0.1.0.tar.gz`, KINGLET_BUNDLE_SHA256: bundleSha.toUpperCase(),
    KINGLET_TEST_RECORD: record,
  };
  const r = await runScript(script, { ...base, KINGLET_FORCE_NODE_DOWNLOAD: '1', KINGLET_GLIBC_VERSION: '2.17', KINGLET_NODE_GLIBC217_MIRROR: `${mirror.base}/node217` });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, /glibc 2\.17 < 2\.28: using the glibc-2\.17 build/);
  t.ok(mirror.requests.includes(`/node217/v${NODE_V}/node-v${NODE_V}-linux-x64-glibc-217.tar.gz`));
  t.notOk(mirror.requests.includes('/kinglet-0.1.0.tar.gz.sha256'), 'KINGLET_BUNDLE_SHA256 used, no .sha256 fetched');

  // This machine's node is >= 22: no download, and the real kinglet.ts of the bundle runs.
  mirror.requests.length = 0;
  const r2 = await runScript(script, base);
  t.equal(r2.code, 0, r2.stderr);
  t.match(r2.stderr, /using system Node\.js/);
  t.same(mirror.requests, ['/kinglet-0.1.0.tar.gz']);
  const rec = JSON.parse(await readFile(record, 'utf8'));
  t.same(rec.argv, ['install']);

  // A system node 22.0-22.17 cannot run TypeScript without a flag: it is not used.
  const old = join(dir, 'oldnode');
  await mkdir(old);
  await writeFile(join(old, 'node'), '#!/bin/sh\nif [ "$1" = -p ]; then echo 22.17.0; exit 0; fi\nexit 1\n', { mode: 0o755 });
  mirror.requests.length = 0;
  const r3 = await runScript(script, { ...base, KINGLET_NODE_MIRROR: `${mirror.base}/node`, PATH: `${old}:${process.env['PATH'] ?? '/usr/bin:/bin'}` });
  t.equal(r3.code, 0, r3.stderr);
  t.notMatch(r3.stderr, /using system Node\.js/, 'node 22.17 is not taken');
  t.match(r3.stderr, /downloading Node\.js 22\.99\.0 .* from http:\/\/127\.0\.0\.1:/, 'from the test mirror on loopback');
});

t.test('a wrong checksum is rejected and nothing is handed over', { skip: !have('dash') ? 'dash missing' : !root && why }, async (t) => {
  const { dir, mirror, script } = await setup(t);
  const record = join(dir, 'record.txt');
  const env = {
    KINGLET_INSTALL_DIR: join(dir, 'opt'), KINGLET_BUNDLE_URL: `${mirror.base}/kinglet-0.1.0.tar.gz`,
    KINGLET_BUNDLE_SHA256: 'ab'.repeat(32), KINGLET_TEST_RECORD: record,
  };
  const r = await runScript(script, env);
  t.equal(r.code, 1);
  t.match(r.stderr, /checksum mismatch for kinglet bundle: expected abab.*do not use it/);
  await t.rejects(stat(record), 'no hand-over');
  await t.rejects(stat(join(dir, 'opt/bundle')), 'nothing unpacked');

  // A tampered Node.js tarball: SHASUMS256.txt disagrees.
  const shas = join(dir, 'www/node', `v${NODE_V}`, 'SHASUMS256.txt');
  await writeFile(shas, (await readFile(shas, 'utf8')).replace(/^[0-9a-f]{64}(  node-v22\.99\.0-linux-x64\.tar\.gz)$/m, `${'1'.repeat(64)}$1`));
  const r2 = await runScript(script, { ...env, KINGLET_NODE_MIRROR: `${mirror.base}/node`, KINGLET_NODE_VERSION: NODE_V, KINGLET_FORCE_NODE_DOWNLOAD: '1', KINGLET_GLIBC_VERSION: '2.36' });
  t.equal(r2.code, 1);
  t.match(r2.stderr, /checksum mismatch for node-v22\.99\.0-linux-x64\.tar\.gz/);
  await t.rejects(stat(join(dir, 'opt/node')), 'node not installed');
});

t.test('a truncated script runs nothing', { skip: !have('dash') ? 'dash missing' : !root && why }, async (t) => {
  const { dir, mirror, bundleSha } = await setup(t);
  const text = await readFile(SCRIPT, 'utf8');
  const record = join(dir, 'record.txt');
  for (const frac of [0.3, 0.6, 0.95]) {
    // Cut at a line end, as a dropped connection mid-download would leave it.
    const cut = text.slice(0, text.lastIndexOf('\n', Math.floor(text.length * frac)) + 1);
    const script = join(dir, `install-${frac}.sh`);
    await writeFile(script, cut);
    await runScript(script, { KINGLET_INSTALL_DIR: join(dir, 'opt'), KINGLET_BUNDLE_URL: `${mirror.base}/kinglet-0.1.0.tar.gz`, KINGLET_BUNDLE_SHA256: bundleSha, KINGLET_TEST_RECORD: record });
  }
  t.same(mirror.requests, [], 'no download started');
  await t.rejects(stat(record), 'no hand-over');
  await t.rejects(stat(join(dir, 'opt')), 'nothing written');
});

t.test('progress: quiet lines in logs, a progress bar on a terminal', { skip: !have('dash') ? 'dash missing' : !root && why }, async (t) => {
  const { dir, mirror, bundleSha, script } = await setup(t);
  const env = {
    KINGLET_INSTALL_DIR: join(dir, 'opt'), KINGLET_BUNDLE_URL: `${mirror.base}/slow/kinglet-0.1.0.tar.gz`,
    KINGLET_BUNDLE_SHA256: bundleSha, KINGLET_TEST_RECORD: join(dir, 'record.txt'), KINGLET_PROGRESS_SECONDS: '1',
  };
  // stderr is a pipe here, as in CI or `| tee log`.
  const r = await runScript(script, env);
  t.equal(r.code, 0, r.stderr);
  const lines = r.stderr.split('\n');
  const still = lines.filter((l) => l.includes('still downloading'));
  t.ok(still.length >= 1 && still.length <= 4, `a line a second while the bundle trickles in (${still.length})`);
  t.match(still[0], /^\[kinglet\] still downloading http:\/\/127\.0\.0\.1:\d+\/slow\/kinglet-0\.1\.0\.tar\.gz \(1s, \d+ bytes so far; gives up after 60s without data\)$/);
  const done = lines.findIndex((l) => /downloaded http:.*\/slow\/kinglet-0\.1\.0\.tar\.gz \(\d+ bytes\)/.test(l));
  t.ok(done > lines.indexOf(still.at(-1)!), 'no progress line after the download finished');
  t.notMatch(r.stderr, /#{3,}|\d+\.\d%/, 'no progress bar in a log');

  // Before the first byte there is no file yet: "0 bytes so far", and no shell complaint about it.
  const late = await runScript(script, { ...env, KINGLET_BUNDLE_URL: `${mirror.base}/late/kinglet-0.1.0.tar.gz` });
  t.equal(late.code, 0, late.stderr);
  t.match(late.stderr, /still downloading http:\/\/127\.0\.0\.1:\d+\/late\/kinglet-0\.1\.0\.tar\.gz \(1s, 0 bytes so far/);
  t.notMatch(late.stderr, /cannot open|No such file/);

  await t.test('on a terminal: the downloader\'s bar, no extra lines', { skip: !have('script') && 'script (util-linux) is not installed' }, async (t) => {
    // script(1) gives the installer a pseudo-terminal as its stdout and stderr (async: the mirror lives in this process).
    const p = spawn('script', ['-q', '-e', '-c', `dash ${script}`, '/dev/null'], {
      env: { ...scriptEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    const status = await new Promise<number | null>((r) => p.on('close', r));
    t.equal(status, 0, out);
    t.match(out, /#+\s*100\.0%/, "curl's progress bar");
    t.notMatch(out, /still downloading/);
  });
});

t.test('KINGLET_PROGRESS_SECONDS must be a number', { skip: !have('dash') && 'dash missing' }, async (t) => {
  const r = await runScript(SCRIPT, { KINGLET_PROGRESS_SECONDS: 'often', KINGLET_INSTALL_DIR: '/nonexistent/kinglet' });
  t.equal(r.code, 1);
  t.match(r.stderr, /KINGLET_PROGRESS_SECONDS must be a whole number of seconds >= 1, not "often"/);
});

t.test('not root: every privileged step and the hand-over go through sudo, keeping the settings', { skip: !have('dash') ? 'dash missing' : !root && why }, async (t) => {
  const { dir, mirror, bundleSha, script } = await setup(t);
  // Stand-ins: `id -u` says 1000; sudo logs its arguments and runs the command.
  const fake = join(dir, 'fakebin');
  await mkdir(fake);
  await writeFile(join(fake, 'id'), '#!/bin/sh\nif [ "$1" = -u ]; then echo 1000; else exec /usr/bin/id "$@"; fi\n', { mode: 0o755 });
  const sudoLog = join(dir, 'sudo.log');
  const record = join(dir, 'record.txt');
  const env = {
    PATH: `${fake}:${process.env['PATH'] ?? '/usr/bin:/bin'}`,
    KINGLET_INSTALL_DIR: join(dir, 'opt'), KINGLET_BUNDLE_URL: `${mirror.base}/kinglet-0.1.0.tar.gz`, KINGLET_BUNDLE_SHA256: bundleSha,
    K3S_TOKEN: 'K10sudosecret', INSTALL_K3S_EXEC: '--node-ip 10.0.0.2', KINGLET_TEST_RECORD: record,
  };

  await t.test('without sudo: stops before anything, saying to run as root', { skip: have('sudo') && 'this machine has a real sudo' }, async (t) => {
    const r = await runScript(script, env);
    t.equal(r.code, 1);
    t.match(r.stderr, /run this as root: kinglet installs system services \(no sudo found\)/);
    t.same(mirror.requests, [], 'nothing downloaded');
  });

  await writeFile(join(fake, 'sudo'), `#!/bin/sh\nprintf '%s\\n' "$*" >> '${sudoLog}'\ncase $1 in --preserve-env=*) shift ;; esac\nexec "$@"\n`, { mode: 0o755 });
  const r = await runScript(script, env);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, /not root: using sudo for the installation/);
  const calls = (await readFile(sudoLog, 'utf8')).trim().split('\n');
  const keep = /^--preserve-env=(\S+) /.exec(calls[0] ?? '')?.[1]?.split(',') ?? [];
  for (const v of ['K3S_TOKEN', 'INSTALL_K3S_EXEC', 'KINGLET_INSTALL_DIR', 'KINGLET_BUNDLE_URL']) t.ok(keep.includes(v), `sudo keeps ${v}`);
  t.ok(calls.every((c) => c.startsWith(`--preserve-env=${keep.join(',')} `)), 'every sudo call keeps them');
  const cmds = calls.map((c) => c.replace(/^--preserve-env=\S+ /, '').split(' ')[0]);
  t.ok(cmds.includes('tar') && cmds.includes('mkdir') && cmds.includes('mv'), `unpacking runs as root (${[...new Set(cmds)].join(', ')})`);
  t.match(calls.at(-1), /\/agent\/cli\/kinglet\.ts install$/, 'the hand-over runs as root');
  t.notMatch(calls.join('\n'), /K10sudosecret/, 'the token is never on a command line');
  const rec = JSON.parse(await readFile(record, 'utf8'));
  t.equal(rec.env.K3S_TOKEN, 'K10sudosecret', 'the installer gets the token through the environment');
  t.equal(rec.env.INSTALL_K3S_EXEC, '--node-ip 10.0.0.2');
});

t.test('run from a checkout: no download, the real installer plans with the settings intact', { skip: !have('dash') ? 'dash missing' : !root && why }, async (t) => {
  const { mirror } = await setup(t);
  // Every URL on loopback, though a checkout with a new enough node downloads nothing.
  const r = await runScript(SCRIPT, {
    KINGLET_RELEASE_URL: `${mirror.base}/releases`, KINGLET_NODE_MIRROR: `${mirror.base}/node`, KINGLET_K3S_INSTALL_URL: `${mirror.base}/k3s-install.sh`,
    KINGLET_DRY_RUN: '1', K3S_URL: 'https://10.0.0.1:6443', K3S_TOKEN: 'K10checkout-secret', INSTALL_K3S_EXEC: '--node-ip=10.0.0.2', KINGLET_SKIP: 'kernel',
  });
  t.match(r.stderr, `using the kinglet checkout at ${dirname(SCRIPT)}`);
  t.same(mirror.requests, [], 'nothing downloaded');
  t.ok(r.code === 0 || r.code === 1, `the plan printed (exit ${r.code}: 1 when this host cannot take k3s)\n${r.stderr}`);
  t.match(r.stdout, /^== preflight\n/);
  t.match(r.stdout, /note {2}k3s agent joining https:\/\/10\.0\.0\.1:6443/);
  t.match(r.stdout, /run {5}INSTALL_K3S_EXEC=--node-ip=10\.0\.0\.2 K3S_URL=https:\/\/10\.0\.0\.1:6443 K3S_TOKEN=<redacted> sh \/var\/lib\/kinglet\/k3s-install\.sh/);
  t.match(r.stdout, new RegExp(`(curl|wget) .*-(o|O) /var/lib/kinglet/k3s-install\\.sh ${mirror.base}/k3s-install\\.sh\n`), "k3s's script from the given URL");
  t.match(r.stdout, /== kernel\n {2}note {2}skipped \(KINGLET_SKIP\)/);
  t.notMatch(r.stdout + r.stderr, /K10checkout-secret/, 'the token is nowhere in the output');
});

t.test('no Node.js build fits: musl, or old glibc on arm64: stop before downloading, saying what to install', { skip: !have('dash') ? 'dash missing' : !root && why }, async (t) => {
  const { dir, mirror } = await setup(t);
  const fake = join(dir, 'fakebin');
  await mkdir(fake);
  const base = {
    KINGLET_INSTALL_DIR: join(dir, 'opt'), KINGLET_NODE_MIRROR: `${mirror.base}/node`, KINGLET_NODE_GLIBC217_MIRROR: `${mirror.base}/node217`,
    KINGLET_NODE_VERSION: NODE_V, KINGLET_FORCE_NODE_DOWNLOAD: '1', KINGLET_BUNDLE_URL: `${mirror.base}/kinglet-0.1.0.tar.gz`,
    PATH: `${fake}:${process.env['PATH'] ?? '/usr/bin:/bin'}`,
  };
  // musl: getconf knows no GNU_LIBC_VERSION.
  await writeFile(join(fake, 'getconf'), '#!/bin/sh\nexit 1\n', { mode: 0o755 });
  const musl = await runScript(SCRIPT, base);
  t.equal(musl.code, 1);
  t.match(musl.stderr, /no glibc found \(musl\?\): install Node\.js >= 22\.18\.0 from your distribution \(apk add nodejs\)/);
  await rm(join(fake, 'getconf'));
  // aarch64 with glibc 2.17: there is no glibc-2.17 build for arm64.
  await writeFile(join(fake, 'uname'), '#!/bin/sh\nif [ "$1" = -m ]; then echo aarch64; else exec /bin/uname "$@"; fi\n', { mode: 0o755 });
  const arm = await runScript(SCRIPT, { ...base, KINGLET_GLIBC_VERSION: '2.17' });
  t.equal(arm.code, 1);
  t.match(arm.stderr, /glibc 2\.17 is too old for Node\.js on arm64: install Node\.js >= 22\.18\.0 by hand/);
  t.same(mirror.requests, [], 'nothing downloaded');
  await t.rejects(stat(join(dir, 'opt')), 'nothing written');
});

t.test('with wget instead of curl: the same downloads, checks and progress lines', { skip: !have('dash') ? 'dash missing' : !root ? why : !have('wget') && 'wget is not installed' }, async (t) => {
  const { dir, mirror, bundleSha, script } = await setup(t);
  // A PATH with what install.sh uses, wget but no curl.
  const bin = join(dir, 'bin');
  await mkdir(bin);
  const tools = ['dash', 'sh', 'wget', 'tar', 'gzip', 'sha256sum', 'mktemp', 'id', 'env', 'grep', 'cut', 'tr', 'sed', 'sort', 'head', 'awk', 'find', 'mkdir', 'rm', 'mv', 'cat', 'wc', 'sleep', 'uname', 'getconf', 'dirname', 'node'];
  for (const tool of tools) {
    const at = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
    if (at) await symlink(at, join(bin, tool));
  }
  const r = await runScript(script, {
    PATH: bin, KINGLET_INSTALL_DIR: join(dir, 'opt'), KINGLET_BUNDLE_URL: `${mirror.base}/slow/kinglet-0.1.0.tar.gz`,
    KINGLET_BUNDLE_SHA256: bundleSha, KINGLET_TEST_RECORD: join(dir, 'record.txt'), KINGLET_PROGRESS_SECONDS: '1',
  });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, /still downloading http:\/\/127\.0\.0\.1:\d+\/slow\/kinglet-0\.1\.0\.tar\.gz \(1s/);
  t.match(r.stderr, /sha256 verified: kinglet bundle/);
  t.same(mirror.requests, ['/slow/kinglet-0.1.0.tar.gz']);
});

t.test('interrupted mid-download (Ctrl-C, kill, a dropped session): the temporary directory goes, the ticker too', { skip: !have('dash') ? 'dash missing' : !root && why }, async (t) => {
  const { dir, mirror, bundleSha, script } = await setup(t);
  const tmp = join(dir, 'tmp');
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp);
    const p = spawn('dash', [script], {
      env: {
        ...scriptEnv(), TMPDIR: tmp, KINGLET_INSTALL_DIR: join(dir, 'opt'),
        KINGLET_BUNDLE_URL: `${mirror.base}/slow/kinglet-0.1.0.tar.gz`, KINGLET_BUNDLE_SHA256: bundleSha, KINGLET_PROGRESS_SECONDS: '1',
      },
      stdio: ['ignore', 'ignore', 'pipe'], detached: true, // its own process group, for the clean-up below
    });
    let stderr = '';
    p.stderr.on('data', (d) => { stderr += d; });
    // Wait until the slow download is under way, then interrupt the script itself.
    for (let i = 0; i < 100 && !stderr.includes('downloading the kinglet bundle'); i++) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 300));
    p.kill(signal);
    // 'close' comes only once every writer of stderr is gone: the ticker and its sleep too.
    const closed = new Promise<number | null>((r) => p.on('close', (c) => r(c)));
    const code = await Promise.race([closed, new Promise<'stuck'>((r) => setTimeout(() => r('stuck'), 10_000))]);
    if (code === 'stuck') {
      process.kill(-p.pid!, 'SIGKILL'); // what the script left running
      await closed;
    }
    t.not(code, 'stuck', `${signal}: nothing keeps running after the script is gone`);
    t.not(code, 0, `${signal}: not a success`);
    t.match(stderr, /still downloading/, `${signal}: interrupted while downloading`);
    t.same(await readdir(tmp), [], `${signal}: no temporary directory left`);
  }
  await t.rejects(stat(join(dir, 'opt/bundle')), 'nothing unpacked');
});
