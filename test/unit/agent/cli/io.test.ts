// withInterrupt: Ctrl-C / SIGTERM abort the running command's signal, print
// the message, and leave no listener behind. commandFlags: a command's flags,
// a bad invocation told with the command's help.
import t from 'tap';
import { commandFlags, UsageError, withInterrupt } from '../../../../agent/cli/io.ts';

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

t.test('commandFlags: flags parsed; unknown flags and positionals are usage errors that show the help', async (t) => {
  const options = { json: { type: 'boolean', default: false }, name: { type: 'string' } } as const;
  t.same(commandFlags(['--json', '--name', 'x'], options, 'HELP'), { json: true, name: 'x' });
  t.same(commandFlags([], options, 'HELP'), { json: false });
  for (const bad of [['--nope'], ['extra'], ['--name']]) {
    let e: unknown;
    try {
      commandFlags(bad, options, 'usage: kinglet x [--json]\n');
    } catch (err) {
      e = err;
    }
    t.type(e, UsageError, `${bad.join(' ')}: a UsageError`);
    t.equal((e as UsageError).exitCode, 2);
    t.match((e as Error).message, /\n\nusage: kinglet x \[--json\]\n$/, 'ending with the help');
  }
});
