// The JSON top-level scanner (json-items.ts) and the item-by-item parse of
// JSON manifests it enables: every split must give back what JSON.parse
// gives for the same text, and parseManifests with trimming must give what
// a whole-text parse followed by trimming gives, errors included.
import t, { type Test } from 'tap';
import { jsonTopLevel, parseSpan, type JsonTopLevel } from '../../../../agent/source/json-items.ts';
import { parseManifests } from '../../../../agent/source/manifests.ts';
import { wholeThenTrimmed } from '../../../lib/manifests.ts';

/** What the scanner's spans give back, parsed: the array, or the object. */
function reassembled(text: string, top: JsonTopLevel): unknown {
  if (top.type === 'array') return top.elements.map((s) => parseSpan(text, s));
  return Object.fromEntries([...top.fields].map(([k, s]) => [k, parseSpan(text, s)]));
}

function sameAsJsonParse(t: Test, text: string, msg: string): void {
  const top = jsonTopLevel(text);
  if (!top) {
    t.fail(`${msg}: not split`);
    return;
  }
  t.same(reassembled(text, top), JSON.parse(text), msg);
}

t.test('splits arrays and objects into values JSON.parse agrees with', async (t) => {
  sameAsJsonParse(t, '[]', 'empty array');
  sameAsJsonParse(t, '{}', 'empty object');
  sameAsJsonParse(t, ' \n\t[ 1 , -2.5e3,true,false,null , "x" ]\r\n ', 'scalars and every kind of whitespace');
  sameAsJsonParse(t, '{"a":{"b":[{"c":[[]]},{}]},"d":[{"e":{"f":{}}}]}', 'nesting');
  sameAsJsonParse(t, '[{"s":"]}[{,:"},"}{",{"k]":"[\\"]"}]', 'brackets, commas and colons inside strings');
  sameAsJsonParse(t, '{"q":"a\\"b","bs":"c\\\\","bsq":"\\\\\\"","end":"\\\\"}', 'escaped quotes and backslashes before a closing quote');
  sameAsJsonParse(t, '["\\u005d\\u0022", "\\n\\t\\/"]', 'unicode escapes of delimiters');
  sameAsJsonParse(t, '{"ключ":"значение ]}","emoji":["😀\\ud83d\\ude00"],"nul":"\\u0000"}', 'non-ASCII text and surrogate pairs');
  sameAsJsonParse(t, '{"a\\"b":1,"":2}', 'keys with escapes, and an empty key');
  const top = jsonTopLevel('{"kind":"List","items":[{"a":1},{"b":[2]}]}');
  t.equal(top?.type, 'object');
  if (top?.type === 'object') {
    const items = jsonTopLevel('{"kind":"List","items":[{"a":1},{"b":[2]}]}', top.fields.get('items'));
    t.same(items?.type === 'array' && items.elements.length, 2, 'a nested span splits on its own');
  }
});

t.test('anything not laid out as a JSON array or object: undefined (the caller parses the whole text)', async (t) => {
  for (const text of [
    '', '   ', '5', '"str"', 'null', 'true',
    '[1,2', '[1 2]', '[1,]', '[,1]', '{"a":1,}', '{"a" 1}', '{a:1}', '{"a":1 "b":2}',
    '[1]x', '[1] [2]', '{"a":"unterminated}', '[{"a":[1,2}]', '[{"a":1]',
    '{"a":1,"a":2}', // duplicate keys: JSON.parse keeps the last; left to it
  ]) {
    t.equal(jsonTopLevel(text), undefined, JSON.stringify(text));
  }
  // Mismatched bracket kinds inside a value are not the scanner's business (it counts): JSON.parse of the span refuses them.
  const text = '[{"a":[1}],2]';
  const top = jsonTopLevel(text);
  t.equal(top?.type === 'array' && top.elements.length, 2);
  if (top?.type === 'array') t.throws(() => parseSpan(text, top.elements[0]!), SyntaxError);
});

const svc = (name: string, ip: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'web', uid: `u-${name}`, managedFields: [{ manager: 'kubectl' }], annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"x":"]}"}' } },
  spec: { clusterIP: ip, ports: [{ port: 80, protocol: 'TCP', targetPort: 8080 }] },
  status: { loadBalancer: {} },
  ...extra,
});
const slice = (name: string) => ({
  metadata: { name: `${name}-1`, namespace: 'web', labels: { 'kubernetes.io/service-name': name } },
  addressType: 'IPv4',
  ports: [{ port: 8080, protocol: 'TCP' }],
  endpoints: [{ addresses: ['10.42.0.7'], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'p' } }],
});

