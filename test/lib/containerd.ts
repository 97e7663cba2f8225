// A real containerd (Debian's 1.6) driven over CRI, as k3s's kubelet drives
// its embedded one, for e2e tests and benchmarks of CNI plugins. See
// ../shared/CONTAINERD-HARNESS.md.
//
// - containerd runs inside a network namespace of the test's and a private
//   mount namespace (so its overlay and netns mounts never show on the host
//   and vanish with its processes); all its
//   state is under a scratch directory; its environment is minimal (no node
//   on PATH: plugins written in TypeScript get a wrapper that execs the
//   absolute path of this Node).
// - the sandbox image is busybox-static packed as an OCI layout and imported
//   with ctr, never pulled.
// - containers run under a cgroup parent of the harness's own, removed after.
// - teardown (also on failure): stop and remove every sandbox through CRI (so
//   the CNI DELs run), kill containerd and any shim left by PID, remove the
//   cgroups, the scratch dir, the libcni result cache files of this network
//   and /run/containerd when it did not exist before.
import { execa, type ResultPromise } from 'execa';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rm, rmdir, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { netns, scratchBpffs, start, testCgroup, type Netns, type Started, type Teardownable } from './sandbox.ts';
import { installCniBin } from './cni-bin.ts';
import { apiRequest } from '../../agent/api/client.ts';
import type { AgentStatus } from '../../agent/api/types.ts';

export const PAUSE_IMAGE = 'localhost:1/test/pause:1';
const KINGLET = fileURLToPath(new URL('../../agent/cli/kinglet.ts', import.meta.url));
const CRI_PROTO = fileURLToPath(new URL('../../../shared/third_party/cri-api/api.proto', import.meta.url));
const DEBIAN_CNI_DIR = '/usr/lib/cni';
const MINIMAL_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Why the containerd e2e cannot run here, or undefined. */
export function containerdSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, containerd)';
  for (const [p, pkg] of [
    ['/usr/bin/containerd', 'containerd'],
    ['/usr/sbin/runc', 'runc'],
    [join(DEBIAN_CNI_DIR, 'loopback'), 'containernetworking-plugins'],
    ['/bin/busybox', 'busybox-static'],
  ] as const) {
    if (!existsSync(p)) return `${p} missing: apt-get install -y ${pkg}`;
  }
  if (!existsSync(CRI_PROTO)) return `CRI schema missing at ${CRI_PROTO}`;
  try {
    import.meta.resolve('@grpc/grpc-js');
    import.meta.resolve('@grpc/proto-loader');
  } catch {
    return 'needs @grpc/grpc-js and @grpc/proto-loader: npm install';
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// CRI client

type Callback = (err: (Error & { code?: number; details?: string }) | null, res: any) => void;
type GrpcClient = Record<string, (req: unknown, opts: { deadline: Date }, cb: Callback) => void> & { close(): void };

export class CriError extends Error {
  override name = 'CriError';
  readonly grpcCode: number | undefined;
  constructor(method: string, e: Error & { code?: number; details?: string }) {
    super(`${method}: ${e.details ?? e.message}`);
    this.grpcCode = e.code;
  }
}

export class Cri {
  private readonly runtime: GrpcClient;
  private readonly image: GrpcClient;

  private constructor(runtime: GrpcClient, image: GrpcClient) {
    this.runtime = runtime;
    this.image = image;
  }

  static async connect(socket: string): Promise<Cri> {
    const grpc = await import('@grpc/grpc-js');
    const loader = await import('@grpc/proto-loader');
    const def = loader.loadSync(CRI_PROTO, { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
    const pkg = grpc.loadPackageDefinition(def) as any;
    const v1 = pkg.runtime.v1;
    const creds = grpc.credentials.createInsecure();
    return new Cri(new v1.RuntimeService(`unix://${socket}`, creds) as GrpcClient, new v1.ImageService(`unix://${socket}`, creds) as GrpcClient);
  }

  call<T = any>(method: string, req: unknown = {}, timeoutMs = 60_000): Promise<T> {
    const client = method === 'ListImages' || method === 'ImageStatus' ? this.image : this.runtime;
    return new Promise((resolve, reject) => {
      client[method]!.call(client, req, { deadline: new Date(Date.now() + timeoutMs) }, (err, res) => {
        if (err) reject(new CriError(method, err));
        else resolve(res as T);
      });
    });
  }

  close(): void {
    this.runtime.close();
    this.image.close();
  }
}

// ---------------------------------------------------------------------------
// Sandbox image from busybox-static

function sha256(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex');
}

function ociArch(): string {
  return process.arch === 'x64' ? 'amd64' : process.arch;
}

/** Build the busybox sandbox image as an OCI layout tar; returns its path. */
export async function buildPauseImage(dir: string): Promise<string> {
  const rootfs = join(dir, 'rootfs');
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'tmp', 'etc', 'proc', 'sys', 'dev', 'root']) await mkdir(join(rootfs, d), { recursive: true });
  await copyFile('/bin/busybox', join(rootfs, 'bin/busybox'));
  await chmod(join(rootfs, 'bin/busybox'), 0o755);
  await execa('chroot', [rootfs, '/bin/busybox', '--install', '-s']);
  await writeFile(join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  await writeFile(join(rootfs, 'etc/group'), 'root:x:0:\n');
  const layerPath = join(dir, 'layer.tar');
  await execa('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', rootfs, '-cf', layerPath, '.']);
  const layer = await readFile(layerPath);
  const layerDigest = sha256(layer);
  const config = Buffer.from(
    JSON.stringify({
      architecture: ociArch(),
      os: 'linux',
      config: {
        Env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'],
        // the "pause": exits at once on TERM
        Entrypoint: ['/bin/sh', '-c', "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"],
      },
      rootfs: { type: 'layers', diff_ids: [`sha256:${layerDigest}`] },
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${sha256(config)}`, size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${layerDigest}`, size: layer.length }],
    }),
  );
  const layout = join(dir, 'layout');
  const blobs = join(layout, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  await writeFile(join(blobs, layerDigest), layer);
  await writeFile(join(blobs, sha256(config)), config);
  await writeFile(join(blobs, sha256(manifest)), manifest);
  await writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(
    join(layout, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: `sha256:${sha256(manifest)}`,
          size: manifest.length,
          platform: { architecture: ociArch(), os: 'linux' },
          annotations: { 'io.containerd.image.name': PAUSE_IMAGE, 'org.opencontainers.image.ref.name': '1' },
        },
      ],
    }),
  );
  const tar = join(dir, 'image.tar');
  await execa('tar', ['-C', layout, '-cf', tar, 'oci-layout', 'index.json', 'blobs']);
  await rm(rootfs, { recursive: true, force: true });
  await rm(layout, { recursive: true, force: true });
  await rm(layerPath, { force: true });
  return tar;
}

