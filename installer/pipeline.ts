// The pipeline: plan, refuse on fatal problems, then apply phase by phase,
// recording each mutating step as it completes. Re-planning the agent phase
// after k3s has started lets it use the CNI dirs k3s actually configured.
import { readFile, rm, rmdir } from 'node:fs/promises';
import type { ApplyContext, State, Undo } from './apply.ts';
import { ApplyError, applyStep, hostPath, loadState, recorded, saveState, undoActions } from './apply.ts';
import { parseCniDirs } from './containerd.ts';
import type { PlanInput } from './phases.ts';
import { agentCleanupArgv, planAgent, planInstall, planKernel } from './phases.ts';
import { K3S_CONTAINERD_CONFIG, STATE_DIR, STATE_FILE } from './render.ts';
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
      // k3s has run by now: its containerd config says where CNI goes.
      ph = planAgent(i, await readCniDirs(ctx.root, i.facts.k3s.containerdConfig));
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
}

/**
 * The agent service's undo, with the datapath cleanup. Installs recorded
 * before the unit step carried `cleanup` lack it: add it after the commands
 * that stop the service (the leading `run`s) and before its file goes.
 */
export function agentServiceUndo(ctx: ApplyContext, undo: Undo[]): Undo[] {
  if (undo.some((a) => a.kind === 'run' && a.argv.includes('--cleanup'))) return undo;
  const at = undo.findIndex((a) => a.kind !== 'run');
  const stops = at < 0 ? undo.length : at;
  const cleanup: Undo = { kind: 'run', argv: agentCleanupArgv(ctx.nodeBin ?? process.execPath, ctx.bundleDir) };
  return [...undo.slice(0, stops), cleanup, ...undo.slice(stops)];
}

/** Undo every recorded step, newest first. k3s itself only with `withK3s`. */
export async function runUninstall(ctx: ApplyContext, withK3s: boolean): Promise<UninstallResult> {
  const state = await loadState(ctx.root);
  const res: UninstallResult = { undone: [], kept: [] };
  for (const { id, rec } of [...state.steps].reverse()) {
    if (id === 'k3s.install' && !withK3s) {
      res.kept.push(id);
      ctx.log(`keeping k3s (pass --k3s to run its uninstall script too)`);
      continue;
    }
    ctx.log(`undo [${id}] ${rec.title}`);
    await undoActions(ctx, id === 'agent.service' ? agentServiceUndo(ctx, rec.undo) : rec.undo);
    res.undone.push(id);
  }
  await rm(hostPath(ctx.root, STATE_FILE), { force: true });
  try {
    await rmdir(hostPath(ctx.root, STATE_DIR));
  } catch { /* not empty or gone */ }
  return res;
}
