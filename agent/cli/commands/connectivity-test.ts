// kinglet connectivity test: the connectivity suite in a running cluster.
// Applies manifests/connectivity-check.yaml into a namespace of its own, waits
// for each check's client pod to become Ready (its readiness probe is the
// check), prints the verdict table, exits 1 on any FAIL, deletes the namespace
// unless --keep.
import { parseArgs } from 'node:util';
import { apiRequest, ApiClientError } from '../../api/client.ts';
import { DEFAULT_API_SOCKET } from '../../api/types.ts';
import {
  capabilitiesFromAgent, ClusterError, DEFAULT_IMAGE, DEFAULT_NAMESPACE, runInCluster,
  type AgentCapabilitySource, type Progress,
} from '../../connectivity/cluster.ts';
import { exitStatus, formatDuration, jsonReport, renderReport } from '../../connectivity/report.ts';
import { CAPABILITIES, isCapability, MISSING_REASON, type Capability } from '../../connectivity/suite.ts';
import { resolveEndpoint } from '../../source/kube.ts';
import { CommandError, printJson, UsageError, withInterrupt, type Io } from '../io.ts';

const USAGE = `usage: kinglet connectivity test [--kubeconfig <file>] [--namespace ${DEFAULT_NAMESPACE}] [--keep]
         [--timeout 300s] [--single-node] [--json] [--image-echo <ref>] [--image-client <ref>]
         [--api-socket <path>] [--capability <name>]...

Deploys the connectivity checks (echo servers and one client per check whose
readiness probe is the check) into a namespace of its own, waits until each
client is Ready (PASS) or --timeout (FAIL, with the last probe failure), prints
check / verdict / duration / reason, and deletes the namespace unless --keep.
Exit status 1 when any check fails.

Checks whose feature is missing are SKIPped with the reason: NetworkPolicy,
NodePort and HostPort follow the kinglet agent on this node (--api-socket);
when it cannot be reached none of them is assumed. pod-to-external-1111 needs
--capability internet. Multi-node checks need two Ready nodes; --single-node
runs the single-node subset anyway.

Images (default ${DEFAULT_IMAGE} for both): --image-echo for the servers
(needs busybox httpd + sh), --image-client for the clients (sh, wget, grep).
`;

/** Accepts 300, 300s, 5m, 1m30s, 1500ms, 1h. */
export function parseDuration(text: string): number {
  const t = text.trim();
  if (/^\d+$/.test(t)) return Number(t) * 1000;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let total = 0;
  let consumed = 0;
  for (const m of t.matchAll(re)) {
    if (m.index !== consumed) break;
    consumed += m[0].length;
    const n = Number(m[1]);
    total += m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : n * 3_600_000;
  }
  if (consumed !== t.length || t.length === 0) throw new UsageError(`--timeout: cannot read ${JSON.stringify(text)} as a duration (e.g. 300s, 5m)`);
  return total;
}

/** Progress on stderr: a line per change, or one redrawn status line on a terminal. */
export function progressPrinter(io: Io, tty: boolean): { onProgress: (p: Progress) => void; done: () => void } {
  let drawn = false;
  const clear = () => {
    if (drawn) io.err('\r\x1b[2K');
    drawn = false;
  };
  return {
    onProgress(p) {
      if (p.kind === 'waiting') {
        const text = `waiting: ${p.ready}/${p.total} ready, ${formatDuration(p.elapsedMs)}; pending: ${p.pending.join(', ')}`;
        if (tty) {
          clear();
          io.err(text.length > 160 ? text.slice(0, 157) + '...' : text);
          drawn = true;
        } else {
          io.err(`${text}\n`);
        }
        return;
      }
      clear();
      if (p.kind === 'step') io.err(`--> ${p.text}\n`);
      else io.err(`${p.result.verdict} ${p.result.name} (${formatDuration(p.result.durationMs)})${p.result.reason ? `: ${p.result.reason}` : ''}\n`);
    },
    done: clear,
  };
}

export interface Deps {
  tty?: boolean;
  signal?: AbortSignal;
  pollMs?: number;
  manifest?: string;
}

export async function run(args: string[], io: Io): Promise<number> {
  return withInterrupt(
    io,
    '\ninterrupted: failing what is left and cleaning up (press again to stop at once)\n',
    (signal) => runWith(args, io, { tty: process.stderr.isTTY === true, signal }),
    true,
  );
}

