// The step vocabulary every install phase plans in. A step is plain data: a
// planner returns a list of them, `--dry-run` prints them, the applier
// executes them. Paths are host paths ("/etc/..."); the applier prefixes its
// root directory. Secrets (K3S_TOKEN) travel in `secretEnv`, never in argv,
// and are redacted in every rendering and in the recorded state.
import { createHash } from 'node:crypto';

export type PhaseName = 'preflight' | 'kernel' | 'bpffs' | 'k3s' | 'agent' | 'verify';
export const PHASES: readonly PhaseName[] = ['preflight', 'kernel', 'bpffs', 'k3s', 'agent', 'verify'];

interface Base {
  /** Stable id: the key in the state file. */
  id: string;
  title: string;
}

/** Run a command. `undo` is run by uninstall when the step had been applied. */
export interface RunStep extends Base {
  kind: 'run';
  argv: string[];
  env?: Record<string, string>;
  /** Env entries whose values are secrets: passed to the command, shown as <redacted>. */
  secretEnv?: Record<string, string>;
  /** A file the command writes: removed by uninstall. */
  creates?: string;
  undo?: string[];
}

export interface FileStep extends Base {
  kind: 'file';
  path: string;
  mode: number;
  content: string;
  /** The content holds a secret: never printed, never hashed into the state. */
  secret?: boolean;
}

/** Copy a file that exists at apply time (from the bundle, or a user-given path). */
export interface CopyStep extends Base {
  kind: 'copy';
  from: string;
  /** `from` is a path on the host (so under the root dir), not in the bundle. */
  fromHost?: boolean;
  path: string;
  mode: number;
}

export interface DirStep extends Base {
  kind: 'dir';
  path: string;
  mode: number;
}

/** A line in a config file: appended when absent; `replace` (a regex source) swaps a matching line instead. */
export interface LineStep extends Base {
  kind: 'line';
  path: string;
  line: string;
  replace?: string;
}

export interface UnitStep extends Base {
  kind: 'unit';
  init: 'systemd' | 'openrc' | 'local.d';
  /** systemd unit name (kinglet-agent.service), OpenRC service name, or local.d script name. */
  name: string;
  path: string;
  content: string;
  enable: boolean;
  start: boolean;
  /** Run by uninstall once the service is stopped and before its file goes (the agent's datapath cleanup). */
  cleanup?: string[];
}

export interface MountStep extends Base {
  kind: 'mount';
  fstype: string;
  source: string;
  target: string;
}

/** Poll a command (exit 0) or a file's existence until it succeeds or time runs out. */
export interface WaitStep extends Base {
  kind: 'wait';
  argv?: string[];
  env?: Record<string, string>;
  file?: string;
  timeoutSec: number;
  intervalSec: number;
  fix: string;
}

/** Run a read-only check; `match` (regex source) must match stdout when given. */
export interface CheckStep extends Base {
  kind: 'check';
  argv: string[];
  match?: string;
  /** A host path the check cannot run without (the agent's socket): absent at apply time, the check is skipped, saying so. */
  needs?: string;
  fix: string;
}

export interface RebootStep extends Base {
  kind: 'reboot';
  argv: string[];
}

/** End the run here on purpose (a reboot is due but not consented to). */
export interface StopStep extends Base {
  kind: 'stop';
  message: string;
}

/** A check that cannot run (not built yet, not applicable): shown, counted, never fails. */
export interface SkipStep extends Base {
  kind: 'skip';
  reason: string;
}

export type Step =
  | RunStep | FileStep | CopyStep | DirStep | LineStep | UnitStep | MountStep
  | WaitStep | CheckStep | RebootStep | StopStep | SkipStep;

/** Steps that only look: they run on every pass and are never recorded. */
export function isReadOnly(s: Step): boolean {
  return s.kind === 'wait' || s.kind === 'check' || s.kind === 'skip';
}

export interface Problem {
  severity: 'fatal' | 'warn';
  message: string;
  fix: string;
}

export interface PhasePlan {
  phase: PhaseName;
  steps: Step[];
  notes: string[];
  problems: Problem[];
}

export interface Plan {
  phases: PhasePlan[];
}

export const REDACTED = '<redacted>';

/** The step as it may be shown or stored: secret values replaced. */
export function redactStep(s: Step): Step {
  if (s.kind === 'run' && s.secretEnv) {
    const secretEnv = Object.fromEntries(Object.keys(s.secretEnv).map((k) => [k, REDACTED]));
    return { ...s, secretEnv };
  }
  if (s.kind === 'file' && s.secret) return { ...s, content: REDACTED };
  return s;
}

