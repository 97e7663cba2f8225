// The agent's RBAC grants get/list/watch on exactly what the informers watch.
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { parseAllDocuments } from 'yaml';
import { WATCHED_RESOURCES, WATCH_VERBS } from '../../../agent/source/kube.ts';

const file = new URL('../../../manifests/agent-rbac.yaml', import.meta.url);

interface Rule { apiGroups?: string[]; resources?: string[]; verbs?: string[]; resourceNames?: string[]; nonResourceURLs?: string[] }

t.test('agent RBAC manifest', async (t) => {
  const docs = parseAllDocuments(await readFile(file, 'utf8'));
  for (const d of docs) t.same(d.errors, [], 'parses');
  const objs = docs.map((d) => d.toJS() as Record<string, any>);
  const byKind = (k: string): Record<string, any>[] => objs.filter((o) => o.kind === k);

  const [sa] = byKind('ServiceAccount');
  t.match(sa, { apiVersion: 'v1', metadata: { name: 'kinglet', namespace: 'kube-system' } });
  const roles = byKind('ClusterRole');
  t.equal(roles.length, 1, 'one ClusterRole');
  t.equal(byKind('Role').length + byKind('RoleBinding').length, 0, 'no namespaced grants');
  const role = roles[0]!;
  const [binding] = byKind('ClusterRoleBinding');
  t.match(binding, {
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata.name },
  });
  t.same(binding!.subjects, [
    { kind: 'ServiceAccount', name: 'kinglet', namespace: 'kube-system' },
    { kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name: 'system:nodes' },
  ], 'the in-cluster ServiceAccount and the nodes (installed agents use the kubelet certificate)');

  const granted = new Set<string>();
  for (const r of role.rules as Rule[]) {
    t.notOk(r.resourceNames, 'no resourceNames');
    t.notOk(r.nonResourceURLs, 'no nonResourceURLs');
    t.same([...(r.verbs ?? [])].sort(), [...WATCH_VERBS].sort(), 'read-only verbs, exactly get/list/watch');
    for (const g of r.apiGroups ?? []) for (const res of r.resources ?? []) {
      t.not(g, '*', 'no wildcard group');
      t.not(res, '*', 'no wildcard resource');
      t.notOk(res.includes('/'), `no subresources (${res})`);
      granted.add(`${g}/${res}`);
    }
  }
  const watched = new Set(WATCHED_RESOURCES.map((w) => `${w.group}/${w.resource}`));
  t.same([...granted].sort(), [...watched].sort(), 'granted resources == watched resources');
  t.equal(byKind('Secret').length, 0, 'no long-lived token');
});
