// Kernel version strings -> the effective upstream version, as a semver
// string. Pure: no I/O. The running host is read by kernel/host.ts.
//
// `uname -r` alone is not enough on some distributions:
// - Debian's release (4.9.0-8-amd64) names an ABI, not the upstream patch
//   level; `uname -v` carries it: "#1 SMP Debian 4.9.144-3.1 (2019-02-19)".
// - Ubuntu's release (5.15.0-91-generic) hides it too; /proc/version_signature
//   carries it: "Ubuntu 5.15.0-91.101-generic 5.15.131".
// - Red Hat (3.10.0-1160.el7, 4.18.0-513.el8) ships an upstream base plus years
//   of backports; it counts as that base.
// A release candidate (6.7.0-rc3) sorts below its release (6.7.0).
import semver from 'semver';

/** Input that is not a kernel version string. */
export class KernelVersionError extends Error {
  override name = 'KernelVersionError';
  readonly input: string;
  constructor(message: string, input: string) {
    super(message);
    this.input = input;
  }
}

/** The numeric head of a `uname -r` string and what follows it. */
export interface ReleaseParts {
  major: number;
  minor: number;
  patch: number;
  /** False for a two-component release such as "6.5". */
  patchGiven: boolean;
  /** N of a release candidate (-rcN, .rcN, ~rcN). */
  rc?: number;
  /** Everything after x.y[.z], e.g. "-1160.el7.x86_64". */
  suffix: string;
}

/** Who built the kernel, as far as its strings tell. */
export type KernelVendor =
  | 'redhat'
  | 'oracle-uek'
  | 'elrepo'
  | 'fedora'
  | 'amazon'
  | 'debian'
  | 'ubuntu'
  | 'raspberrypi'
  | 'alpine'
  | 'suse'
  | 'arch'
  | 'proxmox'
  | 'wsl2'
  | 'wsl1';

export interface ReleaseHint {
  vendor?: KernelVendor;
  /** Enterprise Linux major version from ".elN" (redhat, oracle-uek, elrepo). */
  el?: number;
  /** Amazon Linux generation from ".amznN" / ".amzn2023". */
  amzn?: string;
  /** Kernel flavour where it picks a package: amd64, arm64, generic, lts, virt... */
  flavour?: string;
  /** The vendor ships an upstream base plus backports under an unchanged version. */
  backports: boolean;
}

/** Where the effective upstream version came from. */
export type EffectiveSource = 'release' | 'debian-uname-v' | 'ubuntu-version-signature';

export interface EffectiveKernel {
  release: string;
  version?: string;
  versionSignature?: string;
  /** Upstream x.y.z, or x.y.z-rc.N for a release candidate (a semver string). */
  effective: string;
  /** x.y.z read from the release string alone. */
  base: string;
  source: EffectiveSource;
  vendor?: KernelVendor;
  el?: number;
  amzn?: string;
  flavour?: string;
  backports: boolean;
  /**
   * False when the release string is known to hide the upstream patch level
   * (Debian, Ubuntu) and no other input supplied it: effective is then x.y.0,
   * a lower bound.
   */
  patchLevelKnown: boolean;
  rc?: number;
  /** Things worth saying about how effective was derived. */
  notes: string[];
}

const RELEASE_HEAD = /^(\d{1,4})\.(\d{1,4})(?:\.(\d{1,6}))?([\s\S]*)$/;
const SUFFIX_OK = /^(?:[-.+_~][A-Za-z0-9.+_~-]*)?$/;
const RC_IN_SUFFIX = /(?:^|[-.~_])rc(\d{1,4})(?=$|[-.+_~])/i;

const RELEASE_EXAMPLE = 'e.g. 5.15.0-91-generic or 3.10.0-1160.el7.x86_64';

