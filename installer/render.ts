// Text the installer writes: service units, the CNI conflist, the agent's
// kubeconfig and RBAC. Rendered by code so every value is visible in a plan.
import { stringify } from 'yaml';
import { shellLine } from './steps.ts';

export const STATE_DIR = '/var/lib/kinglet';
export const STATE_FILE = `${STATE_DIR}/state.json`;
export const RESUME_ENV = `${STATE_DIR}/resume.env`;
export const ETC_DIR = '/etc/kinglet';
export const AGENT_KUBECONFIG = `${ETC_DIR}/agent.kubeconfig`;
export const K3S_KUBECONFIG = '/etc/rancher/k3s/k3s.yaml';
export const K3S_CONTAINERD_CONFIG = '/var/lib/rancher/k3s/agent/etc/containerd/config.toml';
export const K3S_MANIFESTS = '/var/lib/rancher/k3s/server/manifests';
export const BPFFS = '/sys/fs/bpf';
export const CGROUP2_MOUNT = '/run/kinglet/cgroupv2';
/** Where the agent pins its maps and links (the agent's --bpf-root default). */
export const AGENT_BPF_ROOT = `${BPFFS}/kinglet`;
/** The agent's own state, its registered pod endpoints (the agent's --state-dir default). */
export const AGENT_STATE_DIR = `${STATE_DIR}/agent`;

export function cliArgv(nodeBin: string, bundleDir: string, args: string[], nodeFlags: string[] = []): string[] {
  return [nodeBin, ...nodeFlags, `${bundleDir}/agent/cli/kinglet.ts`, ...args];
}

/**
 * Node flags for the long-running agent, measured with test/bench/program-maps.ts
 * (10k services x 10 endpoints, `kinglet agent --source dir:`): a small young
 * generation; programming a large cluster otherwise grows V8's new space to
 * its maximum and keeps it resident (RSS right after programming 315 -> 223
 * MB). It can only be set on the command line. Tried and left out:
 * --optimize-for-size (settled RSS ~15 MB lower, but programming took twice
 * as long), 1 or 2 MB semi-spaces (no better than 4), --max-old-space-size
 * (a cap turns a large cluster into an OOM crash loop, worse than a large
 * RSS). What the agent does itself: agent/memory.ts.
 */
export const AGENT_NODE_FLAGS = ['--max-semi-space-size=4', compileCachePreload()];

/**
 * Node's compile cache on before the entry script loads. agent/cli/kinglet.ts
 * turns the cache on itself, but it is TypeScript: Node has already started
 * its type stripper for that one file, and the stripper stays in memory (idle
 * agent, no objects: RSS ~81 -> ~71 MB, VmHWM ~106 -> ~91 MB; measured with
 * `kinglet agent --source dir:` on an empty directory). A preload given as a
 * data: URL, base64 so that systemd (% specifiers) and sh leave it alone; it
 * honours KINGLET_COMPILE_CACHE like kinglet.ts. The first start after an
 * install fills the cache and still pays once.
 */
function compileCachePreload(): string {
  const code = 'import{enableCompileCache}from"node:module";const d=process.env.KINGLET_COMPILE_CACHE;if(d!=="off")try{enableCompileCache(d||undefined)}catch{}';
  return `--import=data:text/javascript;base64,${Buffer.from(code).toString('base64')}`;
}

