import t from 'tap';
import { DEFAULT_CNI_DIRS, parseCniDirs } from '../../../installer/containerd.ts';

t.test('config version 3 (k3s >= 1.31)', async (t) => {
  t.same(parseCniDirs(`version = 3\n[plugins.'io.containerd.cri.v1.runtime'.cni]\n  bin_dir = "/var/lib/rancher/k3s/data/cni"\n  conf_dir = "/var/lib/rancher/k3s/agent/etc/cni/net.d"\n`),
    { binDir: '/var/lib/rancher/k3s/data/cni', confDir: '/var/lib/rancher/k3s/agent/etc/cni/net.d', fromConfig: true });
});

t.test('config version 2 with a per-release bin dir', async (t) => {
  t.same(parseCniDirs(`version = 2\n[plugins."io.containerd.grpc.v1.cri".cni]\n  bin_dir = "/var/lib/rancher/k3s/data/abc123/bin" # hash\n  conf_dir = '/etc/cni/net.d'\n[plugins."io.containerd.grpc.v1.cri".containerd]\n  bin_dir = "/nope"\n`),
    { binDir: '/var/lib/rancher/k3s/data/abc123/bin', confDir: '/etc/cni/net.d', fromConfig: true });
});

t.test('missing config or keys: the defaults', async (t) => {
  t.same(parseCniDirs(undefined), DEFAULT_CNI_DIRS);
  t.same(parseCniDirs('[plugins.foo]\nx = 1\n'), DEFAULT_CNI_DIRS);
});
