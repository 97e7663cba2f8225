// The install pipeline's planners: preflight -> kernel -> bpffs -> k3s ->
// agent -> verify. Each is a pure function from host facts, settings and
// what earlier runs recorded to the steps of its phase. Nothing here
// touches the machine.
import { planKernelUpgrade } from '../kernel/upgrade.ts';
import type { CniDirs } from './containerd.ts';
import { parseCniDirs } from './containerd.ts';
import type { HostFacts } from './facts.ts';
import { elMajor, has, isMountedAs, kernelVerdict } from './facts.ts';
import { CNI_SHIM_IN_BUNDLE } from './cni-shim.ts';
import {
  AGENT_BPF_ROOT, AGENT_KUBECONFIG, AGENT_STATE_DIR, BPFFS, CGROUP2_MOUNT, ETC_DIR, K3S_CONTAINERD_CONFIG, K3S_KUBECONFIG, K3S_MANIFESTS,
  AGENT_NODE_FLAGS, RESUME_ENV, STATE_DIR, agentKubeconfig, agentOpenrcScript, agentSystemdUnit, cliArgv, cniWrapper, conflist, envFile,
  resumeLocalScript, resumeSystemdUnit,
} from './render.ts';
import type { Settings } from './settings.ts';
import type { PhaseName, PhasePlan, Plan, Problem, Step } from './steps.ts';
import { PHASES } from './steps.ts';

export interface PlanInput {
  facts: HostFacts;
  settings: Settings;
  /** From the state file of earlier runs. */
  history: { rebootedForKernel: boolean };
  /** Variables the resume hook re-runs with (secrets included; written 0600). */
  resumeEnv: Record<string, string>;
  /** The bundle's native kinglet-cni shim runs on this host (installer/cni-shim.ts); else the Node plugin is kinglet-cni. */
  cniShim?: boolean;
}

/** Flags kinglet needs k3s servers to run with: kinglet is CNI, proxy and policy. */
export const K3S_SERVER_FLAGS = ['--flannel-backend=none', '--disable-network-policy', '--disable-kube-proxy'];

export const AGENT_SOCKET = '/run/kinglet/agent.sock';

function phase(name: PhaseName): PhasePlan {
  return { phase: name, steps: [], notes: [], problems: [] };
}

function role(s: Settings): 'server' | 'agent' {
  return s.k3s.url ? 'agent' : 'server';
}

export function nodeName(i: PlanInput): string {
  return (i.settings.k3s.nodeName ?? i.facts.hostname).toLowerCase();
}

function pkgFor(f: HostFacts, what: 'iproute2' | 'curl' | 'tar'): string {
  const ids = [f.os.id, ...f.os.idLike];
  const el = ids.some((x) => ['rhel', 'centos', 'fedora'].includes(x));
  const mgr = el ? (elMajor(f) === 7 ? 'yum install -y' : 'dnf install -y') : ids.includes('alpine') ? 'apk add' : 'apt-get install -y';
  const name = what === 'iproute2' && el ? 'iproute' : what;
  return `${mgr} ${name}`;
}

