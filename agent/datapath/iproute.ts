// iproute2: the agent's view of links, addresses and routes in its own
// network namespace (`ip -json`), and batched changes (`ip -batch -`).
// Not /sys/class/net: sysfs shows the namespace of whoever mounted it, which
// is not ours when the agent was started with nsenter.
// Run through node:child_process (cni/plumbing.ts's run) rather than execa:
// execa and its ~130 modules cost the long-running agent ~18 MB of RSS
// (measured: importing this file with execa 63.8 MB, node:child_process alone
// 45.4 MB, over a bare 42.8 MB), and these calls need none of its features.
import { PlumbingError, run as exec } from '../cni/plumbing.ts';

/** exec, where a command that cannot start is an ordinary failure (exitCode null, the reason in stderr): these helpers report, they do not throw. */
async function run(cmd: string, args: string[], input?: string): Promise<{ exitCode: number | null; stdout: string; stderr: string }> {
  try {
    const r = await exec(cmd, args, input);
    return { exitCode: r.code, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    return { exitCode: null, stdout: '', stderr: e instanceof Error ? e.message : String(e) };
  }
}

export interface IpLink {
  ifindex: number;
  ifname: string;
  address?: string;
  mtu?: number;
  flags?: string[];
  operstate?: string;
  link_type?: string;
  addr_info?: { family: string; local: string; prefixlen: number; scope?: string }[];
}

export interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  scope?: string;
  flags?: string[];
}

/** A failed `ip` call: the message, and ip's stderr as is (PlumbingError's shape, under its own name). */
export class IprouteError extends PlumbingError {
  override name = 'IprouteError';
}

function firstLines(s: string): string {
  return s.split('\n').filter((l) => l.trim() && !l.startsWith('Command failed')).slice(0, 5).join('; ');
}

/** `ip -json <args>`, parsed. */
export async function ipJson<T>(args: string[]): Promise<T> {
  const r = await run('ip', ['-json', ...args]);
  if (r.exitCode !== 0) throw new IprouteError(`ip ${args.join(' ')}: ${firstLines(r.stderr) || `exit ${r.exitCode}`}`, r.stderr);
  const out = r.stdout.trim();
  return (out ? JSON.parse(out) : []) as T;
}

/** Every link with its addresses. */
export async function listLinks(): Promise<IpLink[]> {
  return ipJson<IpLink[]>(['address', 'show']);
}

/** One link by name, or undefined when there is no such device. */
export async function linkByName(name: string): Promise<IpLink | undefined> {
  const r = await run('ip', ['-json', 'address', 'show', 'dev', name]);
  if (r.exitCode !== 0) {
    if (/does not exist|Cannot find device/.test(r.stderr)) return undefined;
    throw new IprouteError(`ip address show dev ${name}: ${firstLines(r.stderr)}`, r.stderr);
  }
  return (JSON.parse(r.stdout || '[]') as IpLink[])[0];
}

/** The device of the IPv4 default route, if any. */
export async function defaultRouteDevice(): Promise<string | undefined> {
  const routes = await ipJson<IpRoute[]>(['-4', 'route', 'show', 'default']);
  return routes.find((r) => r.dev)?.dev;
}

/**
 * Run lines through `ip -batch -`. With `force`, ip goes on after a failing
 * line; the returned errors name each failing line (empty: all applied).
 */
export async function ipBatch(lines: string[], opts: { force?: boolean; netnsPath?: string } = {}): Promise<string[]> {
  if (lines.length === 0) return [];
  const args = [...(opts.force ? ['-force'] : []), '-batch', '-'];
  const r = opts.netnsPath
    ? await run('nsenter', [`--net=${opts.netnsPath}`, 'ip', ...args], lines.join('\n') + '\n')
    : await run('ip', args, lines.join('\n') + '\n');
  if (r.exitCode === 0) return [];
  const errors: string[] = [];
  let pending = '';
  for (const l of r.stderr.split('\n')) {
    if (!l.trim()) continue;
    const m = /^Command failed -:(\d+)/.exec(l);
    if (m) {
      const line = lines[Number(m[1]) - 1] ?? `line ${m[1]}`;
      errors.push(`${line}: ${pending.trim() || 'failed'}`);
      pending = '';
    } else pending += (pending ? '; ' : '') + l.trim();
  }
  if (errors.length === 0) errors.push(firstLines(r.stderr) || `ip -batch exited ${r.exitCode}`);
  return errors;
}

/** Read a link inside another network namespace (by path), e.g. the pod's eth0. */
export async function linkInNetns(netnsPath: string, ifname: string): Promise<IpLink | undefined> {
  const r = await run('nsenter', [`--net=${netnsPath}`, 'ip', '-json', 'link', 'show', 'dev', ifname]);
  if (r.exitCode !== 0) return undefined;
  return (JSON.parse(r.stdout || '[]') as IpLink[])[0];
}
