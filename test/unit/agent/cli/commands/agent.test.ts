// kinglet agent: argument checks that fail before anything starts.
import t from 'tap';
import { run } from '../../../../../agent/cli/commands/agent.ts';
import { UsageError, type Io } from '../../../../../agent/cli/io.ts';

const io: Io = { out() {}, err() {} };

t.test('--masquerade-ports: a bad range is a usage error that shows the expected form', async (t) => {
  for (const bad of ['61000', '65535-61000', '0-100', '61000-70000', 'all']) {
    await t.rejects(run(['--source', 'dir:/nonexistent', '--masquerade-ports', bad], io), UsageError, `"${bad}"`);
    await t.rejects(run(['--source', 'dir:/nonexistent', '--masquerade-ports', bad], io), /--masquerade-ports: not a port range: .*like 61000-65535/);
  }
});

t.test('--help names --masquerade-ports with its default', async (t) => {
  let out = '';
  await run(['--help'], { out: (s) => (out += s), err() {} });
  t.match(out, /--masquerade-ports <min>-<max> .*default 61000-65535/);
});
