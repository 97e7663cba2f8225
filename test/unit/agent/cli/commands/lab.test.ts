// kinglet lab's own messages (agent/cli/commands/lab.ts): advice to run a
// lab command again names the lab when it is not the default one.
import t from 'tap';
import { downSummary, labExists } from '../../../../../agent/cli/commands/lab.ts';

t.test('down: a partial removal says how to finish it, for the same lab', async (t) => {
  const partial = { removed: ['netns a', 'dir b'], errors: ['cgroup c: busy'] };
  t.equal(downSummary('lab', partial), 'lab lab: 2 removed, 1 left (run kinglet lab down again)\n');
  t.equal(downSummary('ci', partial), 'lab ci: 2 removed, 1 left (run kinglet lab down --name ci again)\n');
});

t.test('down: a complete removal', async (t) => {
  t.equal(downSummary('ci', { removed: ['netns a', 'dir b'], errors: [] }), 'lab ci removed (2 items)\n');
});

t.test('lab: a taken name is refused with the commands for that lab', async (t) => {
  t.equal(labExists('ci'), 'a lab named ci exists already: use kinglet lab test --name ci, or remove it with kinglet lab down --name ci, or pass another --name');
  t.equal(labExists('lab'), 'a lab named lab exists already: use kinglet lab test, or remove it with kinglet lab down, or pass another --name');
});
