// A thin binding to the system's libbpf (libbpf.so.1, else libbpf.so.0)
// through koffi. Every libbpf function the agent, the loader and the kernel
// probe use is declared once, on first use, so the hot path (map updates) is a
// plain FFI call plus one comparison. Failures become BpfError, carrying the
// errno name, the operation, the object, and libbpf's own log lines (the
// verifier log among them) captured through libbpf_set_print.
import koffi, { type LibraryHandle } from 'koffi';
import { closeSync, openSync } from 'node:fs';
import { getSystemErrorName } from 'node:util';
import * as nodeUtil from 'node:util';

// ---------------------------------------------------------------------------
// Kernel ABI constants (include/uapi/linux/bpf.h). Stable numbers.

export const MapType = {
  HASH: 1,
  ARRAY: 2,
  PROG_ARRAY: 3,
  PERF_EVENT_ARRAY: 4,
  PERCPU_HASH: 5,
  PERCPU_ARRAY: 6,
  LRU_HASH: 9,
  LRU_PERCPU_HASH: 10,
  LPM_TRIE: 11,
  ARRAY_OF_MAPS: 12,
  HASH_OF_MAPS: 13,
  SOCKHASH: 18,
  SK_STORAGE: 24,
  RINGBUF: 27,
} as const;

export const ProgType = {
  SOCKET_FILTER: 1,
  SCHED_CLS: 3,
  SCHED_ACT: 4,
  XDP: 6,
  CGROUP_SKB: 8,
  CGROUP_SOCK: 9,
  SOCK_OPS: 13,
  CGROUP_SOCK_ADDR: 18,
} as const;

export const AttachType = {
  CGROUP_INET_INGRESS: 0,
  CGROUP_INET_EGRESS: 1,
  CGROUP_INET_SOCK_CREATE: 2,
  CGROUP_SOCK_OPS: 3,
  CGROUP_INET4_BIND: 8,
  CGROUP_INET6_BIND: 9,
  CGROUP_INET4_CONNECT: 10,
  CGROUP_INET6_CONNECT: 11,
  CGROUP_INET4_POST_BIND: 12,
  CGROUP_INET6_POST_BIND: 13,
  CGROUP_UDP4_SENDMSG: 14,
  CGROUP_UDP6_SENDMSG: 15,
  CGROUP_UDP4_RECVMSG: 19,
  CGROUP_UDP6_RECVMSG: 20,
  CGROUP_INET4_GETPEERNAME: 29,
  CGROUP_INET6_GETPEERNAME: 30,
  CGROUP_INET4_GETSOCKNAME: 31,
  CGROUP_INET6_GETSOCKNAME: 32,
  CGROUP_INET_SOCK_RELEASE: 34,
  XDP: 37,
} as const;

/** Helper function ids (the FN() list order in linux/bpf.h). */
export const Helper = {
  map_lookup_elem: 1,
  ktime_get_ns: 5,
  get_prandom_u32: 7,
  skb_set_tunnel_key: 21,
  redirect: 23,
  perf_event_output: 25,
  csum_diff: 28,
  get_socket_cookie: 46,
  skb_adjust_room: 50,
  redirect_map: 51,
  fib_lookup: 69,
  sk_lookup_tcp: 84,
  skc_lookup_tcp: 99,
  jiffies64: 118,
  get_netns_cookie: 122,
  ringbuf_output: 130,
  redirect_neigh: 152,
  redirect_peer: 155,
} as const;

export const LinkType = { UNSPEC: 0, RAW_TRACEPOINT: 1, TRACING: 2, CGROUP: 3, ITER: 4, NETNS: 5, XDP: 6 } as const;

/** Map update flags. */
export const BPF_ANY = 0;
export const BPF_NOEXIST = 1;
export const BPF_EXIST = 2;
/** Map creation flags. */
export const BPF_F_NO_PREALLOC = 1;
/** bpf_prog_attach flags. */
export const BPF_F_ALLOW_OVERRIDE = 1;
export const BPF_F_ALLOW_MULTI = 2;
export const BPF_F_REPLACE = 4;

const mapTypeNames = new Map<number, string>(Object.entries(MapType).map(([k, v]) => [v, k.toLowerCase()]));
const attachTypeNames = new Map<number, string>(Object.entries(AttachType).map(([k, v]) => [v, k.toLowerCase()]));
const progTypeNames = new Map<number, string>(Object.entries(ProgType).map(([k, v]) => [v, k.toLowerCase()]));

export const mapTypeName = (t: number): string => mapTypeNames.get(t) ?? `map_type_${t}`;
export const attachTypeName = (t: number): string => attachTypeNames.get(t) ?? `attach_type_${t}`;
export const progTypeName = (t: number): string => progTypeNames.get(t) ?? `prog_type_${t}`;

// ---------------------------------------------------------------------------
// Errors

// Kernel-internal codes that leak to user space through bpf() (include/linux/errno.h).
const kernelErrnos: Record<number, [string, string]> = {
  512: ['ERESTARTSYS', 'restart syscall'],
  524: ['ENOTSUPP', 'operation not supported by this kernel'],
};
let koffiErrnos: Map<number, string> | undefined;

function errnoName(errno: number): string {
  const e = Math.abs(errno);
  try {
    const name = getSystemErrorName(-e);
    if (!name.startsWith('Unknown')) return name;
  } catch {
    // fall through
  }
  if (!koffiErrnos) {
    koffiErrnos = new Map();
    for (const [k, v] of Object.entries(koffi.os.errno)) if (!koffiErrnos.has(v)) koffiErrnos.set(v, k);
  }
  return koffiErrnos.get(e) ?? kernelErrnos[e]?.[0] ?? `E${e}`;
}

function errnoMessage(errno: number): string {
  const e = Math.abs(errno);
  const fn = (nodeUtil as { getSystemErrorMessage?: (e: number) => string }).getSystemErrorMessage;
  try {
    const m = fn?.(-e);
    if (m && !m.startsWith('Unknown')) return m;
  } catch {
    // fall through
  }
  return kernelErrnos[e]?.[1] ?? `errno ${e}`;
}

/** A libbpf or bpf() failure: `code` is the errno name (EPERM, ENOENT, ...). */
export class BpfError extends Error {
  override name = 'BpfError';
  /** Positive errno. */
  readonly errno: number;
  /** Errno name, like EPERM. */
  readonly code: string;
  /** The libbpf function (or higher-level operation) that failed. */
  readonly op: string;
  /** What it was applied to: a map name, a path, an fd. */
  readonly object: string | undefined;
  /** libbpf log lines printed during the operation (verifier log included). */
  readonly log: string;

