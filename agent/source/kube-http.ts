// The kube source's HTTP: one request path for lists and watches, over
// node:http(s) with the kubeconfig's TLS, proxy agent and credentials.
//
// Why not client-node's Watch: it streams with `fetch` from undici, and
// undici alone costs the agent ~14 MB of RSS (see client-node-slim.ts). The
// lists were already ours (kube.ts); the watch here has the contract
// client-node's Watch.watch has (dist/watch.js, 2.0.1), which its ListWatch
// relies on:
// - URL: the current cluster's server + path, `watch=true` and every query
//   parameter that is not undefined.
// - Returns an AbortController once the request is under way; aborting it
//   closes the request.
// - `done` is called exactly once: null when the server ends the stream,
//   the error otherwise; a DOMException named TimeoutError when no bytes
//   came for `idleMs` (before the answer too: the connect timeout); a status
//   other than 200 gives Error(status text) with `.statusCode`; an abort by
//   the caller gives the abort's reason (an AbortError).
// - Each JSON line -> callback(type, object, whole event); lines that are not
//   JSON are skipped. Lines may be split anywhere across chunks.
// Credentials: KubeConfig.applyToHTTPSOptions, which runs the same
// authenticators (exec plugins, token files, OIDC, cloud providers) as the
// applySecurityAuthentication client-node's fetch-based clients use, and
// gives the cached node:https agent (or the proxy agent of a proxy-url).
import http, { STATUS_CODES } from 'node:http';
import type { ClientRequest, IncomingMessage } from 'node:http';
import https from 'node:https';
import { StringDecoder } from 'node:string_decoder';
import type { KubeConfig } from '@kubernetes/client-node/dist/config.js';

export type WatchCallback = (phase: string, apiObj: any, watchObj?: any) => void;

/** client-node's Watch: its idle timeout, also used as the connect timeout. */
const WATCH_IDLE_MS = 30_000;

/** Request options with the kubeconfig's TLS settings, agent and credentials (runs its auth plugins). */
export async function kubeRequestOptions(kc: KubeConfig): Promise<https.RequestOptions> {
  const opts: https.RequestOptions = {};
  await kc.applyToHTTPSOptions(opts);
  return opts;
}

/** A GET to `url` with `opts` (from kubeRequestOptions), over http or https as the URL says. */
export function kubeGet(url: URL, opts: https.RequestOptions, onResponse: (res: IncomingMessage) => void): ClientRequest {
  const o: https.RequestOptions = { ...opts, method: 'GET', headers: { ...(opts.headers ?? {}), Accept: 'application/json' } };
  const req = url.protocol === 'http:' ? http.request(url, o, onResponse) : https.request(url, o, onResponse);
  req.end();
  return req;
}

const timeoutError = (): DOMException => new DOMException('The operation was aborted due to timeout', 'TimeoutError');

/** Splits a byte stream into lines (UTF-8 safe, '\n' or '\r\n'), keeping a partial line's pieces until its end comes. */
export class LineSplitter {
  readonly #decoder = new StringDecoder('utf8');
  #pending: string[] = [];

  /** The complete lines in `chunk` (and before it). */
  push(chunk: Buffer | string): string[] {
    const text = typeof chunk === 'string' ? chunk : this.#decoder.write(chunk);
    const out: string[] = [];
    let from = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', from)) {
      let line = text.slice(from, nl);
      if (this.#pending.length > 0) {
        line = this.#pending.join('') + line;
        this.#pending = [];
      }
      out.push(line.endsWith('\r') ? line.slice(0, -1) : line);
      from = nl + 1;
    }
    if (from < text.length) this.#pending.push(text.slice(from));
    return out;
  }

  /** The last line when the stream ended without a newline. */
  end(): string[] {
    const rest = this.#pending.join('') + this.#decoder.end();
    this.#pending = [];
    return rest === '' ? [] : this.push(`${rest}\n`);
  }
}

/**
 * Watch `path` on the kubeconfig's current cluster (see the file header for
 * the contract). Rejects only when the request cannot start (no current
 * cluster, credentials that cannot be applied); `done` is not called then.
 */
export async function watchStream(
  kc: KubeConfig,
  path: string,
  queryParams: Record<string, string | number | boolean | undefined>,
  callback: WatchCallback,
  done: (err: unknown) => void,
  idleMs = WATCH_IDLE_MS,
): Promise<AbortController> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('No currently active cluster');
  const url = new URL(cluster.server + path);
  url.searchParams.set('watch', 'true');
  for (const [k, v] of Object.entries(queryParams ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
  const opts = await kubeRequestOptions(kc);

  const controller = new AbortController();
  let req: ClientRequest | undefined;
  let res: IncomingMessage | undefined;
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  let finished = false;
  const close = (): void => {
    res?.destroy();
    req?.destroy();
  };
  const finish = (err: unknown): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    // Once aborted, whatever the socket says afterwards, the abort is the cause.
    if (controller.signal.aborted) err = timedOut ? timeoutError() : controller.signal.reason;
    else controller.abort();
    close();
    done(err);
  };
  const resetTimer = (): void => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      timedOut = true;
      controller.abort(timeoutError());
    }, idleMs);
    timer.unref();
  };
  controller.signal.addEventListener('abort', () => {
    close();
    // No event may follow a request that had not answered yet: done comes from here.
    if (!finished) process.nextTick(() => finish(null));
  }, { once: true });

  const lines = new LineSplitter();
  const deliver = (ls: string[]): void => {
    for (const line of ls) {
      if (finished || controller.signal.aborted) return;
      let data: { type?: unknown; object?: unknown };
      try {
        data = JSON.parse(line) as typeof data;
      } catch {
        continue; // not JSON: skipped, as client-node does
      }
      if (data === null || typeof data !== 'object') continue;
      callback(data.type as string, data.object, data);
    }
  };

  resetTimer(); // until the answer: the connect timeout
  req = kubeGet(url, opts, (r) => {
    res = r;
    if (finished || controller.signal.aborted) {
      r.destroy();
      return;
    }
    const code = r.statusCode ?? 0;
    if (code !== 200) {
      r.resume();
      const err = new Error(r.statusMessage || STATUS_CODES[code] || 'Internal Server Error') as Error & { statusCode: number };
      err.statusCode = code;
      finish(err);
      return;
    }
    resetTimer(); // from here on: the idle timeout
    r.on('data', (chunk: Buffer) => {
      resetTimer();
      deliver(lines.push(chunk));
    });
    r.on('end', () => {
      deliver(lines.end());
      finish(null);
    });
    r.on('error', finish);
    r.on('close', () => finish(r.complete ? null : new Error('watch connection closed before the stream ended')));
  });
  req.on('error', finish);
  return controller;
}
