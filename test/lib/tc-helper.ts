// Run inside a test network namespace (nsenter --net=...): load pod.bpf.o on
// a scratch bpffs and act on tc hooks of a device there. Prints one JSON line.
//   tc-helper.ts <bpfRoot> attach <ifname>     -> { attachments }
//   tc-helper.ts <bpfRoot> query <ifname>      -> { ingress, egress }
//   tc-helper.ts <bpfRoot> detach <ifname> [--qdisc]
//   tc-helper.ts <bpfRoot> native <ifname>     -> attach the masquerade pair
import { execFileSync } from 'node:child_process';
import { PodDatapath } from '../../agent/datapath/pod.ts';
import { tcDetachProgram } from '../../agent/datapath/loader.ts';

const [bpfRoot, op, ifname, flag] = process.argv.slice(2);
const links = JSON.parse(execFileSync('ip', ['-json', 'link', 'show', 'dev', ifname!], { encoding: 'utf8' })) as { ifindex: number }[];
const ifindex = links[0]!.ifindex;
const dp = PodDatapath.open({ bpfRoot: bpfRoot! });
let out: unknown;
if (op === 'attach') out = { attachments: dp.attachEndpoint(ifindex), ids: Object.fromEntries(Object.entries(dp.loaded.programs).map(([k, v]) => [k, v.id])) };
else if (op === 'native') out = { attachments: dp.attachNative(ifindex) };
else if (op === 'query') out = dp.queryDevice(ifindex);
else if (op === 'detach') {
  tcDetachProgram(ifindex, 'ingress');
  tcDetachProgram(ifindex, 'egress', { removeQdisc: flag === '--qdisc' });
  out = dp.queryDevice(ifindex);
}
dp.close();
process.stdout.write(JSON.stringify(out) + '\n');
