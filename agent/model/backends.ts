// A frontend's backends as one packed, immutable value. Pure.
//
// At 10k services x 10 endpoints the model holds 100k backends; as one
// object each (plus an array per frontend) they were the biggest single
// item of the agent's heap, and making them was the model's hottest code. Here
// a list of backends is a few columns instead, most of them shared with the
// parsed EndpointSlice it comes from:
// - storage columns, indexed by a storage index: the addresses and the
//   node names (or none);
// - `order`: position -> storage index (absent: the same number), so a
//   slice's endpoints are used in sorted order without a copy;
// - per position: the port and the terminating flag, each either one value
//   for every backend or an array.
// In the usual case (one slice, every endpoint ready, one port) the value
// holds references to the slice's arrays, a port and a flag: no array and
// no object of its own per backend.
//
// Hot consumers (the datapath) read it through the per-index accessors;
// cold ones (CLI, API, tests, logs) iterate it or call toJSON(), which give
// the plain `LbBackend` objects the rest of the agent always saw.
import type { LbBackend } from './types.ts';
import { ipv4Value } from './ip.ts';

/** One value for every backend, or one per position. */
type Column<T> = T | ArrayLike<T>;

/** `values` as one value when they are all equal, else as they are. */
function compact<T>(values: T[]): Column<T> {
  for (let i = 1; i < values.length; i++) if (values[i] !== values[0]) return values;
  return values[0] as T;
}

export class Backends implements Iterable<LbBackend> {
  /** How many backends. */
  readonly length: number;
  readonly #addresses: readonly string[];
  readonly #nodes: readonly (string | undefined)[] | undefined;
  readonly #order: ArrayLike<number> | undefined;
  readonly #ports: Column<number>;
  readonly #terminating: Column<boolean> | ArrayLike<number>;

  /**
   * Backends over storage columns (see the top of this file); the arrays
   * are kept, not copied, and must never change afterwards (terminating per
   * backend may be 0/1 numbers, e.g. a Uint8Array). Callers outside the
   * model use Backends.from.
   */
  constructor(
    length: number,
    addresses: readonly string[],
    nodes: readonly (string | undefined)[] | undefined,
    order: ArrayLike<number> | undefined,
    ports: Column<number>,
    terminating: Column<boolean> | ArrayLike<number>,
  ) {
    this.length = length;
    this.#addresses = addresses;
    this.#nodes = nodes;
    this.#order = order;
    this.#ports = ports;
    this.#terminating = terminating;
  }

  /** No backends (the frontend refuses connections). */
  static readonly EMPTY: Backends = new Backends(0, [], undefined, undefined, 0, false);

  /** The backends of `list`, in its order, as they are (no sorting, no deduplication: the model's job). */
  static from(list: Iterable<LbBackend>): Backends {
    const items = Array.isArray(list) ? (list as readonly LbBackend[]) : [...list];
    if (items.length === 0) return Backends.EMPTY;
    const addresses = items.map((b) => b.address);
    const nodes = items.some((b) => b.nodeName !== undefined) ? items.map((b) => b.nodeName) : undefined;
    return new Backends(items.length, addresses, nodes, undefined, compact(items.map((b) => b.port)), compact(items.map((b) => b.terminating)));
  }

  /** Storage index of position i. */
  #s(i: number): number {
    const o = this.#order;
    return o === undefined ? i : o[i]!;
  }

  address(i: number): string {
    return this.#addresses[this.#s(i)]!;
  }

  /** The address's value when it is a plain dotted quad (as ipv4Value gives it), else -1. */
  ipv4(i: number): number {
    return ipv4Value(this.address(i));
  }

  port(i: number): number {
    const p = this.#ports;
    return typeof p === 'number' ? p : p[i]!;
  }

  terminating(i: number): boolean {
    const t = this.#terminating;
    return typeof t === 'boolean' ? t : !!t[i];
  }

  nodeName(i: number): string | undefined {
    return this.#nodes?.[this.#s(i)];
  }

  /** Backend i as an object (nodeName only when known), like the model always gave them. */
  at(i: number): LbBackend {
    if (!Number.isInteger(i) || i < 0 || i >= this.length) throw new RangeError(`backend index ${i} is out of range (0..${this.length - 1})`);
    const nodeName = this.nodeName(i);
    const b: LbBackend = { address: this.address(i), port: this.port(i), terminating: this.terminating(i) };
    if (nodeName !== undefined) b.nodeName = nodeName;
    return b;
  }

  *[Symbol.iterator](): Iterator<LbBackend> {
    for (let i = 0; i < this.length; i++) yield this.at(i);
  }

  /** Plain objects, as before: JSON (API, snapshots, logs) shows an array of backends. */
  toJSON(): LbBackend[] {
    const out = new Array<LbBackend>(this.length);
    for (let i = 0; i < this.length; i++) out[i] = this.at(i);
    return out;
  }

  /** The same backends (address, port, terminating, nodeName) in the same order. */
  equals(other: Backends): boolean {
    if (this === other) return true;
    const n = this.length;
    if (n !== other.length) return false;
    if (this.#addresses === other.#addresses && this.#nodes === other.#nodes && this.#order === other.#order
      && this.#ports === other.#ports && this.#terminating === other.#terminating) return true;
    for (let i = 0; i < n; i++) {
      if (this.address(i) !== other.address(i) || this.port(i) !== other.port(i) || this.terminating(i) !== other.terminating(i)
        || this.nodeName(i) !== other.nodeName(i)) return false;
    }
    return true;
  }
}
