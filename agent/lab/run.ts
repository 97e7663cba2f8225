// `kinglet lab test`: the connectivity suite against a running lab. The
// checks run from here: each client is a short process started inside the
// check's client pod (or the node's own namespace for host clients), in the
// node's cgroup where the socket LB applies, as it would on a real node.
// Capabilities come from the agents' /v1/status, as for the cluster runner:
// a datapath capability counts only when every node's agent reports it.
import { execa } from 'execa';
import { apiRequest } from '../api/client.ts';
import { capabilitiesFromAgent, type AgentCapabilitySource } from '../connectivity/cluster.ts';
import type { RunInfo } from '../connectivity/report.ts';
import { selectChecks, SUITE, type Capability, type CheckDef, type CheckResult, type Suite } from '../connectivity/suite.ts';
import { ECHO, LabError } from './lab.ts';
import { nameFlag } from './plan.ts';
import { clientPlace, expectedServer, resolveTarget } from './resolve.ts';
import type { LabState } from './state.ts';
import { inCgroupAndNetns } from './system.ts';

/** Why pod-to-external is skipped in a lab. */
export const NO_INTERNET = 'the lab has no route out of the machine (by design): pods cannot reach the internet';

export interface LabRunOptions {
  suite?: Suite;
  /** Per-attempt timeout (ms) and attempts for checks expecting success. */
  timeoutMs?: number;
  attempts?: number;
  onVerdict?: (r: CheckResult) => void;
  signal?: AbortSignal;
}

export interface GetResult { ok: boolean; status?: number; body?: string; error?: string; attempts: number }

/** The verdict of one check from the client's result. Pure. */
export function verdictOf(check: CheckDef, r: GetResult, target: string): { verdict: 'PASS' | 'FAIL'; reason: string } {
  const want = expectedServer(check);
  const answeredBy = r.body?.trim().split(' ')[1];
  if (check.expect === 'denied') {
    if (r.ok) return { verdict: 'FAIL', reason: `${target} answered (${answeredBy ?? 'unknown'}) although the policy denies it` };
    return { verdict: 'PASS', reason: `no answer from ${target} (${r.error ?? `HTTP ${r.status}`}), as the policy requires` };
  }
  if (!r.ok) {
    const why = r.error === 'TIMEOUT' ? 'timed out' : r.error ?? `HTTP ${r.status}`;
    return { verdict: 'FAIL', reason: `${target}: ${why} (${r.attempts} attempt${r.attempts === 1 ? '' : 's'})` };
  }
  if (want && answeredBy !== want) return { verdict: 'FAIL', reason: `${target} answered as ${answeredBy ?? '?'}, expected ${want}` };
  return { verdict: 'PASS', reason: `${answeredBy ?? 'answered'} via ${target}` };
}

/** The agents' view of the datapath capabilities (intersection over the nodes). */
export async function labCapabilities(st: LabState): Promise<{ caps: Capability[]; notes: string[] }> {
  let common: Set<Capability> | undefined;
  const notes: string[] = [];
  for (const n of st.plan.nodes) {
    let s: AgentCapabilitySource;
    try {
      s = await apiRequest<AgentCapabilitySource>(n.sock, 'GET', '/v1/status', undefined, 5000);
    } catch (e) {
      throw new LabError(`the agent on ${n.name} does not answer (${(e as Error).message}); its log: ${n.log}. Recreate the lab: kinglet lab down${nameFlag(st.name)} && kinglet lab up${nameFlag(st.name)}`);
    }
    const mine = new Set(capabilitiesFromAgent(s));
    common = common ? new Set([...common].filter((c) => mine.has(c))) : mine;
  }
  const caps = [...(common ?? [])];
  notes.push(`datapath capabilities from the agents on ${st.plan.nodes.map((n) => n.name).join(', ')}: ${caps.length ? caps.join(', ') : 'none of networkpolicy, nodeport, hostport'}`);
  return { caps, notes };
}

async function runClient(netns: string, cgroup: string, host: string, port: number, timeoutMs: number, attempts: number, signal?: AbortSignal): Promise<GetResult> {
  const argv = inCgroupAndNetns(cgroup, netns, [process.execPath, ECHO, 'get', host, String(port), String(timeoutMs), String(attempts)]);
  const r = await execa(argv[0]!, argv.slice(1), { reject: false, timeout: timeoutMs * attempts + 15_000, ...(signal ? { cancelSignal: signal } : {}) });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as GetResult;
  } catch {
    return { ok: false, error: `client failed (exit ${r.exitCode ?? r.signal}): ${(r.stderr || r.stdout).trim().slice(0, 300)}`, attempts: 0 };
  }
}

/**
 * Why the multi-node checks are skipped, with the command for a lab that has
 * them. A kept lab has to go first (`lab` refuses a name that exists), so the
 * advice says so; a lab that is not kept is already gone by the time it is read.
 */
export function singleNodeReason(name: string, nodes: number): string {
  return `needs a second node (lab ${name} has ${nodes}: kinglet lab --nodes 2${nameFlag(name)}; for a kept lab, kinglet lab down${nameFlag(name)} first)`;
}

export async function runLabChecks(st: LabState, opts: LabRunOptions = {}): Promise<{ info: RunInfo; results: CheckResult[] }> {
  const suite = opts.suite ?? SUITE;
  const started = Date.now();
  const { caps, notes } = await labCapabilities(st);
  notes.push(`lab ${st.name}: state in ${st.plan.stateFile}`);
  const nodes = st.plan.nodes.length;
  const why: Partial<Record<Capability, string>> = { internet: NO_INTERNET };
  if (nodes < 2) why['multi-node'] = singleNodeReason(st.name, nodes);
  const plan = selectChecks(suite, { nodes, capabilities: caps, why });
  const podIPs = Object.fromEntries(st.pods.map((p) => [p.name, p.ip]));
  const timeoutMs = opts.timeoutMs ?? 2000;
  const attempts = opts.attempts ?? 3;
  const results = await Promise.all(plan.checks.map(async (p): Promise<CheckResult> => {
    const base = { name: p.check.name, description: p.check.description };
    if (!p.run) return { ...base, verdict: 'SKIP', reason: p.reason, durationMs: 0 };
    let r: CheckResult;
    try {
      const place = clientPlace(p.check, st.plan);
      const t = resolveTarget(p.check, st.plan, podIPs, suite);
      const denied = p.check.expect === 'denied';
      const got = await runClient(place.netns, place.cgroup, t.host, t.port, denied ? 3000 : timeoutMs, denied ? 1 : attempts, opts.signal);
      const from = place.kind === 'pod' ? `pod ${place.pod} on ${place.node}` : `${place.node}'s network`;
      const v = verdictOf(p.check, got, `${t.host}:${t.port} (${t.via})`);
      r = { ...base, verdict: v.verdict, reason: `from ${from}: ${v.reason}`, durationMs: Date.now() - started };
    } catch (e) {
      r = { ...base, verdict: 'FAIL', reason: opts.signal?.aborted ? 'interrupted' : (e as Error).message, durationMs: Date.now() - started };
    }
    opts.onVerdict?.(r);
    return r;
  }));
  const info: RunInfo = {
    runner: 'lab', nodes: st.plan.nodes.length, singleNode: plan.singleNode, capabilities: plan.capabilities, notes, durationMs: Date.now() - started,
  };
  return { info, results };
}
