// The in-cluster runner of the connectivity suite: apply
// manifests/connectivity-check.yaml into a namespace of its own, wait until
// each planned check's client pod is Ready (its readiness probe is the check)
// or the time is up, explain each failure from the pod's conditions, container
// states and probe events, and delete the namespace unless asked to keep it.
//
// Safety: the runner only ever deletes a namespace that carries its own label
// (app.kubernetes.io/managed-by: kinglet-connectivity); it refuses to use an
// existing namespace without it.
import { readFileSync } from 'node:fs';
import { CoreV1Api, KubernetesObjectApi, type KubeConfig, type KubernetesObject, type V1Pod, type CoreV1Event } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { formatDuration, type RunInfo } from './report.ts';
import { selectChecks, skippedResults, SUITE, type Capability, type CheckDef, type CheckResult, type Plan, type Suite } from './suite.ts';

export const DEFAULT_NAMESPACE = 'kinglet-connectivity';
export const MANAGED_BY = 'kinglet-connectivity';
export const DEFAULT_IMAGE = 'docker.io/library/busybox:1.36.1';

export const MANIFEST_URL = new URL('../../manifests/connectivity-check.yaml', import.meta.url);

export interface Images {
  /** Image of the containers named "echo" (servers). */
  echo?: string;
  /** Image of the containers named "client" (checks). */
  client?: string;
}

export type Progress =
  | { kind: 'step'; text: string }
  | { kind: 'verdict'; result: CheckResult }
  | { kind: 'waiting'; ready: number; total: number; pending: string[]; elapsedMs: number };

export interface ClusterRunOptions {
  kc: KubeConfig;
  namespace?: string;
  timeoutMs?: number;
  keep?: boolean;
  singleNode?: boolean;
  images?: Images;
  /** Optional capabilities present ('multi-node' is derived from the node count). */
  capabilities: Capability[];
  /** Runner-specific skip reasons per missing capability. */
  why?: Partial<Record<Capability, string>>;
  /** Shown with the report (where the capabilities came from, ...). */
  notes?: string[];
  /** Manifest text; default manifests/connectivity-check.yaml. */
  manifest?: string;
  suite?: Suite;
  pollMs?: number;
  onProgress?: (p: Progress) => void;
  /** Abort: stop waiting, fail what is undecided ("interrupted"), still clean up. */
  signal?: AbortSignal;
  now?: () => number;
}

export interface ClusterRunResult {
  info: RunInfo;
  results: CheckResult[];
  /** What happened to the namespace. */
  cleanup: { kind: 'deleted' } | { kind: 'kept' } | { kind: 'failed'; error: string };
}

/** A Kubernetes API call that failed, with what was being done. */
export class ClusterError extends Error {
  override name = 'ClusterError';
  readonly status: number | undefined;
  constructor(message: string, opts: { status?: number; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.status = opts.status;
  }
}

// ---------------------------------------------------------------- pure parts

/** The documents of a manifest (comments and empty documents dropped). Throws on YAML errors. */
export function parseManifest(text: string): KubernetesObject[] {
  const out: KubernetesObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`connectivity manifest: ${doc.errors[0]!.message}`);
    const v = doc.toJSON() as unknown;
    if (v === null || v === undefined) continue;
    if (typeof v !== 'object' || Array.isArray(v)) throw new Error('connectivity manifest: a document is not an object');
    out.push(v as KubernetesObject);
  }
  return out;
}

const labelsOf = (o: { metadata?: { labels?: Record<string, string> } }): Record<string, string> => o.metadata?.labels ?? {};

/**
 * The objects to apply for a plan: every object not tied to a check (servers,
 * their Services) and the objects of the checks that run, in the order
 * NetworkPolicies, Services, Deployments (a policy is in place before the
 * pod it selects starts). Copies, with the namespace and images set.
 */
export function objectsFor(suite: Suite, plan: Plan, docs: readonly KubernetesObject[], namespace: string, images: Images = {}): KubernetesObject[] {
  const running = new Set(plan.checks.filter((p) => p.run).map((p) => p.check.name));
  const order = (k: string | undefined): number => (k === 'NetworkPolicy' ? 0 : k === 'Service' ? 1 : 2);
  return docs
    .filter((d) => {
      const check = labelsOf(d)[suite.checkLabel];
      return check === undefined || running.has(check);
    })
    .map((d) => {
      const o = structuredClone(d);
      o.metadata = { ...o.metadata, namespace };
      setImages(o, images);
      return o;
    })
    .sort((a, b) => order(a.kind) - order(b.kind));
}

