// The agent service the installer writes must run the agent as the agent
// expects to be run: the Kubernetes source, the agent's own kubeconfig, this
// node's name, restart on failure, and no secret on its command line.
import t from 'tap';
import { planAgent } from '../../../installer/phases.ts';
import { fixture, input } from '../../lib/installer-helpers.ts';
import { parseArgs } from 'node:util';

for (const [host, init] of [['debian12', 'systemd'], ['alpine', 'openrc']] as const) {
  t.test(`${host}: the ${init} agent service`, async (t) => {
    const plan = planAgent(input(await fixture(host), { K3S_TOKEN: 'secret-token-value' }), { binDir: '/opt/cni/bin', confDir: '/etc/cni/net.d', fromConfig: false });
    const step = plan.steps.find((s) => s.id === 'agent.service') as { content?: string } | undefined;
    t.ok(step?.content, 'an agent service step with content');
    const content = step!.content!;
    t.notMatch(content, /secret-token-value/, 'no token in the unit');
    const line = init === 'systemd' ? /^ExecStart=(.*)$/m.exec(content)?.[1] : /^command_args="(.*)"$/m.exec(content)?.[1];
    t.ok(line, 'the command line is there');
    const words = line!.split(/\s+/);
    t.ok(words.indexOf('--max-semi-space-size=4') >= 0 && words.indexOf('--max-semi-space-size=4') < words.findIndex((w) => w.endsWith('kinglet.ts')), 'node runs the agent with a small young generation (a node flag, before the script)');
    const at = words.indexOf('agent');
    t.ok(at >= 0, 'runs `kinglet agent`');
    const { values } = parseArgs({
      args: words.slice(at + 1),
      options: { source: { type: 'string' }, kubeconfig: { type: 'string' }, 'node-name': { type: 'string' }, 'manage-sysctls': { type: 'boolean' } },
      strict: true,
    });
    t.equal(values.source, 'kube', '--source kube (the agent refuses to start without a source)');
    t.equal(values.kubeconfig, '/etc/kinglet/agent.kubeconfig');
    t.ok(values['node-name'], 'the node name is passed');
    t.equal(values['manage-sysctls'], true, 'on a real node the agent owns ip_forward, node routes and the uplink');
    t.match(content, init === 'systemd' ? /^Restart=always$/m : /^supervisor=supervise-daemon$/m, 'restarted on failure');
  });
}

t.test("the agent's node flags turn the compile cache on before its TypeScript entry loads", async (t) => {
  const { AGENT_NODE_FLAGS } = await import('../../../installer/render.ts');
  const { execFileSync } = await import('node:child_process');
  const { mkdtemp, rm, writeFile } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = await mkdtemp(join(tmpdir(), 'kl-cc-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const entry = join(dir, 'entry.ts');
  await writeFile(entry, "import { getCompileCacheDir } from 'node:module';\nconst d: string | undefined = getCompileCacheDir();\nprocess.stdout.write(String(d));\n");
  const run = (cache: string) => execFileSync(process.execPath, [...AGENT_NODE_FLAGS, entry], { env: { ...process.env, KINGLET_COMPILE_CACHE: cache }, encoding: 'utf8' });
  t.match(run(join(dir, 'cache')), join(dir, 'cache'), 'on, in KINGLET_COMPILE_CACHE, while the entry runs');
  t.equal(run('off'), 'undefined', 'KINGLET_COMPILE_CACHE=off leaves it off');
});
