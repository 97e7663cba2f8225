// os-release(5) text -> which distribution, and the family that decides how
// its kernel is upgraded. Pure: no I/O (kernel/host.ts reads the files).
// Also understands /etc/redhat-release ("CentOS release 6.10 (Final)"), since
// EL6 hosts have no /etc/os-release.

/**
 * Families that share a kernel upgrade path. `elN` covers RHEL and its
 * rebuilds (CentOS, Rocky, Alma, Oracle, Scientific...) by major version;
 * `el` is one whose major version is not known.
 */
export type DistroFamily =
  | `el${number}`
  | 'el'
  | 'fedora'
  | 'amzn'
  | 'debian'
  | 'raspbian'
  | 'ubuntu'
  | 'alpine'
  | 'suse'
  | 'arch'
  | 'unknown';

export interface OsRelease {
  /** ID, lower case; "linux" when the file has none (the os-release default). */
  id: string;
  /** ID_LIKE, split on spaces. */
  idLike: string[];
  versionId?: string;
  /** First number of VERSION_ID (7 for "7.9", 2023 for Amazon Linux 2023). */
  majorVersion?: number;
  versionCodename?: string;
  /** UBUNTU_CODENAME, set by Ubuntu derivatives such as Linux Mint. */
  ubuntuCodename?: string;
  name?: string;
  prettyName?: string;
  family: DistroFamily;
  /** Every KEY=value of the file, unquoted. */
  fields: Record<string, string>;
}

/** A distribution file that cannot be used. */
export class OsReleaseError extends Error {
  override name = 'OsReleaseError';
}

const EL_IDS = new Set([
  'rhel',
  'centos',
  'rocky',
  'almalinux',
  'ol',
  'scientific',
  'cloudlinux',
  'virtuozzo',
  'eurolinux',
  'navy',
  'circle',
  'miraclelinux',
]);

function unquote(raw: string): string {
  const v = raw.trim();
  if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) {
    // Shell double quotes: backslash escapes ", \, $ and `.
    return v.slice(1, -1).replace(/\\(["\\$`])/g, '$1');
  }
  if (v.length >= 2 && v.startsWith("'") && v.endsWith("'")) return v.slice(1, -1);
  return v.replace(/\\(.)/g, '$1');
}

/** KEY=value lines of an os-release file; comments and other lines are skipped. */
export function parseOsReleaseFields(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (m) fields[m[1]!] = unquote(m[2]!);
  }
  return fields;
}

function majorOf(versionId: string | undefined): number | undefined {
  const m = versionId === undefined ? null : /^(\d+)/.exec(versionId);
  return m ? Number(m[1]) : undefined;
}

/** The family of a distribution from its ID, ID_LIKE and VERSION_ID. */
export function distroFamily(id: string, idLike: readonly string[], versionId?: string): DistroFamily {
  const like = (x: string) => id === x || idLike.includes(x);
  const major = majorOf(versionId);
  if (id === 'amzn') return 'amzn';
  if (id === 'fedora') return 'fedora';
  if (EL_IDS.has(id) || like('rhel') || like('centos')) return major === undefined ? 'el' : `el${major}`;
  if (like('fedora')) return 'fedora';
  if (like('ubuntu')) return 'ubuntu';
  if (id === 'raspbian') return 'raspbian';
  if (like('debian')) return 'debian';
  if (id === 'alpine') return 'alpine';
  if (id === 'sles' || id.startsWith('opensuse') || like('suse') || like('opensuse')) return 'suse';
  if (like('arch')) return 'arch';
  return 'unknown';
}

function fromFields(fields: Record<string, string>): OsRelease {
  const id = (fields['ID'] || 'linux').toLowerCase();
  const idLike = (fields['ID_LIKE'] ?? '').toLowerCase().split(/\s+/).filter(Boolean);
  const versionId = fields['VERSION_ID'] || undefined;
  const out: OsRelease = { id, idLike, family: distroFamily(id, idLike, versionId), fields };
  if (versionId !== undefined) {
    out.versionId = versionId;
    const major = majorOf(versionId);
    if (major !== undefined) out.majorVersion = major;
  }
  // Debian 8 has no VERSION_CODENAME, only VERSION="8 (jessie)".
  const codename = fields['VERSION_CODENAME'] || /\(([a-z]+)\)/.exec(fields['VERSION'] ?? '')?.[1];
  if (codename) out.versionCodename = codename;
  if (fields['UBUNTU_CODENAME']) out.ubuntuCodename = fields['UBUNTU_CODENAME'];
  if (fields['NAME']) out.name = fields['NAME'];
  if (fields['PRETTY_NAME']) out.prettyName = fields['PRETTY_NAME'];
  return out;
}

/** Parse os-release(5) text. Any text parses; fields absent stay undefined. */
export function parseOsRelease(text: string): OsRelease {
  return fromFields(parseOsReleaseFields(text));
}

/** An os-release ID for a distribution's display name ("CentOS Linux" -> "centos"). */
export function idFromName(name: string): string {
  const n = name.toLowerCase();
  const known: [RegExp, string][] = [
    [/red hat/, 'rhel'],
    [/centos/, 'centos'],
    [/rocky/, 'rocky'],
    [/alma/, 'almalinux'],
    [/oracle/, 'ol'],
    [/scientific/, 'scientific'],
    [/cloudlinux/, 'cloudlinux'],
    [/fedora/, 'fedora'],
    [/amazon/, 'amzn'],
    [/ubuntu/, 'ubuntu'],
    [/raspbian/, 'raspbian'],
    [/debian/, 'debian'],
    [/alpine/, 'alpine'],
    [/suse/, 'opensuse'],
    [/arch/, 'arch'],
  ];
  for (const [re, id] of known) if (re.test(n)) return id;
  return n.replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '') || 'linux';
}

