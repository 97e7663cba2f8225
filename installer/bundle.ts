// Build the kinglet bundle that install.sh downloads:
//   node installer/bundle.ts [--out dir]
// writes <dir>/kinglet-<version>.tar.gz (one top-level kinglet-<version>/
// directory) and <dir>/kinglet-<version>.tar.gz.sha256 ("<hex>  <name>").
// The tree: package.json (runtime fields only), agent/, installer/, kernel/,
// manifests/, bpf/build/*.o (built here with `make -C bpf`), the native
// kinglet-cni shim for this machine (make -C agent/cni/shim, when a C
// compiler is there) and the
// production node_modules, copied from this checkout's node_modules (the
// folders `npm ls --omit=dev --parseable --all` names), so no download and
// no dev dependency; koffi's native binary comes with its platform package.
import { createHash } from 'node:crypto';
import { cp, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { CNI_SHIM_IN_BUNDLE } from './cni-shim.ts';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Source directories shipped as they are (minus tests). */
const TREES = ['agent', 'installer', 'kernel', 'manifests'];
/** package.json fields the installed tree needs. */
const PKG_FIELDS = ['name', 'version', 'description', 'type', 'private', 'license', 'engines', 'bin', 'dependencies'];

export class BundleError extends Error {
  override name = 'BundleError';
}

export interface BundleResult {
  tarball: string;
  sha256: string;
  shaFile: string;
  version: string;
  bytes: number;
}

/** The copy filter for the source trees of `repo`: what goes into the bundle. */
export function shippedFrom(repo: string): (src: string) => boolean {
  const shimBuild = join(repo, SHIM_BUILD);
  const builder = join(repo, 'installer', 'bundle.ts');
  return (src) => {
    if (/\.test\.ts$/.test(basename(src))) return false;
    // The shim's build output goes in separately (buildShim), only when built now.
    if (src === shimBuild) return false;
    // This script builds bundles; it has nothing to do inside one.
    if (src === builder) return false;
    return true;
  };
}

async function buildBpf(repo: string): Promise<string[]> {
  const clang = await execa('clang', ['--version'], { reject: false });
  if (clang.failed) {
    throw new BundleError('clang is missing: the bundle ships the compiled BPF programs (bpf/build/*.o); install clang and libbpf-dev (apt-get install clang libbpf-dev / dnf install clang libbpf-devel) and re-run');
  }
  const make = await execa('make', ['-s', '-C', join(repo, 'bpf')], { reject: false, all: true });
  if (make.failed) throw new BundleError(`make -C bpf failed (exit ${make.exitCode}):\n${String(make.all ?? '').trim()}`);
  const objs = (await readdir(join(repo, 'bpf/build'))).filter((f) => f.endsWith('.o')).sort();
  if (objs.length === 0) throw new BundleError('make -C bpf built no bpf/build/*.o');
  return objs;
}

/** The shim's build directory: the same path in the repo and in the bundle. */
const SHIM_BUILD = dirname(CNI_SHIM_IN_BUNDLE);

/**
 * The native kinglet-cni shim for this machine's architecture (make -C
 * agent/cni/shim), or undefined without a working C compiler: the installer
 * then installs the Node plugin as kinglet-cni (installer/cni-shim.ts).
 */
async function buildShim(repo: string, log: (s: string) => void): Promise<string | undefined> {
  const make = await execa('make', ['-s', '-C', join(repo, 'agent/cni/shim')], { reject: false, all: true });
  if (make.failed) {
    log(`WARNING: the native kinglet-cni shim did not build (make -C agent/cni/shim, exit ${make.exitCode}); the bundle has the Node.js plugin only (slower pod starts). Install a C compiler (gcc or clang) to ship it.\n${String(make.all ?? '').trim()}`);
    return undefined;
  }
  return join(repo, CNI_SHIM_IN_BUNDLE);
}

/** The production dependency folders, relative to the repo (node_modules/...), outermost only. */
export async function productionModules(repo: string): Promise<string[]> {
  const r = await execa('npm', ['ls', '--omit=dev', '--parseable', '--all'], { cwd: repo, reject: false });
  const paths = String(r.stdout ?? '').split('\n').map((l) => l.trim()).filter(Boolean)
    .map((p) => relative(repo, p)).filter((p) => p.startsWith(`node_modules${sep}`));
  if (paths.length === 0) {
    throw new BundleError(`npm ls --omit=dev found no installed production dependencies in ${repo}: run \`npm ci\` first${r.stderr ? `\n${String(r.stderr).trim()}` : ''}`);
  }
  if (r.exitCode !== 0) {
    // Missing or invalid packages: a bundle built from that tree would not run.
    throw new BundleError(`npm ls --omit=dev reports problems in ${repo}/node_modules: run \`npm ci\` first:\n${String(r.stderr ?? '').trim()}`);
  }
  const sorted = [...new Set(paths)].sort();
  const out: string[] = [];
  for (const p of sorted) {
    // A nested package is copied with the folder that holds it.
    if (!out.some((o) => p.startsWith(o + sep))) out.push(p);
  }
  return out;
}

export async function buildBundle(outDir: string, repo = REPO, log: (s: string) => void = () => {}): Promise<BundleResult> {
  const pkg = JSON.parse(await readFile(join(repo, 'package.json'), 'utf8')) as Record<string, unknown>;
  const version = String(pkg['version'] ?? '');
  if (!/^\d+\.\d+\.\d+/.test(version)) throw new BundleError(`package.json has no usable version (${version || 'none'})`);
  const name = `kinglet-${version}`;

  log('building the BPF programs (make -C bpf)');
  const objs = await buildBpf(repo);
  log('building the native kinglet-cni shim (make -C agent/cni/shim)');
  const shim = await buildShim(repo, log);
  const mods = await productionModules(repo);

  const stage = await mkdtemp(join(tmpdir(), 'kinglet-bundle-'));
  try {
    const top = join(stage, name);
    await mkdir(top);
    const slim: Record<string, unknown> = {};
    for (const f of PKG_FIELDS) if (pkg[f] !== undefined) slim[f] = pkg[f];
    slim['type'] = 'module';
    await writeFile(join(top, 'package.json'), JSON.stringify(slim, null, 2) + '\n');
    const shipped = shippedFrom(repo);
    for (const d of TREES) {
      await cp(join(repo, d), join(top, d), { recursive: true, verbatimSymlinks: true, filter: shipped });
    }
    await mkdir(join(top, 'bpf/build'), { recursive: true });
    for (const o of objs) await cp(join(repo, 'bpf/build', o), join(top, 'bpf/build', o));
    if (shim) {
      await mkdir(join(top, SHIM_BUILD), { recursive: true });
      await cp(shim, join(top, CNI_SHIM_IN_BUNDLE));
    }
    log(`copying ${mods.length} production dependency folder(s)`);
    for (const m of mods) {
      await cp(join(repo, m), join(top, m), { recursive: true, verbatimSymlinks: true });
    }

    await mkdir(outDir, { recursive: true });
    const tarball = join(outDir, `${name}.tar.gz`);
    log(`writing ${tarball}`);
    const tar = await execa('tar', [
      '--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0',
      '-czf', tarball, '-C', stage, name,
    ], { reject: false, all: true });
    if (tar.failed) throw new BundleError(`tar failed (exit ${tar.exitCode}):\n${String(tar.all ?? '').trim()}`);
    const data = await readFile(tarball);
    const sha256 = createHash('sha256').update(data).digest('hex');
    const shaFile = `${tarball}.sha256`;
    await writeFile(shaFile, `${sha256}  ${name}.tar.gz\n`);
    return { tarball, sha256, shaFile, version, bytes: data.length };
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { out: { type: 'string', default: join(REPO, 'dist') }, help: { type: 'boolean', short: 'h', default: false } } });
  if (values.help) {
    process.stdout.write('usage: node installer/bundle.ts [--out dir]\n  builds <dir>/kinglet-<version>.tar.gz and its .sha256 (default dir: dist/)\n');
    return 0;
  }
  try {
    const r = await buildBundle(resolve(values.out), REPO, (s) => process.stderr.write(`[bundle] ${s}\n`));
    process.stdout.write(`${r.tarball} (${(r.bytes / 1048576).toFixed(1)} MiB)\nsha256 ${r.sha256}\n`);
    return 0;
  } catch (e) {
    if (e instanceof BundleError) {
      process.stderr.write(`[bundle] ERROR: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main();
}
