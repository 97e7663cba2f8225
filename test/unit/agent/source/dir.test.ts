import t, { type Test } from 'tap';
import { mkdtemp, writeFile, rm, rename, cp, mkdir, unlink, symlink, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import { DirSource, type DirSourceOptions } from '../../../../agent/source/dir.ts';
import { parseManifests, classify } from '../../../../agent/source/manifests.ts';
import { buildLbState } from '../../../../agent/model/services.ts';
import type { Snapshot } from '../../../../agent/source/types.ts';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..', '..', '..');
const fixtures = join(root, 'test', 'fixtures', 'k8s');

interface LogLine { level: string; msg: string; fields?: Record<string, unknown> }

async function tempDir(t: Test): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'kinglet-dir-'));
  t.teardown(() => rm(d, { recursive: true, force: true }));
  return d;
}

/** A started DirSource plus helpers to wait for the snapshot to reach a state. */
async function started(t: Test, dir: string, opts: DirSourceOptions = {}) {
  const logs: LogLine[] = [];
  let changes = 0;
  let wake: (() => void) | undefined;
  const src = new DirSource(dir, {
    debounceMs: 20,
    rescanMs: 0,
    logger: (level, msg, fields) => logs.push(fields ? { level, msg, fields } : { level, msg }),
    ...opts,
  });
  await src.start(() => {
    changes++;
    wake?.();
  });
  t.teardown(() => src.stop());
  const until = async (what: string, pred: (s: Snapshot) => boolean, ms = 5000): Promise<void> => {
    const deadline = Date.now() + ms;
    while (!pred(src.snapshot())) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for: ${what}`);
      await new Promise<void>((r) => {
        const tm = setTimeout(r, Math.min(left, 200));
        wake = () => { clearTimeout(tm); r(); };
      });
    }
  };
  return { src, logs, until, changes: () => changes };
}

const names = (objs: { metadata?: { name?: string; namespace?: string } }[]) =>
  objs.map((o) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`).sort();

const svcYaml = (name: string, ip: string, ns = 'default') =>
  `apiVersion: v1\nkind: Service\nmetadata:\n  name: ${name}\n  namespace: ${ns}\nspec:\n  clusterIP: ${ip}\n  ports:\n  - port: 80\n    protocol: TCP\n`;

// --- parsing ----------------------------------------------------------------------

t.test('parseManifests', async (t) => {
  t.test('multi-document YAML with empty documents, unknown kinds and other API versions', async (t) => {
    const r = parseManifests(
      `---\n${svcYaml('a', '10.43.0.2')}---\n# only a comment\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n---\n` +
        `apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata: {name: old}\naddressType: IPv4\n---\n` +
        `kind: Pod\nmetadata: {name: p}\n---\napiVersion: v1\nkind: Service\nmetadata: {namespace: x}\n---\nkind: ''\n`,
      'm.yaml',
    );
    if (!r.ok) throw new Error(r.error);
    t.same(r.objects.map((o) => o.key), ['services/default/a', 'pods/default/p']);
    t.same(r.skipped.map((s) => [s.reason, s.malformed]), [
      ['kind Deployment is not watched', false],
      ['EndpointSlice apiVersion discovery.k8s.io/v1beta1 is not discovery.k8s.io/v1', false],
      ['Service without metadata.name', true],
      ['kind missing', true],
    ]);
    t.equal(r.objects[1]?.object.metadata?.namespace, 'default', 'namespace defaulted for namespaced kinds');
  });

  t.test('kind: List and typed lists (items without kind), in YAML and JSON', async (t) => {
    const yamlList = parseManifests(`apiVersion: v1\nkind: List\nitems:\n- ${svcYaml('a', '10.43.0.2').trimEnd().replace(/\n/g, '\n  ')}\n- junk\n`, 'l.yaml');
    if (!yamlList.ok) throw new Error(yamlList.error);
    t.same(yamlList.objects.map((o) => o.key), ['services/default/a']);
    t.same(yamlList.skipped.map((s) => s.where), ['l.yaml document 1 items[1]']);
    const typed = parseManifests(JSON.stringify({
      apiVersion: 'v1', kind: 'ServiceList', metadata: {},
      items: [{ metadata: { name: 'b', namespace: 'n' }, spec: { clusterIP: '10.43.0.3', ports: [{ port: 1 }] } }],
    }), 't.json');
    if (!typed.ok) throw new Error(typed.error);
    t.same(typed.objects.map((o) => [o.key, o.object.kind, o.object.apiVersion]), [['services/n/b', 'Service', 'v1']]);
    const arr = parseManifests(`[{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"ns1"}}, null]`, 'a.JSON');
    t.same(arr.ok && arr.objects.map((o) => o.key), ['namespaces//ns1']);
    const cluster = classify({ kind: 'Node', metadata: { name: 'n1', namespace: 'ignored' } }, 'x');
    t.same('key' in cluster && cluster.key, 'nodes//n1', 'cluster-scoped kinds have no namespace in the key');
  });

  t.test('files that do not parse', async (t) => {
    for (const [text, name, want] of [
      ['apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n   bad: indent\n', 'a.yaml', /document 1/],
      ['kind: Service\n---\nkey: [unclosed\n', 'b.yaml', /document 2/],
      ['just some words\n', 'c.yaml', /document 1 is string, not an object/],
      ['- a\n- b\n', 'd.yml', /is a list/],
      ['{"kind": "Service", ', 'e.json', /JSON/],
      ['a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n', 'bomb.yaml', /alias/i],
    ] as const) {
      const r = parseManifests(text, name);
      t.equal(r.ok, false, `${name} fails`);
      if (!r.ok) t.match(r.error, want, `${name}: ${r.error}`);
    }
    const empty = parseManifests('', 'x.yaml');
    t.same(empty.ok && empty.objects, [], 'an empty file is fine');
    const emptyJson = parseManifests('  \n', 'x.json');
    t.same(emptyJson.ok && emptyJson.objects, [], 'an empty JSON file is fine');
    const bom = parseManifests('\uFEFF' + svcYaml('bom', '10.43.0.9'), 'bom.yaml');
    t.same(bom.ok && bom.objects.map((o) => o.key), ['services/default/bom'], 'a byte order mark is tolerated');
  });
});

// --- the fixtures, end to end through the model -------------------------------------

t.test('the k8s fixtures load and translate to the expected frontends', async (t) => {
  const dir = await tempDir(t);
  await cp(fixtures, dir, { recursive: true });
  const { src, logs } = await started(t, dir);
  const snap = src.snapshot();
  t.same(names(snap.services), ['default/kubernetes', 'echo/echo', 'echo/echo-headless', 'echo/upstream', 'kube-system/kube-dns', 'kube-system/metrics-server', 'kube-system/traefik']);
  t.equal(snap.endpointSlices.length, 6);
  t.same(names(snap.nodes), ['/edge-1', '/edge-2']);
  t.same(names(snap.namespaces), ['/echo']);
  const st = src.status();
  t.match(st, { kind: 'dir', endpoint: dir, synced: true, malformed: 0, files: 4, objects: 16, fileErrors: {}, watching: true });
  t.ok(st.lastSync, 'lastSync set');
  t.notOk(st.lastError);
  t.same(logs.filter((l) => l.level === 'warn' || l.level === 'error'), []);

  const { state, warnings } = buildLbState(snap);
  t.same(warnings, []);
  const lines = state.frontends.map((f) => `${f.service} ${f.address}:${f.port}/${f.protocol} aff=${f.affinityTimeoutSeconds} -> ${[...f.backends].map((b) => `${b.address}:${b.port}${b.terminating ? '(t)' : ''}`).join(',') || '-'}`);
  t.same(lines, [
    'default/kubernetes 10.43.0.1:443/TCP aff=0 -> 192.0.2.21:6443',
    'kube-system/kube-dns 10.43.0.10:53/TCP aff=0 -> 10.42.0.4:53',
    'kube-system/kube-dns 10.43.0.10:53/UDP aff=0 -> 10.42.0.4:53',
    'kube-system/kube-dns 10.43.0.10:9153/TCP aff=0 -> 10.42.0.4:9153',
    'kube-system/metrics-server 10.43.71.218:443/TCP aff=0 -> -',
    'kube-system/traefik 10.43.152.7:80/TCP aff=0 -> 10.42.0.9:8000',
    'kube-system/traefik 10.43.152.7:443/TCP aff=0 -> 10.42.0.9:8443',
    'echo/echo 10.43.200.5:7/TCP aff=300 -> 10.42.0.21:7007,10.42.1.17:7007',
    'echo/echo 10.43.200.5:7/UDP aff=300 -> 10.42.0.21:7007,10.42.1.17:7007',
    'echo/echo fd00:10:43::c8:5:7/TCP aff=300 -> fd00:10:42::15:7007,fd00:10:42:1::11:7007',
    'echo/echo fd00:10:43::c8:5:7/UDP aff=300 -> fd00:10:42::15:7007,fd00:10:42:1::11:7007',
  ]);
});

// --- watching ---------------------------------------------------------------------

t.test('files added, changed, renamed and removed are followed through fs.watch', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'a.yaml'), svcYaml('a', '10.43.0.2'));
  await writeFile(join(dir, 'notes.txt'), 'not a manifest');
  await mkdir(join(dir, 'sub'));
  await writeFile(join(dir, 'sub', 'deep.yaml'), svcYaml('deep', '10.43.0.99'));
  await writeFile(join(dir, '.hidden.yaml'), svcYaml('hidden', '10.43.0.98'));
  const { src, until, changes } = await started(t, dir);
  t.same(names(src.snapshot().services), ['default/a'], 'only *.yaml at the top level, no dotfiles');
  t.equal(changes(), 1, 'onChange once after the first read');
  t.equal(src.status().files, 1);

  await writeFile(join(dir, 'b.yml'), svcYaml('b', '10.43.0.3'));
  await until('b added', (s) => names(s.services).includes('default/b'));

  await writeFile(join(dir, 'a.yaml'), svcYaml('a', '10.43.0.22'));
  await until('a changed', (s) => s.services.some((o) => (o.spec as { clusterIP?: string }).clusterIP === '10.43.0.22'));

  // Atomic replace, as editors and `kubectl ... > tmp && mv` do.
  await writeFile(join(dir, '.b.yml.tmp'), svcYaml('b2', '10.43.0.4'));
  await rename(join(dir, '.b.yml.tmp'), join(dir, 'b.yml'));
  await until('b replaced', (s) => names(s.services).join() === 'default/a,default/b2');

  await unlink(join(dir, 'a.yaml'));
  await until('a removed', (s) => names(s.services).join() === 'default/b2');

  await writeFile(join(dir, 'c.json'), JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' } }));
  await until('json added', (s) => s.nodes.length === 1);
  t.equal(src.status().files, 2);
  t.ok(changes() >= 6, `onChange called for each change (${changes()})`);

  // A touch without a content change does not call onChange.
  const before = changes();
  const later = new Date(Date.now() + 5000);
  await utimes(join(dir, 'c.json'), later, later);
  await src.rescan();
  await new Promise((r) => setTimeout(r, 100));
  t.equal(changes(), before, 'touched, same content: no onChange');
});

