// The running host's kernel strings and distribution: a thin adapter over
// /proc and /etc. Everything it reads is handed to the pure code in
// version.ts, os-release.ts and check.ts.
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { OsReleaseError, osReleaseFromName, parseDistroFile, type OsRelease } from './os-release.ts';
import { parseProcVersion, type VersionInput } from './version.ts';

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** `uname -r`, `uname -v` and, on Ubuntu, /proc/version_signature. */
export async function readHostKernel(): Promise<VersionInput> {
  const release = (await readText('/proc/sys/kernel/osrelease'))?.trim() || os.release();
  let version = (await readText('/proc/sys/kernel/version'))?.trim();
  if (!version) {
    const line = await readText('/proc/version');
    version = (line && parseProcVersion(line)?.version) || os.version() || undefined;
  }
  const out: VersionInput = { release };
  if (version) out.version = version;
  const signature = (await readText('/proc/version_signature'))?.trim();
  if (signature) out.versionSignature = signature;
  return out;
}

/** Read and parse an os-release (or redhat-release) file. Throws OsReleaseError. */
export async function readOsReleaseFile(path: string): Promise<OsRelease> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as { code?: string }).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : String((e as Error).message);
    throw new OsReleaseError(`cannot read ${path}: ${why}`, { cause: e });
  }
  return parseDistroFile(text, path);
}

/** Files that name the distribution, in the order os-release(5) and EL6 want. */
export const HOST_DISTRO_FILES = ['/etc/os-release', '/usr/lib/os-release', '/etc/redhat-release', '/etc/centos-release'];

/**
 * The running host's distribution: os-release, else redhat-release (EL6),
 * else systeminformation's osInfo(). Undefined when nothing tells.
 */
export async function readHostOsRelease(): Promise<OsRelease | undefined> {
  for (const path of HOST_DISTRO_FILES) {
    const text = await readText(path);
    if (text === undefined) continue;
    try {
      return parseDistroFile(text, path);
    } catch {
      continue;
    }
  }
  try {
    const si = await import('systeminformation');
    const info = await si.osInfo();
    if (info.distro && info.distro !== 'unknown') return osReleaseFromName(info.distro, info.release || undefined);
  } catch {
    // No further source: the check infers the distribution from the kernel.
  }
  return undefined;
}
