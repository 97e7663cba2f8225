// `npm run bench`: run every benchmark in test/bench (each *.ts file next to
// this one), one after the other, each in its own node process. Benchmarks
// print figures and ratios; they assert nothing about timing. They need root
// (namespaces, bpffs, cgroups): when not root, each is skipped with the reason.
//
//   npm run bench                       every benchmark
//   npm run bench -- program-maps       only those whose file name contains an argument
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rootSkipReason } from '../lib/sandbox.ts';

const here = dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2);
const files = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts')
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort();

const skip = rootSkipReason();
let failed = 0;
let current: ReturnType<typeof spawn> | undefined;
let interrupted = false;
// Ctrl-C reaches the child too (same process group); it cleans up and exits.
// Wait for it, and run nothing after.
process.on('SIGINT', () => (interrupted = true));
process.on('SIGTERM', () => {
  interrupted = true;
  current?.kill('SIGTERM');
});

for (const f of files) {
  if (interrupted) break;
  if (skip) {
    console.log(`== ${f}: skipped: ${skip}`);
    continue;
  }
  console.log(`== ${f}`);
  const t0 = Date.now();
  const rc = await new Promise<number>((resolve) => {
    current = spawn(process.execPath, [join(here, f)], { stdio: 'inherit' });
    current.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
  current = undefined;
  console.log(`== ${f}: ${rc === 0 ? 'done' : `failed (exit ${rc})`} in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  if (rc !== 0) failed++;
}
if (files.length === 0) console.log('no benchmark matched');
process.exitCode = interrupted ? 130 : failed > 0 ? 1 : 0;
