// The agent's endpoints: one per pod interface the CNI plugin wired. The
// plugin registers them (PUT /v1/endpoints/{containerId}) and removes them
// (DELETE, idempotent: containerd sends DEL twice); the agent attaches the
// pod's tc programs to the host veth and writes the endpoint map entry.
//
// The store is persisted as one JSON file under the agent's state dir
// (<state-dir>/endpoints.json, written to a temp file and renamed), so a
// restarted agent knows its endpoints and re-attaches their programs.
// Validation is pure (validateRegistration) and gives 400s that say what to fix.
import { mkdirSync, readFileSync, renameSync, writeFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import type { EndpointInfo, EndpointRegistration } from './api/types.ts';
import { parseIp } from './model/ip.ts';

export const DEFAULT_STATE_DIR = '/var/lib/kinglet/agent';
const FILE = 'endpoints.json';
const FORMAT_VERSION = 1;

/** A registration the agent refuses; the API answers 400 with message + hint. */
export class EndpointValidationError extends Error {
  override name = 'EndpointValidationError';
  readonly hint: string | undefined;
  constructor(message: string, hint?: string) {
    super(message);
    this.hint = hint;
  }
}

/** CNI's rule for container ids: starts alphanumeric, then alphanumerics, '_', '.', '-'. */
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const MAX_ID = 1024;

/** Linux interface names: 1-15 bytes, no '/', ':', whitespace, not '.' or '..'. */
export function validIfname(s: unknown): s is string {
  return typeof s === 'string' && s.length >= 1 && Buffer.byteLength(s) <= 15 && s !== '.' && s !== '..' && !/[/:\s]/.test(s);
}

function optString(body: Record<string, unknown>, key: string, max = 253): string | undefined {
  const v = body[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw new EndpointValidationError(`${key} must be a string (got ${typeof v})`);
  if (v.length > max) throw new EndpointValidationError(`${key} is longer than ${max} characters`);
  return v;
}

/** Six lower-case hex pairs, the first even (not multicast). */
const UNICAST_MAC = /^[0-9a-f][02468ace](:[0-9a-f]{2}){5}$/;

/**
 * Check a PUT body against the path's container id and return the
 * registration with canonical addresses. Unknown fields are ignored (a newer
 * plugin may send more); wrong ones throw EndpointValidationError.
 */
export function validateRegistration(containerId: string, body: unknown): EndpointRegistration {
  if (!containerId || containerId.length > MAX_ID || !CONTAINER_ID.test(containerId)) {
    throw new EndpointValidationError(
      `invalid container id ${JSON.stringify(containerId.slice(0, 80))}`,
      'a container id starts with a letter or digit and has only letters, digits, "_", "." and "-" (the CNI spec\'s rule)',
    );
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new EndpointValidationError('the body must be a JSON object (an EndpointRegistration)', 'see agent/api/types.ts');
  }
  const b = body as Record<string, unknown>;
  if (b.containerId !== undefined && b.containerId !== containerId) {
    throw new EndpointValidationError(`containerId in the body (${JSON.stringify(b.containerId)}) differs from the one in the path (${containerId})`);
  }
  if (typeof b.netns !== 'string' || !b.netns.startsWith('/')) {
    throw new EndpointValidationError('netns must be the absolute path of the pod\'s network namespace (CNI_NETNS)', 'e.g. /var/run/netns/cni-1234');
  }
  if (!validIfname(b.ifname)) throw new EndpointValidationError(`ifname ${JSON.stringify(b.ifname)} is not an interface name`, '1-15 characters, no "/", ":" or spaces (CNI_IFNAME, e.g. eth0)');
  if (!validIfname(b.hostIfname)) throw new EndpointValidationError(`hostIfname ${JSON.stringify(b.hostIfname)} is not an interface name`, 'the host side of the pod\'s veth, e.g. kl0123456789a');
  if (!Array.isArray(b.addresses) || b.addresses.length === 0) {
    throw new EndpointValidationError('addresses must be a non-empty list of the pod\'s IP addresses (without prefix length)');
  }
  const addresses: string[] = [];
  for (const a of b.addresses) {
    const p = parseIp(a);
    if (!p) throw new EndpointValidationError(`${JSON.stringify(a)} is not an IP address`, 'addresses are plain IPv4/IPv6 literals without "/prefix"');
    if (addresses.includes(p.address)) throw new EndpointValidationError(`address ${p.address} is listed twice`);
    addresses.push(p.address);
  }
  const reg: EndpointRegistration = { containerId, netns: b.netns, ifname: b.ifname, hostIfname: b.hostIfname, addresses };
  const ns = optString(b, 'podNamespace');
  const name = optString(b, 'podName');
  const uid = optString(b, 'podUid', 128);
  if (ns) reg.podNamespace = ns;
  if (name) reg.podName = name;
  if (uid) reg.podUid = uid;
  for (const k of ['podMac', 'hostMac'] as const) {
    const v = b[k];
    if (v === undefined) continue;
    if (typeof v !== 'string' || !UNICAST_MAC.test(v)) throw new EndpointValidationError(`${k} ${JSON.stringify(v)} is not a unicast MAC address`, 'six lower-case hex pairs separated by ":", e.g. 02:12:34:56:78:9a; or leave it out');
    reg[k] = v;
  }
  return reg;
}

/**
 * Who else holds one of `reg`'s addresses or its host interface (other
 * container ids), for a 409.
 */
export function conflicts(reg: EndpointRegistration, existing: Iterable<EndpointInfo>): string[] {
  const out: string[] = [];
  for (const e of existing) {
    if (e.containerId === reg.containerId) continue;
    for (const a of reg.addresses) if (e.addresses.includes(a)) out.push(`address ${a} belongs to endpoint ${e.containerId}`);
    if (e.hostIfname === reg.hostIfname) out.push(`interface ${reg.hostIfname} belongs to endpoint ${e.containerId}`);
  }
  return out;
}

interface StoreFile {
  version: number;
  endpoints: EndpointInfo[];
}

/** Endpoints by container id, persisted on every change. */
export class EndpointStore {
  readonly dir: string;
  readonly #byId = new Map<string, EndpointInfo>();

  constructor(stateDir: string) {
    this.dir = stateDir;
  }

  get path(): string {
    return join(this.dir, FILE);
  }

  /** Read the file (missing: empty). A corrupt file is an error with a remedy, not silently dropped. */
  load(): EndpointInfo[] {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    let parsed: StoreFile;
    try {
      parsed = JSON.parse(text) as StoreFile;
    } catch {
      throw new Error(`${this.path} is not valid JSON; move it aside (the CNI plugin re-registers pods on their next CHECK/ADD) and restart`);
    }
    if (parsed.version !== FORMAT_VERSION || !Array.isArray(parsed.endpoints)) {
      throw new Error(`${this.path} has an unknown format (version ${String(parsed.version)}); move it aside and restart`);
    }
    this.#byId.clear();
    for (const e of parsed.endpoints) this.#byId.set(e.containerId, e);
    return this.list();
  }

  get(containerId: string): EndpointInfo | undefined {
    return this.#byId.get(containerId);
  }

  list(): EndpointInfo[] {
    return [...this.#byId.values()].sort((a, b) => a.containerId.localeCompare(b.containerId));
  }

  get size(): number {
    return this.#byId.size;
  }

  put(e: EndpointInfo): void {
    this.#byId.set(e.containerId, e);
    this.save();
  }

  /** false when it was not there. */
  delete(containerId: string): boolean {
    const had = this.#byId.delete(containerId);
    if (had) this.save();
    return had;
  }

  /** Remove several at once (one write). */
  deleteMany(ids: Iterable<string>): void {
    let any = false;
    for (const id of ids) any = this.#byId.delete(id) || any;
    if (any) this.save();
  }

  save(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.path}.tmp`;
    const body: StoreFile = { version: FORMAT_VERSION, endpoints: this.list() };
    writeFileSync(tmp, JSON.stringify(body, null, 1) + '\n', { mode: 0o600 });
    const fd = openSync(tmp, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
  }
}