  constructor(op: string, errno: number, object?: string, options?: { cause?: unknown; log?: string; detail?: string }) {
    const e = Math.abs(errno);
    const code = errnoName(e);
    const log = options?.log ?? '';
    let message = `${op}${object !== undefined ? ` ${object}` : ''}: ${code} (${errnoMessage(e)})`;
    if (options?.detail) message += `: ${options.detail}`;
    if (log) message += `\n${tail(log, 60)}`;
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.errno = e;
    this.code = code;
    this.op = op;
    this.object = object;
    this.log = log;
  }
}

/** libbpf could not be found or lacks a function this code needs. */
export class LibbpfUnavailableError extends Error {
  override name = 'LibbpfUnavailableError';
}

function tail(text: string, lines: number): string {
  const all = text.replace(/\n+$/, '').split('\n');
  return (all.length > lines ? ['...', ...all.slice(-lines)] : all).join('\n');
}

// ---------------------------------------------------------------------------
// The library and its functions.

type Fn = (...args: any[]) => any;

interface Fns {
  version: string;
  soname: string;
  // maps by fd
  map_create: Fn;
  map_update_elem: Fn;
  map_lookup_elem: Fn;
  map_lookup_elem_flags: Fn;
  map_delete_elem: Fn;
  map_get_next_key: Fn;
  map_update_batch: Fn | undefined;
  map_delete_batch: Fn | undefined;
  map_lookup_batch: Fn | undefined;
  obj_pin: Fn;
  obj_get: Fn;
  obj_get_info_by_fd: Fn;
  prog_get_fd_by_id: Fn;
  map_get_fd_by_id: Fn;
  link_get_fd_by_id: Fn | undefined;
  prog_query: Fn;
  prog_attach: Fn;
  prog_detach2: Fn;
  prog_load: Fn | undefined;
  link_create: Fn | undefined;
  link_update: Fn | undefined;
  link_detach: Fn | undefined;
  // tc (clsact) attachment through netlink, libbpf >= 0.6
  tc_hook_create: Fn | undefined;
  tc_hook_destroy: Fn | undefined;
  tc_attach: Fn | undefined;
  tc_detach: Fn | undefined;
  tc_query: Fn | undefined;
  // objects
  object__open_file: Fn;
  object__load: Fn;
  object__close: Fn;
  object__name: Fn;
  object__next_map: Fn;
  object__find_map_by_name: Fn;
  object__next_program: Fn;
  object__find_program_by_name: Fn;
  map__name: Fn;
  map__type: Fn;
  map__key_size: Fn;
  map__value_size: Fn;
  map__max_entries: Fn;
  map__map_flags: Fn;
  map__set_max_entries: Fn;
  map__is_internal: Fn;
  map__reuse_fd: Fn;
  map__set_pin_path: Fn;
  map__pin: Fn;
  map__unpin: Fn;
  map__fd: Fn;
  program__name: Fn;
  program__section_name: Fn;
  program__set_autoload: Fn;
  program__autoload: Fn;
  program__fd: Fn;
  program__type: Fn;
  program__expected_attach_type: Fn;
  program__attach_cgroup: Fn;
  link__open: Fn;
  link__fd: Fn;
  link__pin: Fn;
  link__unpin: Fn;
  link__update_program: Fn;
  link__disconnect: Fn;
  link__destroy: Fn;
  // probes
  probe_bpf_map_type: Fn | undefined;
  probe_bpf_prog_type: Fn | undefined;
  probe_bpf_helper: Fn | undefined;
  num_possible_cpus: Fn;
  // libc
  close: Fn;
}

let fns: Fns | undefined;
let loadError: Error | undefined;

// Opaque libbpf types, named so the prototypes below can use them.
for (const t of ['bpf_object', 'bpf_map', 'bpf_program', 'bpf_link']) koffi.opaque(t);

const ProgLoadOpts = koffi.struct('kinglet_bpf_prog_load_opts', {
  sz: 'size_t',
  attempts: 'int',
  expected_attach_type: 'uint32',
  prog_btf_fd: 'uint32',
  prog_flags: 'uint32',
  prog_ifindex: 'uint32',
  kern_version: 'uint32',
  attach_btf_id: 'uint32',
  attach_prog_fd: 'uint32',
  attach_btf_obj_fd: 'uint32',
  fd_array: 'void *',
  func_info: 'void *',
  func_info_cnt: 'uint32',
  func_info_rec_size: 'uint32',
  line_info: 'void *',
  line_info_cnt: 'uint32',
  line_info_rec_size: 'uint32',
  log_level: 'uint32',
  log_size: 'uint32',
  log_buf: 'void *',
});
const progLoadOptsSize = koffi.sizeof(ProgLoadOpts);

const PrintFn = koffi.proto('int kinglet_libbpf_print_fn(int level, const char *fmt, void *args)');

function openLibrary(): { lib: LibraryHandle; soname: string } {
  const candidates = [process.env.KINGLET_LIBBPF, 'libbpf.so.1', 'libbpf.so.0'].filter((x): x is string => !!x);
  const errors: string[] = [];
  for (const soname of candidates) {
    try {
      return { lib: koffi.load(soname), soname };
    } catch (e) {
      errors.push(`${soname}: ${(e as Error).message}`);
    }
  }
  throw new LibbpfUnavailableError(
    `libbpf not found (${errors.join('; ')}); install it: Debian/Ubuntu "apt-get install libbpf1" (or libbpf0), ` +
      `RHEL/Fedora "dnf install libbpf", Alpine "apk add libbpf"`,
  );
}

