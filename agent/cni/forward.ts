// The agent's side of the native shim (agent/cni/shim/kinglet-cni.c): the
// shim forwards one CNI call as `POST /v1/cni` on the agent's API socket and
// the agent runs the plugin (plugin.ts, the same code as the Node
// executable) in-process, so a pod start costs no Node start-up.
//
// Request body (Content-Type application/x-kinglet-cni), bytes:
//
//   CNI_COMMAND=ADD\0CNI_CONTAINERID=...\0 ... \0   the CNI_* environment, each NUL-terminated
//   \0                                             an empty entry: end of the environment
//   {"cniVersion":...}                             the rest: the plugin's stdin, as is
//
// Only CNI_* names (upper case, digits, "_"), each at most once, at most
// MAX_VARS of them. Answer: 200 with header Kinglet-Cni-Exit (the plugin's
// exit code) and the plugin's stdout as the body, byte for byte what the
// Node executable prints. A request that is not framed like that gets a 400
// ApiError; the shim then runs the Node plugin, which does not depend on the
// framing.
import { HttpError, Reply, type ApiServer, type Handler } from '../api/server.ts';
import { AgentError } from './agent-client.ts';
import { runPlugin, type AgentLink, type Log, type RunOptions } from './plugin.ts';
import { IpSession } from './ip-session.ts';
import { useIpSession, useRtnl } from './plumbing.ts';
import { setupHostRtnl, setupPodRtnl } from './rtnl.ts';

export const CNI_ROUTE = '/v1/cni';
export const CNI_CONTENT_TYPE = 'application/x-kinglet-cni';
export const EXIT_HEADER = 'kinglet-cni-exit';
export const MAX_VARS = 32;

const NAME = /^CNI_[A-Z0-9_]{1,64}$/;

export interface ForwardedCall {
  env: Record<string, string>;
  stdin: string;
}

/** Encode a call the way the shim does (tests and tools). */
export function encodeCall(env: Record<string, string>, stdin: string | Buffer): Buffer {
  const head = Object.entries(env)
    .map(([k, v]) => `${k}=${v}\0`)
    .join('');
  return Buffer.concat([Buffer.from(`${head}\0`, 'utf8'), Buffer.isBuffer(stdin) ? stdin : Buffer.from(stdin, 'utf8')]);
}

/** Decode a forwarded call. Throws HttpError 400 saying what is wrong. */
export function decodeCall(body: Buffer): ForwardedCall {
  const env: Record<string, string> = {};
  let off = 0;
  let n = 0;
  for (;;) {
    const end = body.indexOf(0, off);
    if (end < 0) throw new HttpError(400, 'forwarded CNI call: the environment is not terminated by an empty entry', 'the body is NUL-terminated NAME=value entries, an empty entry, then stdin');
    if (end === off) {
      off++;
      break;
    }
    const entry = body.subarray(off, end).toString('utf8');
    const eq = entry.indexOf('=');
    const name = eq < 0 ? entry : entry.slice(0, eq);
    if (eq < 0 || !NAME.test(name)) {
      throw new HttpError(400, `forwarded CNI call: ${JSON.stringify(entry.slice(0, 40))} is not a CNI_* variable`, 'only CNI_NAME=value entries are forwarded');
    }
    if (Object.hasOwn(env, name)) throw new HttpError(400, `forwarded CNI call: ${name} appears twice`);
    if (++n > MAX_VARS) throw new HttpError(400, `forwarded CNI call: more than ${MAX_VARS} variables`);
    env[name] = entry.slice(eq + 1);
    off = end + 1;
  }
  return { env, stdin: body.subarray(off).toString('utf8') };
}

/**
 * The POST /v1/cni handler: run the plugin with the forwarded call. `link`
 * is how the plugin reaches the agent's other routes (directly, not through
 * the socket); `log` gets the plugin's log lines. Host-side `ip` work of
 * these calls goes through one long-lived ip (ip-session.ts); ADD's two
 * sides go over rtnetlink (rtnl.ts), `ip` being the fallback.
 */
export function cniHandler(link: AgentLink, log: Log, opts: RunOptions = {}): Handler {
  // Host-side `ip` batches of the calls run here go to one long-lived ip.
  useIpSession(new IpSession());
  // Both sides of ADD over rtnetlink from the agent itself; `ip` where that fails.
  useRtnl({
    host: setupHostRtnl,
    pod: setupPodRtnl,
    fallback: (side, s, err) => log(`${side} side of ${s.hostIfname} over netlink failed (${err.message}); using ip instead`),
  });
  return async (req) => {
    const call = decodeCall(Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0));
    const out = await runPlugin(call.env, call.stdin, log, link, opts);
    return new Reply(200, out.stdout ? `${out.stdout}\n` : '', { 'content-type': 'application/json', [EXIT_HEADER]: String(out.exitCode) });
  };
}

/** An AgentLink that calls the agent's own routes in-process (HttpError -> AgentError, as over the socket). */
export function apiLink(api: ApiServer): AgentLink {
  return async (method, path, body) => {
    try {
      // Through JSON, as over the socket: the handlers get plain data and the plugin gets a copy.
      const out = await api.dispatch(method, path, body === undefined ? undefined : JSON.parse(JSON.stringify(body)));
      return out === undefined ? undefined : JSON.parse(JSON.stringify(out));
    } catch (e) {
      if (e instanceof HttpError) throw new AgentError(e.message, e.status, e.hint);
      throw new AgentError(e instanceof Error ? e.message : String(e), 500);
    }
  };
}