/** The agent as a systemd service, started after k3s. */
export function agentSystemdUnit(exec: string[], k3sUnit: string): string {
  return [
    '# Written by kinglet install; removed by kinglet uninstall.',
    '[Unit]',
    'Description=kinglet eBPF datapath agent',
    'Documentation=https://github.com/kinglet',
    `After=network-online.target ${k3sUnit}`,
    'Wants=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${shellLine(exec)}`,
    'Restart=always',
    'RestartSec=2',
    // The datapath outlives a stopped agent (pinned maps); only the process stops.
    'KillMode=process',
    'LimitMEMLOCK=infinity',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

/** The agent as an OpenRC service (Alpine and friends). */
export function agentOpenrcScript(exec: string[], k3sService: string): string {
  const [cmd, ...args] = exec;
  return [
    '#!/sbin/openrc-run',
    '# Written by kinglet install; removed by kinglet uninstall.',
    'description="kinglet eBPF datapath agent"',
    `command=${shellLine([cmd ?? ''])}`,
    `command_args=${JSON.stringify(shellLine(args))}`,
    'command_background=true',
    'pidfile="/run/${RC_SVCNAME}.pid"',
    'output_log="/var/log/kinglet-agent.log"',
    'error_log="/var/log/kinglet-agent.log"',
    'supervisor=supervise-daemon',
    'rc_ulimit="-l unlimited"',
    '',
    'depend() {',
    `\tafter net ${k3sService}`,
    '\tneed net',
    '}',
    '',
  ].join('\n');
}

/** One-shot unit that runs the installer again after the kernel reboot. */
export function resumeSystemdUnit(exec: string[]): string {
  return [
    '# Written by kinglet install: finishes an install cut by a kernel reboot;',
    '# removed when that install completes.',
    '[Unit]',
    'Description=kinglet install, resumed after the kernel upgrade reboot',
    'After=network-online.target',
    'Wants=network-online.target',
    `ConditionPathExists=${STATE_FILE}`,
    '',
    '[Service]',
    'Type=oneshot',
    `EnvironmentFile=${RESUME_ENV}`,
    `ExecStart=${shellLine(exec)}`,
    'StandardOutput=journal+console',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

/** OpenRC's local.d variant of the resume hook. */
export function resumeLocalScript(exec: string[]): string {
  return [
    '#!/bin/sh',
    '# Written by kinglet install: finishes an install cut by a kernel reboot;',
    '# removed when that install completes.',
    `[ -f ${RESUME_ENV} ] || exit 0`,
    'set -a',
    `. ${RESUME_ENV}`,
    'set +a',
    `${shellLine(exec)} >>/var/log/kinglet-resume.log 2>&1 &`,
    '',
  ].join('\n');
}

/**
 * KEY="value" lines that sh (`set -a; . file`) and systemd's EnvironmentFile
 * both read back as the same value: inside double quotes both take \\, ",
 * $ and ` escaped with a backslash, and keep anything else (quotes, spaces,
 * newlines) as it is. Names that are not identifiers cannot be variables and
 * are left out.
 */
export function envFile(env: Record<string, string>): string {
  return Object.entries(env)
    .filter(([k]) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(k))
    .map(([k, v]) => `${k}="${v.replace(/[\\"$`]/g, (c) => `\\${c}`)}"\n`)
    .join('');
}

export function conflist(agentSocket: string): string {
  return JSON.stringify({
    cniVersion: '1.0.0',
    name: 'kinglet',
    // loopback: k3s ships it beside its other CNI plugins; pods need lo up.
    plugins: [{ type: 'kinglet-cni', agentSocket }, { type: 'loopback' }],
  }, null, 2) + '\n';
}

/**
 * The agent talks to the API server directly (kube-proxy is gone, so never
 * through the kubernetes ClusterIP): k3s's own listener on a server, the
 * k3s agent's local load balancer on an agent; both on 127.0.0.1:6444. It
 * authenticates as the node (group system:nodes, which manifests/agent-rbac.yaml
 * binds to the agent's read-only role) with the client certificate k3s issues
 * to the kubelet: present on every node, so no token has to be carried around.
 */
export function agentKubeconfig(_role: 'server' | 'agent'): string {
  const server = 'https://127.0.0.1:6444';
  const dir = '/var/lib/rancher/k3s/agent';
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'k3s', cluster: { server, 'certificate-authority': `${dir}/server-ca.crt` } }],
    users: [{ name: 'kinglet', user: { 'client-certificate': `${dir}/client-kubelet.crt`, 'client-key': `${dir}/client-kubelet.key` } }],
    contexts: [{ name: 'kinglet', context: { cluster: 'k3s', user: 'kinglet' } }],
    'current-context': 'kinglet',
  });
}

/**
 * The CNI plugin as containerd runs it: a shell wrapper that runs the bundle's
 * plugin with kinglet's own Node.js (containerd's PATH may have none, or an
 * old one).
 */
export function cniWrapper(nodeBin: string, bundleDir: string): string {
  return [
    '#!/bin/sh',
    '# Written by kinglet install; removed by kinglet uninstall.',
    `exec ${shellLine([nodeBin, `${bundleDir}/agent/cni/kinglet-cni`])} "$@"`,
    '',
  ].join('\n');
}
