// Stands in for 'undici' where @kubernetes/client-node's files import it: the
// names they take, loaded on first use (lazy.ts, ../client-node-slim.ts).
import type * as Real from 'undici';
import { lazyExport, realModule } from './lazy.ts';

const load = realModule(import.meta.url);
export const Agent = lazyExport<typeof Real.Agent>(load, 'undici', 'Agent');
export const ProxyAgent = lazyExport<typeof Real.ProxyAgent>(load, 'undici', 'ProxyAgent');
export const fetch = lazyExport<typeof Real.fetch>(load, 'undici', 'fetch');
