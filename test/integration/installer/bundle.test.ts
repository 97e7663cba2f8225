// installer/bundle.ts: the bundle it builds (into a temp dir, removed in
// teardown) is self-contained: unpacked outside the repo, with no way to
// reach the repo's node_modules, `kinglet kernel check` runs and every
// runtime dependency (koffi's native binary included) loads; no tests, no
// dev dependencies; the .sha256 matches; and install.sh takes it from a
// loopback mirror (127.0.0.1, started and stopped here), verifies it,
// unpacks it and hands over to the bundle's own kinglet.ts.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { access, copyFile, mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { machine, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BundleResult } from '../../../installer/bundle.ts';
import { buildBundle } from '../../../installer/bundle.ts';
import { cniShimUsable } from '../../../installer/cni-shim.ts';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '../../..');
const FACTS = join(REPO, 'test/fixtures/installer/ubuntu2204.json');
const RUNTIME_DEPS = Object.keys((JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies);

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

/** Only what a fresh host would have: no NODE_PATH, no npm config, cwd in the unpacked tree. */
function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: '/tmp', ...extra };
}

function node(args: string[], cwd: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, args, { cwd, env: cleanEnv(), encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function exists(p: string): Promise<boolean> {
  return access(p).then(() => true, () => false);
}

/** Every node_modules module resolution from `dir` could reach, outside `dir` itself. */
async function outerNodeModules(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (let d = dirname(dir); ; d = dirname(d)) {
    if (await exists(join(d, 'node_modules'))) found.push(join(d, 'node_modules'));
    if (dirname(d) === d) break;
  }
  return found;
}

async function files(dir: string, base = dir): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await files(p, base)));
    else out.push(p.slice(base.length + 1));
  }
  return out;
}

const noClang = !have('clang') && 'clang is not installed: the bundle needs the BPF objects';

// One build, shared by the tests below.
let work = '';
let built: BundleResult | undefined;
t.before(async () => {
  if (noClang) return;
  work = await mkdtemp(join(tmpdir(), 'kinglet-bundletest-'));
  built = await buildBundle(join(work, 'out'));
});
t.teardown(() => (work ? rm(work, { recursive: true, force: true }) : undefined));

t.test('the bundle: layout, checksum, no tests, no dev dependencies', { skip: noClang }, async (t) => {
  const b = built!;
  t.equal(b.tarball, join(work, 'out', `kinglet-${b.version}.tar.gz`));
  const data = await readFile(b.tarball);
  const sha = createHash('sha256').update(data).digest('hex');
  t.equal(await readFile(`${b.tarball}.sha256`, 'utf8'), `${sha}  kinglet-${b.version}.tar.gz\n`, 'the .sha256 matches, in sha256sum format');
  t.equal(b.sha256, sha);
  t.ok(b.bytes < 64 * 1048576, `a reasonable size (${(b.bytes / 1048576).toFixed(1)} MiB)`);

  const dest = join(work, 'unpacked-layout');
  await mkdir(dest);
  t.equal(spawnSync('tar', ['-xzf', b.tarball, '-C', dest]).status, 0);
  t.same(await readdir(dest), [`kinglet-${b.version}`], 'one top-level directory');
  const top = join(dest, `kinglet-${b.version}`);
  t.same((await readdir(top)).sort(), ['agent', 'bpf', 'installer', 'kernel', 'manifests', 'node_modules', 'package.json']);
  const pkg = JSON.parse(await readFile(join(top, 'package.json'), 'utf8'));
  t.equal(pkg.type, 'module');
  t.equal(pkg.devDependencies, undefined, 'no dev dependencies declared');
  t.equal(pkg.scripts, undefined, 'no scripts (they point at tests and sources not shipped)');
  const objs = (await readdir(join(top, 'bpf/build'))).sort();
  t.ok(objs.includes('pod.bpf.o') && objs.includes('sock_lb.bpf.o'), `BPF objects: ${objs.join(' ')}`);
  t.same(objs.filter((o) => !o.endsWith('.o')), [], 'only objects under bpf/');
  const ours = (await Promise.all(['agent', 'installer', 'kernel', 'manifests'].map((d) => files(join(top, d))))).flat();
  t.same(ours.filter((f) => /\.test\.ts$/.test(f)), [], 'no tests');
  t.notOk(await exists(join(top, 'installer/bundle.ts')), 'the bundle builder is not shipped');
  for (const dev of ['tap', 'typescript', '@grpc/grpc-js', '@grpc/proto-loader', '@types/semver']) {
    t.notOk(await exists(join(top, 'node_modules', dev)), `no ${dev}`);
  }
  const natives = (await files(join(top, 'node_modules'))).filter((f) => f.endsWith('koffi.node'));
  t.ok(natives.some((f) => f.includes(`linux_${process.arch}`)), `koffi's native binary for this host is there (${natives.join(', ')})`);
  t.ok(cniShimUsable(top, machine()), 'the native kinglet-cni shim, built for this machine');
  t.same(await readdir(join(top, 'agent/cni/shim/build')), ['kinglet-cni'], 'and nothing else of its build');
});

