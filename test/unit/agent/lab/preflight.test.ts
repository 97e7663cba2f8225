// kinglet lab refuses to start, with the reason and the fix (agent/lab/lab.ts preflight).
import t from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LabError, preflight, REQUIRED_OBJECTS } from '../../../../agent/lab/lab.ts';

t.test('refusals', async (t) => {
  const objs = await mkdtemp(join(tmpdir(), 'kl-labobj-'));
  t.teardown(() => rm(objs, { recursive: true, force: true }));
  for (const o of REQUIRED_OBJECTS) await writeFile(join(objs, o), '');
  const fine = { uid: 0, hasCommand: () => true, objectDir: objs, cgroup2: async () => '/cg', probe: async () => ({ ok: true, missing: [] }) };
  t.equal(await preflight(fine), '/cg', 'all there: the cgroup2 mount');
  await t.rejects(preflight({ ...fine, uid: 1000 }), { name: 'LabError', message: /needs root.*sudo/ });
  await t.rejects(preflight({ ...fine, hasCommand: (c) => c !== 'nsenter' }), { message: /missing commands: nsenter.*util-linux/ });
  await t.rejects(preflight({ ...fine, objectDir: join(objs, 'none') }), { message: /BPF objects are not built.*make -C/ });
  await t.rejects(preflight({ ...fine, cgroup2: async () => undefined }), { message: /cgroup2 is not mounted/ });
  await t.rejects(preflight({ ...fine, probe: async () => ({ ok: false, missing: ['prog_sched_cls'] }) }), { message: /cannot run kinglet's datapath \(missing: prog_sched_cls\).*kernel probe/ });
  await t.rejects(preflight({ ...fine, uid: 1000 }), LabError);
});
