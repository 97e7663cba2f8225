// Datapath modes from feature sets, the per-version table, and rendering.
import t from 'tap';
import {
  deriveModes,
  FEATURES,
  featuresAtVersion,
  renderHuman,
  renderJson,
  reportForVersion,
  type FeatureSet,
} from '../../../kernel/features.ts';
import { parseKernelConfig } from '../../../kernel/probe.ts';
import { run } from '../../../agent/cli/commands/kernel-probe.ts';

const all: FeatureSet = Object.fromEntries(FEATURES.map((f) => [f.id, true]));
const without = (...ids: string[]): FeatureSet => ({ ...all, ...Object.fromEntries(ids.map((id) => [id, false])) });

t.test('every feature has a unique id and a kernel version where it is kernel-gated', async (t) => {
  const ids = FEATURES.map((f) => f.id);
  t.equal(new Set(ids).size, ids.length, 'unique ids');
  for (const f of FEATURES.filter((x) => ['map', 'program', 'attach', 'helper'].includes(x.category))) {
    t.match(f.since, /^\d+\.\d+(\.\d+)?$/, `${f.id} has a kernel version`);
  }
  const since = Object.fromEntries(FEATURES.map((f) => [f.id, f.since]));
  t.match(since, {
    attach_connect4: '4.17',
    attach_recvmsg4: '4.19.57',
    helper_get_netns_cookie: '5.7',
    attach_getpeername4: '5.8',
    map_ringbuf: '5.8',
    helper_redirect_peer: '5.10',
    helper_redirect_neigh: '5.10',
    map_lru_hash: '4.10',
    map_lpm_trie: '4.11',
  });
});

t.test('a kernel with everything: full socket LB and the fast paths', async (t) => {
  const m = deriveModes(all);
  t.equal(m.ok, true);
  t.same(m.missingRequired, []);
  t.match(m, {
    serviceLbTcp: { mode: 'socket' },
    serviceLbUdp: { mode: 'socket' },
    serviceLbIpv6: { mode: 'socket' },
    getpeername: { mode: 'hook' },
    affinity: { mode: 'netns-cookie' },
    cgroupAttach: { mode: 'bpf_link' },
    events: { mode: 'ringbuf' },
    podRedirect: { mode: 'redirect_peer' },
    conntrack: { mode: 'lru' },
    nodePortFib: { mode: 'fib_lookup' },
    kubeProxyReplacement: { mode: 'full' },
  });
  t.match(m.summary, /^KubeProxyReplacement: full/);
});

// Upstream kernels by version, through the table.
const byVersion: [string, Record<string, string>][] = [
  ['4.4', { kubeProxyReplacement: 'none' }],
  ['4.9.17', { kubeProxyReplacement: 'tc', serviceLbTcp: 'tc', conntrack: 'hash-gc', events: 'perf', podRedirect: 'stack' }],
  ['4.17', { kubeProxyReplacement: 'partial', serviceLbTcp: 'socket', serviceLbUdp: 'tc', getpeername: 'none', affinity: 'client-ip' }],
  ['4.19.0', { serviceLbTcp: 'socket', serviceLbUdp: 'tc' }],
  ['4.19.57', { kubeProxyReplacement: 'full', serviceLbUdp: 'socket', getpeername: 'none', affinity: 'client-ip', cgroupAttach: 'prog_attach' }],
  ['5.4', { getpeername: 'none', events: 'perf', nodePortFib: 'fib_lookup' }],
  ['5.7', { affinity: 'netns-cookie', cgroupAttach: 'bpf_link', getpeername: 'none' }],
  ['5.8', { getpeername: 'hook', events: 'ringbuf', podRedirect: 'stack' }],
  ['5.10', { podRedirect: 'redirect_peer', kubeProxyReplacement: 'full' }],
  ['6.18.44', { kubeProxyReplacement: 'full', podRedirect: 'redirect_peer', getpeername: 'hook' }],
];
for (const [version, want] of byVersion) {
  t.test(`kernel ${version}`, async (t) => {
    const m = deriveModes(featuresAtVersion(version));
    for (const [k, v] of Object.entries(want)) t.equal((m as unknown as Record<string, { mode: string }>)[k]!.mode, v, `${k} = ${v}`);
  });
}

t.test('reasons name what is missing and the kernel it needs', async (t) => {
  const m = deriveModes(featuresAtVersion('4.19.0'));
  t.match(m.serviceLbUdp.reason, /cgroup\/recvmsg4 \(kernel >= 4\.19\.57\)/);
  const g = deriveModes(without('attach_getpeername4'));
  t.equal(g.getpeername.mode, 'none');
  t.match(g.getpeername.reason, /backend address.*kernel >= 5\.8/);
  const r = deriveModes(without('helper_redirect_peer'));
  t.equal(r.podRedirect.mode, 'redirect_neigh');
  t.match(r.podRedirect.reason, /bpf_redirect_peer.*5\.10/);
  const e = deriveModes(without('map_ringbuf'));
  t.equal(e.events.mode, 'perf');
});