function bind(): Fns {
  const { lib, soname } = openLibrary();
  const libc = koffi.load('libc.so.6');
  const f = (decl: string): Fn => lib.func(decl);
  const opt = (decl: string): Fn | undefined => {
    try {
      return lib.func(decl);
    } catch {
      return undefined;
    }
  };
  let version = soname;
  const major = opt('uint32 libbpf_major_version(void)');
  const minor = opt('uint32 libbpf_minor_version(void)');
  if (major && minor) version = `${major()}.${minor()}`;
  // libbpf 0.x: ask for the 1.0 error conventions (return -errno, NULL on error).
  if (soname.endsWith('.so.0')) opt('int libbpf_set_strict_mode(int mode)')?.(-1);

  const b: Fns = {
    version,
    soname,
    map_create: f('int bpf_map_create(int type, const char *name, uint32 key_size, uint32 value_size, uint32 max_entries, const void *opts)'),
    map_update_elem: f('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64 flags)'),
    map_lookup_elem: f('int bpf_map_lookup_elem(int fd, const void *key, void *value)'),
    map_lookup_elem_flags: f('int bpf_map_lookup_elem_flags(int fd, const void *key, void *value, uint64 flags)'),
    map_delete_elem: f('int bpf_map_delete_elem(int fd, const void *key)'),
    map_get_next_key: f('int bpf_map_get_next_key(int fd, const void *key, void *next_key)'),
    map_update_batch: opt('int bpf_map_update_batch(int fd, const void *keys, const void *values, void *count, const void *opts)'),
    map_delete_batch: opt('int bpf_map_delete_batch(int fd, const void *keys, void *count, const void *opts)'),
    map_lookup_batch: opt('int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, void *count, const void *opts)'),
    obj_pin: f('int bpf_obj_pin(int fd, const char *path)'),
    obj_get: f('int bpf_obj_get(const char *path)'),
    obj_get_info_by_fd: f('int bpf_obj_get_info_by_fd(int fd, void *info, void *info_len)'),
    prog_get_fd_by_id: f('int bpf_prog_get_fd_by_id(uint32 id)'),
    map_get_fd_by_id: f('int bpf_map_get_fd_by_id(uint32 id)'),
    link_get_fd_by_id: opt('int bpf_link_get_fd_by_id(uint32 id)'),
    prog_query: f('int bpf_prog_query(int target_fd, int type, uint32 query_flags, void *attach_flags, void *prog_ids, void *prog_cnt)'),
    prog_attach: f('int bpf_prog_attach(int prog_fd, int target_fd, int type, uint32 flags)'),
    prog_detach2: f('int bpf_prog_detach2(int prog_fd, int target_fd, int type)'),
    prog_load: opt('int bpf_prog_load(int type, const char *name, const char *license, const void *insns, size_t insn_cnt, const kinglet_bpf_prog_load_opts *opts)'),
    link_create: opt('int bpf_link_create(int prog_fd, int target_fd, int type, const void *opts)'),
    link_update: opt('int bpf_link_update(int link_fd, int new_prog_fd, const void *opts)'),
    link_detach: opt('int bpf_link_detach(int link_fd)'),
    tc_hook_create: opt('int bpf_tc_hook_create(void *hook)'),
    tc_hook_destroy: opt('int bpf_tc_hook_destroy(void *hook)'),
    tc_attach: opt('int bpf_tc_attach(const void *hook, void *opts)'),
    tc_detach: opt('int bpf_tc_detach(const void *hook, const void *opts)'),
    tc_query: opt('int bpf_tc_query(const void *hook, void *opts)'),

    object__open_file: f('bpf_object *bpf_object__open_file(const char *path, const void *opts)'),
    object__load: f('int bpf_object__load(bpf_object *obj)'),
    object__close: f('void bpf_object__close(bpf_object *obj)'),
    object__name: f('const char *bpf_object__name(const bpf_object *obj)'),
    object__next_map: f('bpf_map *bpf_object__next_map(const bpf_object *obj, const bpf_map *map)'),
    object__find_map_by_name: f('bpf_map *bpf_object__find_map_by_name(const bpf_object *obj, const char *name)'),
    object__next_program: f('bpf_program *bpf_object__next_program(const bpf_object *obj, bpf_program *prog)'),
    object__find_program_by_name: f('bpf_program *bpf_object__find_program_by_name(const bpf_object *obj, const char *name)'),
    map__name: f('const char *bpf_map__name(const bpf_map *map)'),
    map__type: f('int bpf_map__type(const bpf_map *map)'),
    map__key_size: f('uint32 bpf_map__key_size(const bpf_map *map)'),
    map__value_size: f('uint32 bpf_map__value_size(const bpf_map *map)'),
    map__max_entries: f('uint32 bpf_map__max_entries(const bpf_map *map)'),
    map__map_flags: f('uint32 bpf_map__map_flags(const bpf_map *map)'),
    map__set_max_entries: f('int bpf_map__set_max_entries(bpf_map *map, uint32 max_entries)'),
    map__is_internal: f('bool bpf_map__is_internal(const bpf_map *map)'),
    map__reuse_fd: f('int bpf_map__reuse_fd(bpf_map *map, int fd)'),
    map__set_pin_path: f('int bpf_map__set_pin_path(bpf_map *map, const char *path)'),
    map__pin: f('int bpf_map__pin(bpf_map *map, const char *path)'),
    map__unpin: f('int bpf_map__unpin(bpf_map *map, const char *path)'),
    map__fd: f('int bpf_map__fd(const bpf_map *map)'),
    program__name: f('const char *bpf_program__name(const bpf_program *prog)'),
    program__section_name: f('const char *bpf_program__section_name(const bpf_program *prog)'),
    program__set_autoload: f('int bpf_program__set_autoload(bpf_program *prog, bool autoload)'),
    program__autoload: f('bool bpf_program__autoload(const bpf_program *prog)'),
    program__fd: f('int bpf_program__fd(const bpf_program *prog)'),
    program__type: f('int bpf_program__type(const bpf_program *prog)'),
    program__expected_attach_type: f('int bpf_program__expected_attach_type(const bpf_program *prog)'),
    program__attach_cgroup: f('bpf_link *bpf_program__attach_cgroup(const bpf_program *prog, int cgroup_fd)'),
    link__open: f('bpf_link *bpf_link__open(const char *path)'),
    link__fd: f('int bpf_link__fd(const bpf_link *link)'),
    link__pin: f('int bpf_link__pin(bpf_link *link, const char *path)'),
    link__unpin: f('int bpf_link__unpin(bpf_link *link)'),
    link__update_program: f('int bpf_link__update_program(bpf_link *link, bpf_program *prog)'),
    link__disconnect: f('void bpf_link__disconnect(bpf_link *link)'),
    link__destroy: f('int bpf_link__destroy(bpf_link *link)'),

    probe_bpf_map_type: opt('int libbpf_probe_bpf_map_type(int map_type, const void *opts)'),
    probe_bpf_prog_type: opt('int libbpf_probe_bpf_prog_type(int prog_type, const void *opts)'),
    probe_bpf_helper: opt('int libbpf_probe_bpf_helper(int prog_type, int helper_id, const void *opts)'),
    num_possible_cpus: f('int libbpf_num_possible_cpus(void)'),

    close: libc.func('int close(int fd)'),
  };

  // libbpf's log goes through one registered callback for the process.
  const vsnprintf = libc.func('int vsnprintf(void *buf, size_t size, const char *fmt, void *ap)');
  const setPrint = lib.func('void *libbpf_set_print(kinglet_libbpf_print_fn *fn)');
  const scratch = Buffer.alloc(1 << 20);
  const cb = koffi.register((level: number, fmt: string, ap: unknown): number => {
    try {
      if (level > printLevel && !logHandler) return 0;
      // vsnprintf consumes the va_list: one call only.
      const n = vsnprintf(scratch, scratch.length, fmt, ap) as number;
      if (n <= 0) return 0;
      const text = scratch.toString('utf8', 0, Math.min(n, scratch.length - 1));
      if (level <= printLevel) record(text);
      logHandler?.(level === 0 ? 'warn' : level === 1 ? 'info' : 'debug', text.replace(/\n$/, ''));
    } catch {
      // Never throw into C.
    }
    return 0;
  }, koffi.pointer(PrintFn));
  setPrint(cb);
  return b;
}

