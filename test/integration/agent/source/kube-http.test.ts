// The kube source's watch transport (agent/source/kube-http.ts) against a
// scripted HTTP server on 127.0.0.1: the contract client-node's ListWatch
// relies on (URL, events, done exactly once, timeouts, status errors,
// abort), and credentials that come from plugins reaching lists and watches
// alike. No root needed.
import t from 'tap';
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import type { User } from '@kubernetes/client-node';
import { kubeGet, kubeRequestOptions, watchStream } from '../../../../agent/source/kube-http.ts';
import { sleep, waitFor } from '../../../lib/wait.ts';

type Teardown = { teardown(fn: () => unknown): void };
type Handler = (req: IncomingMessage, res: ServerResponse) => void;

interface Scripted {
  server: http.Server;
  url: string;
  requests: IncomingMessage[];
  /** Requests whose connection has closed. */
  closed: number;
}

async function scripted(t: Teardown, handler: Handler): Promise<Scripted> {
  const s: Scripted = { server: http.createServer(), url: '', requests: [], closed: 0 };
  const sockets = new Set<Socket>();
  s.server.on('connection', (sock: Socket) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
  });
  s.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    s.requests.push(req);
    res.on('close', () => s.closed++);
    handler(req, res);
  });
  await new Promise<void>((r) => s.server.listen(0, '127.0.0.1', r));
  s.url = `http://127.0.0.1:${(s.server.address() as AddressInfo).port}`;
  t.teardown(() => {
    for (const sock of sockets) sock.destroy();
    return new Promise((r) => s.server.close(() => r(undefined)));
  });
  return s;
}

function kubeconfig(server: string, user: User = { name: 'u', token: 'tok' }, skipTLSVerify = true): KubeConfig {
  const kc = new KubeConfig();
  // A plain-HTTP server needs skipTLSVerify (client-node refuses http: otherwise).
  kc.loadFromOptions({ clusters: [{ name: 'c', server, skipTLSVerify }], users: [user], contexts: [{ name: 'x', cluster: 'c', user: user.name }], currentContext: 'x' });
  return kc;
}

interface Run {
  events: [string, unknown, unknown][];
  dones: unknown[];
  ctl: AbortController;
}

async function watch(kc: KubeConfig, query: Record<string, string | number | boolean | undefined> = {}, idleMs?: number): Promise<Run> {
  const events: Run['events'] = [];
  const dones: unknown[] = [];
  const ctl = await watchStream(kc, '/api/v1/services', query, (type, obj, raw) => events.push([type, obj, raw]), (err) => dones.push(err), idleMs);
  return { events, dones, ctl };
}

const line = (type: string, name: string): string => `${JSON.stringify({ type, object: { metadata: { name } } })}\n`;

t.test('URL, credentials, events split anywhere across chunks, done(null) once at the end', async (t) => {
  const ev1 = JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'caf\u00e9-\u00fc' } } });
  const bytes = Buffer.from(`${ev1}\r\nnot json\n${line('MODIFIED', 'b')}null\n\n${JSON.stringify({ type: 'DELETED', object: { metadata: { name: 'c' } } })}`);
  const s = await scripted(t, (_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    // One byte a chunk for the first event (splits the UTF-8 of é and ü), then the rest in two.
    const firstEnd = Buffer.byteLength(ev1) + 2;
    let i = 0;
    const step = (): void => {
      if (i < firstEnd) {
        res.write(bytes.subarray(i, i + 1));
        i++;
        setImmediate(step);
      } else {
        res.write(bytes.subarray(firstEnd, firstEnd + 7));
        setTimeout(() => res.end(bytes.subarray(firstEnd + 7)), 20);
      }
    };
    step();
  });
  const r = await watch(kubeconfig(s.url), { resourceVersion: '42', allowWatchBookmarks: true, labelSelector: undefined });
  await waitFor(() => r.dones.length > 0, 'done');
  await sleep(50);
  const u = new URL(s.requests[0]!.url!, s.url);
  t.equal(u.pathname, '/api/v1/services');
  t.same(Object.fromEntries(u.searchParams), { watch: 'true', resourceVersion: '42', allowWatchBookmarks: 'true' }, 'watch=true and the defined parameters');
  t.equal(s.requests[0]!.headers.authorization, 'Bearer tok', 'the kubeconfig credentials');
  t.same(r.events.map(([type, obj]) => [type, (obj as { metadata: { name: string } }).metadata.name]),
    [['ADDED', 'caf\u00e9-\u00fc'], ['MODIFIED', 'b'], ['DELETED', 'c']], 'every JSON line, in order; the rest skipped; the last line without newline too');
  t.same(r.events[1]![2], { type: 'MODIFIED', object: { metadata: { name: 'b' } } }, 'the whole event as third argument');
  t.same(r.dones, [null], 'done(null) exactly once');
  t.ok(r.ctl.signal.aborted, 'the controller is aborted once done');
});

