import t from 'tap';
import { renderServices } from '../../../../../agent/cli/render/services.ts';
import type { ServiceEntry } from '../../../../../agent/api/types.ts';

const svc = (over: Partial<ServiceEntry>): ServiceEntry => ({
  id: 1,
  service: 'default/echo-a',
  portName: 'http',
  type: 'ClusterIP',
  address: '10.43.0.10',
  port: 80,
  protocol: 'TCP',
  affinityTimeoutSeconds: 0,
  backends: [],
  ...over,
});

t.test('one line per backend, frontend shown once, like cilium service list', async (t) => {
  const out = renderServices([
    svc({
      backends: [
        { address: '10.42.0.5', port: 8080, state: 'active' },
        { address: '10.42.1.7', port: 8080, state: 'terminating' },
      ],
    }),
    svc({ id: 2, address: 'fd00:43::a', port: 53, protocol: 'UDP', service: 'kube-system/dns', affinityTimeoutSeconds: 10800, backends: [] }),
  ]);
  const lines = out.trimEnd().split('\n');
  t.match(lines[0], /^ID\s+Frontend\s+Service Type\s+Service\s+Backend$/);
  t.match(lines[1], /^1\s+10\.43\.0\.10:80\/TCP\s+ClusterIP\s+default\/echo-a\s+1 => 10\.42\.0\.5:8080\/TCP \(active\)$/);
  t.match(lines[2], /^\s+2 => 10\.42\.1\.7:8080\/TCP \(terminating\)$/);
  t.match(lines[3], /^2\s+\[fd00:43::a\]:53\/UDP\s+ClusterIP \(affinity 10800s\)\s+kube-system\/dns\s+\(none: connections refused\)$/);
  t.equal(lines.length, 4);
});
