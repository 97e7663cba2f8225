// The CNI step of the agent phase: with the bundle's native shim usable on
// the host, kinglet-cni is the shim (copied from the bundle) and the Node
// plugin wrapper sits beside it as kinglet-cni-node; without it kinglet-cni
// is the Node plugin wrapper. Whether the shim is usable: an ELF executable
// for this machine in the bundle.
import t from 'tap';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { machine, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { planAgent } from '../../../installer/phases.ts';
import { CNI_SHIM_IN_BUNDLE, cniShimUsable } from '../../../installer/cni-shim.ts';
import { fixture, input } from '../../lib/installer-helpers.ts';
import { buildShim } from '../../lib/cni-bin.ts';

const DIRS = { binDir: '/opt/cni/bin', confDir: '/etc/cni/net.d', fromConfig: false };

t.test('the shim is usable when the bundle holds an ELF executable for this machine', async (t) => {
  const bundle = await mkdtemp(join(tmpdir(), 'kl-bundle-'));
  t.teardown(() => rm(bundle, { recursive: true, force: true }));
  t.equal(cniShimUsable(bundle, machine()), false, 'no shim in the bundle');
  const at = join(bundle, CNI_SHIM_IN_BUNDLE);
  await mkdir(dirname(at), { recursive: true });
  await writeFile(at, '#!/bin/sh\nexit 0\n');
  t.equal(cniShimUsable(bundle, machine()), false, 'not an ELF file');
  await writeFile(at, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0]));
  t.equal(cniShimUsable(bundle, machine()), false, 'a truncated header');
  await copyFile(await buildShim(), at);
  t.equal(cniShimUsable(bundle, machine()), true, `the shim built here runs on ${machine()}`);
  const other = machine() === 'aarch64' ? 'x86_64' : 'aarch64';
  t.equal(cniShimUsable(bundle, other), false, `not on ${other}`);
  t.equal(cniShimUsable(bundle, 'sparc64'), false, 'not on a machine it does not know');
});

t.test('the plugin steps with and without the shim', async (t) => {
  const i = input(await fixture('debian12'));
  const cniSteps = (cniShim: boolean) =>
    planAgent({ ...i, cniShim }, DIRS).steps.filter((s) => s.id.startsWith('agent.cni-plugin')).map((s) => ({ id: s.id, kind: s.kind, path: (s as { path: string }).path, from: (s as { from?: string }).from, content: (s as { content?: string }).content }));
  const withShim = cniSteps(true);
  t.match(withShim, [
    { id: 'agent.cni-plugin-node', kind: 'file', path: '/opt/cni/bin/kinglet-cni-node', content: /^#!\/bin\/sh\n.*exec \S+ \S+\/agent\/cni\/kinglet-cni "\$@"\n$/s },
    { id: 'agent.cni-plugin', kind: 'copy', path: '/opt/cni/bin/kinglet-cni', from: CNI_SHIM_IN_BUNDLE },
  ], 'the Node fallback first, then the shim');
  t.equal(withShim.length, 2);
  const without = cniSteps(false);
  t.match(without, [{ id: 'agent.cni-plugin', kind: 'file', path: '/opt/cni/bin/kinglet-cni', content: withShim[0]!.content }], 'without: the Node plugin wrapper is kinglet-cni');
  t.equal(without.length, 1);
});