export function planPreflight(i: PlanInput): PhasePlan {
  const f = i.facts;
  const p = phase('preflight');
  const fatal = (message: string, fix: string): void => { p.problems.push({ severity: 'fatal', message, fix }); };
  const warn = (message: string, fix: string): void => { p.problems.push({ severity: 'warn', message, fix }); };
  p.notes.push(`${f.os.prettyName} (${f.arch}), kernel ${f.kernel.release}, ${f.cpus} CPU, ${f.memoryMiB} MiB, init ${f.init}, ${f.firmware.toUpperCase()}; role ${role(i.settings)}`);
  if (!['x86_64', 'aarch64'].includes(f.arch)) fatal(`unsupported architecture ${f.arch}`, 'kinglet runs on x86_64 and aarch64 hosts');
  if (f.init === 'unknown') fatal('no systemd or OpenRC found', 'kinglet runs k3s and its agent as systemd or OpenRC services; boot the host with one of them');
  if (f.memoryMiB > 0 && f.memoryMiB < 512) warn(`${f.memoryMiB} MiB of memory is below k3s's 512 MiB minimum`, 'give the node at least 512 MiB (1 GiB for a server)');
  if (!has(f, 'ip')) fatal('iproute2 (`ip`) is missing; the agent and the CNI plugin use it', pkgFor(f, 'iproute2'));
  if (!has(f, 'mount')) fatal('`mount` is missing', 'install util-linux (or busybox mount)');
  const v = kernelVerdict(f);
  if (!v.check) fatal(v.reason, 'run `kinglet kernel check --release "$(uname -r)" --version "$(uname -v)"` on the host and report what it says');
  else p.notes.push(v.ok ? v.reason : `${v.reason}: the kernel phase upgrades it`);
  const airgap = i.settings.k3s.skipDownload || i.settings.k3s.installScriptPath !== undefined;
  if (!airgap && !has(f, 'curl') && !has(f, 'wget')) fatal('neither curl nor wget is installed to fetch k3s', pkgFor(f, 'curl'));
  if (f.k3s.installed) {
    p.notes.push(`k3s is already installed${f.k3s.active ? ' and running' : ''}: its install script re-configures it with kinglet's flags`);
  } else {
    const ports = role(i.settings) === 'server' ? [6443, 10250] : [10250];
    for (const port of ports.filter((x) => f.portsInUse.includes(x))) {
      fatal(`TCP port ${port} is in use and k3s needs it`, `stop what listens there (see: ss -ltnp 'sport = :${port}') and re-run`);
    }
  }
  for (const c of f.cniConfigs) {
    warn(`another CNI config is present: ${c}`, `remove it (or uninstall the CNI that wrote it) so containerd picks kinglet's conflist`);
  }
  // k3s's kubelet refuses to start without these; the memory controller is off by default on Raspberry Pi OS.
  const missing = f.cgroupControllers ? ['cpu', 'memory', 'pids'].filter((c) => !f.cgroupControllers!.includes(c)) : [];
  if (missing.length) {
    fatal(`the ${missing.join(', ')} cgroup controller(s) are disabled; k3s's kubelet needs them`,
      `enable them on the kernel command line (${missing.includes('memory') ? 'cgroup_enable=memory cgroup_memory=1' : missing.map((c) => `cgroup_enable=${c}`).join(' ')}: /boot/cmdline.txt on Raspberry Pi OS, GRUB_CMDLINE_LINUX in /etc/default/grub elsewhere), reboot and re-run`);
  }
  if (!f.cgroup2Supported) warn('this kernel has no cgroup v2: socket load balancing is unavailable, kinglet falls back to tc load balancing', 'use a kernel with cgroup2 (4.5+) to enable socket LB');
  return p;
}

function resumeSteps(i: PlanInput): Step[] {
  const exec = cliArgv(i.settings.nodeBin, i.settings.bundleDir, ['install', '--resume']);
  const steps: Step[] = [
    { id: 'kernel.resume-env', title: 'record the install settings for the resumed run (root only)', kind: 'file', path: RESUME_ENV, mode: 0o600, content: envFile(i.resumeEnv), secret: true },
  ];
  if (i.facts.init === 'openrc') {
    steps.push({ id: 'kernel.resume-hook', title: 'resume the install at boot (local.d)', kind: 'unit', init: 'local.d', name: 'kinglet-resume.start', path: '/etc/local.d/kinglet-resume.start', content: resumeLocalScript(exec), enable: true, start: false });
  } else {
    steps.push({ id: 'kernel.resume-hook', title: 'resume the install at boot (one-shot unit)', kind: 'unit', init: 'systemd', name: 'kinglet-resume.service', path: '/etc/systemd/system/kinglet-resume.service', content: resumeSystemdUnit(exec), enable: true, start: false });
  }
  return steps;
}

