// The CNI wire protocol, as kinglet-cni speaks it: the CNI_* environment, the
// network configuration on stdin, version negotiation, and the JSON written
// back on stdout (results and errors). Pure: no I/O, so every error path is a
// unit test. Spec: containernetworking/cni SPEC.md, versions 0.3.0 .. 1.1.0.

/** Spec versions this plugin speaks, oldest first. 0.1.0/0.2.0 results had another shape: not supported. */
export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export const LATEST_VERSION = '1.1.0';

/**
 * Error codes. 0-99 are the spec's well-known codes; 100+ are kinglet's own.
 */
export const ErrorCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IoFailure: 5,
  DecodingFailure: 6,
  InvalidNetworkConfig: 7,
  TryAgainLater: 11,
  /** STATUS: the plugin cannot serve ADD now. */
  NotAvailable: 50,
  /** STATUS: not available, and existing pods may have limited connectivity. */
  NotAvailableLimited: 51,
  // kinglet's own
  /** The pod range has no free address left. */
  RangeExhausted: 100,
  /** Creating or removing the veth, addresses, routes or neighbours failed. */
  DatapathFailed: 101,
  /** CHECK found the pod's networking not as ADD left it. */
  CheckFailed: 102,
  /** The agent answered but refused the endpoint (a non-2xx answer). */
  AgentRefused: 103,
  /** Anything not classified above (a bug: please report it with the details). */
  Internal: 999,
} as const;
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

/** An error to report as a CNI error result. `msg` is short; `details` says what to do. */
export class CniError extends Error {
  override name = 'CniError';
  readonly code: number;
  readonly details: string | undefined;
  constructor(code: number, msg: string, details?: string, opts?: { cause?: unknown }) {
    super(msg, opts);
    this.code = code;
    this.details = details;
  }
}

export const COMMANDS = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'] as const;
export type Command = (typeof COMMANDS)[number];

export interface CniArgs {
  podNamespace?: string;
  podName?: string;
  podUid?: string;
  infraContainerId?: string;
  /** Every pair as given (known and unknown keys). */
  raw: Record<string, string>;
}

export interface CniEnv {
  command: Command;
  /** Empty for VERSION, STATUS and GC. */
  containerId: string;
  /** Empty when the runtime gave none (DEL after the netns is gone, VERSION, STATUS, GC). */
  netns: string;
  ifname: string;
  args: CniArgs;
  path: string[];
}

const KNOWN_ARGS = new Set(['K8S_POD_NAMESPACE', 'K8S_POD_NAME', 'K8S_POD_UID', 'K8S_POD_INFRA_CONTAINER_ID', 'IgnoreUnknown']);

/**
 * Parse CNI_ARGS: `KEY=VALUE` pairs separated by `;`, any order. Unknown keys
 * are an error unless IgnoreUnknown is 1/true (the convention of the
 * reference plugins; containerd and kubelet always send IgnoreUnknown=1).
 */
export function parseCniArgs(s: string | undefined): CniArgs {
  const raw: Record<string, string> = {};
  if (s) {
    for (const part of s.split(';')) {
      if (part === '') continue;
      const eq = part.indexOf('=');
      if (eq <= 0) {
        throw new CniError(
          ErrorCode.InvalidEnvironment,
          `CNI_ARGS has a malformed pair ${JSON.stringify(part)}`,
          'CNI_ARGS must be KEY=VALUE pairs separated by ";", e.g. "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;IgnoreUnknown=1"',
        );
      }
      raw[part.slice(0, eq)] = part.slice(eq + 1);
    }
  }
  const ignore = /^(1|true)$/i.test(raw['IgnoreUnknown'] ?? '');
  if (!ignore) {
    const unknown = Object.keys(raw).filter((k) => !KNOWN_ARGS.has(k));
    if (unknown.length > 0) {
      throw new CniError(
        ErrorCode.InvalidEnvironment,
        `CNI_ARGS has unknown key(s) ${unknown.join(', ')}`,
        'kinglet-cni reads K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_UID and K8S_POD_INFRA_CONTAINER_ID; add IgnoreUnknown=1 to CNI_ARGS to pass other keys',
      );
    }
  }
  const out: CniArgs = { raw };
  if (raw['K8S_POD_NAMESPACE']) out.podNamespace = raw['K8S_POD_NAMESPACE'];
  if (raw['K8S_POD_NAME']) out.podName = raw['K8S_POD_NAME'];
  if (raw['K8S_POD_UID']) out.podUid = raw['K8S_POD_UID'];
  if (raw['K8S_POD_INFRA_CONTAINER_ID']) out.infraContainerId = raw['K8S_POD_INFRA_CONTAINER_ID'];
  return out;
}

