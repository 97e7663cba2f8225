// Benchmark: connect+request rate to a ClusterIP with 1, 1k and 10k services
// programmed, against (a) the backend's address directly (the physical limit)
// and (b) kube-proxy-style iptables DNAT rules. Prints medians and paired ratios
// against the direct rate measured in the same run; asserts nothing.
//
//   npm run bench                                  (every benchmark, root)
//   node test/bench/clusterip-connect.ts           (this one, root)
//   BENCH_SECONDS=0.4 BENCH_ROUNDS=15 BENCH_SERVICES=1,1000,10000 node test/bench/clusterip-connect.ts
//
// Layout (all made here, all removed at the end, also on Ctrl-C):
//   ns "cli"  10.200.0.1/14 --veth-- ns "be" 10.200.0.2-11/14: a C accept loop on :8080
//   ns "ipt"  10.210.0.1/24 --veth-- ns "be" 10.210.0.2/24 (routes to 10.200.0.0/14 and
//             the service range 10.96.0.0/12 via 10.210.0.2; iptables nat rules live here)
// No namespace has a default route. The socket LB is attached to a cgroup of
// this benchmark's own; maps on a scratch bpffs.
//
// Cases, each a C client (connect, write a short request, read to EOF, close;
// as many iterations as fit in BENCH_SECONDS), run interleaved BENCH_ROUNDS times:
//   direct        cli ns, outside the cgroup, to 10.200.0.2:8080 (no BPF, no netfilter)
//   direct+cg     cli ns, in the cgroup, to 10.200.0.2:8080 (the hook runs and misses)
//   socket-LB     cli ns, in the cgroup, to the ClusterIP 10.100.0.10:80 (10 backends)
//   iptables      ipt ns, outside the cgroup, to the same ClusterIP through
//                 OUTPUT -> KUBE-SERVICES (measured service's rule last) -> KUBE-SVC -> KUBE-SEP DNAT
import { execa } from 'execa';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { netns, start, veth, type Netns } from '../lib/sandbox.ts';
import { scratchLb } from '../lib/scratch-lb.ts';
import type { LbFrontend, LbState } from '../../agent/model/types.ts';
import { bench, fmtInt, fmtMs, fmtRatio, median, table, type Collector } from './lib/bench.ts';
import { Backends } from '../../agent/model/backends.ts';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 0.4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);
const SERVICE_COUNTS = (process.env.BENCH_SERVICES ?? '1,1000,10000').split(',').map(Number);
const MAX_ITERATIONS = 5_000_000;

const BACKEND_PORT = 8080;
const SERVICE_PORT = 80;
const MEASURED_IP = '10.100.0.10';
const DIRECT_IP = '10.200.0.2';
/** The measured service's backends: addresses of the backend namespace, one server on all. */
const MEASURED_BACKENDS = Array.from({ length: 10 }, (_, i) => `10.200.0.${2 + i}`);

const SERVER_C = String.raw`
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
/* bench-srv <port> <max seconds>: accept, read the request, write "ok\n", close. */
int main(int argc, char **argv) {
	if (argc != 3) return 2;
	signal(SIGPIPE, SIG_IGN);
	alarm((unsigned)atoi(argv[2])); /* bounded even if orphaned */
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)atoi(argv[1]));
	sa.sin_addr.s_addr = htonl(INADDR_ANY);
	if (bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ls, 4096) < 0) { perror("bind/listen"); return 1; }
	printf("listening\n");
	fflush(stdout);
	char buf[512];
	for (;;) {
		int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) continue;
		if (read(c, buf, sizeof buf) > 0) (void)!write(c, "ok\n", 3);
		close(c);
	}
}
`;

