// Lazy stand-ins for packages that @kubernetes/client-node's files import
// but a node without a proxy-url never uses (see ../client-node-slim.ts).
// Each stand-in module (lazy-<package>.ts) is imported with ?real=<URL>, the
// file the package's import would have resolved to from client-node's file;
// its exports are stand-ins that load that file on first use (require() of
// it: a CommonJS file, or an ES module by require(esm), either way the same
// module instance an import would give) and then behave as the real export:
// `new` returns the real class's instance, calls and static members are the
// real ones, instanceof sees the real class.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** The real module's exports loader for the stand-in module at `standInUrl` (its import.meta.url). */
export function realModule(standInUrl: string): () => Record<string, unknown> {
  const real = new URL(standInUrl).searchParams.get('real');
  let loaded: Record<string, unknown> | undefined;
  return () => {
    if (loaded) return loaded;
    if (!real) throw new Error(`client-node-slim: ${standInUrl} was loaded without ?real=: load it through slimClientNode's hook`);
    const path = real.startsWith('file:') ? fileURLToPath(real) : real;
    loaded = createRequire(path)(path) as Record<string, unknown>;
    return loaded;
  };
}

/** A stand-in for export `name` of the module `load()` gives: a class or function loaded on first use. */
export function lazyExport<T>(load: () => Record<string, unknown>, pkg: string, name: string): T {
  const real = (): T & object => {
    const v = load()[name];
    if (typeof v !== 'function') throw new Error(`client-node-slim: ${pkg} has no export ${name} (another version than client-node expects?)`);
    return v as unknown as T & object;
  };
  // A plain function as target, so that the proxy can be called and constructed.
  const target = function standIn(): void {};
  const proxy: T = new Proxy(target, {
    construct: (_t, args, newTarget) => Reflect.construct(real() as never, args, newTarget === proxy ? real() as never : newTarget),
    apply: (_t, self, args) => Reflect.apply(real() as never, self, args),
    get: (_t, prop) => Reflect.get(real(), prop),
    set: (_t, prop, value) => Reflect.set(real(), prop, value),
    has: (_t, prop) => Reflect.has(real(), prop),
    getPrototypeOf: () => Reflect.getPrototypeOf(real()),
  }) as T;
  return proxy;
}
