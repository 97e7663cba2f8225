// Client for the agent's local API over its unix socket.
import type { ApiError } from './types.ts';
// Not an ES import: see server.ts (an import of node:http loads undici).
const { request } = process.getBuiltinModule('node:http');

export class ApiClientError extends Error {
  override name = 'ApiClientError';
  readonly status: number | undefined;
  readonly hint: string | undefined;
  constructor(message: string, opts: { status?: number; hint?: string; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.status = opts.status;
    this.hint = opts.hint;
  }
}

/**
 * One JSON request to the agent. Throws ApiClientError with a message that says
 * what to do when the agent is not there (no socket, refused, not allowed).
 */
export function apiRequest<T>(
  socketPath: string,
  method: string,
  path: string,
  body?: unknown,
  timeoutMs = 10_000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request(
      {
        socketPath,
        method,
        path,
        headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          let parsed: unknown;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch (cause) {
            reject(new ApiClientError(`agent answered ${status} with a body that is not JSON`, { status, cause }));
            return;
          }
          if (status >= 200 && status < 300) resolve(parsed as T);
          else {
            const e = (parsed ?? {}) as Partial<ApiError>;
            reject(new ApiClientError(e.error ?? `agent answered ${status}`, { status, hint: e.hint }));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from the agent within ${timeoutMs} ms`)));
    req.on('error', (cause: NodeJS.ErrnoException) => {
      const why =
        cause.code === 'ENOENT' || cause.code === 'ECONNREFUSED'
          ? `the kinglet agent is not running (no API socket at ${socketPath}); start it (systemctl start kinglet-agent, or kinglet agent ...) or pass --api-socket`
          : cause.code === 'EACCES'
            ? `not allowed to open ${socketPath}: the agent's API is root-only; run as root`
            : `cannot reach the agent at ${socketPath}: ${cause.message}`;
      reject(new ApiClientError(why, { cause }));
    });
    if (payload) req.write(payload);
    req.end();
  });
}
