// `kinglet endpoint list`: one line per pod endpoint, like `cilium endpoint list`.
import type { EndpointInfo } from '../../api/types.ts';
import { table } from './table.ts';

export function renderEndpoints(eps: EndpointInfo[]): string {
  if (eps.length === 0) return 'no endpoints on this node\n';
  const rows = eps.map((e) => [
    e.containerId.slice(0, 12),
    e.podNamespace && e.podName ? `${e.podNamespace}/${e.podName}` : '-',
    e.addresses.join(','),
    e.hostIfname,
    String(e.identity),
    e.programs.length ? e.programs.join(',') : '(none)',
  ]);
  return table(['CONTAINER', 'POD', 'ADDRESSES', 'HOST IF', 'IDENTITY', 'PROGRAMS'], rows);
}