t.test('a status other than 200: Error(status text) with statusCode, done once, no events', async (t) => {
  const s = await scripted(t, (req, res) => {
    if (req.url!.includes('resourceVersion=1')) {
      res.writeHead(410, 'Gone', { 'Content-Type': 'application/json' });
      res.end(line('ADDED', 'not-an-event'));
    } else {
      res.writeHead(403, 'Forbidden');
      res.end('{"kind":"Status","code":403}');
    }
  });
  for (const [rv, code, text] of [['1', 410, 'Gone'], ['2', 403, 'Forbidden']] as const) {
    const r = await watch(kubeconfig(s.url), { resourceVersion: rv });
    await waitFor(() => r.dones.length > 0, 'done');
    await sleep(50);
    t.equal(r.dones.length, 1, `${code}: done once`);
    const e = r.dones[0] as Error & { statusCode?: number };
    t.ok(e instanceof Error);
    t.equal(e.message, text);
    t.equal(e.statusCode, code);
    t.same(r.events, [], 'the body is not read as events');
  }
});

t.test('no bytes for idleMs: done(TimeoutError) once and the request closed; before the answer too', async (t) => {
  const s = await scripted(t, (req, res) => {
    if (req.url!.includes('resourceVersion=silent')) return; // never answers
    res.writeHead(200);
    res.write(line('ADDED', 'a'));
    // then a byte every 50 ms for 600 ms (keeps it alive: a gap under load stays well below
    // the 400 ms idle timeout), then silence
    let n = 0;
    const tick = setInterval(() => {
      if (++n > 12 || res.destroyed) return clearInterval(tick);
      res.write('\n');
    }, 50);
  });
  const kc = kubeconfig(s.url);
  const started = Date.now();
  const r = await watch(kc, { resourceVersion: 'x' }, 400);
  await waitFor(() => r.dones.length > 0, 'done');
  const took = Date.now() - started;
  t.ok(took >= 500, `bytes reset the idle timer (done after ${took} ms)`);
  const e = r.dones[0] as DOMException;
  t.equal(e.name, 'TimeoutError');
  t.equal(r.events.length, 1, 'the event before the silence');
  await waitFor(() => s.closed === 1, 'the server sees the request closed');

  const r2 = await watch(kc, { resourceVersion: 'silent' }, 150);
  await waitFor(() => r2.dones.length > 0, 'done (connect timeout)');
  t.equal((r2.dones[0] as DOMException).name, 'TimeoutError', 'no answer at all: the same TimeoutError');
  await waitFor(() => s.closed === 2, 'that request closed too');
  await sleep(100);
  t.equal(r.dones.length + r2.dones.length, 2, 'each done once');
});