t.test('the periodic rescan alone also follows changes (watch disabled)', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'a.yaml'), svcYaml('a', '10.43.0.2'));
  const { src, until } = await started(t, dir, { watch: false, rescanMs: 30 });
  t.equal(src.status().watching, false);
  await writeFile(join(dir, 'b.yaml'), svcYaml('b', '10.43.0.3'));
  await until('b seen by the rescan', (s) => s.services.length === 2);
  await unlink(join(dir, 'a.yaml'));
  await until('a removed by the rescan', (s) => names(s.services).join() === 'default/b');
});

t.test('symlinked manifests are read (ConfigMap mounts); directories and dangling links are not', async (t) => {
  const dir = await tempDir(t);
  const data = join(dir, '..data');
  await mkdir(data);
  await writeFile(join(data, 'svc.yaml'), svcYaml('linked', '10.43.0.5'));
  await symlink(join('..data', 'svc.yaml'), join(dir, 'svc.yaml'));
  await symlink('nowhere.yaml', join(dir, 'dangling.yaml'));
  await mkdir(join(dir, 'dir.yaml'));
  const { src } = await started(t, dir);
  t.same(names(src.snapshot().services), ['default/linked']);
  t.equal(src.status().files, 1);
});

// --- broken files -------------------------------------------------------------------