const CONTAINER_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.\-]*$/;

/** A Linux interface name as the spec allows it: 1-15 bytes, not . or .., no '/', ':' or whitespace. */
export function validIfname(name: string): boolean {
  return (
    name.length > 0 &&
    Buffer.byteLength(name) <= 15 &&
    name !== '.' &&
    name !== '..' &&
    !/[/:\s]/.test(name)
  );
}

function envError(variable: string, problem: string, fix: string): CniError {
  return new CniError(ErrorCode.InvalidEnvironment, `${variable} ${problem}`, fix);
}

/** Read and check the CNI_* variables for the command they name. */
export function parseEnv(env: Record<string, string | undefined>): CniEnv {
  const rawCommand = env['CNI_COMMAND'];
  if (!rawCommand) {
    throw envError(
      'CNI_COMMAND',
      'is not set',
      `kinglet-cni is a CNI plugin run by the container runtime; set CNI_COMMAND to one of ${COMMANDS.join(', ')}`,
    );
  }
  if (!(COMMANDS as readonly string[]).includes(rawCommand)) {
    throw envError('CNI_COMMAND', `is ${JSON.stringify(rawCommand)}, which is not a CNI command`, `use one of ${COMMANDS.join(', ')}`);
  }
  const command = rawCommand as Command;
  const perContainer = command === 'ADD' || command === 'DEL' || command === 'CHECK';
  const containerId = env['CNI_CONTAINERID'] ?? '';
  const netns = env['CNI_NETNS'] ?? '';
  const ifname = env['CNI_IFNAME'] ?? '';
  if (perContainer) {
    if (!containerId) throw envError('CNI_CONTAINERID', `is not set (needed for ${command})`, 'set CNI_CONTAINERID to the container (sandbox) id');
    if (!CONTAINER_ID_RE.test(containerId)) {
      throw envError(
        'CNI_CONTAINERID',
        `is ${JSON.stringify(containerId)}, not a valid container id`,
        'a container id starts with a letter or digit, followed by letters, digits, "_", "." or "-"',
      );
    }
    if (!ifname) throw envError('CNI_IFNAME', `is not set (needed for ${command})`, 'set CNI_IFNAME to the interface name inside the pod, e.g. eth0');
    if (!validIfname(ifname)) {
      throw envError(
        'CNI_IFNAME',
        `is ${JSON.stringify(ifname)}, not a valid interface name`,
        'an interface name has 1-15 characters, is not "." or "..", and has no "/", ":" or whitespace',
      );
    }
    if (command !== 'DEL' && !netns) {
      throw envError('CNI_NETNS', `is not set (needed for ${command})`, "set CNI_NETNS to the path of the pod's network namespace, e.g. /var/run/netns/cni-...");
    }
  }
  return {
    command,
    containerId,
    netns,
    ifname,
    args: parseCniArgs(env['CNI_ARGS']),
    path: (env['CNI_PATH'] ?? '').split(':').filter(Boolean),
  };
}

// ---------------------------------------------------------------------------
// Versions

function versionTuple(v: string): [number, number, number] | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(v);
  if (!m) return undefined;
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

