// `kinglet uninstall`: undo every step `kinglet install` recorded, newest
// first; k3s itself only with --k3s (through k3s's own uninstall script).
import { parseArgs } from 'node:util';
import { runUninstall } from '../../../installer/pipeline.ts';
import type { Deps } from '../../../installer/cli.ts';
import { context, guard, realDeps } from '../../../installer/cli.ts';
import { printJson, UsageError, type Io } from '../io.ts';

const HELP = `usage: kinglet uninstall [--k3s] [--json]

Reverses what kinglet install recorded in /var/lib/kinglet/state.json: the
agent service (stopped first, then its datapath removed with \`kinglet agent
--cleanup\`: programs and tc filters detached, maps unpinned, pod network
undone), CNI plugin and config, RBAC, kubeconfig, mounts and mount units it
added, boot hooks. The kernel it installed stays.

  --k3s    also run k3s's uninstall script (k3s-uninstall.sh / k3s-agent-uninstall.sh)
  --json   print what was undone as JSON
`;

export async function runWith(args: string[], io: Io, deps: Deps): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args, strict: true, allowPositionals: false,
      options: { k3s: { type: 'boolean', default: false }, json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } },
    }));
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n\n${HELP}`, { cause: e });
  }
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const res = await guard(() => runUninstall(context(deps, io), values.k3s));
  if (values.json) printJson(io, res);
  else io.out(`kinglet uninstall: undid ${res.undone.length} step(s)${res.kept.length ? `; kept ${res.kept.join(', ')}` : ''}\n`);
  return 0;
}

export function run(args: string[], io: Io): Promise<number> {
  return runWith(args, io, realDeps());
}
