// `kinglet lab`: a whole kinglet cluster on one Linux box, without k3s.
//
// up:   preflight, then the plan of plan.ts made real, each piece recorded in
//       the state file before it is made (see state.ts); agents, echo servers
//       and the external host's server are left running, detached.
// test: the connectivity suite run against it from here (run.ts).
// down: everything the state file names removed, in reverse; idempotent, and
//       works on a lab whose `up` died halfway.
//
// Safety: the host's own network namespace, routes and sysctls are never
// touched (every ip command runs with -n <lab namespace> or inside one via
// nsenter; the agents run in node namespaces, where their ip_forward is that
// namespace's); cgroups only below the lab's own directory, bpffs only on the
// lab's own mount, and no lab namespace has a default route.
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { parseAllDocuments } from 'yaml';
import { cgroup2Mount } from '../../kernel/mounts.ts';
import { apiRequest } from '../api/client.ts';
import type { AgentStatus, ServiceEntry } from '../api/types.ts';
import {
  DEFAULT_LAB_NAME, LAB_ROOT, labCgroup, labDir, labObjects, nameFlag, nsPrefix, objectsYaml, planLab,
  type LabPlan, type NodePlan, type PodIPs,
} from './plan.ts';
import { checkOwnership, newState, readState, writeState, type LabState, type PodRecord, type ProcessRecord, type Territory } from './state.ts';
import {
  cgroupPids, inCgroupAndNetns, isAlive, isOurs, mountsBelow, run, sleep, startDetached, tail, tryRun,
} from './system.ts';

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = join(here, '..', '..');
export const KINGLET = join(REPO, 'agent', 'cli', 'kinglet.ts');
export const CNI_BIN = join(REPO, 'agent', 'cni', 'kinglet-cni');
export const ECHO = join(here, 'echo.ts');
export const BPF_BUILD = join(REPO, 'bpf', 'build');
export const MANIFEST = join(REPO, 'manifests', 'connectivity-check.yaml');
export const REQUIRED_OBJECTS = ['sock_lb.bpf.o', 'pod.bpf.o'];

export type Step = (text: string) => void;

/** The lab cannot run here, with the reason and what to do. */
export class LabError extends Error {
  override name = 'LabError';
}

export class LabAborted extends Error {
  override name = 'LabAborted';
  constructor() {
    super('interrupted');
  }
}

// ---------------------------------------------------------------- preflight

export interface PreflightDeps {
  uid?: number;
  hasCommand?: (cmd: string) => boolean;
  objectDir?: string;
  cgroup2?: () => Promise<string | undefined>;
  probe?: () => Promise<{ ok: boolean; missing: string[] }>;
}

function onPath(cmd: string): boolean {
  for (const d of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter)) {
    if (d && existsSync(join(d, cmd))) return true;
  }
  return false;
}

async function probeDatapath(): Promise<{ ok: boolean; missing: string[] }> {
  const { probeKernel } = await import('../../kernel/probe.ts');
  const r = probeKernel();
  return { ok: r.modes.ok, missing: r.modes.missingRequired };
}

/** Refuse with the reason and the fix when the lab cannot work here. Returns the cgroup2 mount. */
export async function preflight(deps: PreflightDeps = {}): Promise<string> {
  const uid = deps.uid ?? process.getuid?.() ?? -1;
  if (uid !== 0) {
    throw new LabError('kinglet lab needs root: it creates network namespaces, a bpffs mount and cgroups of its own. Run it as root (sudo).');
  }
  const has = deps.hasCommand ?? onPath;
  const missingCmds = ['ip', 'nsenter', 'mount', 'umount', 'sh'].filter((c) => !has(c));
  if (missingCmds.length) {
    throw new LabError(`missing commands: ${missingCmds.join(', ')}. Install iproute2 (ip) and util-linux (nsenter, mount), e.g. apt-get install iproute2 util-linux`);
  }
  const objDir = deps.objectDir ?? BPF_BUILD;
  const missingObjs = REQUIRED_OBJECTS.filter((o) => !existsSync(join(objDir, o)));
  if (missingObjs.length) {
    throw new LabError(`the BPF objects are not built (no ${missingObjs.map((o) => join(objDir, o)).join(', ')}). Build them: make -C ${join(objDir, '..')} (needs clang and libbpf-dev)`);
  }
  const cg2 = await (deps.cgroup2 ?? cgroup2Mount)();
  if (!cg2) throw new LabError('cgroup2 is not mounted (the socket LB attaches to a cgroup2 directory). Mount it, e.g. mount -t cgroup2 none /sys/fs/cgroup/unified');
  const probe = await (deps.probe ?? probeDatapath)();
  if (!probe.ok) {
    throw new LabError(`this kernel cannot run kinglet's datapath (missing: ${probe.missing.join(', ')}). See kinglet kernel probe, and kinglet kernel check for an upgrade path.`);
  }
  return cg2;
}

