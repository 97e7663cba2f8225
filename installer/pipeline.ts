// The pipeline: plan, refuse on fatal problems, then apply phase by phase,
// recording each mutating step as it completes. Re-planning the agent phase
// after k3s has started lets it use the CNI dirs k3s actually configured.
import { readFile, rm, rmdir, stat } from 'node:fs/promises';
import type { ApplyContext, State, Undo } from './apply.ts';
import { ApplyError, applyStep, hostPath, loadState, recorded, saveState, undoActions } from './apply.ts';
import { parseCniDirs } from './containerd.ts';
import type { PlanInput } from './phases.ts';
import { agentCleanupArgv, planAgent, planInstall, planKernel } from './phases.ts';
import { AGENT_BPF_ROOT, K3S_CONTAINERD_CONFIG, STATE_DIR, STATE_FILE } from './render.ts';
import type { PhaseName, PhasePlan, Plan } from './steps.ts';
import { describe, isReadOnly, stepHash } from './steps.ts';

export interface Outcome {
  status: 'done' | 'stopped' | 'rebooting';
  message?: string;
  applied: number;
  skipped: number;
}

/** Steps that exist only to bring an install back after the kernel reboot. */
const RESUME_IDS = ['kernel.resume-hook', 'kernel.resume-env'];

export async function readCniDirs(root: string, fallback: string | undefined) {
  let text = fallback;
  try {
    text = await readFile(hostPath(root, K3S_CONTAINERD_CONFIG), 'utf8');
  } catch { /* not there (yet): use what the facts had */ }
  return parseCniDirs(text);
}

function refuse(plan: Plan, phases: PhaseName[]): void {
  const bad = plan.phases.filter((p) => phases.includes(p.phase)).flatMap((p) => p.problems.filter((x) => x.severity === 'fatal'));
  if (bad.length === 0) return;
  const msg = bad.map((b) => `${b.message}\n  fix: ${b.fix}`).join('\n');
  throw new ApplyError(`cannot install on this host:\n${msg}`, 'nothing was changed; fix the above and re-run');
}

async function applyPhase(ctx: ApplyContext, state: State, ph: PhasePlan, counts: { applied: number; skipped: number }): Promise<Outcome | undefined> {
  for (const pr of ph.problems) ctx.log(`[${ph.phase}] warn: ${pr.message} (fix: ${pr.fix})`);
  for (const s of ph.steps) {
    const hash = stepHash(s);
    const prev = recorded(state, s.id);
    if (!isReadOnly(s) && prev && prev.hash === hash) {
      counts.skipped++;
      continue;
    }
    ctx.log(`[${ph.phase}] ${s.title}\n    ${describe(s)}`);
    const r = await applyStep(ctx, s);
    if (r.outcome === 'stop') {
      return { status: 'stopped', message: r.message ?? s.title, ...counts };
    }
    if (r.outcome === 'reboot' && s.kind === 'reboot') {
      state.rebootedForKernel = true;
      record(state, s.id, { hash, phase: ph.phase, title: s.title, undo: [] });
      await saveState(ctx.root, state);
      ctx.log(`[${ph.phase}] rebooting now; the install resumes after boot`);
      await ctx.runner.run(s.argv);
      return { status: 'rebooting', message: 'rebooting into the new kernel', ...counts };
    }
    if (r.outcome === 'applied') {
      counts.applied++;
      // Keep the first undo: it restores the host as it was before kinglet.
      record(state, s.id, { hash, phase: ph.phase, title: s.title, undo: prev ? prev.undo : r.undo });
      await saveState(ctx.root, state);
    }
  }
  return undefined;
}

function record(state: State, id: string, rec: State['steps'][number]['rec']): void {
  const at = state.steps.findIndex((x) => x.id === id);
  if (at >= 0) state.steps[at] = { id, rec };
  else state.steps.push({ id, rec });
}

/** The whole install. `input.history` is filled from the state here. */
export async function runInstall(ctx: ApplyContext, input: PlanInput): Promise<Outcome> {
  const state = await loadState(ctx.root);
  const i: PlanInput = { ...input, history: { rebootedForKernel: state.rebootedForKernel } };
  const plan = planInstall(i);
  const wanted = plan.phases.map((p) => p.phase).filter((p) => !i.settings.skip.includes(p));
  refuse(plan, wanted);
  const counts = { applied: 0, skipped: 0 };
  for (const planned of plan.phases) {
    if (!wanted.includes(planned.phase)) continue;
    let ph = planned;
    if (planned.phase === 'agent') {
      // k3s has run by now: its containerd config says where CNI goes. Never guess.
      const dirs = await readCniDirs(ctx.root, i.facts.k3s.containerdConfig);
      if (!dirs.fromConfig) {
        throw new ApplyError(`k3s's containerd config (${K3S_CONTAINERD_CONFIG}) is missing or names no CNI directories, so kinglet cannot tell where containerd looks for its CNI plugin and config`,
          i.settings.skip.includes('k3s') ? 'start k3s once (it writes that file), or drop k3s from KINGLET_SKIP, and re-run' : 'check that k3s started (journalctl -u k3s / -u k3s-agent) and re-run');
      }
      ph = planAgent(i, dirs);
    }
    const out = await applyPhase(ctx, state, ph, counts);
    if (out) return out;
  }
  // Done: the resume hook has served its purpose.
  const hooks = state.steps.filter((x) => RESUME_IDS.includes(x.id));
  if (hooks.length) {
    await undoActions(ctx, hooks.reverse().flatMap((h) => h.rec.undo));
    state.steps = state.steps.filter((x) => !RESUME_IDS.includes(x.id));
  }
  if (hooks.length || counts.applied > 0 || !state.completed) {
    state.completed = true;
    await saveState(ctx.root, state);
  }
  return { status: 'done', ...counts };
}

