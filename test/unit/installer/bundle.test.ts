// What installer/bundle.ts copies from the source trees: no tests, not the
// bundle builder, not the shim's build directory (it goes in separately),
// for whichever checkout the bundle is built from.
import t from 'tap';
import { join } from 'node:path';
import { REPO, shippedFrom } from '../../../installer/bundle.ts';

t.test('the filter follows the repo it is given, not this checkout', async (t) => {
  const other = '/srv/elsewhere/kinglet';
  const shipped = shippedFrom(other);
  t.notOk(shipped(join(other, 'installer/bundle.ts')), 'the builder of that checkout stays out');
  t.notOk(shipped(join(other, 'agent/cni/shim/build')), "that checkout's shim build stays out");
  t.notOk(shipped(join(other, 'agent/model/lb.test.ts')), 'tests stay out');
  t.ok(shipped(join(other, 'installer/apply.ts')), 'sources go in');
  t.ok(shipped(join(other, 'agent/cni/shim')), 'the shim directory itself goes in');
  t.ok(shipped(join(REPO, 'installer/bundle.ts')), "a path of another checkout is no concern of this one's filter");
});

t.test('this checkout', async (t) => {
  const shipped = shippedFrom(REPO);
  t.notOk(shipped(join(REPO, 'installer/bundle.ts')));
  t.notOk(shipped(join(REPO, 'agent/cni/shim/build')));
  t.ok(shipped(join(REPO, 'agent/agent.ts')));
});
