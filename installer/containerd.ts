// Where k3s's containerd looks for CNI plugins and configs. Read from the
// containerd config k3s generates on start, never assumed, because it moved:
// - k3s keeps its bundled CNI binaries under /var/lib/rancher/k3s/data/<hash>/bin
//   and rewrote bin_dir to the current hash on every upgrade, which broke
//   third-party plugins installed there (k3s-io/k3s#10869); newer releases
//   point bin_dir at the stable /var/lib/rancher/k3s/data/cni
//   (observed in k3d-io/k3d#1572: a k3s 1.31.7 config.toml with that bin_dir).
// - conf_dir is k3s's own /var/lib/rancher/k3s/agent/etc/cni/net.d, also with
//   flannel off (onedr0p/cluster-template#1402: a CNI writing to /etc/cni/net.d
//   and /opt/cni/bin on k3s with flannel disabled was not picked up); very old
//   releases used /etc/cni/net.d and /opt/cni/bin there (k3s-io/k3s#54).
// The config's CRI plugin section is `plugins."io.containerd.grpc.v1.cri".cni`
// in config version 2 and `plugins.'io.containerd.cri.v1.runtime'.cni` in 3.

export interface CniDirs {
  binDir: string;
  confDir: string;
  /** Read from the config (true) or the defaults below (false). */
  fromConfig: boolean;
}

export const DEFAULT_CNI_DIRS: CniDirs = {
  binDir: '/var/lib/rancher/k3s/data/cni',
  confDir: '/var/lib/rancher/k3s/agent/etc/cni/net.d',
  fromConfig: false,
};

function unquote(v: string): string {
  const t = v.trim().replace(/\s+#.*$/, '');
  const m = /^"((?:[^"\\]|\\.)*)"$/.exec(t) ?? /^'([^']*)'$/.exec(t);
  return m ? m[1]!.replace(/\\(["\\])/g, '$1') : t;
}

/** bin_dir and conf_dir of the CRI CNI section; the defaults where a key is absent. */
export function parseCniDirs(toml: string | undefined): CniDirs {
  if (!toml) return { ...DEFAULT_CNI_DIRS };
  let section = '';
  let bin: string | undefined;
  let conf: string | undefined;
  for (const raw of toml.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#') || line === '') continue;
    const head = /^\[([^\]]+)\]$/.exec(line);
    if (head) {
      section = head[1]!.replace(/\s+/g, '');
      continue;
    }
    const inCni = /\.cni$/.test(section) && /cri/.test(section);
    if (!inCni) continue;
    const kv = /^(bin_dir|conf_dir)\s*=\s*(.+)$/.exec(line);
    if (!kv) continue;
    if (kv[1] === 'bin_dir') bin = unquote(kv[2]!);
    else conf = unquote(kv[2]!);
  }
  return {
    binDir: bin ?? DEFAULT_CNI_DIRS.binDir,
    confDir: conf ?? DEFAULT_CNI_DIRS.confDir,
    fromConfig: bin !== undefined || conf !== undefined,
  };
}