/** What the dir source got before items were parsed one at a time: the whole text parsed, then each object trimmed. */
t.test('parseManifests with trim: the same objects, skips and errors as a whole-text parse then trim', async (t) => {
  const cases: Record<string, string> = {
    'a kind: List': JSON.stringify({ apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: '' }, items: [svc('a', '10.43.0.1'), { ...slice('a'), apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice' }, { kind: 'ConfigMap', metadata: { name: 'c' } }, 7, svc('b', '10.43.0.2', { metadata: { name: 'b' } })] }, null, 2),
    'a typed list (items without kind)': JSON.stringify({ kind: 'EndpointSliceList', apiVersion: 'discovery.k8s.io/v1', items: [slice('a'), slice('b')] }),
    'a typed list with apiVersion after items': `{"items":[${JSON.stringify(slice('a'))}],"kind":"EndpointSliceList","apiVersion":"discovery.k8s.io/v1beta1"}`,
    'a typed list without apiVersion': JSON.stringify({ kind: 'ServiceList', items: [{ metadata: { name: 's' }, spec: { clusterIP: '10.43.0.9' } }] }),
    'a top-level array with null and a nested List': JSON.stringify([svc('a', '10.43.0.1'), null, { kind: 'List', items: [svc('b', '10.43.0.2')] }]),
    'a single object': JSON.stringify(svc('a', '10.43.0.1')),
    'an object whose items is not a list': JSON.stringify({ kind: 'List', items: {} }),
    'a List with a duplicate key': `{"kind":"List","items":[],"items":[${JSON.stringify(svc('a', '10.43.0.1'))}]}`,
    'a BOM and CRLF': `\uFEFF{\r\n"kind": "List",\r\n"items": [${JSON.stringify(svc('a', '10.43.0.1'))}]\r\n}\r\n`,
    'unicode in values': JSON.stringify({ kind: 'List', items: [svc('a', '10.43.0.1', { metadata: { name: 'a', namespace: 'ünï', labels: { x: '😀 ]}' } } })] }),
    'empty': '  \n',
    // Broken files: the error must read as a whole-text JSON.parse reports it.
    'cut in the middle of an item': JSON.stringify({ kind: 'List', items: [svc('a', '10.43.0.1'), svc('b', '10.43.0.2')] }).slice(0, 300),
    'a syntax error inside an item': `{"kind":"List","items":[${JSON.stringify(svc('a', '10.43.0.1'))},{"kind":"Service",]}`,
    'a bad other field': `{"kind":"List","metadata":{"x":tru},"items":[]}`,
    'an array with a scalar then a syntax error': '[{"kind":"Namespace","metadata":{"name":"n"}}, 5, {"a":}]',
    'an array with a scalar': '[{"kind":"Namespace","metadata":{"name":"n"}}, "x"]',
    'a scalar': '42',
    'text after the end': `${JSON.stringify({ kind: 'List', items: [] })} {}`,
  };
  for (const [what, text] of Object.entries(cases)) {
    t.same(parseManifests(text, 'f.json', { trim: true }), wholeThenTrimmed(text, 'f.json'), what);
  }
  const broken = parseManifests(cases['cut in the middle of an item']!, 'f.json', { trim: true });
  t.equal(broken.ok, false, 'a cut file fails as a whole');
  const list = parseManifests(cases['a kind: List']!, 'f.json', { trim: true });
  t.ok(list.ok && list.objects.length === 3 && list.objects.every((o) => !('managedFields' in (o.object.metadata ?? {}))), 'items are trimmed');
});

t.test('a large List gives the same objects streamed as parsed whole', async (t) => {
  const items: unknown[] = [];
  for (let i = 0; i < 2000; i++) items.push(svc(`s${i}`, `10.43.${i >> 8}.${i & 255}`), { ...slice(`s${i}`), apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice' });
  const text = JSON.stringify({ apiVersion: 'v1', kind: 'List', items });
  // The point: JSON.parse never sees more than one item at a time.
  const parse = JSON.parse;
  let longest = 0;
  JSON.parse = (s: string, ...rest: []) => {
    longest = Math.max(longest, s.length);
    return parse(s, ...rest) as unknown;
  };
  let r: ReturnType<typeof parseManifests>;
  try {
    r = parseManifests(text, 'big.json', { trim: true });
  } finally {
    JSON.parse = parse;
  }
  t.ok(longest > 0 && longest < 1000, `the longest text parsed at once: ${longest} characters of ${text.length}`);
  t.same(r, wholeThenTrimmed(text, 'big.json'));
  t.equal(r.ok && r.objects.length, 4000);
  for (const [what, bad] of [['cut', text.slice(0, -2)], ['a broken item', text.replace('"s1999"', '"s1999",,')]] as const) {
    const b = parseManifests(bad, 'big.json', { trim: true });
    t.same(b, wholeThenTrimmed(bad, 'big.json'), `${what}: the whole-text error`);
    t.equal(b.ok, false);
  }
});