t.test('self-contained: runs from the unpacked tree without the repo', { skip: noClang }, async (t) => {
  const b = built!;
  const dest = join(work, 'unpacked-run');
  await mkdir(dest);
  t.equal(spawnSync('tar', ['-xzf', b.tarball, '-C', dest]).status, 0);
  const top = join(dest, `kinglet-${b.version}`);
  t.same(await outerNodeModules(top), [], 'no node_modules above the unpacked tree: only its own can resolve');

  const check = node([join(top, 'agent/cli/kinglet.ts'), 'kernel', 'check', '--json'], top);
  t.equal(check.stderr.match(/ERR_MODULE_NOT_FOUND|Cannot find (module|package)/)?.[0], undefined, 'no missing module');
  const report = JSON.parse(check.stdout) as { release?: string; ok?: boolean };
  t.type(report.release, 'string', 'kernel check --json answers');
  t.type(report.ok, 'boolean');

  // Every runtime dependency loads from the bundle; koffi loads its native binary.
  const load = `const got = {}; for (const m of ${JSON.stringify(RUNTIME_DEPS)}) { const x = await import(m); got[m] = Object.keys(x).length > 0; }
const koffi = (await import('koffi')).default; got.koffiNative = typeof koffi.sizeof === 'function' && koffi.sizeof('int') === 4;
console.log(JSON.stringify(got));`;
  const r = node(['--input-type=module', '-e', load], top);
  t.equal(r.status, 0, r.stderr);
  const got = JSON.parse(r.stdout || '{}') as Record<string, boolean>;
  for (const m of RUNTIME_DEPS) t.ok(got[m], `${m} loads from the bundle`);
  t.ok(got['koffiNative'], "koffi's native part works");
  const dev = node(['--input-type=module', '-e', "await import('tap')"], top);
  t.not(dev.status, 0, 'a dev dependency does not resolve from the bundle');

  // The installer itself runs from it: a dry-run plan for fixture facts.
  const plan = node([join(top, 'agent/cli/kinglet.ts'), 'install', '--dry-run', '--json', '--facts', FACTS], top);
  t.equal(plan.status, 0, plan.stderr);
  t.match(plan.stdout, `${top}/agent/cli/kinglet.ts`, 'the plan runs the agent from the bundle');
});

// A stand-in system node for install.sh: answers the version probe, records the hand-over.
const STUB_NODE = `#!/bin/sh
if [ "$1" = -p ]; then echo 24.0.0; exit 0; fi
if [ "$1" = -v ]; then echo v24.0.0; exit 0; fi
{ printf 'script=%s\\n' "$1"; shift; printf 'arg=%s\\n' "$@"; } > "$KINGLET_TEST_RECORD"
`;

t.test('install.sh takes the bundle from a loopback mirror and hands over to it', { skip: noClang || (!have('dash') ? 'dash missing' : process.getuid?.() !== 0 && 'install.sh uses sudo when not root; run as root') }, async (t) => {
  const b = built!;
  const www = join(work, 'out');
  const requests: string[] = [];
  const server = createServer(async (req, res) => {
    requests.push(req.url ?? '');
    try {
      const body = await readFile(join(www, decodeURIComponent((req.url ?? '/').split('?')[0]!).replace(/^\/v[^/]+\//, '/')));
      res.writeHead(200, { 'content-length': body.length }).end(body);
    } catch {
      res.writeHead(404).end('not found\n');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const addr = server.address();
  if (!addr || typeof addr === 'string') throw new Error('no port');
  const base = `http://127.0.0.1:${addr.port}`;

  const dir = join(work, 'installsh');
  await mkdir(join(dir, 'bin'), { recursive: true });
  await writeFile(join(dir, 'bin/node'), STUB_NODE, { mode: 0o755 });
  const script = join(dir, 'install.sh');
  await copyFile(join(REPO, 'install.sh'), script);
  const record = join(dir, 'record.txt');
  const env = cleanEnv({
    PATH: `${join(dir, 'bin')}:${process.env['PATH'] ?? '/usr/bin:/bin'}`,
    KINGLET_INSTALL_DIR: join(dir, 'opt'),
    // The published layout, <release>/v<version>/kinglet-<version>.tar.gz (+ .sha256), on loopback.
    KINGLET_RELEASE_URL: base, KINGLET_VERSION: b.version,
    // Never the public defaults, whatever happens.
    KINGLET_NODE_MIRROR: `${base}/node`, KINGLET_NODE_GLIBC217_MIRROR: `${base}/node217`,
    KINGLET_DRY_RUN: '1', KINGLET_TEST_RECORD: record,
  });
  const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
    const p = spawn('dash', [script], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('close', (code) => resolve({ code: code ?? 1, stderr }));
  });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, /sha256 verified: kinglet bundle/);
  t.same(requests, [`/v${b.version}/kinglet-${b.version}.tar.gz`, `/v${b.version}/kinglet-${b.version}.tar.gz.sha256`]);
  const installed = join(dir, 'opt/bundle');
  t.equal(await readFile(record, 'utf8'), `script=${installed}/agent/cli/kinglet.ts\narg=install\narg=--dry-run\n`);
  t.ok((await stat(join(installed, 'node_modules/koffi'))).isDirectory(), 'unpacked with its node_modules');
  // What the hand-over would run, with the real node: the bundle install.sh unpacked works.
  const check = node([join(installed, 'agent/cli/kinglet.ts'), 'kernel', 'check', '--json'], installed);
  t.type((JSON.parse(check.stdout || '{}') as { release?: string }).release, 'string', check.stderr);
});

t.test('without clang the build stops and says what to install', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kinglet-bundle-noclang-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  // A PATH with node, make and tar, and no clang.
  await mkdir(join(dir, 'bin'));
  for (const tool of ['make', 'tar']) {
    const where = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
    if (where) await symlink(where, join(dir, 'bin', tool));
  }
  const r = spawnSync(process.execPath, [join(REPO, 'installer/bundle.ts'), '--out', join(dir, 'out')], {
    env: cleanEnv({ PATH: `${dirname(process.execPath)}:${join(dir, 'bin')}` }), encoding: 'utf8',
  });
  t.equal(r.status, 1, r.stderr);
  t.match(r.stderr, /ERROR: clang is missing: .*install clang/);
  t.notOk(await exists(join(dir, 'out')), 'nothing written');
});
