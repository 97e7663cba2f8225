// What `kinglet agent --source dir:` loads: every module stays resident in
// the long-running agent, so heavy packages only come in when they are used
// (the kube source's client, the YAML parser for YAML files).
import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../../', import.meta.url));

/** What `script` (an ES module) prints, run in a fresh node from the repo root. */
async function inFreshNode(script: string): Promise<string> {
  return (await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { cwd: root })).stdout;
}

/** npm packages loaded by importing `modules` (paths relative to the repo) in a fresh node. */
async function packagesLoadedBy(modules: string[]): Promise<string[]> {
  const script = `
    const { registerHooks } = await import('node:module');
    const seen = new Set();
    registerHooks({ load(url, ctx, next) { const m = /\\/node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(url); if (m) seen.add(m[1]); return next(url, ctx); } });
    for (const m of ${JSON.stringify(modules)}) await import(${JSON.stringify(root)} + m);
    console.log(JSON.stringify([...seen].sort()));
  `;
  return JSON.parse(await inFreshNode(script)) as string[];
}

t.test('the agent with a dir source loads no kube client, no execa, no YAML parser', async (t) => {
  const loaded = await packagesLoadedBy(['agent/cli/commands/agent.ts', 'agent/agent.ts', 'agent/source/dir.ts']);
  for (const heavy of ['@kubernetes/client-node', 'execa', 'yaml']) t.notOk(loaded.includes(heavy), `${heavy} is not loaded`);
  t.ok(loaded.includes('koffi'), 'the check sees packages (koffi, for libbpf, is loaded)');
});

t.test('the kube source does load its client', async (t) => {
  const loaded = await packagesLoadedBy(['agent/source/kube.ts']);
  t.ok(loaded.includes('@kubernetes/client-node'));
});

t.test('the agent with a dir source loads neither undici nor TLS from Node itself', async (t) => {
  // An ES import of node:http reads all its exports, and the WebSocket getter
  // loads undici (with tls, http2, zlib, worker_threads): ~12 MB of RSS.
  const code = `await import(${JSON.stringify(root + 'agent/cli/commands/agent.ts')}); await import(${JSON.stringify(root + 'agent/agent.ts')}); process.stdout.write(JSON.stringify(process.moduleLoadList));`;
  const loaded = JSON.parse(await inFreshNode(code)) as string[];
  t.ok(loaded.includes('NativeModule _http_server'), "the check sees Node's modules (the API server's are loaded)");
  t.same(loaded.filter((m) => /undici|\btls\b|http2/.test(m)), [], 'no undici, tls or http2');
});