t.test('socket LB needs cgroup2 mounted and CONFIG_CGROUP_BPF', async (t) => {
  t.equal(deriveModes(without('cgroup2')).serviceLbTcp.mode, 'tc');
  t.match(deriveModes(without('cgroup2')).serviceLbTcp.reason, /cgroup2 mounted/);
  t.equal(deriveModes(without('CONFIG_CGROUP_BPF')).serviceLbTcp.mode, 'tc');
  // An unknown config (no config file) is not counted as missing.
  t.equal(deriveModes({ ...all, CONFIG_CGROUP_BPF: null }).serviceLbTcp.mode, 'socket');
});

t.test('required features: missing ones stop the datapath', async (t) => {
  const m = deriveModes(without('bpf_syscall'));
  t.equal(m.ok, false);
  t.same(m.missingRequired, ['bpf_syscall']);
  t.equal(m.kubeProxyReplacement.mode, 'none');
  t.equal(m.serviceLbTcp.mode, 'none');
  t.equal(deriveModes(without('CONFIG_NET_SCH_INGRESS')).ok, false);
  t.equal(deriveModes({ ...all, CONFIG_NET_SCH_INGRESS: null }).ok, true, 'unknown config is not missing');
  t.equal(deriveModes({ ...all, bpf_syscall: null }).ok, false, 'an unprobed bpf() is missing');
  t.equal(deriveModes(without('map_lru_hash')).ok, true, 'LRU is optional (hash + GC)');
});

t.test('human rendering: features with status and kernel, then modes', async (t) => {
  const text = renderHuman(reportForVersion('4.19.0'));
  t.match(text, /^kernel 4\.19\.0 \(from the feature table, not probed\)/);
  t.match(text, /cgroup\/recvmsg4 +missing, needs kernel >= 4\.19\.57/);
  t.match(text, /cgroup\/connect4 +ok/);
  t.match(text, /datapath modes:\n/);
  t.match(text, /service LB, UDP +tc +per-packet DNAT in tc/);
  t.match(text, /KubeProxyReplacement: partial/);
  const bad = renderHuman(reportForVersion('4.4'));
  t.match(bad, /tc \(sched_cls\) programs, clsact +missing, needs kernel >= 4\.5 \[required\]/);
  t.match(bad, /the datapath cannot run here: missing prog_sched_cls/);
});

t.test('json rendering has features and modes', async (t) => {
  const json = JSON.parse(renderJson(reportForVersion('5.10')));
  t.equal(json.source, 'table');
  t.ok(Array.isArray(json.features));
  t.match(json.features.find((f: { id: string }) => f.id === 'helper_redirect_peer'), { ok: true, since: '5.10', category: 'helper' });
  t.match(json.modes, { ok: true, podRedirect: { mode: 'redirect_peer' } });
});

t.test('featuresAtVersion rejects garbage', async (t) => {
  t.throws(() => featuresAtVersion('banana'), /not a kernel version/);
});

t.test('kernel config parsing', async (t) => {
  const cfg = parseKernelConfig('CONFIG_BPF=y\nCONFIG_NET_CLS_BPF=m\n# CONFIG_BPF_JIT is not set\nCONFIG_LOCALVERSION="-x"\n');
  t.equal(cfg.get('CONFIG_BPF'), 'y');
  t.equal(cfg.get('CONFIG_NET_CLS_BPF'), 'm');
  t.equal(cfg.get('CONFIG_BPF_JIT'), 'n');
  t.equal(cfg.get('CONFIG_LOCALVERSION'), '-x');
});

t.test('the command with --kernel: exit status and output', async (t) => {
  const io = () => {
    const o = { out: '', err: '' };
    return { o, io: { out: (s: string) => void (o.out += s), err: (s: string) => void (o.err += s) } };
  };
  const a = io();
  t.equal(await run(['--kernel', '5.10', '--json'], a.io), 0);
  t.match(JSON.parse(a.o.out), { modes: { ok: true }, features: Array });
  const b = io();
  t.equal(await run(['--kernel', '4.4'], b.io), 1, 'datapath cannot run: 1');
  t.match(b.o.out, /cannot run/);
  await t.rejects(run(['--kernel', 'banana'], io().io), { name: 'UsageError', exitCode: 2 });
  await t.rejects(run(['--nope'], io().io), { name: 'UsageError', exitCode: 2 });
  const h = io();
  t.equal(await run(['--help'], h.io), 0);
  t.match(h.o.out, /usage: kinglet kernel probe/);
});
