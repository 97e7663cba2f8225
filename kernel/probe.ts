// Probe the running kernel for the BPF features in features.ts, for real:
// create maps, load tiny programs with the attach type they need, ask libbpf
// about helpers, read /proc and the kernel config. Everything made here is
// closed before returning; nothing is attached or pinned.
import { existsSync, readFileSync } from 'node:fs';
import { release as osRelease } from 'node:os';
import { gunzipSync } from 'node:zlib';
import {
  AttachType,
  BpfError,
  Helper,
  LibbpfUnavailableError,
  MapType,
  ProgType,
  closeFd,
  libbpfVersion,
  linkCreate,
  mapCreate,
  probeHelper,
  probeMapType,
  probeProgType,
  progLoad,
} from '../agent/datapath/libbpf.ts';
import { parseMounts, type Mounts } from './mounts.ts';
import { deriveModes, FEATURES, toFeatureSet, type FeatureResult, type FeatureState, type ProbeReport } from './features.ts';

interface Outcome {
  ok: FeatureState;
  detail?: string;
}

/** mov r0, 1; exit */
const RETURN_ONE = Buffer.from([0xb7, 0, 0, 0, 1, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]);

/** CONFIG_X -> 'y' | 'm' | value; "# CONFIG_X is not set" -> 'n'. */
export function parseKernelConfig(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const set = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (set) out.set(set[1]!, set[2]!.replace(/^"|"$/g, ''));
    const unset = /^# (CONFIG_[A-Za-z0-9_]+) is not set/.exec(line);
    if (unset) out.set(unset[1]!, 'n');
  }
  return out;
}

/** The kernel config from /proc/config.gz or /boot/config-<release>, with where it came from. */
export function readKernelConfig(release = osRelease()): { source: string; config: Map<string, string> } | undefined {
  try {
    return { source: '/proc/config.gz', config: parseKernelConfig(gunzipSync(readFileSync('/proc/config.gz')).toString('utf8')) };
  } catch {
    // not built with IKCONFIG_PROC
  }
  for (const p of [`/boot/config-${release}`, `/lib/modules/${release}/config`, `/lib/modules/${release}/build/.config`]) {
    try {
      return { source: p, config: parseKernelConfig(readFileSync(p, 'utf8')) };
    } catch {
      // next
    }
  }
  return undefined;
}

function bpfOutcome(fn: () => boolean, what?: string): Outcome {
  try {
    return fn() ? { ok: true } : { ok: false, ...(what ? { detail: what } : {}) };
  } catch (e) {
    if (e instanceof LibbpfUnavailableError) return { ok: null, detail: e.message };
    if (e instanceof BpfError) return { ok: false, detail: `${e.op}: ${e.code}` };
    return { ok: null, detail: (e as Error).message };
  }
}

function closeQuietly(fd: number): void {
  try {
    closeFd(fd);
  } catch {
    // ignore
  }
}

/** Load `r0 = 1; exit` as type/attach type: does the kernel accept this attach point? */
function loads(progType: number, expectedAttachType: number): Outcome {
  try {
    const fd = progLoad(progType, RETURN_ONE, { expectedAttachType, name: 'kl_probe' });
    closeQuietly(fd);
    return { ok: true };
  } catch (e) {
    if (e instanceof LibbpfUnavailableError) return { ok: null, detail: e.message };
    if (e instanceof BpfError) return { ok: false, detail: `bpf_prog_load: ${e.code}` };
    return { ok: null, detail: (e as Error).message };
  }
}

export interface ProbeOptions {
  /** Read mounts from this text instead of /proc/self/mounts (tests). */
  mounts?: string;
}