/** -1, 0, 1 as a < b, a = b, a > b; versions must be x.y.z. */
export function compareVersions(a: string, b: string): number {
  const x = versionTuple(a);
  const y = versionTuple(b);
  if (!x || !y) throw new Error(`not a version: ${!x ? a : b}`);
  for (let i = 0; i < 3; i++) {
    if (x[i]! !== y[i]!) return x[i]! < y[i]! ? -1 : 1;
  }
  return 0;
}

export function isSupportedVersion(v: unknown): v is string {
  return typeof v === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** The VERSION result: in the caller's version when we speak it, else in the latest. */
export function versionResult(requested?: unknown): { cniVersion: string; supportedVersions: string[] } {
  return {
    cniVersion: isSupportedVersion(requested) ? requested : LATEST_VERSION,
    supportedVersions: [...SUPPORTED_VERSIONS],
  };
}

/** The lowest config version each command exists in. */
const COMMAND_SINCE: Record<Command, string> = {
  ADD: '0.3.0',
  DEL: '0.3.0',
  VERSION: '0.3.0',
  CHECK: '0.4.0',
  STATUS: '1.1.0',
  GC: '1.1.0',
};

// ---------------------------------------------------------------------------
// Network configuration

export interface Attachment {
  containerId: string;
  ifname: string;
}

export interface PrevResultIp {
  address: string;
  gateway?: string;
  interface?: number;
}

export interface PrevResult {
  interfaces: { name: string; mac?: string; sandbox?: string }[];
  ips: PrevResultIp[];
}

/** The plugin's configuration after checks (see plugin.ts for the conflist schema). */
export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  /** The pod range, when the conflist gives it (else the agent's Node podCIDRs). */
  podCIDR?: string;
  /** Whether to talk to the agent (default true). */
  agent: boolean;
  agentSocket?: string;
  dataDir?: string;
  mtu?: number;
  prevResult?: PrevResult;
  /** GC: attachments that must be kept (cni.dev/valid-attachments). */
  validAttachments?: Attachment[];
}

const PLUGIN_KEYS = new Set([
  'cniVersion',
  'cniVersions',
  'name',
  'type',
  'podCIDR',
  'agent',
  'agentSocket',
  'dataDir',
  'mtu',
  'prevResult',
  'runtimeConfig',
  'args',
  'capabilities',
  'dns',
  'ipam',
  'ipMasq',
  'disableCheck',
  'disableGC',
  'cni.dev/valid-attachments',
  'cni.dev/attachments',
]);

function configError(msg: string, details: string): CniError {
  return new CniError(ErrorCode.InvalidNetworkConfig, msg, details);
}

/**
 * Check a CIDR string (IPv4 only for now). Returns the canonical spelling, or
 * throws a CniError 7 that says what is wrong, e.g. host bits set.
 */
export function checkPodCidr(value: unknown, where = 'podCIDR'): string {
  if (typeof value !== 'string') throw configError(`${where} must be a string like "10.42.0.0/24"`, `got ${JSON.stringify(value)}`);
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(value);
  if (!m) {
    const hint = value.includes(':')
      ? 'IPv6 pod ranges are not supported yet: give the IPv4 range'
      : 'write it as address/prefix, e.g. "10.42.0.0/24"';
    throw configError(`${where} ${JSON.stringify(value)} is not an IPv4 CIDR`, hint);
  }
  const octets = [m[1], m[2], m[3], m[4]].map(Number);
  const prefix = Number(m[5]);
  if (octets.some((o) => o > 255) || m.slice(1, 5).some((o) => o!.length > 1 && o!.startsWith('0'))) {
    throw configError(`${where} ${JSON.stringify(value)} has an invalid address`, 'each part is 0-255 without leading zeros, e.g. "10.42.0.0/24"');
  }
  if (prefix > 30) {
    throw configError(
      `${where} ${JSON.stringify(value)} is too small`,
      'a pod range needs room for the gateway and at least one pod: use a prefix of /30 or shorter (k3s gives each node a /24)',
    );
  }
  if (prefix < 8) {
    throw configError(`${where} ${JSON.stringify(value)} is too large for one node`, 'use a prefix of /8 or longer (k3s gives each node a /24)');
  }
  const ip = ((octets[0]! << 24) | (octets[1]! << 16) | (octets[2]! << 8) | octets[3]!) >>> 0;
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  const net = (ip & mask) >>> 0;
  if (net !== ip) {
    const canon = `${net >>> 24}.${(net >>> 16) & 255}.${(net >>> 8) & 255}.${net & 255}/${prefix}`;
    throw configError(`${where} ${JSON.stringify(value)} has host bits set`, `did you mean "${canon}"?`);
  }
  return value;
}