/** The kernel phase; `resume` false for `kinglet kernel upgrade` run alone. */
export function planKernel(i: PlanInput, resume = true): PhasePlan {
  const s = i.settings;
  const p = phase('kernel');
  const opts = { channel: s.kernelChannel, elrepoUrl: s.elrepoUrl, ...(s.kernelMirror ? { mirror: s.kernelMirror } : {}), ...(s.kernelRpmDir ? { rpmDir: s.kernelRpmDir } : {}) };
  const up = planKernelUpgrade(i.facts, opts);
  p.notes.push(...up.notes);
  p.problems.push(...up.problems);
  if (up.current || up.problems.some((x) => x.severity === 'fatal')) return p;
  if (i.history.rebootedForKernel) {
    p.problems.push({
      severity: 'fatal',
      message: `the host was rebooted for the new kernel but still runs ${i.facts.kernel.release}`,
      fix: 'the boot default is not the ELRepo kernel: check `grubby --default-kernel` (or the first entry of grub.cfg), pick the new kernel, reboot, and re-run',
    });
    return p;
  }
  p.steps.push(...up.steps);
  if (resume) p.steps.push(...resumeSteps(i));
  const again = resume ? 'the install resumes by itself at boot (or re-run it)' : 'then run kinglet install';
  if (s.allowReboot) {
    p.steps.push({ id: 'kernel.reboot', title: 'reboot into the new kernel', kind: 'reboot', argv: i.facts.init === 'systemd' ? ['systemctl', 'reboot'] : ['reboot'] });
  } else {
    p.steps.push({ id: 'kernel.stop', title: 'stop: a reboot is due', kind: 'stop', message: `the new kernel is installed and is the boot default; reboot to use it (${again}). To let kinglet reboot, pass --allow-reboot or set KINGLET_ALLOW_REBOOT=1` });
  }
  return p;
}

export function planBpffs(i: PlanInput): PhasePlan {
  const f = i.facts;
  const p = phase('bpffs');
  const cur = isMountedAs(f, BPFFS);
  if (cur && cur.fstype !== 'bpf') {
    p.problems.push({ severity: 'fatal', message: `${BPFFS} is a ${cur.fstype} mount, not bpf`, fix: `unmount it (umount ${BPFFS}) and find what mounts it there, then re-run` });
    return p;
  }
  if (cur) p.notes.push(`${BPFFS} is mounted (bpf)`);
  else p.steps.push({ id: 'bpffs.mount', title: `mount the BPF filesystem at ${BPFFS}`, kind: 'mount', fstype: 'bpf', source: 'bpffs', target: BPFFS });
  const persisted = f.fstab.some((m) => m.target === BPFFS) || f.unitFiles.includes('sys-fs-bpf.mount');
  // systemd mounts bpffs at /sys/fs/bpf early at boot from v238 on.
  if (f.init === 'systemd' && f.systemdVersion >= 238) p.notes.push(`systemd ${f.systemdVersion} mounts ${BPFFS} at boot`);
  else if (f.init === 'openrc' && f.openrcMountsBpffs) p.notes.push(`OpenRC's sysfs service mounts ${BPFFS} at boot`);
  else if (persisted) p.notes.push(`${BPFFS} is already mounted at boot (fstab or a mount unit)`);
  else if (f.init === 'systemd') {
    p.steps.push({
      id: 'bpffs.persist', title: `mount ${BPFFS} at boot (systemd mount unit)`, kind: 'unit', init: 'systemd', name: 'sys-fs-bpf.mount', path: '/etc/systemd/system/sys-fs-bpf.mount', enable: true, start: false,
      content: ['# Written by kinglet install.', '[Unit]', 'Description=BPF filesystem (kinglet)', 'DefaultDependencies=no', 'Before=local-fs.target', '', '[Mount]', 'What=bpffs', `Where=${BPFFS}`, 'Type=bpf', 'Options=rw,nosuid,nodev,noexec,relatime,mode=700', '', '[Install]', 'WantedBy=local-fs.target', ''].join('\n'),
    });
  } else {
    p.steps.push({ id: 'bpffs.persist', title: `mount ${BPFFS} at boot (fstab)`, kind: 'line', path: '/etc/fstab', line: `bpffs ${BPFFS} bpf rw,nosuid,nodev,noexec,relatime,mode=700 0 0` });
  }

  // cgroup v2: socket LB attaches to a cgroup2 hierarchy.
  const cg2 = f.mounts.find((m) => m.fstype === 'cgroup2');
  if (cg2) p.notes.push(`cgroup2 is mounted at ${cg2.target}`);
  else if (!f.cgroup2Supported) p.notes.push('no cgroup2 in this kernel: nothing to mount');
  else {
    p.steps.push(
      { id: 'cgroup2.dir', title: `mount point for cgroup2`, kind: 'dir', path: CGROUP2_MOUNT, mode: 0o755 },
      { id: 'cgroup2.mount', title: `mount the cgroup2 hierarchy at ${CGROUP2_MOUNT}`, kind: 'mount', fstype: 'cgroup2', source: 'none', target: CGROUP2_MOUNT },
    );
    if (f.init === 'systemd') {
      p.steps.push({
        id: 'cgroup2.persist', title: 'mount cgroup2 at boot (systemd mount unit)', kind: 'unit', init: 'systemd', name: 'run-kinglet-cgroupv2.mount', path: '/etc/systemd/system/run-kinglet-cgroupv2.mount', enable: true, start: false,
        content: ['# Written by kinglet install.', '[Unit]', 'Description=cgroup v2 hierarchy for kinglet socket load balancing', 'DefaultDependencies=no', 'Before=local-fs.target', '', '[Mount]', 'What=none', `Where=${CGROUP2_MOUNT}`, 'Type=cgroup2', '', '[Install]', 'WantedBy=local-fs.target', ''].join('\n'),
      });
    } else {
      // OpenRC mounts cgroup2 itself in hybrid (or unified) mode.
      p.steps.push({ id: 'cgroup2.persist', title: 'have OpenRC mount cgroup2 at boot', kind: 'line', path: '/etc/rc.conf', line: 'rc_cgroup_mode="hybrid"', replace: '^#?\\s*rc_cgroup_mode=.*' });
    }
  }
  return p;
}

