// A tiny echo peer for pod-network tests and the lab (run with node inside a namespace).
//   echo-peer.ts server <name> <port>
//       TCP and UDP on <port> (all IPv4 addresses). Each TCP connection and
//       each datagram is answered with one JSON line:
//       {"server":"<name>","peer":"<address the server sees>:<port>"}
//       Prints {"listening":true} when ready.
//   echo-peer.ts client '<json ops>'
//       ops: {op:"tcp"|"udp", host, port, n}; prints one JSON line: per op,
//       the list of answers ({server, peer, remote, at}) or {error, at} (at: when
//       the attempt started, ms since the epoch); after three
//       timeouts in a row the rest of that op is {error:"SKIPPED"}.
import net from 'node:net';
import dgram from 'node:dgram';

type Op = { op: 'tcp' | 'udp'; host: string; port: number; n: number };
interface Answer { server?: string; peer?: string; remote?: string; error?: string; at?: number }

function tcpOnce(host: string, port: number): Promise<Answer> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    let data = '';
    let remote = '';
    const timer = setTimeout(() => { s.destroy(); resolve({ error: 'TIMEOUT' }); }, 3000);
    s.on('connect', () => { remote = `${s.remoteAddress}:${s.remotePort}`; });
    s.on('data', (d) => { data += d.toString(); });
    s.on('end', () => {
      clearTimeout(timer);
      try { resolve({ ...(JSON.parse(data) as Answer), remote }); } catch { resolve({ error: `bad answer ${JSON.stringify(data)}` }); }
    });
    s.on('error', (e: NodeJS.ErrnoException) => { clearTimeout(timer); resolve({ error: e.code ?? e.message }); });
  });
}

function udpOnce(host: string, port: number): Promise<Answer> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const done = (a: Answer) => { clearTimeout(timer); s.close(); resolve(a); };
    const timer = setTimeout(() => done({ error: 'TIMEOUT' }), 3000);
    s.on('error', (e: NodeJS.ErrnoException) => done({ error: e.code ?? e.message }));
    s.on('message', (m, rinfo) => {
      try { done({ ...(JSON.parse(m.toString()) as Answer), remote: `${rinfo.address}:${rinfo.port}` }); } catch { done({ error: 'bad answer' }); }
    });
    s.send('hi', port, host, (e) => { if (e) done({ error: (e as NodeJS.ErrnoException).code ?? e.message }); });
  });
}

async function client(ops: Op[]): Promise<void> {
  const out: Answer[][] = [];
  for (const op of ops) {
    const rs: Answer[] = [];
    let failedInRow = 0;
    for (let i = 0; i < op.n; i++) {
      // After 3 timeouts in a row the path is down: do not wait out the rest.
      const at = Date.now();
      const a: Answer = failedInRow >= 3 ? { error: 'SKIPPED' } : op.op === 'tcp' ? await tcpOnce(op.host, op.port) : await udpOnce(op.host, op.port);
      a.at = at;
      failedInRow = a.error === 'TIMEOUT' || a.error === 'SKIPPED' ? failedInRow + 1 : 0;
      rs.push(a);
    }
    out.push(rs);
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

function server(name: string, port: number): void {
  let ready = 0;
  const up = () => { if (++ready === 2) process.stdout.write('{"listening":true}\n'); };
  net.createServer((c) => c.end(JSON.stringify({ server: name, peer: `${c.remoteAddress}:${c.remotePort}` }) + '\n')).listen({ port, host: '0.0.0.0' }, up);
  const u = dgram.createSocket('udp4');
  u.on('message', (_m, r) => u.send(JSON.stringify({ server: name, peer: `${r.address}:${r.port}` }), r.port, r.address));
  u.bind(port, '0.0.0.0', up);
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'server') server(args[0]!, Number(args[1]));
else if (mode === 'client') await client(JSON.parse(args[0]!) as Op[]);
else {
  process.stderr.write('usage: echo-peer.ts server <name> <port> | client <json ops>\n');
  process.exit(2);
}
