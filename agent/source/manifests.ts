// Kubernetes manifests as text -> objects sorted into Snapshot buckets.
// Pure (no I/O): used by the dir source, and by anything that loads YAML
// fixtures (the lab, tests).
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';
import { emptySnapshot, type KubeObject, type Snapshot } from './types.ts';
import { jsonTopLevel, parseSpan } from './json-items.ts';
import { splitYamlList } from './yaml-items.ts';
import { trimObject } from './trim.ts';

export type Bucket = keyof Snapshot;

interface KindInfo {
  bucket: Bucket;
  apiVersion: string;
  namespaced: boolean;
}

/** The kinds a Snapshot holds, with the only apiVersion accepted for each. */
export const KINDS: Readonly<Record<string, KindInfo>> = {
  Service: { bucket: 'services', apiVersion: 'v1', namespaced: true },
  EndpointSlice: { bucket: 'endpointSlices', apiVersion: 'discovery.k8s.io/v1', namespaced: true },
  Node: { bucket: 'nodes', apiVersion: 'v1', namespaced: false },
  Pod: { bucket: 'pods', apiVersion: 'v1', namespaced: true },
  Namespace: { bucket: 'namespaces', apiVersion: 'v1', namespaced: false },
  NetworkPolicy: { bucket: 'networkPolicies', apiVersion: 'networking.k8s.io/v1', namespaced: true },
};

export interface ClassifiedObject {
  bucket: Bucket;
  /** "bucket/namespace/name" ("bucket//name" for cluster-scoped kinds): unique per object, as on an API server. */
  key: string;
  object: KubeObject;
}

/** Something in a manifest that was left out, and why. `malformed` false: valid but not ours (unknown kind, other API version). */
export interface Skipped {
  where: string;
  reason: string;
  malformed: boolean;
}

export type ParseResult =
  | { ok: true; objects: ClassifiedObject[]; skipped: Skipped[] }
  | { ok: false; error: string };

// The YAML parser is loaded on the first YAML file: an agent fed JSON (or the
// kube source) does not keep its ~70 modules in memory.
let yamlModule: typeof Yaml | undefined;
function yaml(): typeof Yaml {
  return (yamlModule ??= createRequire(import.meta.url)('yaml') as typeof Yaml);
}

/** How every path turns a YAML document into values: the streamed ones must agree with the whole-text parse. */
const TO_JS = { maxAliasCount: 100 } as const;