function splitExec(exec: string): string[] {
  return exec.split(/\s+/).filter(Boolean);
}

/**
 * k3s variables whose values are secrets besides K3S_TOKEN: K3S_AGENT_TOKEN,
 * anything named *PASSWORD* or *SECRET*, and K3S_DATASTORE_ENDPOINT (a
 * database URL that may carry credentials). *_FILE variables are paths.
 */
function isSecretVar(key: string): boolean {
  return /(TOKEN|PASSWORD|SECRET)(?!_FILE$)|DATASTORE_ENDPOINT/.test(key);
}

/**
 * Take `--token`/`-t` and `--agent-token` (with `=` or as the next word) out
 * of k3s's arguments. k3s's install script writes INSTALL_K3S_EXEC into its
 * unit's command line, which `ps` shows to every user; as K3S_TOKEN and
 * K3S_AGENT_TOKEN they go to its root-only environment file instead.
 */
function takeTokens(args: string[]): { rest: string[]; token?: string; agentToken?: string } {
  const out: { rest: string[]; token?: string; agentToken?: string } = { rest: [] };
  for (let n = 0; n < args.length; n++) {
    const m = /^(--token|-t|--agent-token)(?:=(.*))?$/.exec(args[n]!);
    if (!m) {
      out.rest.push(args[n]!);
      continue;
    }
    const value = m[2] ?? args[++n] ?? '';
    if (m[1] === '--agent-token') out.agentToken = value;
    else out.token = value;
  }
  return out;
}

