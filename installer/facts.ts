// Host facts: everything a planner may know about the machine. Gathered by
// installer/gather.ts on a real host, or read from a JSON file (`--facts`)
// for plan-only runs and tests. Planners never look anywhere else.
import { checkKernel, MINIMUM_KERNEL, type KernelCheck } from '../kernel/check.ts';
import { parseOsRelease, type OsRelease } from '../kernel/os-release.ts';
import { KernelVersionError } from '../kernel/version.ts';

export type InitSystem = 'systemd' | 'openrc' | 'unknown';

export interface MountFact {
  source: string;
  target: string;
  fstype: string;
}

export interface HostFacts {
  hostname: string;
  os: {
    /** /etc/os-release ID (centos, rocky, rhel, ubuntu, debian, alpine, ...). */
    id: string;
    idLike: string[];
    /** VERSION_ID ("7", "8.9", "9.3", "22.04", "12", "3.20.0"). */
    versionId: string;
    prettyName: string;
  };
  /** uname -m */
  arch: string;
  kernel: {
    /** uname -r */
    release: string;
    /** uname -v (Debian's carries the upstream patch level). */
    version?: string;
    /** /proc/version_signature (Ubuntu). */
    versionSignature?: string;
  };
  memoryMiB: number;
  cpus: number;
  init: InitSystem;
  /** systemd's version number, 0 when not systemd. */
  systemdVersion: number;
  firmware: 'bios' | 'uefi';
  /** Directory name under /boot/efi/EFI holding grub.cfg (centos, rocky, redhat, almalinux). */
  efiVendor?: string;
  /** glibc version ("2.17"), absent on musl. */
  glibc?: string;
  /** Commands found by `command -v` among the ones the installer cares about. */
  commands: string[];
  /** /proc/self/mounts */
  mounts: MountFact[];
  /** /etc/fstab entries (source, target, fstype). */
  fstab: MountFact[];
  /** systemd unit files present in /etc/systemd/system (names only). */
  unitFiles: string[];
  /** TCP ports something listens on (of the ones k3s needs). */
  portsInUse: number[];
  k3s: {
    installed: boolean;
    active: boolean;
    /** Content of k3s's generated containerd config, when it exists. */
    containerdConfig?: string;
  };
  /** CNI config files already present (full paths), kinglet's own excluded. */
  cniConfigs: string[];
  /** Whether the cgroup v2 hierarchy is available to mount (filesystems lists cgroup2). */
  cgroup2Supported: boolean;
  /** OpenRC's sysfs service mounts /sys/fs/bpf at boot (newer OpenRC releases do). */
  openrcMountsBpffs?: boolean;
  /** Enabled cgroup controllers (/proc/cgroups, cgroup.controllers); absent when unknown. */
  cgroupControllers?: string[];
}

export const KERNEL_MINIMUM = MINIMUM_KERNEL;

export interface KernelVerdict {
  ok: boolean;
  release: string;
  minimum: string;
  /** kernel/check.ts's one-sentence verdict (or why the strings could not be read). */
  reason: string;
  /** The full check; absent when the kernel strings are not kernel versions. */
  check?: KernelCheck;
}

/** The facts' distribution as os-release, parsed by the same code `kinglet kernel check --os-release` uses. */
export function osReleaseOf(f: HostFacts): OsRelease {
  const q = (v: string): string => JSON.stringify(v);
  const lines = [`ID=${q(f.os.id)}`, `ID_LIKE=${q(f.os.idLike.join(' '))}`, `VERSION_ID=${q(f.os.versionId)}`, `PRETTY_NAME=${q(f.os.prettyName)}`];
  return parseOsRelease(lines.join('\n') + '\n');
}

/**
 * The minimum-version decision: kernel/check.ts's checkKernel on the facts'
 * kernel strings and os-release, so the installer and `kinglet kernel check`
 * cannot disagree. Strings that are not kernel versions are not ok.
 */
export function kernelVerdict(f: HostFacts): KernelVerdict {
  const k = f.kernel;
  try {
    const check = checkKernel({
      release: k.release,
      ...(k.version ? { version: k.version } : {}),
      ...(k.versionSignature ? { versionSignature: k.versionSignature } : {}),
      osRelease: osReleaseOf(f),
    });
    return { ok: check.ok, release: check.release, minimum: check.minimum, reason: check.reason, check };
  } catch (e) {
    if (!(e instanceof KernelVersionError)) throw e;
    return { ok: false, release: k.release, minimum: MINIMUM_KERNEL, reason: `cannot read kernel "${k.release}": ${e.message}` };
  }
}

export function has(f: HostFacts, cmd: string): boolean {
  return f.commands.includes(cmd);
}

/** Enterprise Linux major release (7, 8, 9) or undefined for other families. */
export function elMajor(f: HostFacts): number | undefined {
  const ids = [f.os.id, ...f.os.idLike];
  if (!ids.some((i) => ['rhel', 'centos', 'fedora', 'rocky', 'almalinux', 'ol'].includes(i))) return undefined;
  if (f.os.id === 'fedora') return undefined;
  const major = Number.parseInt(f.os.versionId.split('.')[0] ?? '', 10);
  return [7, 8, 9].includes(major) ? major : undefined;
}

export function isMountedAs(f: HostFacts, target: string): MountFact | undefined {
  // The last mount on a target is the visible one.
  return f.mounts.filter((m) => m.target === target).at(-1);
}

export function parseFacts(text: string, from: string): HostFacts {
  const v = JSON.parse(text) as Partial<HostFacts>;
  for (const key of ['hostname', 'os', 'arch', 'kernel', 'init', 'commands', 'mounts'] as const) {
    if (v[key] === undefined) throw new Error(`${from}: facts lack "${key}"`);
  }
  return {
    memoryMiB: 0, cpus: 0, systemdVersion: 0, firmware: 'bios', fstab: [], unitFiles: [],
    portsInUse: [], k3s: { installed: false, active: false }, cniConfigs: [], cgroup2Supported: true,
    ...v,
  } as HostFacts;
}
