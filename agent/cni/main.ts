// Entry of kinglet-cni: read stdin and the CNI_* environment, run the
// command, print the result (or the error result) on stdout, exit 0 or 1.
// Logs go to stderr. Plain fd reads and writes rather than process.stdin /
// process.stdout: those streams cost milliseconds to set up, and this
// process lives for one request on the pod start-up path.
import { readFileSync, writeSync } from 'node:fs';
import { runPlugin } from './plugin.ts';

function readStdin(): string {
  try {
    return readFileSync(0, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // No stdin at all (closed fd) is an empty configuration, reported as such later.
    if (code === 'EBADF' || code === 'EINVAL') return '';
    throw e;
  }
}

function writeAll(fd: number, text: string): void {
  const buf = Buffer.from(text);
  let off = 0;
  while (off < buf.length) {
    try {
      off += writeSync(fd, buf, off);
    } catch (e) {
      // A non-blocking pipe that is full: wait a little and go on.
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
  }
}

async function main(): Promise<number> {
  let stdin = '';
  // VERSION typed at a terminal: do not wait for input that will not come.
  if (!(process.env['CNI_COMMAND'] === 'VERSION' && (await import('node:tty')).isatty(0))) {
    try {
      stdin = readStdin();
    } catch (e) {
      writeAll(1, JSON.stringify({ cniVersion: '1.1.0', code: 5, msg: 'cannot read the network configuration from stdin', details: (e as Error).message }) + '\n');
      return 1;
    }
  }
  const out = await runPlugin(process.env, stdin, (line) => writeAll(2, `kinglet-cni: ${line}\n`));
  if (out.stdout) writeAll(1, out.stdout + '\n');
  return out.exitCode;
}

// Exit at once: nothing else is worth waiting for.
process.exit(await main());