export function planK3s(i: PlanInput): PhasePlan {
  const { facts: f, settings: s } = i;
  const p = phase('k3s');
  const k = s.k3s;
  const r = role(s);
  const taken = takeTokens(splitExec(k.exec));
  const user = taken.rest;
  const fromExec: string[] = [];
  const pick = (name: string, env: string | undefined, exec: string | undefined, flag: string): string | undefined => {
    if (exec === undefined) return env;
    fromExec.push(`${flag} as ${name}`);
    if (env !== undefined && env !== exec) {
      p.problems.push({ severity: 'fatal', message: `${name} and ${flag} in INSTALL_K3S_EXEC differ`, fix: `give the token once: set ${name} and remove ${flag} from INSTALL_K3S_EXEC` });
    }
    return exec;
  };
  const token = pick('K3S_TOKEN', k.token, taken.token, '--token');
  const agentToken = pick('K3S_AGENT_TOKEN', k.passEnv['K3S_AGENT_TOKEN'], taken.agentToken, '--agent-token');
  if (fromExec.length) p.notes.push(`INSTALL_K3S_EXEC's ${fromExec.join(' and ')}: k3s reads them from its root-only environment file, never from a command line ps shows`);
  if (k.url && !token) {
    p.problems.push({ severity: 'fatal', message: 'K3S_URL is set but K3S_TOKEN is not', fix: 'set K3S_TOKEN to the server\'s node token (on the server: /var/lib/rancher/k3s/server/node-token)' });
  }
  for (const a of user) {
    const m = /^--flannel-backend(?:=(.*))?$/.exec(a);
    if (m && m[1] !== 'none') {
      p.problems.push({ severity: 'fatal', message: `INSTALL_K3S_EXEC has ${a}, but kinglet replaces flannel`, fix: 'remove --flannel-backend from INSTALL_K3S_EXEC (kinglet sets --flannel-backend=none)' });
    }
  }
  let exec: string[];
  if (r === 'server') {
    const cmd = user[0] === 'server' ? ['server'] : [];
    const rest = user[0] === 'server' ? user.slice(1) : user;
    exec = [...cmd, ...K3S_SERVER_FLAGS.filter((x) => !rest.includes(x)), ...rest];
    p.notes.push('k3s server with flannel, its network policy controller and kube-proxy disabled: kinglet does all three');
  } else {
    exec = user;
    p.notes.push(`k3s agent joining ${k.url}`);
  }

  const script = `${STATE_DIR}/k3s-install.sh`;
  const airgap = k.skipDownload;
  if (k.installScriptPath) {
    p.steps.push({ id: 'k3s.script', title: "k3s's install script (local copy)", kind: 'copy', from: k.installScriptPath, fromHost: true, path: script, mode: 0o700 });
  } else if (airgap) {
    p.problems.push({ severity: 'fatal', message: "an air-gapped install (INSTALL_K3S_SKIP_DOWNLOAD) cannot download k3s's install script", fix: "set KINGLET_K3S_INSTALL_SCRIPT to a local copy of k3s's install.sh" });
  } else {
    // Retried, and given up when no data moves for a minute: edge links are flaky.
    const fetch = has(f, 'curl')
      ? ['curl', '-sfL', '--retry', '3', '--connect-timeout', '20', '--speed-limit', '1', '--speed-time', '60', '-o', script, k.installScriptUrl]
      : ['wget', '-q', '-T', '60', '-O', script, k.installScriptUrl]; // busybox wget (Alpine) knows -T, not -t
    p.steps.push({ id: 'k3s.script', title: `download k3s's install script from ${k.installScriptUrl}`, kind: 'run', argv: fetch, creates: script });
  }
  if (airgap) {
    if (k.binary) p.steps.push({ id: 'k3s.binary', title: 'the k3s binary (air-gapped)', kind: 'copy', from: k.binary, fromHost: true, path: '/usr/local/bin/k3s', mode: 0o755 });
    else p.notes.push('INSTALL_K3S_SKIP_DOWNLOAD: using the k3s binary already at /usr/local/bin/k3s');
    if (k.images) {
      const base = k.images.split('/').at(-1) ?? 'k3s-airgap-images.tar';
      p.steps.push(
        { id: 'k3s.images-dir', title: 'k3s image import directory', kind: 'dir', path: '/var/lib/rancher/k3s/agent/images', mode: 0o755 },
        { id: 'k3s.images', title: 'k3s air-gap images', kind: 'copy', from: k.images, fromHost: true, path: `/var/lib/rancher/k3s/agent/images/${base}`, mode: 0o644 },
      );
    }
  }
  const env: Record<string, string> = {};
  const secretEnv: Record<string, string> = {};
  for (const [key, v] of Object.entries(k.passEnv)) (isSecretVar(key) ? secretEnv : env)[key] = v;
  if (exec.length) env['INSTALL_K3S_EXEC'] = exec.join(' ');
  if (airgap) env['INSTALL_K3S_SKIP_DOWNLOAD'] = 'true';
  if (k.url) env['K3S_URL'] = k.url;
  if (k.nodeName) env['K3S_NODE_NAME'] = k.nodeName;
  if (token) secretEnv['K3S_TOKEN'] = token;
  if (agentToken) secretEnv['K3S_AGENT_TOKEN'] = agentToken;
  const uninstall = r === 'server' ? '/usr/local/bin/k3s-uninstall.sh' : '/usr/local/bin/k3s-agent-uninstall.sh';
  p.steps.push({
    id: 'k3s.install', title: `install and start k3s (${r})`, kind: 'run', argv: ['sh', script], env,
    ...(Object.keys(secretEnv).length ? { secretEnv } : {}),
    undo: [uninstall],
  });
  if (r === 'server') {
    p.steps.push({ id: 'k3s.wait-api', title: 'wait for the Kubernetes API', kind: 'wait', argv: ['k3s', 'kubectl', 'get', '--raw=/readyz'], env: { KUBECONFIG: K3S_KUBECONFIG }, timeoutSec: 300, intervalSec: 3, fix: 'see why k3s is not ready: journalctl -u k3s (or /var/log/k3s.log on OpenRC)' });
  }
  p.steps.push({ id: 'k3s.wait-containerd', title: "wait for k3s's containerd config", kind: 'wait', file: K3S_CONTAINERD_CONFIG, timeoutSec: 300, intervalSec: 3, fix: `k3s did not write ${K3S_CONTAINERD_CONFIG}: check journalctl -u ${r === 'server' ? 'k3s' : 'k3s-agent'}` });
  return p;
}

