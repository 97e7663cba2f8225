// @kubernetes/client-node without its generated API clients, for the agent's
// kube source.
//
// Why: the kube source uses KubeConfig and ListWatch, but the
// package's files that define them import the generated clients and models
// of the whole Kubernetes API (~900 modules, 7 MB of source in one of them),
// and V8 keeps every loaded module's source. Measured with
// test/bench/agent-rss.ts (10k services x 10 endpoints, `--source kube`
// against the stand-in API server): RSS when programmed ~194 -> ~156 MB, 3 s
// later ~172 -> ~141 MB, VmHWM ~207 -> ~169 MB. Importing the package alone
// costs a bare node process ~69 MB of RSS.
//
// How: kube.ts imports the two files it needs (dist/config.js, cache.js)
// instead of the package index, and before it is loaded, a module resolve
// hook sends two imports inside the package elsewhere:
// dist/config.js's './gen/index.js' to client-node/gen-index.ts (the two
// names it uses) and dist/serializer.js's './gen/models/ObjectSerializer.js'
// to client-node/object-serializer.ts. Every other import resolves as usual.
// If a later client-node renames these files, the hook matches nothing and
// the full package loads as before; if it takes more names from them,
// loading kube.ts fails at once (a missing export), which the tests see.
//
// Lazily: the packages client-node's files import for proxies and for its
// fetch-based clients (undici, socks-proxy-agent, socks, hpagent) load only
// when used: with a proxy-url in the kubeconfig, or through client-node's
// own fetch clients, which the kube source does not use (its lists and
// watches are over node:https, kube-http.ts). Their imports from files
// under client-node/dist resolve as usual, then go to client-node/lazy-
// <package>.ts with the resolved file in ?real=; its stand-ins load that
// file on first use (client-node/lazy.ts). Measured in a bare node with the
// agent's flags (compile cache warm), importing kube.ts: RSS ~81 -> ~65 MB,
// 320 -> 62 modules (a bare node: ~45 MB; openid-client and jsonpath-plus,
// also only for some auth providers, would save < 1 MB more). A package that
// does not resolve fails as without the hook; a name client-node takes that
// the stand-in lacks fails the load of kube.ts at once (tests).
import * as nodeModule from 'node:module';

const REDIRECTS: readonly { parent: string; specifier: string; target: string }[] = [
  { parent: '/@kubernetes/client-node/dist/config.js', specifier: './gen/index.js', target: new URL('./client-node/gen-index.ts', import.meta.url).href },
  { parent: '/@kubernetes/client-node/dist/serializer.js', specifier: './gen/models/ObjectSerializer.js', target: new URL('./client-node/object-serializer.ts', import.meta.url).href },
];

const CLIENT_NODE_DIST = '/@kubernetes/client-node/dist/';
/** Package -> its stand-in module. */
const LAZY: ReadonlyMap<string, string> = new Map(['undici', 'socks-proxy-agent', 'socks', 'hpagent']
  .map((pkg) => [pkg, new URL(`./client-node/lazy-${pkg}.ts`, import.meta.url).href]));

let registered = false;

/**
 * Install the resolve hook (once per process). Call before kube.ts is first
 * imported; returns false when this node has no module.registerHooks (the
 * full package then loads, as before).
 */
export function slimClientNode(): boolean {
  if (registered) return true;
  // Looked up, not imported by name: a node without it must still load this file.
  const registerHooks = (nodeModule as Partial<typeof nodeModule>).registerHooks;
  if (typeof registerHooks !== 'function') return false;
  registerHooks({
    resolve(specifier, context, next) {
      const parent = context.parentURL;
      if (parent) {
        for (const r of REDIRECTS) {
          if (specifier === r.specifier && parent.endsWith(r.parent)) return { url: r.target, shortCircuit: true };
        }
        const standIn = LAZY.get(specifier);
        // Imports only (client-node's dist is ES modules): a require() gets the real package.
        if (standIn && parent.includes(CLIENT_NODE_DIST) && !context.conditions?.includes('require')) {
          const real = next(specifier, context);
          return { url: `${standIn}?real=${encodeURIComponent(real.url)}`, shortCircuit: true };
        }
      }
      return next(specifier, context);
    },
  });
  registered = true;
  return true;
}
