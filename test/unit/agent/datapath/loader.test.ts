// Which pins the loader sweeps after an upgrade: other layout versions of the
// object's own maps, nothing else.
import t from 'tap';
import { stalePins } from '../../../../agent/datapath/loader.ts';

t.test('another version of one of our maps is stale', async (t) => {
  t.same(stalePins(['kl_lb4_be_v1', 'kl_lb4_be_v2', 'kl_lb4_svc_v1'], ['kl_lb4_be_v2', 'kl_lb4_svc_v1']), ['kl_lb4_be_v1']);
  t.same(stalePins(['kl_lb4_be_v3'], ['kl_lb4_be_v2']), ['kl_lb4_be_v3'], 'a newer layout left by a downgrade is not ours either');
  t.same(stalePins(['kl_lb4_be_v1', 'kl_lb4_be_v10'], ['kl_lb4_be_v2']), ['kl_lb4_be_v1', 'kl_lb4_be_v10']);
});

t.test('maps that are not another version of ours stay', async (t) => {
  t.same(stalePins(['kl_ep4_v1'], ['kl_lb4_be_v2']), [], "another object's map in the same root");
  t.same(stalePins(['kl_lb4_be', 'kl_lb4_be_vx', 'kl_lb4_be_v'], ['kl_lb4_be_v2']), [], 'no version number');
  t.same(stalePins(['kl_lb4_be_v2'], ['kl_lb4_be_v2']), [], 'our own pin');
  t.same(stalePins(['kl_test_counts_v1'], ['kl_test_counts']), [], 'our map has no version: nothing to compare with');
  t.same(stalePins(['kl_lb4_v1'], ['kl_lb4_be_v2']), [], 'a shorter base is a different map');
});