export function probeKernel(opts: ProbeOptions = {}): ProbeReport {
  const res = new Map<string, Outcome>();
  const set = (id: string, o: Outcome): void => void res.set(id, o);

  let libbpf: ProbeReport['libbpf'];
  let libbpfMissing: string | undefined;
  try {
    libbpf = libbpfVersion();
  } catch (e) {
    libbpfMissing = (e as Error).message;
  }

  // bpf() itself: can we create the smallest map?
  let bpfAllowed = false;
  if (libbpfMissing) set('bpf_syscall', { ok: null, detail: libbpfMissing });
  else {
    try {
      closeQuietly(mapCreate(MapType.ARRAY, 'kl_probe', 4, 4, 1));
      bpfAllowed = true;
      set('bpf_syscall', { ok: true });
    } catch (e) {
      const code = (e as BpfError).code;
      const detail =
        code === 'EPERM'
          ? 'EPERM: run as root (or with CAP_BPF + CAP_NET_ADMIN); check kernel.unprivileged_bpf_disabled and any LSM policy'
          : code === 'ENOSYS'
            ? 'ENOSYS: kernel built without CONFIG_BPF_SYSCALL'
            : `${code}`;
      set('bpf_syscall', { ok: false, detail });
    }
  }
  const unprobed: Outcome = { ok: bpfAllowed ? false : null, detail: libbpfMissing ?? 'bpf() not allowed: cannot probe' };
  const viaBpf = (fn: () => Outcome): Outcome => (bpfAllowed ? fn() : unprobed);

  // JIT
  try {
    const v = readFileSync('/proc/sys/net/core/bpf_jit_enable', 'utf8').trim();
    set('jit', v === '0' ? { ok: false, detail: 'net.core.bpf_jit_enable = 0' } : { ok: true, detail: `bpf_jit_enable = ${v}` });
  } catch {
    set('jit', { ok: false, detail: 'no /proc/sys/net/core/bpf_jit_enable (kernel without BPF JIT)' });
  }
  set('btf', existsSync('/sys/kernel/btf/vmlinux') ? { ok: true, detail: '/sys/kernel/btf/vmlinux' } : { ok: false });

  // Mounts
  let mounts: Mounts = { bpffs: [], cgroup2: [] };
  try {
    mounts = parseMounts(opts.mounts ?? readFileSync('/proc/self/mounts', 'utf8'));
  } catch {
    // leave empty
  }
  const prefer = (list: string[], want: string): string => (list.includes(want) ? want : list[0]!);
  set(
    'bpffs',
    mounts.bpffs.length
      ? { ok: true, detail: `at ${prefer(mounts.bpffs, '/sys/fs/bpf')}${mounts.bpffs.length > 1 ? ` (+${mounts.bpffs.length - 1} more)` : ''}` }
      : { ok: false, detail: 'not mounted: kinglet install mounts it at /sys/fs/bpf' },
  );
  set(
    'cgroup2',
    mounts.cgroup2.length
      ? { ok: true, detail: `at ${prefer(mounts.cgroup2, '/sys/fs/cgroup')}` }
      : { ok: false, detail: 'not mounted (cgroup v1 only?): mount -t cgroup2 none /sys/fs/cgroup/unified' },
  );

  // bpf_link for cgroups: BPF_LINK_CREATE on a bad fd says EBADF where the command exists.
  set(
    'cgroup_link',
    viaBpf(() => {
      try {
        const fd = linkCreate(-1, -1, AttachType.CGROUP_INET4_CONNECT);
        closeQuietly(fd);
        return { ok: true };
      } catch (e) {
        if (e instanceof LibbpfUnavailableError) return { ok: null, detail: e.message };
        const code = (e as BpfError).code;
        return code === 'EBADF' ? { ok: true } : { ok: false, detail: `BPF_LINK_CREATE: ${code}` };
      }
    }),
  );

  // Kernel config
  const cfg = readKernelConfig();
  for (const s of FEATURES.filter((x) => x.category === 'config')) {
    if (!cfg) {
      set(s.id, { ok: null, detail: 'no /proc/config.gz or /boot/config-*' });
      continue;
    }
    const v = cfg.config.get(s.id);
    if (v === 'y' || v === 'm') set(s.id, { ok: true, detail: v === 'm' ? 'module' : undefined });
    else set(s.id, { ok: false, detail: v === undefined ? `not in ${cfg.source}` : `=${v} in ${cfg.source}` });
  }

  // Map types
  const maps: [string, number][] = [
    ['map_hash', MapType.HASH],
    ['map_array', MapType.ARRAY],
    ['map_percpu_hash', MapType.PERCPU_HASH],
    ['map_percpu_array', MapType.PERCPU_ARRAY],
    ['map_lru_hash', MapType.LRU_HASH],
    ['map_lpm_trie', MapType.LPM_TRIE],
    ['map_perf_event_array', MapType.PERF_EVENT_ARRAY],
    ['map_ringbuf', MapType.RINGBUF],
  ];
  for (const [id, t] of maps) set(id, viaBpf(() => bpfOutcome(() => probeMapType(t))));

  // Program types
  const progs: [string, number][] = [
    ['prog_sched_cls', ProgType.SCHED_CLS],
    ['prog_xdp', ProgType.XDP],
    ['prog_cgroup_sock', ProgType.CGROUP_SOCK],
    ['prog_cgroup_sock_addr', ProgType.CGROUP_SOCK_ADDR],
  ];
  for (const [id, t] of progs) set(id, viaBpf(() => bpfOutcome(() => probeProgType(t))));

  // Attach points: load with the expected attach type.
  const attaches: [string, number, number][] = [
    ['attach_connect4', ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_INET4_CONNECT],
    ['attach_connect6', ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_INET6_CONNECT],
    ['attach_sendmsg4', ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_UDP4_SENDMSG],
    ['attach_sendmsg6', ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_UDP6_SENDMSG],
    ['attach_recvmsg4', ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_UDP4_RECVMSG],
    ['attach_recvmsg6', ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_UDP6_RECVMSG],
    ['attach_getpeername4', ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_INET4_GETPEERNAME],
    ['attach_getpeername6', ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_INET6_GETPEERNAME],
    ['attach_sock_create', ProgType.CGROUP_SOCK, AttachType.CGROUP_INET_SOCK_CREATE],
  ];
  for (const [id, pt, at] of attaches) set(id, viaBpf(() => loads(pt, at)));

  // Helpers, in the program type that calls them.
  const helpers: [string, number, number][] = [
    ['helper_get_netns_cookie', ProgType.CGROUP_SOCK_ADDR, Helper.get_netns_cookie],
    ['helper_get_socket_cookie', ProgType.CGROUP_SOCK_ADDR, Helper.get_socket_cookie],
    ['helper_get_prandom_u32', ProgType.CGROUP_SOCK_ADDR, Helper.get_prandom_u32],
    ['helper_fib_lookup', ProgType.SCHED_CLS, Helper.fib_lookup],
    ['helper_redirect_neigh', ProgType.SCHED_CLS, Helper.redirect_neigh],
    ['helper_redirect_peer', ProgType.SCHED_CLS, Helper.redirect_peer],
    ['helper_skb_set_tunnel_key', ProgType.SCHED_CLS, Helper.skb_set_tunnel_key],
    ['helper_csum_diff', ProgType.SCHED_CLS, Helper.csum_diff],
    ['helper_ringbuf_output', ProgType.SCHED_CLS, Helper.ringbuf_output],
    ['helper_perf_event_output', ProgType.SCHED_CLS, Helper.perf_event_output],
    ['helper_jiffies64', ProgType.SCHED_CLS, Helper.jiffies64],
  ];
  for (const [id, pt, h] of helpers) set(id, viaBpf(() => bpfOutcome(() => probeHelper(pt, h))));

  const features: FeatureResult[] = FEATURES.map((s) => {
    const o = res.get(s.id) ?? { ok: null, detail: 'not probed' };
    return { ...s, ok: o.ok, ...(o.detail ? { detail: o.detail } : {}) };
  });
  let version: string | undefined;
  try {
    version = readFileSync('/proc/version', 'utf8').trim();
  } catch {
    // not Linux /proc
  }
  return {
    kernel: { release: osRelease(), ...(version ? { version } : {}) },
    ...(libbpf ? { libbpf } : {}),
    source: 'probe',
    features,
    modes: deriveModes(toFeatureSet(features)),
  };
}
