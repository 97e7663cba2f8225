// An agent upgrade that changes the socket-LB map layout: the pins an older
// agent left carry older layout versions (kl_lb4_svc_v0 beside the new
// kl_lb4_svc_v2) and its programs are attached and reading them. The new
// agent must fill its new maps before its programs replace the old ones, so a
// client connecting to the ClusterIP in a loop across the switch never fails;
// afterwards no pin of the older layout is left.
import t from 'tap';
import { execa } from 'execa';
import { readdirSync, renameSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describePinned, mapsDir } from '../../../agent/datapath/loader.ts';
import { LB4_RSK_MAP, LB4_SVC_MAP, LB6_SVC_MAP, LB_CONFIG_MAPS, LB_MAP_NAMES } from '../../../agent/datapath/lb-layout.ts';
import { apiRequest } from '../../../agent/api/client.ts';
import type { AgentStatus } from '../../../agent/api/types.ts';
import { rootSkipReason } from '../../lib/sandbox.ts';
import { CLUSTER_IP, kinglet, programmed, servers, service, slice, world, type Result } from '../../lib/agent-world.ts';

const skip = rootSkipReason();

/** What an agent with an older layout of `maps` leaves: the same maps (and their entries) under older version names. */
function asOlderLayout(bpfRoot: string, maps: readonly string[]): string[] {
  const dir = mapsDir(bpfRoot);
  const old = maps.map((n) => n.replace(/_v\d+$/, '_v0'));
  maps.forEach((n, i) => renameSync(join(dir, n), join(dir, old[i]!)));
  return old;
}

const pinnedIds = (bpfRoot: string) => new Map(describePinned(bpfRoot).maps.map((m) => [m.name, m.id]));

const scopes = [
  { what: 'every socket-LB map', maps: LB_MAP_NAMES },
  // The slot, backend and rev-NAT maps keep their names: the new agent must not rewrite the
  // ones the old programs read (with its own ids and slot bases) but fill a new set.
  { what: 'only the frontend maps', maps: [LB4_SVC_MAP, LB6_SVC_MAP] },
];

for (const scope of scopes) t.test(`an upgrade to a new layout of ${scope.what} never fails a connect, and sweeps the old pins`, { skip }, async (t) => {
  const w = await world(t);
  await w.writeObjects([service('echo', CLUSTER_IP), slice('echo', [1, 2, 3])]);
  let agent = w.startAgent();
  await programmed(w.sock, (s) => s.length === 2 && s.every((e) => e.backends.length === 3));
  await agent.stop('SIGTERM');
  const before = pinnedIds(w.bpfRoot);
  const old = asOlderLayout(w.bpfRoot, scope.maps);

  // The old programs, still attached, serve from the renamed maps; the client connects
  // before the new agent starts and goes on until well after the switch.
  const flags = await mkdtemp(join(tmpdir(), 'kl-upgrade-'));
  t.teardown(() => rm(flags, { recursive: true, force: true }));
  const stopFile = join(flags, 'stop-client');
  const client = w.startClient([{ op: 'tcp', host: CLUSTER_IP, port: 80, n: 200, until: stopFile }]);
  agent = w.startAgent();
  const log = await agent.waitForOutput((o) => o.includes('map pins of an older layout removed'), 30_000);
  await new Promise((r) => setTimeout(r, 500));
  await writeFile(stopFile, '');
  const out = await client.waitForOutput((o) => o.includes('\n'), 60_000);
  const [tcp] = JSON.parse(out.trim().split('\n').pop()!) as Result[][];
  const failed = tcp!.filter((r) => !r.server);
  t.ok(tcp!.length >= 200, `${tcp!.length} connects`);
  t.equal(failed.length, 0, `failed connects: ${failed.length}, e.g. ${JSON.stringify(failed.slice(0, 3))}`);
  t.same(servers(tcp!), ['b1', 'b2', 'b3'], 'every backend served across the switch');

  const wait = log.indexOf('"msg":"socket LB programs attach after the first reconcile');
  const swap = log.indexOf('"msg":"program adopted"');
  t.ok(wait >= 0 && swap > wait, 'the pinned links took the new programs only after the first reconcile');
  t.equal(log.match(/"msg":"program adopted"/g)?.length, 8, 'all eight pinned links swapped in place');
  const left = readdirSync(mapsDir(w.bpfRoot));
  t.same(left.filter((n) => old.includes(n)), [], 'no pin of the older layout remains');
  t.same(LB_MAP_NAMES.filter((n) => !left.includes(n)), [], 'the new layout is pinned');
  const ids = pinnedIds(w.bpfRoot);
  t.same(LB_CONFIG_MAPS.filter((n) => ids.get(n) === before.get(n)), [], 'a whole new set of configuration maps, filled before the switch');
  t.equal(ids.get(LB4_RSK_MAP) === before.get(LB4_RSK_MAP), !scope.maps.includes(LB4_RSK_MAP), 'the reverse-socket map is adopted unless its layout changed');

  const st = await apiRequest<AgentStatus>(w.sock, 'GET', '/v1/status');
  t.equal(st.healthy, true, `healthy (${st.problems.join('; ')})`);
  t.equal(st.datapath.programs.length, 8);
  const [after] = await w.run([{ op: 'tcp', host: CLUSTER_IP, port: 80, n: 20 }]);
  t.same(servers(after!), ['b1', 'b2', 'b3'], 'the new programs on the new maps reach every backend');

  // A plain restart onto the new layout adopts at once and writes nothing.
  await agent.stop('SIGTERM');
  agent = w.startAgent();
  const log2 = await agent.waitForOutput((o) => o.includes('"agent started"'), 15_000);
  t.equal(log2.match(/"msg":"program adopted"/g)?.length, 8, 'a plain restart swaps the programs before the first reconcile');
  await programmed(w.sock, (s) => s.length === 2);
  const st2 = await apiRequest<AgentStatus>(w.sock, 'GET', '/v1/status');
  t.same([st2.services.lastApply?.added, st2.services.lastApply?.updated, st2.services.lastApply?.deleted], [0, 0, 0], 'nothing rewritten');
  await agent.stop('SIGTERM');

  const r = await execa(process.execPath, [kinglet, 'agent', '--cleanup', '--bpf-root', w.bpfRoot, '--json']);
  const report = JSON.parse(r.stdout) as { links: string[]; maps: string[]; errors: string[] };
  t.equal(report.links.length, 8, '--cleanup detaches every link');
  t.same(report.errors, []);
  t.rejects(readdir(w.bpfRoot), 'and removes the bpf root');
});
