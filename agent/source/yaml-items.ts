// A YAML List (what `kubectl get -o yaml` prints: one document, a top-level
// mapping whose `items:` is a block sequence) cut into the text of each item
// and the rest, without parsing it. The YAML library builds a node tree of
// the whole document first, dozens of times the size of the text (a 23 MB
// List of 10k services x 10 endpoints: a ~1.5 GB peak); parsing item by item
// keeps it to one item's tree at a time.
//
// The cut is by lines and indentation only, and only for the plain layout:
// `items:` alone on a line at column 0; its entries are the lines starting
// with "-" at one indentation k, each running on over the lines indented
// deeper (and blank lines); the sequence ends at the next line at column 0,
// which must be another top-level key. YAML requires everything inside an
// entry to be indented deeper than its dash, so this is where the entries
// are. Anything else (document markers or directives, tabs for indentation,
// a comment line at or left of the dashes, `items` in flow style, a second
// `items:`) gives undefined and the caller parses the whole text, so the
// result, and any error, is exactly the library's. The caller also falls
// back when a piece does not parse on its own (an alias to an anchor in
// another item, for one). Pure.

export interface YamlListPieces {
  /** The document with `items: []` in place of the sequence. */
  head: string;
  /** Each item's lines: a one-entry block sequence. */
  items: string[];
}

const ITEMS = /^items:[ \t]*\r?$/;
const MARKER = /^(---|\.\.\.)([ \t]|\r?$)|^%/;
const BLANK = /^[ \t]*\r?$/;

function indentOf(line: string): number {
  let i = 0;
  while (line.charCodeAt(i) === 0x20) i++;
  return i;
}

function isEntry(line: string, k: number): boolean {
  if (line.charCodeAt(k) !== 0x2d) return false; // "-"
  const next = line.charCodeAt(k + 1);
  return Number.isNaN(next) || next === 0x20 || next === 0x0d;
}

export function splitYamlList(text: string): YamlListPieces | undefined {
  const lines = text.split('\n');
  let at = -1;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    if (MARKER.test(l) || l.charCodeAt(0) === 0x09) return undefined;
    if (ITEMS.test(l)) {
      if (at >= 0) return undefined;
      at = i;
    }
  }
  if (at < 0) return undefined;
  let j = at + 1;
  while (j < lines.length && BLANK.test(lines[j]!)) j++;
  if (j >= lines.length) return undefined;
  const k = indentOf(lines[j]!);
  if (!isEntry(lines[j]!, k)) return undefined;
  const items: string[] = [];
  let cur: string[] = [];
  let end = lines.length;
  for (; j < lines.length; j++) {
    const l = lines[j]!;
    if (BLANK.test(l)) {
      cur.push(l);
      continue;
    }
    const ind = indentOf(l);
    if (ind > k) {
      cur.push(l);
      continue;
    }
    if (ind === k && isEntry(l, k)) {
      if (cur.length > 0) items.push(cur.join('\n'));
      cur = [l];
      continue;
    }
    // Left of the entries: only another top-level key may end the sequence.
    if (ind !== 0 || l.charCodeAt(0) === 0x23 /* # */ || (k === 0 && l.charCodeAt(0) === 0x2d)) return undefined;
    end = j;
    break;
  }
  items.push(cur.join('\n'));
  const head = [...lines.slice(0, at), 'items: []', ...lines.slice(end)].join('\n');
  return { head, items };
}
