// Where Kubernetes objects come from (a directory of YAML, or the API server).
// A source keeps the latest copy of every object it watches and tells its
// consumer that something changed; the consumer reads a snapshot and reconciles.

/** A Kubernetes object as the API returns it (apiVersion/kind/metadata/...). */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; uid?: string; resourceVersion?: string; labels?: Record<string, string>; [k: string]: unknown };
  spec?: unknown;
  status?: unknown;
  [k: string]: unknown;
}

export interface Snapshot {
  services: KubeObject[];
  endpointSlices: KubeObject[];
  nodes: KubeObject[];
  pods: KubeObject[];
  namespaces: KubeObject[];
  networkPolicies: KubeObject[];
}

export interface SourceStatus {
  kind: 'dir' | 'kube';
  /** Where objects come from: a path, or the API server URL. */
  endpoint: string;
  /** Every watched kind has completed its first full list/read. */
  synced: boolean;
  lastSync?: string;
  lastError?: string;
  /** Objects skipped as malformed since start. */
  malformed: number;
  [k: string]: unknown;
}

export interface Source {
  /** Begin watching; `onChange` is called (without arguments) whenever something may have changed. */
  start(onChange: () => void): Promise<void>;
  snapshot(): Snapshot;
  status(): SourceStatus;
  stop(): Promise<void>;
}

export function emptySnapshot(): Snapshot {
  return { services: [], endpointSlices: [], nodes: [], pods: [], namespaces: [], networkPolicies: [] };
}