/** Parse a `uname -r` string. Throws KernelVersionError when it is not one. */
export function parseRelease(release: string): ReleaseParts {
  const text = release.trim();
  if (text === '') throw new KernelVersionError(`empty kernel release (${RELEASE_EXAMPLE})`, release);
  if (/\s/.test(text)) {
    throw new KernelVersionError(
      `"${text}" is not a kernel release: uname -r is a single word (${RELEASE_EXAMPLE})`,
      release,
    );
  }
  const m = RELEASE_HEAD.exec(text);
  const suffix = m?.[4] ?? '';
  if (!m || !SUFFIX_OK.test(suffix)) {
    throw new KernelVersionError(
      `"${text}" is not a kernel release: it must start with major.minor[.patch] (${RELEASE_EXAMPLE})`,
      release,
    );
  }
  const rcMatch = RC_IN_SUFFIX.exec(suffix);
  const parts: ReleaseParts = {
    major: Number(m[1]),
    minor: Number(m[2]),
    patch: m[3] === undefined ? 0 : Number(m[3]),
    patchGiven: m[3] !== undefined,
    suffix,
  };
  if (rcMatch) parts.rc = Number(rcMatch[1]);
  return parts;
}

function semverOf(major: number, minor: number, patch: number, rc?: number): string {
  const v = `${major}.${minor}.${patch}${rc === undefined ? '' : `-rc.${rc}`}`;
  // Always valid by construction (numbers without leading zeros); keep the
  // check so a future change cannot hand semver something it misreads.
  if (semver.valid(v) !== v) throw new KernelVersionError(`cannot express ${v} as a version`, v);
  return v;
}

const DEBIAN_FLAVOURS =
  /^-\d+(?:\.(?:deb\d+|bpo)\.\d+)?(?:-(?:rt|cloud))?-(amd64|arm64|i386|686|686-pae|armmp|armmp-lpae|armel|marvell|rpi|powerpc64le|ppc64el|s390x|riscv64|loong64|mips64r2el|mips32r2el|octeon|4kc-malta|5kc-malta|loongson-3)$/;
const UBUNTU_FLAVOURS =
  /^-\d+-(generic|generic-lpae|generic-64k|lowlatency|lowlatency-64k|aws|azure|gcp|gke|gkeop|kvm|oracle|oem|raspi|raspi-nolpae|ibm|nvidia|intel-iotg|realtime|virtual|server)$/;

/** What the release string says about its builder. Pure pattern matching. */
export function releaseHint(release: string): ReleaseHint {
  const parts = parseRelease(release);
  const s = parts.suffix;
  const el = /\.el(\d{1,2})(?:_\d+)*(uek)?(?:\.|$)/.exec(s);
  if (el) {
    const major = Number(el[1]);
    if (/\.elrepo(?:\.|$)/.test(s)) return { vendor: 'elrepo', el: major, backports: false };
    if (el[2]) return { vendor: 'oracle-uek', el: major, backports: true };
    return { vendor: 'redhat', el: major, backports: true };
  }
  const amzn = /\.amzn(\d+)(?:\.|$)/.exec(s);
  if (amzn) return { vendor: 'amazon', amzn: amzn[1]!, backports: false };
  if (/\.fc\d+(?:\.|$)/.test(s)) return { vendor: 'fedora', backports: false };
  if (/-microsoft-standard/i.test(s)) return { vendor: 'wsl2', backports: false };
  if (/-Microsoft$/.test(s)) return { vendor: 'wsl1', backports: false };
  // Raspberry Pi OS: 5.10.103-v7l+, 6.1.21-v8+, 6.6.20+rpt-rpi-v8. A bare
  // "+" is any kernel built from a tree with extra commits: not a hint.
  if (/(?:^|[-+])(?:rpt-)?rpi-v\d|^-v[678][a-z0-9-]*\+$/.test(s)) return { vendor: 'raspberrypi', backports: false };
  const deb = DEBIAN_FLAVOURS.exec(s);
  if (deb && parts.patch === 0) return { vendor: 'debian', flavour: deb[1]!, backports: false };
  const ubu = UBUNTU_FLAVOURS.exec(s);
  if (ubu && parts.patch === 0) return { vendor: 'ubuntu', flavour: ubu[1]!, backports: true };
  const alpine = /^-\d+-(lts|virt|vanilla|hardened|rpi|rpi2|rpi4|edge)$/.exec(s);
  if (alpine && (alpine[1] !== 'lts' || /^-0-lts$/.test(s))) {
    return { vendor: 'alpine', flavour: alpine[1]!, backports: false };
  }
  if (/-arch\d+-\d+$/.test(s)) return { vendor: 'arch', backports: false };
  if (/-pve$/.test(s)) return { vendor: 'proxmox', backports: false };
  if (/-default$/.test(s)) {
    // SUSE Linux Enterprise numbers its kernels after the service pack
    // (5.14.21-150500.55.39-default): an upstream base plus backports.
    return { vendor: 'suse', flavour: 'default', backports: /^-\d{6}\./.test(s) };
  }
  return { backports: false };
}