// ---------------------------------------------------------------- helpers

export function territory(name: string, cgroup2: string, root = LAB_ROOT): Territory {
  return { name, dir: labDir(name, root), cgroup: labCgroup(cgroup2, name), prefix: nsPrefix(name) };
}

function nodeEnvPath(): string {
  return `${dirname(process.execPath)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;
}

async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = join(dirname(file), `.${randomBytes(4).toString('hex')}.tmp`);
  await writeFile(tmp, text);
  await rename(tmp, file);
}

/** The suite's NetworkPolicies, from manifests/connectivity-check.yaml. */
export async function suitePolicies(file = MANIFEST): Promise<object[]> {
  const text = await readFile(file, 'utf8');
  return parseAllDocuments(text)
    .map((d) => d.toJS() as unknown)
    .filter((o): o is { kind: string } => typeof o === 'object' && o !== null && (o as { kind?: unknown }).kind === 'NetworkPolicy');
}

async function writeObjects(plan: LabPlan, podIPs: PodIPs, policies: object[]): Promise<void> {
  const text = objectsYaml(labObjects(plan, podIPs, { policies }));
  for (const n of plan.nodes) await writeAtomic(join(n.objectsDir, 'lab.yaml'), text);
}

export function agentArgv(plan: LabPlan, n: NodePlan): string[] {
  return inCgroupAndNetns(plan.systemCgroup, n.netns, [
    process.execPath, KINGLET, 'agent',
    '--source', `dir:${n.objectsDir}`, '--node-name', n.name,
    '--bpf-root', n.bpfRoot, '--cgroup', n.cgroup, '--api-socket', n.sock, '--state-dir', n.stateDir,
    '--native-device', 'eth0', '--cluster-cidr', plan.clusterCidr,
  ]);
}

async function agentReady(n: NodePlan): Promise<AgentStatus | undefined> {
  try {
    const st = await apiRequest<AgentStatus>(n.sock, 'GET', '/v1/status', undefined, 3000);
    return st.source.synced && st.services.lastApply !== undefined && st.podNetwork?.masquerade.podCIDR !== undefined ? st : undefined;
  } catch {
    return undefined;
  }
}

async function until<T>(what: string, ms: number, signal: AbortSignal | undefined, f: () => Promise<T | undefined>, onTimeout?: () => Promise<string>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (signal?.aborted) throw new LabAborted();
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms / 1000}s waiting for ${what}${onTimeout ? `\n${await onTimeout()}` : ''}`);
    await sleep(100);
  }
}

// ---------------------------------------------------------------- up

export interface UpOptions {
  name?: string;
  nodes?: number;
  root?: string;
  signal?: AbortSignal;
  step?: Step;
  /** Skip preflight's kernel probe etc. (tests pass their own). */
  preflight?: PreflightDeps;
}

/**
 * Create the lab. Throws LabError when a lab of that name exists (nothing is
 * touched then); on any other failure what was made stays recorded for `down`.
 */