/** An OsRelease from a name and version, for sources other than os-release. */
export function osReleaseFromName(name: string, version?: string): OsRelease {
  const fields: Record<string, string> = { NAME: name, ID: idFromName(name) };
  if (version) fields['VERSION_ID'] = version;
  if (EL_IDS.has(fields['ID']!)) fields['ID_LIKE'] = 'rhel fedora';
  return fromFields(fields);
}

/** /etc/redhat-release: "Red Hat Enterprise Linux Server release 7.9 (Maipo)". */
export function parseRedhatRelease(text: string): OsRelease | undefined {
  const m = /^\s*(.+?)\s+release\s+(\d+(?:\.\d+)*)/i.exec(text);
  if (!m) return undefined;
  const out = osReleaseFromName(m[1]!, m[2]!);
  out.prettyName = text.trim().split(/\r?\n/)[0]!;
  return out;
}

/**
 * A distribution file's contents: os-release(5), or a redhat-release line.
 * Throws OsReleaseError when it is neither.
 */
export function parseDistroFile(text: string, where = 'the file'): OsRelease {
  const fields = parseOsReleaseFields(text);
  if (fields['ID'] !== undefined || fields['NAME'] !== undefined) return fromFields(fields);
  const rh = parseRedhatRelease(text);
  if (rh) return rh;
  throw new OsReleaseError(
    `${where} is not an os-release file (expected KEY=value lines with ID= or NAME=, ` +
      `or a redhat-release line such as "CentOS release 6.10 (Final)")`,
  );
}

/** The distribution as the kernel check reports it. */
export interface Distro {
  id: string;
  idLike: string[];
  versionId?: string;
  versionCodename?: string;
  ubuntuCodename?: string;
  name?: string;
  family: DistroFamily;
  /** Where it came from: an os-release file, the kernel's own strings, or nothing. */
  source: 'os-release' | 'kernel' | 'none';
}

export function distroFromOsRelease(os: OsRelease): Distro {
  const d: Distro = { id: os.id, idLike: [...os.idLike], family: os.family, source: 'os-release' };
  if (os.versionId !== undefined) d.versionId = os.versionId;
  if (os.versionCodename !== undefined) d.versionCodename = os.versionCodename;
  if (os.ubuntuCodename !== undefined) d.ubuntuCodename = os.ubuntuCodename;
  const name = os.prettyName ?? os.name;
  if (name !== undefined) d.name = name;
  return d;
}
