// kinglet agent: run the node agent in the foreground, JSON log lines on stdout.
import { parseArgs } from 'node:util';
import { cgroup2Mount } from '../../../kernel/mounts.ts';
import { CommandError, UsageError, printJson, type Io } from '../io.ts';
import { DEFAULT_API_SOCKET } from '../../api/types.ts';
import { DEFAULT_BPF_ROOT, cleanup } from '../../datapath/loader.ts';
import { isLevel, jsonLogger } from '../../log.ts';
import type { Source } from '../../source/types.ts';
import { DEFAULT_STATE_DIR } from '../../endpoints.ts';
import { DEFAULT_CLUSTER_CIDR, DEFAULT_SNAT_PORTS, cleanupPodNetwork } from '../../pod-network.ts';
import { cidr4, parsePortRange } from '../../datapath/pod-layout.ts';

const HELP = `usage: kinglet agent --source dir:<path>|kube [options]

  --source dir:<path>   watch a directory of Kubernetes YAML (lab, offline edge nodes)
  --source kube         list+watch the Kubernetes API (see --kubeconfig)
  --kubeconfig <file>   default: $KUBECONFIG, then /etc/rancher/k3s/k3s.yaml, then in-cluster
  --api-server <url>    override the API server URL from the kubeconfig
  --node-name <name>    this node's name (default: the hostname)
  --bpf-root <dir>      where maps and links are pinned (default ${DEFAULT_BPF_ROOT})
  --cgroup <dir>        cgroup2 directory the socket LB attaches to (default: the cgroup2 root)
  --api-socket <path>   the local API for the CLI (default ${DEFAULT_API_SOCKET}, mode 0600)
  --state-dir <dir>     the agent's own state: registered pod endpoints (default ${DEFAULT_STATE_DIR})
  --socket-lb=true|false  translate ClusterIPs at connect() in the cgroup (default true); false: per packet in tc
  --native-device <if>  the node's uplink for masquerade (default: the default route's device; "none": no masquerade)
  --cluster-cidr <cidr> pod traffic to addresses outside it is masqueraded (default ${DEFAULT_CLUSTER_CIDR})
  --masquerade-ports <min>-<max>  source ports of masqueraded flows (default ${DEFAULT_SNAT_PORTS.join('-')}; keep it
                        outside the node's ephemeral ports, net.ipv4.ip_local_port_range)
  --pod-redirect <mode> how local pods are reached: auto, peer, neigh, stack (default auto: the best the kernel has)
  --pod-network=true|false  pod endpoints, tc programs, masquerade and node routes (default true)
  --manage-sysctls      in the initial network namespace, also turn on ip_forward, install node routes and
                        pick the native device by itself (in any other namespace the agent always does)
  --object <file>       force a socket-LB object variant (default: the best this kernel loads)
  --replace-incompatible-maps  replace pinned maps whose layout changed (their entries are lost)
  --resync <seconds>    period of the drift check: the maps are compared with what the agent wrote and
                        entries changed behind its back written back (default 60; 0: never)
  --log-level <level>   debug, info, warn, error (default info)
  --cleanup             remove the datapath pinned under --bpf-root (detach programs, unpin maps) and exit

On exit the datapath stays in place, so a restart never interrupts traffic.
`;

export async function cgroup2Root(): Promise<string> {
  const dir = await cgroup2Mount();
  if (dir) return dir;
  throw new CommandError('cgroup2 is not mounted: mount it (mount -t cgroup2 none /sys/fs/cgroup) or pass --cgroup');
}