function parsePrevResult(v: unknown): PrevResult {
  const bad = (why: string) => configError(`prevResult is malformed: ${why}`, 'prevResult must be the result of the previous ADD, as the runtime cached it');
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('not an object');
  const o = v as Record<string, unknown>;
  const interfaces = o['interfaces'] ?? [];
  const ips = o['ips'] ?? [];
  if (!Array.isArray(interfaces)) throw bad('interfaces is not a list');
  if (!Array.isArray(ips)) throw bad('ips is not a list');
  return {
    interfaces: interfaces.map((i: unknown) => {
      if (typeof i !== 'object' || i === null) throw bad('an interface is not an object');
      const r = i as Record<string, unknown>;
      if (typeof r['name'] !== 'string') throw bad('an interface has no name');
      const out: { name: string; mac?: string; sandbox?: string } = { name: r['name'] };
      if (typeof r['mac'] === 'string') out.mac = r['mac'];
      if (typeof r['sandbox'] === 'string') out.sandbox = r['sandbox'];
      return out;
    }),
    ips: ips.map((i: unknown) => {
      if (typeof i !== 'object' || i === null) throw bad('an ip is not an object');
      const r = i as Record<string, unknown>;
      if (typeof r['address'] !== 'string') throw bad('an ip has no address');
      const out: PrevResultIp = { address: r['address'] };
      if (typeof r['gateway'] === 'string') out.gateway = r['gateway'];
      if (typeof r['interface'] === 'number') out.interface = r['interface'];
      return out;
    }),
  };
}

function parseAttachments(v: unknown, key: string): Attachment[] {
  if (!Array.isArray(v)) throw configError(`${key} must be a list of {containerID, ifname}`, `got ${JSON.stringify(v)}`);
  return v.map((a: unknown) => {
    const r = (typeof a === 'object' && a !== null ? a : {}) as Record<string, unknown>;
    if (typeof r['containerID'] !== 'string' || typeof r['ifname'] !== 'string') {
      throw configError(`${key} has an entry without containerID and ifname`, `got ${JSON.stringify(a)}`);
    }
    return { containerId: r['containerID'], ifname: r['ifname'] };
  });
}

/**
 * Parse the network configuration from stdin for `command`. Errors:
 * 6 not JSON / not an object, 1 a version we do not speak (or too old for the
 * command), 7 a missing or wrong field, 2 a field we do not support.
 */
