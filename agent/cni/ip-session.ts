// One long-lived `ip -batch -` for the agent's own network namespace: the
// agent runs CNI calls in-process (forward.ts), and an exec of `ip` costs a
// few milliseconds of each pod start; writing the batch to a running `ip`
// costs next to nothing. Used for the host side of ADD and for DEL; the
// pod side runs inside the pod's namespace and keeps its own exec.
//
// How a batch is answered: ip runs the lines in order and flushes its
// output after each command; a sentinel `link show dev lo` follows the
// batch, and its output on stdout (lo exists in every namespace) means every
// line before it succeeded (so batches must be commands that print nothing:
// add, del, set, replace). Without -force, ip exits at the first failing
// line: the exit code and stderr are the answer, with "Command failed -:N"
// renumbered to the batch's own lines, and the next batch starts a new ip.
// Batches are serialised; one that gets no answer within the timeout kills
// the process and fails.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import type { RunResult } from './plumbing.ts';

const SENTINEL = 'link show dev lo\n';
/** The sentinel's output at the end of what ip printed (batches themselves print nothing on success). */
const DONE = /1: lo: [^\n]*\n\s+link\/loopback [^\n]*\n$/;

interface Proc {
  child: ChildProcessWithoutNullStreams;
  /** Lines written so far (ip numbers them from 1 over its whole life). */
  lines: number;
  out: string;
  err: string;
  exited: Promise<number>;
}

export class IpSession {
  #proc: Proc | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  readonly #timeoutMs: number;
  readonly #cmd: string;

  constructor(opts: { timeoutMs?: number; cmd?: string } = {}) {
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
    this.#cmd = opts.cmd ?? 'ip';
  }

  /** Run `text` (lines for `ip -batch -`); resolves like plumbing's run(): never rejects for a failing line. */
  batch(text: string): Promise<RunResult> {
    const next = this.#queue.then(() => this.#run(text));
    this.#queue = next.catch(() => {});
    return next;
  }

  /** Stop the ip process (it also ends by itself when the agent exits: its stdin closes). */
  close(): void {
    this.#proc?.child.kill();
    this.#proc = undefined;
  }

  #spawn(): Proc {
    const child = spawn(this.#cmd, ['-batch', '-'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const p: Proc = {
      child,
      lines: 0,
      out: '',
      err: '',
      exited: new Promise((resolve) => {
        child.on('error', (e) => {
          p.err += `cannot run ${this.#cmd}: ${e.message}\n`;
          resolve(127);
        });
        child.on('close', (code) => resolve(code ?? 1));
      }),
    };
    child.stdout.on('data', (d: Buffer) => (p.out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (p.err += d.toString()));
    child.stdin.on('error', () => {});
    // Never what keeps the agent alive.
    child.unref();
    for (const s of [child.stdin, child.stdout, child.stderr] as unknown as { unref?: () => void }[]) s.unref?.();
    return p;
  }

  async #run(text: string): Promise<RunResult> {
    const body = text.endsWith('\n') ? text : `${text}\n`;
    // One that died while idle (killed from outside) is replaced.
    if (this.#proc && (this.#proc.child.exitCode !== null || this.#proc.child.signalCode !== null)) this.#proc = undefined;
    const p = (this.#proc ??= this.#spawn());
    const base = p.lines;
    p.out = '';
    p.err = '';
    p.lines += body.split('\n').length; // the batch's lines (body ends with a newline) and the sentinel
    p.child.stdin.write(body + SENTINEL);
    let timer: NodeJS.Timeout | undefined;
    const answer = await new Promise<'done' | 'exit' | 'timeout'>((resolve) => {
      const check = () => {
        if (DONE.test(p.out)) finish('done');
      };
      const finish = (why: 'done' | 'exit' | 'timeout') => {
        clearTimeout(timer);
        p.child.stdout.off('data', check);
        resolve(why);
      };
      p.child.stdout.on('data', check);
      void p.exited.then(() => finish('exit'));
      timer = setTimeout(() => finish('timeout'), this.#timeoutMs);
      check();
    });
    if (answer === 'done') return { code: 0, stdout: p.out.replace(DONE, ''), stderr: p.err };
    if (this.#proc === p) this.#proc = undefined;
    if (answer === 'timeout') {
      p.child.kill('SIGKILL');
      return { code: 1, stdout: '', stderr: `ip -batch gave no answer within ${this.#timeoutMs} ms\n` };
    }
    const code = await p.exited;
    const stderr = p.err.replace(/Command failed -:(\d+)/g, (_, n: string) => `Command failed -:${Number(n) - base}`);
    return { code: code === 0 ? 1 : code, stdout: p.out, stderr };
  }
}