const CLIENT_C = String.raw`
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
/* bench-cli <ip> <port> <seconds> <max iterations>: serial connect, request, read to EOF, close. */
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char **argv) {
	if (argc != 5) return 2;
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) return 2;
	double secs = atof(argv[3]);
	long max = atol(argv[4]);
	alarm((unsigned)secs + 20); /* a hung connect or read ends the process: bounded */
	static const char req[] = "GET / HTTP/1.0\r\n\r\n";
	char buf[256];
	long ok = 0, errors = 0;
	int lastErr = 0;
	double t0 = now(), t = t0;
	for (long i = 0; i < max; i++) {
		if ((i & 31) == 0 && (t = now()) - t0 >= secs) break;
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) { errors++; lastErr = errno; if (errors > 100) break; continue; }
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
			errors++; lastErr = errno; close(fd);
			if (errors > 100) break;
			continue;
		}
		ssize_t r = write(fd, req, sizeof req - 1), got = 0;
		if (r == (ssize_t)(sizeof req - 1)) while ((r = read(fd, buf, sizeof buf)) > 0) got += r;
		if (r < 0) lastErr = errno;
		close(fd);
		if (r < 0 || got == 0) errors++; else ok++;
	}
	t = now() - t0;
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	printf("{\"ok\":%ld,\"errors\":%ld,\"secs\":%.6f,\"rate\":%.1f,\"cpu\":%.3f,\"lastError\":\"%s\"}\n",
		ok, errors, t, ok / t, cpu / t, lastErr ? strerror(lastErr) : "");
	return 0;
}
`;

interface ClientResult { ok: number; errors: number; secs: number; rate: number; cpu: number; lastError: string }
interface CaseResult extends ClientResult { serverCpu: number }

const ipv4 = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
const ipNum = (s: string) => s.split('.').reduce((a, o) => a * 256 + Number(o), 0);

/** ClusterIP of filler service i (10.96.0.1 upwards; the measured one is 10.100.0.10). */
const fillerIp = (i: number) => ipv4(ipNum('10.96.0.1') + i);
/** Backend j of filler service i: inside the backend namespace's /14, never connected to. */
const fillerBackend = (i: number, j: number) => ipv4(ipNum('10.201.0.0') + i * 10 + j);

function lbState(services: number): LbState {
  const fe = (service: string, address: string, backends: string[]): LbFrontend => ({
    service, portName: 'http', type: 'ClusterIP', family: 4, address, port: SERVICE_PORT, protocol: 'TCP',
    backends: Backends.from(backends.map((a) => ({ address: a, port: BACKEND_PORT, terminating: false }))), affinityTimeoutSeconds: 0,
  });
  const frontends: LbFrontend[] = [];
  for (let i = 0; i < services - 1; i++) {
    frontends.push(fe(`bench/filler-${i}`, fillerIp(i), Array.from({ length: 10 }, (_, j) => fillerBackend(i, j))));
  }
  frontends.push(fe('bench/measured', MEASURED_IP, MEASURED_BACKENDS));
  frontends.sort((a, b) => ipNum(a.address) - ipNum(b.address));
  return { frontends };
}

/**
 * kube-proxy iptables-mode rules for `services` services in one
 * iptables-restore input. The measured service's rule is the last one in
 * KUBE-SERVICES (the worst case: every SYN walks all the others first). Its
 * KUBE-SVC chain spreads over 10 KUBE-SEP chains with statistic/random like
 * kube-proxy; each filler service gets one KUBE-SEP (never traversed).
 */
