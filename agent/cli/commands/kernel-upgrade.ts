// `kinglet kernel upgrade`: the installer's kernel phase alone. On EL7/8/9
// below the minimum: ELRepo kernel-lt/ml, made the boot default and
// verified; reboots only with consent.
import { planKernel } from '../../../installer/phases.ts';
import { runKernelUpgrade } from '../../../installer/pipeline.ts';
import type { Deps } from '../../../installer/cli.ts';
import { COMMON_OPTIONS, context, guard, prepare, printPlan, realDeps, report } from '../../../installer/cli.ts';
import { fatalProblems } from '../../../installer/steps.ts';
import { commandFlags, type Io } from '../io.ts';

const HELP = `usage: kinglet kernel upgrade [--dry-run [--json]] [--facts <file>] [--allow-reboot]

When the running kernel is below kinglet's minimum: on CentOS/RHEL/Rocky/Alma
7-9 install ELRepo's kernel-lt (KINGLET_KERNEL_CHANNEL=ml for kernel-ml), make it
the boot default and check that it is; elsewhere say which package to install.
EL7 needs KINGLET_KERNEL_MIRROR (a yum repository URL) or KINGLET_KERNEL_RPM_DIR.

  --dry-run        print the runbook, change nothing
  --json           as JSON
  --facts <file>   plan for the host described by this JSON file (with --dry-run)
  --allow-reboot   reboot into the new kernel (KINGLET_ALLOW_REBOOT=1)

Exit status (--dry-run: 1 when the plan has errors): 0 nothing to do or rebooting, 1 failed, 2 bad usage, 3 installed: reboot due.
`;

export async function runWith(args: string[], io: Io, deps: Deps): Promise<number> {
  const values = commandFlags(args, { ...COMMON_OPTIONS }, HELP);
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const { input, dryRun } = await prepare(deps, { dryRun: values['dry-run'], json: values.json, facts: values.facts, allowReboot: values['allow-reboot'] }, 'kinglet kernel upgrade');
  if (dryRun) {
    const plan = { phases: [planKernel(input, false)] };
    printPlan(io, plan, values.json);
    return fatalProblems(plan).length ? 1 : 0;
  }
  const outcome = await guard(() => runKernelUpgrade(context(deps, io), input));
  return report(io, outcome, values.json, 'kinglet kernel upgrade');
}

export function run(args: string[], io: Io): Promise<number> {
  return runWith(args, io, realDeps());
}
