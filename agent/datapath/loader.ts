// Generic loading of a BPF object with pins: maps under <root>/maps/<name>
// (reused when compatible), cgroup programs attached through bpf_links
// pinned under <root>/links/<program>. A restart adopts the pinned links and
// swaps the program in place (bpf_link_update), so there is never a moment
// without a program attached. Used for the socket-LB object now and the tc
// objects later.
import { existsSync, mkdirSync, readdirSync, renameSync, rmdirSync, statfsSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import {
  AttachType,
  BpfError,
  BpfObject,
  LinkType,
  Link,
  attachTypeName,
  closeCgroup,
  closeFd,
  linkDetach,
  linkInfo,
  linkUpdate,
  mapInfo,
  mapTypeName,
  objGet,
  objPin,
  openCgroup,
  progFdById,
  progInfo,
  tcAttach,
  tcDetach,
  tcHookCreate,
  tcHookDestroy,
  tcQuery,
  type TcDirection,
  type MapInfo,
  type ObjectMap,
  type ObjectProgram,
} from './libbpf.ts';

export { openPinnedMap, BpfMap } from './libbpf.ts';

export const DEFAULT_BPF_ROOT = '/sys/fs/bpf/kinglet';
const BPF_FS_MAGIC = 0xcafe4a11;

export type LoaderErrorCode = 'NOT_BPFFS' | 'INCOMPATIBLE_MAP' | 'BAD_PIN' | 'NO_PROGRAM' | 'NOT_CGROUP_PROGRAM' | 'LOAD' | 'ATTACH';

/** A loading failure with a remedy-level message; the BpfError (if any) is the cause. */
export class LoaderError extends Error {
  override name = 'LoaderError';
  readonly code: LoaderErrorCode;
  constructor(code: LoaderErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export interface LoadOptions {
  /** The .bpf.o file. */
  object: string;
  /** A directory on a bpffs; created when missing. Default /sys/fs/bpf/kinglet. */
  bpfRoot?: string;
  /** cgroup2 directory the cgroup programs attach to. Without it nothing is attached. */
  cgroup?: string;
  /**
   * Programs to attach to the cgroup, by program name. Default: every program
   * whose section is cgroup/..., cgroup_skb/... or sockops. The attach type
   * is the one the section names (cgroup/connect4 -> BPF_CGROUP_INET4_CONNECT).
   */
  attach?: string[];
  /** Programs not to load at all (set_autoload false). */
  skipPrograms?: string[];
  /** max_entries overrides, by map name, applied before the pins are compared. */
  maxEntries?: Record<string, number>;
  /**
   * A pinned map whose type, key/value size, max_entries or flags differ from
   * the object's: by default loading fails (LoaderError INCOMPATIBLE_MAP); with
   * this set, a fresh map replaces the pin (its entries are lost).
   */
  replaceIncompatible?: boolean;
  /**
   * The caller fills the maps before the programs may read them: unless this
   * is a plain restart (every map adopted from its pin, no other layout
   * version pinned, every program's link pinned), nothing is attached and no
   * stale pin removed until Loaded.attach(). On an upgrade the old programs
   * keep running on their old maps meanwhile, so no connection goes untranslated.
   */
  fillFirst?: boolean;
  /**
   * Map names (e.g. kl_lb4_svc_v2) whose other layout versions this load
   * leaves pinned: another loader owns those maps and removes the old pins
   * once it has filled the new ones.
   */
  keepStalePins?: readonly string[];
  /**
   * Maps that hold one state together (e.g. the LB's frontends, slots,
   * backends and rev-NAT entries): when one of them is created or replaced
   * (a new layout), the others are made anew as well instead of adopted, so
   * the programs still attached keep their complete old set while the
   * caller fills the new one (with fillFirst).
   */
  renewTogether?: readonly string[];
}

export type MapAction = 'created' | 'reused' | 'replaced' | 'private';
export type LinkAction = 'attached' | 'adopted' | 'replaced';

export interface MapStatus {
  name: string;
  fd: number;
  id: number;
  type: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  /** Pin path, absent for the object's private maps (.rodata, .bss, ...). */
  pin?: string;
  action: MapAction;
  /** Why a pinned map was replaced. */
  reason?: string;
}

export interface ProgramStatus {
  name: string;
  section: string;
  fd: number;
  id: number;
  attachType?: string;
}

export interface AttachmentStatus {
  program: string;
  section: string;
  attachType: string;
  cgroup: string;
  progId: number;
  linkId: number;
  pin: string;
  action: LinkAction;
}

export interface DatapathDescription {
  object: string;
  bpfRoot: string;
  maps: MapStatus[];
  programs: ProgramStatus[];
  attachments: AttachmentStatus[];
  /** Pins of other layout versions of the object's maps, removed by this load (see stalePins). */
  removedPins: string[];
}

export interface Loaded {
  object: BpfObject;
  bpfRoot: string;
  /** Map name -> fd (owned by the object; valid until close()). */
  maps: Record<string, number>;
  programs: Record<string, ProgramStatus>;
  links: Record<string, Link>;
  /** Loaded with fillFirst and not attached yet: fill the maps, then attach(). */
  readonly attachPending: boolean;
  /** Attach (or adopt) the programs and remove the stale pins, when pending; otherwise nothing. */
  attach(): void;
  describe(): DatapathDescription;
  /** Close the object and the link handles. The kernel state stays, held by the pins. */
  close(): void;
}

export function mapsDir(root: string): string {
  return join(root, 'maps');
}

export function linksDir(root: string): string {
  return join(root, 'links');
}

/** Section prefixes of programs that attach to a cgroup. */
export function isCgroupSection(section: string): boolean {
  return /^(cgroup\/|cgroup_skb\/|sockops$)/.test(section);
}

function ensureBpffsDir(root: string): void {
  mkdirSync(root, { recursive: true, mode: 0o700 });
  let type: number;
  try {
    type = Number(statfsSync(root).type);
  } catch (e) {
    throw new LoaderError('NOT_BPFFS', `cannot statfs ${root}: ${(e as Error).message}`, { cause: e });
  }
  if (type !== BPF_FS_MAGIC) {
    throw new LoaderError(
      'NOT_BPFFS',
      `${root} is not on a bpf filesystem (found fs type 0x${type.toString(16)}); mount one first: mount -t bpf bpf /sys/fs/bpf`,
    );
  }
  mkdirSync(mapsDir(root), { recursive: true, mode: 0o700 });
  mkdirSync(linksDir(root), { recursive: true, mode: 0o700 });
}

/**
 * Pinned map names that are another layout version of one of `ours`: a map
 * name ends in `_v<N>` and a layout change bumps N (bpf/include/kinglet.h), so
 * after an upgrade `kl_x_v1` sits beside the object's `kl_x_v2`, referenced by
 * nothing once the new programs are in place. Names without a version, and
 * bases the object does not have, are never stale.
 */
export function stalePins(pinned: readonly string[], ours: readonly string[]): string[] {
  const versioned = /^(.+)_v\d+$/;
  const bases = new Set<string>();
  for (const n of ours) {
    const m = versioned.exec(n);
    if (m) bases.add(m[1]!);
  }
  return pinned.filter((p) => {
    const m = versioned.exec(p);
    return m !== null && bases.has(m[1]!) && !ours.includes(p);
  });
}

/** A map name without its layout version: kl_lb4_svc_v2 -> kl_lb4_svc. */
function layoutBase(name: string): string {
  return name.replace(/_v\d+$/, '');
}

/** Differences between a pinned map and what the object wants; empty when compatible. */
export function mapDifferences(pinned: MapInfo, want: { type: number; keySize: number; valueSize: number; maxEntries: number; flags: number }): string[] {
  const d: string[] = [];
  if (pinned.type !== want.type) d.push(`type ${mapTypeName(pinned.type)} != ${mapTypeName(want.type)}`);
  if (pinned.keySize !== want.keySize) d.push(`key size ${pinned.keySize} != ${want.keySize}`);
  if (pinned.valueSize !== want.valueSize) d.push(`value size ${pinned.valueSize} != ${want.valueSize}`);
  if (pinned.maxEntries !== want.maxEntries) d.push(`max_entries ${pinned.maxEntries} != ${want.maxEntries}`);
  if (pinned.flags !== want.flags) d.push(`flags 0x${pinned.flags.toString(16)} != 0x${want.flags.toString(16)}`);
  return d;
}

/** Pin fd at path, replacing whatever is pinned there in one step (rename on bpffs). */
function pinReplacing(fd: number, path: string): void {
  if (!existsSync(path)) {
    objPin(fd, path);
    return;
  }
  const tmp = `${path}__new`; // bpffs refuses dots in names
  if (existsSync(tmp)) unlinkSync(tmp);
  objPin(fd, tmp);
  try {
    renameSync(tmp, path);
  } catch {
    unlinkSync(path);
    renameSync(tmp, path);
  }
}

function cgroupId(dir: string): bigint {
  return statSync(dir, { bigint: true }).ino;
}

/**
 * Open, reuse-or-create maps with pins, load, and attach (or adopt) the cgroup
 * programs. Throws LoaderError (cause: the BpfError) and leaves no new link
 * behind when it fails.
 */
export function load(opts: LoadOptions): Loaded {
  const root = opts.bpfRoot ?? DEFAULT_BPF_ROOT;
  ensureBpffsDir(root);

  const obj = BpfObject.open(opts.object);
  const newLinks: Link[] = [];
  const heldLinks: Link[] = [];
  const newLinkPins: string[] = [];
  const fds: number[] = [];
  /** Remove the link pins this load made and drop its link handles (a failed load or attach leaves no new link). */
  const undoLinks = (): void => {
    for (const pin of newLinkPins.splice(0)) {
      try {
        unlinkSync(pin);
      } catch {
        // already gone
      }
    }
    for (const l of [...newLinks.splice(0), ...heldLinks.splice(0)]) l.destroy();
  };
  try {
    // Programs: which load, which attach.
    const progs = obj.programs();
    const skip = new Set(opts.skipPrograms ?? []);
    for (const p of progs) if (skip.has(p.name)) p.setAutoload(false);
    const loaded = progs.filter((p) => !skip.has(p.name));
    let toAttach: ObjectProgram[] = [];
    if (opts.cgroup) {
      if (opts.attach) {
        for (const name of opts.attach) {
          const p = loaded.find((x) => x.name === name);
          if (!p) throw new LoaderError('NO_PROGRAM', `program ${name} is not in ${opts.object} (has: ${progs.map((x) => x.name).join(', ')})`);
          if (!isCgroupSection(p.sectionName)) {
            throw new LoaderError('NOT_CGROUP_PROGRAM', `program ${name} (section ${p.sectionName}) does not attach to a cgroup`);
          }
          toAttach.push(p);
        }
      } else {
        toAttach = loaded.filter((p) => isCgroupSection(p.sectionName));
      }
    }

    // Maps: reuse compatible pins, plan pins for the rest.
    const mapStatus = new Map<string, MapStatus>();
    const toPin: { map: ObjectMap; path: string; replace: boolean }[] = [];
    const reusable: { map: ObjectMap; fd: number; path: string }[] = [];
    const objMaps = obj.maps();
    for (const m of objMaps) {
      const want = opts.maxEntries?.[m.name];
      if (want !== undefined) m.setMaxEntries(want);
    }
    for (const m of objMaps) {
      const base = { name: m.name, fd: -1, id: 0, type: mapTypeName(m.type), keySize: m.keySize, valueSize: m.valueSize, maxEntries: m.maxEntries };
      if (m.isInternal || m.name.includes('.')) {
        mapStatus.set(m.name, { ...base, action: 'private' });
        continue;
      }
      const path = join(mapsDir(root), m.name);
      if (!existsSync(path)) {
        toPin.push({ map: m, path, replace: false });
        mapStatus.set(m.name, { ...base, pin: path, action: 'created' });
        continue;
      }
      let fd: number;
      try {
        fd = objGet(path);
      } catch (e) {
        throw new LoaderError('BAD_PIN', `cannot open pinned map ${path}: ${(e as Error).message}`, { cause: e });
      }
      fds.push(fd);
      let info: MapInfo;
      try {
        info = mapInfo(fd);
      } catch (e) {
        throw new LoaderError('BAD_PIN', `${path} is not a map: ${(e as Error).message}`, { cause: e });
      }
      const diff = mapDifferences(info, { type: m.type, keySize: m.keySize, valueSize: m.valueSize, maxEntries: m.maxEntries, flags: m.flags });
      if (diff.length === 0) {
        reusable.push({ map: m, fd, path });
        mapStatus.set(m.name, { ...base, pin: path, action: 'reused' });
      } else if (opts.replaceIncompatible) {
        toPin.push({ map: m, path, replace: true });
        mapStatus.set(m.name, { ...base, pin: path, action: 'replaced', reason: diff.join(', ') });
      } else {
        throw new LoaderError(
          'INCOMPATIBLE_MAP',
          `pinned map ${path} does not match ${opts.object}: ${diff.join(', ')}; ` +
            `remove the pin (kinglet agent --cleanup) or allow replacing it (its entries will be lost)`,
        );
      }
    }
    // One of a set of maps that hold one state together is new (another layout): the rest of
    // the set is made anew too, so old programs keep reading their whole old set, untouched.
    const together = new Set(opts.renewTogether ?? []);
    const renewed = [...mapStatus.values()].filter((st) => together.has(st.name) && (st.action === 'created' || st.action === 'replaced'));
    for (const r of reusable) {
      const st = mapStatus.get(r.map.name)!;
      if (renewed.length > 0 && together.has(r.map.name)) {
        toPin.push({ map: r.map, path: r.path, replace: true });
        st.action = 'replaced';
        st.reason = `renewed with ${renewed.map((x) => x.name).join(', ')} (a new layout): programs still attached keep the old set`;
      } else r.map.reuseFd(r.fd);
    }
    for (const fd of fds.splice(0)) closeFd(fd);

    try {
      obj.load();
    } catch (e) {
      throw new LoaderError('LOAD', `loading ${opts.object}: ${(e as Error).message}`, { cause: e });
    }

    for (const { map, path, replace } of toPin) {
      if (replace) pinReplacing(map.fd, path);
      else objPin(map.fd, path);
    }

    const programs: Record<string, ProgramStatus> = {};
    for (const p of loaded) {
      const fd = p.fd;
      const info = progInfo(fd);
      programs[p.name] = {
        name: p.name,
        section: p.sectionName,
        fd,
        id: info.id,
        ...(isCgroupSection(p.sectionName) ? { attachType: attachTypeName(p.expectedAttachType) } : {}),
      };
    }

    const maps: Record<string, number> = {};
    for (const m of objMaps) {
      const st = mapStatus.get(m.name)!;
      st.fd = m.fd;
      try {
        st.id = mapInfo(m.fd).id;
      } catch {
        // an unloaded internal map (e.g. .kconfig): no fd
      }
      if (st.fd >= 0) maps[m.name] = st.fd;
    }
    const ours = [...mapStatus.values()].filter((m) => m.pin !== undefined).map((m) => m.name);
    const keep = new Set((opts.keepStalePins ?? []).map(layoutBase));
    const stale = () => stalePins(safeReaddir(mapsDir(root)), ours).filter((n) => !keep.has(layoutBase(n)));

    const links: Record<string, Link> = {};
    const attachments: AttachmentStatus[] = [];
    const removedPins: string[] = [];

    // Attach, or adopt the pinned links; then the pins of this object's maps in other layouts
    // are garbage (a program still using one keeps its map alive until it is replaced).
    const attachAndSweep = (): void => {
      if (opts.cgroup && toAttach.length > 0) {
        try {
          attachments.push(...attachAll(opts.cgroup, toAttach, root, links, { newLinks, heldLinks, newLinkPins }));
        } catch (e) {
          undoLinks();
          for (const k of Object.keys(links)) delete links[k];
          attachments.length = 0;
          throw e;
        }
      }
      for (const name of stale()) {
        try {
          unlinkSync(join(mapsDir(root), name));
          removedPins.push(name);
        } catch {
          // gone already (another loader swept it)
        }
      }
    };

    // A plain restart (every map adopted, no other layout pinned, every link pinned) swaps the
    // programs in place at once: they read the very maps the old ones read. Anything else
    // waits for attach() when the caller fills the maps first (only then is it worth finding out).
    const plainRestart = (): boolean => [...mapStatus.values()].every((m) => m.action === 'reused' || m.action === 'private')
      && stale().length === 0
      && toAttach.every((p) => existsSync(join(linksDir(root), p.name)));
    let pending = opts.fillFirst === true && !plainRestart();
    if (!pending) attachAndSweep();

    const describe = (): DatapathDescription => structuredClone({
      object: opts.object,
      bpfRoot: root,
      maps: [...mapStatus.values()],
      programs: Object.values(programs),
      attachments,
      removedPins,
    });
    return {
      object: obj,
      bpfRoot: root,
      maps,
      programs,
      links,
      get attachPending() {
        return pending;
      },
      attach: () => {
        if (!pending) return;
        attachAndSweep();
        pending = false;
      },
      describe,
      close: () => {
        for (const l of Object.values(links)) l.destroy();
        obj.close();
      },
    };
  } catch (e) {
    for (const fd of fds) closeFd(fd);
    undoLinks();
    obj.close();
    if (e instanceof LoaderError) throw e;
    if (e instanceof BpfError) throw new LoaderError('LOAD', `loading ${opts.object}: ${e.message}`, { cause: e });
    throw e;
  }
}

/**
 * Attach each program to the cgroup with a pinned link, or adopt its pinned
 * link (bpf_link_update to the new program). New links and pins, and the
 * adopted ones, are recorded in `track` so a failure can undo them.
 */
function attachAll(
  cgroup: string,
  toAttach: ObjectProgram[],
  root: string,
  links: Record<string, Link>,
  track: { newLinks: Link[]; heldLinks: Link[]; newLinkPins: string[] },
): AttachmentStatus[] {
  const attachments: AttachmentStatus[] = [];
  const cgId = cgroupId(cgroup);
  const cgFd = openCgroup(cgroup);
  try {
    for (const p of toAttach) {
      const pin = join(linksDir(root), p.name);
      const attachType = p.expectedAttachType;
      let action: LinkAction = 'attached';
      let link: Link | undefined;
      if (existsSync(pin)) {
        let old: Link;
        try {
          old = Link.open(pin);
        } catch (e) {
          throw new LoaderError('BAD_PIN', `cannot open pinned link ${pin}: ${(e as Error).message}`, { cause: e });
        }
        const info = old.info();
        if (info.type === LinkType.CGROUP && info.attachType === attachType && info.cgroupId === cgId && cgId !== 0n) {
          try {
            linkUpdate(old.fd, p.fd);
          } catch (e) {
            old.destroy();
            throw new LoaderError('ATTACH', `updating the pinned link ${pin} to the new ${p.name}: ${(e as Error).message}`, { cause: e });
          }
          link = old;
          track.heldLinks.push(old);
          action = 'adopted';
        } else {
          // Another cgroup, attach type, or a link whose cgroup is gone:
          // attach anew, then swap the pin (the old link detaches when its last reference goes).
          old.disconnect();
          old.destroy();
          action = 'replaced';
        }
      }
      if (!link) {
        try {
          link = p.attachCgroup(cgFd);
        } catch (e) {
          throw new LoaderError('ATTACH', `attaching ${p.name} (${p.sectionName}) to ${cgroup}: ${(e as Error).message}`, { cause: e });
        }
        track.newLinks.push(link);
        if (action === 'replaced') pinReplacing(link.fd, pin);
        else {
          link.pin(pin);
          track.newLinkPins.push(pin);
        }
      }
      links[p.name] = link;
      const li = link.info();
      attachments.push({
        program: p.name,
        section: p.sectionName,
        attachType: attachTypeName(attachType),
        cgroup,
        progId: li.progId,
        linkId: li.id,
        pin,
        action,
      });
    }
  } finally {
    closeCgroup(cgFd);
  }
  return attachments;
}

export interface PinnedLink {
  pin: string;
  linkId: number;
  progId: number;
  program?: string;
  attachType?: string;
  cgroupId?: string;
}

export interface PinnedMap {
  pin: string;
  id: number;
  name: string;
  type: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

/** What is pinned under a bpf root, read from another process (the CLI's status). */
export function describePinned(root: string = DEFAULT_BPF_ROOT): { maps: PinnedMap[]; links: PinnedLink[] } {
  const maps: PinnedMap[] = [];
  const links: PinnedLink[] = [];
  for (const name of safeReaddir(mapsDir(root))) {
    const pin = join(mapsDir(root), name);
    let fd = -1;
    try {
      fd = objGet(pin);
      const i = mapInfo(fd);
      maps.push({ pin, id: i.id, name: i.name, type: i.typeName, keySize: i.keySize, valueSize: i.valueSize, maxEntries: i.maxEntries });
    } catch {
      // not a map: skip
    } finally {
      if (fd >= 0) closeFd(fd);
    }
  }
  for (const name of safeReaddir(linksDir(root))) {
    const pin = join(linksDir(root), name);
    let fd = -1;
    try {
      fd = objGet(pin);
      const li = linkInfo(fd);
      const entry: PinnedLink = { pin, linkId: li.id, progId: li.progId };
      if (li.attachType !== undefined) entry.attachType = attachTypeName(li.attachType);
      if (li.cgroupId !== undefined) entry.cgroupId = li.cgroupId.toString();
      try {
        const pfd = progFdById(li.progId);
        try {
          entry.program = progInfo(pfd).name;
        } finally {
          closeFd(pfd);
        }
      } catch {
        // program gone or not visible
      }
      links.push(entry);
    } catch {
      // not a link: skip
    } finally {
      if (fd >= 0) closeFd(fd);
    }
  }
  return { maps, links };
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

/**
 * Detach the link pinned at `pin` explicitly (kernel 5.9+), so it stops even
 * while another process holds it open. Best effort: on older kernels, or for
 * an unreadable pin, unpinning the last reference detaches it. Does not unpin.
 */
function detachPinnedLink(pin: string): void {
  let fd: number;
  try {
    fd = objGet(pin);
  } catch {
    return;
  }
  try {
    linkDetach(fd);
  } catch {
    // older kernel or not a link
  } finally {
    closeFd(fd);
  }
}

export interface CleanupReport {
  links: string[];
  maps: string[];
  errors: string[];
}

/**
 * Remove the datapath under `root`: detach and unpin every link (the
 * programs stop), unpin every map, remove the directories. Close a Loaded
 * first if this process holds one (pass it as `loaded`).
 */
export function cleanup(root: string = DEFAULT_BPF_ROOT, opts: { loaded?: Loaded } = {}): CleanupReport {
  opts.loaded?.close();
  const report: CleanupReport = { links: [], maps: [], errors: [] };
  for (const name of safeReaddir(linksDir(root))) {
    const pin = join(linksDir(root), name);
    detachPinnedLink(pin);
    try {
      unlinkSync(pin);
      report.links.push(pin);
    } catch (e) {
      report.errors.push(`${pin}: ${(e as Error).message}`);
    }
  }
  for (const name of safeReaddir(mapsDir(root))) {
    const pin = join(mapsDir(root), name);
    try {
      unlinkSync(pin);
      report.maps.push(pin);
    } catch (e) {
      report.errors.push(`${pin}: ${(e as Error).message}`);
    }
  }
  for (const dir of [linksDir(root), mapsDir(root), root]) {
    try {
      rmdirSync(dir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && !(dir === root && code === 'ENOTEMPTY') && !(dir === root && code === 'EBUSY')) {
        report.errors.push(`${dir}: ${(e as Error).message}`);
      }
    }
  }
  return report;
}

/** Cgroup attach types by the section suffix libbpf understands, for documentation and checks. */
export const cgroupSectionAttach: Record<string, number> = {
  'cgroup/connect4': AttachType.CGROUP_INET4_CONNECT,
  'cgroup/connect6': AttachType.CGROUP_INET6_CONNECT,
  'cgroup/sendmsg4': AttachType.CGROUP_UDP4_SENDMSG,
  'cgroup/sendmsg6': AttachType.CGROUP_UDP6_SENDMSG,
  'cgroup/recvmsg4': AttachType.CGROUP_UDP4_RECVMSG,
  'cgroup/recvmsg6': AttachType.CGROUP_UDP6_RECVMSG,
  'cgroup/getpeername4': AttachType.CGROUP_INET4_GETPEERNAME,
  'cgroup/getpeername6': AttachType.CGROUP_INET6_GETPEERNAME,
  'cgroup/getsockname4': AttachType.CGROUP_INET4_GETSOCKNAME,
  'cgroup/getsockname6': AttachType.CGROUP_INET6_GETSOCKNAME,
  'cgroup/bind4': AttachType.CGROUP_INET4_BIND,
  'cgroup/bind6': AttachType.CGROUP_INET6_BIND,
  'cgroup/post_bind4': AttachType.CGROUP_INET4_POST_BIND,
  'cgroup/post_bind6': AttachType.CGROUP_INET6_POST_BIND,
  'cgroup/sock_create': AttachType.CGROUP_INET_SOCK_CREATE,
  'cgroup/sock': AttachType.CGROUP_INET_SOCK_CREATE,
  'cgroup/sock_release': AttachType.CGROUP_INET_SOCK_RELEASE,
  'cgroup_skb/ingress': AttachType.CGROUP_INET_INGRESS,
  'cgroup_skb/egress': AttachType.CGROUP_INET_EGRESS,
  sockops: AttachType.CGROUP_SOCK_OPS,
};

// ---------------------------------------------------------------------------
// tc (clsact) attachments. Unlike cgroup programs these are not bpf_links
// (tc links need kernel 6.6), so nothing is pinned: the filter itself, at a
// fixed (handle, priority), is the attachment. A restart loads new program
// instances and swaps each filter with BPF_TC_F_REPLACE in one netlink
// request, so a device is never without its program. All of this acts on
// the caller's network namespace.

/** Handle and priority of every kinglet tc filter ("kinglet" = 0xb9 as elsewhere). */
export const TC_HANDLE = 0xb9;
export const TC_PRIORITY = 1;
const TC_AT = { handle: TC_HANDLE, priority: TC_PRIORITY };

export interface TcAttachment {
  ifindex: number;
  direction: TcDirection;
  program: string;
  progId: number;
  /** attached: no kinglet filter was there; replaced: one was, and was swapped in place. */
  action: 'attached' | 'replaced';
  /** The clsact qdisc was added by this call (so cleanup may remove it). */
  createdQdisc: boolean;
}

/** Attach (or atomically replace) `program` at kinglet's handle/priority on one hook of a device. */
export function tcAttachProgram(o: { ifindex: number; direction: TcDirection; program: string; progFd: number }): TcAttachment {
  const createdQdisc = tcHookCreate(o.ifindex);
  const had = tcQuery(o.ifindex, o.direction, TC_AT);
  let progId: number;
  try {
    progId = tcAttach(o.ifindex, o.direction, o.progFd, { ...TC_AT, replace: true });
  } catch (e) {
    if (createdQdisc) {
      try {
        tcHookDestroy(o.ifindex);
      } catch {
        // leave it; the device may be gone
      }
    }
    throw new LoaderError('ATTACH', `attaching ${o.program} at tc ${o.direction} of ifindex ${o.ifindex}: ${(e as Error).message}`, { cause: e });
  }
  return { ifindex: o.ifindex, direction: o.direction, program: o.program, progId, action: had === undefined ? 'attached' : 'replaced', createdQdisc };
}

/** Remove kinglet's filter from one hook; with removeQdisc, also the clsact qdisc (all its filters). */
export function tcDetachProgram(ifindex: number, direction: TcDirection, opts: { removeQdisc?: boolean } = {}): boolean {
  const had = tcDetach(ifindex, direction, TC_AT);
  if (opts.removeQdisc) tcHookDestroy(ifindex);
  return had;
}

/** The program id of kinglet's filter on one hook, or undefined. */
export function tcQueryProgram(ifindex: number, direction: TcDirection): number | undefined {
  return tcQuery(ifindex, direction, TC_AT);
}

/** Detach and unpin the pinned links of these programs (e.g. the socket LB when it is switched off). */
export function removePinnedLinks(root: string, programs: string[]): string[] {
  const removed: string[] = [];
  for (const name of programs) {
    const pin = join(linksDir(root), name);
    if (!existsSync(pin)) continue;
    detachPinnedLink(pin);
    unlinkSync(pin);
    removed.push(pin);
  }
  return removed;
}
