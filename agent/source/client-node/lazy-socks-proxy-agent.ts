// Stands in for 'socks-proxy-agent' where @kubernetes/client-node's files import it: the
// names they take, loaded on first use (lazy.ts, ../client-node-slim.ts).
import type * as Real from 'socks-proxy-agent';
import { lazyExport, realModule } from './lazy.ts';

const load = realModule(import.meta.url);
export const SocksProxyAgent = lazyExport<typeof Real.SocksProxyAgent>(load, 'socks-proxy-agent', 'SocksProxyAgent');
