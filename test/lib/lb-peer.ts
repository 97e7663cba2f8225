// Helper processes for the socket-LB integration test (run with node).
//   lb-peer.ts server <name> <tcpPort> <udpPort>
//       TCP: writes "<name>\n" to every connection; UDP: answers every datagram with "<name>".
//       Listens on every address (v4 and v6); prints {"listening":true} when ready.
//   lb-peer.ts client '<json list of ops>'
//       ops: {op:"tcp", host, port, n, until?: path} | {op:"udp", host, port, n, connected?: boolean}
//       with until: at least n connects, and on until the file `until` exists
//       prints one JSON line: an array (one entry per op) of arrays of results.
import net from 'node:net';
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';

interface TcpResult { server?: string; peer?: string; error?: string }
interface UdpResult { server?: string; from?: string; peer?: string; error?: string }
type Op = { op: 'tcp'; host: string; port: number; n: number; until?: string } | { op: 'udp'; host: string; port: number; n: number; connected?: boolean };

const fmt = (addr: string | undefined, port: number | undefined) => (addr?.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`);

function tcpOnce(host: string, port: number): Promise<TcpResult> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    let data = '';
    let peer: string | undefined;
    const timer = setTimeout(() => { s.destroy(); resolve({ error: 'TIMEOUT' }); }, 3000);
    s.on('connect', () => { peer = fmt(s.remoteAddress, s.remotePort); });
    s.on('data', (d) => { data += d.toString(); });
    s.on('end', () => { clearTimeout(timer); resolve({ server: data.trim(), ...(peer ? { peer } : {}) }); });
    s.on('error', (e: NodeJS.ErrnoException) => { clearTimeout(timer); resolve({ error: e.code ?? e.message }); });
  });
}

function udpOnce(host: string, port: number, connected: boolean): Promise<UdpResult> {
  return new Promise((resolve) => {
    const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    const done = (r: UdpResult) => { clearTimeout(timer); s.close(); resolve(r); };
    const timer = setTimeout(() => done({ error: 'TIMEOUT' }), 3000);
    s.on('error', (e: NodeJS.ErrnoException) => done({ error: e.code ?? e.message }));
    s.on('message', (msg, rinfo) => {
      const r: UdpResult = { server: msg.toString(), from: fmt(rinfo.address, rinfo.port) };
      if (connected) {
        const p = s.remoteAddress();
        r.peer = fmt(p.address, p.port);
      }
      done(r);
    });
    const send = () => s.send('hi', (e) => { if (e) done({ error: (e as NodeJS.ErrnoException).code ?? e.message }); });
    if (connected) {
      s.connect(port, host, (err?: Error) => (err ? done({ error: (err as NodeJS.ErrnoException).code ?? err.message }) : send()));
    } else {
      s.send('hi', port, host, (e) => { if (e) done({ error: (e as NodeJS.ErrnoException).code ?? e.message }); });
    }
  });
}

async function client(ops: Op[]): Promise<void> {
  const out: (TcpResult | UdpResult)[][] = [];
  for (const op of ops) {
    const rs: (TcpResult | UdpResult)[] = [];
    const more = (i: number) => i < op.n || (op.op === 'tcp' && op.until !== undefined && !existsSync(op.until));
    for (let i = 0; more(i); i++) {
      rs.push(op.op === 'tcp' ? await tcpOnce(op.host, op.port) : await udpOnce(op.host, op.port, op.connected ?? false));
    }
    out.push(rs);
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

function server(name: string, tcpPort: number, udpPort: number): void {
  let ready = 0;
  const up = () => { if (++ready === 3) process.stdout.write('{"listening":true}\n'); };
  net.createServer((c) => c.end(`${name}\n`)).listen({ port: tcpPort, host: '::', ipv6Only: false }, up);
  for (const type of ['udp4', 'udp6'] as const) {
    const u = dgram.createSocket({ type, ipv6Only: type === 'udp6' });
    u.on('message', (_m, rinfo) => u.send(name, rinfo.port, rinfo.address));
    u.bind(udpPort, type === 'udp4' ? '0.0.0.0' : '::', up);
  }
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'server') server(args[0]!, Number(args[1]), Number(args[2]));
else if (mode === 'client') await client(JSON.parse(args[0]!) as Op[]);
else {
  process.stderr.write('usage: lb-peer.ts server <name> <tcpPort> <udpPort> | client <json ops>\n');
  process.exit(2);
}
