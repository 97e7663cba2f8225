// Profiling helper: one first apply of N services x M endpoints into empty
// pinned maps (scratch bpffs), for `node --cpu-prof`. Root only.
import { scratchLb } from '../lib/scratch-lb.ts';
import { bench } from './lib/bench.ts';
import { LbModel } from '../../agent/model/services.ts';
import { emptySnapshot, type KubeObject } from '../../agent/source/types.ts';
import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';

const SERVICES = Number(process.env.BENCH_SERVICES ?? 10_000);
const ENDPOINTS = Number(process.env.BENCH_ENDPOINTS ?? 10);
const ip = (base: number, n: number) => `${base}.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;

await bench('prof-first-apply', async (c) => {
  const { lb } = await scratchLb(c, 'kinglet-bench');
  const services: KubeObject[] = [], endpointSlices: KubeObject[] = [];
  for (let i = 0; i < SERVICES; i++) {
    services.push({ metadata: { name: `s${i}`, namespace: 'b' }, spec: { clusterIP: ip(10, 0x600000 + i), ports: [{ port: 80 }] } });
    const endpoints = [];
    for (let j = 0; j < ENDPOINTS; j++) endpoints.push({ addresses: [ip(10, 0x200000 + i * ENDPOINTS + j)] });
    endpointSlices.push({ metadata: { name: `s${i}-x`, namespace: 'b', labels: { 'kubernetes.io/service-name': `s${i}` } }, addressType: 'IPv4', ports: [{ port: 8080 }], endpoints });
  }
  const u = new LbModel().update({ ...emptySnapshot(), services, endpointSlices });
  const mode = process.env.MODE ?? 'update';
  // Profile with the inspector once the programs are loaded (SIGPROF during
  // BPF_PROG_LOAD makes the verifier give up with EAGAIN, so no --cpu-prof).
  const session = process.env.PROF ? new Session() : undefined;
  if (session) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 200 });
    await session.post('Profiler.start');
  }
  const t0 = performance.now();
  const r = mode === 'apply' ? lb.apply(u.state) : lb.update(u);
  console.log(`first ${mode}: ${r.added} added in ${(performance.now() - t0).toFixed(1)} ms`);
  // What the first apply deferred (the table for updates, the shadow index): idle time in the agent.
  const t2 = performance.now();
  lb.prepare();
  console.log(`deferred work (LbDatapath.prepare): ${(performance.now() - t2).toFixed(1)} ms`);
  if (process.env.AGAIN) {
    const t1 = performance.now();
    const r2 = lb.apply(u.state);
    console.log(`second apply: ${r2.added + r2.updated + r2.deleted} writes in ${(performance.now() - t1).toFixed(1)} ms`);
  }
  if (session) {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(process.env.PROF!, JSON.stringify(profile));
  }
});