t.test('a broken file is reported and skipped, its last good content kept; the rest keeps working', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'a.yaml'), svcYaml('a', '10.43.0.2') + '---\n' + svcYaml('a2', '10.43.0.12'));
  await writeFile(join(dir, 'never.yaml'), 'kind: Service\nmetadata: [oops\n');
  const { src, logs, until, changes } = await started(t, dir);

  // A file that never parsed contributes nothing, but the others are there.
  t.same(names(src.snapshot().services), ['default/a', 'default/a2']);
  let st = src.status();
  t.equal(st.malformed, 1);
  t.match(st.fileErrors, { 'never.yaml': /document 1/ });
  t.match(st.lastError, /^never\.yaml: /);
  t.ok(logs.some((l) => l.level === 'warn' && l.fields?.file === 'never.yaml'), 'logged with the file name');

  // Half-written save: a.yaml becomes unparseable. Its services stay.
  const nChanges = changes();
  await writeFile(join(dir, 'a.yaml'), 'apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  labels: {x: ');
  const deadline = Date.now() + 5000;
  while (!src.status().fileErrors['a.yaml'] && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  st = src.status();
  t.match(st.fileErrors, { 'a.yaml': /.+/, 'never.yaml': /.+/ });
  t.equal(st.malformed, 2);
  t.same(names(src.snapshot().services), ['default/a', 'default/a2'], 'last good content of a.yaml kept');
  t.equal(changes(), nChanges, 'no onChange: the snapshot did not change');
  const warn = logs.find((l) => l.fields?.file === 'a.yaml');
  t.match(warn, { level: 'warn', fields: { file: 'a.yaml', keptObjects: 2 } });

  // Other files still work meanwhile.
  await writeFile(join(dir, 'b.yaml'), svcYaml('b', '10.43.0.3'));
  await until('b added while a is broken', (s) => names(s.services).join() === 'default/a,default/a2,default/b');

  // The edit completes: the new content replaces the kept one.
  await writeFile(join(dir, 'a.yaml'), svcYaml('a', '10.43.0.32'));
  await until('a fixed', (s) => names(s.services).join() === 'default/a,default/b');
  st = src.status();
  t.same(Object.keys(st.fileErrors), ['never.yaml']);

  // Fixing the file that never parsed brings its objects in; no error left.
  await writeFile(join(dir, 'never.yaml'), svcYaml('never', '10.43.0.7'));
  await until('never fixed', (s) => names(s.services).includes('default/never'));
  st = src.status();
  t.same(st.fileErrors, {});
  t.notOk(st.lastError, 'lastError cleared once no file is in error');
  t.equal(st.malformed, 2, 'malformed counts since start');

  // Deleting a broken file removes its kept content too.
  await writeFile(join(dir, 'b.yaml'), '- not: an object\n');
  while (!src.status().fileErrors['b.yaml'] && Date.now() < deadline + 5000) await new Promise((r) => setTimeout(r, 20));
  t.ok(names(src.snapshot().services).includes('default/b'));
  await unlink(join(dir, 'b.yaml'));
  await until('broken b removed', (s) => !names(s.services).includes('default/b'));
  t.same(src.status().fileErrors, {});
});

