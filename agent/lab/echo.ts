// The lab's echo server and check client, run with node inside a lab
// namespace (the lab starts them; they are not part of the `kinglet` CLI).
//   echo.ts server <server-name> <port>
//       HTTP on 0.0.0.0:<port>: every request is answered 200 with
//       "kinglet <server-name> <peer address>\n". Prints "listening" when ready.
//   echo.ts get <host> <port> <timeout-ms> <attempts>
//       GET http://<host>:<port>/ up to <attempts> times (stops at the first
//       answer); prints one JSON line {ok, status?, body?, error?, attempts}.
import { createServer, request } from 'node:http';

interface GetResult { ok: boolean; status?: number; body?: string; error?: string; attempts: number }

function getOnce(host: string, port: number, timeoutMs: number): Promise<Omit<GetResult, 'attempts'>> {
  return new Promise((resolve) => {
    const req = request({ host, port, path: '/', method: 'GET', agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ ok: res.statusCode === 200, status: res.statusCode ?? 0, body }));
      res.on('error', (e: NodeJS.ErrnoException) => resolve({ ok: false, error: e.code ?? e.message }));
    });
    const timer = setTimeout(() => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })), timeoutMs);
    req.on('close', () => clearTimeout(timer));
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ ok: false, error: e.code ?? e.message }));
    req.end();
  });
}

async function get(host: string, port: number, timeoutMs: number, attempts: number): Promise<void> {
  let last: Omit<GetResult, 'attempts'> = { ok: false, error: 'not tried' };
  let n = 0;
  while (n < attempts) {
    n++;
    const started = Date.now();
    last = await getOnce(host, port, timeoutMs);
    if (last.ok) break;
    // A refused or unreachable attempt returns at once: pace the retries.
    const left = 500 - (Date.now() - started);
    if (n < attempts && left > 0) await new Promise((r) => setTimeout(r, left));
  }
  process.stdout.write(JSON.stringify({ ...last, attempts: n }) + '\n');
}

function server(name: string, port: number): void {
  const s = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' });
    res.end(`kinglet ${name} ${req.socket.remoteAddress ?? '?'}\n`);
  });
  s.listen({ port, host: '0.0.0.0' }, () => process.stdout.write('listening\n'));
  const stop = () => s.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'server' && args.length === 2) server(args[0]!, Number(args[1]));
else if (mode === 'get' && args.length === 4) await get(args[0]!, Number(args[1]), Number(args[2]), Number(args[3]));
else {
  process.stderr.write('usage: echo.ts server <name> <port> | get <host> <port> <timeout-ms> <attempts>\n');
  process.exitCode = 2;
}
