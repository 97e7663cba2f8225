// IPAM for the node's pod range.
//
// Two layers:
// - a pure allocator over one IPv4 range (`parseRange`, `allocate`, `release`,
//   `collect`): it never hands out the network address, the gateway (the
//   range's first address, which lives on the host side) or the broadcast
//   address; allocations are keyed by (container id, ifname) as the CNI spec
//   asks, and it goes round-robin from the last address it gave so a freed
//   address is not reused at once;
// - a store (`IpamStore`) that keeps one state file per range on disk,
//   `<dataDir>/ipam/<network>/<range>.json`, and serializes every
//   read-modify-write across processes with an exclusive lock.
//
// The lock is an abstract unix socket (Linux) named after the state
// directory: bind() succeeds for exactly one process, and the kernel drops the
// name the moment its holder exits, crash or SIGKILL included. So there is no
// stale lock to detect (the weak spot of O_EXCL lock files: telling a dead
// PID from a reused one, and two waiters "recovering" the same stale file),
// no helper process to spawn (flock(1) would cost an exec per ADD), and
// waiters are woken when the holder goes, not by polling: a waiter connects to
// the holder's socket and retries when that connection closes. Abstract
// names live in the network namespace, and every invocation for one node runs
// in the node's namespace (the runtime's), which is also where the host side
// of the veths must land; the name carries the state directory's path so two
// data dirs never share a lock.
//
// File I/O is synchronous on purpose: the plugin is a short-lived process
// that does one thing at a time, and node:fs sync calls are the cheapest.
// Writes go to a temp file in the same directory and rename() over the state
// file, so a reader never sees half a file. A range's file stays when its
// last pod is gone: it keeps the round-robin position (like host-local's
// last_reserved_ip), so an address just freed is not handed out again at
// once (conntrack entries, the agent's identity of the old pod).
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { sha256Hex } from './sha256.ts';

export class IpamError extends Error {
  override name = 'IpamError';
  readonly kind: 'config' | 'exhausted' | 'busy' | 'io';
  readonly hint: string;
  constructor(kind: IpamError['kind'], message: string, hint: string, opts?: { cause?: unknown }) {
    super(message, opts);
    this.kind = kind;
    this.hint = hint;
  }
}

// ---------------------------------------------------------------------------
// Pure allocator

export interface Range {
  /** Canonical CIDR, e.g. 10.42.0.0/24. */
  cidr: string;
  prefix: number;
  /** Network address as an unsigned 32-bit number. */
  network: number;
  /** The gateway: the first address after the network address. */
  gateway: string;
  /** First and last addresses a pod may get (numbers). */
  first: number;
  last: number;
  /** How many pods fit. */
  size: number;
}

export function ipToNum(ip: string): number {
  const p = ip.split('.');
  if (p.length !== 4) throw new Error(`not an IPv4 address: ${ip}`);
  let n = 0;
  for (const s of p) {
    const v = Number(s);
    if (!/^\d{1,3}$/.test(s) || v > 255) throw new Error(`not an IPv4 address: ${ip}`);
    n = n * 256 + v;
  }
  return n;
}

