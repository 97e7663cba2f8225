// Installer settings: what the operator chose, from the environment
// (install.sh exports the same variables) and command-line flags.
import type { PhaseName } from './steps.ts';
import { PHASES } from './steps.ts';

export interface Settings {
  /** Where the kinglet bundle lives on the host (agent/cli/kinglet.ts inside). */
  bundleDir: string;
  /** The node binary the services run with. */
  nodeBin: string;
  allowReboot: boolean;
  kernelChannel: 'lt' | 'ml';
  /** Base URL of an ELRepo-layout mirror serving kernel RPMs (required on EL7). */
  kernelMirror?: string;
  /** Directory of local kernel RPMs (EL7 alternative to a mirror). */
  kernelRpmDir?: string;
  /** Where ELRepo's key and elrepo-release RPMs come from. */
  elrepoUrl: string;
  skip: PhaseName[];
  k3s: {
    /** Set: join as an agent. */
    url?: string;
    token?: string;
    /** The user's INSTALL_K3S_EXEC. */
    exec: string;
    installScriptUrl: string;
    /** A local copy of k3s's install script (air-gapped). */
    installScriptPath?: string;
    /** INSTALL_K3S_SKIP_DOWNLOAD: the k3s binary is provided locally. */
    skipDownload: boolean;
    /** Air-gapped: a k3s binary to put at /usr/local/bin/k3s. */
    binary?: string;
    /** Air-gapped: images tarball for /var/lib/rancher/k3s/agent/images/. */
    images?: string;
    nodeName?: string;
    /** Every other INSTALL_K3S_* and K3S_* variable, passed through unchanged. */
    passEnv: Record<string, string>;
  };
}

function flag(v: string | undefined): boolean {
  return v !== undefined && /^(1|true|yes|on)$/i.test(v);
}

export const DEFAULT_K3S_INSTALL_URL = 'https://get.k3s.io';
export const DEFAULT_ELREPO_URL = 'https://www.elrepo.org';

export function parseSkip(v: string | undefined): PhaseName[] {
  if (!v) return [];
  const out: PhaseName[] = [];
  for (const w of v.split(/[\s,]+/).filter(Boolean)) {
    const p = PHASES.find((x) => x === w);
    if (!p) throw new Error(`KINGLET_SKIP: unknown phase "${w}" (phases: ${PHASES.join(', ')})`);
    out.push(p);
  }
  return out;
}

/** Settings from an environment (process.env, or a test's object). */
export function settingsFromEnv(env: Record<string, string | undefined>, bundleDir: string, nodeBin: string): Settings {
  const channel = env['KINGLET_KERNEL_CHANNEL'] ?? 'lt';
  if (channel !== 'lt' && channel !== 'ml') {
    throw new Error(`KINGLET_KERNEL_CHANNEL must be "lt" (long-term) or "ml" (mainline), not "${channel}"`);
  }
  const consumed = new Set(['K3S_URL', 'K3S_TOKEN', 'INSTALL_K3S_EXEC', 'INSTALL_K3S_SKIP_DOWNLOAD', 'K3S_NODE_NAME']);
  const passEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (v !== undefined && (k.startsWith('INSTALL_K3S_') || k.startsWith('K3S_')) && !consumed.has(k)) passEnv[k] = v;
  }
  const k3s: Settings['k3s'] = {
    exec: env['INSTALL_K3S_EXEC'] ?? '',
    installScriptUrl: env['KINGLET_K3S_INSTALL_URL'] || DEFAULT_K3S_INSTALL_URL,
    skipDownload: flag(env['INSTALL_K3S_SKIP_DOWNLOAD']),
    passEnv,
  };
  const opt = (k: string): string | undefined => env[k] || undefined;
  if (opt('K3S_URL')) k3s.url = opt('K3S_URL');
  if (opt('K3S_TOKEN')) k3s.token = opt('K3S_TOKEN');
  if (opt('KINGLET_K3S_INSTALL_SCRIPT')) k3s.installScriptPath = opt('KINGLET_K3S_INSTALL_SCRIPT');
  if (opt('KINGLET_K3S_BINARY')) k3s.binary = opt('KINGLET_K3S_BINARY');
  if (opt('KINGLET_K3S_IMAGES')) k3s.images = opt('KINGLET_K3S_IMAGES');
  if (opt('K3S_NODE_NAME')) k3s.nodeName = opt('K3S_NODE_NAME');
  const s: Settings = {
    bundleDir,
    nodeBin,
    allowReboot: flag(env['KINGLET_ALLOW_REBOOT']),
    kernelChannel: channel,
    elrepoUrl: (env['KINGLET_ELREPO_URL'] || DEFAULT_ELREPO_URL).replace(/\/+$/, ''),
    skip: parseSkip(env['KINGLET_SKIP']),
    k3s,
  };
  if (opt('KINGLET_KERNEL_MIRROR')) s.kernelMirror = opt('KINGLET_KERNEL_MIRROR')!.replace(/\/+$/, '');
  if (opt('KINGLET_KERNEL_RPM_DIR')) s.kernelRpmDir = opt('KINGLET_KERNEL_RPM_DIR');
  return s;
}

/**
 * The variables a resumed run needs to continue with the same choices:
 * written (mode 0600, root only) next to the state for the boot-time hook.
 */
export function resumeEnv(env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) continue;
    if (k.startsWith('KINGLET_') || k.startsWith('K3S_') || k.startsWith('INSTALL_K3S_')) out[k] = v;
  }
  return out;
}
