// `kinglet uninstall`: undo every step `kinglet install` recorded, newest
// first; k3s itself only with --k3s (through k3s's own uninstall script).
import { describeUndo } from '../../../installer/apply.ts';
import { planUninstall, runUninstall } from '../../../installer/pipeline.ts';
import type { Deps } from '../../../installer/cli.ts';
import { context, guard, realDeps, requireRoot } from '../../../installer/cli.ts';
import { commandFlags, printJson, type Io } from '../io.ts';

const HELP = `usage: kinglet uninstall [--k3s] [--dry-run] [--json]

Reverses what kinglet install recorded in /var/lib/kinglet/state.json: the
agent service (stopped first, then its datapath removed with \`kinglet agent
--cleanup\`: programs and tc filters detached, maps unpinned, pod network
undone), CNI plugin and config, RBAC, kubeconfig, mounts and mount units it
added, boot hooks. The kernel it installed stays.

  --k3s      also run k3s's uninstall script (k3s-uninstall.sh / k3s-agent-uninstall.sh)
  --dry-run  print what would be undone, change nothing
  --json     print what was (or would be) undone as JSON

Exit status: 0 done, 1 something could not be undone (the message says how
to finish by hand; a re-run retries it), 2 bad usage.
`;

export async function runWith(args: string[], io: Io, deps: Deps): Promise<number> {
  const values = commandFlags(args, {
    k3s: { type: 'boolean', default: false }, 'dry-run': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false },
  }, HELP);
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const ctx = context(deps, io);
  if (values['dry-run']) {
    const plan = await guard(() => planUninstall(ctx, values.k3s));
    if (values.json) printJson(io, plan);
    else if (plan.undo.length === 0 && plan.kept.length === 0) io.out('kinglet uninstall: nothing recorded in /var/lib/kinglet/state.json: nothing to undo\n');
    else {
      const lines = plan.undo.flatMap((u) => [`[${u.id}] ${u.title}`, ...u.undo.map((a) => `        ${describeUndo(a)}`)]);
      if (plan.kept.length) lines.push(`kept: ${plan.kept.join(', ')} (pass --k3s to undo it too)`);
      io.out(lines.join('\n') + '\n');
    }
    return 0;
  }
  requireRoot(deps, 'kinglet uninstall');
  const res = await guard(() => runUninstall(ctx, values.k3s));
  if (values.json) printJson(io, res);
  else {
    io.out(`kinglet uninstall: undid ${res.undone.length} step(s)${res.kept.length ? `; kept ${res.kept.join(', ')}` : ''}\n`);
    if (res.kept.includes('k3s.install')) {
      io.out('note: k3s stays, without a CNI: the host\'s own networking is untouched, but new pods get no network until kinglet (or another CNI) is installed again; `kinglet uninstall --k3s` removes k3s too\n');
    }
    for (const p of res.problems) io.out(`error: ${p.message}\nfix: ${p.fix}\n`);
  }
  return res.problems.length ? 1 : 0;
}

export function run(args: string[], io: Io): Promise<number> {
  return runWith(args, io, realDeps());
}
