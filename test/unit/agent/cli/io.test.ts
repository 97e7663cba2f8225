// withInterrupt: Ctrl-C / SIGTERM abort the running command's signal, print
// the message, and leave no listener behind.
import t from 'tap';
import { withInterrupt } from '../../../../agent/cli/io.ts';

const capture = () => {
  const err: string[] = [];
  return { io: { out: () => {}, err: (s: string) => void err.push(s) }, err };
};

for (const once of [false, true]) {
  t.test(`a signal aborts and prints the message (once=${once})`, async (t) => {
    const before = [process.listenerCount('SIGINT'), process.listenerCount('SIGTERM')];
    const { io, err } = capture();
    const got = await withInterrupt(io, 'stopping\n', async (signal) => {
      t.equal(signal.aborted, false);
      process.emit('SIGTERM');
      t.equal(signal.aborted, true, 'aborted by the signal');
      t.equal(process.listenerCount('SIGINT'), before[0]! + 1, 'SIGINT still caught until the command ends');
      t.equal(process.listenerCount('SIGTERM'), before[1]! + (once ? 0 : 1), once ? 'a second SIGTERM is left to the default' : 'SIGTERM still caught');
      return 7;
    }, once);
    t.equal(got, 7, "the command's result comes through");
    t.same(err, ['stopping\n']);
    t.same([process.listenerCount('SIGINT'), process.listenerCount('SIGTERM')], before, 'listeners removed');
  });
}

t.test('listeners are removed when the command throws', async (t) => {
  const before = process.listenerCount('SIGINT');
  await t.rejects(withInterrupt(capture().io, 'x', async () => { throw new Error('boom'); }), /boom/);
  t.equal(process.listenerCount('SIGINT'), before);
});
