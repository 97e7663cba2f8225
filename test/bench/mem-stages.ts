// Memory of the agent's LB path at scale, stage by stage (not a benchmark:
// a probe). Root; run with --expose-gc:
//   node --expose-gc test/bench/mem-stages.ts     (MEM_SPACES=1: V8 heap spaces at the end)
// V8 flags such as --max-semi-space-size only take effect on the command line
// (v8.setFlagsFromString after start does not resize the young generation).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getHeapStatistics } from 'node:v8';
import { scratchBpffs, testCgroup } from '../lib/sandbox.ts';
import { bench, type Collector } from './lib/bench.ts';
import { DirSource } from '../../agent/source/dir.ts';
import { LbModel } from '../../agent/model/services.ts';
import { LbDatapath } from '../../agent/datapath/lb.ts';
import { cleanup } from '../../agent/datapath/loader.ts';

const SERVICES = Number(process.env.BENCH_SERVICES ?? 10_000);
const ENDPOINTS = Number(process.env.BENCH_ENDPOINTS ?? 10);
const ipv4 = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');

function items(): unknown[] {
  const out: unknown[] = [];
  const slices: unknown[] = [];
  for (let i = 0; i < SERVICES; i++) {
    const name = `svc-${i}`;
    const ip = ipv4((10 << 24) + (96 << 16) + 1 + i);
    out.push({
      apiVersion: 'v1', kind: 'Service',
      metadata: { name, namespace: 'bench', uid: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, resourceVersion: String(1000 + i) },
      spec: { type: 'ClusterIP', clusterIP: ip, clusterIPs: [ip], ipFamilies: ['IPv4'], ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }], sessionAffinity: 'None' },
    });
    slices.push({
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { name: `${name}-x7k2p`, namespace: 'bench', labels: { 'kubernetes.io/service-name': name }, resourceVersion: String(50000 + i) },
      addressType: 'IPv4', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
      endpoints: Array.from({ length: ENDPOINTS }, (_, j) => ({
        addresses: [ipv4((10 << 24) + (64 << 16) + i * ENDPOINTS + j + 1)],
        conditions: { ready: true, serving: true, terminating: false }, nodeName: `node-${j % 3}`,
      })),
    });
  }
  return [...out, ...slices];
}

const gc = (globalThis as { gc?: () => void }).gc;
function mem(stage: string): void {
  gc?.();
  const m = process.memoryUsage();
  const h = getHeapStatistics();
  const mb = (n: number) => (n / 1048576).toFixed(1).padStart(7);
  console.log(`${stage.padEnd(34)} rss ${mb(m.rss)}  heapUsed ${mb(m.heapUsed)}  heapTotal ${mb(m.heapTotal)}  external ${mb(m.external)}  arrayBuffers ${mb(m.arrayBuffers)}  malloced ${mb(h.malloced_memory)}`);
}

await bench('mem-stages', async (c: Collector) => {
  const dir = await mkdtemp(join(tmpdir(), 'kl-mem-'));
  c.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'objects.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: items() }));
  const fs = await scratchBpffs(c);
  const bpfRoot = join(fs, 'kinglet');
  const cgroup = await testCgroup(c, 'kinglet-mem');
  mem('start');
  const lb = LbDatapath.open({ bpfRoot, cgroup });
  c.teardown(() => {
    lb.close();
    cleanup(bpfRoot);
  });
  mem('datapath open');
  const src = new DirSource(dir, { rescanMs: 0, watch: false });
  await src.start(() => {});
  c.teardown(() => src.stop());
  mem('dir source read');
  const model = new LbModel();
  const u = model.update(src.snapshot());
  const state = u.state;
  mem('model update + state');
  const r = lb.update(u);
  mem(`datapath apply (${r.added} adds)`);
  lb.services();
  mem('datapath table (settle)');
  lb.prepare();
  mem('datapath prepare (shadow index)');
  void state;
if (process.env.MEM_SPACES) {
    const { getHeapSpaceStatistics } = await import('node:v8');
    for (const s of getHeapSpaceStatistics()) console.log(`  ${s.space_name.padEnd(26)} size ${(s.space_size / 1048576).toFixed(1).padStart(7)}  used ${(s.space_used_size / 1048576).toFixed(1).padStart(7)}`);
  }
});

