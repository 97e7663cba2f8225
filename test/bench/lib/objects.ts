// The benchmarks' cluster: N ClusterIP services (10.96.0.1 up), each with one
// EndpointSlice of M ready endpoints (10.64.0.1 up, distinct for every
// service), shaped like what the API server lists.
import type { KubeObject } from '../../../agent/source/types.ts';

const ipv4 = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
const CLUSTER_IP_BASE = (10 << 24) | (96 << 16); // 10.96.0.0
const POD_IP_BASE = (10 << 24) | (64 << 16); // 10.64.0.0: distinct endpoints for every service

export function benchObjects(services: number, endpoints: number): { services: KubeObject[]; endpointSlices: KubeObject[] } {
  const svcs: KubeObject[] = [];
  const slices: KubeObject[] = [];
  for (let i = 0; i < services; i++) {
    const name = `svc-${i}`;
    const ip = ipv4(CLUSTER_IP_BASE + 1 + i);
    svcs.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: 'bench', uid: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, resourceVersion: String(1000 + i) },
      spec: { type: 'ClusterIP', clusterIP: ip, clusterIPs: [ip], ipFamilies: ['IPv4'], ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }], sessionAffinity: 'None' },
    });
    slices.push({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${name}-x7k2p`, namespace: 'bench', labels: { 'kubernetes.io/service-name': name }, resourceVersion: String(50000 + i) },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
      endpoints: Array.from({ length: endpoints }, (_, j) => ({
        addresses: [ipv4(POD_IP_BASE + i * endpoints + j + 1)],
        conditions: { ready: true, serving: true, terminating: false },
        nodeName: `node-${j % 3}`,
      })),
    });
  }
  return { services: svcs, endpointSlices: slices };
}
