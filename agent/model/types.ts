// The desired load-balancing state: what the model computes from Services and
// EndpointSlices and what the datapath programs. Plain data, no I/O.
import type { Backends } from './backends.ts';

export type L4Protocol = 'TCP' | 'UDP';
export type IpFamily = 4 | 6;

export interface LbBackend {
  /** Pod (or node) IP the connection is translated to. */
  address: string;
  port: number;
  /** True for an endpoint used only because no ready one is left (terminating but serving). */
  terminating: boolean;
  /** Where the endpoint lives, when the EndpointSlice says so (used for topology / local checks later). */
  nodeName?: string;
}

export type FrontendType = 'ClusterIP';

export interface LbFrontend {
  /** "namespace/name" of the Service. */
  service: string;
  /** The Service port's name ("" when unnamed). */
  portName: string;
  type: FrontendType;
  family: IpFamily;
  address: string;
  port: number;
  protocol: L4Protocol;
  /** Backends in a stable order (sorted by address, then port), packed (see backends.ts). Empty: refuse connections. */
  backends: Backends;
  /** sessionAffinity: ClientIP timeout in seconds; 0 when affinity is off. */
  affinityTimeoutSeconds: number;
}

export interface LbState {
  /** Sorted by family, address, port, protocol: equal inputs give equal output. */
  frontends: LbFrontend[];
}

/** Something in the input that the model skipped, with why (logged and counted by the agent). */
export interface ModelWarning {
  object: string;
  reason: string;
}
