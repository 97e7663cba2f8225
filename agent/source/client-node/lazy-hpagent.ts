// Stands in for 'hpagent' where @kubernetes/client-node's files import it: the
// names they take, loaded on first use (lazy.ts, ../client-node-slim.ts).
import type * as Real from 'hpagent';
import { lazyExport, realModule } from './lazy.ts';

const load = realModule(import.meta.url);
export const HttpProxyAgent = lazyExport<typeof Real.HttpProxyAgent>(load, 'hpagent', 'HttpProxyAgent');
export const HttpsProxyAgent = lazyExport<typeof Real.HttpsProxyAgent>(load, 'hpagent', 'HttpsProxyAgent');
