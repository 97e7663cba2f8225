// `kinglet service list` in the shape `cilium service list` users know:
// ID, frontend, type, then one line per backend.
import type { ServiceEntry } from '../../api/types.ts';
import { table } from './table.ts';

export function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

export function renderServices(services: ServiceEntry[]): string {
  const rows: string[][] = [];
  for (const s of services) {
    const fe = `${hostPort(s.address, s.port)}/${s.protocol}`;
    const type = s.affinityTimeoutSeconds > 0 ? `${s.type} (affinity ${s.affinityTimeoutSeconds}s)` : s.type;
    if (s.backends.length === 0) {
      rows.push([String(s.id), fe, type, s.service, '(none: connections refused)']);
      continue;
    }
    s.backends.forEach((b, i) => {
      const be = `${i + 1} => ${hostPort(b.address, b.port)}/${s.protocol} (${b.state})`;
      rows.push(i === 0 ? [String(s.id), fe, type, s.service, be] : ['', '', '', '', be]);
    });
  }
  return table(['ID', 'Frontend', 'Service Type', 'Service', 'Backend'], rows);
}
