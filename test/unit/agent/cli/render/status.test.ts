import t from 'tap';
import { renderStatus } from '../../../../../agent/cli/render/status.ts';
import type { AgentStatus } from '../../../../../agent/api/types.ts';

const base = (): AgentStatus => ({
  healthy: true,
  problems: [],
  version: '0.1.0',
  node: { name: 'node-a' },
  startedAt: '2026-11-23T12:00:00.000Z',
  uptimeSeconds: 60,
  source: { kind: 'kube', endpoint: 'https://127.0.0.1:6444', endpointReason: 'k3s kubeconfig: straight to the apiserver', version: 'v1.31.2+k3s1', synced: true, lastSync: '2026-11-23T12:00:50.000Z', malformed: 0 },
  capabilities: ['clusterip', 'pod-network'],
  kubeProxyReplacement: { mode: 'Partial', features: [{ name: 'ClusterIP', enabled: true, detail: 'socket LB' }, { name: 'NodePort', enabled: false, detail: 'not yet' }] },
  datapath: {
    bpfRoot: '/sys/fs/bpf/kinglet',
    cgroup: '/sys/fs/cgroup',
    object: 'sock_lb.bpf.o',
    programs: [{ name: 'kl_sock4_connect', attach: 'cgroup_inet4_connect', progId: 12, linkId: 3 }],
    maps: [{ name: 'kl_lb4_svc_v1', entries: 2621, max: 262144 }],
  },
  services: { frontends: 10, backends: 30, lastApply: { at: '2026-11-23T12:00:59.000Z', added: 3, updated: 1, deleted: 0, durationMs: 0.8 } },
  controllers: [{ name: 'lb-services', runs: 4, failures: 0, lastRun: '2026-11-23T12:00:59.000Z' }],
  ipam: { podCIDRs: ['10.42.0.0/24'] },
});

const now = new Date('2026-11-23T12:01:00.000Z');

t.test('a healthy agent, like cilium status', async (t) => {
  const out = renderStatus(base(), now);
  t.match(out, /^Agent:\s+OK\s+kinglet 0\.1\.0 on node node-a/m);
  t.match(out, /^Kubernetes:\s+OK\s+https:\/\/127\.0\.0\.1:6444 \[v1\.31\.2\+k3s1\], last sync 10s ago$/m);
  t.match(out, /\(k3s kubeconfig: straight to the apiserver\)/);
  t.match(out, /^Capabilities:\s+clusterip, pod-network$/m);
  t.match(out, /^KubeProxyReplacement:\s+Partial\s+\[ClusterIP\]$/m, 'only enabled features in the summary');
  t.match(out, /- NodePort: no \(not yet\)/);
  t.match(out, /kl_lb4_svc_v1\s+2621\/262144 \(1\.00%\)/, 'map fill level');
  t.match(out, /^Services:\s+10 frontends, 30 backends, last change 1s ago \(\+3 ~1 -0 in 0\.8 ms\)$/m);
  t.notMatch(out, /drift check/, 'no line before the first check');
  t.match(out, /^Controllers:\s+1\/1 healthy$/m);
  t.match(out, /^IPAM:\s+10\.42\.0\.0\/24$/m);
});

t.test('problems and errors are shown', async (t) => {
  const st = base();
  st.healthy = false;
  st.problems = ['source kube has not completed its first full list'];
  st.source.synced = false;
  st.source.lastError = 'connect ECONNREFUSED 127.0.0.1:6444';
  st.source.malformed = 2;
  st.controllers[0]!.lastError = 'map full';
  delete st.ipam;
  const out = renderStatus(st, now);
  t.match(out, /^Agent:\s+Not OK/m);
  t.match(out, /! source kube has not completed its first full list/);
  t.match(out, /^Kubernetes:\s+Not OK/m);
  t.match(out, /last error: connect ECONNREFUSED/);
  t.match(out, /2 malformed object\(s\) skipped/);
  t.match(out, /^Controllers:\s+0\/1 healthy$/m);
  t.match(out, /error: map full/);
  t.match(out, /^IPAM:\s+no pod range yet/m);
});

t.test('the last drift check under Services', async (t) => {
  const st = base();
  st.services.lastResync = { at: '2026-11-23T12:00:30.000Z', mode: 'drift', added: 0, updated: 0, deleted: 0, scanned: 503216, durationMs: 241.8 };
  t.match(renderStatus(st, now), /^Services:.*\n\s+last drift check 30s ago: no drift, 503216 entries compared in 241\.8 ms$/m);
  st.services.lastResync = { ...st.services.lastResync, added: 1, updated: 2, deleted: 3 };
  t.match(renderStatus(st, now), /last drift check 30s ago: drift repaired \(\+1 ~2 -3\)/);
  st.services.lastResync = { ...st.services.lastResync, mode: 'full', added: 0, updated: 0, deleted: 0, scanned: 0 };
  t.match(renderStatus(st, now), /last drift check 30s ago: maps re-read after a failed write/);
});
