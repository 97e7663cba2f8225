// `kinglet kernel probe`: which BPF features the running kernel really has,
// and the datapath modes that follow. Exit 0 when the datapath can run,
// 1 when it cannot, 2 for bad usage.
import { renderHuman, renderJson, reportForVersion, type ProbeReport } from '../../../kernel/features.ts';
import { commandFlags, UsageError, type Io } from '../io.ts';

const HELP = `usage: kinglet kernel probe [--json] [--kernel <x.y.z>]

Probes the running kernel for what kinglet's eBPF datapath uses (bpf() access,
JIT, BTF, bpffs and cgroup2 mounts, kernel config, map and program types,
cgroup socket hooks, helpers), each with the upstream kernel that brought it,
and prints the datapath modes that follow (socket LB or per-packet tc LB, ...).
Needs root for the BPF probes.

  --json            print {kernel, libbpf, features, modes} as JSON
  --kernel <x.y.z>  do not probe: show what an upstream kernel of that version has
                    by the feature table (config and mounts assumed present)

Exit status: 0 the datapath can run, 1 it cannot, 2 bad usage.
`;

export async function run(args: string[], io: Io): Promise<number> {
  const values = commandFlags(args, {
    json: { type: 'boolean', default: false },
    kernel: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  }, HELP);
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  let report: ProbeReport;
  if (values.kernel !== undefined) {
    try {
      report = reportForVersion(values.kernel);
    } catch (e) {
      throw new UsageError(`--kernel: ${(e as Error).message}`, { cause: e });
    }
  } else {
    const { probeKernel } = await import('../../../kernel/probe.ts');
    report = probeKernel();
  }
  io.out(values.json ? renderJson(report) : renderHuman(report));
  return report.modes.ok ? 0 : 1;
}