// ---------------------------------------------------------------------------
// Host paths containerd/libcni write outside the config; cleaned by the last harness

let live = 0;
let runContainerdExisted = true;
let varLibCniExisted = true;

// ---------------------------------------------------------------------------
// The harness

export interface CniCall {
  command: string;
  containerId: string;
  netns: string;
  exitCode: number;
  /** Parsed stdout (result or error), when any. */
  out: Record<string, any> | undefined;
}

export interface ContainerdOptions {
  /**
   * The conflist; `network` is the unique network name to use as its "name",
   * `agentSocket` the API socket of the harness's agent (agent option).
   */
  conflist: (h: { network: string; scratch: string; agentSocket: string }) => Record<string, unknown>;
  /**
   * Run a real kinglet agent beside containerd (its network namespace and its
   * mount namespace, where the pods' netns mounts are) with a Node object of
   * this podCIDR, a scratch bpffs, a cgroup and state of the harness's own.
   */
  agent?: { podCIDR: string; logLevel?: 'debug' | 'info' };
  /** kinglet-cni as installed: the native shim with kinglet-cni-node beside it (default), or the Node plugin alone (false). */
  shim?: boolean;
  /** Debian plugins to link into bin_dir besides loopback (e.g. bridge, host-local). */
  debianPlugins?: string[];
  /** Put kinglet-cni into bin_dir (default true). */
  kinglet?: boolean;
  /** Record every kinglet-cni call (env, exit code, stdout) for assertions; costs a shell per call. */
  record?: boolean;
  /**
   * Wrap these plugins (e.g. ['kinglet-cni', 'bridge']) to time each call
   * (`date` around the exec, the same overhead for every plugin); read with timings().
   */
  timed?: string[];
  /** Turn on ip_forward inside the node namespace (default true; never on the host). */
  forwarding?: boolean;
}

