// The top level of a JSON text, split without parsing the whole of it: where
// each element of a top-level array lies, or where each field value of a
// top-level object lies. The dir source uses it to parse a large List (what
// `kubectl get -o json` prints) one item at a time, trimming each item before
// the next is parsed, so the untrimmed tree of the whole file never exists at
// once (at 10k services x 10 endpoints: ~50 MB of heap).
//
// The scanner finds boundaries only: strings (with their escapes) are skipped
// and brackets counted, but the values themselves are left to JSON.parse,
// which is what reports anything wrong inside them. It returns undefined when
// the top level is not as expected (a scalar, a missing comma, text after the
// end, a duplicate key, an unterminated string or bracket): the caller then
// parses the whole text with JSON.parse, so a broken file reads exactly as
// before. Structural characters are ASCII, so the indices are those of the
// string as JavaScript holds it (UTF-16 units; non-ASCII text passes through).
// Pure.

/** [start, end) of one value in the text. */
export type Span = readonly [number, number];

export type JsonTopLevel =
  | { type: 'array'; elements: Span[] }
  | { type: 'object'; fields: Map<string, Span> };

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;

/** JSON's whitespace: space, tab, line feed, carriage return. */
function isWs(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function skipWs(text: string, i: number): number {
  while (i < text.length && isWs(text.charCodeAt(i))) i++;
  return i;
}

/** `i` at an opening quote: the index after the closing one, or -1. */
function skipString(text: string, i: number): number {
  let j = i + 1;
  for (;;) {
    const q = text.indexOf('"', j);
    if (q < 0) return -1;
    // The quote is escaped when an odd number of backslashes precede it.
    let b = q - 1;
    while (b > i && text.charCodeAt(b) === BACKSLASH) b--;
    if ((q - 1 - b) % 2 === 0) return q + 1;
    j = q + 1;
  }
}

/** `i` at the first character of a value: the index after it, or -1. Its inside is not checked. */
function skipValue(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c === QUOTE) return skipString(text, i);
  if (c === LBRACE || c === LBRACKET) {
    let depth = 0;
    for (let j = i; j < text.length; j++) {
      const d = text.charCodeAt(j);
      if (d === QUOTE) {
        j = skipString(text, j);
        if (j < 0) return -1;
        j--;
      } else if (d === LBRACE || d === LBRACKET) {
        depth++;
      } else if (d === RBRACE || d === RBRACKET) {
        if (--depth === 0) return j + 1;
      }
    }
    return -1;
  }
  // A scalar (number, true, false, null, or junk JSON.parse will refuse): up to the next delimiter.
  let j = i;
  while (j < text.length) {
    const d = text.charCodeAt(j);
    if (d === COMMA || d === RBRACE || d === RBRACKET || d === COLON || d === LBRACE || d === LBRACKET || d === QUOTE || isWs(d)) break;
    j++;
  }
  return j > i ? j : -1;
}

/**
 * Split the top level of `text` (no byte-order mark), or of the value at
 * `span` in it, into the spans of its array elements or object fields;
 * undefined when it is neither or not laid out as JSON (see the header: the
 * caller then parses the whole text).
 */
export function jsonTopLevel(text: string, span: Span = [0, text.length]): JsonTopLevel | undefined {
  const [from, to] = span;
  let i = skipWs(text, from);
  const open = text.charCodeAt(i);
  if (open !== LBRACKET && open !== LBRACE) return undefined;
  const close = open === LBRACKET ? RBRACKET : RBRACE;
  const elements: Span[] = [];
  const fields = new Map<string, Span>();
  i = skipWs(text, i + 1);
  if (text.charCodeAt(i) === close) {
    i++;
  } else {
    for (;;) {
      if (open === LBRACE) {
        if (text.charCodeAt(i) !== QUOTE) return undefined;
        const k = skipString(text, i);
        if (k < 0) return undefined;
        let key: unknown;
        try {
          key = JSON.parse(text.slice(i, k));
        } catch {
          return undefined;
        }
        if (typeof key !== 'string' || fields.has(key)) return undefined; // JSON.parse keeps the last of duplicate keys: leave that to it
        i = skipWs(text, k);
        if (text.charCodeAt(i) !== COLON) return undefined;
        i = skipWs(text, i + 1);
        const end = skipValue(text, i);
        if (end < 0) return undefined;
        fields.set(key, [i, end]);
        i = end;
      } else {
        const end = skipValue(text, i);
        if (end < 0) return undefined;
        elements.push([i, end]);
        i = end;
      }
      i = skipWs(text, i);
      const c = text.charCodeAt(i);
      if (c === close) {
        i++;
        break;
      }
      if (c !== COMMA) return undefined;
      i = skipWs(text, i + 1);
    }
  }
  while (i < to && isWs(text.charCodeAt(i))) i++;
  if (i !== to) return undefined;
  return open === LBRACKET ? { type: 'array', elements } : { type: 'object', fields };
}

/** JSON.parse of one span. Throws as JSON.parse does. */
export function parseSpan(text: string, [start, end]: Span): unknown {
  return JSON.parse(text.slice(start, end));
}