function iptablesRules(services: number): string {
  const out: string[] = ['*nat', ':PREROUTING ACCEPT [0:0]', ':INPUT ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':POSTROUTING ACCEPT [0:0]',
    ':KUBE-SERVICES - [0:0]', ':KUBE-MARK-MASQ - [0:0]'];
  const rules: string[] = [
    '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000',
  ];
  const sep = (svc: string, j: number, backend: string) => {
    const chain = `KUBE-SEP-${svc}-${j}`;
    out.push(`:${chain} - [0:0]`);
    rules.push(`-A ${chain} -s ${backend}/32 -j KUBE-MARK-MASQ`);
    rules.push(`-A ${chain} -p tcp -m tcp -j DNAT --to-destination ${backend}:${BACKEND_PORT}`);
    return chain;
  };
  for (let i = 0; i < services - 1; i++) {
    const svc = `KUBE-SVC-F${i}`;
    out.push(`:${svc} - [0:0]`);
    rules.push(`-A KUBE-SERVICES -d ${fillerIp(i)}/32 -p tcp -m comment --comment "bench/filler-${i}:http cluster IP" -m tcp --dport ${SERVICE_PORT} -j ${svc}`);
    rules.push(`-A ${svc} -j ${sep(`F${i}`, 0, fillerBackend(i, 0))}`);
  }
  out.push(':KUBE-SVC-MEASURED - [0:0]');
  rules.push(`-A KUBE-SERVICES -d ${MEASURED_IP}/32 -p tcp -m comment --comment "bench/measured:http cluster IP" -m tcp --dport ${SERVICE_PORT} -j KUBE-SVC-MEASURED`);
  const n = MEASURED_BACKENDS.length;
  MEASURED_BACKENDS.forEach((b, j) => {
    const chain = sep('M', j, b);
    const left = n - j;
    rules.push(left > 1
      ? `-A KUBE-SVC-MEASURED -m statistic --mode random --probability ${(1 / left).toFixed(11)} -j ${chain}`
      : `-A KUBE-SVC-MEASURED -j ${chain}`);
  });
  return [...out, ...rules, 'COMMIT', ''].join('\n');
}

