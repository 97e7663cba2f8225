// Entry of kinglet-cni: read stdin and the CNI_* environment, run the
// command, print the result (or the error result) on stdout, exit 0 or 1.
// Logs go to stderr. Only what the command needs is loaded.
import { runPlugin } from './plugin.ts';

function readStdin(): Promise<string> {
  // VERSION typed at a terminal: do not wait for input that will not come.
  if (process.stdin.isTTY) return Promise.resolve('');
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    process.stdin.on('data', (c: Buffer) => chunks.push(c));
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    process.stdin.on('error', reject);
  });
}

async function main(): Promise<void> {
  let stdin = '';
  try {
    stdin = await readStdin();
  } catch (e) {
    process.stdout.write(
      JSON.stringify({ cniVersion: '1.1.0', code: 5, msg: 'cannot read the network configuration from stdin', details: (e as Error).message }),
    );
    process.exitCode = 1;
    return;
  }
  const out = await runPlugin(process.env, stdin, (line) => process.stderr.write(`kinglet-cni: ${line}\n`));
  if (out.stdout) process.stdout.write(out.stdout + '\n');
  process.exitCode = out.exitCode;
}

await main();