/** The bound libbpf; throws LibbpfUnavailableError when it cannot be loaded. */
function L(): Fns {
  if (fns) return fns;
  if (loadError) throw loadError;
  try {
    fns = bind();
    return fns;
  } catch (e) {
    loadError = e instanceof LibbpfUnavailableError ? e : new LibbpfUnavailableError(`loading libbpf: ${(e as Error).message}`, { cause: e });
    throw loadError;
  }
}

/** Which libbpf was loaded: { soname, version }. Throws when there is none. */
export function libbpfVersion(): { soname: string; version: string } {
  const l = L();
  return { soname: l.soname, version: l.version };
}

function need(fn: Fn | undefined, name: string): Fn {
  if (!fn) throw new LibbpfUnavailableError(`${name}() is not in this libbpf (${L().soname} ${L().version}); libbpf >= 1.0 has it`);
  return fn;
}

// ---------------------------------------------------------------------------
// libbpf's log

export type LibbpfLogLevel = 'warn' | 'info' | 'debug';
let printLevel = 1; // record WARN and INFO; DEBUG only when asked
let logHandler: ((level: LibbpfLogLevel, line: string) => void) | undefined;
const logRing: string[] = [];
let logSeq = 0; // number of records ever made
const LOG_KEEP = 4000;

function record(text: string): void {
  logRing.push(text);
  logSeq++;
  if (logRing.length > LOG_KEEP) logRing.splice(0, logRing.length - LOG_KEEP);
}

function logSince(mark: number): string {
  const n = Math.min(logSeq - mark, logRing.length);
  return n > 0 ? logRing.slice(-n).join('') : '';
}

/**
 * Forward libbpf's log lines (for the agent's JSON log), and choose which
 * levels are kept for error messages (default: warn + info).
 */
export function setLibbpfLog(opts: { handler?: (level: LibbpfLogLevel, line: string) => void; level?: LibbpfLogLevel }): void {
  if ('handler' in opts) logHandler = opts.handler;
  if (opts.level) printLevel = opts.level === 'warn' ? 0 : opts.level === 'info' ? 1 : 2;
}

/** Run fn; a BpfError it throws gets the libbpf log lines printed meanwhile. */
function withLog<T>(op: string, object: string | undefined, fn: () => T): T {
  const mark = logSeq;
  try {
    return fn();
  } catch (e) {
    if (e instanceof BpfError && !e.log) {
      const log = logSince(mark);
      if (log) throw new BpfError(e.op, e.errno, e.object ?? object, { log, cause: e.cause });
    }
    throw e;
  }
}

function fail(rc: number, op: string, object?: string | number): never {
  throw new BpfError(op, -rc, object === undefined ? undefined : String(object));
}

function check(rc: number, op: string, object?: string | number): number {
  if (rc < 0) fail(rc, op, object);
  return rc;
}

function ptrErrno(): number {
  const e = koffi.errno();
  return e > 0 ? e : 22; // EINVAL when libbpf left errno unset
}

// ---------------------------------------------------------------------------
// Plain fds

/** close(2). Errors other than EBADF are ignored; EBADF throws. */
export function closeFd(fd: number): void {
  if (L().close(fd) < 0) {
    const e = koffi.errno();
    if (e === 9) throw new BpfError('close', e, `fd ${fd}`);
  }
}

export function objPin(fd: number, path: string): void {
  check(L().obj_pin(fd, path), 'bpf_obj_pin', path);
}

/** Open a pinned object (map, program, link) by path; returns a new fd. */
export function objGet(path: string): number {
  return check(L().obj_get(path), 'bpf_obj_get', path);
}

export function progFdById(id: number): number {
  return check(L().prog_get_fd_by_id(id), 'bpf_prog_get_fd_by_id', id);
}

export function mapFdById(id: number): number {
  return check(L().map_get_fd_by_id(id), 'bpf_map_get_fd_by_id', id);
}

export function linkFdById(id: number): number {
  return check(need(L().link_get_fd_by_id, 'bpf_link_get_fd_by_id')(id), 'bpf_link_get_fd_by_id', id);
}

// ---------------------------------------------------------------------------
// Object info

function cstr(buf: Buffer, start: number, len: number): string {
  const end = buf.indexOf(0, start);
  return buf.toString('utf8', start, end < 0 || end > start + len ? start + len : end);
}

function infoByFd(fd: number, size: number, op: string): Buffer {
  const buf = Buffer.alloc(size);
  const len = new Uint32Array([size]);
  check(L().obj_get_info_by_fd(fd, buf, len), op, `fd ${fd}`);
  return buf;
}

export interface MapInfo {
  type: number;
  typeName: string;
  id: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  name: string;
}

export function mapInfo(fd: number): MapInfo {
  const b = infoByFd(fd, 96, 'bpf_obj_get_info_by_fd(map)');
  const type = b.readUInt32LE(0);
  return {
    type,
    typeName: mapTypeName(type),
    id: b.readUInt32LE(4),
    keySize: b.readUInt32LE(8),
    valueSize: b.readUInt32LE(12),
    maxEntries: b.readUInt32LE(16),
    flags: b.readUInt32LE(20),
    name: cstr(b, 24, 16),
  };
}

export interface ProgInfo {
  type: number;
  typeName: string;
  id: number;
  tag: string;
  name: string;
}

export function progInfo(fd: number): ProgInfo {
  const b = infoByFd(fd, 96, 'bpf_obj_get_info_by_fd(prog)');
  const type = b.readUInt32LE(0);
  return { type, typeName: progTypeName(type), id: b.readUInt32LE(4), tag: b.toString('hex', 8, 16), name: cstr(b, 64, 16) };
}

export interface LinkInfo {
  type: number;
  id: number;
  progId: number;
  /** For cgroup links: the cgroup's id (its inode number in cgroup2), 0 once the cgroup is gone. */
  cgroupId?: bigint;
  attachType?: number;
}

