// kinglet lab end to end, as a user runs it (root): lab up with two nodes,
// lab test (every check that is not skipped passes; --json), lab down, and
// nothing left behind: namespaces, links, bpffs mounts, cgroups, processes,
// the state directory; the host's ip_forward untouched. Then an `up` killed
// halfway, and `down` cleaning up after it.
import t from 'tap';
import { execa } from 'execa';
import { existsSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { rootSkipReason } from '../../lib/sandbox.ts';
import { waitFor } from '../../lib/wait.ts';
import type { JsonReport } from '../../../agent/connectivity/report.ts';
import { labCgroup, labDir, nsPrefix } from '../../../agent/lab/plan.ts';
import { parseState, type LabState } from '../../../agent/lab/state.ts';
import { isOurs, mountsBelow } from '../../../agent/lab/system.ts';
import { cgroup2Mount } from '../../../kernel/mounts.ts';

const kinglet = fileURLToPath(new URL('../../../agent/cli/kinglet.ts', import.meta.url));
const skip = rootSkipReason();

/**
 * Checks that fail today because of a datapath bug the lab found (see the
 * report of the lab's commit): reported as tap TODOs, not hidden. Remove an
 * entry when its fix lands.
 */
const KNOWN_DATAPATH_BUGS: Record<string, string> = {};

const kl = (args: string[]) => execa(process.execPath, [kinglet, ...args], { reject: false });
const ipForward = () => readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
const netnsList = async () => (await execa('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]!).filter(Boolean);
const hostLinks = async () => (JSON.parse((await execa('ip', ['-j', 'link', 'show'])).stdout) as { ifname: string }[]).map((l) => l.ifname);
const readLabState = (name: string): LabState | undefined => {
  try {
    return parseState(readFileSync(`${labDir(name)}/state.json`, 'utf8'));
  } catch {
    return undefined;
  }
};

async function leftovers(name: string, st: LabState | undefined): Promise<string[]> {
  const cg2 = (await cgroup2Mount())!;
  const out: string[] = [];
  for (const n of await netnsList()) if (n.startsWith(nsPrefix(name))) out.push(`netns ${n}`);
  const labLinks = new Set(['br0', 'ext', ...(st?.plan.nodes.map((n) => n.ulPort) ?? []), ...(st?.pods.map((p) => p.hostIfname) ?? [])]);
  for (const l of await hostLinks()) if (labLinks.has(l)) out.push(`host link ${l}`);
  for (const mp of await mountsBelow(labDir(name))) out.push(`mount ${mp}`);
  if (existsSync(labCgroup(cg2, name))) out.push(`cgroup ${labCgroup(cg2, name)}`);
  for (const p of st?.processes ?? []) if (isOurs(p.pid, p.startTime)) out.push(`process ${p.pid} (${p.role} ${p.name})`);
  if (existsSync(labDir(name))) out.push(`dir ${labDir(name)}`);
  return out;
}

t.test('lab up, test, down: checks pass, nothing left behind', { skip }, async (t) => {
  const name = `e2e${randomBytes(3).toString('hex')}`;
  t.teardown(() => kl(['lab', 'down', '--name', name]));
  t.equal(ipForward(), '0', 'precondition: the host does not forward');
  const linksBefore = await hostLinks();

  const up = await kl(['lab', 'up', '--nodes', '2', '--name', name]);
  t.equal(up.exitCode, 0, 'lab up', { stderr: up.stderr });
  t.match(up.stderr, /agents ready on node1, node2/, 'progress lines');
  t.match(up.stdout, new RegExp(`lab ${name} is up`));
  const st = readLabState(name)!;
  t.ok(st?.complete, 'state file says complete');
  t.equal(st.processes.filter((p) => p.role === 'agent').length, 2, 'two agents recorded');
  for (const p of st.processes) t.ok(isOurs(p.pid, p.startTime), `${p.role} ${p.name} running detached after up returned`);
  t.equal(ipForward(), '0', 'the host still does not forward');
  t.same((await hostLinks()).sort(), linksBefore.sort(), 'no link added to the host namespace');
  for (const n of st.plan.nodes) {
    const routes = (await execa('ip', ['-n', n.netns, 'route', 'show', 'default'])).stdout.trim();
    t.equal(routes, '', `${n.name}: no default route (nothing leaves the machine)`);
  }

  const again = await kl(['lab', 'up', '--name', name]);
  t.equal(again.exitCode, 1, 'a second up with the same name refuses');
  t.match(again.stderr, /exists.*kinglet lab down --name/);

  const human = await kl(['lab', 'test', '--name', name]);
  t.match(human.stdout, /^lab: 2 nodes; capabilities: /m, 'the report header');
  t.match(human.stdout, /CHECK\s+VERDICT\s+DURATION\s+REASON/);
  t.comment(human.stdout);

  const js = await kl(['lab', 'test', '--name', name, '--json']);
  const rep = JSON.parse(js.stdout) as JsonReport;
  t.equal(rep.runner, 'lab');
  t.equal(rep.nodes, 2);
  t.equal(rep.results.length, 12, 'every check of the suite reported');
  t.equal(rep.summary.total, 12);
  let ran = 0;
  for (const r of rep.results) {
    if (r.verdict === 'SKIP') {
      t.ok(r.reason && r.reason.length > 10, `${r.name} SKIP with a reason: ${r.reason}`);
      continue;
    }
    ran++;
    const todo = KNOWN_DATAPATH_BUGS[r.name];
    t.equal(r.verdict, 'PASS', `${r.name}: ${r.reason}`, todo ? { todo } : {});
  }
  t.ok(ran >= 5, `${ran} checks ran (pod and host, ClusterIP and headless, same and other node)`);
  t.match(rep.results.find((r) => r.name === 'pod-to-external-1111'), { verdict: 'SKIP', reason: /no route out/ });
  for (const n of ['pod-to-a-denied-np', 'pod-to-b-multi-node-nodeport', 'pod-to-b-intra-node-hostport']) {
    t.equal(rep.results.find((r) => r.name === n)?.verdict, 'SKIP', `${n}: SKIP while the agents do not report the capability`);
  }
  t.equal(js.exitCode, rep.ok ? 0 : 1, 'exit status follows the verdicts');

  const down = await kl(['lab', 'down', '--name', name]);
  t.equal(down.exitCode, 0, 'lab down', { stderr: down.stderr });
  t.same(await leftovers(name, st), [], 'nothing left behind');
  t.equal(ipForward(), '0');
  const twice = await kl(['lab', 'down', '--name', name]);
  t.equal(twice.exitCode, 0, 'down again: nothing to do');
  t.match(twice.stderr, /nothing to remove/);
});

t.test('lab down after lab up was killed halfway', { skip }, async (t) => {
  const name = `e2e${randomBytes(3).toString('hex')}`;
  t.teardown(() => kl(['lab', 'down', '--name', name]));
  const up = execa(process.execPath, [kinglet, 'lab', 'up', '--name', name], { reject: false });
  // Halfway: the agents run, the pods are being made.
  await waitFor(() => (readLabState(name)?.processes.filter((p) => p.role === 'agent').length ?? 0) === 2, 'the agents to be recorded', 30_000, 10);
  await waitFor(() => (readLabState(name)?.pods.length ?? 0) >= 1, 'a first pod', 30_000, 5);
  up.kill('SIGKILL');
  await up;
  const st = readLabState(name)!;
  t.notOk(st.complete, 'up did not finish');
  t.ok(st.processes.some((p) => isOurs(p.pid, p.startTime)), 'its agents outlive it');

  const test = await kl(['lab', 'test', '--name', name]);
  t.equal(test.exitCode, 1, 'lab test refuses an incomplete lab');
  t.match(test.stderr, /incomplete.*kinglet lab down --name/);

  const down = await kl(['lab', 'down', '--name', name]);
  t.equal(down.exitCode, 0, 'lab down', { stderr: down.stderr });
  t.same(await leftovers(name, readLabState(name) ?? st), [], 'nothing left behind');
});