export async function runWith(args: string[], io: Io, deps: Deps = {}): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      kubeconfig: { type: 'string' },
      namespace: { type: 'string', short: 'n', default: DEFAULT_NAMESPACE },
      keep: { type: 'boolean', default: false },
      timeout: { type: 'string', default: '300s' },
      'single-node': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      'image-echo': { type: 'string' },
      'image-client': { type: 'string' },
      'api-socket': { type: 'string', default: DEFAULT_API_SOCKET },
      capability: { type: 'string', multiple: true, default: [] },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    io.out(USAGE);
    return 0;
  }
  const timeoutMs = parseDuration(values.timeout);
  if (timeoutMs <= 0) throw new UsageError('--timeout must be positive');
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(values.namespace) || values.namespace.length > 63) {
    throw new UsageError(`--namespace ${JSON.stringify(values.namespace)} is not a valid namespace name`);
  }
  const declared: Capability[] = [];
  for (const c of values.capability.flatMap((x) => x.split(',')).map((x) => x.trim()).filter(Boolean)) {
    if (!isCapability(c)) throw new UsageError(`--capability: unknown ${JSON.stringify(c)} (one of ${CAPABILITIES.filter((x) => x !== 'multi-node').join(', ')})`);
    if (c === 'multi-node') throw new UsageError('--capability multi-node: comes from the number of Ready nodes; use --single-node to leave the multi-node checks out');
    declared.push(c);
  }

  // Capabilities: the agent's word for the datapath, the user's for the rest.
  const notes: string[] = [];
  const why: Partial<Record<Capability, string>> = {};
  const caps = new Set<Capability>(declared);
  try {
    const st = await apiRequest<AgentCapabilitySource>(values['api-socket'], 'GET', '/v1/status', undefined, 3000);
    const fromAgent = capabilitiesFromAgent(st);
    for (const c of fromAgent) caps.add(c);
    notes.push(`datapath capabilities from the agent on ${st.node?.name ?? 'this node'}: ${fromAgent.length ? fromAgent.join(', ') : 'none of networkpolicy, nodeport, hostport'}`);
  } catch (e) {
    const msg = e instanceof ApiClientError ? e.message : (e as Error).message;
    notes.push(`agent not reachable (${msg}): assuming none of the optional datapath capabilities`);
    for (const c of ['networkpolicy', 'nodeport', 'hostport'] as const) {
      if (!caps.has(c)) why[c] = `${MISSING_REASON[c].replace(/ is not .*$/, '')} support unknown (agent not reachable): assumed absent`;
    }
  }
  if (!caps.has('internet')) why.internet = 'internet access not declared (pass --capability internet to run it)';
  if (declared.length) notes.push(`declared with --capability: ${declared.join(', ')}`);

  let kc;
  try {
    const ep = resolveEndpoint(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {});
    kc = ep.kc;
    notes.push(`Kubernetes API: ${ep.endpoint} (${ep.reason})`);
  } catch (e) {
    throw new CommandError((e as Error).message.replace(/^kube source: /, ''), { cause: e });
  }

  const progress = progressPrinter(io, deps.tty === true);
  let result;
  try {
    result = await runInCluster({
      kc,
      namespace: values.namespace,
      timeoutMs,
      keep: values.keep,
      singleNode: values['single-node'],
      images: { echo: values['image-echo'] ?? DEFAULT_IMAGE, client: values['image-client'] ?? DEFAULT_IMAGE },
      capabilities: [...caps],
      why,
      notes,
      onProgress: progress.onProgress,
      ...(deps.signal ? { signal: deps.signal } : {}),
      ...(deps.pollMs !== undefined ? { pollMs: deps.pollMs } : {}),
      ...(deps.manifest !== undefined ? { manifest: deps.manifest } : {}),
    });
  } catch (e) {
    progress.done();
    if (e instanceof ClusterError) throw new CommandError(e.message, { cause: e });
    throw e;
  }
  progress.done();
  if (result.cleanup.kind === 'failed') io.err(`warning: ${result.cleanup.error}\n`);
  if (values.json) printJson(io, jsonReport(result.info, result.results));
  else io.out(renderReport(result.info, result.results));
  return exitStatus(result.results);
}
