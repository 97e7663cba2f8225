// The lab runner's view of the agents (agent/lab/run.ts): when an agent does
// not answer, the advice names the lab it is about.
import t, { type Test } from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LabError } from '../../../../agent/lab/lab.ts';
import { planLab } from '../../../../agent/lab/plan.ts';
import { labCapabilities, singleNodeReason } from '../../../../agent/lab/run.ts';
import { newState } from '../../../../agent/lab/state.ts';

async function silentLab(t: Test, name: string) {
  const root = await mkdtemp(join(tmpdir(), 'kl-labrun-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  // Nothing listens on the plan's sockets (the directory has none).
  return newState(planLab({ name, nodes: 1, cgroup2: '/cg', root }));
}

t.test('an agent that does not answer: the advice recreates the same lab', async (t) => {
  const ci = await silentLab(t, 'ci');
  const e = await labCapabilities(ci).then(() => undefined, (err: unknown) => err);
  t.type(e, LabError);
  t.match((e as Error).message, /the agent on node1 does not answer/);
  t.match((e as Error).message, /kinglet lab down --name ci && kinglet lab up --name ci$/);
});

t.test('the default lab needs no --name', async (t) => {
  const lab = await silentLab(t, 'lab');
  const e = await labCapabilities(lab).then(() => undefined, (err: unknown) => err);
  t.match((e as Error).message, /kinglet lab down && kinglet lab up$/);
  t.notMatch((e as Error).message, /--name/);
});

t.test('a one-node lab: the multi-node skip names the lab and the way to a second node', async (t) => {
  t.equal(singleNodeReason('ci', 1), 'needs a second node (lab ci has 1: kinglet lab --nodes 2 --name ci; for a kept lab, kinglet lab down --name ci first)');
  t.equal(singleNodeReason('lab', 1), 'needs a second node (lab lab has 1: kinglet lab --nodes 2; for a kept lab, kinglet lab down first)');
});
