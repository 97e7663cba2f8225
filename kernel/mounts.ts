// Where the filesystems the datapath needs are mounted: bpffs and cgroup v2,
// from /proc/self/mounts. parseMounts is pure; cgroup2Mount reads the host.
import { readFile } from 'node:fs/promises';

export interface Mounts {
  bpffs: string[];
  cgroup2: string[];
}

/** bpffs and cgroup2 mount points in /proc/self/mounts order (octal escapes such as \040 undone). */
export function parseMounts(text: string): Mounts {
  const m: Mounts = { bpffs: [], cgroup2: [] };
  for (const line of text.split('\n')) {
    const [, dir, type] = line.split(' ');
    if (!dir) continue;
    const path = dir.replace(/\\040/g, ' ');
    if (type === 'bpf') m.bpffs.push(path);
    if (type === 'cgroup2') m.cgroup2.push(path);
  }
  return m;
}

/** Where cgroup v2 (the unified hierarchy) is mounted: the first cgroup2 mount, or undefined. */
export async function cgroup2Mount(mounts?: string): Promise<string | undefined> {
  return parseMounts(mounts ?? (await readFile('/proc/self/mounts', 'utf8'))).cgroup2[0];
}