/** `kinglet kernel upgrade`: the kernel phase alone, no resume hook. */
export async function runKernelUpgrade(ctx: ApplyContext, input: PlanInput): Promise<Outcome> {
  const state = await loadState(ctx.root);
  const i: PlanInput = { ...input, history: { rebootedForKernel: state.rebootedForKernel } };
  const ph = planKernel(i, false);
  refuse({ phases: [ph] }, ['kernel']);
  const counts = { applied: 0, skipped: 0 };
  return (await applyPhase(ctx, state, ph, counts)) ?? { status: 'done', ...counts };
}

export interface UninstallResult {
  undone: string[];
  kept: string[];
  /** What could not be undone, each with its fix; empty when the host is back as it was. */
  problems: { message: string; fix: string }[];
}

/** One recorded step and how uninstall would take it back. */
export interface UndoPlanEntry {
  id: string;
  title: string;
  undo: Undo[];
}

/** What `kinglet uninstall` would do, newest first, without doing it. */
export async function planUninstall(ctx: ApplyContext, withK3s: boolean): Promise<{ undo: UndoPlanEntry[]; kept: string[] }> {
  return undoPlan(ctx, await loadState(ctx.root), withK3s);
}

function undoPlan(ctx: ApplyContext, state: State, withK3s: boolean): { undo: UndoPlanEntry[]; kept: string[] } {
  const out: { undo: UndoPlanEntry[]; kept: string[] } = { undo: [], kept: [] };
  for (const { id, rec } of [...state.steps].reverse()) {
    if (id === 'k3s.install' && !withK3s) out.kept.push(id);
    else out.undo.push({ id, title: rec.title, undo: id === 'agent.service' ? agentServiceUndo(ctx, rec.undo) : rec.undo });
  }
  return out;
}

/**
 * The agent service's undo, with the datapath cleanup. Installs recorded
 * before the unit step carried `cleanup` lack it: add it after the commands
 * that stop the service (the leading `run`s) and before its file goes.
 */
function agentServiceUndo(ctx: ApplyContext, undo: Undo[]): Undo[] {
  if (undo.some((a) => a.kind === 'run' && a.argv.includes('--cleanup'))) return undo;
  const at = undo.findIndex((a) => a.kind !== 'run');
  const stops = at < 0 ? undo.length : at;
  const cleanup: Undo = { kind: 'run', argv: agentCleanupArgv(ctx.nodeBin ?? process.execPath, ctx.bundleDir) };
  return [...undo.slice(0, stops), cleanup, ...undo.slice(stops)];
}

/**
 * Undo every recorded step, newest first. k3s itself only with `withK3s`.
 * The host's networking must work afterwards: when the agent's datapath
 * cleanup fails, or its pins outlive it, that is a problem with a fix, and
 * the records of the steps not undone cleanly are kept for a re-run.
 */
export async function runUninstall(ctx: ApplyContext, withK3s: boolean): Promise<UninstallResult> {
  const state = await loadState(ctx.root);
  const res: UninstallResult = { undone: [], kept: [], problems: [] };
  const plan = undoPlan(ctx, state, withK3s);
  if (plan.kept.length) ctx.log('keeping k3s (pass --k3s to run its uninstall script too)');
  res.kept.push(...plan.kept);
  const keep = new Set(plan.kept);
  for (const { id, title, undo } of plan.undo) {
    ctx.log(`undo [${id}] ${title}`);
    const failed = await undoActions(ctx, undo);
    res.undone.push(id);
    if (id !== 'agent.service') continue;
    const cleanup = undo.find((a) => a.kind === 'run' && a.argv.includes('--cleanup'));
    const cleanupLine = cleanup?.kind === 'run' ? cleanup.argv.join(' ') : 'kinglet agent --cleanup';
    const pinsLeft = await stat(hostPath(ctx.root, AGENT_BPF_ROOT)).then(() => true, () => false);
    if (failed.includes(cleanupLine) || pinsLeft) {
      res.problems.push({
        message: failed.includes(cleanupLine)
          ? "the agent's datapath cleanup failed: its tc programs, routes or masquerade may still be in place"
          : `the agent's pinned maps are still in ${AGENT_BPF_ROOT} after its cleanup`,
        fix: `run \`${cleanupLine}\` and read its error; then check \`tc filter show dev <uplink> ingress\` lists no kinglet program`,
      });
    }
  }
  // Kept: k3s's record (so a later `uninstall --k3s` still finds it), and the
  // agent service's when its cleanup must be retried.
  const remaining = state.steps.filter((x) => keep.has(x.id) || (res.problems.length > 0 && x.id === 'agent.service'));
  if (remaining.length === 0) {
    await rm(hostPath(ctx.root, STATE_FILE), { force: true });
    try {
      await rmdir(hostPath(ctx.root, STATE_DIR));
    } catch { /* not empty or gone */ }
  } else {
    await saveState(ctx.root, { ...state, steps: remaining, completed: false, rebootedForKernel: false });
  }
  return res;
}