export function parseNetConf(stdin: string, command: Command): NetConf {
  if (stdin.trim() === '') {
    throw new CniError(
      ErrorCode.DecodingFailure,
      'no network configuration on stdin',
      'the runtime passes the plugin\'s configuration (JSON) on stdin; see /etc/cni/net.d/*.conflist',
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdin);
  } catch (e) {
    throw new CniError(
      ErrorCode.DecodingFailure,
      'the network configuration on stdin is not valid JSON',
      `${(e as Error).message}; fix the conflist in the runtime's CNI conf_dir`,
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new CniError(ErrorCode.DecodingFailure, 'the network configuration on stdin is not a JSON object', `got ${JSON.stringify(parsed).slice(0, 80)}`);
  }
  const o = parsed as Record<string, unknown>;

  const v = o['cniVersion'];
  if (typeof v !== 'string' || v === '') {
    throw configError('cniVersion is missing from the network configuration', `set "cniVersion" to one of ${SUPPORTED_VERSIONS.join(', ')}`);
  }
  if (!isSupportedVersion(v)) {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      `incompatible CNI version ${JSON.stringify(v)}`,
      `kinglet-cni supports ${SUPPORTED_VERSIONS.join(', ')}: set "cniVersion" in the conflist to one of them (1.0.0 for containerd 1.6/1.7)`,
    );
  }
  const since = COMMAND_SINCE[command];
  if (compareVersions(v, since) < 0) {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      `${command} needs CNI version ${since} or later, the configuration says ${v}`,
      `set "cniVersion" to ${since} or later`,
    );
  }
  if (typeof o['name'] !== 'string' || o['name'] === '') {
    throw configError('name is missing from the network configuration', 'give the network a "name", e.g. "kinglet"');
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9_.\-]*$/.test(o['name'])) {
    throw configError(`network name ${JSON.stringify(o['name'])} is not valid`, 'a network name has letters, digits, "_", "." or "-" and starts with a letter or digit');
  }
  if (typeof o['type'] !== 'string' || o['type'] === '') {
    throw configError('type is missing from the plugin configuration', 'set "type": "kinglet-cni"');
  }
  const conf: NetConf = { cniVersion: v, name: o['name'], type: o['type'], agent: true };

  // DEL must clean up even when the conflist went bad after the ADD (the
  // runtime would otherwise retry it forever): it needs only the name, the
  // data dir and the agent settings, so the rest is not held against it.
  const lenient = command === 'DEL';
  const shaped = <T>(f: () => T): T | undefined => {
    try {
      return f();
    } catch (e) {
      if (lenient && e instanceof CniError) return undefined;
      throw e;
    }
  };
  shaped(() => {
    if (o['ipam'] !== undefined && !(typeof o['ipam'] === 'object' && o['ipam'] !== null && Object.keys(o['ipam']).length === 0)) {
      throw new CniError(
        ErrorCode.UnsupportedField,
        `unsupported field "ipam": ${JSON.stringify(o['ipam'])}`,
        'kinglet-cni allocates addresses itself from the node podCIDR: remove "ipam" and set "podCIDR" (or let the agent give the Node\'s podCIDRs)',
      );
    }
    if (o['ipMasq'] === true) {
      throw new CniError(
        ErrorCode.UnsupportedField,
        'unsupported field "ipMasq": true',
        'masquerade is done by the kinglet agent in BPF: remove "ipMasq" from the conflist',
      );
    }
    for (const k of Object.keys(o)) {
      if (!PLUGIN_KEYS.has(k)) {
        throw new CniError(
          ErrorCode.UnsupportedField,
          `unsupported field ${JSON.stringify(k)}: ${JSON.stringify(o[k]).slice(0, 80)}`,
          'kinglet-cni takes podCIDR, agent, agentSocket, dataDir and mtu: remove the field or fix its spelling',
        );
      }
    }
  });
  if (o['podCIDR'] !== undefined) {
    const c = shaped(() => checkPodCidr(o['podCIDR']));
    if (c !== undefined) conf.podCIDR = c;
  }
  if (o['agent'] !== undefined) {
    if (typeof o['agent'] !== 'boolean') throw configError('"agent" must be true or false', `got ${JSON.stringify(o['agent'])}`);
    conf.agent = o['agent'];
  }
  if (o['agentSocket'] !== undefined) {
    if (typeof o['agentSocket'] !== 'string' || !o['agentSocket'].startsWith('/')) {
      throw configError('"agentSocket" must be an absolute path', `got ${JSON.stringify(o['agentSocket'])}; the default is /run/kinglet/agent.sock`);
    }
    conf.agentSocket = o['agentSocket'];
  }
  if (o['dataDir'] !== undefined) {
    if (typeof o['dataDir'] !== 'string' || !o['dataDir'].startsWith('/')) {
      throw configError('"dataDir" must be an absolute path', `got ${JSON.stringify(o['dataDir'])}; the default is /var/lib/kinglet/cni`);
    }
    conf.dataDir = o['dataDir'];
  }
  if (o['mtu'] !== undefined) {
    const m = o['mtu'];
    const ok = shaped(() => {
      if (typeof m !== 'number' || !Number.isInteger(m) || m < 576 || m > 65535) {
        throw configError('"mtu" must be an integer from 576 to 65535', `got ${JSON.stringify(m)}; leave it out to use the MTU of the node's uplink`);
      }
      return m;
    });
    if (ok !== undefined) conf.mtu = ok;
  }
  if (!conf.agent && conf.podCIDR === undefined && (command === 'ADD' || command === 'STATUS')) {
    throw configError('"podCIDR" is required when "agent" is false', 'without the agent the plugin cannot read the Node\'s podCIDRs: set "podCIDR" in the conflist');
  }
  if (o['prevResult'] !== undefined) {
    const pr = shaped(() => parsePrevResult(o['prevResult']));
    if (pr) conf.prevResult = pr;
  }
  if (command === 'GC') {
    const key = o['cni.dev/valid-attachments'] !== undefined ? 'cni.dev/valid-attachments' : 'cni.dev/attachments';
    conf.validAttachments = o[key] === undefined ? [] : parseAttachments(o[key], key);
  }
  return conf;
}

