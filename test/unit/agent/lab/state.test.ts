// The lab's state file: atomic writes, validation, and the territory check
// that keeps `kinglet lab down` inside the lab (agent/lab/state.ts).
import t from 'tap';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { planLab } from '../../../../agent/lab/plan.ts';
import {
  checkOwnership, newState, parseProcState, parseStartTime, parseState, readState, StateError, writeState,
} from '../../../../agent/lab/state.ts';
import { territory } from '../../../../agent/lab/lab.ts';

const CG = '/sys/fs/cgroup/unified';

t.test('write, read back, atomic replace', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kl-labstate-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const plan = planLab({ name: 'lab', nodes: 2, cgroup2: CG, root: dir });
  const st = newState(plan, new Date('2024-01-02T03:04:05Z'));
  t.equal(await readState(plan.stateFile), undefined, 'no file: no lab');
  st.netns.push('kllab-lab-ul');
  st.processes.push({ pid: 1234, startTime: 99, role: 'agent', name: 'node1', log: '/x' });
  await writeState(plan.stateFile, st);
  const back = await readState(plan.stateFile);
  t.same(back, st);
  t.equal(back!.complete, false);
  t.same((await readdir(plan.dir)).sort(), ['state.json'], 'no temporary file left');
  await writeFile(plan.stateFile, '{"version": 1');
  await t.rejects(readState(plan.stateFile), StateError, 'a torn file is reported, not taken as empty');
});

t.test('validation', async (t) => {
  const plan = planLab({ name: 'lab', nodes: 1, cgroup2: CG });
  const good = JSON.stringify(newState(plan));
  t.ok(parseState(good));
  const bad = (patch: Record<string, unknown>) => JSON.stringify({ ...JSON.parse(good), ...patch });
  t.throws(() => parseState('nope'), /not JSON/);
  t.throws(() => parseState(bad({ version: 2 })), /version 2/);
  t.throws(() => parseState(bad({ netns: 'x' })), /netns/);
  t.throws(() => parseState(bad({ processes: [{ pid: 1, startTime: 1 }] })), /processes/, 'never PID 1');
  t.throws(() => parseState(bad({ processes: [{ pid: 'x' }] })), /processes/);
  t.throws(() => parseState(bad({ pods: {} })), /pods/);
});

t.test('territory: down refuses what lies outside the lab', async (t) => {
  const plan = planLab({ name: 'lab', nodes: 1, cgroup2: CG });
  const terr = territory('lab', CG);
  t.same(terr, { name: 'lab', dir: '/run/kinglet-lab/lab', cgroup: `${CG}/kinglet-lab-lab`, prefix: 'kllab-lab-' });
  const st = newState(plan);
  st.netns.push('kllab-lab-ul', 'kllab-lab-node1');
  st.mounts.push(plan.bpffs);
  st.cgroups.push(plan.cgroup, plan.systemCgroup, plan.nodes[0]!.cgroup);
  st.dirs.push(plan.dir);
  t.same(checkOwnership(st, terr), [], 'what up records is all inside');
  const evil = newState(plan);
  evil.netns.push('kllab-other-ul', 'kllab-lab-', 'kllab-lab-../x', 'default');
  evil.mounts.push('/sys/fs/bpf', '/run/kinglet-lab/lab', '/run/kinglet-lab/lab/../../x');
  evil.cgroups.push(CG, `${CG}/kinglet-lab-lab2`, `${CG}/kinglet-lab-lab/../system.slice`);
  evil.dirs.push('/', '/run/kinglet-lab', '/run/kinglet-lab/lab2');
  const bad = checkOwnership(evil, terr);
  t.equal(bad.length, 13, bad.join('\n'));
  t.match(checkOwnership({ ...st, name: 'other' }, terr), [/names lab "other"/]);
});

t.test('/proc/<pid>/stat parsing', async (t) => {
  const stat = '4242 (node (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 11 0 603040 1000 200';
  t.equal(parseStartTime(stat), 603040, 'starttime, with spaces and parentheses in comm');
  t.equal(parseProcState(stat), 'S');
  t.equal(parseProcState('1 (x) Z 0'), 'Z');
  t.equal(parseStartTime('garbage'), undefined);
  const self = await readFile('/proc/self/stat', 'utf8');
  t.ok((parseStartTime(self) ?? 0) > 0, 'our own start time');
});
