// Dispatch `kinglet <words...> [flags]` to a command module. Modules are
// imported lazily so that a short command (the CNI plugin, `status`) does
// not pay for the whole program at start-up.
import { CommandError, UsageError, type Io } from './io.ts';

export interface Command {
  summary: string;
  load: () => Promise<{ run(args: string[], io: Io): Promise<number> }>;
}

export const commands: Record<string, Command> = {
  agent: {
    summary: 'run the node agent (socket LB, local API) in the foreground',
    load: () => import('./commands/agent.ts'),
  },
  status: {
    summary: "the agent's health: Kubernetes connection, datapath modes, programs, maps, controllers",
    load: () => import('./commands/status.ts'),
  },
  'service list': {
    summary: 'the service frontends the agent has programmed, with their backends',
    load: () => import('./commands/service-list.ts'),
  },
  'endpoint list': {
    summary: 'the pod endpoints of this node, with their addresses and attached programs',
    load: () => import('./commands/endpoint-list.ts'),
  },
  'kernel check': {
    summary: 'does the kernel meet the minimum (4.9.17) by its effective upstream version',
    load: () => import('./commands/kernel-check.ts'),
  },
  'kernel probe': {
    summary: 'which BPF features this kernel has, and the datapath modes they give',
    load: () => import('./commands/kernel-probe.ts'),
  },
  'kernel upgrade': {
    summary: 'on EL7/8/9 below the minimum: install an ELRepo kernel and make it the boot default',
    load: () => import('./commands/kernel-upgrade.ts'),
  },
  install: {
    summary: 'turn this host into a k3s node running kinglet (--dry-run prints the plan)',
    load: () => import('./commands/install.ts'),
  },
  uninstall: {
    summary: 'undo what kinglet install did (--k3s also removes k3s)',
    load: () => import('./commands/uninstall.ts'),
  },
  'connectivity test': {
    summary: 'deploy the connectivity checks into the cluster and report PASS / FAIL / SKIP per check',
    load: () => import('./commands/connectivity-test.ts'),
  },
  lab: {
    summary: 'a kinglet cluster on this box without k3s: lab up, the connectivity checks, lab down',
    load: () => import('./commands/lab.ts'),
  },
  'lab up': {
    summary: 'create the lab (nodes as network namespaces, real agents, pods via the CNI plugin) and leave it running',
    load: () => import('./commands/lab-up.ts'),
  },
  'lab test': {
    summary: 'run the connectivity checks against the lab',
    load: () => import('./commands/lab-test.ts'),
  },
  'lab down': {
    summary: 'remove the lab (idempotent, also after a crashed lab up)',
    load: () => import('./commands/lab-down.ts'),
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((k) => k.length));
  const lines = Object.entries(commands).map(([name, c]) => `  kinglet ${name.padEnd(width)}  ${c.summary}`);
  return `usage:\n${lines.join('\n')}\n\nEach command takes --help.\n`;
}

/** Longest command name that prefixes argv, so `kernel check --json` finds `kernel check`. */
export function resolve(argv: string[]): { name: string; rest: string[] } | undefined {
  for (let n = Math.min(argv.length, 3); n > 0; n--) {
    const name = argv.slice(0, n).join(' ');
    if (commands[name]) return { name, rest: argv.slice(n) };
  }
  return undefined;
}

export async function main(argv: string[], io: Io): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    io.out(usage());
    return argv.length === 0 ? 2 : 0;
  }
  const found = resolve(argv);
  if (!found) {
    io.err(`kinglet: unknown command "${argv.join(' ')}"\n\n${usage()}`);
    return 2;
  }
  try {
    const mod = await commands[found.name]!.load();
    return await mod.run(found.rest, io);
  } catch (e) {
    if (e instanceof UsageError || e instanceof CommandError) {
      io.err(`kinglet ${found.name}: ${e.message}\n`);
      return e.exitCode;
    }
    if (String((e as { code?: unknown })?.code ?? '').startsWith('ERR_PARSE_ARGS')) {
      io.err(`kinglet ${found.name}: ${(e as Error).message}\n`);
      return 2;
    }
    const err = e as Error;
    io.err(`kinglet ${found.name}: unexpected error: ${err?.stack ?? String(e)}\n`);
    return 1;
  }
}
