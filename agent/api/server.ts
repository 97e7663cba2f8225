// The agent's local API: HTTP/1.1 + JSON on a unix socket that only root can
// open (mode 0600). Routes are plain functions so the agent composes them.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import type { ApiError } from './types.ts';

// node:http through getBuiltinModule, not an ES import: the import's
// namespace reads every export, and http's WebSocket/MessageEvent getters
// then load undici (measured: idle agent RSS +12 MB for nothing).
const { createServer } = process.getBuiltinModule('node:http');

export class HttpError extends Error {
  override name = 'HttpError';
  readonly status: number;
  readonly hint: string | undefined;
  constructor(status: number, message: string, hint?: string) {
    super(message);
    this.status = status;
    this.hint = hint;
  }
}

export interface Request {
  method: string;
  path: string;
  /** Path parameters from `{name}` segments. */
  params: Record<string, string>;
  query: URLSearchParams;
  /** The parsed JSON body; the raw bytes (a Buffer) on routes registered with `raw`. */
  body: unknown;
}

export type Handler = (req: Request) => Promise<unknown> | unknown;

/** A handler's answer sent as is (status, headers, bytes) instead of as JSON. */
export class Reply {
  readonly status: number;
  readonly body: string;
  readonly headers: Record<string, string>;
  constructor(status: number, body: string, headers: Record<string, string> = {}) {
    this.status = status;
    this.body = body;
    this.headers = headers;
  }
}

export interface RouteOptions {
  /** Hand the body over as bytes (any content type), not parsed as JSON. */
  raw?: boolean;
}

interface Route {
  method: string;
  parts: string[];
  handler: Handler;
  raw: boolean;
}

const MAX_BODY = 1 << 20;

export class ApiServer {
  readonly #routes: Route[] = [];
  #server: Server | undefined;
  #path = '';

  route(method: string, pattern: string, handler: Handler, opts: RouteOptions = {}): this {
    this.#routes.push({ method, parts: pattern.split('/').filter(Boolean), handler, raw: opts.raw ?? false });
    return this;
  }

  /**
   * Call a route's handler in-process, as a request over the socket would
   * (the agent's own CNI plugin runs use this instead of a socket round trip).
   * Throws HttpError like the handlers, 404/405 for an unknown path or method.
   */
  async dispatch(method: string, path: string, body?: unknown): Promise<unknown> {
    const m = this.#find(method, path);
    return m.route.handler({ method, path, params: m.params, query: new URLSearchParams(), body });
  }

  #find(method: string, path: string): { route: Route; params: Record<string, string> } {
    const m = this.#match(method, path);
    if (m === undefined) throw new HttpError(404, `no such API path: ${path}`);
    if (m === 'method') throw new HttpError(405, `${method} is not allowed on ${path}`);
    return m;
  }

  #match(method: string, path: string): { route: Route; params: Record<string, string> } | 'method' | undefined {
    const parts = path.split('/').filter(Boolean);
    let pathMatched = false;
    for (const route of this.#routes) {
      if (route.parts.length !== parts.length) continue;
      const params: Record<string, string> = {};
      const ok = route.parts.every((p, i) => {
        const seg = decodeURIComponent(parts[i]!);
        if (p.startsWith('{') && p.endsWith('}')) {
          params[p.slice(1, -1)] = seg;
          return true;
        }
        return p === seg;
      });
      if (!ok) continue;
      pathMatched = true;
      if (route.method === method) return { route, params };
    }
    return pathMatched ? 'method' : undefined;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const send = (status: number, body: unknown) => {
      const text = body === undefined ? '' : JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    try {
      const url = new URL(req.url ?? '/', 'http://agent');
      const m = this.#find(req.method ?? 'GET', url.pathname);
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const c of req as AsyncIterable<Buffer>) {
        size += c.length;
        if (size > MAX_BODY) throw new HttpError(413, `request body larger than ${MAX_BODY} bytes`);
        chunks.push(c);
      }
      let body: unknown;
      if (m.route.raw) body = Buffer.concat(chunks);
      else if (size > 0) {
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          throw new HttpError(400, 'request body is not valid JSON');
        }
      }
      const out = await m.route.handler({ method: req.method ?? 'GET', path: url.pathname, params: m.params, query: url.searchParams, body });
      if (out instanceof Reply) {
        res.writeHead(out.status, { ...out.headers, 'content-length': Buffer.byteLength(out.body) });
        res.end(out.body);
        return;
      }
      send(out === undefined ? 204 : 200, out);
    } catch (e) {
      const status = e instanceof HttpError ? e.status : 500;
      const err: ApiError = { error: e instanceof Error ? e.message : String(e) };
      if (e instanceof HttpError && e.hint) err.hint = e.hint;
      send(status, err);
    }
  }

  /** Listen on `path` (0600). A stale socket left by a killed agent is replaced; a live one is an error. */
  async listen(path: string): Promise<void> {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const st = await lstat(path).catch(() => undefined);
    if (st) {
      if (!st.isSocket()) throw new Error(`${path} exists and is not a socket; remove it or pass another --api-socket`);
      const alive = await new Promise<boolean>((resolve) => {
        const c = connect(path);
        c.once('connect', () => (c.destroy(), resolve(true)));
        c.once('error', () => resolve(false));
      });
      if (alive) throw new Error(`another agent is already serving ${path}; stop it first or pass another --api-socket`);
      await unlink(path);
    }
    const server = createServer((req, res) => void this.#handle(req, res));
    const old = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => resolve());
      });
    } finally {
      process.umask(old);
    }
    await chmod(path, 0o600);
    this.#server = server;
    this.#path = path;
  }

  async close(): Promise<void> {
    const s = this.#server;
    if (!s) return;
    this.#server = undefined;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
    await unlink(this.#path).catch(() => {});
  }
}