export async function run(args: string[], io: Io): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      source: { type: 'string' },
      kubeconfig: { type: 'string' },
      'api-server': { type: 'string' },
      'node-name': { type: 'string' },
      'bpf-root': { type: 'string', default: DEFAULT_BPF_ROOT },
      cgroup: { type: 'string' },
      'api-socket': { type: 'string', default: DEFAULT_API_SOCKET },
      'state-dir': { type: 'string', default: DEFAULT_STATE_DIR },
      'socket-lb': { type: 'string', default: 'true' },
      'native-device': { type: 'string' },
      'cluster-cidr': { type: 'string', default: DEFAULT_CLUSTER_CIDR },
      'masquerade-ports': { type: 'string' },
      'pod-redirect': { type: 'string', default: 'auto' },
      'pod-network': { type: 'string', default: 'true' },
      'manage-sysctls': { type: 'boolean', default: false },
      object: { type: 'string' },
      'replace-incompatible-maps': { type: 'boolean', default: false },
      resync: { type: 'string', default: '60' },
      'log-level': { type: 'string', default: 'info' },
      cleanup: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const bpfRoot = values['bpf-root'];
  if (values.cleanup) {
    const pods = await cleanupPodNetwork(values['state-dir']);
    const report = cleanup(bpfRoot);
    report.errors.push(...pods.errors);
    if (values.json) printJson(io, { ...report, tc: pods.detached });
    else {
      io.out(`removed ${report.links.length} link(s), ${report.maps.length} map(s) under ${bpfRoot} and ${pods.detached.length} tc program(s)\n`);
      for (const e of report.errors) io.err(`error: ${e}\n`);
    }
    return report.errors.length ? 1 : 0;
  }
  const bool = (name: string, v: string) => {
    if (v !== 'true' && v !== 'false') throw new UsageError(`--${name} must be true or false (got "${v}")`);
    return v === 'true';
  };
  const socketLb = bool('socket-lb', values['socket-lb']);
  const podNetwork = bool('pod-network', values['pod-network']);
  const redirect = values['pod-redirect'];
  if (!['auto', 'peer', 'neigh', 'stack'].includes(redirect)) throw new UsageError(`--pod-redirect must be auto, peer, neigh or stack (got "${redirect}")`);
  try {
    cidr4(values['cluster-cidr']);
  } catch {
    throw new UsageError(`--cluster-cidr must be an IPv4 CIDR like 10.42.0.0/16 (got "${values['cluster-cidr']}")`);
  }
  let snatPorts: [number, number] | undefined;
  if (values['masquerade-ports'] !== undefined) {
    try {
      snatPorts = parsePortRange(values['masquerade-ports']);
    } catch (e) {
      throw new UsageError(`--masquerade-ports: ${(e as Error).message}`);
    }
  }
  const level = values['log-level'];
  if (!isLevel(level)) throw new UsageError(`--log-level must be one of debug, info, warn, error (got "${level}")`);
  const resync = Number(values.resync);
  if (!Number.isFinite(resync) || resync < 0) throw new UsageError(`--resync must be a number of seconds (got "${values.resync}")`);
  const log = jsonLogger((line) => io.out(line), level);
  const spec = values.source;
  if (!spec) throw new UsageError('--source is required: dir:<path> or kube');
  let source: Source;
  if (spec.startsWith('dir:')) {
    const path = spec.slice(4);
    if (!path) throw new UsageError('--source dir:<path> needs a path');
    const { DirSource } = await import('../../source/dir.ts');
    source = new DirSource(path, { logger: log });
  } else if (spec === 'kube') {
    const { slimClientNode } = await import('../../source/client-node-slim.ts');
    slimClientNode(); // before kube.ts loads: client-node without its generated API clients, its proxy and fetch packages loaded only if used
    const { KubeSource } = await import('../../source/kube.ts');
    try {
      source = new KubeSource({
        kubeconfig: values.kubeconfig,
        apiServer: values['api-server'],
        nodeName: values['node-name'],
        logger: log,
      });
    } catch (e) {
      throw new CommandError(`--source kube: ${(e as Error).message}`, { cause: e });
    }
  } else {
    throw new UsageError(`unknown --source "${spec}": use dir:<path> or kube`);
  }
  const { Agent } = await import('../../agent.ts');
  const agent = new Agent({
    source,
    bpfRoot,
    cgroup: values.cgroup ?? (await cgroup2Root()),
    apiSocket: values['api-socket'],
    stateDir: values['state-dir'],
    socketLb,
    podNetwork,
    nativeDevice: values['native-device'],
    clusterCidr: values['cluster-cidr'],
    snatPorts,
    redirect: redirect as 'auto' | 'peer' | 'neigh' | 'stack',
    manageSysctls: values['manage-sysctls'],
    nodeName: values['node-name'],
    object: values.object,
    replaceIncompatible: values['replace-incompatible-maps'],
    resyncMs: resync * 1000,
    log,
  });
  try {
    await agent.start();
  } catch (e) {
    await agent.stop().catch(() => {});
    throw new CommandError(`the agent could not start: ${(e as Error).message}`, { cause: e });
  }
  await new Promise<void>((resolve) => {
    const done = (sig: string) => {
      log('info', 'stopping (the datapath stays in place)', { signal: sig });
      resolve();
    };
    process.once('SIGTERM', () => done('SIGTERM'));
    process.once('SIGINT', () => done('SIGINT'));
  });
  await agent.stop();
  return 0;
}
