// The CNI bin directory as `kinglet install` lays it out: `kinglet-cni` the
// native shim (agent/cni/shim), `kinglet-cni-node` beside it the Node plugin
// wrapper (installer/render.ts cniWrapper, here with this Node and this
// checkout). `shim: false` lays out what the installer does without a built
// shim: the Node wrapper as `kinglet-cni` itself.
import { execa } from 'execa';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cniWrapper } from '../../installer/render.ts';

const repo = fileURLToPath(new URL('../../', import.meta.url));
export const SHIM_DIR = join(repo, 'agent', 'cni', 'shim');
export const SHIM_BIN = join(SHIM_DIR, 'build', 'kinglet-cni');

/** Build the shim (make; a no-op when it is up to date). */
export async function buildShim(): Promise<string> {
  await execa('make', ['-s', '-C', SHIM_DIR]);
  return SHIM_BIN;
}

/** Lay out `dir` as the installer does; returns the path of dir/kinglet-cni. */
export async function installCniBin(dir: string, opts: { shim?: boolean } = {}): Promise<string> {
  await mkdir(dir, { recursive: true });
  const wrapper = cniWrapper(process.execPath, repo.replace(/\/$/, ''));
  if (opts.shim === false) {
    await writeFile(join(dir, 'kinglet-cni'), wrapper, { mode: 0o755 });
  } else {
    await copyFile(await buildShim(), join(dir, 'kinglet-cni'));
    await writeFile(join(dir, 'kinglet-cni-node'), wrapper, { mode: 0o755 });
  }
  return join(dir, 'kinglet-cni');
}