t.test('abort: closes the request, done(AbortError) once, no event after it', async (t) => {
  let res1: ServerResponse | undefined;
  const s = await scripted(t, (req, res) => {
    if (req.url!.includes('resourceVersion=pending')) return;
    res1 = res;
    res.writeHead(200);
    res.write(line('ADDED', 'a'));
  });
  const kc = kubeconfig(s.url);
  const r = await watch(kc, { resourceVersion: '1' });
  await waitFor(() => r.events.length === 1, 'the first event');
  r.ctl.abort();
  res1!.write(line('ADDED', 'late'));
  await waitFor(() => r.dones.length > 0, 'done');
  await waitFor(() => s.closed === 1, 'the server sees the request closed');
  await sleep(50);
  t.equal(r.dones.length, 1, 'done once');
  t.equal((r.dones[0] as Error).name, 'AbortError');
  t.equal(r.events.length, 1, 'nothing after the abort');

  // aborted before the server answered
  const r2 = await watch(kc, { resourceVersion: 'pending' });
  await waitFor(() => s.requests.length === 2, 'the second request');
  r2.ctl.abort();
  await waitFor(() => r2.dones.length > 0, 'done');
  await waitFor(() => s.closed === 2, 'the server sees it closed');
  await sleep(50);
  t.equal(r2.dones.length, 1);
  t.equal((r2.dones[0] as Error).name, 'AbortError');
});

t.test('a connection that breaks mid-stream or cannot open is an error, not a clean end', async (t) => {
  const s = await scripted(t, (_req, res) => {
    res.writeHead(200);
    res.write(line('ADDED', 'a'));
    setTimeout(() => res.socket?.destroy(), 30);
  });
  const r = await watch(kubeconfig(s.url), { resourceVersion: '1' });
  await waitFor(() => r.dones.length > 0, 'done');
  await sleep(50);
  t.equal(r.dones.length, 1, 'done once');
  t.ok(r.dones[0] instanceof Error, `reset: ${String(r.dones[0])}`);
  t.equal(r.events.length, 1);

  // a port nothing listens on
  const probe = http.createServer();
  await new Promise<void>((res) => probe.listen(0, '127.0.0.1', res));
  const port = (probe.address() as AddressInfo).port;
  await new Promise((res) => probe.close(res));
  const r2 = await watch(kubeconfig(`http://127.0.0.1:${port}`), {});
  await waitFor(() => r2.dones.length > 0, 'done');
  t.equal((r2.dones[0] as NodeJS.ErrnoException).code, 'ECONNREFUSED');
});

t.test('credentials from plugins (exec, token file) apply to watches and lists alike', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kl-kube-http-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const tokenFile = join(dir, 'token');
  await writeFile(tokenFile, 'from-file');
  const cred = JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: 'from-exec' } });
  const s = await scripted(t, (req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(req.url!.includes('watch=true') ? line('ADDED', 'a') : '{"items":[]}');
  });
  const users: [User, string][] = [
    [{ name: 'exec', exec: { apiVersion: 'client.authentication.k8s.io/v1', command: 'sh', args: ['-c', `echo '${cred}'`], interactiveMode: 'Never' } } as unknown as User, 'Bearer from-exec'],
    [{ name: 'file', authProvider: { name: 'file', config: { tokenFile } } } as User, 'Bearer from-file'],
  ];
  for (const [user, want] of users) {
    const kc = kubeconfig(s.url, user);
    const r = await watch(kc);
    await waitFor(() => r.dones.length > 0, 'watch done');
    t.same(r.dones, [null]);
    const opts = await kubeRequestOptions(kc);
    await new Promise<void>((resolve, reject) => {
      const req = kubeGet(new URL(`${s.url}/api/v1/services`), opts, (res) => res.resume().on('end', resolve));
      req.on('error', reject);
    });
    const [w, l] = s.requests.slice(-2);
    t.equal(w!.headers.authorization, want, `${user.name}: the watch carries the plugin's token`);
    t.equal(l!.headers.authorization, want, `${user.name}: the list too`);
  }
});

t.test('cannot start: rejects without calling done', async (t) => {
  const dones: unknown[] = [];
  const none = new KubeConfig();
  await t.rejects(watchStream(none, '/api/v1/services', {}, () => {}, (e) => dones.push(e)), /No currently active cluster/);
  const strict = kubeconfig('http://127.0.0.1:1', { name: 'u' }, false);
  await t.rejects(watchStream(strict, '/api/v1/services', {}, () => {}, (e) => dones.push(e)), /HTTP protocol is not allowed/);
  t.same(dones, []);
});