export function linkInfo(fd: number): LinkInfo {
  const b = infoByFd(fd, 64, 'bpf_obj_get_info_by_fd(link)');
  const info: LinkInfo = { type: b.readUInt32LE(0), id: b.readUInt32LE(4), progId: b.readUInt32LE(8) };
  if (info.type === LinkType.CGROUP) {
    info.cgroupId = b.readBigUInt64LE(16);
    info.attachType = b.readUInt32LE(24);
  }
  return info;
}

// ---------------------------------------------------------------------------
// Maps by fd: the hot path.

export interface MapCreateOptions {
  flags?: number;
  innerMapFd?: number;
  mapExtra?: bigint;
  numaNode?: number;
}

export function mapCreate(type: number, name: string | null, keySize: number, valueSize: number, maxEntries: number, opts: MapCreateOptions = {}): number {
  let o: Buffer | null = null;
  if (opts.flags || opts.innerMapFd || opts.mapExtra || opts.numaNode) {
    o = Buffer.alloc(48);
    o.writeBigUInt64LE(48n, 0);
    o.writeUInt32LE(opts.innerMapFd ?? 0, 24);
    o.writeUInt32LE(opts.flags ?? 0, 28);
    o.writeBigUInt64LE(opts.mapExtra ?? 0n, 32);
    o.writeUInt32LE(opts.numaNode ?? 0, 40);
  }
  return withLog('bpf_map_create', name ?? mapTypeName(type), () =>
    check(L().map_create(type, name, keySize, valueSize, maxEntries, o), 'bpf_map_create', name ?? mapTypeName(type)),
  );
}

export function mapUpdate(fd: number, key: Uint8Array, value: Uint8Array, flags = 0): void {
  const rc = (fns ?? L()).map_update_elem(fd, key, value, flags);
  if (rc < 0) fail(rc, 'bpf_map_update_elem', `fd ${fd}`);
}

/** Look a key up into `value` (sized for the map's value); ENOENT throws. */
export function mapLookup(fd: number, key: Uint8Array, value: Uint8Array): void {
  const rc = (fns ?? L()).map_lookup_elem(fd, key, value);
  if (rc < 0) fail(rc, 'bpf_map_lookup_elem', `fd ${fd}`);
}

/** Like mapLookup, but a missing key returns false instead of throwing. */
export function mapTryLookup(fd: number, key: Uint8Array, value: Uint8Array): boolean {
  const rc = (fns ?? L()).map_lookup_elem(fd, key, value);
  if (rc === -2) return false;
  if (rc < 0) fail(rc, 'bpf_map_lookup_elem', `fd ${fd}`);
  return true;
}

/** Delete a key; ENOENT throws. */
export function mapDelete(fd: number, key: Uint8Array): void {
  const rc = (fns ?? L()).map_delete_elem(fd, key);
  if (rc < 0) fail(rc, 'bpf_map_delete_elem', `fd ${fd}`);
}

/** Like mapDelete, but returns false when the key was not there. */
export function mapTryDelete(fd: number, key: Uint8Array): boolean {
  const rc = (fns ?? L()).map_delete_elem(fd, key);
  if (rc === -2) return false;
  if (rc < 0) fail(rc, 'bpf_map_delete_elem', `fd ${fd}`);
  return true;
}

/** Next key after `key` (null: the first) into `next`; false at the end. */
export function mapNextKey(fd: number, key: Uint8Array | null, next: Uint8Array): boolean {
  const rc = (fns ?? L()).map_get_next_key(fd, key, next);
  if (rc === -2) return false;
  if (rc < 0) fail(rc, 'bpf_map_get_next_key', `fd ${fd}`);
  return true;
}

function batchOpts(elemFlags: number): Buffer {
  const o = Buffer.alloc(24);
  o.writeBigUInt64LE(24n, 0);
  o.writeBigUInt64LE(BigInt(elemFlags), 8);
  return o;
}

/**
 * Update `count` entries at once: keys and values are packed back to back.
 * Returns how many were written (all of them unless it throws). Kernel 5.6+.
 */
export function mapUpdateBatch(fd: number, keys: Uint8Array, values: Uint8Array, count: number, elemFlags = 0): number {
  const n = new Uint32Array([count]);
  const rc = need(L().map_update_batch, 'bpf_map_update_batch')(fd, keys, values, n, batchOpts(elemFlags));
  if (rc < 0) throw new BpfError('bpf_map_update_batch', -rc, `fd ${fd}`, { detail: `${n[0]} of ${count} written` });
  return n[0]!;
}

/** Delete `count` packed keys at once; returns how many were deleted. Kernel 5.6+. */
export function mapDeleteBatch(fd: number, keys: Uint8Array, count: number): number {
  const n = new Uint32Array([count]);
  const rc = need(L().map_delete_batch, 'bpf_map_delete_batch')(fd, keys, n, batchOpts(0));
  if (rc < 0) throw new BpfError('bpf_map_delete_batch', -rc, `fd ${fd}`, { detail: `${n[0]} of ${count} deleted` });
  return n[0]!;
}

/**
 * Read the whole map in batches (kernel 5.6+; hash/LRU/array types).
 * `valueSize` is the per-element size seen by user space (per-CPU: rounded x ncpus).
 */
export function mapLookupAll(fd: number, keySize: number, valueSize: number, chunk = 4096): { keys: Buffer; values: Buffer; count: number } {
  const keyParts: Buffer[] = [];
  const valueParts: Buffer[] = [];
  let total = 0;
  let inBatch: Buffer | null = null;
  const outBatch = Buffer.alloc(Math.max(keySize, 8));
  for (;;) {
    const keys = Buffer.alloc(keySize * chunk);
    const values = Buffer.alloc(valueSize * chunk);
    const { count: got, done } = mapLookupBatch(fd, inBatch, outBatch, keys, values, chunk);
    keyParts.push(keys.subarray(0, got * keySize));
    valueParts.push(values.subarray(0, got * valueSize));
    total += got;
    if (done) break;
    inBatch = Buffer.from(outBatch);
  }
  return { keys: Buffer.concat(keyParts), values: Buffer.concat(valueParts), count: total };
}

/**
 * One bpf_map_lookup_batch call into the caller's buffers (kernel 5.6+): up
 * to `max` entries after the position `inBatch` (null: from the start);
 * the position after them is written to `outBatch` (at least 8 bytes and
 * the key size). `done`: the map has no more entries after these.
 */
