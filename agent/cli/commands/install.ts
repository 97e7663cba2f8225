// `kinglet install`: preflight -> kernel -> bpffs -> k3s -> agent -> verify.
// Settings come from the environment (as install.sh passes them) and flags.
import { planInstall } from '../../../installer/phases.ts';
import { runInstall } from '../../../installer/pipeline.ts';
import type { Deps } from '../../../installer/cli.ts';
import { COMMON_OPTIONS, context, guard, prepare, printPlan, realDeps, report } from '../../../installer/cli.ts';
import { fatalProblems } from '../../../installer/steps.ts';
import { commandFlags, type Io } from '../io.ts';

const HELP = `usage: kinglet install [--dry-run [--json]] [--facts <file>] [--allow-reboot] [--skip <phases>] [--resume]

Turns this host into a k3s node running kinglet: preflight, kernel (ELRepo
upgrade on EL7/8/9 when below 4.9.17), bpffs, k3s, agent, verify. Steps
already done (recorded in /var/lib/kinglet/state.json) are skipped.

  --dry-run        print the plan, change nothing (also KINGLET_DRY_RUN=1)
  --json           the plan (or the outcome) as JSON
  --facts <file>   plan for the host described by this JSON file (with --dry-run)
  --allow-reboot   reboot into a new kernel when one is installed (KINGLET_ALLOW_REBOOT=1)
  --skip <list>    phases to leave out, comma separated (KINGLET_SKIP)
  --resume         set by the boot-time hook that finishes a run cut by the kernel reboot

Environment: KINGLET_KERNEL_CHANNEL (lt|ml), KINGLET_KERNEL_MIRROR, KINGLET_KERNEL_RPM_DIR,
KINGLET_ELREPO_URL, KINGLET_K3S_INSTALL_URL, KINGLET_K3S_INSTALL_SCRIPT, KINGLET_K3S_BINARY,
KINGLET_K3S_IMAGES, KINGLET_PROGRESS_SECONDS (between "still running/waiting" lines, default 15);
K3S_URL, K3S_TOKEN, INSTALL_K3S_* are passed to k3s (a --token in INSTALL_K3S_EXEC goes as K3S_TOKEN,
so no command line shows it).

Exit status (--dry-run: 1 when the plan has errors): 0 installed (or rebooting to continue), 1 failed, 2 bad usage, 3 stopped: reboot due.
`;

export async function runWith(args: string[], io: Io, deps: Deps): Promise<number> {
  const values = commandFlags(args, { ...COMMON_OPTIONS, skip: { type: 'string' }, resume: { type: 'boolean', default: false } }, HELP);
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const { input, dryRun } = await prepare(deps, { dryRun: values['dry-run'], json: values.json, facts: values.facts, allowReboot: values['allow-reboot'] }, 'kinglet install', values.skip);
  if (dryRun) {
    const plan = planInstall(input);
    printPlan(io, plan, values.json);
    return fatalProblems(plan).length ? 1 : 0;
  }
  if (values.resume) io.err('kinglet install: resuming after reboot\n');
  const outcome = await guard(() => runInstall(context(deps, io), input));
  return report(io, outcome, values.json, 'kinglet install');
}

export function run(args: string[], io: Io): Promise<number> {
  return runWith(args, io, realDeps());
}