export async function up(opts: UpOptions = {}): Promise<LabState> {
  const step = opts.step ?? (() => {});
  const signal = opts.signal;
  const check = () => {
    if (signal?.aborted) throw new LabAborted();
  };
  const cg2 = await preflight(opts.preflight);
  const plan = planLab({ name: opts.name ?? DEFAULT_LAB_NAME, nodes: opts.nodes ?? 2, cgroup2: cg2, ...(opts.root ? { root: opts.root } : {}) });
  if (existsSync(plan.stateFile) || existsSync(plan.dir)) {
    throw new LabError(`a lab named ${plan.name} exists (${plan.dir}). Remove it first: kinglet lab down${nameFlag(plan.name)}`);
  }
  const leftovers = (await tryRun('ip', ['netns', 'list'])).out.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(plan.prefix));
  if (leftovers.length || existsSync(plan.cgroup)) {
    throw new LabError(`lab ${plan.name} has leftovers without a state file (${[...leftovers, ...(existsSync(plan.cgroup) ? [plan.cgroup] : [])].join(', ')}); ` +
      'they were not made by this lab directory: remove them by hand (ip netns del, rmdir) or choose another --name');
  }

  const st = newState(plan);
  const save = () => writeState(plan.stateFile, st);
  // The directory first, so the state file can say what comes next.
  st.dirs.push(plan.dir);
  await mkdir(dirname(plan.dir), { recursive: true, mode: 0o755 });
  await mkdir(plan.dir, { mode: 0o700 });
  await save();
  step(`lab ${plan.name}: ${plan.nodes.length} node${plan.nodes.length === 1 ? '' : 's'}, state in ${plan.stateFile}`);
  await mkdir(join(plan.dir, 'logs'));
  for (const n of plan.nodes) {
    for (const d of [n.objectsDir, n.stateDir, n.cniDataDir]) await mkdir(d, { recursive: true });
  }

  // cgroups of our own
  for (const cg of [plan.cgroup, plan.systemCgroup, ...plan.nodes.map((n) => n.cgroup)]) {
    st.cgroups.push(cg);
    await save();
    await mkdir(cg);
  }
  // bpffs of our own
  st.mounts.push(plan.bpffs);
  await save();
  await mkdir(plan.bpffs);
  await run('mount', ['-t', 'bpf', 'bpf', plan.bpffs]);
  check();

  // namespaces
  step('network namespaces: underlay bridge, nodes, external host');
  const addNetns = async (name: string) => {
    st.netns.push(name);
    await save();
    await run('ip', ['netns', 'add', name]);
    await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  };
  const ul = plan.underlay.netns;
  await addNetns(ul);
  await run('ip', ['-n', ul, 'link', 'add', plan.underlay.bridge, 'type', 'bridge']);
  await run('ip', ['-n', ul, 'link', 'set', plan.underlay.bridge, 'up']);
  const plug = async (netns: string, port: string, ip: string) => {
    await run('ip', ['-n', ul, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
    await run('ip', ['-n', ul, 'link', 'set', port, 'master', plan.underlay.bridge, 'up']);
    await run('ip', ['-n', netns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    await run('ip', ['-n', netns, 'link', 'set', 'eth0', 'up']);
  };
  for (const n of plan.nodes) {
    await addNetns(n.netns);
    await plug(n.netns, n.ulPort, n.ip);
  }
  await addNetns(plan.external.netns);
  await plug(plan.external.netns, plan.external.ulPort, plan.external.ip);
  check();

  // the agents
  const policies = await suitePolicies();
  await writeObjects(plan, {}, policies);
  const record = async (p: ProcessRecord) => {
    st.processes.push(p);
    await save();
  };
  for (const n of plan.nodes) {
    step(`agent on ${n.name} (${n.ip}, pods ${n.podCIDR})`);
    const d = await startDetached(agentArgv(plan, n), n.log);
    await record({ ...d, role: 'agent', name: n.name, log: n.log });
  }
  for (const n of plan.nodes) {
    await until(`the agent on ${n.name} to be ready`, 60_000, signal, () => agentReady(n), async () => `${n.log}:\n${await tail(n.log)}`);
  }
  step(`agents ready on ${plan.nodes.map((n) => n.name).join(', ')}`);

  // pods, wired by the real CNI plugin
  const podIPs: Record<string, string> = {};
  for (const p of plan.pods) {
    check();
    const node = plan.nodes.find((n) => n.name === p.node)!;
    await addNetns(p.netns);
    const rec = await cniAdd(node, p.name, p.netns);
    st.pods.push(rec);
    await save();
    podIPs[p.name] = rec.ip;
  }
  const clients = plan.pods.filter((p) => p.role === 'client').length;
  step(`pods via kinglet-cni: ${plan.pods.filter((p) => p.role === 'server').map((p) => `${p.name} ${podIPs[p.name]} on ${p.node}`).join(', ')}, ${clients} client pods`);

  // echo servers
  const env = { ...process.env, PATH: nodeEnvPath() };
  for (const s of plan.servers) {
    const node = plan.nodes.find((n) => n.name === s.node)!;
    const netns = s.hostNetwork ? node.netns : plan.pods.find((p) => p.name === s.pod)!.netns;
    const d = await startDetached(inCgroupAndNetns(node.cgroup, netns, [process.execPath, ECHO, 'server', s.name, String(s.port)]), s.log, env);
    await record({ ...d, role: 'server', name: s.name, log: s.log });
  }
  const x = plan.external;
  const dx = await startDetached(inCgroupAndNetns(plan.systemCgroup, x.netns, [process.execPath, ECHO, 'server', x.name, String(x.port)]), x.log, env);
  await record({ ...dx, role: 'external', name: x.name, log: x.log });
  for (const p of st.processes.filter((q) => q.role !== 'agent')) {
    await until(`echo server ${p.name} to listen`, 20_000, signal, async () => ((await readFile(p.log, 'utf8').catch(() => '')).includes('listening') ? true : undefined),
      async () => `${p.log}:\n${await tail(p.log)}`);
  }
  step(`echo servers: ${plan.servers.map((s) => `${s.name} on ${s.hostNetwork ? `${s.node}'s network` : `pod ${s.pod}`}:${s.port}`).join(', ')}`);

  // services
  await writeObjects(plan, podIPs, policies);
  const vips = Object.values(plan.serviceIPs);
  for (const n of plan.nodes) {
    await until(`services programmed on ${n.name}`, 30_000, signal, async () => {
      const svcs = await apiRequest<ServiceEntry[]>(n.sock, 'GET', '/v1/services', undefined, 3000).catch(() => []);
      return vips.every((ip) => svcs.some((e) => e.address === ip && e.backends.length > 0)) ? true : undefined;
    }, async () => `${n.log}:\n${await tail(n.log)}`);
  }
  step(`services: ${Object.entries(plan.serviceIPs).map(([k, v]) => `${k} ${v}`).join(', ')} programmed on every node`);
  st.complete = true;
  await save();
  return st;
}

async function cniAdd(n: NodePlan, pod: string, netns: string): Promise<PodRecord> {
  const containerId = `lab-${pod}-${randomBytes(4).toString('hex')}`;
  const conf = { cniVersion: '1.0.0', name: 'kinglet', type: 'kinglet-cni', agentSocket: n.sock, dataDir: n.cniDataDir };
  const out = await run('nsenter', [`--net=/run/netns/${n.netns}`, CNI_BIN], {
    input: JSON.stringify(conf),
    env: {
      PATH: nodeEnvPath(),
      CNI_COMMAND: 'ADD',
      CNI_CONTAINERID: containerId,
      CNI_NETNS: `/run/netns/${netns}`,
      CNI_IFNAME: 'eth0',
      CNI_PATH: '/opt/cni/bin',
      CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=kinglet-lab;K8S_POD_NAME=${pod}`,
    },
  }).catch((e: Error) => {
    throw new Error(`CNI ADD of pod ${pod} on ${n.name}: ${e.message}`);
  });
  const res = JSON.parse(out) as { ips?: { address: string }[]; interfaces?: { name: string }[] };
  const ip = res.ips?.[0]?.address.split('/')[0];
  if (!ip) throw new Error(`CNI ADD of pod ${pod} on ${n.name} gave no address: ${out}`);
  return { name: pod, node: n.name, netns, containerId, ip, hostIfname: res.interfaces?.[0]?.name ?? '' };
}

// ---------------------------------------------------------------- down

export interface DownResult {
  /** False when there was no lab of that name. */
  found: boolean;
  removed: string[];
  errors: string[];
}

export interface DownOptions {
  name?: string;
  root?: string;
  step?: Step;
  /** Where cgroup2 is mounted (default: looked up). */
  cgroup2?: string;
}

/** Remove everything the state file names. Safe to run again, and after a crash of `up`. */
export async function down(opts: DownOptions = {}): Promise<DownResult> {
  const name = opts.name ?? DEFAULT_LAB_NAME;
  const step = opts.step ?? (() => {});
  const cg2 = opts.cgroup2 ?? (await cgroup2Mount()) ?? '/sys/fs/cgroup';
  const terr = territory(name, cg2, opts.root);
  const stateFile = join(terr.dir, 'state.json');
  const removed: string[] = [];
  const errors: string[] = [];
  const st = await readState(stateFile);
  if (!st) {
    if (!existsSync(terr.dir)) return { found: false, removed, errors };
    // up died between making the directory and the first state write.
    if ((await mountsBelow(terr.dir)).length) return { found: true, removed, errors: [`${terr.dir} has mounts below it and no state file: unmount them by hand`] };
    await rm(terr.dir, { recursive: true, force: true });
    return { found: true, removed: [terr.dir], errors };
  }
  const bad = new Set(checkOwnership(st, terr));
  for (const b of bad) errors.push(`not removing ${b}: outside lab ${name}'s own namespaces, directory and cgroup`);
  const okNs = st.netns.filter((n) => n.startsWith(terr.prefix) && n.length > terr.prefix.length && !n.includes('/'));
  const within = (p: string, base: string) => (p === base || p.startsWith(`${base}/`)) && !p.split('/').includes('..');
  const okCg = st.cgroups.filter((c) => within(c, terr.cgroup));
  const okMounts = st.mounts.filter((m) => within(m, terr.dir) && m !== terr.dir);
  const okDirs = st.dirs.filter((d) => within(d, terr.dir));

  // 1. processes: the recorded ones (if still the same process), and anything
  // left in the lab's cgroups (only the lab puts processes there).
  step('stopping agents and echo servers');
  const targets = new Set<number>();
  for (const p of [...st.processes].reverse()) if (isOurs(p.pid, p.startTime)) targets.add(p.pid);
  for (const cg of okCg) for (const pid of await cgroupPids(cg)) targets.add(pid);
  const signalAll = (sig: NodeJS.Signals) => {
    for (const pid of targets) {
      try {
        process.kill(pid, sig);
      } catch {
        // gone
      }
    }
  };
  if (targets.size) {
    signalAll('SIGTERM');
    const deadline = Date.now() + 5000;
    while ([...targets].some(isAlive) && Date.now() < deadline) await sleep(50);
    if ([...targets].some(isAlive)) {
      signalAll('SIGKILL');
      const d2 = Date.now() + 3000;
      while ([...targets].some(isAlive) && Date.now() < d2) await sleep(50);
    }
    for (const pid of targets) {
      if (isAlive(pid)) errors.push(`process ${pid} did not exit`);
      else removed.push(`process ${pid}`);
    }
  }
  // A process started while we were stopping (up still running elsewhere) shows up here.
  for (const cg of okCg) for (const pid of await cgroupPids(cg)) if (!targets.has(pid)) errors.push(`process ${pid} appeared in ${cg}`);

  // 2. network namespaces (their links go with them)
  step('deleting network namespaces');
  const present = new Set((await tryRun('ip', ['netns', 'list'])).out.split('\n').map((l) => l.split(' ')[0]!));
  for (const n of [...okNs].reverse()) {
    if (!present.has(n) && !existsSync(`/run/netns/${n}`)) continue;
    const r = await tryRun('ip', ['netns', 'del', n]);
    if (r.code === 0) removed.push(`netns ${n}`);
    else errors.push(`ip netns del ${n}: ${r.out}`);
  }

  // 3. mounts (the bpffs: its pins go with it)
  for (const m of [...okMounts].reverse()) {
    if (!(await mountsBelow(m)).includes(m)) continue;
    const r = await tryRun('umount', [m]);
    if (r.code === 0) removed.push(`mount ${m}`);
    else errors.push(`umount ${m}: ${r.out}`);
  }

  // 4. cgroups, deepest first
  step('removing cgroups and directories');
  for (const cg of [...okCg].sort((a, b) => b.length - a.length)) {
    if (!existsSync(cg)) continue;
    let done = false;
    for (let i = 0; i < 50 && !done; i++) {
      try {
        await rmdir(cg);
        done = true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') done = true;
        else await sleep(50);
      }
    }
    if (done) removed.push(`cgroup ${cg}`);
    else errors.push(`rmdir ${cg}: still busy`);
  }

  // 5. directories (never across a mount that is still there)
  for (const d of [...okDirs].reverse()) {
    if (!existsSync(d)) continue;
    const m = await mountsBelow(d);
    if (m.length) {
      errors.push(`not removing ${d}: ${m.join(', ')} still mounted`);
      continue;
    }
    if (d === terr.dir && errors.length) {
      // Keep the state file so that a second `down` can finish the job.
      continue;
    }
    await rm(d, { recursive: true, force: true });
    removed.push(`dir ${d}`);
  }
  if (errors.length && existsSync(terr.dir)) {
    await writeState(stateFile, st).catch(() => {});
  }
  // The directory all labs share goes when the last lab does.
  await rmdir(dirname(terr.dir)).catch(() => {});
  return { found: true, removed, errors };
}

// ---------------------------------------------------------------- status

/** The lab's state, or a LabError saying how to get one. */
export async function loadLab(name = DEFAULT_LAB_NAME, root?: string): Promise<LabState> {
  const file = join(labDir(name, root), 'state.json');
  const st = await readState(file);
  const flag = nameFlag(name);
  if (!st) throw new LabError(`no lab named ${name} (no ${file}). Create it: kinglet lab up${flag}`);
  if (!st.complete) throw new LabError(`lab ${name} is incomplete (its kinglet lab up did not finish). Remove it and start again: kinglet lab down${flag} && kinglet lab up${flag}`);
  return st;
}
