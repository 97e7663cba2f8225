// The plugin's client for the agent's local API (agent/api/types.ts): one
// HTTP/1.1 request per connection over the unix socket, written on node:net.
// agent/api/client.ts speaks the same protocol through node:http, whose
// import alone costs ~25 ms; the plugin sits on the pod start-up path and is
// a fresh process each time, so it carries this small client instead.
// Same error split as client.ts: `status` undefined = the agent is not
// there (no socket, refused, timeout), else the agent's ApiError.
import { connect } from 'node:net';
import type { ApiError } from '../api/types.ts';

export class AgentError extends Error {
  override name = 'AgentError';
  readonly status: number | undefined;
  readonly hint: string | undefined;
  constructor(message: string, status?: number, hint?: string) {
    super(message);
    this.status = status;
    this.hint = hint;
  }
}

interface RawResponse {
  status: number;
  body: string;
}

/** Parse a complete HTTP/1.1 response (Content-Length, chunked, or until close). */
export function parseHttpResponse(raw: Buffer): RawResponse {
  const sep = raw.indexOf('\r\n\r\n');
  if (sep < 0) throw new Error('incomplete HTTP response');
  const head = raw.subarray(0, sep).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? '');
  if (!m) throw new Error(`not an HTTP response: ${JSON.stringify((head[0] ?? '').slice(0, 40))}`);
  const headers = new Map<string, string>();
  for (const line of head.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  let body = raw.subarray(sep + 4);
  if (/chunked/i.test(headers.get('transfer-encoding') ?? '')) {
    const parts: Buffer[] = [];
    let off = 0;
    for (;;) {
      const eol = body.indexOf('\r\n', off);
      if (eol < 0) throw new Error('truncated chunked body');
      const size = parseInt(body.subarray(off, eol).toString('latin1'), 16);
      if (!Number.isFinite(size)) throw new Error('bad chunk size');
      if (size === 0) break;
      parts.push(body.subarray(eol + 2, eol + 2 + size));
      off = eol + 2 + size + 2;
    }
    body = Buffer.concat(parts);
  } else if (headers.has('content-length')) {
    body = body.subarray(0, Number(headers.get('content-length')));
  }
  return { status: Number(m[1]), body: body.toString('utf8') };
}

/** One JSON request to the agent. Rejects with AgentError. */
export function agentRequest<T>(socketPath: string, method: string, path: string, body?: unknown, timeoutMs = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(body));
    const head =
      `${method} ${path} HTTP/1.1\r\nHost: kinglet-agent\r\nConnection: close\r\nAccept: application/json\r\n` +
      (body === undefined ? '' : `Content-Type: application/json\r\n`) +
      `Content-Length: ${payload.length}\r\n\r\n`;
    const chunks: Buffer[] = [];
    let settled = false;
    const done = (e: AgentError | undefined, v?: T) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (e) reject(e);
      else resolve(v as T);
    };
    const sock = connect(socketPath);
    const timer = setTimeout(() => done(new AgentError(`no answer from the kinglet agent at ${socketPath} within ${timeoutMs} ms`)), timeoutMs);
    sock.on('connect', () => sock.write(Buffer.concat([Buffer.from(head, 'latin1'), payload])));
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      const why =
        e.code === 'ENOENT' || e.code === 'ECONNREFUSED'
          ? `the kinglet agent is not running (no API socket at ${socketPath}); start it (systemctl start kinglet-agent, or kinglet agent ...)`
          : e.code === 'EACCES'
            ? `not allowed to open ${socketPath}: the agent's API is root-only`
            : `cannot reach the kinglet agent at ${socketPath}: ${e.message}`;
      done(new AgentError(why));
    });
    sock.on('close', () => {
      if (settled) return;
      let res: RawResponse;
      try {
        res = parseHttpResponse(Buffer.concat(chunks));
      } catch (e) {
        done(new AgentError(`the kinglet agent at ${socketPath} closed the connection without a valid answer (${(e as Error).message})`));
        return;
      }
      let parsed: unknown;
      try {
        parsed = res.body ? JSON.parse(res.body) : undefined;
      } catch {
        done(new AgentError(`the agent answered ${res.status} with a body that is not JSON`, res.status));
        return;
      }
      if (res.status >= 200 && res.status < 300) done(undefined, parsed as T);
      else {
        const e = (parsed ?? {}) as Partial<ApiError>;
        done(new AgentError(e.error ?? `the agent answered ${res.status}`, res.status, e.hint));
      }
    });
  });
}