/**
 * The secret values a step carries, longest first, so command output can be
 * scrubbed of them: each secretEnv value, and the password inside a URL
 * value (K3S_DATASTORE_ENDPOINT=mysql://user:password@tcp(host)/db).
 */
export function secretValues(s: Step): string[] {
  if (s.kind !== 'run' || !s.secretEnv) return [];
  const out = new Set<string>();
  for (const v of Object.values(s.secretEnv)) {
    out.add(v);
    const pw = /^[a-z][\w+.-]*:\/\/[^:@/]*:([^@/]+)@/i.exec(v)?.[1];
    if (pw) out.add(pw);
  }
  return [...out].sort((a, b) => b.length - a.length);
}

/** Command output as it may be shown: every occurrence of a secret value (secretValues) replaced. */
export function redactText(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const v of secrets) if (v.length > 0) out = out.split(v).join(REDACTED);
  return out;
}

export function redactPlan(p: Plan): Plan {
  return { phases: p.phases.map((ph) => ({ ...ph, steps: ph.steps.map(redactStep) })) };
}

/**
 * What identifies a step's effect: a re-run skips a step whose id and hash
 * are recorded. Hashed after redaction, so no secret (nor a hash of one)
 * reaches the state file; a changed token alone therefore does not re-run k3s.
 */
export function stepHash(s: Step): string {
  return createHash('sha256').update(JSON.stringify(redactStep(s))).digest('hex').slice(0, 16);
}

function quote(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

export function shellLine(argv: string[]): string {
  return argv.map(quote).join(' ');
}

function envPrefix(env: Record<string, string> | undefined, secret: Record<string, string> | undefined): string {
  const parts = [
    ...Object.entries(env ?? {}).map(([k, v]) => `${k}=${quote(v)}`),
    ...Object.keys(secret ?? {}).map((k) => `${k}=${REDACTED}`),
  ];
  return parts.length ? parts.join(' ') + ' ' : '';
}

function mode(m: number): string {
  return '0' + m.toString(8);
}

/** One-line human rendering of a step, secrets redacted. */
export function describe(s: Step): string {
  switch (s.kind) {
    case 'run': return `run     ${envPrefix(s.env, s.secretEnv)}${shellLine(s.argv)}`;
    case 'file': return `file    ${s.path} (${mode(s.mode)}, ${s.secret ? 'secret content' : `${s.content.length} bytes`})`;
    case 'copy': return `copy    ${s.fromHost ? '' : '<bundle>/'}${s.from} -> ${s.path} (${mode(s.mode)})`;
    case 'dir': return `dir     ${s.path} (${mode(s.mode)})`;
    case 'line': return `line    ${s.path}: ${s.replace ? `/${s.replace}/ -> ` : '+ '}${s.line}`;
    case 'unit': return `unit    ${s.init} ${s.name} -> ${s.path}${s.enable ? ', enable' : ''}${s.start ? ', start' : ''}${s.cleanup ? `; uninstall stops it, then runs ${shellLine(s.cleanup)}` : ''}`;
    case 'mount': return `mount   -t ${s.fstype} ${s.source} ${s.target}`;
    case 'wait': return `wait    ${s.argv ? `${envPrefix(s.env, undefined)}${shellLine(s.argv)}` : `for file ${s.file}`} (up to ${s.timeoutSec}s)`;
    case 'check': return `check   ${shellLine(s.argv)}${s.match ? ` (stdout must match /${s.match}/)` : ''}${s.needs ? ` (skipped without ${s.needs})` : ''}`;
    case 'reboot': return `reboot  ${shellLine(s.argv)}`;
    case 'stop': return `stop    ${s.message}`;
    case 'skip': return `skip    ${s.reason}`;
  }
}

/** The human plan for `--dry-run`. */
export function renderPlan(p: Plan): string {
  const out: string[] = [];
  for (const ph of p.phases) {
    out.push(`== ${ph.phase}`);
    for (const pr of ph.problems) out.push(`  ${pr.severity === 'fatal' ? 'ERROR' : 'warn '} ${pr.message}\n        fix: ${pr.fix}`);
    for (const n of ph.notes) out.push(`  note  ${n}`);
    for (const s of ph.steps) out.push(`  [${s.id}] ${s.title}\n        ${describe(s)}`);
    if (ph.steps.length === 0 && ph.problems.length === 0) out.push('  (nothing to do)');
  }
  return out.join('\n') + '\n';
}

export function fatalProblems(p: Plan): Problem[] {
  return p.phases.flatMap((ph) => ph.problems.filter((x) => x.severity === 'fatal'));
}
