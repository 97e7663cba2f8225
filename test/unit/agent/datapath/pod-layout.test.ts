// The pod datapath's pure helpers that are not byte layouts (those are pinned
// in pod-layout-pin.test.ts): the masquerade port range as the agent takes
// it on the command line, and its overlap with the node's ephemeral ports.
import t from 'tap';
import { parsePortRange, portRangeOverlap } from '../../../../agent/datapath/pod-layout.ts';
import { prng } from '../../../lib/prng.ts';

t.test('parsePortRange: <min>-<max>, inclusive, within 1..65535', async (t) => {
  t.same(parsePortRange('61000-65535'), [61000, 65535]);
  t.same(parsePortRange(' 1-1 '), [1, 1], 'one port is a range');
  for (const bad of ['', '61000', '61000-', '-65535', '0-10', '10-65536', '65535-61000', '6a-7', '1-2-3', '99999-99999']) {
    t.throws(() => parsePortRange(bad), /not a port range: .*like 61000-65535/, `"${bad}" refused with the expected form`);
  }
});

t.test('portRangeOverlap: the shared ports of two inclusive ranges', async (t) => {
  t.same(portRangeOverlap([61000, 65535], [32768, 60999]), undefined, 'the default range sits above Linux\'s default ephemeral range');
  t.same(portRangeOverlap([61000, 65535], [32768, 61000]), [61000, 61000], 'touching at one port');
  t.same(portRangeOverlap([50000, 60000], [32768, 60999]), [50000, 60000], 'contained');
  t.same(portRangeOverlap([1024, 65535], [32768, 60999]), [32768, 60999], 'containing');
  const rand = prng(5);
  const port = () => 1 + Math.floor(rand() * 65535);
  const r = () => { const a = port(), b = port(); return [Math.min(a, b), Math.max(a, b)] as [number, number]; };
  for (let i = 0; i < 200; i++) {
    const a = r(), b = r();
    const o = portRangeOverlap(a, b);
    const brute = Math.max(a[0], b[0]) <= Math.min(a[1], b[1]);
    t.equal(o !== undefined, brute, `${a} / ${b}`);
    t.same(portRangeOverlap(b, a), o, 'symmetric');
    if (o) t.ok(o[0] >= a[0] && o[0] >= b[0] && o[1] <= a[1] && o[1] <= b[1], 'inside both');
  }
});
