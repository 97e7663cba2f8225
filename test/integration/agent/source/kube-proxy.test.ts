// A kubeconfig with proxy-url still works with client-node's proxy packages
// loaded lazily (client-node-slim.ts): KubeSource lists and watches the
// stand-in API server through an HTTP CONNECT proxy on 127.0.0.1. No root
// needed.
import t from 'tap';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import { parse, stringify } from 'yaml';
import { slimClientNode } from '../../../../agent/source/client-node-slim.ts';
import { FakeApiServer } from '../../../lib/fake-apiserver.ts';
import { waitFor } from '../../../lib/wait.ts';

// As the agent does: the hook before kube.ts (and client-node) first loads.
t.equal(slimClientNode(), true, 'the hook is installed');
const { KubeSource } = await import('../../../../agent/source/kube.ts');

/** An HTTP CONNECT proxy that tunnels to 127.0.0.1 only; records the targets. */
async function connectProxy(t: { teardown(fn: () => unknown): void }): Promise<{ url: string; connects: string[] }> {
  const connects: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = http.createServer((_req, res) => res.writeHead(405).end());
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    sockets.add(client);
    const [host, port] = (req.url ?? '').split(':');
    connects.push(req.url ?? '');
    if (host !== '127.0.0.1' || !port) {
      client.end('HTTP/1.1 403 Forbidden\r\n\r\n');
      return;
    }
    const upstream = net.connect(Number(port), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(upstream);
    const close = (): void => {
      upstream.destroy();
      client.destroy();
    };
    upstream.on('error', close);
    client.on('error', close);
    upstream.on('close', close);
    client.on('close', close);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return new Promise((r) => server.close(() => r(undefined)));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connects };
}

t.test('lists and watches go through the proxy-url', async (t) => {
  const api = await FakeApiServer.create();
  t.teardown(() => api.close());
  api.add({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'web' } });
  const proxy = await connectProxy(t);
  const path = await api.writeKubeconfig({ auth: 'token' });
  const doc = parse(await readFile(path, 'utf8')) as { clusters: { cluster: Record<string, unknown> }[] };
  doc.clusters[0]!.cluster['proxy-url'] = proxy.url;
  await writeFile(path, stringify(doc));

  const src = new KubeSource({ kubeconfig: path, env: {}, nodeName: 'n1', backoffBaseMs: 20, backoffMaxMs: 200 });
  t.teardown(() => src.stop());
  await src.start(() => {});
  await waitFor(() => src.status().synced, 'synced');
  await waitFor(() => api.openWatches === 6, 'six watches');
  api.add({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'late' } });
  await waitFor(() => src.snapshot().namespaces.some((n) => n.metadata?.name === 'late'), 'the watched namespace');
  const target = new URL(api.url).host;
  t.ok(proxy.connects.length >= 12, `every list and watch tunnelled (${proxy.connects.length} CONNECTs)`);
  t.ok(proxy.connects.every((c) => c === target), `to the API server ${target}`);
  t.notOk(src.status().lastError, 'no error');
});
