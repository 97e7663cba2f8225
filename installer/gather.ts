// The thin adapter that reads host facts from the running machine:
// systeminformation, /etc/os-release, /proc, `command -v`. Everything else
// in the installer works from the HostFacts it returns, so this is the only
// part that needs a real host to test.
import { execFile } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import os from 'node:os';
import { promisify } from 'node:util';
import si from 'systeminformation';
import { readHostKernel, readHostOsRelease } from '../kernel/host.ts';
import { parseCniDirs } from './containerd.ts';
import type { HostFacts, InitSystem, MountFact } from './facts.ts';
import { K3S_CONTAINERD_CONFIG } from './render.ts';

const run = promisify(execFile);

/** Commands the planners ask about. */
export const WANTED_COMMANDS = [
  'curl', 'wget', 'tar', 'ip', 'mount', 'grubby', 'grub2-mkconfig', 'rpm', 'yum', 'dnf', 'apt-get', 'apk',
  'systemctl', 'rc-service', 'k3s', 'sha256sum',
];

async function text(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

export function parseMounts(t: string): MountFact[] {
  return t.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')).flatMap((l) => {
    const [source, target, fstype] = l.split(/\s+/);
    return source && target && fstype ? [{ source, target: target.replace(/\\040/g, ' '), fstype }] : [];
  });
}

async function commandsFound(): Promise<string[]> {
  const found: string[] = [];
  for (const c of WANTED_COMMANDS) {
    try {
      await run('sh', ['-c', 'command -v "$1"', 'sh', c]);
      found.push(c);
    } catch { /* absent */ }
  }
  return found;
}

async function initSystem(): Promise<{ init: InitSystem; systemdVersion: number }> {
  const comm = (await text('/proc/1/comm'))?.trim();
  const booted = await readdir('/run/systemd/system').then(() => true, () => false);
  if (comm === 'systemd' || booted) {
    try {
      const { stdout } = await run('systemctl', ['--version']);
      return { init: 'systemd', systemdVersion: Number(/systemd (\d+)/.exec(stdout)?.[1] ?? 0) };
    } catch {
      return { init: 'systemd', systemdVersion: 0 };
    }
  }
  try {
    await readdir('/run/openrc');
    return { init: 'openrc', systemdVersion: 0 };
  } catch { /* not OpenRC */ }
  return { init: 'unknown', systemdVersion: 0 };
}

function listeningPorts(tcp: string, ports: number[]): number[] {
  const out = new Set<number>();
  for (const line of tcp.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[3] !== '0A') continue; // LISTEN
    const port = Number.parseInt(f[1]?.split(':')[1] ?? '', 16);
    if (ports.includes(port)) out.add(port);
  }
  return [...out];
}

/** Enabled controllers: /proc/cgroups rows with enabled=1 (v1 and hybrid), and the v2 root's cgroup.controllers. */
export function parseCgroupControllers(procCgroups: string, v2Controllers: string): string[] {
  const out = new Set<string>();
  for (const line of procCgroups.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[0] && !f[0].startsWith('#') && f[3] === '1') out.add(f[0]);
  }
  for (const c of v2Controllers.trim().split(/\s+/)) if (c) out.add(c);
  return [...out].sort();
}

export async function gatherFacts(): Promise<HostFacts> {
  const [osInfo, mem, cpu, osRel, kern, cmds, initInfo] = await Promise.all([
    si.osInfo(), si.mem(), si.cpu(), readHostOsRelease(), readHostKernel(), commandsFound(), initSystem(),
  ]);
  const mounts = parseMounts((await text('/proc/self/mounts')) ?? '');
  const fstab = parseMounts((await text('/etc/fstab')) ?? '');
  let unitFiles: string[] = [];
  try { unitFiles = await readdir('/etc/systemd/system'); } catch { /* none */ }
  const tcp = ((await text('/proc/net/tcp')) ?? '') + ((await text('/proc/net/tcp6')) ?? '');
  const containerdConfig = await text(K3S_CONTAINERD_CONFIG);
  const cniConfigs: string[] = [];
  for (const dir of new Set(['/etc/cni/net.d', parseCniDirs(containerdConfig).confDir])) {
    try {
      for (const f of await readdir(dir)) if (/\.(conf|conflist|json)$/.test(f) && !f.includes('kinglet')) cniConfigs.push(`${dir}/${f}`);
    } catch { /* absent */ }
  }
  let efiVendor: string | undefined;
  try {
    efiVendor = (await readdir('/boot/efi/EFI')).find((d) => !['BOOT', 'Boot', 'boot'].includes(d));
  } catch { /* BIOS */ }
  let glibc: string | undefined;
  try {
    const { stdout } = await run('getconf', ['GNU_LIBC_VERSION']);
    glibc = stdout.trim().split(' ')[1];
  } catch { /* musl */ }
  const k3sActive = initInfo.init === 'systemd'
    ? await run('systemctl', ['is-active', '--quiet', 'k3s']).then(() => true, () => run('systemctl', ['is-active', '--quiet', 'k3s-agent']).then(() => true, () => false))
    : false;
  const facts: HostFacts = {
    hostname: os.hostname(),
    os: {
      id: osRel?.id ?? osInfo.distro.toLowerCase(),
      idLike: osRel?.idLike ?? [],
      versionId: osRel?.versionId ?? osInfo.release,
      prettyName: osRel?.prettyName ?? `${osInfo.distro} ${osInfo.release}`,
    },
    arch: os.machine(),
    kernel: { ...kern },
    memoryMiB: Math.round(mem.total / 1048576),
    cpus: cpu.cores,
    init: initInfo.init,
    systemdVersion: initInfo.systemdVersion,
    firmware: osInfo.uefi ? 'uefi' : 'bios',
    commands: cmds,
    mounts,
    fstab,
    unitFiles,
    portsInUse: listeningPorts(tcp, [6443, 10250]),
    k3s: { installed: cmds.includes('k3s'), active: k3sActive, ...(containerdConfig ? { containerdConfig } : {}) },
    cniConfigs,
    cgroup2Supported: ((await text('/proc/filesystems')) ?? '').includes('cgroup2'),
  };
  const procCgroups = await text('/proc/cgroups');
  const v2 = await text('/sys/fs/cgroup/cgroup.controllers');
  if (procCgroups !== undefined || v2 !== undefined) facts.cgroupControllers = parseCgroupControllers(procCgroups ?? '', v2 ?? '');
  if (initInfo.init === 'openrc') facts.openrcMountsBpffs = /\/sys\/fs\/bpf/.test((await text('/etc/init.d/sysfs')) ?? '');
  if (efiVendor) facts.efiVendor = efiVendor;
  if (glibc) facts.glibc = glibc;
  return facts;
}
