// kinglet lab [up|test|down]: a whole kinglet cluster on this box (agent/lab/).
//   kinglet lab        up + test + down (down also on failure and Ctrl-C)
//   kinglet lab up     create it and leave it running
//   kinglet lab test   run the connectivity checks against it
//   kinglet lab down   remove it (idempotent; also after a crashed up)
import { parseArgs } from 'node:util';
import { exitStatus, formatDuration, jsonReport, renderReport } from '../../connectivity/report.ts';
import { DEFAULT_LAB_NAME, labDir, labNameProblem, MAX_NODES, nameFlag } from '../../lab/plan.ts';
import type { LabState } from '../../lab/state.ts';
import { CommandError, printJson, UsageError, withInterrupt, type Io } from '../io.ts';

const COMMON = `  --name <name>   which lab (default ${DEFAULT_LAB_NAME}); several labs can exist side by side`;

export const HELP = {
  all: `usage: kinglet lab [--nodes 2] [--name ${DEFAULT_LAB_NAME}] [--json] [--keep]

Builds a kinglet cluster on this machine without k3s, runs the connectivity
checks against it, and removes it again (also when something fails or on
Ctrl-C). Simulated nodes are network namespaces on a shared bridge, each with
its own cgroup, bpffs directory and a real \`kinglet agent\` fed by a directory
of YAML; pods are namespaces wired by the real CNI plugin, running small echo
servers. Nothing leaves the machine: no lab namespace has a route out, and the
host's own network namespace, routes, sysctls and root cgroup are not touched.
Needs root, the BPF objects (make -C bpf) and a kernel the datapath runs on.

  --nodes <n>     simulated nodes, 1-${MAX_NODES} (default 2; 1 runs the single-node subset)
${COMMON}
  --json          the report as JSON on stdout
  --keep          leave the lab running afterwards (then: kinglet lab test, kinglet lab down)

Exit status 1 when a check fails or the lab cannot be built. The steps one by
one: kinglet lab up, kinglet lab test, kinglet lab down.
`,
  up: `usage: kinglet lab up [--nodes 2] [--name ${DEFAULT_LAB_NAME}]

Creates the lab and leaves it running (agents and echo servers detached),
recording everything it makes in /run/kinglet-lab/<name>/state.json.

  --nodes <n>     simulated nodes, 1-${MAX_NODES} (default 2)
${COMMON}
`,
  test: `usage: kinglet lab test [--name ${DEFAULT_LAB_NAME}] [--json]

Runs the connectivity checks against a lab made by kinglet lab up and prints
check / verdict / duration / reason (as kinglet connectivity test does).
Checks whose datapath feature the agents do not report are SKIP; so is
pod-to-external (the lab has no way out). Exit status 1 on any FAIL.

${COMMON}
  --json          the report as JSON
`,
  down: `usage: kinglet lab down [--name ${DEFAULT_LAB_NAME}]

Removes the lab: stops the processes it started, deletes its network
namespaces, unmounts its bpffs, removes its cgroups and its directory.
Safe to run twice, and after a kinglet lab up that died halfway.

${COMMON}
`,
};

type Which = keyof typeof HELP;

