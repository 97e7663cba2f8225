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

type Check = (v: unknown) => boolean;
const isStr: Check = (v) => typeof v === 'string';
const isNum: Check = (v) => typeof v === 'number' && Number.isFinite(v);
const isBool: Check = (v) => typeof v === 'boolean';
const listOf = (c: Check): Check => (v) => Array.isArray(v) && v.every(c);
const oneOf = (...xs: string[]): Check => (v) => typeof v === 'string' && xs.includes(v);
const isMount: Check = (v) => typeof v === 'object' && v !== null && ['source', 'target', 'fstype'].every((k) => isStr((v as Record<string, unknown>)[k]));

/** What each field of a facts file must be, by path; `?` marks the optional ones. */
const FACT_SHAPES: [string, Check, string][] = [
  ['hostname', isStr, 'a string'],
  ['os.id', isStr, 'a string (os-release ID)'],
  ['os.idLike?', listOf(isStr), 'a list of strings'],
  ['os.versionId?', isStr, 'a string (os-release VERSION_ID)'],
  ['os.prettyName?', isStr, 'a string'],
  ['arch', isStr, 'a string (uname -m)'],
  ['kernel.release', isStr, 'a string (uname -r)'],
  ['kernel.version?', isStr, 'a string (uname -v)'],
  ['kernel.versionSignature?', isStr, 'a string'],
  ['memoryMiB?', isNum, 'a number'],
  ['cpus?', isNum, 'a number'],
  ['init', oneOf('systemd', 'openrc', 'unknown'), '"systemd", "openrc" or "unknown"'],
  ['systemdVersion?', isNum, 'a number'],
  ['firmware?', oneOf('bios', 'uefi'), '"bios" or "uefi"'],
  ['efiVendor?', isStr, 'a string'],
  ['glibc?', isStr, 'a string'],
  ['commands', listOf(isStr), 'a list of command names'],
  ['mounts', listOf(isMount), 'a list of {source, target, fstype}'],
  ['fstab?', listOf(isMount), 'a list of {source, target, fstype}'],
  ['unitFiles?', listOf(isStr), 'a list of strings'],
  ['portsInUse?', listOf(isNum), 'a list of port numbers'],
  ['k3s.installed?', isBool, 'true or false'],
  ['k3s.active?', isBool, 'true or false'],
  ['k3s.containerdConfig?', isStr, 'a string'],
  ['cniConfigs?', listOf(isStr), 'a list of paths'],
  ['cgroup2Supported?', isBool, 'true or false'],
  ['cgroupControllers?', listOf(isStr), 'a list of controller names'],
  ['openrcMountsBpffs?', isBool, 'true or false'],
];

/** Read a facts file (`--facts`), checking every field it has; what it lacks and may lack gets the defaults. */
export function parseFacts(text: string, from: string): HostFacts {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`${from}: not JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${from}: facts must be a JSON object`);
  const raw = v as Record<string, unknown>;
  for (const [spec, check, what] of FACT_SHAPES) {
    const optional = spec.endsWith('?');
    const path = spec.replace(/\?$/, '');
    let cur: unknown = raw;
    for (const key of path.split('.')) cur = typeof cur === 'object' && cur !== null ? (cur as Record<string, unknown>)[key] : undefined;
    if (cur === undefined) {
      if (!optional) throw new Error(`${from}: facts lack "${path}" (${what})`);
      continue;
    }
    if (!check(cur)) throw new Error(`${from}: "${path}" must be ${what}, not ${JSON.stringify(cur)}`);
  }
  const os = raw['os'] as Partial<HostFacts['os']> & { id: string };
  const k3s = (raw['k3s'] ?? {}) as Partial<HostFacts['k3s']>;
  return {
    memoryMiB: 0, cpus: 0, systemdVersion: 0, firmware: 'bios', fstab: [], unitFiles: [],
    portsInUse: [], cniConfigs: [], cgroup2Supported: true,
    ...(raw as Partial<HostFacts>),
    os: { idLike: [], versionId: '', ...os, prettyName: os.prettyName ?? `${os.id} ${os.versionId ?? ''}`.trim() },
    k3s: { installed: false, active: false, ...k3s },
  } as HostFacts;
}