/** Split a /proc/version line into the release and the `uname -v` part. */
export function parseProcVersion(line: string): { release: string; version?: string } | undefined {
  const m = /^\s*Linux version (\S+)(?:\s+([\s\S]*))?$/.exec(line.trim());
  if (!m) return undefined;
  const rest = m[2] ?? '';
  // The builder and compiler come first, in parentheses that may nest; the
  // `uname -v` part starts at the first "#<build number>".
  const v = /(?:^|\s)(#\d+[\s\S]*)$/.exec(rest);
  const out: { release: string; version?: string } = { release: m[1]! };
  if (v) out.version = v[1]!.trim();
  return out;
}

/** Ubuntu's /proc/version_signature: "Ubuntu 5.15.0-91.101-generic 5.15.131". */
export function parseVersionSignature(line: string): { build: string; upstream: ReleaseParts } | undefined {
  const m = /^\s*Ubuntu\s+(\S+)\s+(\d+\.\d+(?:\.\d+)?)\s*$/.exec(line);
  if (!m) return undefined;
  return { build: m[1]!, upstream: parseRelease(m[2]!) };
}

/** Debian's upstream version in `uname -v`: "... Debian 4.9.144-3.1 (2019-02-19)". */
export function debianUpstreamFromVersion(version: string): ReleaseParts | undefined {
  const m = /\bDebian\s+(?:\d+:)?(\d+)\.(\d+)(?:\.(\d+))?(?:~rc(\d+))?(?=[-+~\s)]|$)/.exec(version);
  if (!m) return undefined;
  const parts: ReleaseParts = {
    major: Number(m[1]),
    minor: Number(m[2]),
    patch: m[3] === undefined ? 0 : Number(m[3]),
    patchGiven: m[3] !== undefined,
    suffix: '',
  };
  if (m[4] !== undefined) parts.rc = Number(m[4]);
  return parts;
}

export interface VersionInput {
  /** `uname -r`. */
  release: string;
  /** `uname -v`, a whole /proc/version line, or a /proc/version_signature line. */
  version?: string;
  /** /proc/version_signature (Ubuntu). */
  versionSignature?: string;
}

/**
 * Check that a `--version` string is one of the accepted shapes, and return
 * its `uname -v` part and any version signature in it.
 */