export function numToIp(n: number): string {
  return `${Math.floor(n / 2 ** 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** A pod range from a CIDR (IPv4, /8 to /30, host bits clear). Throws IpamError('config'). */
export function parseRange(cidr: string): Range {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(cidr);
  let ip: number;
  try {
    if (!m) throw new Error('no prefix');
    ip = ipToNum(m[1]!);
  } catch {
    throw new IpamError('config', `pod range ${JSON.stringify(cidr)} is not an IPv4 CIDR`, 'give it as address/prefix, e.g. 10.42.0.0/24');
  }
  const prefix = Number(m[2]);
  if (prefix < 8 || prefix > 30) {
    throw new IpamError('config', `pod range ${cidr} has prefix /${prefix}`, 'a pod range is /8 to /30 (k3s gives each node a /24)');
  }
  const size = 2 ** (32 - prefix);
  const network = ip - (ip % size);
  if (network !== ip) {
    throw new IpamError('config', `pod range ${cidr} has host bits set`, `did you mean ${numToIp(network)}/${prefix}?`);
  }
  return {
    cidr,
    prefix,
    network,
    gateway: numToIp(network + 1),
    first: network + 2,
    last: network + size - 2,
    size: size - 3,
  };
}

export interface Owner {
  containerId: string;
  ifname: string;
}

export interface Allocation extends Owner {
  /** Host side of the veth, so DEL and GC can remove it without the netns. */
  hostIfname?: string;
  /** When it was allocated (ISO time). */
  at?: string;
}

export interface RangeState {
  range: string;
  /** The last address handed out: the next search starts after it. */
  last?: string;
  /** address -> owner */
  allocations: Record<string, Allocation>;
}

export function emptyState(range: Range): RangeState {
  return { range: range.cidr, allocations: {} };
}

export function ownerKey(o: Owner): string {
  return `${o.containerId}/${o.ifname}`;
}

/** The address held by `owner`, if any. */
export function findByOwner(state: RangeState, owner: Owner): string | undefined {
  for (const [ip, a] of Object.entries(state.allocations)) {
    if (a.containerId === owner.containerId && a.ifname === owner.ifname) return ip;
  }
  return undefined;
}

/**
 * Give `owner` an address (the one it already holds, if any). Mutates
 * `state`. Throws IpamError('exhausted') when the range is full.
 */
export function allocate(state: RangeState, range: Range, owner: Allocation): string {
  const held = findByOwner(state, owner);
  if (held) return held;
  const n = range.last - range.first + 1;
  let start = range.first;
  if (state.last) {
    try {
      const l = ipToNum(state.last);
      if (l >= range.first && l <= range.last) start = l + 1 > range.last ? range.first : l + 1;
    } catch {
      // a bad hint: start from the beginning
    }
  }
  for (let i = 0; i < n; i++) {
    let c = start + i;
    if (c > range.last) c -= n;
    const ip = numToIp(c);
    if (!state.allocations[ip]) {
      state.allocations[ip] = { ...owner };
      state.last = ip;
      return ip;
    }
  }
  throw new IpamError(
    'exhausted',
    `no free address in pod range ${range.cidr}: all ${range.size} are in use`,
    'delete pods on this node, run GC to reclaim leaked addresses, or give the node a larger podCIDR',
  );
}

/** Free the owner's address. Returns it, or undefined when the owner held none. Mutates `state`. */
export function release(state: RangeState, owner: Owner): Allocation & { ip: string } | undefined {
  const ip = findByOwner(state, owner);
  if (!ip) return undefined;
  const a = state.allocations[ip]!;
  delete state.allocations[ip];
  return { ...a, ip };
}

/** GC: free every allocation whose owner is not in `valid` (keys from ownerKey). Returns what was freed. */
export function collect(state: RangeState, valid: ReadonlySet<string>): (Allocation & { ip: string })[] {
  const freed: (Allocation & { ip: string })[] = [];
  for (const [ip, a] of Object.entries(state.allocations)) {
    if (!valid.has(ownerKey(a))) {
      freed.push({ ...a, ip });
      delete state.allocations[ip];
    }
  }
  return freed;
}

/** Addresses still free in the range. */
export function freeCount(state: RangeState, range: Range): number {
  let used = 0;
  for (const ip of Object.keys(state.allocations)) {
    const n = ipToNum(ip);
    if (n >= range.first && n <= range.last) used++;
  }
  return range.size - used;
}

// ---------------------------------------------------------------------------
// On-disk store with a cross-process lock

/** Validate what was read from disk; anything malformed is an I/O-class error (never guessed at). */
function decodeState(text: string, file: string): RangeState {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (cause) {
    throw new IpamError('io', `IPAM state ${file} is not valid JSON`, `inspect it, and remove it only if no pod on this node uses its addresses`, { cause });
  }
  const o = v as Partial<RangeState>;
  if (typeof o !== 'object' || o === null || typeof o.range !== 'string' || typeof o.allocations !== 'object' || o.allocations === null) {
    throw new IpamError('io', `IPAM state ${file} is malformed`, 'inspect it, and remove it only if no pod on this node uses its addresses');
  }
  return { range: o.range, allocations: o.allocations, ...(typeof o.last === 'string' ? { last: o.last } : {}) };
}

export function rangeFileName(cidr: string): string {
  return `${cidr.replace('/', '_')}.json`;
}

export interface IpamTx {
  /** The state of a range (empty when it has no file yet). */
  load(range: Range): Promise<RangeState>;
  /** Write it back. */
  save(state: RangeState): Promise<void>;
  /** Every range that has a state file. */
  ranges(): Promise<string[]>;
}

export interface LockOptions {
  /** Give up after this long (default 30 s): IpamError('busy'). */
  timeoutMs?: number;
}

export class IpamStore {
  readonly dir: string;
  readonly lockName: string;

  constructor(dataDir: string, network: string) {
    this.dir = join(dataDir, 'ipam', network);
    const h = sha256Hex(this.dir).slice(0, 32);
    this.lockName = `\0kinglet-cni-ipam-${h}`;
  }

  /** Run `fn` holding the store's exclusive lock (across processes). */
  async withLock<T>(fn: (tx: IpamTx) => Promise<T>, opts: LockOptions = {}): Promise<T> {
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    } catch (cause) {
      throw new IpamError('io', `cannot create the IPAM directory ${this.dir}: ${(cause as Error).message}`, 'check "dataDir" in the conflist and that the plugin runs as root', { cause });
    }
    const unlock = await acquireAbstractLock(this.lockName, opts.timeoutMs ?? 30_000, this.dir);
    try {
      return await fn(this.tx());
    } finally {
      await unlock();
    }
  }

  private tx(): IpamTx {
    const dir = this.dir;
    return {
      load: async (range) => {
        const file = join(dir, rangeFileName(range.cidr));
        let text: string;
        try {
          text = readFileSync(file, 'utf8');
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') return emptyState(range);
          throw new IpamError('io', `cannot read IPAM state ${file}: ${(e as Error).message}`, 'check the data directory', { cause: e });
        }
        return decodeState(text, file);
      },
      save: async (state) => {
        const file = join(dir, rangeFileName(state.range));
        try {
          const tmp = `${file}.${process.pid}.tmp`;
          writeFileSync(tmp, JSON.stringify(state), { mode: 0o600 });
          renameSync(tmp, file);
        } catch (e) {
          throw new IpamError('io', `cannot write IPAM state ${file}: ${(e as Error).message}`, 'check free space and permissions of the data directory', { cause: e });
        }
      },
      ranges: async () => {
        let names: string[] = [];
        try {
          names = readdirSync(dir);
        } catch {
          // no directory yet: no ranges
        }
        return names.filter((n) => /^[\d.]+_\d+\.json$/.test(n)).map((n) => n.slice(0, -5).replace('_', '/'));
      },
    };
  }
}

/**
 * Take the abstract-socket lock `name`. Resolves to the release function.
 * Waiters connect to the holder and retry when the connection closes (the
 * holder closing, or dying); a short timer covers lost wake-ups.
 */
export async function acquireAbstractLock(name: string, timeoutMs: number, what = name): Promise<() => Promise<void>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const server = await tryBind(name);
    if (server) {
      const conns = new Set<Socket>();
      server.on('connection', (c) => {
        conns.add(c);
        c.on('error', () => {});
        c.on('close', () => conns.delete(c));
      });
      return () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          for (const c of conns) c.destroy();
        });
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new IpamError('busy', `timed out after ${timeoutMs} ms waiting for the IPAM lock of ${what}`, 'another kinglet-cni holds it: retry; if it persists, look for a hung kinglet-cni process');
    }
    await waitForRelease(name, Math.min(left, 250));
  }
}

function tryBind(name: string): Promise<Server | undefined> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EADDRINUSE') resolve(undefined);
      else reject(new IpamError('io', `cannot take the IPAM lock: ${e.message}`, 'kinglet-cni needs Linux abstract unix sockets', { cause: e }));
    });
    s.listen(name, () => {
      s.removeAllListeners('error');
      s.on('error', () => {});
      resolve(s);
    });
  });
}

/** Wait until the holder's socket closes on us, or `ms` pass. */
function waitForRelease(name: string, ms: number): Promise<void> {
  return new Promise((resolve) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      // A little jitter so that woken waiters do not all bind at once.
      setTimeout(resolve, Math.random() * 2);
    };
    const timer = setTimeout(finish, ms);
    const sock = connect(name);
    sock.on('error', finish);
    sock.on('close', finish);
    sock.on('data', () => {});
  });
}