// ---------------------------------------------------------------------------
// Results

export interface ResultInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
}

export interface ResultIp {
  /** CIDR, e.g. 10.42.0.5/32. */
  address: string;
  gateway?: string;
  interface?: number;
}

export interface ResultRoute {
  dst: string;
  gw?: string;
}

export interface AddResult {
  interfaces: ResultInterface[];
  ips: ResultIp[];
  routes: ResultRoute[];
  dns: Record<string, never>;
}

/** The ADD result in the shape of `version` (0.3.x/0.4.0 carry ips[].version; 1.1.0 has interface mtu). */
export function formatResult(version: string, r: AddResult): Record<string, unknown> {
  const legacy = compareVersions(version, '1.0.0') < 0;
  const withMtu = compareVersions(version, '1.1.0') >= 0;
  return {
    cniVersion: version,
    interfaces: r.interfaces.map((i) => {
      const o: Record<string, unknown> = { name: i.name };
      if (i.mac) o['mac'] = i.mac;
      if (withMtu && i.mtu) o['mtu'] = i.mtu;
      if (i.sandbox) o['sandbox'] = i.sandbox;
      return o;
    }),
    ips: r.ips.map((ip) => {
      const o: Record<string, unknown> = {};
      if (legacy) o['version'] = '4';
      o['address'] = ip.address;
      if (ip.gateway) o['gateway'] = ip.gateway;
      if (ip.interface !== undefined) o['interface'] = ip.interface;
      return o;
    }),
    routes: r.routes.map((x) => (x.gw ? { dst: x.dst, gw: x.gw } : { dst: x.dst })),
    dns: r.dns,
  };
}

/** The error result. Version: the configuration's when known, else the latest. */
export function formatError(err: CniError, version?: string): Record<string, unknown> {
  const o: Record<string, unknown> = {
    cniVersion: isSupportedVersion(version) ? version : LATEST_VERSION,
    code: err.code,
    msg: err.message,
  };
  if (err.details) o['details'] = err.details;
  return o;
}

/** Any thrown value as a CniError (unexpected ones become 999 with the message). */
export function toCniError(e: unknown): CniError {
  if (e instanceof CniError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new CniError(ErrorCode.Internal, `internal error: ${msg}`, e instanceof Error ? e.stack?.split('\n').slice(0, 4).join(' | ') : undefined);
}

/** Best effort: the cniVersion of a stdin text, for error replies before it is fully parsed. */
export function sniffVersion(stdin: string): string | undefined {
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
    return typeof v === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}