export function mapLookupBatch(fd: number, inBatch: Uint8Array | null, outBatch: Uint8Array, keys: Uint8Array, values: Uint8Array, max: number): { count: number; done: boolean } {
  const n = new Uint32Array([max]);
  const rc = need(L().map_lookup_batch, 'bpf_map_lookup_batch')(fd, inBatch, outBatch, keys, values, n, batchOpts(0)) as number;
  if (rc < 0 && rc !== -2) fail(rc, 'bpf_map_lookup_batch', `fd ${fd}`);
  return { count: n[0]!, done: rc === -2 };
}

export function numPossibleCpus(): number {
  return check(L().num_possible_cpus(), 'libbpf_num_possible_cpus');
}

const PERCPU_TYPES = new Set<number>([MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH, 21 /* PERCPU_CGROUP_STORAGE */]);

/**
 * A map held by fd, with its info. Values of per-CPU maps are
 * roundup(valueSize, 8) x possible CPUs bytes (`userValueSize`).
 */
export class BpfMap {
  readonly fd: number;
  readonly info: MapInfo;
  readonly userValueSize: number;
  #closed = false;

  constructor(fd: number, info?: MapInfo) {
    this.fd = fd;
    this.info = info ?? mapInfo(fd);
    this.userValueSize = PERCPU_TYPES.has(this.info.type)
      ? Math.ceil(this.info.valueSize / 8) * 8 * numPossibleCpus()
      : this.info.valueSize;
  }

  static create(type: number, name: string, keySize: number, valueSize: number, maxEntries: number, opts?: MapCreateOptions): BpfMap {
    return new BpfMap(mapCreate(type, name, keySize, valueSize, maxEntries, opts));
  }

  /** Open a pinned map (for example from the CLI, in another process than the agent). */
  static open(path: string): BpfMap {
    const fd = objGet(path);
    try {
      const m = new BpfMap(fd);
      return m;
    } catch (e) {
      closeFd(fd);
      throw e;
    }
  }

  get name(): string {
    return this.info.name;
  }

  set(key: Uint8Array, value: Uint8Array, flags = 0): void {
    mapUpdate(this.fd, key, value, flags);
  }

  /** The value for `key`, or undefined when it is not there. */
  get(key: Uint8Array): Buffer | undefined {
    const v = Buffer.alloc(this.userValueSize);
    return mapTryLookup(this.fd, key, v) ? v : undefined;
  }

  /** Delete `key`; false when it was not there. */
  delete(key: Uint8Array): boolean {
    return mapTryDelete(this.fd, key);
  }

  *keys(): Generator<Buffer> {
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.info.keySize);
      if (!mapNextKey(this.fd, prev, next)) return;
      yield next;
      prev = next;
    }
  }

  /** Every entry (keys read one by one; an entry deleted meanwhile is skipped). */
  *entries(): Generator<[Buffer, Buffer]> {
    for (const k of this.keys()) {
      const v = this.get(k);
      if (v) yield [k, v];
    }
  }

  pin(path: string): void {
    objPin(this.fd, path);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeFd(this.fd);
  }
}

/** Open a map pinned at `path` (bpf_obj_get) with its info. */
export function openPinnedMap(path: string): BpfMap {
  return BpfMap.open(path);
}

// ---------------------------------------------------------------------------
// Programs, attachments and links by fd

export interface ProgLoadOptions {
  name?: string;
  license?: string;
  expectedAttachType?: number;
  /** Verifier log level (0: none unless the load fails, then libbpf-side log only). */
  logLevel?: number;
  logSize?: number;
}

/**
 * bpf_prog_load for raw instructions (8 bytes each). Used by the probe to test
 * a program type with a specific expected_attach_type. A verifier rejection
 * throws BpfError with the verifier log in `.log`.
 */
export function progLoad(type: number, insns: Uint8Array, opts: ProgLoadOptions = {}): number {
  const fn = need(L().prog_load, 'bpf_prog_load');
  const logBuf = opts.logLevel ? Buffer.alloc(opts.logSize ?? 1 << 16) : null;
  const o = {
    sz: progLoadOptsSize,
    expected_attach_type: opts.expectedAttachType ?? 0,
    log_level: opts.logLevel ?? 0,
    log_size: logBuf ? logBuf.length : 0,
    log_buf: logBuf,
  };
  const name = opts.name ?? progTypeName(type);
  const rc = fn(type, name, opts.license ?? 'GPL', insns, insns.length / 8, o) as number;
  if (rc < 0) {
    const log = logBuf ? cstr(logBuf, 0, logBuf.length) : '';
    throw new BpfError('bpf_prog_load', -rc, name, { log });
  }
  return rc;
}

export interface ProgQuery {
  attachFlags: number;
  progIds: number[];
}

/** Programs attached to a cgroup (fd) at one attach type (bpf_prog_query). */
export function progQuery(targetFd: number, attachType: number, queryFlags = 0): ProgQuery {
  const fn = L().prog_query;
  let cap = 64;
  for (;;) {
    const flags = new Uint32Array(1);
    const ids = new Uint32Array(cap);
    const cnt = new Uint32Array([cap]);
    const rc = fn(targetFd, attachType, queryFlags, flags, ids, cnt) as number;
    if (rc === -28 /* ENOSPC */ && cap < 65536) {
      cap *= 16;
      continue;
    }
    check(rc, 'bpf_prog_query', attachTypeName(attachType));
    return { attachFlags: flags[0]!, progIds: Array.from(ids.subarray(0, cnt[0]!)) };
  }
}

export function progAttach(progFd: number, targetFd: number, attachType: number, flags = 0): void {
  check(L().prog_attach(progFd, targetFd, attachType, flags), 'bpf_prog_attach', attachTypeName(attachType));
}

export function progDetach(progFd: number, targetFd: number, attachType: number): void {
  check(L().prog_detach2(progFd, targetFd, attachType), 'bpf_prog_detach2', attachTypeName(attachType));
}

/** bpf_link_create(prog, target, type): a new link fd. Kernel 5.7+ for cgroups. */
export function linkCreate(progFd: number, targetFd: number, attachType: number): number {
  return check(need(L().link_create, 'bpf_link_create')(progFd, targetFd, attachType, null), 'bpf_link_create', attachTypeName(attachType));
}

/**
 * Atomically replace the program of a link (by fd). With `oldProgFd`, only if
 * the link still runs that program.
 */
export function linkUpdate(linkFd: number, newProgFd: number, opts: { oldProgFd?: number } = {}): void {
  let o: Buffer | null = null;
  if (opts.oldProgFd !== undefined) {
    o = Buffer.alloc(16);
    o.writeBigUInt64LE(16n, 0);
    o.writeUInt32LE(BPF_F_REPLACE, 8);
    o.writeUInt32LE(opts.oldProgFd, 12);
  }
  check(need(L().link_update, 'bpf_link_update')(linkFd, newProgFd, o), 'bpf_link_update', `link fd ${linkFd}`);
}

