// The resume settings file: what the boot-time hook reads back (sh for
// OpenRC's local.d, systemd's EnvironmentFile, same quoting rules) must be
// exactly what the install had, however odd the value.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { envFile } from '../../../installer/render.ts';

t.test('envFile round-trips through sh', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kinglet-envfile-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const env = {
    K3S_TOKEN: "K10tok'en with spaces",
    INSTALL_K3S_EXEC: '--node-label "a=b" --kubelet-arg=$HOME `id` back\\slash',
    KINGLET_KERNEL_MIRROR: 'https://mirror.example.org/el7',
    K3S_NODE_LABEL: 'two\nlines',
    'K3S_NOT-A-NAME': 'dropped',
  };
  const file = join(dir, 'resume.env');
  await writeFile(file, envFile(env));
  for (const [k, v] of Object.entries(env)) {
    if (k.includes('-')) continue;
    const r = spawnSync('sh', ['-c', `set -a; . "$1"; printf '%s' "$${k}"`, 'sh', file], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', HOME: '/nonexistent' } });
    t.equal(r.stdout, v, `${k} reads back unchanged`);
  }
  t.notMatch(envFile(env), /NOT-A-NAME/, 'a name that is no identifier is left out');
});
