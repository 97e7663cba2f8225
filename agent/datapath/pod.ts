// The pod datapath as one object: bpf/pod.bpf.o loaded with its maps pinned
// (the socket LB's service maps are the same pins), the endpoints map, the
// node configuration, and the tc attachments on pod veths and on the native
// device. Everything acts on the calling process's network namespace.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BpfMap, numPossibleCpus, type TcDirection } from './libbpf.ts';
import { load, tcAttachProgram, tcDetachProgram, tcQueryProgram, type Loaded, type TcAttachment } from './loader.ts';
import { DEFAULT_BPF_OBJECT_DIR } from './lb.ts';
import { LB_MAP_NAMES } from './lb-layout.ts';
import {
  CFG_MAP, CT4_MAP, DROP_MAP, DROP_REASONS, EP4_MAP, POD_OBJECT, SNAT4_MAP,
  configPodCidr, decodeEndpoint, decodeSnat, encodeConfig, encodeEndpoint, ep4Key, ip4Text,
  type EndpointValue, type NodeConfig, type PodProgram, type SnatEntry,
} from './pod-layout.ts';

export interface PodDatapathOptions {
  bpfRoot: string;
  objectDir?: string;
  replaceIncompatible?: boolean;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

/** Where each program goes on a pod veth and on the native device. */
export const POD_HOOKS: { program: PodProgram; direction: TcDirection }[] = [
  { program: 'kl_from_pod', direction: 'ingress' },
  { program: 'kl_to_pod', direction: 'egress' },
];
export const NATIVE_HOOKS: { program: PodProgram; direction: TcDirection }[] = [
  { program: 'kl_nat_egress', direction: 'egress' },
  { program: 'kl_nat_ingress', direction: 'ingress' },
];

export class PodDatapath {
  readonly loaded: Loaded;
  readonly #ep: BpfMap;
  readonly #cfg: BpfMap;
  readonly #drop: BpfMap;
  readonly #snat: BpfMap;
  readonly #ct: BpfMap;
  #cfgBytes: Buffer | undefined;

  private constructor(loaded: Loaded) {
    this.loaded = loaded;
    const m = (name: string) => {
      const fd = loaded.maps[name];
      if (fd === undefined) throw new Error(`map ${name} missing from ${POD_OBJECT}`);
      return new BpfMap(fd);
    };
    this.#ep = m(EP4_MAP);
    this.#cfg = m(CFG_MAP);
    this.#drop = m(DROP_MAP);
    this.#snat = m(SNAT4_MAP);
    this.#ct = m(CT4_MAP);
  }

  static open(opts: PodDatapathOptions): PodDatapath {
    const object = join(opts.objectDir ?? DEFAULT_BPF_OBJECT_DIR, POD_OBJECT);
    if (!existsSync(object)) throw new Error(`${object} is missing: build the BPF objects with \`make -C bpf\``);
    // The socket-LB maps in here are the LB datapath's: it removes their old-layout pins once it has filled the new ones.
    const loaded = load({ object, bpfRoot: opts.bpfRoot, replaceIncompatible: opts.replaceIncompatible, keepStalePins: LB_MAP_NAMES });
    opts.log?.('pod datapath loaded', { object: POD_OBJECT, programs: Object.keys(loaded.programs) });
    return new PodDatapath(loaded);
  }

  #progFd(name: PodProgram): number {
    const p = this.loaded.programs[name];
    if (!p) throw new Error(`program ${name} missing from ${POD_OBJECT}`);
    return p.fd;
  }

  /** Attach (or swap in place) the pod programs on a host veth. */
  attachEndpoint(ifindex: number): TcAttachment[] {
    return POD_HOOKS.map((h) => tcAttachProgram({ ifindex, direction: h.direction, program: h.program, progFd: this.#progFd(h.program) }));
  }

  /** Remove them (the veth is usually gone already, and its filters with it). */
  detachEndpoint(ifindex: number): void {
    for (const h of POD_HOOKS) tcDetachProgram(ifindex, h.direction);
  }

  attachNative(ifindex: number): TcAttachment[] {
    return NATIVE_HOOKS.map((h) => tcAttachProgram({ ifindex, direction: h.direction, program: h.program, progFd: this.#progFd(h.program) }));
  }

  detachNative(ifindex: number, removeQdisc: boolean): void {
    NATIVE_HOOKS.forEach((h, i) => tcDetachProgram(ifindex, h.direction, { removeQdisc: removeQdisc && i === NATIVE_HOOKS.length - 1 }));
  }

  /** Which program id sits in kinglet's filter on each hook of a device (for status and checks). */
  queryDevice(ifindex: number): Record<TcDirection, number | undefined> {
    return { ingress: tcQueryProgram(ifindex, 'ingress'), egress: tcQueryProgram(ifindex, 'egress') };
  }

  setEndpoint(address: string, v: EndpointValue): void {
    this.#ep.set(ep4Key(address), encodeEndpoint(v));
  }

  deleteEndpoint(address: string): boolean {
    return this.#ep.delete(ep4Key(address));
  }

  /** The endpoints map as the kernel holds it: address -> value. */
  endpoints(): Map<string, EndpointValue> {
    const out = new Map<string, EndpointValue>();
    for (const [k, v] of this.#ep.entries()) out.set(ip4Text(k), decodeEndpoint(v));
    return out;
  }

  /** The pod CIDR of the configuration in the map (written by this or an earlier agent), if any. */
  writtenPodCidr(): string | undefined {
    const b = this.#cfg.get(Buffer.alloc(4));
    return b ? configPodCidr(b) : undefined;
  }

  /** Write the node configuration when it differs from what was written. Returns true when written. */
  setConfig(c: NodeConfig): boolean {
    const bytes = encodeConfig(c);
    const key = Buffer.alloc(4);
    this.#cfgBytes ??= this.#cfg.get(key);
    if (this.#cfgBytes?.equals(bytes)) return false;
    this.#cfg.set(key, bytes);
    this.#cfgBytes = bytes;
    return true;
  }

  /** Drops per reason since the maps were created (summed over CPUs). */
  drops(): { reason: string; code: number; count: number }[] {
    const ncpu = numPossibleCpus();
    const out: { reason: string; code: number; count: number }[] = [];
    for (const code of Object.keys(DROP_REASONS).map(Number)) {
      const k = Buffer.alloc(4);
      k.writeUInt32LE(code);
      const v = this.#drop.get(k);
      if (!v) continue;
      let n = 0n;
      for (let i = 0; i < ncpu; i++) n += v.readBigUInt64LE(i * 8);
      if (n > 0n) out.push({ reason: DROP_REASONS[code]!, code, count: Number(n) });
    }
    return out;
  }

  /** The masquerade table (tests and debugging; walks the whole LRU map). */
  snatEntries(): SnatEntry[] {
    return [...this.#snat.entries()].map(([k, v]) => decodeSnat(k, v));
  }

  conntrackCount(): number {
    let n = 0;
    for (const _ of this.#ct.keys()) n++;
    return n;
  }

  fill(): { name: string; entries: number; max: number }[] {
    return [this.#ep, this.#snat].map((m) => {
      let n = 0;
      for (const _ of m.keys()) n++;
      return { name: m.name, entries: n, max: m.info.maxEntries };
    });
  }

  /** Close handles (the maps' fds belong to the object); filters and pinned maps stay. */
  close(): void {
    this.loaded.close();
  }
}