/** `kinglet agent --cleanup` for the agent the installer runs (its pin root and state dir). */
export function agentCleanupArgv(nodeBin: string, bundleDir: string): string[] {
  return cliArgv(nodeBin, bundleDir, ['agent', '--cleanup', '--bpf-root', AGENT_BPF_ROOT, '--state-dir', AGENT_STATE_DIR]);
}

export function planAgent(i: PlanInput, dirs: CniDirs): PhasePlan {
  const { facts: f, settings: s } = i;
  const p = phase('agent');
  const r = role(s);
  p.notes.push(dirs.fromConfig
    ? `CNI dirs from k3s's containerd config: bin ${dirs.binDir}, conf ${dirs.confDir}`
    : `CNI dirs assumed (bin ${dirs.binDir}, conf ${dirs.confDir}); a real run reads them from ${K3S_CONTAINERD_CONFIG} once k3s has started`);
  // Without the bundle's native shim, kinglet-cni is the Node plugin itself (each call pays Node's start-up).
  const shim = i.cniShim ?? false;
  // The Node plugin's file step: kinglet-cni itself, or beside the shim its fallback (key order as before: it is hashed).
  const nodePlugin = (id: string, title: string, file: string) =>
    ({ id, title, kind: 'file', path: `${dirs.binDir}/${file}`, mode: 0o755, content: cniWrapper(s.nodeBin, s.bundleDir) }) as const;
  const name = nodeName(i);
  const exec = cliArgv(s.nodeBin, s.bundleDir, ['agent', '--source', 'kube', '--kubeconfig', AGENT_KUBECONFIG, '--node-name', name, '--manage-sysctls'], AGENT_NODE_FLAGS);
  // Uninstall runs this after stopping the agent: detach its programs and tc filters, unpin its maps, undo its pod network.
  const cleanup = agentCleanupArgv(s.nodeBin, s.bundleDir);
  p.steps.push(
    { id: 'agent.etc', title: 'kinglet configuration directory', kind: 'dir', path: ETC_DIR, mode: 0o755 },
    { id: 'agent.cni-bin-dir', title: 'CNI plugin directory', kind: 'dir', path: dirs.binDir, mode: 0o755 },
    ...(shim
      ? [
          nodePlugin('agent.cni-plugin-node', "the Node.js kinglet-cni plugin (the shim's fallback when the agent is down)", 'kinglet-cni-node'),
          { id: 'agent.cni-plugin', title: 'the kinglet-cni plugin (native shim: the agent runs each call)', kind: 'copy', from: CNI_SHIM_IN_BUNDLE, path: `${dirs.binDir}/kinglet-cni`, mode: 0o755 } as const,
        ]
      : [nodePlugin('agent.cni-plugin', 'the kinglet-cni plugin (runs the bundle with its own Node.js)', 'kinglet-cni')]),
    { id: 'agent.cni-conf-dir', title: 'CNI config directory', kind: 'dir', path: dirs.confDir, mode: 0o755 },
    { id: 'agent.conflist', title: "kinglet's CNI network config", kind: 'file', path: `${dirs.confDir}/05-kinglet.conflist`, mode: 0o644, content: conflist(AGENT_SOCKET) },
  );
  if (r === 'server') {
    p.steps.push({ id: 'agent.rbac', title: "the agent's RBAC (auto-deployed by k3s)", kind: 'copy', from: 'manifests/agent-rbac.yaml', path: `${K3S_MANIFESTS}/kinglet-rbac.yaml`, mode: 0o600 });
  }
  p.steps.push({ id: 'agent.kubeconfig', title: "the agent's kubeconfig (direct to the API server)", kind: 'file', path: AGENT_KUBECONFIG, mode: 0o600, content: agentKubeconfig(r) });
  if (f.init === 'openrc') {
    p.steps.push({ id: 'agent.service', title: 'the agent service (OpenRC)', kind: 'unit', init: 'openrc', name: 'kinglet-agent', path: '/etc/init.d/kinglet-agent', content: agentOpenrcScript(exec, r === 'server' ? 'k3s' : 'k3s-agent'), enable: true, start: true, cleanup });
  } else {
    p.steps.push({ id: 'agent.service', title: 'the agent service (systemd)', kind: 'unit', init: 'systemd', name: 'kinglet-agent.service', path: '/etc/systemd/system/kinglet-agent.service', content: agentSystemdUnit(exec, r === 'server' ? 'k3s.service' : 'k3s-agent.service'), enable: true, start: true, cleanup });
  }
  p.steps.push({
    id: 'agent.wait-ready', title: `wait for node ${name} to be Ready`, kind: 'wait',
    argv: ['k3s', 'kubectl', '--kubeconfig', AGENT_KUBECONFIG, 'wait', '--for=condition=Ready', `node/${name}`, '--timeout=10s'],
    timeoutSec: 300, intervalSec: 5,
    fix: `the node stays NotReady: check the agent (${f.init === 'openrc' ? 'rc-service kinglet-agent status; /var/log/kinglet-agent.log' : 'journalctl -u kinglet-agent'}) and the CNI config in ${dirs.confDir}`,
  });
  return p;
}