function parse(which: Which, args: string[]) {
  const { values } = parseArgs({
    args,
    options: {
      name: { type: 'string', default: DEFAULT_LAB_NAME },
      nodes: { type: 'string', default: '2' },
      json: { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  const allowed: Record<Which, string[]> = { all: ['name', 'nodes', 'json', 'keep'], up: ['name', 'nodes'], test: ['name', 'json'], down: ['name'] };
  for (const k of ['nodes', 'json', 'keep'] as const) {
    if (!allowed[which].includes(k) && args.some((a) => a === `--${k}` || a.startsWith(`--${k}=`))) {
      throw new UsageError(`--${k} is not an option of kinglet lab${which === 'all' ? '' : ` ${which}`}\n\n${HELP[which]}`);
    }
  }
  const nameProblem = labNameProblem(values.name);
  if (nameProblem) throw new UsageError(nameProblem);
  const nodes = Number(values.nodes);
  if (!/^\d+$/.test(values.nodes) || nodes < 1 || nodes > MAX_NODES) throw new UsageError(`--nodes ${values.nodes}: a number from 1 to ${MAX_NODES}`);
  return { name: values.name, nodes, json: values.json, keep: values.keep, help: values.help };
}

const progress = (io: Io) => {
  const t0 = Date.now();
  return (text: string) => {
    const took = formatDuration(Date.now() - t0);
    io.err(`--> ${text} (${took === '-' ? '0s' : took})\n`);
  };
};

/** Runs `fn` with the lab module; a LabError (an expected failure with a remedy) comes out as a CommandError. */
async function withLab<T>(fn: (lab: typeof import('../../lab/lab.ts')) => Promise<T>): Promise<T> {
  const lab = await import('../../lab/lab.ts');
  try {
    return await fn(lab);
  } catch (e) {
    if (e instanceof lab.LabError) throw new CommandError(e.message, { cause: e });
    throw e;
  }
}

const INTERRUPTED = '\ninterrupted: stopping and cleaning up\n';

async function doUp(io: Io, name: string, nodes: number, signal: AbortSignal, downAfter = false): Promise<LabState> {
  return withLab(async ({ up, LabAborted }) => {
    try {
      return await up({ name, nodes, signal, step: progress(io) });
    } catch (e) {
      if (e instanceof LabAborted) {
        throw new CommandError(downAfter ? 'interrupted' : `interrupted; remove what was made with: kinglet lab down${nameFlag(name)}`, { cause: e });
      }
      throw e;
    }
  });
}

async function doTest(io: Io, st: LabState, json: boolean, signal?: AbortSignal): Promise<number> {
  const { runLabChecks } = await import('../../lab/run.ts');
  io.err(`--> running ${st.plan.nodes.length > 1 ? 'the connectivity checks' : 'the single-node subset of the connectivity checks'} against lab ${st.name}\n`);
  const out = await withLab(() => runLabChecks(st, {
    ...(signal ? { signal } : {}),
    onVerdict: (r) => io.err(`${r.verdict} ${r.name} (${formatDuration(r.durationMs)})\n`),
  }));
  if (json) printJson(io, jsonReport(out.info, out.results));
  else io.out(renderReport(out.info, out.results));
  return exitStatus(out.results);
}

async function doDown(io: Io, name: string): Promise<number> {
  const { down } = await import('../../lab/lab.ts');
  const r = await down({ name, step: progress(io) });
  if (!r.found) {
    io.err(`no lab named ${name}: nothing to remove\n`);
    return 0;
  }
  for (const e of r.errors) io.err(`error: ${e}\n`);
  io.err(downSummary(name, r));
  return r.errors.length ? 1 : 0;
}

/** `kinglet lab` refuses a name that is taken: what to do instead, for that lab. */
export function labExists(name: string): string {
  return `a lab named ${name} exists already: use kinglet lab test${nameFlag(name)}, or remove it with kinglet lab down${nameFlag(name)}, or pass another --name`;
}

/** The last line of `kinglet lab down`: what went, and what to run when something is left. */
export function downSummary(name: string, r: { removed: string[]; errors: string[] }): string {
  return r.errors.length
    ? `lab ${name}: ${r.removed.length} removed, ${r.errors.length} left (run kinglet lab down${nameFlag(name)} again)\n`
    : `lab ${name} removed (${r.removed.length} items)\n`;
}

export async function runUp(args: string[], io: Io): Promise<number> {
  const o = parse('up', args);
  if (o.help) {
    io.out(HELP.up);
    return 0;
  }
  const st = await withInterrupt(io, INTERRUPTED, (signal) => doUp(io, o.name, o.nodes, signal));
  const flag = nameFlag(o.name);
  io.out(`lab ${st.name} is up: ${st.plan.nodes.map((n) => `${n.name} ${n.ip}`).join(', ')}; ` +
    `${st.pods.length} pods (${st.pods.filter((p) => p.name.startsWith('echo-')).map((p) => `${p.name} ${p.ip}`).join(', ')}, ...)\n` +
    `next: kinglet lab test${flag}; kinglet status --api-socket ${st.plan.nodes[0]!.sock}; kinglet lab down${flag}\n`);
  return 0;
}

export async function runTest(args: string[], io: Io): Promise<number> {
  const o = parse('test', args);
  if (o.help) {
    io.out(HELP.test);
    return 0;
  }
  const st = await withLab(({ loadLab }) => loadLab(o.name));
  return withInterrupt(io, INTERRUPTED, (signal) => doTest(io, st, o.json, signal));
}

export async function runDown(args: string[], io: Io): Promise<number> {
  const o = parse('down', args);
  if (o.help) {
    io.out(HELP.down);
    return 0;
  }
  return doDown(io, o.name);
}

export async function run(args: string[], io: Io): Promise<number> {
  const o = parse('all', args);
  if (o.help) {
    io.out(HELP.all);
    return 0;
  }
  await withLab(({ preflight }) => preflight());
  const { existsSync } = await import('node:fs');
  // Someone's lab: never tear it down from here.
  if (existsSync(labDir(o.name))) throw new CommandError(labExists(o.name));
  let status = 1;
  await withInterrupt(io, INTERRUPTED, async (signal) => {
    try {
      const st = await doUp(io, o.name, o.nodes, signal, !o.keep);
      status = await doTest(io, st, o.json, signal);
    } catch (e) {
      if (e instanceof CommandError) io.err(`kinglet lab: ${e.message}\n`);
      else io.err(`kinglet lab: ${(e as Error)?.stack ?? String(e)}\n`);
      status = 1;
    } finally {
      if (o.keep && !signal.aborted) {
        io.err(`--> keeping lab ${o.name}: kinglet lab down${nameFlag(o.name)} removes it\n`);
      } else {
        const rc = await doDown(io, o.name);
        if (rc !== 0) status = 1;
      }
    }
  });
  return status;
}