export interface HarnessAgent {
  socket: string;
  proc: Started;
  /** GET on the agent's local API. */
  get<T>(path: string): Promise<T>;
}

export interface PodHandle {
  id: string;
  ip: string;
  config: Record<string, unknown>;
}

export interface Containerd {
  ns: Netns;
  scratch: string;
  network: string;
  binDir: string;
  pid: number;
  cri: Cri;
  /** RunPodSandbox + PodSandboxStatus. */
  runPod(name: string): Promise<PodHandle>;
  /** A container in the pod running `command` (busybox image). */
  runContainer(pod: PodHandle, name: string, command: string[]): Promise<string>;
  exec(containerId: string, cmd: string[], timeoutS?: number): Promise<{ exitCode: number; stdout: string; stderr: string }>;
  stopPod(id: string): Promise<void>;
  removePod(id: string): Promise<void>;
  /** The recorded kinglet-cni calls so far (record: true). */
  calls(): Promise<CniCall[]>;
  /** Wall time of each call of the timed plugins, in ms. */
  timings(): Promise<{ plugin: string; command: string; exitCode: number; ms: number }[]>;
  /** Run a plugin from bin_dir inside the node namespace the way containerd does (its environment). */
  invoke(plugin: string, env: Record<string, string>, stdin: string): Promise<{ exitCode: number; out: Record<string, any> | undefined; stderr: string }>;
  /** Netns mounts containerd holds (pods not yet removed). */
  netnsMounts(): Promise<string[]>;
  /** The harness's agent (agent option). */
  agent: HarnessAgent | undefined;
}

