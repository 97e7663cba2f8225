// The test command: type-check, build the BPF objects and the native CNI shim, run every tap suite,
// and close with one plain summary line ("N passed, N failed, N skipped").
// Integration and e2e suites skip themselves with a reason when not root.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

function step(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: 'inherit' });
    p.on('close', (code) => resolve(code ?? 1));
  });
}

async function main(): Promise<number> {
  const only = process.argv.slice(2);
  for (const [name, cmd, args] of [
    ['typecheck', 'npx', ['tsc', '-p', 'tsconfig.json']],
    ['bpf build', 'make', ['-s', '-C', 'bpf']],
    ['cni shim build', 'make', ['-s', '-C', 'agent/cni/shim']],
  ] as const) {
    process.stderr.write(`== ${name}\n`);
    const rc = await step(cmd, [...args]);
    if (rc !== 0) {
      console.log(`${name} failed (exit ${rc})`);
      console.log('0 passed, 1 failed');
      return 1;
    }
  }
  process.stderr.write('== tap\n');
  const tap = spawn('npx', ['tap', '-R', 'tap', ...only], { stdio: ['ignore', 'pipe', 'inherit'] });
  let passed = 0, failed = 0, skipped = 0;
  let fileHadSubtests = false;
  const rl = createInterface({ input: tap.stdout });
  const drained = new Promise((r) => rl.once('close', r));
  rl.on('line', (line) => {
    console.log(line);
    // A file's own subtests are indented four spaces; count those, and count
    // a file with no subtest (for example one that crashed) as one test.
    const sub = /^ {4}(not )?ok \d+/.exec(line);
    if (sub) {
      fileHadSubtests = true;
      if (sub[1]) failed++;
      else if (/# (SKIP|TODO)/i.test(line)) skipped++;
      else passed++;
      return;
    }
    const top = /^(not )?ok \d+/.exec(line);
    if (top) {
      if (!fileHadSubtests) {
        if (top[1]) failed++;
        else if (/# SKIP/i.test(line)) skipped++;
        else passed++;
      }
      fileHadSubtests = false;
    }
  });
  const rc: number = await new Promise((resolve) => tap.on('close', (code) => resolve(code ?? 1)));
  await drained;
  if (rc !== 0 && failed === 0) failed = 1;
  console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
  return rc === 0 && failed === 0 ? 0 : 1;
}

process.exitCode = await main();
