// gatherFacts on this machine: it only reads (/proc, /etc, `command -v`,
// `systemctl is-active`, `getconf`), and what it reads agrees with what
// Node sees and with what the planners need.
import t from 'tap';
import os from 'node:os';
import { readFile } from 'node:fs/promises';
import { gatherFacts } from '../../../installer/gather.ts';
import { kernelVerdict } from '../../../installer/facts.ts';

t.test('facts of this host', async (t) => {
  const f = await gatherFacts();
  t.equal(f.kernel.release, os.release());
  t.equal(f.arch, os.machine());
  t.equal(f.hostname, os.hostname());
  t.ok(f.cpus >= 1 && f.memoryMiB > 0, `${f.cpus} CPU, ${f.memoryMiB} MiB`);
  t.ok(f.os.id.length > 0, `os ${f.os.id} ${f.os.versionId}`);
  t.ok(kernelVerdict(f).check, 'the kernel strings are readable by kernel/check.ts');
  t.ok(f.mounts.some((m) => m.target === '/'), 'the root mount is listed');
  t.ok(f.commands.includes('tar'), 'command -v finds tar');
  const proc = await readFile('/proc/cgroups', 'utf8').catch(() => '');
  if (proc) {
    t.ok(f.cgroupControllers, 'controllers read');
    for (const m of proc.matchAll(/^(\w+)\s+\d+\s+\d+\s+1$/gm)) t.ok(f.cgroupControllers?.includes(m[1]!), `${m[1]} enabled, as /proc/cgroups says`);
  }
});