export async function startContainerd(t: Teardownable, opts: ContainerdOptions): Promise<Containerd> {
  const ns = await netns(t, 'kl-ctrd');
  if (opts.forwarding !== false) await ns.run(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
  const scratch = await mkdtemp(join(tmpdir(), 'kl-ctrd-'));
  const network = `kl-e2e-${randomBytes(4).toString('hex')}`;
  const cgroupParent = `/${network}`;
  const c = join(scratch, 'containerd');
  const binDir = join(scratch, 'cni', 'bin');
  const confDir = join(scratch, 'cni', 'net.d');
  const callLog = join(scratch, 'cni-calls.log');
  for (const d of [join(c, 'root'), join(c, 'state'), join(c, 'run'), join(c, 'opt'), binDir, confDir, join(scratch, 'logs')]) await mkdir(d, { recursive: true });

  if (live === 0) {
    runContainerdExisted = existsSync('/run/containerd');
    varLibCniExisted = existsSync('/var/lib/cni');
  }
  live++;

  let proc: ResultPromise | undefined;
  let cri: Cri | undefined;
  let agentProc: Started | undefined;
  const sandboxes = new Set<string>();
  const agentSocket = join(scratch, 'agent', 'agent.sock');
  // Mounted before containerd's mount namespace is made, so the agent sees it there.
  const agentFs = opts.agent ? { bpffs: await scratchBpffs(t), cgroup: await testCgroup(t, 'kinglet-ctrd') } : undefined;

  // tap runs teardowns last-in first-out: this one runs before the
  // namespace's (registered by netns() above) goes. It must not throw (a
  // throwing teardown cancels the rest), hence the catch-alls.
  t.teardown(async () => {
    try {
      await teardown();
    } catch (e) {
      process.stderr.write(`containerd harness teardown: ${(e as Error).message}\n`);
    }
  });
  const teardown = async () => {
    if (cri) {
      const list = await cri.call<{ items: { id: string }[] }>('ListPodSandbox', {}, 10_000).catch(() => ({ items: [] }));
      for (const id of new Set([...sandboxes, ...list.items.map((i) => i.id)])) {
        await cri.call('StopPodSandbox', { pod_sandbox_id: id }, 30_000).catch(() => {});
        await cri.call('RemovePodSandbox', { pod_sandbox_id: id }, 30_000).catch(() => {});
      }
      cri.close();
    }
    // After the sandboxes' DELs (they reach it), before containerd goes.
    await agentProc?.stop();
    if (proc?.pid) {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc?.kill('SIGKILL'), 5000);
      await proc;
      clearTimeout(timer);
    }
    await killShims(join(c, 'state'));
    await removeCgroups(cgroupParent);
    await rm(scratch, { recursive: true, force: true }).catch(() => {});
    const results = '/var/lib/cni/results';
    for (const f of await readdir(results).catch(() => [] as string[])) {
      if (f.startsWith(`${network}-`)) await rm(join(results, f), { force: true });
    }
    live--;
    if (live === 0) {
      if (!runContainerdExisted) await rm('/run/containerd', { recursive: true, force: true }).catch(() => {});
      if (!varLibCniExisted) await rm('/var/lib/cni', { recursive: true, force: true }).catch(() => {});
      else {
        await rmdir(results).catch(() => {});
      }
    }
  };

  // bin_dir
  const timingLog = join(scratch, 'cni-timings.log');
  const timedWrapper = (plugin: string, real: string) =>
    [
      '#!/bin/sh',
      't0=$(date +%s%N)',
      `${real} "$@"`,
      'rc=$?',
      't1=$(date +%s%N)',
      `echo "${plugin} $CNI_COMMAND $rc $((t1 - t0))" >> ${timingLog}`,
      'exit $rc',
    ].join('\n') + '\n';
  const timed = new Set(opts.timed ?? []);
  if (opts.kinglet !== false && !opts.record && !timed.has('kinglet-cni')) {
    await installCniBin(binDir, { shim: opts.shim ?? true });
  } else if (opts.kinglet !== false) {
    const target = await installCniBin(join(scratch, 'cni', 'kinglet'), { shim: opts.shim ?? true });
    const script = opts.record
      ? [
          '#!/bin/sh',
          `out=$(${target} "$@")`,
          'rc=$?',
          `printf '%s %s %s %s %s\\n' "$CNI_COMMAND" "\${CNI_CONTAINERID:--}" "\${CNI_NETNS:--}" "$rc" "$out" >> ${callLog}`,
          'printf \'%s\\n\' "$out"',
          'exit $rc',
        ].join('\n')
      : timedWrapper('kinglet-cni', target);
    await writeFile(join(binDir, 'kinglet-cni'), script + '\n', { mode: 0o755 });
  }
  for (const p of ['loopback', ...(opts.debianPlugins ?? [])]) {
    if (timed.has(p)) await writeFile(join(binDir, p), timedWrapper(p, join(DEBIAN_CNI_DIR, p)), { mode: 0o755 });
    else await symlink(join(DEBIAN_CNI_DIR, p), join(binDir, p));
  }
  await writeFile(join(confDir, '10-test.conflist'), JSON.stringify(opts.conflist({ network, scratch, agentSocket }), null, 2));

  const config = `version = 2
root = "${c}/root"
state = "${c}/state"
[grpc]
  address = "${c}/run/containerd.sock"
[ttrpc]
  address = "${c}/run/containerd.sock.ttrpc"
[debug]
  address = "${c}/run/debug.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "${c}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${binDir}"
    conf_dir = "${confDir}"
`;
  await writeFile(join(c, 'config.toml'), config);
  const socket = join(c, 'run', 'containerd.sock');
  // Own mount namespace (private propagation) so its overlay and netns mounts
  // stay off the host and die with it; nsenter --net rather than `ip netns
  // exec`, which remounts /sys and so hides the cgroup mounts runc needs.
  proc = execa('unshare', ['--mount', '--propagation', 'private', 'nsenter', `--net=/run/netns/${ns.name}`, 'containerd', '--config', join(c, 'config.toml')], {
    extendEnv: false,
    env: { PATH: MINIMAL_PATH },
    reject: false,
    buffer: false,
    stdin: 'ignore',
    stdout: 'ignore',
    stderr: ['pipe'],
  });
  let exited = false;
  void proc.then(() => (exited = true));
  let log = '';
  proc.stderr?.on('data', (d: Buffer) => {
    log += d.toString();
    if (log.length > 200_000) log = log.slice(-100_000);
  });
  for (let i = 0; ; i++) {
    if (existsSync(socket)) break;
    if (exited || i > 500) throw new Error(`containerd did not start:\n${log.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 10));
  }

  const tarball = await buildPauseImage(join(scratch, 'image'));
  await execa('ctr', ['--address', socket, '-n', 'k8s.io', 'images', 'import', tarball], { extendEnv: false, env: { PATH: MINIMAL_PATH } });
  cri = await Cri.connect(socket);
  // Wait until the CRI plugin has loaded the CNI configuration.
  for (let i = 0; ; i++) {
    const st = await cri.call<{ status: { conditions: { type: string; status: boolean; message: string }[] } }>('Status', {}, 5000).catch(() => undefined);
    const net = st?.status.conditions.find((x) => x.type === 'NetworkReady');
    if (net?.status) break;
    if (i > 300) throw new Error(`containerd's CNI never got ready: ${net?.message ?? 'no status'}\n${log.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const theCri = cri;
  let agent: HarnessAgent | undefined;
  if (opts.agent && agentFs) agent = await startAgent(t, { ...agentFs, podCIDR: opts.agent.podCIDR, logLevel: opts.agent.logLevel ?? 'info', dir: join(scratch, 'agent'), socket: agentSocket, netns: ns.name, mountOf: proc.pid! }, (p) => (agentProc = p));

  const h: Containerd = {
    ns,
    scratch,
    network,
    binDir,
    pid: proc.pid!,
    cri: theCri,
    async runPod(name) {
      const uid = randomBytes(8).toString('hex');
      const config = {
        metadata: { name, uid, namespace: 'default', attempt: 0 },
        hostname: name.slice(0, 63),
        log_directory: join(scratch, 'logs', uid),
        linux: { cgroup_parent: cgroupParent, security_context: { namespace_options: { network: 'POD', pid: 'POD', ipc: 'POD' } } },
      };
      const r = await theCri.call<{ pod_sandbox_id: string }>('RunPodSandbox', { config });
      sandboxes.add(r.pod_sandbox_id);
      const st = await theCri.call<{ status: { network: { ip: string } } }>('PodSandboxStatus', { pod_sandbox_id: r.pod_sandbox_id });
      return { id: r.pod_sandbox_id, ip: st.status.network?.ip ?? '', config };
    },
    async runContainer(pod, name, command) {
      const r = await theCri.call<{ container_id: string }>('CreateContainer', {
        pod_sandbox_id: pod.id,
        config: { metadata: { name, attempt: 0 }, image: { image: PAUSE_IMAGE }, command, log_path: `${name}.log`, linux: {} },
        sandbox_config: pod.config,
      });
      await theCri.call('StartContainer', { container_id: r.container_id });
      return r.container_id;
    },
    async exec(containerId, cmd, timeoutS = 10) {
      const r = await theCri.call<{ stdout: Buffer; stderr: Buffer; exit_code: number }>('ExecSync', { container_id: containerId, cmd, timeout: timeoutS }, (timeoutS + 10) * 1000);
      return { exitCode: r.exit_code, stdout: Buffer.from(r.stdout).toString(), stderr: Buffer.from(r.stderr).toString() };
    },
    async stopPod(id) {
      await theCri.call('StopPodSandbox', { pod_sandbox_id: id });
    },
    async removePod(id) {
      await theCri.call('RemovePodSandbox', { pod_sandbox_id: id });
      sandboxes.delete(id);
    },
    async calls() {
      const text = await readFile(callLog, 'utf8').catch(() => '');
      return text
        .split('\n')
        .filter(Boolean)
        .map((line) => {
          const [command, containerId, netnsPath, rc, ...rest] = line.split(' ');
          const outText = rest.join(' ').trim();
          let out: Record<string, any> | undefined;
          try {
            out = outText ? (JSON.parse(outText) as Record<string, any>) : undefined;
          } catch {
            out = { unparsed: outText };
          }
          return { command: command!, containerId: containerId === '-' ? '' : containerId!, netns: netnsPath === '-' ? '' : netnsPath!, exitCode: Number(rc), out };
        });
    },
    async timings() {
      const text = await readFile(timingLog, 'utf8').catch(() => '');
      return text
        .split('\n')
        .filter(Boolean)
        .map((line) => {
          const [plugin, command, rc, ns] = line.split(' ');
          return { plugin: plugin!, command: command!, exitCode: Number(rc), ms: Number(ns) / 1e6 };
        });
    },
    async invoke(plugin, env, stdin) {
      const r = await execa('ip', ['netns', 'exec', ns.name, join(binDir, plugin)], { input: stdin, extendEnv: false, env: { PATH: MINIMAL_PATH, ...env }, reject: false });
      let out: Record<string, any> | undefined;
      try {
        out = r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, any>) : undefined;
      } catch {
        out = { unparsed: r.stdout };
      }
      return { exitCode: r.exitCode ?? -1, out, stderr: r.stderr };
    },
    async netnsMounts() {
      return readdir(join(c, 'state', 'io.containerd.grpc.v1.cri', 'netns')).catch(() => []);
    },
    agent,
  };
  return h;
}

/**
 * A kinglet agent in containerd's network and mount namespaces (CNI_NETNS
 * paths are mounts in the latter), fed a Node object by the dir source.
 */
async function startAgent(
  t: Teardownable,
  o: { bpffs: string; cgroup: string; podCIDR: string; logLevel: string; dir: string; socket: string; netns: string; mountOf: number },
  started: (p: Started) => void,
): Promise<HarnessAgent> {
  const src = join(o.dir, 'objects');
  await mkdir(src, { recursive: true });
  const node = { apiVersion: 'v1', kind: 'Node', metadata: { name: 'ctrd-node' }, spec: { podCIDR: o.podCIDR, podCIDRs: [o.podCIDR] }, status: { addresses: [] } };
  await writeFile(join(src, 'objects.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [node] }));
  const p = start(t, [
    'nsenter', `--mount=/proc/${o.mountOf}/ns/mnt`, `--net=/run/netns/${o.netns}`,
    process.execPath, KINGLET, 'agent',
    '--source', `dir:${src}`, '--node-name', 'ctrd-node',
    '--bpf-root', join(o.bpffs, 'ctrd'), '--cgroup', o.cgroup, '--api-socket', o.socket, '--state-dir', join(o.dir, 'state'),
    '--native-device', 'none', '--log-level', o.logLevel,
  ]);
  started(p);
  const get = <T>(path: string) => apiRequest<T>(o.socket, 'GET', path);
  for (let i = 0; ; i++) {
    const st = await get<AgentStatus>('/v1/status').catch(() => undefined);
    if (st?.source.synced && st.podNetwork) break;
    if (i > 500) throw new Error(`the harness's agent did not get ready:\n${await p.waitForOutput(() => true).catch((e: Error) => e.message)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return { socket: o.socket, proc: p, get };
}

/** Kill shims (and their containers) that outlived containerd, by the PIDs they recorded. */
async function killShims(state: string): Promise<void> {
  const base = join(state, 'io.containerd.runtime.v2.task');
  const pids: number[] = [];
  for (const ns of await readdir(base).catch(() => [] as string[])) {
    for (const id of await readdir(join(base, ns)).catch(() => [] as string[])) {
      for (const f of ['init.pid', 'shim.pid']) {
        const p = Number((await readFile(join(base, ns, id, f), 'utf8').catch(() => '')).trim());
        if (p > 1) pids.push(p);
      }
    }
  }
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  if (pids.length) await new Promise((r) => setTimeout(r, 200));
}

/** Remove the harness's cgroup parent in every hierarchy (children first). */
async function removeCgroups(parent: string): Promise<void> {
  const mounts = await readFile('/proc/self/mounts', 'utf8');
  for (const line of mounts.split('\n')) {
    const [, dir, type] = line.split(' ');
    if (!dir || (type !== 'cgroup' && type !== 'cgroup2')) continue;
    await rmTree(join(dir, parent));
  }
}

async function rmTree(dir: string): Promise<void> {
  const st = await stat(dir).catch(() => undefined);
  if (!st?.isDirectory()) return;
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (e.isDirectory()) await rmTree(join(dir, e.name));
  }
  for (let i = 0; i < 50; i++) {
    try {
      await rmdir(dir);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