function isRec(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Sort one object into its bucket.
 *
 * Accepted: the kinds in KINDS, at their apiVersion (an absent apiVersion is
 * tolerated); metadata.name must be a non-empty string. A namespaced object
 * without metadata.namespace is put in "default" (on a shallow copy), as
 * `kubectl apply` would do. Unknown kinds and other API versions (e.g.
 * discovery.k8s.io/v1beta1) are skipped, not counted as malformed.
 */
export function classify(obj: unknown, where: string): ClassifiedObject | Skipped {
  if (!isRec(obj)) return { where, reason: 'not an object', malformed: true };
  const kind = obj.kind;
  if (typeof kind !== 'string' || kind === '') return { where, reason: 'kind missing', malformed: true };
  const info = Object.prototype.hasOwnProperty.call(KINDS, kind) ? KINDS[kind] : undefined;
  if (!info) return { where, reason: `kind ${kind} is not watched`, malformed: false };
  const av = obj.apiVersion;
  if (av !== undefined && av !== info.apiVersion) {
    return { where, reason: `${kind} apiVersion ${String(av)} is not ${info.apiVersion}`, malformed: typeof av !== 'string' };
  }
  const md = obj.metadata;
  if (!isRec(md) || typeof md.name !== 'string' || md.name === '') {
    return { where, reason: `${kind} without metadata.name`, malformed: true };
  }
  let object = obj as KubeObject;
  if (info.namespaced) {
    if (md.namespace === undefined || md.namespace === null || md.namespace === '') {
      object = { ...object, metadata: { ...md, namespace: 'default' } };
    } else if (typeof md.namespace !== 'string') {
      return { where, reason: `${kind} ${md.name}: metadata.namespace is not a string`, malformed: true };
    }
  }
  return classifiedAgain(object);
}

/** The ClassifiedObject of an object classify() accepted (its kind, name and namespace are known good): its bucket and key. */
export function classifiedAgain(object: KubeObject): ClassifiedObject {
  const info = KINDS[object.kind ?? '']!;
  const ns = info.namespaced ? (object.metadata?.namespace ?? '') : '';
  return { bucket: info.bucket, key: `${info.bucket}/${ns}/${object.metadata?.name ?? ''}`, object };
}

/** The kind of a list's items: undefined for `kind: List` (each item names its own), "Service" for a ServiceList. */
function itemKindOf(listKind: string): string | undefined {
  return listKind === 'List' ? undefined : listKind.slice(0, -'List'.length);
}

/** One item of a list: typed lists' items get the list's kind and apiVersion (the API server leaves them out). */
function flattenItem(item: unknown, itemKind: string | undefined, apiVersion: unknown, where: string, out: Sink): void {
  let it = item;
  if (itemKind && isRec(item) && item.kind === undefined) {
    it = { apiVersion, kind: itemKind, ...item };
  }
  out.add(classify(it, where));
}

/** Expand `kind: List` (what kubectl prints) and typed lists (`ServiceList`, as the API returns, whose items carry no kind). */
function flatten(doc: Record<string, unknown>, where: string, out: Sink): void {
  const kind = doc.kind;
  if (typeof kind === 'string' && kind.endsWith('List') && Array.isArray(doc.items)) {
    const itemKind = itemKindOf(kind);
    doc.items.forEach((item: unknown, i: number) => flattenItem(item, itemKind, doc.apiVersion, `${where} items[${i}]`, out));
    return;
  }
  out.add(classify(doc, where));
}

/** Where classified objects go: trimmed on the way in when asked to. */
class Sink {
  readonly objects: ClassifiedObject[] = [];
  readonly skipped: Skipped[] = [];
  readonly #trim: boolean;

  constructor(trim: boolean) {
    this.#trim = trim;
  }

  add(r: ClassifiedObject | Skipped): void {
    if (!('bucket' in r)) this.skipped.push(r);
    else if (this.#trim) this.objects.push({ ...r, object: trimObject(r.object.kind ?? '', r.object) });
    else this.objects.push(r);
  }

  clear(): void {
    this.objects.length = 0;
    this.skipped.length = 0;
  }

  /** What the file gave: every object and skip added so far. */
  result(): ParseResult {
    return { ok: true, objects: this.objects, skipped: this.skipped };
  }
}

/**
 * A JSON file taken one list item (or top-level array element) at a time
 * (json-items.ts), each classified and trimmed before the next is parsed.
 * Returns false, with nothing added, for anything but a well-formed List,
 * typed list or array of objects: the caller then parses the whole text,
 * and its result (or error) is the one it always was.
 */
function flattenJsonStreamed(body: string, name: string, out: Sink): boolean {
  const top = jsonTopLevel(body);
  if (!top) return false;
  try {
    if (top.type === 'array') {
      for (let i = 0; i < top.elements.length; i++) {
        const d = parseSpan(body, top.elements[i]!);
        if (d === null) continue;
        if (!isRec(d)) throw new Error('not an object'); // reported by the whole-text parse, after any syntax error
        flatten(d, `${name} document ${i + 1}`, out);
      }
      return true;
    }
    const kindAt = top.fields.get('kind');
    const itemsAt = top.fields.get('items');
    const kind = kindAt && parseSpan(body, kindAt);
    if (!itemsAt || typeof kind !== 'string' || !kind.endsWith('List')) throw new Error('not a list');
    const items = jsonTopLevel(body, itemsAt);
    if (items?.type !== 'array') throw new Error('items is not a list');
    // Every other field must parse too, as it would in a whole-text parse.
    for (const [k, at] of top.fields) if (k !== 'items' && k !== 'kind') parseSpan(body, at);
    const apiVersionAt = top.fields.get('apiVersion');
    const apiVersion = apiVersionAt && parseSpan(body, apiVersionAt);
    const itemKind = itemKindOf(kind);
    for (let i = 0; i < items.elements.length; i++) {
      flattenItem(parseSpan(body, items.elements[i]!), itemKind, apiVersion, `${name} document 1 items[${i}]`, out);
    }
    return true;
  } catch {
    out.clear();
    return false;
  }
}

function describeValue(v: unknown): string {
  return Array.isArray(v) ? 'a list' : typeof v;
}

/** The documents of a YAML stream one at a time (what parseAllDocuments collects, but lazily; errors left as they come). */
function* yamlDocuments(text: string): Generator<Yaml.Document.Parsed> {
  const { Composer, Parser } = yaml();
  yield* new Composer({ merge: true }).compose(new Parser().parse(text));
}

/**
 * YAML documents taken one at a time, each classified and trimmed before the
 * next is parsed. Returns false, with nothing added, when any document has an
 * error or is not a mapping: the caller then parses the whole text for the
 * error it always reported.
 */
function flattenYamlDocuments(body: string, name: string, out: Sink): boolean {
  let i = 0;
  for (const d of yamlDocuments(body)) {
    i++;
    const v: unknown = d.errors.length === 0 ? d.toJS(TO_JS) : undefined;
    if (d.errors.length > 0 || (v !== null && v !== undefined && !isRec(v))) {
      out.clear();
      return false;
    }
    if (isRec(v)) flatten(v, `${name} document ${i}`, out);
  }
  return true;
}

/** The one document of `text` as a value; throws when it has errors or is not exactly one document. */
function yamlOne(text: string): unknown {
  let v: unknown;
  let n = 0;
  for (const d of yamlDocuments(text)) {
    if (++n > 1 || d.errors.length > 0) throw new Error('not one clean document');
    v = d.toJS(TO_JS);
  }
  if (n !== 1) throw new Error('not one document');
  return v;
}

/**
 * A YAML List taken one item at a time (yaml-items.ts), each classified and
 * trimmed before the next is parsed. Returns false, with nothing added,
 * unless the head and every item parse on their own: the caller then parses
 * the whole text, and its result (or error) is the one it always was.
 */
function flattenYamlStreamed(body: string, name: string, out: Sink): boolean {
  const pieces = splitYamlList(body);
  if (!pieces) return false;
  try {
    const head = yamlOne(pieces.head);
    if (!isRec(head) || typeof head.kind !== 'string' || !head.kind.endsWith('List') || !Array.isArray(head.items) || head.items.length !== 0) throw new Error('not a list');
    const itemKind = itemKindOf(head.kind);
    for (let i = 0; i < pieces.items.length; i++) {
      const one = yamlOne(pieces.items[i]!);
      if (!Array.isArray(one) || one.length !== 1) throw new Error('not one item');
      flattenItem(one[0], itemKind, head.apiVersion, `${name} document 1 items[${i}]`, out);
    }
    return true;
  } catch {
    out.clear();
    return false;
  }
}

/**
 * Parse the text of one manifest file: YAML (multi-document, `---`), or JSON
 * when `name` ends in .json. Empty documents are fine. With `trim`, objects
 * come trimmed to what the agent reads (trim.ts); a large list (JSON, or
 * YAML as kubectl prints it) is then parsed item by item, so neither the
 * untrimmed whole nor the YAML library's node tree of it exists at once.
 *
 * The whole file fails (ok: false) when it does not parse, or when a
 * document is not a mapping (a stray scalar is what a half-written file
 * often looks like). A parsed file can still skip single objects (listed in
 * `skipped`).
 */
export function parseManifests(text: string, name: string, opts: { trim?: boolean } = {}): ParseResult {
  const out = new Sink(opts.trim ?? false);
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  try {
    const docs: unknown[] = [];
    if (name.toLowerCase().endsWith('.json')) {
      if (body.trim() === '') return out.result();
      if (opts.trim && flattenJsonStreamed(body, name, out)) return out.result();
      const v: unknown = JSON.parse(body);
      if (Array.isArray(v)) docs.push(...v);
      else docs.push(v);
    } else {
      if (opts.trim && (flattenYamlStreamed(body, name, out) || flattenYamlDocuments(body, name, out))) return out.result();
      const parsed = yaml().parseAllDocuments(body, { merge: true, prettyErrors: true });
      const list = Array.isArray(parsed) ? parsed : [];
      for (let i = 0; i < list.length; i++) {
        const d = list[i];
        if (!d) continue;
        const err = d.errors[0];
        if (err) return { ok: false, error: `document ${i + 1}: ${err.message.split('\n')[0] ?? 'parse error'}` };
        docs.push(d.toJS(TO_JS));
      }
    }
    for (let i = 0; i < docs.length; i++) {
      const d = docs[i];
      if (d === null || d === undefined) continue;
      if (!isRec(d)) return { ok: false, error: `document ${i + 1} is ${describeValue(d)}, not an object` };
      flatten(d, `${name} document ${i + 1}`, out);
    }
  } catch (e) {
    return { ok: false, error: e instanceof Error ? e.message.split('\n')[0] ?? e.message : String(e) };
  }
  return out.result();
}

/** Build a Snapshot from classified objects: a later object with the same key replaces an earlier one (as repeated `kubectl apply` would). */
export function toSnapshot(objects: Iterable<ClassifiedObject>): { snapshot: Snapshot; replaced: string[] } {
  const byKey = new Map<string, ClassifiedObject>();
  const replaced: string[] = [];
  for (const o of objects) {
    if (byKey.has(o.key)) {
      replaced.push(o.key);
      byKey.delete(o.key); // re-insert so the order is that of the last definition
    }
    byKey.set(o.key, o);
  }
  const snapshot = emptySnapshot();
  for (const o of byKey.values()) snapshot[o.bucket].push(o.object);
  return { snapshot, replaced };
}
