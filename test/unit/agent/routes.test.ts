// Cross-node routes: which routes a node wants from the Node objects, and
// the ip -batch lines that bring kinglet's installed routes there.
import t from 'tap';
import { desiredRoutes, routeDiff, ROUTE_PROTO } from '../../../agent/routes.ts';

const nodes = [
  { name: 'n1', podCIDRs: ['10.42.1.0/24', 'fd00:42:1::/64'], internalIPs: ['10.99.0.10', 'fd99::10'] },
  { name: 'n2', podCIDRs: ['10.42.2.0/24'], internalIPs: ['10.99.0.11'] },
  { name: 'n3', podCIDRs: ['10.42.3.0/24', 'fd00:42:3::/64'], internalIPs: ['10.99.0.12'] },
  { name: 'n4', podCIDRs: [], internalIPs: ['10.99.0.13'] },
  { name: 'n5', podCIDRs: ['10.42.2.0/24'], internalIPs: ['10.99.0.14'] },
  { name: 'n6', podCIDRs: ['bogus'], internalIPs: ['10.99.0.15'] },
];

t.test('desired routes: other nodes, family-matched gateway, conflicts and junk skipped', async (t) => {
  const d = desiredRoutes(nodes, 'n1');
  t.same(d.routes, [
    { dst: '10.42.2.0/24', via: '10.99.0.11', node: 'n2' },
    { dst: '10.42.3.0/24', via: '10.99.0.12', node: 'n3' },
  ]);
  t.same(d.skipped, [
    'node n3: no IPv6 InternalIP for fd00:42:3::/64',
    "node n5: podCIDR 10.42.2.0/24 is also node n2's",
    'node n6: podCIDR "bogus" is not a CIDR',
  ]);
  const fromN2 = desiredRoutes(nodes, 'n2').routes.map((r) => `${r.dst} via ${r.via}`);
  t.ok(fromN2.includes('fd00:42:1::/64 via fd99::10'), 'IPv6 pod CIDR via the IPv6 InternalIP');
  t.notOk(fromN2.some((r) => r.startsWith('10.42.2.0/24')), 'never a route to its own range');
});

t.test('route diff: replace missing or changed, remove stale, leave correct ones', async (t) => {
  const desired = [{ dst: '10.42.2.0/24', via: '10.99.0.11', node: 'n2' }, { dst: '10.42.3.0/24', via: '10.99.0.12', node: 'n3' }];
  const d = routeDiff(desired, [{ dst: '10.42.2.0/24', gateway: '10.99.0.11' }, { dst: '10.42.3.0/24', gateway: '10.99.0.99' }, { dst: '10.42.9.0/24', gateway: '10.99.0.19' }]);
  t.same(d.replace, [`route replace 10.42.3.0/24 via 10.99.0.12 proto ${ROUTE_PROTO}`]);
  t.same(d.remove, [`route del 10.42.9.0/24 proto ${ROUTE_PROTO}`]);
  t.same(routeDiff(desired, desired.map((r) => ({ dst: r.dst, gateway: r.via }))), { replace: [], remove: [] }, 'in sync: nothing to do');
  t.same(routeDiff([], []), { replace: [], remove: [] });
});
