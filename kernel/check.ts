// The kernel gate: does a kernel meet kinglet's minimum, 4.9.17, by its
// effective upstream version? Pure: the caller supplies the strings (from the
// running host via kernel/host.ts, or from flags) and the os-release.
import semver from 'semver';
import { distroFromOsRelease, distroFamily, type Distro, type OsRelease } from './os-release.ts';
import { kernelRemedy, type Remedy } from './remedy.ts';
import {
  effectiveKernel,
  KernelVersionError,
  type EffectiveKernel,
  type EffectiveSource,
  type KernelVendor,
  type VersionInput,
} from './version.ts';

export type { Distro, Remedy, EffectiveKernel };

/** The oldest kernel the kinglet datapath runs on. */
export const MINIMUM_KERNEL = '4.9.17';

export interface KernelCheckInput extends VersionInput {
  /** The distribution; when absent it is inferred from the kernel strings. */
  osRelease?: OsRelease;
  /** Defaults to MINIMUM_KERNEL. */
  minimum?: string;
}

export interface KernelCheck {
  release: string;
  version?: string;
  versionSignature?: string;
  /** Effective upstream version: x.y.z, or x.y.z-rc.N for a release candidate. */
  effective: string;
  minimum: string;
  ok: boolean;
  /** One sentence: the verdict and how the effective version was read. */
  reason: string;
  /** Present when not ok. */
  remedy?: Remedy;
  distro: Distro;
  source: EffectiveSource;
  vendor?: KernelVendor;
  /** A vendor kernel that carries backports under an unchanged upstream base. */
  backports: boolean;
  /** False when effective is only a lower bound (Debian/Ubuntu release without uname -v). */
  patchLevelKnown: boolean;
}

const VENDOR_LABEL: Record<KernelVendor, string> = {
  redhat: 'Red Hat',
  'oracle-uek': 'Oracle UEK',
  elrepo: 'ELRepo',
  fedora: 'Fedora',
  amazon: 'Amazon Linux',
  debian: 'Debian',
  ubuntu: 'Ubuntu',
  raspberrypi: 'Raspberry Pi',
  alpine: 'Alpine',
  suse: 'SUSE',
  arch: 'Arch Linux',
  proxmox: 'Proxmox',
  wsl2: 'WSL 2',
  wsl1: 'WSL 1',
};

function distroId(kernel: EffectiveKernel): { id: string; idLike: string[]; versionId?: string } | undefined {
  const withVersion = (id: string, idLike: string[], v: string | number | undefined) =>
    v === undefined ? { id, idLike } : { id, idLike, versionId: String(v) };
  switch (kernel.vendor) {
    case 'redhat':
    case 'elrepo':
      return withVersion('rhel', [], kernel.el);
    case 'oracle-uek':
      return withVersion('ol', [], kernel.el);
    case 'amazon':
      return withVersion('amzn', [], kernel.amzn);
    case 'fedora':
      return { id: 'fedora', idLike: [] };
    case 'debian':
    case 'proxmox':
      return { id: 'debian', idLike: [] };
    case 'ubuntu':
      return { id: 'ubuntu', idLike: ['debian'] };
    case 'raspberrypi':
      return { id: 'raspbian', idLike: ['debian'] };
    case 'alpine':
      return { id: 'alpine', idLike: [] };
    case 'suse':
      return { id: 'opensuse', idLike: ['suse'] };
    case 'arch':
      return { id: 'arch', idLike: [] };
    default:
      return undefined;
  }
}

/**
 * The distribution as far as the kernel strings tell (".el7" -> EL7,
 * ".amzn2" -> Amazon Linux 2, "Debian" in uname -v -> Debian...), for when no
 * os-release is at hand. `id` is the family's reference distribution.
 */
export function distroFromKernel(kernel: EffectiveKernel): Distro {
  const d = distroId(kernel);
  if (!d) return { id: 'unknown', idLike: [], family: 'unknown', source: 'none' };
  const out: Distro = { id: d.id, idLike: d.idLike, family: distroFamily(d.id, d.idLike, d.versionId), source: 'kernel' };
  if (d.versionId !== undefined) out.versionId = d.versionId;
  return out;
}

function clauses(k: EffectiveKernel): string[] {
  const out: string[] = [];
  const label = k.vendor ? VENDOR_LABEL[k.vendor] : 'vendor';
  if (k.vendor === 'wsl1') out.push('WSL 1 has no Linux kernel (it translates system calls), so no eBPF');
  if (!k.patchLevelKnown) {
    const flag =
      k.vendor === 'ubuntu' ? '--version-signature "$(cat /proc/version_signature)"' : '--version "$(uname -v)"';
    out.push(
      `the ${label} release string hides the upstream patch level, so ${k.effective} is only a lower bound: pass ${flag}`,
    );
  } else if (k.backports && k.source === 'release') {
    const el = k.el === undefined ? '' : ` EL${k.el}`;
    out.push(`a ${label}${el} vendor kernel with backports, counted as its upstream base ${k.base}`);
  }
  if (k.rc !== undefined) {
    const release = k.effective.replace(/-.*$/, '');
    out.push(`a release candidate, which sorts below ${release}`);
  }
  out.push(...k.notes);
  return out;
}

/** effective >= minimum, by semver (a release candidate sorts below its release). */
export function meetsMinimum(effective: string, minimum: string = MINIMUM_KERNEL): boolean {
  return semver.gte(effective, minimum);
}

/**
 * Decide whether a kernel meets the minimum. Throws KernelVersionError when
 * the strings are not kernel versions.
 */
export function checkKernel(input: KernelCheckInput): KernelCheck {
  const minimum = input.minimum ?? MINIMUM_KERNEL;
  if (semver.valid(minimum) !== minimum) throw new KernelVersionError(`"${minimum}" is not an x.y.z minimum`, minimum);
  const kernel = effectiveKernel(input);
  let distro = input.osRelease ? distroFromOsRelease(input.osRelease) : distroFromKernel(kernel);
  if (distro.family === 'unknown' && input.osRelease) {
    // An os-release that names no family we know: the kernel may still say.
    const fromKernel = distroFromKernel(kernel);
    if (fromKernel.family !== 'unknown') distro = { ...distro, family: fromKernel.family };
  }
  const ok = meetsMinimum(kernel.effective, minimum);
  let detail = '';
  if (kernel.source === 'debian-uname-v') detail = ", upstream patch level from Debian's uname -v";
  if (kernel.source === 'ubuntu-version-signature') detail = ', upstream patch level from /proc/version_signature';
  const head = `kernel ${kernel.effective} (release ${kernel.release}${detail}) ${ok ? 'meets' : 'is below'} the minimum ${minimum}`;
  const reason = [head, ...clauses(kernel)].join('; ');

  // Built in this order so that --json reads top-down.
  return {
    release: kernel.release,
    ...(kernel.version !== undefined ? { version: kernel.version } : {}),
    ...(kernel.versionSignature !== undefined ? { versionSignature: kernel.versionSignature } : {}),
    effective: kernel.effective,
    minimum,
    ok,
    reason,
    ...(ok ? {} : { remedy: kernelRemedy(distro, kernel, minimum) }),
    distro,
    source: kernel.source,
    ...(kernel.vendor !== undefined ? { vendor: kernel.vendor } : {}),
    backports: kernel.backports,
    patchLevelKnown: kernel.patchLevelKnown,
  };
}