/** Force-detach a link (kernel 5.9+): its program stops running, pins stay. */
export function linkDetach(linkFd: number): void {
  check(need(L().link_detach, 'bpf_link_detach')(linkFd), 'bpf_link_detach', `link fd ${linkFd}`);
}

// ---------------------------------------------------------------------------
// tc (clsact) programs: libbpf's bpf_tc_* (netlink in the caller's network
// namespace). struct bpf_tc_hook { size_t sz; int ifindex; enum attach_point;
// __u32 parent; } and struct bpf_tc_opts { size_t sz; int prog_fd; __u32
// flags, prog_id, handle, priority; }, both padded to 8 bytes.

export const TcAttachPoint = { INGRESS: 1, EGRESS: 2 } as const;
export type TcDirection = 'ingress' | 'egress';
/** bpf_tc_opts.flags: replace a filter at the same handle/priority in one step. */
export const BPF_TC_F_REPLACE = 1;
const TC_HOOK_SIZE = 24;
const TC_OPTS_SIZE = 32;

function tcHook(ifindex: number, attachPoint: number): Buffer {
  const b = Buffer.alloc(TC_HOOK_SIZE);
  b.writeBigUInt64LE(BigInt(TC_HOOK_SIZE), 0);
  b.writeInt32LE(ifindex, 8);
  b.writeUInt32LE(attachPoint, 12);
  return b;
}

function tcOpts(o: { progFd?: number; flags?: number; handle: number; priority: number }): Buffer {
  const b = Buffer.alloc(TC_OPTS_SIZE);
  b.writeBigUInt64LE(BigInt(TC_OPTS_SIZE), 0);
  b.writeInt32LE(o.progFd ?? 0, 8);
  b.writeUInt32LE(o.flags ?? 0, 12);
  b.writeUInt32LE(o.handle, 20);
  b.writeUInt32LE(o.priority, 24);
  return b;
}

const dirPoint = (d: TcDirection) => (d === 'ingress' ? TcAttachPoint.INGRESS : TcAttachPoint.EGRESS);

/** Add the clsact qdisc to a device. true: we added it; false: it was there already. */
export function tcHookCreate(ifindex: number): boolean {
  const rc = need(L().tc_hook_create, 'bpf_tc_hook_create')(tcHook(ifindex, TcAttachPoint.INGRESS)) as number;
  if (rc === -17 /* EEXIST */) return false;
  check(rc, 'bpf_tc_hook_create', `ifindex ${ifindex}`);
  return true;
}

/** Remove the clsact qdisc of a device (and with it every tc filter on both hooks). */
export function tcHookDestroy(ifindex: number): void {
  const rc = need(L().tc_hook_destroy, 'bpf_tc_hook_destroy')(tcHook(ifindex, TcAttachPoint.INGRESS | TcAttachPoint.EGRESS)) as number;
  if (rc === -2 /* ENOENT */ || rc === -19 /* ENODEV */ || rc === -22 /* EINVAL: no clsact */) return;
  check(rc, 'bpf_tc_hook_destroy', `ifindex ${ifindex}`);
}

/**
 * Attach a program as a direct-action filter at (handle, priority). With
 * replace, a filter already there is swapped in one netlink request (no gap).
 * Returns the attached program's id.
 */
export function tcAttach(ifindex: number, dir: TcDirection, progFd: number, o: { handle: number; priority: number; replace?: boolean }): number {
  const opts = tcOpts({ progFd, flags: o.replace ? BPF_TC_F_REPLACE : 0, handle: o.handle, priority: o.priority });
  check(need(L().tc_attach, 'bpf_tc_attach')(tcHook(ifindex, dirPoint(dir)), opts) as number, 'bpf_tc_attach', `ifindex ${ifindex} ${dir}`);
  return opts.readUInt32LE(16);
}

/** Remove the filter at (handle, priority). false when there was none (or no device). */
export function tcDetach(ifindex: number, dir: TcDirection, o: { handle: number; priority: number }): boolean {
  const rc = need(L().tc_detach, 'bpf_tc_detach')(tcHook(ifindex, dirPoint(dir)), tcOpts(o)) as number;
  if (rc === -2 || rc === -19 || rc === -22) return false;
  check(rc, 'bpf_tc_detach', `ifindex ${ifindex} ${dir}`);
  return true;
}

/** The program id of the filter at (handle, priority), or undefined when there is none. */
export function tcQuery(ifindex: number, dir: TcDirection, o: { handle: number; priority: number }): number | undefined {
  const opts = tcOpts(o);
  const rc = need(L().tc_query, 'bpf_tc_query')(tcHook(ifindex, dirPoint(dir)), opts) as number;
  if (rc === -2 || rc === -19 || rc === -22) return undefined;
  check(rc, 'bpf_tc_query', `ifindex ${ifindex} ${dir}`);
  return opts.readUInt32LE(16);
}

