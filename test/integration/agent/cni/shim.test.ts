// The native kinglet-cni shim in the installed layout (test/lib/cni-bin.ts)
// against a real agent in a node namespace (test/lib/cluster.ts): the agent
// runs the plugin in-process (proved by an ADD/CHECK/DEL cycle with no Node
// plugin beside the shim; ADD's two sides over rtnetlink, CHECK reading them
// back with ip), bad stdin gets the plugin's CNI error codes
// through the shim, an unreachable agent or an unreadable "agentSocket"
// falls back to the Node plugin, and with neither the shim answers with its
// own CNI error.
import t from 'tap';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { netns, rootSkipReason } from '../../../lib/sandbox.ts';
import { cluster } from '../../../lib/cluster.ts';
import { installCniBin } from '../../../lib/cni-bin.ts';
import type { EndpointInfo } from '../../../../agent/api/types.ts';

const skip = rootSkipReason();
const FELL_BACK = /running \S+\/kinglet-cni-node/;

t.test('the shim forwards to the agent; errors, fallback and its own errors', { skip }, async (t) => {
  const c = await cluster(t);
  const n1 = await c.makeNode('n1', { podCIDR: '10.42.1.0/24' });
  // A bin dir with the shim alone: whatever works here ran in the agent.
  const shimOnly = await installCniBin(join(c.cniBinDir, '..', 'shim-only'));
  await rm(join(c.cniBinDir, '..', 'shim-only', 'kinglet-cni-node'));

  await t.test('ADD, CHECK, DEL run in the agent', async (t) => {
    const pod = await netns(t, 'kl-shimpod');
    const nsPath = `/run/netns/${pod.name}`;
    const add = await c.cni(n1, 'ADD', { containerId: 'shim-a', netns: nsPath }, { bin: shimOnly });
    t.equal(add.exitCode, 0, `ADD: ${add.stdout} ${add.stderr}`);
    const res = JSON.parse(add.stdout) as { cniVersion: string; ips: { address: string; gateway: string }[]; interfaces: { name: string; sandbox?: string }[] };
    t.equal(res.cniVersion, '1.0.0');
    t.match(res.ips[0]!.address, /^10\.42\.1\.\d+\/32$/, 'an address from the node\'s podCIDR (read from the agent)');
    t.equal(res.interfaces[1]!.sandbox, nsPath);
    t.notMatch(add.stderr, FELL_BACK, 'no fallback');
    const eps = await c.api<EndpointInfo[]>(n1, 'GET', '/v1/endpoints');
    t.match(eps.find((e) => e.containerId === 'shim-a'), { hostIfname: res.interfaces[0]!.name, addresses: [res.ips[0]!.address.split('/')[0]], podName: 'p', podNamespace: 'default' }, 'the endpoint is registered with its CNI_ARGS');
    const inPod = await pod.run(['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
    t.match(inPod, res.ips[0]!.address, 'the pod side is wired');
    const log = await n1.agent.waitForOutput((o) => o.includes('kinglet-cni ADD timings'));
    t.notMatch(log, /over netlink failed/, 'both sides went over rtnetlink, no ip fallback');

    const check = await c.cni(n1, 'CHECK', { containerId: 'shim-a', netns: nsPath }, { bin: shimOnly, conf: { prevResult: res } });
    t.equal(check.exitCode, 0, `CHECK: ${check.stdout}`);
    for (const ns of [nsPath, '']) {
      const del = await c.cni(n1, 'DEL', { containerId: 'shim-a', netns: ns }, { bin: shimOnly });
      t.equal(del.exitCode, 0, `DEL (netns ${JSON.stringify(ns)}): ${del.stdout}`);
      t.equal(del.stdout, '', 'DEL prints nothing');
    }
    t.notOk((await c.api<EndpointInfo[]>(n1, 'GET', '/v1/endpoints')).some((e) => e.containerId === 'shim-a'), 'the endpoint is gone');
    t.equal((await n1.ns.run(['ip', '-o', 'link', 'show', 'dev', res.interfaces[0]!.name]).catch(() => 'gone')), 'gone', 'the host veth is gone');
  });

  await t.test('bad stdin and env through the shim: the plugin\'s CNI error codes', async (t) => {
    const cases: [string, { stdin?: string; conf?: Record<string, unknown>; netns?: string }, number][] = [
      ['not JSON', { stdin: `{"agentSocket": "${n1.sock}", oops` }, 6],
      ['unknown field', { conf: { bogus: 1 } }, 2],
      ['unsupported version', { conf: { cniVersion: '9.9.9' } }, 1],
      ['missing netns', { netns: '/run/netns/kl-no-such-ns' }, 3],
    ];
    for (const [what, o, code] of cases) {
      const r = await c.cni(n1, 'ADD', { containerId: 'shim-bad', netns: o.netns ?? '/run/netns/kl-no-such-ns' }, { bin: shimOnly, ...o });
      t.equal(r.exitCode, 1, `${what}: exit 1`);
      t.equal(JSON.parse(r.stdout).code, code, `${what}: code ${code}: ${r.stdout}`);
      t.ok(JSON.parse(r.stdout).details, `${what}: details say what to do`);
    }
  });

  await t.test('agent not reachable: the Node plugin runs (DEL, VERSION work; ADD says why)', async (t) => {
    const gone = { agentSocket: join(n1.stateDir, 'no-agent.sock') };
    const add = await c.cni(n1, 'ADD', { containerId: 'shim-down', netns: '/proc/self/ns/net' }, { conf: gone });
    t.match(add.stderr, FELL_BACK, 'the shim says it falls back');
    t.equal(add.exitCode, 1);
    t.match(JSON.parse(add.stdout), { code: 11, details: /not running/ }, 'ADD: the Node plugin\'s try-again error');
    const del = await c.cni(n1, 'DEL', { containerId: 'shim-down', netns: '' }, { conf: gone });
    t.equal(del.exitCode, 0, `DEL still works: ${del.stdout}`);
    const ver = await c.cni(n1, 'VERSION', { containerId: '' }, { conf: gone });
    t.match(JSON.parse(ver.stdout), { supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });

    const twice = `{"cniVersion":"1.0.0","name":"kinglet","type":"kinglet-cni","agentSocket":"${n1.sock}","agentSocket":"${n1.sock}"}`;
    const amb = await c.cni(n1, 'VERSION', { containerId: '' }, { stdin: twice });
    t.match(amb.stderr, /agentSocket.*running \S+kinglet-cni-node/, '"agentSocket" twice: not guessed, the Node plugin decides');
    t.equal(amb.exitCode, 0);
  });

  await t.test('no agent and no Node plugin: the shim\'s own CNI error', async (t) => {
    const r = await c.cni(n1, 'ADD', { containerId: 'shim-none', netns: '/proc/self/ns/net' }, { bin: shimOnly, conf: { cniVersion: '0.4.0', agentSocket: join(n1.stateDir, 'no-agent.sock') } });
    t.equal(r.exitCode, 1);
    const j = JSON.parse(r.stdout) as { cniVersion: string; code: number; msg: string; details: string };
    t.equal(j.code, 11, `try again later: ${j.msg}`);
    t.equal(j.cniVersion, '0.4.0', 'in the netconf\'s version');
    t.match(j.details, /not reachable.*kinglet-cni-node cannot be run.*start the kinglet agent/);
  });
});
