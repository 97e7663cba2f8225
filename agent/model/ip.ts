// IP address parsing for the model: validate, give the family, and normalize
// to one spelling per address so that equal addresses compare equal (as map
// keys, for deduplication and for deterministic ordering). Pure, no I/O.
import { isIP } from 'node:net';
import type { IpFamily } from './types.ts';

export interface ParsedIp {
  /** Canonical text: dotted quad for IPv4; RFC 5952 style for IPv6 (lower case, longest zero run compressed). */
  address: string;
  family: IpFamily;
  /** Fixed-width hex of the address bytes (8 chars for IPv4, 32 for IPv6): compares as the numeric order. */
  key: string;
}

/**
 * Parse an IP address as it appears in a Service or EndpointSlice.
 *
 * Returns undefined for anything that is not a plain IPv4 or IPv6 literal:
 * non-strings, surrounding whitespace, CIDRs, IPv6 zone ids ("fe80::1%eth0"),
 * IPv4 with leading zeros ("010.0.0.1", which Node rejects and which
 * Kubernetes no longer accepts for new objects).
 *
 * IPv4-mapped IPv6 addresses ("::ffff:10.0.0.1") are returned as the IPv4
 * address, family 4, the way Kubernetes' own IP helpers classify them.
 */
export function parseIp(input: unknown): ParsedIp | undefined {
  if (typeof input !== 'string' || input.length === 0 || input.length > 64) return undefined;
  if (input.includes('%')) return undefined;
  const fam = isIP(input);
  // isIP accepted it, so the dotted quad is already canonical (no leading zeros).
  if (fam === 4) return { address: input, family: 4, key: v4Key(input) };
  if (fam !== 6) return undefined;
  const bytes = v6Bytes(input);
  if (!bytes) return undefined;
  // ::ffff:a.b.c.d
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return fromV4Bytes(bytes.slice(12));
  }
  return { address: formatV6(bytes), family: 6, key: hex(bytes) };
}

/**
 * The value of a dotted quad as isIP accepts it (four decimal octets, no
 * leading zeros), or -1 for anything else.
 */
export function ipv4Value(s: string): number {
  const n = s.length;
  if (n < 7 || n > 15) return -1;
  let v = 0, octet = 0, digits = 0, dots = 0;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return -1;
      v = v * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return -1;
      octet = octet * 10 + (c - 48);
      if (octet > 255) return -1;
      digits++;
    } else return -1;
  }
  if (digits === 0 || dots !== 3) return -1;
  return v * 256 + octet;
}

/** Just the canonical spelling, or undefined when `input` is not an IP address. */
export function normalizeIp(input: unknown): string | undefined {
  return parseIp(input)?.address;
}

function hex(bytes: number[]): string {
  let s = '';
  for (const b of bytes) s += HEX2[b & 255];
  return s;
}

const HEX2: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Hex key of a dotted quad known to be valid, without allocating arrays (hot path). */
function v4Key(s: string): string {
  let key = '', octet = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      key += HEX2[octet];
      octet = 0;
    } else {
      octet = octet * 10 + (c - 48);
    }
  }
  return key + HEX2[octet];
}

function v4Bytes(s: string): number[] {
  return s.split('.').map((p) => Number(p));
}

function fromV4Bytes(b: number[]): ParsedIp {
  return { address: b.join('.'), family: 4, key: hex(b) };
}

/** 16 bytes of an IPv6 literal that `isIP` already accepted (so the syntax is known good). */
function v6Bytes(s: string): number[] | undefined {
  let groups: number[] = [];
  const parseGroups = (part: string): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    const items = part.split(':');
    for (let i = 0; i < items.length; i++) {
      const it = items[i] ?? '';
      if (it.includes('.')) {
        if (i !== items.length - 1) return undefined;
        const q = v4Bytes(it);
        out.push(((q[0] ?? 0) << 8) | (q[1] ?? 0), ((q[2] ?? 0) << 8) | (q[3] ?? 0));
      } else {
        const v = parseInt(it, 16);
        if (!Number.isInteger(v) || v < 0 || v > 0xffff) return undefined;
        out.push(v);
      }
    }
    return out;
  };
  const dbl = s.indexOf('::');
  if (dbl >= 0) {
    const head = parseGroups(s.slice(0, dbl));
    const tail = parseGroups(s.slice(dbl + 2));
    if (!head || !tail || head.length + tail.length > 7) return undefined;
    groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    const all = parseGroups(s);
    if (!all || all.length !== 8) return undefined;
    groups = all;
  }
  const bytes: number[] = [];
  for (const g of groups) bytes.push(g >> 8, g & 0xff);
  return bytes;
}

function formatV6(bytes: number[]): string {
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  // Longest run of zero groups (length >= 2, first one on ties) becomes "::".
  let bestStart = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const txt = g.map((x) => x.toString(16));
  if (bestLen < 2) return txt.join(':');
  return txt.slice(0, bestStart).join(':') + '::' + txt.slice(bestStart + bestLen).join(':');
}