t.test('a file emptied after it had objects keeps them (in-place save between truncate and write)', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'a.yaml'), svcYaml('a', '10.43.0.2'));
  await writeFile(join(dir, 'b.yaml'), '');
  const { src, logs } = await started(t, dir, { watch: false });
  t.same(src.status().fileErrors, {}, 'a file that was always empty is fine');
  await writeFile(join(dir, 'a.yaml'), '  \n');
  await src.rescan();
  t.same(names(src.snapshot().services), ['default/a']);
  t.match(src.status().fileErrors, { 'a.yaml': /empty/ });
  t.equal(src.status().malformed, 0);
  t.ok(logs.some((l) => l.level === 'warn' && l.msg.includes('empty')));
  await writeFile(join(dir, 'a.yaml'), '# nothing here any more\n');
  await src.rescan();
  t.same(src.snapshot().services, [], 'a comment-only file is an intentional empty manifest');
  t.same(src.status().fileErrors, {});
});

t.test('malformed objects inside a good file are counted and logged, the rest of the file used', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'a.yaml'), `${svcYaml('a', '10.43.0.2')}---\napiVersion: v1\nkind: Service\nmetadata: {}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n`);
  const { src, logs } = await started(t, dir);
  t.same(names(src.snapshot().services), ['default/a']);
  t.equal(src.status().malformed, 1, 'the nameless Service, not the Deployment');
  t.same(src.status().fileErrors, {});
  t.ok(logs.some((l) => l.level === 'warn' && l.msg.includes('skipped') && l.fields?.reason === 'Service without metadata.name'));
});