/** CPU seconds (user+system) of a process so far. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[11], [12]: utime, stime (fields 14 and 15 of the full line), in clock ticks (100/s here)
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

await bench('clusterip-connect', async (c: Collector) => {
  console.log(`clusterip-connect: ${SECONDS}s per run, ${ROUNDS} interleaved rounds, services ${SERVICE_COUNTS.join(', ')}`);
  await execa('make', ['-s', '-C', join(repo, 'bpf')]);
  const iptVersion = (await execa('iptables', ['-V'])).stdout.trim();
  console.log(`iptables: ${iptVersion} (backend: ${/nf_tables/.test(iptVersion) ? 'nft' : /legacy/.test(iptVersion) ? 'legacy' : 'unknown'})`);

  // The C programs, compiled now into a temp dir.
  const bin = await mkdtemp(join(tmpdir(), 'kl-bench-'));
  c.teardown(() => rm(bin, { recursive: true, force: true }));
  await writeFile(join(bin, 'srv.c'), SERVER_C);
  await writeFile(join(bin, 'cli.c'), CLIENT_C);
  await execa('cc', ['-O2', '-Wall', '-o', join(bin, 'bench-srv'), join(bin, 'srv.c')]);
  await execa('cc', ['-O2', '-Wall', '-o', join(bin, 'bench-cli'), join(bin, 'cli.c')]);

  // Namespaces: client (direct, socket LB), iptables client, backend.
  const cli = await netns(c, 'kl-bcli');
  const ipt = await netns(c, 'kl-bipt');
  const be = await netns(c, 'kl-bbe');
  const v = await veth(c, { ns: cli, addr: '10.200.0.1/14' }, { ns: be, addr: `${MEASURED_BACKENDS[0]}/14` });
  for (const a of MEASURED_BACKENDS.slice(1)) await execa('ip', ['-n', be.name, 'addr', 'add', `${a}/14`, 'dev', v.b]);
  await veth(c, { ns: ipt, addr: '10.210.0.1/24' }, { ns: be, addr: '10.210.0.2/24' });
  await execa('ip', ['-n', ipt.name, 'route', 'add', '10.200.0.0/14', 'via', '10.210.0.2']);
  await execa('ip', ['-n', ipt.name, 'route', 'add', '10.96.0.0/12', 'via', '10.210.0.2']);
  // NAT needs conntrack in the iptables namespace; the conntrack table is
  // shared with the host, so closed connections must not linger there.
  await ipt.run(['sysctl', '-q', '-w', 'net.netfilter.nf_conntrack_tcp_timeout_time_wait=1']).catch(() => {});
  for (const ns of [cli, ipt, be]) {
    const routes = JSON.parse(await ns.run(['ip', '-j', 'route', 'show', 'default'])) as unknown[];
    if (routes.length !== 0) throw new Error(`namespace ${ns.name} has a default route; refusing to send anything`);
  }

  const server = start(c, [join(bin, 'bench-srv'), String(BACKEND_PORT), '3600'], { ns: be });
  await server.waitForOutput((o) => o.includes('listening'));

  // The socket LB: scratch bpffs, our own cgroup.
  const { lb, cgroup } = await scratchLb(c, 'kinglet-bench');
  console.log(`socket LB: ${lb.variant.file}, cgroup ${cgroup}`);

  const client = async (ns: Netns, inCgroup: boolean, ip: string, port: number, secs: number): Promise<CaseResult> => {
    const cpu0 = await cpuSeconds(server.pid);
    const p = start(c, [join(bin, 'bench-cli'), ip, String(port), String(secs), String(MAX_ITERATIONS)], { ns, ...(inCgroup ? { cgroup } : {}) });
    const out = await p.waitForOutput((o) => o.includes('}\n'), (secs + 30) * 1000);
    await p.proc;
    const r = JSON.parse(out.trim().split('\n').pop()!) as ClientResult;
    const serverCpu = ((await cpuSeconds(server.pid)) - cpu0) / r.secs;
    return { ...r, serverCpu };
  };

  type CaseName = 'direct' | 'direct+cg' | 'socket-LB' | 'iptables';
  const cases: Record<CaseName, (secs: number) => Promise<CaseResult>> = {
    'direct': (s) => client(cli, false, DIRECT_IP, BACKEND_PORT, s),
    'direct+cg': (s) => client(cli, true, DIRECT_IP, BACKEND_PORT, s),
    'socket-LB': (s) => client(cli, true, MEASURED_IP, SERVICE_PORT, s),
    'iptables': (s) => client(ipt, false, MEASURED_IP, SERVICE_PORT, s),
  };
  const names = Object.keys(cases) as CaseName[];

  // Warm-up (discarded): page cache, CPU frequency, first-use paths.
  await cases['direct'](1);

  const rows: string[][] = [];
  const spread: string[][] = [];
  const cpuRows: string[][] = [];
  const notes: string[] = [];
  let target = NaN;
  let targetCpu = NaN;
  for (const services of SERVICE_COUNTS) {
    const a = lb.apply(lbState(services));
    const fill = lb.fill().filter((m) => m.entries > 0).map((m) => `${m.name}=${m.entries}`).join(' ');
    const t0 = performance.now();
    await execa('ip', ['netns', 'exec', ipt.name, 'iptables-restore'], { input: iptablesRules(services) });
    const restoreMs = performance.now() - t0;
    const kubeServices = (await ipt.run(['iptables', '-t', 'nat', '-S', 'KUBE-SERVICES'])).split('\n').filter((l) => l.startsWith('-A'));
    const position = kubeServices.findIndex((l) => l.includes(`${MEASURED_IP}/32`)) + 1;
    console.log(`\n${services} service(s): socket-LB apply ${fmtMs(a.durationMs)} (+${a.added} ~${a.updated} -${a.deleted}; ${fill}); ` +
      `iptables-restore ${fmtMs(restoreMs)}, measured rule at position ${position} of ${kubeServices.length} in KUBE-SERVICES`);

    // Smoke run of every case: it must work before it is timed.
    for (const name of names) {
      const r = await cases[name](0.2);
      if (r.ok === 0 || r.errors > 0) throw new Error(`${name} with ${services} services does not work: ${JSON.stringify(r)}`);
    }
    const results: Record<CaseName, CaseResult[]> = { 'direct': [], 'direct+cg': [], 'socket-LB': [], 'iptables': [] };
    for (let round = 0; round < ROUNDS; round++) {
      // Rotate the order each round so no case always runs first or last.
      const order = names.map((_, i) => names[(i + round) % names.length]!);
      const line: string[] = [];
      for (const name of order) {
        const r = await cases[name](SECONDS);
        if (r.errors > 0) notes.push(`${services} services, ${name}, round ${round + 1}: ${r.errors} error(s), last: ${r.lastError}`);
        results[name].push(r);
        line.push(`${name} ${fmtInt(r.rate)}`);
      }
      console.log(`  round ${round + 1}: ${line.join(', ')} conn/s`);
    }
    const med = (name: CaseName) => median(results[name].map((r) => r.rate));
    // Paired ratios: each run against the direct run of the same round (drift
    // from other load on the machine hits both), then the median over rounds.
    const ratios = (name: CaseName) => results[name].map((r, i) => r.rate / results.direct[i]!.rate);
    const cell = (name: CaseName) => `${fmtInt(med(name))} (${fmtRatio(median(ratios(name)))})`;
    rows.push([fmtInt(services), fmtInt(med('direct')), cell('direct+cg'), cell('socket-LB'), cell('iptables')]);
    // The client's own CPU time per connection (user+system, getrusage): the
    // connect hook and the nat OUTPUT walk run in the client's system calls.
    // Waiting for a CPU does not count, so this is less noisy than the rate.
    const us = (r: CaseResult) => (r.cpu * r.secs * 1e6) / r.ok;
    const medUs = (name: CaseName) => median(results[name].map(us));
    const cpuCell = (name: CaseName) => `${medUs(name).toFixed(1)} (${fmtRatio(median(results[name].map((r, i) => us(results.direct[i]!) / us(r))))})`;
    cpuRows.push([fmtInt(services), medUs('direct').toFixed(1), cpuCell('direct+cg'), cpuCell('socket-LB'), cpuCell('iptables')]);
    const q = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return `${fmtRatio(s[Math.floor((s.length - 1) / 4)]!)}..${fmtRatio(s[Math.ceil((s.length - 1) * 3 / 4)]!)}`; };
    spread.push([fmtInt(services), q(ratios('direct+cg')), q(ratios('socket-LB')), q(ratios('iptables')),
      `${fmtRatio(Math.min(...results.direct.map((r) => r.rate)) / med('direct'))}..${fmtRatio(Math.max(...results.direct.map((r) => r.rate)) / med('direct'))}`]);
    const cpu = (k: 'cpu' | 'serverCpu') => Math.max(...names.flatMap((n) => results[n].map((r) => r[k])));
    notes.push(`${services} services: highest CPU in a timed run: server ${(cpu('serverCpu') * 100).toFixed(0)}%, client ${(cpu('cpu') * 100).toFixed(0)}% of one core (the server is not the bottleneck)`);
    if (services === SERVICE_COUNTS[SERVICE_COUNTS.length - 1]) {
      target = median(ratios('socket-LB'));
      targetCpu = median(results['socket-LB'].map((r, i) => us(results.direct[i]!) / us(r)));
    }
  }

  console.log(`\nconnect+request rate: median of ${ROUNDS} interleaved ${SECONDS} s runs per case; ratio: median over rounds of (rate / direct rate of the same round)`);
  console.log(table(['services', 'direct conn/s', 'direct+cgroup conn/s', 'socket-LB conn/s', 'iptables conn/s'], rows));
  console.log(`\nclient CPU time per connection in µs (user+system), medians; ratio: median over rounds of (direct µs / case µs), i.e. the rate if the client were CPU-bound`);
  console.log(table(['services', 'direct µs', 'direct+cgroup µs', 'socket-LB µs', 'iptables µs'], cpuRows));
  console.log(`\nspread of the per-round ratios (quartiles; direct: min..max over its median) - the machine is shared, so this is the noise floor`);
  console.log(table(['services', 'direct+cgroup', 'socket-LB', 'iptables', 'direct itself'], spread));
  for (const n of notes) console.log(`note: ${n}`);
  console.log(`target: socket-LB at ${fmtInt(SERVICE_COUNTS[SERVICE_COUNTS.length - 1]!)} services >= 0.97 of direct: rate ${fmtRatio(target)} (${target >= 0.97 ? 'met' : 'NOT met'}), ` +
    `client CPU ${fmtRatio(targetCpu)} (${targetCpu >= 0.97 ? 'met' : 'NOT met'}); compare with the spread above before reading much into a few percent`);
});
