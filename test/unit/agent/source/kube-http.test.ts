// LineSplitter (agent/source/kube-http.ts): a watch stream's bytes cut into
// chunks anywhere still give the same lines.
import t from 'tap';
import { LineSplitter } from '../../../../agent/source/kube-http.ts';

const text = '{"a":"\u00e9\u20ac\ud83d\ude00"}\n\r\n{"b":2}\r\nlast';
const want = ['{"a":"\u00e9\u20ac\ud83d\ude00"}', '', '{"b":2}', 'last'];

function split(chunks: Buffer[]): string[] {
  const s = new LineSplitter();
  return [...chunks.flatMap((c) => s.push(c)), ...s.end()];
}

t.test('every cut of the bytes into two or three chunks gives the same lines', async (t) => {
  const bytes = Buffer.from(text);
  let bad = 0;
  for (let i = 0; i <= bytes.length; i++) {
    for (let j = i; j <= bytes.length; j++) {
      const got = split([bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)]);
      if (JSON.stringify(got) !== JSON.stringify(want)) bad++;
    }
  }
  t.equal(bad, 0);
  t.same(split([bytes]), want);
});

t.test('one byte at a time; nothing pending after a final newline', async (t) => {
  const bytes = Buffer.from(`${text}\n`);
  t.same(split([...bytes].map((b) => Buffer.from([b]))), want);
  const s = new LineSplitter();
  t.same(s.push(Buffer.from('x\n')), ['x']);
  t.same(s.end(), []);
});