export function classifyVersion(version: string): { unameV?: string; release?: string; signature?: string } {
  const text = version.trim();
  if (/^Ubuntu\s/.test(text)) {
    if (!parseVersionSignature(text)) {
      throw new KernelVersionError(
        `"${text}" is not a /proc/version_signature line (e.g. Ubuntu 5.15.0-91.101-generic 5.15.131)`,
        version,
      );
    }
    return { signature: text };
  }
  if (/^Linux version\s/.test(text)) {
    const pv = parseProcVersion(text);
    if (!pv) throw new KernelVersionError(`"${text}" is not a /proc/version line`, version);
    parseRelease(pv.release);
    const out: { unameV?: string; release?: string } = { release: pv.release };
    if (pv.version !== undefined) out.unameV = pv.version;
    return out;
  }
  if (/^#\d+/.test(text)) return { unameV: text };
  throw new KernelVersionError(
    `"${text}" is not a kernel version string: expected uname -v (starts with "#<build>"), ` +
      `a /proc/version line (starts with "Linux version") or /proc/version_signature (starts with "Ubuntu")`,
    version,
  );
}

function sameSeries(a: ReleaseParts, b: ReleaseParts): boolean {
  return a.major === b.major && a.minor === b.minor;
}

/**
 * The effective upstream version of a kernel. Throws KernelVersionError for
 * strings that are not kernel versions.
 */
export function effectiveKernel(input: VersionInput): EffectiveKernel {
  const parts = parseRelease(input.release);
  const release = input.release.trim();
  const hint = releaseHint(release);
  const notes: string[] = [];

  let unameV: string | undefined;
  let signature = input.versionSignature?.trim() || undefined;
  if (signature !== undefined && !parseVersionSignature(signature)) {
    throw new KernelVersionError(
      `"${signature}" is not a /proc/version_signature line (e.g. Ubuntu 5.15.0-91.101-generic 5.15.131)`,
      signature,
    );
  }
  if (input.version !== undefined && input.version.trim() !== '') {
    const c = classifyVersion(input.version);
    if (c.release !== undefined && c.release !== release) {
      throw new KernelVersionError(
        `the release in the /proc/version line (${c.release}) differs from the release ${release}`,
        input.version,
      );
    }
    unameV = c.unameV;
    signature ??= c.signature;
  }

  let vendor = hint.vendor;
  if (vendor === undefined && unameV !== undefined) {
    if (/-Ubuntu\b/.test(unameV)) vendor = 'ubuntu';
    else if (/\bDebian\s/.test(unameV)) vendor = 'debian';
  }
  if (vendor === undefined && signature !== undefined) vendor = 'ubuntu';

  const base = semverOf(parts.major, parts.minor, parts.patch, parts.rc);
  let effective = base;
  let source: EffectiveSource = 'release';

  const sig = signature !== undefined ? parseVersionSignature(signature) : undefined;
  const deb = unameV !== undefined ? debianUpstreamFromVersion(unameV) : undefined;
  const upstream: { parts: ReleaseParts; source: EffectiveSource; what: string } | undefined = sig
    ? { parts: sig.upstream, source: 'ubuntu-version-signature', what: '/proc/version_signature' }
    : deb
      ? { parts: deb, source: 'debian-uname-v', what: "Debian's uname -v" }
      : undefined;
  if (upstream) {
    const u = upstream.parts;
    const candidate = semverOf(u.major, u.minor, u.patch, u.rc);
    if (!sameSeries(u, parts)) {
      notes.push(`ignored ${upstream.what} (${candidate}): not the ${parts.major}.${parts.minor} series of the release`);
    } else if (semver.lt(candidate, base)) {
      notes.push(`ignored ${upstream.what} (${candidate}): older than the release itself`);
    } else {
      effective = candidate;
      source = upstream.source;
    }
  }

  const hidesPatch = (vendor === 'debian' || vendor === 'ubuntu') && parts.patch === 0 && parts.rc === undefined;
  const patchLevelKnown = source !== 'release' || !hidesPatch;

  const out: EffectiveKernel = {
    release,
    effective,
    base,
    source,
    backports: hint.backports || vendor === 'ubuntu',
    patchLevelKnown,
    notes,
  };
  if (input.version !== undefined && input.version.trim() !== '') out.version = input.version.trim();
  if (signature !== undefined) out.versionSignature = signature;
  if (vendor !== undefined) out.vendor = vendor;
  if (hint.el !== undefined) out.el = hint.el;
  if (hint.amzn !== undefined) out.amzn = hint.amzn;
  if (hint.flavour !== undefined) out.flavour = hint.flavour;
  const rc = semver.prerelease(effective);
  if (rc) out.rc = Number(rc[1]);
  return out;
}

/** semver comparison of two effective versions (rc below its release). */
export function compareKernel(a: string, b: string): number {
  return semver.compare(a, b);
}
