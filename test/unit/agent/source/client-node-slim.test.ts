// The kube source loads @kubernetes/client-node without its generated API
// clients and models (client-node-slim.ts), and what it uses still works:
// a fresh node process imports kube.ts with and without the hook and lists
// the modules it loaded.
import t from 'tap';
import { execa } from 'execa';

const slim = new URL('../../../../agent/source/client-node-slim.ts', import.meta.url).href;
const kube = new URL('../../../../agent/source/kube.ts', import.meta.url).href;

/** In a fresh process: import kube.ts (after slimClientNode when `hooked`), use KubeConfig, ListWatch and Watch; report the modules loaded. */
async function load(hooked: boolean): Promise<{ registered: boolean; generated: number; modules: number; auth: string; listWatch: boolean; watch: boolean }> {
  const script = `
    import { registerHooks } from 'node:module';
    const loaded = [];
    registerHooks({ load(url, context, next) { loaded.push(url); return next(url, context); } });
    let registered = false;
    if (${hooked}) registered = (await import(${JSON.stringify(slim)})).slimClientNode();
    await import(${JSON.stringify(kube)});
    const { KubeConfig } = await import('@kubernetes/client-node/dist/config.js');
    const { ListWatch } = await import('@kubernetes/client-node/dist/cache.js');
    const { Watch } = await import('@kubernetes/client-node/dist/watch.js');
    const kc = new KubeConfig();
    kc.loadFromOptions({ clusters: [{ name: 'c', server: 'https://127.0.0.1:1', skipTLSVerify: false }], users: [{ name: 'u', token: 'tok' }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x' });
    const opts = {};
    await kc.applyToHTTPSOptions(opts);
    const w = new Watch(kc);
    const lw = new ListWatch('/api/v1/services', w, async () => ({ items: [], metadata: {} }), false);
    console.log(JSON.stringify({
      registered,
      generated: loaded.filter((u) => /\\/client-node\\/dist\\/gen\\/(apis|models|types)\\//.test(u)).length,
      modules: loaded.length,
      auth: opts.headers?.Authorization ?? '',
      listWatch: typeof lw.start === 'function',
      watch: typeof w.watch === 'function',
    }));
  `;
  const r = await execa(process.execPath, ['--input-type=module', '-e', script], { cwd: new URL('../../../../', import.meta.url).pathname });
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Awaited<ReturnType<typeof load>>;
}

t.test('with the hook, none of the generated API clients or models load', async (t) => {
  const [plain, hooked] = await Promise.all([load(false), load(true)]);
  t.ok(plain.generated > 100, `without it they do (${plain.generated} of ${plain.modules} modules)`);
  t.equal(hooked.registered, true);
  t.equal(hooked.generated, 0, `with it: ${hooked.modules} modules in all`);
  t.ok(hooked.modules < plain.modules / 3, `${hooked.modules} modules instead of ${plain.modules}`);
  for (const r of [plain, hooked]) {
    t.equal(r.auth, 'Bearer tok', 'KubeConfig applies credentials');
    t.ok(r.listWatch && r.watch, 'ListWatch and Watch are usable');
  }
});