/** Replace the image of containers named "echo" / "client" in a workload's pod template. */
export function setImages(o: KubernetesObject, images: Images): void {
  const spec = (o as { spec?: { template?: { spec?: { containers?: { name?: string; image?: string }[]; initContainers?: { name?: string; image?: string }[] } } } }).spec;
  const pod = spec?.template?.spec;
  for (const c of [...(pod?.containers ?? []), ...(pod?.initContainers ?? [])]) {
    if (c.name === 'echo' && images.echo) c.image = images.echo;
    if (c.name === 'client' && images.client) c.image = images.client;
  }
}

export const isReady = (p: V1Pod): boolean =>
  !p.metadata?.deletionTimestamp && (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');

function eventTime(e: CoreV1Event): number {
  const t = e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp ?? e.metadata?.creationTimestamp;
  return t ? new Date(t as unknown as string).getTime() : 0;
}

/** Why a pod is not Ready, from the most telling source: scheduling, container state, last probe failure, conditions. */
export function explainPod(pod: V1Pod, events: readonly CoreV1Event[]): string {
  const conds = pod.status?.conditions ?? [];
  const sched = conds.find((c) => c.type === 'PodScheduled');
  if (sched?.status === 'False') return `not scheduled: ${sched.message ?? sched.reason ?? 'no reason given'}`;
  for (const cs of [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]) {
    const w = cs.state?.waiting;
    if (w?.reason && w.reason !== 'ContainerCreating' && w.reason !== 'PodInitializing') {
      return `container ${cs.name} ${w.reason}${w.message ? `: ${w.message}` : ''}`;
    }
  }
  const name = pod.metadata?.name;
  const mine = events
    .filter((e) => e.involvedObject?.kind === 'Pod' && e.involvedObject.name === name)
    .sort((a, b) => eventTime(b) - eventTime(a));
  const probe = mine.find((e) => e.reason === 'Unhealthy' && /readiness probe/i.test(e.message ?? ''));
  if (probe?.message) return probe.message.trim();
  const warning = mine.find((e) => e.type === 'Warning' && e.message);
  if (warning?.message) return `${warning.reason ?? 'Warning'}: ${warning.message.trim()}`;
  const phase = pod.status?.phase ?? 'Unknown';
  const ready = conds.find((c) => c.type === 'Ready');
  if (phase === 'Pending') return `pod Pending${ready?.message ? `: ${ready.message}` : ''}`;
  return `not Ready (${phase})${ready?.message ? `: ${ready.message}` : ready?.reason ? `: ${ready.reason}` : ''}; no probe failure recorded`;
}

/** The FAIL reason of a check that did not become Ready in time. */
export function explainCheck(suite: Suite, check: CheckDef, pods: readonly V1Pod[], events: readonly CoreV1Event[]): string {
  const mine = pods.filter((p) => labelsOf(p)[suite.checkLabel] === check.name);
  let why: string;
  if (mine.length === 0) why = `no pod was created for Deployment ${check.name} (see its events: kubectl describe deployment ${check.name})`;
  else {
    const newest = [...mine].sort((a, b) => String(b.metadata?.creationTimestamp ?? '').localeCompare(String(a.metadata?.creationTimestamp ?? '')))[0]!;
    why = explainPod(newest, events);
  }
  if (check.server) {
    const servers = pods.filter((p) => labelsOf(p)[suite.serverLabel] === check.server);
    if (!servers.some(isReady)) {
      const s = servers[0];
      why = `server ${check.server} not ready (${s ? explainPod(s, events) : 'no pod'}); ${why}`;
    }
  }
  return why;
}

// ---------------------------------------------------------------- API errors

/** "403 Forbidden: deployments.apps is forbidden: ..." from a client-node error. */
export function describeApiError(e: unknown): { status: number | undefined; text: string } {
  const err = e as { code?: unknown; body?: unknown; message?: string; cause?: { code?: string; message?: string } };
  const status = typeof err.code === 'number' ? err.code : undefined;
  if (status !== undefined) {
    let body = err.body;
    if (typeof body === 'string') {
      try {
        body = JSON.parse(body);
      } catch { /* plain text */ }
    }
    const b = body as { message?: string; reason?: string } | string | undefined;
    const msg = typeof b === 'string' ? b.trim() : b?.message ?? '';
    const reason = typeof b === 'object' && b?.reason ? `${b.reason}` : '';
    return { status, text: `${status}${reason ? ` ${reason}` : ''}${msg ? `: ${msg}` : ''}` };
  }
  const cause = err.cause?.code ? ` (${err.cause.code})` : '';
  return { status: undefined, text: `${err.message ?? String(e)}${cause}` };
}

const statusOf = (e: unknown): number | undefined => {
  const c = (e as { code?: unknown }).code;
  return typeof c === 'number' ? c : undefined;
};

const refOf = (o: KubernetesObject): string => `${o.kind} ${o.metadata?.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata?.name}`;

// ---------------------------------------------------------------- the run

function abortableSleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Schedulable, Ready nodes; undefined when the nodes cannot be listed. */
async function countNodes(core: CoreV1Api): Promise<{ nodes: number } | { error: string; status: number | undefined }> {
  try {
    const list = await core.listNode();
    const n = list.items.filter((node) => !node.spec?.unschedulable &&
      (node.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True')).length;
    return { nodes: n };
  } catch (e) {
    const d = describeApiError(e);
    return { error: d.text, status: d.status };
  }
}

/** Create, or read + replace keeping what the server owns (resourceVersion, a Service's clusterIP). */
async function createOrReplace(objs: KubernetesObjectApi, o: KubernetesObject): Promise<'created' | 'replaced'> {
  try {
    await objs.create(o);
    return 'created';
  } catch (e) {
    if (statusOf(e) !== 409) throw e;
  }
  const cur = await objs.read({ apiVersion: o.apiVersion!, kind: o.kind!, metadata: { name: o.metadata!.name!, namespace: o.metadata!.namespace! } });
  const next = structuredClone(o) as KubernetesObject & { spec?: Record<string, unknown> };
  next.metadata = { ...next.metadata, resourceVersion: cur.metadata?.resourceVersion! };
  if (o.kind === 'Service') {
    const curSpec = (cur as { spec?: Record<string, unknown> }).spec ?? {};
    next.spec = { ...next.spec };
    if (next.spec.clusterIP === undefined && curSpec.clusterIP !== undefined) next.spec.clusterIP = curSpec.clusterIP;
    if (next.spec.clusterIPs === undefined && curSpec.clusterIPs !== undefined) next.spec.clusterIPs = curSpec.clusterIPs;
  }
  await objs.replace(next);
  return 'replaced';
}

export async function runInCluster(opts: ClusterRunOptions): Promise<ClusterRunResult> {
  const suite = opts.suite ?? SUITE;
  const namespace = opts.namespace ?? DEFAULT_NAMESPACE;
  const timeoutMs = opts.timeoutMs ?? 300_000;
  const pollMs = opts.pollMs ?? 1000;
  const now = opts.now ?? Date.now;
  const emit = opts.onProgress ?? (() => {});
  const notes = [...(opts.notes ?? [])];
  const core = opts.kc.makeApiClient(CoreV1Api);
  const objs = KubernetesObjectApi.makeApiClient(opts.kc);
  const docs = parseManifest(opts.manifest ?? readFileSync(MANIFEST_URL, 'utf8'));
  const started = now();

  // 1. Nodes and the plan.
  emit({ kind: 'step', text: 'counting nodes' });
  const counted = await countNodes(core);
  let nodes: number;
  if ('nodes' in counted) nodes = counted.nodes;
  else {
    const server = opts.kc.getCurrentCluster()?.server ?? '(no server in the kubeconfig)';
    if (counted.status === undefined || counted.status === 401) {
      throw new ClusterError(`cannot use the Kubernetes API at ${server}: ${counted.error}`, { status: counted.status });
    }
    nodes = 1;
    notes.push(`cannot list nodes (${counted.error}): assuming one node`);
  }
  const plan = selectChecks(suite, { nodes, capabilities: opts.capabilities, singleNode: opts.singleNode === true, ...(opts.why ? { why: opts.why } : {}) });
  const planned = plan.checks.filter((p) => p.run).map((p) => p.check);
  const info = (): RunInfo => ({
    runner: 'cluster', namespace, nodes, singleNode: plan.singleNode, capabilities: plan.capabilities, notes, durationMs: now() - started,
  });

  // 2. The namespace: ours, or refuse.
  emit({ kind: 'step', text: `namespace ${namespace}` });
  let ownNamespace = false;
  const nsRef = `namespace ${namespace}`;
  const ensureNamespace = async (): Promise<void> => {
    const deadline = now() + timeoutMs;
    for (;;) {
      let cur: { metadata?: { labels?: Record<string, string>; deletionTimestamp?: unknown } } | undefined;
      try {
        cur = await core.readNamespace({ name: namespace });
      } catch (e) {
        if (statusOf(e) !== 404) throw new ClusterError(`reading ${nsRef}: ${describeApiError(e).text}`, { status: statusOf(e), cause: e });
      }
      if (cur && labelsOf(cur)['app.kubernetes.io/managed-by'] !== MANAGED_BY) {
        throw new ClusterError(`${nsRef} exists and was not made by kinglet connectivity test (no label app.kubernetes.io/managed-by=${MANAGED_BY}); ` +
          'it would be deleted afterwards, so choose another --namespace');
      }
      ownNamespace = cur !== undefined;
      if (cur && !cur.metadata?.deletionTimestamp) {
        notes.push(`reusing ${nsRef} left by an earlier run`);
        return;
      }
      if (cur) {
        if (now() > deadline || opts.signal?.aborted) throw new ClusterError(`${nsRef} is still being deleted (from an earlier run); try again later`);
        emit({ kind: 'step', text: `waiting for the previous ${nsRef} to be deleted` });
        await abortableSleep(pollMs, opts.signal);
        continue;
      }
      try {
        await core.createNamespace({ body: { metadata: { name: namespace, labels: { 'app.kubernetes.io/managed-by': MANAGED_BY, 'app.kubernetes.io/part-of': suite.partOf } } } });
        ownNamespace = true;
        return;
      } catch (e) {
        if (statusOf(e) === 409) continue; // made (or still terminating) meanwhile: look again
        throw new ClusterError(`creating ${nsRef}: ${describeApiError(e).text}`, { status: statusOf(e), cause: e });
      }
    }
  };

  const cleanup = async (): Promise<ClusterRunResult['cleanup']> => {
    if (opts.keep) return { kind: 'kept' };
    if (!ownNamespace) return { kind: 'kept' };
    emit({ kind: 'step', text: `deleting ${nsRef}` });
    try {
      await core.deleteNamespace({ name: namespace });
      return { kind: 'deleted' };
    } catch (e) {
      if (statusOf(e) === 404) return { kind: 'deleted' };
      if (statusOf(e) === 409) return { kind: 'deleted' }; // already terminating
      return { kind: 'failed', error: `deleting ${nsRef}: ${describeApiError(e).text}` };
    }
  };

  try {
    await ensureNamespace();

    // 3. Apply.
    const toApply = objectsFor(suite, plan, docs, namespace, opts.images);
    emit({ kind: 'step', text: `applying ${toApply.length} objects (${planned.length} checks)` });
    for (const o of toApply) {
      try {
        await createOrReplace(objs, o);
      } catch (e) {
        throw new ClusterError(`applying ${refOf(o)}: ${describeApiError(e).text}`, { status: statusOf(e), cause: e });
      }
    }
  } catch (e) {
    const c = await cleanup();
    if (c.kind === 'failed' && e instanceof Error) e.message += `; and ${c.error}`;
    throw e;
  }

  // 4. Wait for verdicts.
  const applied = now();
  const deadline = applied + timeoutMs;
  const decided = new Map<string, CheckResult>();
  let pods: V1Pod[] = [];
  let lastError: string | undefined;
  let lastWaiting = '';
  const selector = `app.kubernetes.io/part-of=${suite.partOf}`;
  for (;;) {
    try {
      pods = (await core.listNamespacedPod({ namespace, labelSelector: selector })).items;
      lastError = undefined;
    } catch (e) {
      const d = describeApiError(e);
      if (d.status === 401 || d.status === 403) {
        const c = await cleanup();
        throw new ClusterError(`listing pods in ${nsRef}: ${d.text}${c.kind === 'failed' ? `; and ${c.error}` : ''}`, { status: d.status, cause: e });
      }
      if (d.text !== lastError) emit({ kind: 'step', text: `listing pods failed, retrying: ${d.text}` });
      lastError = d.text;
    }
    for (const check of planned) {
      if (decided.has(check.name)) continue;
      if (pods.some((p) => labelsOf(p)[suite.checkLabel] === check.name && isReady(p))) {
        const r: CheckResult = { name: check.name, description: check.description, verdict: 'PASS', durationMs: now() - applied };
        decided.set(check.name, r);
        emit({ kind: 'verdict', result: r });
      }
    }
    const pending = planned.filter((c) => !decided.has(c.name)).map((c) => c.name);
    const waiting = `${decided.size}/${planned.length} ${pending.join(',')}`;
    if (pending.length > 0 && waiting !== lastWaiting) {
      lastWaiting = waiting;
      emit({ kind: 'waiting', ready: decided.size, total: planned.length, pending, elapsedMs: now() - applied });
    }
    if (pending.length === 0 || now() >= deadline || opts.signal?.aborted) break;
    await abortableSleep(Math.min(pollMs, Math.max(0, deadline - now())), opts.signal);
  }

  // 5. Explain what is left.
  const undecided = planned.filter((c) => !decided.has(c.name));
  if (undecided.length > 0) {
    let events: CoreV1Event[] = [];
    try {
      events = (await core.listNamespacedEvent({ namespace })).items;
    } catch (e) {
      notes.push(`events not available (${describeApiError(e).text}): failure reasons come from pod status only`);
    }
    const interrupted = opts.signal?.aborted === true;
    for (const check of undecided) {
      let reason = interrupted ? 'interrupted before the check was Ready' : `not Ready within ${formatDuration(timeoutMs)}: `;
      if (!interrupted) reason += lastError ? `the API kept failing (${lastError})` : explainCheck(suite, check, pods, events);
      const r: CheckResult = { name: check.name, description: check.description, verdict: 'FAIL', reason, durationMs: now() - applied };
      decided.set(check.name, r);
      emit({ kind: 'verdict', result: r });
    }
  }

  const skipped = new Map(skippedResults(plan).map((r) => [r.name, r]));
  const results = suite.checks.map((c) => decided.get(c.name) ?? skipped.get(c.name)!);
  const runInfo = info();
  const c = await cleanup();
  if (c.kind === 'failed') notes.push(c.error);
  if (c.kind === 'kept' && ownNamespace) notes.push(`${nsRef} kept (--keep): kubectl -n ${namespace} get pods -l ${suite.checkLabel}; delete it with kubectl delete namespace ${namespace}`);
  return { info: runInfo, results, cleanup: c };
}

// ---------------------------------------------------------------- capabilities

/** The part of the agent's status (GET /v1/status) the capabilities come from. */
export interface AgentCapabilitySource {
  node?: { name?: string };
  /** A plain list, when the agent reports one (preferred). */
  capabilities?: unknown;
  kubeProxyReplacement?: { features?: { name: string; enabled: boolean }[] };
}

/**
 * Which optional datapath features the agent says it has. An explicit
 * `capabilities` list wins; otherwise the kube-proxy-replacement features are
 * read by name (NodePort, HostPort, NetworkPolicy). 'internet' and
 * 'multi-node' are never the agent's to say.
 */
export function capabilitiesFromAgent(st: AgentCapabilitySource): Capability[] {
  const out = new Set<Capability>();
  const datapath: Capability[] = ['networkpolicy', 'nodeport', 'hostport'];
  if (Array.isArray(st.capabilities)) {
    for (const c of st.capabilities) if (typeof c === 'string' && (datapath as string[]).includes(c.toLowerCase())) out.add(c.toLowerCase() as Capability);
  } else {
    for (const f of st.kubeProxyReplacement?.features ?? []) {
      if (!f.enabled) continue;
      if (/node\s*port/i.test(f.name)) out.add('nodeport');
      if (/host\s*port/i.test(f.name)) out.add('hostport');
      if (/network\s*polic/i.test(f.name)) out.add('networkpolicy');
    }
  }
  return datapath.filter((c) => out.has(c));
}
