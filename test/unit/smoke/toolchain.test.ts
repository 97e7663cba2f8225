import t from 'tap';
import semver from 'semver';

interface Pair { a: number; b: number }

t.test('node runs TypeScript natively at a supported version', async (t) => {
  const p: Pair = { a: 1, b: 2 };
  t.equal(p.a + p.b, 3);
  t.ok(semver.gte(process.versions.node, '22.18.0'), `node ${process.versions.node} >= 22.18`);
});
