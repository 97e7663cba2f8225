// tc attachment through libbpf's bpf_tc_* (koffi), inside a test namespace:
// attach adds clsact + a direct-action filter at kinglet's handle/priority,
// a second load swaps the filter in place (new program id, same filter,
// traffic never stops), detach removes it, and the qdisc goes only on request.
import t from 'tap';
import { execa } from 'execa';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { netns, rootSkipReason, scratchBpffs, veth } from '../../../lib/sandbox.ts';

const skip = rootSkipReason();
const helper = fileURLToPath(new URL('../../../lib/tc-helper.ts', import.meta.url));
const repo = fileURLToPath(new URL('../../../../', import.meta.url));

t.test('tc attach, atomic replace, query, detach in a namespace', { skip }, async (t) => {
  await execa('make', ['-s', '-C', join(repo, 'bpf')]);
  const fs = await scratchBpffs(t);
  const root = join(fs, 'kinglet');
  const ns = await netns(t, 'kl-tc');
  const peer = await netns(t, 'kl-tcp');
  await veth(t, { ns, addr: '10.77.0.1/24', name: 'tca' }, { ns: peer, addr: '10.77.0.2/24', name: 'tcb' });
  const run = async (...args: string[]) =>
    JSON.parse((await execa('nsenter', [`--net=/run/netns/${ns.name}`, process.execPath, helper, root, ...args])).stdout) as Record<string, any>;

  const a = await run('attach', 'tca');
  t.same(a.attachments.map((x: any) => [x.program, x.direction, x.action, x.createdQdisc]), [
    ['kl_from_pod', 'ingress', 'attached', true],
    ['kl_to_pod', 'egress', 'attached', false],
  ]);
  t.equal(a.attachments[0].progId, a.ids.kl_from_pod, 'the filter runs the loaded program');
  const show = await ns.run(['tc', 'filter', 'show', 'dev', 'tca', 'ingress']);
  t.match(show, /handle 0xb9 .*direct-action/, `filter at handle 0xb9, direct action: ${show}`);

  // from-pod drops packets whose source is no endpoint (the map is empty):
  // a ping from the peer arrives at tca ingress and is dropped there.
  const ping = await execa('ip', ['netns', 'exec', peer.name, 'ping', '-c', '1', '-W', '1', '10.77.0.1'], { reject: false });
  t.not(ping.exitCode, 0, 'from-pod runs: traffic from an unknown source is dropped');

  const b = await run('attach', 'tca');
  t.same(b.attachments.map((x: any) => x.action), ['replaced', 'replaced'], 'second load replaces in place');
  t.not(b.attachments[0].progId, a.attachments[0].progId, 'a new program instance');
  const q = await run('query', 'tca');
  t.same(q, { ingress: b.attachments[0].progId, egress: b.attachments[1].progId });
  const filters = (await ns.run(['tc', 'filter', 'show', 'dev', 'tca', 'ingress'])).split('\n').filter((l) => l.includes('handle'));
  t.equal(filters.length, 1, 'still exactly one filter');

  const d = await run('detach', 'tca');
  t.same(d, {}, 'nothing left at kinglet\'s handle');
  t.match(await ns.run(['tc', 'qdisc', 'show', 'dev', 'tca']), /clsact/, 'the qdisc stays without --qdisc');
  await run('attach', 'tca');
  await run('detach', 'tca', '--qdisc');
  t.notMatch(await ns.run(['tc', 'qdisc', 'show', 'dev', 'tca']), /clsact/, 'qdisc removed on request');
  const ok = await execa('ip', ['netns', 'exec', peer.name, 'ping', '-c', '1', '-W', '1', '10.77.0.1'], { reject: false });
  t.equal(ok.exitCode, 0, 'without the program traffic flows again');
});
