// The agent end to end, as the benchmarks measure it: spawn `kinglet agent`
// with the installed unit's node flags, poll /v1/status until every frontend
// is programmed, and read the process's memory then and 3 s later. Also the
// baselines those figures are compared with (a bare node process).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { start } from '../../lib/sandbox.ts';
import { sleep } from '../../lib/wait.ts';
import { apiRequest } from '../../../agent/api/client.ts';
import type { AgentStatus } from '../../../agent/api/types.ts';
import { AGENT_NODE_FLAGS } from '../../../installer/render.ts';
import { median, type Collector } from './bench.ts';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
export const kinglet = join(repo, 'agent', 'cli', 'kinglet.ts');

export interface Vm {
  rssMb: number;
  hwmMb: number;
}

export async function vm(pid: number): Promise<Vm> {
  const st = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(st)?.[1] ?? NaN);
  return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024 };
}

/** A bare node process: its startup time (median of 3) and its RSS once idle. */
export async function nodeBaseline(c: Collector): Promise<{ startMs: number; rssMb: number }> {
  const ms: number[] = [];
  for (let r = 0; r < 3; r++) {
    const t0 = performance.now();
    await execa(process.execPath, ['-e', '']);
    ms.push(performance.now() - t0);
  }
  const idle = start(c, [process.execPath, '-e', 'console.log("up"); setTimeout(() => {}, 20000)']);
  await idle.waitForOutput((o) => o.includes('up'));
  const v = await vm(idle.pid);
  await idle.stop('SIGKILL');
  return { startMs: median(ms), rssMb: v.rssMb };
}

export interface AgentRun {
  /** Spawn to the "agent started" log line. */
  startedMs: number;
  /** Spawn to /v1/status showing every frontend programmed. */
  programmedMs: number;
  /** Memory when that was first seen, and 3 s later (VmHWM: the peak until then). */
  atProgrammed: Vm;
  later: Vm;
  status: AgentStatus;
  /** The agent's "services programmed" log lines. */
  programmed: { ms: number; added: number }[];
  /** Its "heap compacted" log lines. */
  compactions: { beforeMb: number; afterMb: number; ms: number }[];
  /** Everything it printed (stdout and stderr), by line. */
  output: string[];
}

/**
 * Run `kinglet agent <args>` (plus --api-socket `sock`) until it has programmed
 * `frontends` frontends; stops it (SIGTERM) before returning. `env` is added
 * to the agent's environment; `kinglet` is the entry script (default: this
 * checkout's); `laterMs` replaces the 3 s of the second reading.
 */
export async function runAgent(c: Collector, args: string[], sock: string, frontends: number, opts: { env?: Record<string, string>; kinglet?: string; laterMs?: number } = {}): Promise<AgentRun> {
  const t0 = performance.now();
  // The node flags of the installed unit, so the RSS is the one a node sees.
  const agent = start(c, [process.execPath, ...AGENT_NODE_FLAGS, opts.kinglet ?? kinglet, 'agent', ...args, '--api-socket', sock], { env: opts.env });
  let startedMs = NaN;
  let status: AgentStatus | undefined;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (Number.isNaN(startedMs)) {
      try {
        await agent.waitForOutput((o) => o.includes('"agent started"'), 1);
        startedMs = performance.now() - t0;
      } catch (e) {
        if (/exited/.test((e as Error).message)) throw e;
      }
    }
    try {
      const st = await apiRequest<AgentStatus>(sock, 'GET', '/v1/status');
      if (st.services.frontends === frontends && st.services.lastApply) {
        status = st;
        break;
      }
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error(`the agent did not program every frontend within 120 s`);
    await sleep(10);
  }
  const programmedMs = performance.now() - t0;
  const atProgrammed = await vm(agent.pid);
  await sleep(opts.laterMs ?? 3000);
  const later = await vm(agent.pid);
  const log = (await agent.waitForOutput(() => true)).split('\n');
  await agent.stop('SIGTERM');
  const lines = (msg: string) => log.filter((l) => l.startsWith('{') && l.includes(`"${msg}"`)).map((l) => JSON.parse(l) as Record<string, number>);
  return {
    startedMs,
    programmedMs,
    atProgrammed,
    later,
    status,
    programmed: lines('services programmed') as AgentRun['programmed'],
    compactions: lines('heap compacted') as AgentRun['compactions'],
    output: log,
  };
}