/** Open a cgroup2 directory as an fd for attaching (close it with closeFd). */
export function openCgroup(dir: string): number {
  try {
    return openSync(dir, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
    const errno = Math.abs((e as NodeJS.ErrnoException).errno ?? 5);
    throw new BpfError('open cgroup', errno, dir, { cause: e, detail: code });
  }
}

export function closeCgroup(fd: number): void {
  closeSync(fd);
}

// ---------------------------------------------------------------------------
// Probes

function probeResult(rc: number, op: string, what: string): boolean {
  if (rc === 1) return true;
  if (rc === 0) return false;
  // -EOPNOTSUPP / -EINVAL from the probe itself means "cannot tell": treat as absent.
  if (rc === -95 || rc === -22 || rc === -524) return false;
  fail(rc, op, what);
}

export function probeMapType(type: number): boolean {
  const fn = need(L().probe_bpf_map_type, 'libbpf_probe_bpf_map_type');
  return probeResult(fn(type, null), 'libbpf_probe_bpf_map_type', mapTypeName(type));
}

export function probeProgType(type: number): boolean {
  const fn = need(L().probe_bpf_prog_type, 'libbpf_probe_bpf_prog_type');
  return probeResult(fn(type, null), 'libbpf_probe_bpf_prog_type', progTypeName(type));
}

export function probeHelper(progType: number, helperId: number): boolean {
  const fn = need(L().probe_bpf_helper, 'libbpf_probe_bpf_helper');
  return probeResult(fn(progType, helperId, null), 'libbpf_probe_bpf_helper', `${progTypeName(progType)}/${helperId}`);
}

// ---------------------------------------------------------------------------
// Objects (bpf_object, bpf_map, bpf_program, bpf_link)

type Ptr = unknown;

/** A map inside a bpf_object (before or after load). */
export class ObjectMap {
  readonly ptr: Ptr;
  readonly name: string;
  constructor(ptr: Ptr) {
    this.ptr = ptr;
    this.name = L().map__name(ptr) as string;
  }
  get type(): number {
    return L().map__type(this.ptr);
  }
  get keySize(): number {
    return L().map__key_size(this.ptr);
  }
  get valueSize(): number {
    return L().map__value_size(this.ptr);
  }
  get maxEntries(): number {
    return L().map__max_entries(this.ptr);
  }
  get flags(): number {
    return L().map__map_flags(this.ptr);
  }
  /** .rodata, .data, .bss, .kconfig: libbpf-made maps, per object. */
  get isInternal(): boolean {
    return L().map__is_internal(this.ptr);
  }
  /** The map's fd (after load, or after reuseFd); -1 before. */
  get fd(): number {
    return L().map__fd(this.ptr);
  }
  setMaxEntries(n: number): void {
    check(L().map__set_max_entries(this.ptr, n), 'bpf_map__set_max_entries', this.name);
  }
  /** Use an existing map (e.g. a pinned one) instead of creating it; libbpf dups the fd. */
  reuseFd(fd: number): void {
    check(L().map__reuse_fd(this.ptr, fd), 'bpf_map__reuse_fd', this.name);
  }
  setPinPath(path: string | null): void {
    check(L().map__set_pin_path(this.ptr, path), 'bpf_map__set_pin_path', this.name);
  }
  pin(path: string): void {
    check(L().map__pin(this.ptr, path), 'bpf_map__pin', `${this.name} at ${path}`);
  }
  unpin(path: string | null): void {
    check(L().map__unpin(this.ptr, path), 'bpf_map__unpin', this.name);
  }
}

/** A program inside a bpf_object. */
export class ObjectProgram {
  readonly ptr: Ptr;
  readonly name: string;
  readonly sectionName: string;
  constructor(ptr: Ptr) {
    this.ptr = ptr;
    this.name = L().program__name(ptr) as string;
    this.sectionName = L().program__section_name(ptr) as string;
  }
  get type(): number {
    return L().program__type(this.ptr);
  }
  get expectedAttachType(): number {
    return L().program__expected_attach_type(this.ptr);
  }
  get autoload(): boolean {
    return L().program__autoload(this.ptr);
  }
  setAutoload(on: boolean): void {
    check(L().program__set_autoload(this.ptr, on), 'bpf_program__set_autoload', this.name);
  }
  /** The program's fd after load; -1 (or an error) before. */
  get fd(): number {
    return L().program__fd(this.ptr);
  }
  /** Attach to a cgroup (fd) at the attach type its section names, as a bpf_link. */
  attachCgroup(cgroupFd: number): Link {
    return withLog('bpf_program__attach_cgroup', this.name, () => {
      const p = L().program__attach_cgroup(this.ptr, cgroupFd);
      if (!p) throw new BpfError('bpf_program__attach_cgroup', ptrErrno(), this.name);
      return new Link(p);
    });
  }
}

/** A libbpf bpf_link. destroy() closes it: the kernel link lives on while pinned. */
export class Link {
  #ptr: Ptr;
  constructor(ptr: Ptr) {
    this.#ptr = ptr;
  }
  /** Open a pinned link (bpf_link__open). */
  static open(path: string): Link {
    const p = L().link__open(path);
    if (!p) throw new BpfError('bpf_link__open', ptrErrno(), path);
    return new Link(p);
  }
  private get ptr(): Ptr {
    if (!this.#ptr) throw new BpfError('bpf_link', 9 /* EBADF */, undefined, { detail: 'link already destroyed' });
    return this.#ptr;
  }
  get fd(): number {
    return L().link__fd(this.ptr);
  }
  info(): LinkInfo {
    return linkInfo(this.fd);
  }
  pin(path: string): void {
    check(L().link__pin(this.ptr, path), 'bpf_link__pin', path);
  }
  unpin(): void {
    check(L().link__unpin(this.ptr), 'bpf_link__unpin');
  }
  updateProgram(prog: ObjectProgram): void {
    check(L().link__update_program(this.ptr, prog.ptr), 'bpf_link__update_program', prog.name);
  }
  /** After this, destroy() only closes the fd and never detaches. */
  disconnect(): void {
    L().link__disconnect(this.ptr);
  }
  destroy(): void {
    if (!this.#ptr) return;
    const p = this.#ptr;
    this.#ptr = undefined;
    L().link__destroy(p);
  }
}

/** A bpf_object: open a .bpf.o, tune maps/programs, load, then attach. */
export class BpfObject {
  #ptr: Ptr;
  readonly path: string;

  private constructor(ptr: Ptr, path: string) {
    this.#ptr = ptr;
    this.path = path;
  }

  static open(path: string): BpfObject {
    return withLog('bpf_object__open_file', path, () => {
      const p = L().object__open_file(path, null);
      if (!p) throw new BpfError('bpf_object__open_file', ptrErrno(), path);
      return new BpfObject(p, path);
    });
  }

  private get ptr(): Ptr {
    if (!this.#ptr) throw new BpfError('bpf_object', 9 /* EBADF */, this.path, { detail: 'object already closed' });
    return this.#ptr;
  }

  get name(): string {
    return L().object__name(this.ptr);
  }

  maps(): ObjectMap[] {
    const out: ObjectMap[] = [];
    for (let m = L().object__next_map(this.ptr, null); m; m = L().object__next_map(this.ptr, m)) out.push(new ObjectMap(m));
    return out;
  }

  programs(): ObjectProgram[] {
    const out: ObjectProgram[] = [];
    for (let p = L().object__next_program(this.ptr, null); p; p = L().object__next_program(this.ptr, p)) out.push(new ObjectProgram(p));
    return out;
  }

  findMap(name: string): ObjectMap | undefined {
    const m = L().object__find_map_by_name(this.ptr, name);
    return m ? new ObjectMap(m) : undefined;
  }

  findProgram(name: string): ObjectProgram | undefined {
    const p = L().object__find_program_by_name(this.ptr, name);
    return p ? new ObjectProgram(p) : undefined;
  }

  /** Create maps (or reuse), load and verify programs. A verifier failure's log is in the error. */
  load(): void {
    withLog('bpf_object__load', this.path, () => check(L().object__load(this.ptr), 'bpf_object__load', this.path));
  }

  close(): void {
    if (!this.#ptr) return;
    const p = this.#ptr;
    this.#ptr = undefined;
    L().object__close(p);
  }
}
