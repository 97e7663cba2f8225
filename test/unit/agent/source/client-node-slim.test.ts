// The kube source loads @kubernetes/client-node without its generated API
// clients and models (client-node-slim.ts), and what it uses still works:
// a fresh node process imports kube.ts with and without the hook and lists
// the modules it loaded; then it uses proxy-url kubeconfigs and client-node's
// dispatchers, which must give the real packages' instances.
import t from 'tap';
import { execa } from 'execa';

const slim = new URL('../../../../agent/source/client-node-slim.ts', import.meta.url).href;
const kube = new URL('../../../../agent/source/kube.ts', import.meta.url).href;

/** Packages client-node imports for proxies and fetch, which the hook loads only on use (and what they pull in). */
const LAZY_PACKAGES = ['undici', 'socks-proxy-agent', 'agent-base', 'socks', 'smart-buffer', 'ip-address', 'hpagent'];

interface Loaded {
  registered: boolean; generated: number; modules: number; auth: string; listWatch: boolean; watch: boolean;
  /** Modules of LAZY_PACKAGES loaded by the imports alone, by package. */
  lazyAtImport: Record<string, number>;
  /** After proxy-url kubeconfigs and dispatchers were used: is each the real package's instance. */
  instances: Record<string, boolean>;
  /** The stand-in forwards SocksClient's static createConnection (hooked only). */
  socksStatic: boolean | null;
}

/** In a fresh process: import kube.ts (after slimClientNode when `hooked`), use KubeConfig, ListWatch and Watch; report the modules loaded by then; then use proxy kubeconfigs. */
async function load(hooked: boolean): Promise<Loaded> {
  const script = `
    import { registerHooks, createRequire } from 'node:module';
    import { fileURLToPath } from 'node:url';
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
    const generated = loaded.filter((u) => /\\/client-node\\/dist\\/gen\\/(apis|models|types)\\//.test(u)).length;
    const modules = loaded.length;
    const lazyPackages = ${JSON.stringify(LAZY_PACKAGES)};
    const lazyAtImport = {};
    for (const u of loaded) {
      const m = u.match(/.*node_modules\\/((?:@[^/]+\\/)?[^/]+)\\/[^?]*$/); // the innermost package
      if (m && lazyPackages.includes(m[1])) lazyAtImport[m[1]] = (lazyAtImport[m[1]] ?? 0) + 1;
    }
    // Proxy-url kubeconfigs and client-node's fetch dispatchers: the real packages' instances.
    const fromClientNode = createRequire(fileURLToPath(import.meta.resolve('@kubernetes/client-node/dist/config.js')));
    const real = (pkg) => fromClientNode(pkg);
    const agentFor = async (server, proxyUrl) => {
      const k = new KubeConfig();
      k.loadFromOptions({ clusters: [{ name: 'c', server, proxyUrl, skipTLSVerify: true }], users: [{ name: 'u', token: 'tok' }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x' });
      const o = {};
      await k.applyToHTTPSOptions(o);
      return { agent: o.agent, dispatcher: k.createDispatcher(k.getCurrentCluster(), { ca: Buffer.from('x') }) };
    };
    const https = await agentFor('https://127.0.0.1:2', 'http://127.0.0.1:3');
    const http = await agentFor('http://127.0.0.1:2', 'http://127.0.0.1:3');
    const socks = await agentFor('https://127.0.0.1:2', 'socks5://127.0.0.1:3');
    const direct = await agentFor('https://127.0.0.1:2', undefined);
    const instances = {
      HttpsProxyAgent: https.agent instanceof real('hpagent').HttpsProxyAgent,
      HttpProxyAgent: http.agent instanceof real('hpagent').HttpProxyAgent,
      SocksProxyAgent: socks.agent instanceof real('socks-proxy-agent').SocksProxyAgent,
      'undici ProxyAgent': https.dispatcher instanceof real('undici').ProxyAgent,
      'undici Agent (socks)': socks.dispatcher instanceof real('undici').Agent,
      'undici Agent': direct.dispatcher instanceof real('undici').Agent,
    };
    const socksStandIn = loaded.find((u) => u.includes('/lazy-socks.ts?'));
    const socksStatic = socksStandIn ? (await import(socksStandIn)).SocksClient.createConnection === real('socks').SocksClient.createConnection : null;
    console.log(JSON.stringify({
      lazyAtImport, instances, socksStatic,
      registered,
      generated,
      modules,
      auth: opts.headers?.Authorization ?? '',
      listWatch: typeof lw.start === 'function',
      watch: typeof w.watch === 'function',
    }));
  `;
  const r = await execa(process.execPath, ['--input-type=module', '-e', script], { cwd: new URL('../../../../', import.meta.url).pathname });
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Loaded;
}

const [plain, hooked] = await Promise.all([load(false), load(true)]);

t.test('with the hook, none of the generated API clients or models load', async (t) => {
  t.ok(plain.generated > 100, `without it they do (${plain.generated} of ${plain.modules} modules)`);
  t.equal(hooked.registered, true);
  t.equal(hooked.generated, 0, `with it: ${hooked.modules} modules in all`);
  t.ok(hooked.modules < plain.modules / 3, `${hooked.modules} modules instead of ${plain.modules}`);
  for (const r of [plain, hooked]) {
    t.equal(r.auth, 'Bearer tok', 'KubeConfig applies credentials');
    t.ok(r.listWatch && r.watch, 'ListWatch and Watch are usable');
  }
});

t.test('with the hook, the proxy and fetch packages load only when used, and are the real ones then', async (t) => {
  for (const pkg of ['undici', 'socks-proxy-agent', 'socks', 'hpagent']) t.ok((plain.lazyAtImport[pkg] ?? 0) > 0, `without it, ${pkg} loads with kube.ts`);
  t.same(hooked.lazyAtImport, {}, 'with it, none of them loads with kube.ts');
  t.ok(Object.keys(plain.instances).length === 6);
  for (const r of [plain, hooked]) {
    for (const [what, ok] of Object.entries(r.instances)) t.ok(ok, `${r === plain ? 'plain' : 'hooked'}: ${what} is the real class's instance`);
  }
  t.equal(hooked.socksStatic, true, "SocksClient's static createConnection is the real one");
});