t.test('objects are kept trimmed to what the agent reads; malformed ones still counted', async (t) => {
  const dir = await tempDir(t);
  const noisy = {
    apiVersion: 'v1', kind: 'List', items: [
      {
        apiVersion: 'v1', kind: 'Service',
        metadata: { name: 'a', namespace: 'n', managedFields: [{ manager: 'kubectl' }], annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"big":1}' } },
        spec: { clusterIP: '10.43.0.2', selector: { app: 'a' }, ports: [{ port: 80, protocol: 'TCP' }] },
      },
      {
        apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'a-x', namespace: 'n', labels: { 'kubernetes.io/service-name': 'a' } },
        addressType: 'IPv4', ports: [{ port: 80, protocol: 'TCP' }],
        endpoints: [{ addresses: ['10.42.0.5'], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'p' } }],
      },
      { apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'n' } },
    ],
  };
  await writeFile(join(dir, 'a.json'), JSON.stringify(noisy));
  const { src } = await started(t, dir);
  const [svc] = src.snapshot().services;
  t.same(svc, { apiVersion: 'v1', kind: 'Service', metadata: { name: 'a', namespace: 'n' }, spec: { clusterIP: '10.43.0.2', ports: [{ port: 80, protocol: 'TCP' }] } });
  t.same(src.snapshot().endpointSlices[0]?.endpoints, [{ addresses: ['10.42.0.5'], conditions: { ready: true } }], 'no targetRef');
  t.equal(src.status().malformed, 1, 'the nameless Service is counted');
  t.same(buildLbState(src.snapshot()).state.frontends.map((f) => [f.address, [...f.backends].map((b) => b.address)]), [['10.43.0.2', ['10.42.0.5']]]);
});

t.test('an object defined in two files: the last file in name order wins, with a warning', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, '10-a.yaml'), svcYaml('dup', '10.43.0.2'));
  await writeFile(join(dir, '20-b.yaml'), svcYaml('dup', '10.43.0.3'));
  const { src, logs } = await started(t, dir);
  const svcs = src.snapshot().services;
  t.equal(svcs.length, 1);
  t.equal((svcs[0]?.spec as { clusterIP?: string }).clusterIP, '10.43.0.3');
  t.ok(logs.some((l) => l.level === 'warn' && l.fields?.object === 'services/default/dup'));
});

t.test('snapshots are copies: mutating one does not change the source', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'a.yaml'), svcYaml('a', '10.43.0.2'));
  const { src } = await started(t, dir);
  src.snapshot().services.pop();
  t.equal(src.snapshot().services.length, 1);
});

// --- lifecycle -------------------------------------------------------------------------

t.test('start fails clearly when the directory is missing or not a directory', async (t) => {
  const dir = await tempDir(t);
  await t.rejects(new DirSource(join(dir, 'missing')).start(() => {}), /dir source: cannot read .*missing/);
  await writeFile(join(dir, 'file'), '');
  await t.rejects(new DirSource(join(dir, 'file')).start(() => {}), /not a directory/);
  const s = new DirSource(dir, { rescanMs: 0, watch: false });
  await s.start(() => {});
  await t.rejects(s.start(() => {}), /already started/);
  await s.stop();
});

