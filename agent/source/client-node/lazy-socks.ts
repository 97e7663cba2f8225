// Stands in for 'socks' where @kubernetes/client-node's files import it: the
// names they take, loaded on first use (lazy.ts, ../client-node-slim.ts).
import type * as Real from 'socks';
import { lazyExport, realModule } from './lazy.ts';

const load = realModule(import.meta.url);
export const SocksClient = lazyExport<typeof Real.SocksClient>(load, 'socks', 'SocksClient');
