// The probe on this machine's kernel finds what it really has.
import t from 'tap';
import { execa } from 'execa';
import { release } from 'node:os';
import semver from 'semver';
import { rootSkipReason } from '../../lib/sandbox.ts';
import { probeKernel } from '../../../kernel/probe.ts';
import { renderHuman } from '../../../kernel/features.ts';

const skip = rootSkipReason();

t.test('probe the running kernel', { skip }, async (t) => {
  const r = probeKernel();
  t.equal(r.source, 'probe');
  t.equal(r.kernel.release, release());
  t.ok(r.libbpf, 'libbpf found');
  const ok = Object.fromEntries(r.features.map((f) => [f.id, f.ok]));
  t.equal(ok.bpf_syscall, true, 'bpf() allowed as root');
  for (const id of ['map_hash', 'map_array', 'map_percpu_array', 'prog_sched_cls', 'attach_connect4']) t.equal(ok[id], true, id);

  // Features this kernel certainly has, by its upstream version.
  const v = semver.coerce(release())!;
  t.comment(`kernel ${release()} (${v.version})`);
  const expectSince: [string, string][] = [
    ['4.10', 'map_lru_hash'],
    ['4.11', 'map_lpm_trie'],
    ['4.18', 'attach_sendmsg4'],
    ['5.2', 'attach_recvmsg4'],
    ['5.7', 'helper_get_netns_cookie'],
    ['5.7', 'cgroup_link'],
    ['5.8', 'map_ringbuf'],
    ['5.8', 'helper_ringbuf_output'],
    ['5.8', 'attach_getpeername4'],
    ['5.10', 'helper_redirect_peer'],
    ['5.10', 'helper_redirect_neigh'],
  ];
  for (const [since, id] of expectSince) {
    if (semver.gte(v, semver.coerce(since)!)) t.equal(ok[id], true, `${id} (upstream ${since}) found on ${v.version}`);
  }
  t.equal(r.modes.ok, true, 'the datapath can run here');
  if (semver.gte(v, '5.10.0')) {
    t.match(r.modes, {
      serviceLbTcp: { mode: 'socket' },
      serviceLbUdp: { mode: 'socket' },
      getpeername: { mode: 'hook' },
      affinity: { mode: 'netns-cookie' },
      events: { mode: 'ringbuf' },
      podRedirect: { mode: 'redirect_peer' },
      kubeProxyReplacement: { mode: 'full' },
    });
  }

  // Mounts agree with the host.
  const cg2 = (await execa('findmnt', ['-rn', '-t', 'cgroup2', '-o', 'TARGET'], { reject: false })).stdout.trim();
  t.equal(ok.cgroup2, cg2 !== '', 'cgroup2 as findmnt sees it');
  const bpffs = (await execa('findmnt', ['-rn', '-t', 'bpf', '-o', 'TARGET'], { reject: false })).stdout.trim();
  t.equal(ok.bpffs, bpffs !== '', 'bpffs as findmnt sees it');

  // The JIT as the sysctl says.
  const jit = (await execa('cat', ['/proc/sys/net/core/bpf_jit_enable'], { reject: false })).stdout.trim();
  if (jit) t.equal(ok.jit, jit !== '0');

  const text = renderHuman(r);
  t.match(text, /datapath modes:/);
  t.match(text, /KubeProxyReplacement: /);
});

t.test('the CLI prints the probe and exits 0 here', { skip }, async (t) => {
  const bin = new URL('../../../agent/cli/kinglet.ts', import.meta.url).pathname;
  const human = await execa(process.execPath, [bin, 'kernel', 'probe'], { reject: false });
  t.equal(human.exitCode, 0, human.stderr);
  t.match(human.stdout, /attach points:[\s\S]*cgroup\/connect4 +ok/);
  const json = await execa(process.execPath, [bin, 'kernel', 'probe', '--json'], { reject: false });
  t.equal(json.exitCode, 0);
  const parsed = JSON.parse(json.stdout);
  t.ok(Array.isArray(parsed.features) && parsed.modes, '{features, modes}');
  const bad = await execa(process.execPath, [bin, 'kernel', 'probe', '--what'], { reject: false });
  t.equal(bad.exitCode, 2);
});