t.test('a directory that becomes unreadable keeps the last objects and reports the error', async (t) => {
  const parent = await tempDir(t);
  const dir = join(parent, 'm');
  await mkdir(dir);
  await writeFile(join(dir, 'a.yaml'), svcYaml('a', '10.43.0.2'));
  const { src, logs, until } = await started(t, dir, { watch: true, rescanMs: 30 });
  await rename(dir, join(parent, 'moved'));
  const deadline = Date.now() + 5000;
  while (!src.status().lastError && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.match(src.status().lastError, /cannot read/);
  t.equal(src.snapshot().services.length, 1, 'objects kept');
  t.equal(logs.filter((l) => l.level === 'error').length, 1, 'logged once, not on every rescan');
  // It comes back (a new directory at the same path): watched again, and followed.
  await mkdir(dir);
  await writeFile(join(dir, 'b.yaml'), svcYaml('b', '10.43.0.3'));
  await until('the new directory is read', (s) => names(s.services).join() === 'default/b');
  t.notOk(src.status().lastError);
  await writeFile(join(dir, 'c.yaml'), svcYaml('c', '10.43.0.4'));
  await until('c added', (s) => s.services.length === 2);
  t.equal(src.status().watching, true, 'the watcher follows the new directory');
});

t.test('stop() leaves no watcher and no timer behind: the process exits on its own', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'a.yaml'), svcYaml('a', '10.43.0.2'));
  const script = join(dir, 'run.ts');
  const mod = join(root, 'agent', 'source', 'dir.ts');
  await writeFile(script, [
    `import { DirSource } from ${JSON.stringify(mod)};`,
    `const s = new DirSource(${JSON.stringify(dir)}, { rescanMs: 50, debounceMs: 10 });`,
    `let n = 0;`,
    `await s.start(() => { n++; });`,
    `await new Promise((r) => setTimeout(r, 120));`,
    `await s.stop();`,
    `await new Promise((r) => setTimeout(r, 30)); // a closed fs.watch handle goes away a loop turn or two later`,
    `const left = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap' && r !== 'PipeWrap');`,
    `console.log(JSON.stringify({ n, services: s.snapshot().services.length, left }));`,
  ].join('\n'));
  const out = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const p = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const killer = setTimeout(() => p.kill('SIGKILL'), 10_000);
    p.on('close', (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr });
    });
  });
  t.equal(out.code, 0, `exited by itself (stderr: ${out.stderr.slice(0, 500)})`);
  t.same(JSON.parse(out.stdout.trim() || '{}'), { n: 1, services: 1, left: [] });
});

t.test('stop() is prompt and final in-process too: no onChange afterwards', async (t) => {
  const dir = await tempDir(t);
  const { src, changes } = await started(t, dir, { rescanMs: 20 });
  await src.stop();
  const n = changes();
  await writeFile(join(dir, 'late.yaml'), svcYaml('late', '10.43.0.2'));
  await new Promise((r) => setTimeout(r, 150));
  t.equal(changes(), n);
  t.equal(src.snapshot().services.length, 0);
  t.equal(src.status().watching, false);
  await src.stop(); // twice is fine
});

t.test('an onChange handler that throws is logged, not propagated', async (t) => {
  const dir = await tempDir(t);
  const logs: LogLine[] = [];
  const src = new DirSource(dir, { rescanMs: 0, watch: false, logger: (level, msg) => logs.push({ level, msg }) });
  t.teardown(() => src.stop());
  let calls = 0;
  await src.start(() => {
    calls++;
    throw new Error('consumer bug');
  });
  await writeFile(join(dir, 'a.yaml'), svcYaml('a', '10.43.0.2'));
  await src.rescan();
  t.equal(calls, 2);
  t.equal(src.snapshot().services.length, 1);
  t.equal(logs.filter((l) => l.msg.includes('onChange handler threw')).length, 2);
});
