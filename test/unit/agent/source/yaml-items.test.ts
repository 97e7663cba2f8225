// YAML manifests parsed a piece at a time (yaml-items.ts cuts a List into
// items; other files go document by document): parseManifests with trimming
// must give what the whole-text parse followed by trimming gives, objects,
// skips and errors alike, and a List must never be parsed whole.
import t from 'tap';
import { Parser, parseAllDocuments, stringify } from 'yaml';
import { splitYamlList } from '../../../../agent/source/yaml-items.ts';
import { parseManifests } from '../../../../agent/source/manifests.ts';
import { wholeThenTrimmed } from '../../../lib/manifests.ts';

/** What the dir source got before: the whole text parsed, then each object trimmed. */
const svc = (name: string, ns = 'web') => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: ns, managedFields: [{ manager: 'kubectl' }], annotations: { note: 'items:\n- not: an item\n' } },
  spec: { clusterIP: '10.43.0.1', ports: [{ port: 80, protocol: 'TCP', targetPort: 8080 }] },
});

// kubectl's layout: the dashes at column 0 under `items:`.
const kubectl = (list: object) => stringify(list, { indentSeq: false });

t.test('splitYamlList cuts kubectl-style Lists into items, and declines anything else', async (t) => {
  const text = kubectl({ apiVersion: 'v1', kind: 'List', items: [svc('a'), svc('b')], metadata: { resourceVersion: '' } });
  const p = splitYamlList(text);
  t.equal(p?.items.length, 2);
  t.same(p && p.items.map((i) => parseAllDocuments(i)[0]!.toJS()), [[svc('a')], [svc('b')]], 'each piece is a one-entry sequence of its item');
  t.same(p && parseAllDocuments(p.head)[0]!.toJS(), { apiVersion: 'v1', kind: 'List', items: [], metadata: { resourceVersion: '' } }, 'the head keeps every other key');
  t.equal(splitYamlList(stringify({ kind: 'List', items: [svc('a')] }))?.items.length, 1, 'indented dashes');
  for (const [what, bad] of [
    ['no items', 'kind: List\n'],
    ['flow items', 'kind: List\nitems: [{a: 1}]\n'],
    ['empty items', 'kind: List\nitems:\nmetadata: {}\n'],
    ['two documents', `${text}---\nkind: Namespace\n`],
    ['a directive', `%YAML 1.2\n---\n${text}`],
    ['a comment between items', text.replace('- apiVersion: v1\n  kind: Service\n  metadata:\n    name: b', '# b\n- apiVersion: v1\n  kind: Service\n  metadata:\n    name: b')],
    ['a tab', `${text}\tx: 1\n`],
    ['a line left of indented dashes', 'items:\n  - a: 1\n x: 2\n'],
  ] as const) {
    t.equal(splitYamlList(bad), undefined, what);
  }
});

t.test('parseManifests with trim on YAML: the same as a whole-text parse then trim', async (t) => {
  const list = kubectl({ apiVersion: 'v1', kind: 'List', items: [svc('a'), svc('b', ''), { kind: 'ConfigMap', metadata: { name: 'c' } }, 'junk', { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'a-1', namespace: 'web' }, endpoints: [{ addresses: ['10.42.0.7'], targetRef: { kind: 'Pod' } }] }] });
  const cases: Record<string, string> = {
    'a kind: List': list,
    'a List with CRLF line ends': list.replace(/\n/g, '\r\n'),
    'a List with indented dashes': stringify({ kind: 'List', apiVersion: 'v1', items: [svc('a'), svc('b')] }),
    'a typed list, apiVersion after items': `kind: ServiceList\nitems:\n- metadata:\n    name: s\n  spec:\n    clusterIP: 10.43.0.9\napiVersion: v1\n`,
    'a List with block scalars and blank lines': `kind: List\nitems:\n- kind: Namespace\n  metadata:\n    name: n\n    annotations:\n      text: |\n        line one\n\n        - not an item\n\n- kind: Namespace\n  metadata:\n    name: m\n`,
    'anchors inside an item': `kind: List\nitems:\n- kind: Namespace\n  metadata: &m\n    name: n\n    labels: {a: b}\n  spec:\n    copy: *m\n`,
    'an alias to another item (taken whole)': `kind: List\nitems:\n- kind: Namespace\n  metadata: &m\n    name: n\n- kind: Namespace\n  metadata:\n    <<: *m\n    labels: {x: y}\n`,
    'several documents': `${stringify(svc('a'))}---\n# only a comment\n---\n${stringify(svc('b'))}...\n---\n${kubectl({ kind: 'List', items: [svc('c')] })}`,
    'an empty file': '',
    'only comments': '# nothing\n',
    // Broken: the error reads as the whole-text parse reports it.
    'a List with a bad item': list.replace('  name: b', '  name: [b'),
    'a List with a duplicate key': `${list}kind: List\n`,
    'a scalar document then a broken one': 'a: 1\n---\njust text\n---\nb: [\n',
    'a scalar document': 'kind: Namespace\nmetadata: {name: n}\n---\n42\n',
    'a list document': '- a\n- b\n',
    'bad indentation': 'kind: Namespace\n metadata: x\n',
  };
  for (const [what, text] of Object.entries(cases)) {
    t.same(parseManifests(text, 'f.yaml', { trim: true }), wholeThenTrimmed(text, 'f.yaml'), what);
  }
  const bad = parseManifests(cases['a List with a bad item']!, 'f.yaml', { trim: true });
  t.equal(bad.ok, false);
  t.match(!bad.ok && bad.error, /^document 1: .* at line \d+, column \d+/, 'the error names the place');
});

t.test('a large YAML List is parsed item by item', async (t) => {
  const items = Array.from({ length: 500 }, (_, i) => svc(`s${i}`));
  const text = kubectl({ apiVersion: 'v1', kind: 'List', items });
  // The point: the YAML parser never sees more than one item at a time (the same module instance as the agent's).
  const parse = Parser.prototype.parse;
  let longest = 0;
  Parser.prototype.parse = function (this: Parser, source: string, incomplete?: boolean) {
    longest = Math.max(longest, source.length);
    return parse.call(this, source, incomplete);
  };
  let r: ReturnType<typeof parseManifests>;
  try {
    r = parseManifests(text, 'big.yml', { trim: true });
  } finally {
    Parser.prototype.parse = parse;
  }
  t.ok(longest > 0 && longest < 600, `the longest text parsed at once: ${longest} characters of ${text.length}`);
  t.same(r, wholeThenTrimmed(text, 'big.yml'));
  t.equal(r.ok && r.objects.length, 500);
  const p = splitYamlList(text);
  t.ok(p && p.items.length === 500 && Math.max(...p.items.map((i) => i.length)) < 600, 'no piece holds more than one item');
});