/**
 * Verification with kinglet's own checks: the kernel gate, the BPF feature
 * probe, the agent's health, and the connectivity checks (which pick the
 * single-node subset on a one-node cluster and the full set on more). A check
 * is skipped only when it cannot run on this node, with the reason.
 */
export function planVerify(i: PlanInput): PhasePlan {
  const s = i.settings;
  const p = phase('verify');
  const cli = (args: string[]) => cliArgv(s.nodeBin, s.bundleDir, args);
  const fix = (args: string[]) => `run \`kinglet ${args.join(' ')}\` and follow its advice`;
  const check = (id: string, title: string, args: string[], needs?: string): Step => ({
    id, title, kind: 'check', argv: cli(args), fix: fix(args), ...(needs ? { needs } : {}),
  });
  // With the agent phase skipped, an agent from an earlier install may or may not be there.
  const agentNeeds = s.skip.includes('agent') ? AGENT_SOCKET : undefined;
  p.steps.push(
    check('verify.kernel', 'kernel check', ['kernel', 'check']),
    check('verify.probe', 'BPF feature probe', ['kernel', 'probe']),
    check('verify.status', 'agent status', ['status', '--api-socket', AGENT_SOCKET], agentNeeds),
  );
  const conn = { id: 'verify.connectivity', title: 'connectivity checks' };
  if (role(s) === 'agent') {
    p.steps.push({ ...conn, kind: 'skip', reason: 'a k3s agent node has no cluster-admin kubeconfig to deploy the checks with: run `kinglet connectivity test` on a server (it runs the multi-node checks once two nodes are Ready)' });
  } else if (s.k3s.skipDownload || s.k3s.installScriptPath !== undefined) {
    p.steps.push({ ...conn, kind: 'skip', reason: 'air-gapped: the checks pull their test image from a registry; run `kinglet connectivity test --image-echo <local ref> --image-client <local ref>` with an image the node has' });
  } else {
    // No --single-node: the test itself runs the single-node subset on a one-node cluster, the full set on more.
    p.steps.push(check(conn.id, conn.title, ['connectivity', 'test', '--kubeconfig', K3S_KUBECONFIG, '--api-socket', AGENT_SOCKET], agentNeeds));
  }
  return p;
}

/** Every phase's plan. `cniDirs` defaults to what the facts' containerd config says. */
export function planInstall(i: PlanInput, cniDirs?: CniDirs): Plan {
  const dirs = cniDirs ?? parseCniDirs(i.facts.k3s.containerdConfig);
  const planners: Record<PhaseName, () => PhasePlan> = {
    preflight: () => planPreflight(i),
    kernel: () => planKernel(i),
    bpffs: () => planBpffs(i),
    k3s: () => planK3s(i),
    agent: () => planAgent(i, dirs),
    verify: () => planVerify(i),
  };
  return {
    phases: PHASES.map((name) => {
      if (i.settings.skip.includes(name)) return { ...phase(name), notes: ['skipped (KINGLET_SKIP)'] };
      return planners[name]();
    }),
  };
}

export type { Problem };
