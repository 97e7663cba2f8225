// The lab's state file: everything `kinglet lab up` made, recorded BEFORE it
// is made (a process right after it started), so that `kinglet lab down` can
// remove a lab whose `up` crashed halfway. Written atomically (temporary file
// + rename). `down` only removes what the state file names and only when it
// lies inside the lab's own territory (checkOwnership), so a damaged or
// hand-edited state file cannot make it touch the host.
import { readFileSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { LabPlan } from './plan.ts';

export const STATE_VERSION = 1;

export interface ProcessRecord {
  pid: number;
  /** /proc/<pid>/stat starttime (clock ticks since boot): tells our process from a recycled PID. */
  startTime: number;
  role: 'agent' | 'server' | 'external';
  name: string;
  log: string;
}

export interface PodRecord {
  name: string;
  node: string;
  netns: string;
  containerId: string;
  ip: string;
  hostIfname: string;
}

export interface LabState {
  version: number;
  name: string;
  createdAt: string;
  /** True once `up` finished: `lab test` runs only against a complete lab. */
  complete: boolean;
  plan: LabPlan;
  /** In creation order; removed in reverse. */
  netns: string[];
  mounts: string[];
  cgroups: string[];
  dirs: string[];
  processes: ProcessRecord[];
  pods: PodRecord[];
}

export function newState(plan: LabPlan, now = new Date()): LabState {
  return {
    version: STATE_VERSION, name: plan.name, createdAt: now.toISOString(), complete: false, plan,
    netns: [], mounts: [], cgroups: [], dirs: [], processes: [], pods: [],
  };
}

export class StateError extends Error {
  override name = 'StateError';
}

function isRec(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const strings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

/** Parse and validate a state file's text (shape only; see checkOwnership for what it may name). */
export function parseState(text: string, where = 'state file'): LabState {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new StateError(`${where} is not JSON (${(e as Error).message})`);
  }
  if (!isRec(v)) throw new StateError(`${where}: not an object`);
  if (v.version !== STATE_VERSION) throw new StateError(`${where}: version ${String(v.version)}, this kinglet reads ${STATE_VERSION}`);
  if (typeof v.name !== 'string' || !isRec(v.plan)) throw new StateError(`${where}: name or plan missing`);
  for (const k of ['netns', 'mounts', 'cgroups', 'dirs'] as const) {
    if (!strings(v[k])) throw new StateError(`${where}: ${k} must be a list of strings`);
  }
  if (!Array.isArray(v.processes) || !v.processes.every((p) => isRec(p) && Number.isInteger(p.pid) && (p.pid as number) > 1 && typeof p.startTime === 'number')) {
    throw new StateError(`${where}: processes must be a list of {pid, startTime, ...}`);
  }
  if (!Array.isArray(v.pods)) throw new StateError(`${where}: pods must be a list`);
  return v as unknown as LabState;
}

export async function readState(file: string): Promise<LabState | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  return parseState(text, file);
}

export function readStateSync(file: string): LabState | undefined {
  try {
    return parseState(readFileSync(file, 'utf8'), file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Replace the state file atomically. */
export async function writeState(file: string, st: LabState): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${dirname(file)}/.state.json.tmp`;
  await writeFile(tmp, JSON.stringify(st, null, 2) + '\n', { mode: 0o600 });
  await rename(tmp, file);
}

/** What a lab named `name` may own: anything the state names outside of it is refused. */
export interface Territory {
  name: string;
  /** The lab's directory (<root>/<name>). */
  dir: string;
  /** The lab's cgroup (<cgroup2>/kinglet-lab-<name>). */
  cgroup: string;
  /** Network namespace prefix (kllab-<name>-). */
  prefix: string;
}

const under = (path: string, base: string): boolean =>
  (path === base || path.startsWith(`${base}/`)) && !path.split('/').includes('..');

/**
 * The entries of a state file that lie outside the lab's territory (each with
 * why). `down` refuses to act on those entries and reports them.
 */
export function checkOwnership(st: LabState, t: Territory): string[] {
  const bad: string[] = [];
  if (st.name !== t.name) bad.push(`state names lab ${JSON.stringify(st.name)}, not ${JSON.stringify(t.name)}`);
  for (const n of st.netns) {
    if (!n.startsWith(t.prefix) || n.length === t.prefix.length || n.includes('/')) bad.push(`network namespace ${n} (not ${t.prefix}*)`);
  }
  for (const m of st.mounts) if (!under(m, t.dir) || m === t.dir) bad.push(`mount ${m} (not below ${t.dir})`);
  for (const c of st.cgroups) if (!under(c, t.cgroup)) bad.push(`cgroup ${c} (not ${t.cgroup} or below)`);
  for (const d of st.dirs) if (!under(d, t.dir)) bad.push(`directory ${d} (not ${t.dir} or below)`);
  for (const p of st.processes) if (!Number.isInteger(p.pid) || p.pid <= 1) bad.push(`process ${p.pid}`);
  return bad;
}

/** starttime from the text of /proc/<pid>/stat (field 22), or undefined. */
export function parseStartTime(stat: string): number | undefined {
  const close = stat.lastIndexOf(')');
  if (close < 0) return undefined;
  const fields = stat.slice(close + 2).split(' ');
  const v = Number(fields[19]);
  return Number.isFinite(v) ? v : undefined;
}

/** The process state letter from /proc/<pid>/stat (R, S, Z, ...), or undefined. */
export function parseProcState(stat: string): string | undefined {
  const close = stat.lastIndexOf(')');
  if (close < 0) return undefined;
  return stat.slice(close + 2).split(' ')[0];
}
