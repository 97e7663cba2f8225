import t, { type Test } from 'tap';
import { buildLbState, parseIp, normalizeIp, DEFAULT_AFFINITY_TIMEOUT_SECONDS, type ServicesInput } from '../../../../agent/model/services.ts';
import type { KubeObject } from '../../../../agent/source/types.ts';
import type { LbFrontend } from '../../../../agent/model/types.ts';

// --- builders ---------------------------------------------------------------

interface PortIn { name?: string; port: number; protocol?: string; targetPort?: number | string }

function svc(name: string, spec: Record<string, unknown>, ns = 'default'): KubeObject {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns }, spec };
}

function cip(name: string, ip: string | string[], ports: PortIn[], extra: Record<string, unknown> = {}, ns = 'default'): KubeObject {
  const ips = Array.isArray(ip) ? ip : [ip];
  return svc(name, { type: 'ClusterIP', clusterIP: ips[0], clusterIPs: ips, ports, ...extra }, ns);
}

interface EpIn { ip: string; ready?: boolean | null; serving?: boolean | null; terminating?: boolean | null; node?: string }

function ep(e: EpIn): Record<string, unknown> {
  const conditions: Record<string, unknown> = {};
  if (e.ready !== undefined) conditions.ready = e.ready;
  if (e.serving !== undefined) conditions.serving = e.serving;
  if (e.terminating !== undefined) conditions.terminating = e.terminating;
  const out: Record<string, unknown> = { addresses: [e.ip], conditions };
  if (e.node) out.nodeName = e.node;
  return out;
}

function slice(name: string, service: string, addressType: string, ports: { name?: string; port: number | null; protocol?: string }[], endpoints: EpIn[], ns = 'default'): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: ns, labels: { 'kubernetes.io/service-name': service } },
    addressType,
    ports,
    endpoints: endpoints.map(ep),
  };
}

const run = (services: unknown[], endpointSlices: unknown[] = []) =>
  buildLbState({ services, endpointSlices } as ServicesInput);

const brief = (fe: LbFrontend) =>
  `${fe.service} ${fe.address}:${fe.port}/${fe.protocol} -> ${[...fe.backends].map((b) => `${b.address}:${b.port}${b.terminating ? '(t)' : ''}`).join(',') || '-'}`;

// --- IPs ------------------------------------------------------------------------

t.test('parseIp / normalizeIp', async (t) => {
  const cases: [unknown, string | undefined, number | undefined][] = [
    ['10.43.0.1', '10.43.0.1', 4],
    ['fd00:10:43::1', 'fd00:10:43::1', 6],
    ['FD00:0010:0043:0000:0000:0000:0000:0001', 'fd00:10:43::1', 6],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1', 6],
    ['::', '::', 6],
    ['::1', '::1', 6],
    ['1::', '1::', 6],
    ['1:0:1:1:1:1:1:1', '1:0:1:1:1:1:1:1', 6],
    ['::ffff:10.1.2.3', '10.1.2.3', 4],
    ['64:ff9b::10.1.2.3', '64:ff9b::a01:203', 6],
    ['010.0.0.1', undefined, undefined],
    ['10.0.0.1/32', undefined, undefined],
    [' 10.0.0.1', undefined, undefined],
    ['fe80::1%eth0', undefined, undefined],
    ['None', undefined, undefined],
    ['', undefined, undefined],
    [42, undefined, undefined],
    [null, undefined, undefined],
    [{}, undefined, undefined],
  ];
  for (const [input, addr, fam] of cases) {
    const p = parseIp(input);
    t.equal(p?.address, addr, `address of ${JSON.stringify(input)}`);
    t.equal(p?.family, fam, `family of ${JSON.stringify(input)}`);
    t.equal(normalizeIp(input), addr);
  }
  // Keys order numerically, not textually.
  const k = (s: string) => parseIp(s)?.key ?? '';
  t.ok(k('10.0.0.9') < k('10.0.0.10'));
  t.ok(k('fd00::9') < k('fd00::10'));
});

// --- the table ------------------------------------------------------------------

interface Case {
  name: string;
  services: unknown[];
  slices?: unknown[];
  /** Expected frontends in brief form, in order. */
  want: string[];
  /** Substrings expected among the warnings ("object: reason"), in any order; exact count when wantWarnings is given. */
  warn?: string[];
  noWarnings?: boolean;
  check?: (t: Tap, fes: LbFrontend[]) => void;
}
type Tap = Test;

const cases: Case[] = [
  {
    name: 'single-stack ClusterIP, numeric targetPort through the slice',
    services: [cip('web', '10.43.0.20', [{ port: 80, protocol: 'TCP', targetPort: 8080 }])],
    slices: [slice('web-abc', 'web', 'IPv4', [{ port: 8080, protocol: 'TCP' }], [{ ip: '10.42.0.5', ready: true, node: 'n1' }, { ip: '10.42.1.7', ready: true, node: 'n2' }])],
    want: ['default/web 10.43.0.20:80/TCP -> 10.42.0.5:8080,10.42.1.7:8080'],
    noWarnings: true,
    check: (t, fes) => {
      t.same(fes[0], {
        service: 'default/web', portName: '', type: 'ClusterIP', family: 4, address: '10.43.0.20', port: 80, protocol: 'TCP',
        backends: [
          { address: '10.42.0.5', port: 8080, terminating: false, nodeName: 'n1' },
          { address: '10.42.1.7', port: 8080, terminating: false, nodeName: 'n2' },
        ],
        affinityTimeoutSeconds: 0,
      });
    },
  },
  {
    name: 'dual stack: clusterIPs of both families, each fed by its own slice family',
    services: [cip('ds', ['10.43.0.30', 'fd00:10:43::30'], [{ name: 'http', port: 80 }], { ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'PreferDualStack' })],
    slices: [
      slice('ds-v4', 'ds', 'IPv4', [{ name: 'http', port: 8080, protocol: 'TCP' }], [{ ip: '10.42.0.9' }]),
      slice('ds-v6', 'ds', 'IPv6', [{ name: 'http', port: 8080, protocol: 'TCP' }], [{ ip: 'fd00:10:42::9' }]),
    ],
    want: ['default/ds 10.43.0.30:80/TCP -> 10.42.0.9:8080', 'default/ds fd00:10:43::30:80/TCP -> fd00:10:42::9:8080'],
    noWarnings: true,
    check: (t, fes) => t.same(fes.map((f) => f.family), [4, 6]),
  },
  {
    name: 'IPv6 single stack, address normalized',
    services: [cip('v6', 'FD00:10:43:0:0:0:0:40', [{ port: 53, protocol: 'UDP' }])],
    slices: [slice('v6-a', 'v6', 'IPv6', [{ port: 5353, protocol: 'UDP' }], [{ ip: 'fd00:10:42:0::1' }])],
    want: ['default/v6 fd00:10:43::40:53/UDP -> fd00:10:42::1:5353'],
    noWarnings: true,
  },
  {
    name: 'clusterIP only (no clusterIPs), as older objects have',
    services: [svc('old', { clusterIP: '10.43.0.50', ports: [{ port: 80 }] })],
    slices: [slice('old-a', 'old', 'IPv4', [{ port: 80 }], [{ ip: '10.42.0.50' }])],
    want: ['default/old 10.43.0.50:80/TCP -> 10.42.0.50:80'],
    noWarnings: true,
  },
  {
    name: 'named targetPort: the slice port with the same name gives the number, per slice',
    services: [cip('named', '10.43.0.60', [{ name: 'http', port: 80, targetPort: 'web' }, { name: 'metrics', port: 9100, targetPort: 'metrics' }])],
    slices: [
      // Two slices where the named port resolves to different numbers (pods of two versions).
      slice('named-a', 'named', 'IPv4', [{ name: 'http', port: 8080 }, { name: 'metrics', port: 9100 }], [{ ip: '10.42.0.61' }]),
      slice('named-b', 'named', 'IPv4', [{ name: 'http', port: 8081 }], [{ ip: '10.42.0.62' }]),
    ],
    want: [
      'default/named 10.43.0.60:80/TCP -> 10.42.0.61:8080,10.42.0.62:8081',
      'default/named 10.43.0.60:9100/TCP -> 10.42.0.61:9100',
    ],
    noWarnings: true,
    check: (t, fes) => t.same(fes.map((f) => f.portName), ['http', 'metrics']),
  },
  {
    name: 'port mapping needs the same protocol too; a slice without the port gives nothing',
    services: [cip('dns', '10.43.0.10', [{ name: 'dns', port: 53, protocol: 'UDP' }, { name: 'dns-tcp', port: 53, protocol: 'TCP' }, { name: 'metrics', port: 9153, protocol: 'TCP' }])],
    slices: [slice('dns-a', 'dns', 'IPv4', [{ name: 'dns', port: 53, protocol: 'UDP' }, { name: 'dns-tcp', port: 53, protocol: 'TCP' }, { name: 'metrics', port: 9153, protocol: 'UDP' }], [{ ip: '10.42.0.3' }])],
    want: [
      'default/dns 10.43.0.10:53/TCP -> 10.42.0.3:53',
      'default/dns 10.43.0.10:53/UDP -> 10.42.0.3:53',
      'default/dns 10.43.0.10:9153/TCP -> -',
    ],
    noWarnings: true,
  },
  {
    name: 'unnamed service port matches an unnamed ("" or absent) slice port only',
    services: [cip('un', '10.43.0.70', [{ port: 80 }])],
    slices: [
      slice('un-a', 'un', 'IPv4', [{ name: '', port: 8080 }], [{ ip: '10.42.0.71' }]),
      slice('un-b', 'un', 'IPv4', [{ port: 8080 }], [{ ip: '10.42.0.72' }]),
      slice('un-c', 'un', 'IPv4', [{ name: 'http', port: 8080 }], [{ ip: '10.42.0.73' }]),
    ],
    want: ['default/un 10.43.0.70:80/TCP -> 10.42.0.71:8080,10.42.0.72:8080'],
    noWarnings: true,
  },
  {
    name: 'SCTP port skipped with a warning, the other ports kept; unknown protocol warned',
    services: [cip('mixed', '10.43.0.80', [{ name: 'a', port: 80 }, { name: 's', port: 5000, protocol: 'SCTP' }, { name: 'x', port: 7, protocol: 'ICMP' }])],
    slices: [slice('mixed-a', 'mixed', 'IPv4', [{ name: 'a', port: 80 }, { name: 's', port: 5000, protocol: 'SCTP' }], [{ ip: '10.42.0.81' }])],
    want: ['default/mixed 10.43.0.80:80/TCP -> 10.42.0.81:80'],
    warn: ['Service default/mixed: spec.ports[1] 5000/SCTP skipped', 'Service default/mixed: spec.ports[2].protocol "ICMP"'],
  },
  {
    name: 'headless and ExternalName skipped without warnings; NodePort/LoadBalancer keep their ClusterIP',
    services: [
      svc('headless', { clusterIP: 'None', clusterIPs: ['None'], ports: [{ port: 80 }] }),
      svc('headless-old', { clusterIP: 'None', ports: [{ port: 80 }] }),
      svc('ext', { type: 'ExternalName', externalName: 'example.invalid' }),
      svc('np', { type: 'NodePort', clusterIP: '10.43.0.90', clusterIPs: ['10.43.0.90'], ports: [{ port: 80, nodePort: 30080 }] }),
      svc('lb', { type: 'LoadBalancer', clusterIP: '10.43.0.91', clusterIPs: ['10.43.0.91'], ports: [{ port: 443, nodePort: 30443 }] }),
    ],
    slices: [slice('headless-a', 'headless', 'IPv4', [{ port: 80 }], [{ ip: '10.42.0.99' }])],
    want: ['default/np 10.43.0.90:80/TCP -> -', 'default/lb 10.43.0.91:443/TCP -> -'],
    noWarnings: true,
    check: (t, fes) => t.same(fes.map((f) => f.type), ['ClusterIP', 'ClusterIP']),
  },
  {
    name: 'conditions: absent = ready; not ready and not serving never used; ready beats terminating',
    services: [cip('c', '10.43.1.1', [{ port: 80 }])],
    slices: [slice('c-a', 'c', 'IPv4', [{ port: 80 }], [
      { ip: '10.42.0.1' }, // no conditions at all: ready
      { ip: '10.42.0.2', ready: null, serving: null, terminating: null }, // nulls: ready
      { ip: '10.42.0.3', ready: false, serving: false, terminating: false }, // not ready
      { ip: '10.42.0.4', ready: false, serving: true, terminating: true }, // terminating, not used while ready ones exist
      { ip: '10.42.0.5', ready: true, serving: true, terminating: true }, // ready wins (odd but possible)
      { ip: '10.42.0.6', ready: false }, // serving defers to ready: unusable
    ])],
    want: ['default/c 10.43.1.1:80/TCP -> 10.42.0.1:80,10.42.0.2:80,10.42.0.5:80'],
    noWarnings: true,
  },
  {
    name: 'terminating fallback: only when no endpoint is ready in any slice, serving+terminating ones are used',
    services: [cip('tf', '10.43.1.2', [{ port: 80 }])],
    slices: [
      slice('tf-a', 'tf', 'IPv4', [{ port: 80 }], [
        { ip: '10.42.0.11', ready: false, serving: true, terminating: true },
        { ip: '10.42.0.12', ready: false, serving: false, terminating: true }, // not serving: never
        { ip: '10.42.0.13', ready: false, serving: true, terminating: false }, // serving but not terminating and not ready: no
      ]),
      slice('tf-b', 'tf', 'IPv4', [{ port: 80 }], [{ ip: '10.42.0.14', ready: false, serving: true, terminating: true }]),
    ],
    want: ['default/tf 10.43.1.2:80/TCP -> 10.42.0.11:80(t),10.42.0.14:80(t)'],
    noWarnings: true,
  },
  {
    name: 'a ready endpoint in another slice cancels the terminating fallback',
    services: [cip('tr', '10.43.1.3', [{ port: 80 }])],
    slices: [
      slice('tr-a', 'tr', 'IPv4', [{ port: 80 }], [{ ip: '10.42.0.21', ready: false, serving: true, terminating: true }]),
      slice('tr-b', 'tr', 'IPv4', [{ port: 80 }], [{ ip: '10.42.0.22', ready: true }]),
    ],
    want: ['default/tr 10.43.1.3:80/TCP -> 10.42.0.22:80'],
    noWarnings: true,
  },
  {
    name: 'fallback is per frontend: a ready endpoint without the port does not count',
    services: [cip('pf', '10.43.1.4', [{ name: 'a', port: 80 }, { name: 'b', port: 81 }])],
    slices: [
      slice('pf-a', 'pf', 'IPv4', [{ name: 'a', port: 80 }], [{ ip: '10.42.0.31', ready: true }]),
      slice('pf-b', 'pf', 'IPv4', [{ name: 'b', port: 81 }], [{ ip: '10.42.0.32', ready: false, serving: true, terminating: true }]),
    ],
    want: ['default/pf 10.43.1.4:80/TCP -> 10.42.0.31:80', 'default/pf 10.43.1.4:81/TCP -> 10.42.0.32:81(t)'],
    noWarnings: true,
  },
  {
    name: 'duplicate addresses across slices are one backend; the ready copy wins',
    services: [cip('dup', '10.43.1.5', [{ port: 80 }])],
    slices: [
      slice('dup-a', 'dup', 'IPv4', [{ port: 80 }], [{ ip: '10.42.0.41', ready: false, serving: true, terminating: true }, { ip: '10.42.0.42' }]),
      slice('dup-b', 'dup', 'IPv4', [{ port: 80 }], [{ ip: '10.42.0.41', ready: true }, { ip: '10.42.0.42' }]),
    ],
    want: ['default/dup 10.43.1.5:80/TCP -> 10.42.0.41:80,10.42.0.42:80'],
    noWarnings: true,
  },
  {
    name: 'slices join by label in the same namespace only; FQDN and unlabelled slices ignored',
    services: [cip('j', '10.43.1.6', [{ port: 80 }], {}, 'app')],
    slices: [
      slice('j-a', 'j', 'IPv4', [{ port: 80 }], [{ ip: '10.42.0.51' }], 'app'),
      slice('j-other-ns', 'j', 'IPv4', [{ port: 80 }], [{ ip: '10.42.0.52' }], 'default'),
      slice('j-fqdn', 'j', 'FQDN', [{ port: 80 }], [], 'app'),
      { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'custom', namespace: 'app' }, addressType: 'IPv4', ports: [{ port: 80 }], endpoints: [{ addresses: ['10.42.0.53'] }] },
    ],
    want: ['app/j 10.43.1.6:80/TCP -> 10.42.0.51:80'],
    noWarnings: true,
  },
  {
    name: 'namespace absent means default, for both services and slices',
    services: [{ kind: 'Service', metadata: { name: 'nons' }, spec: { clusterIP: '10.43.1.7', ports: [{ port: 80 }] } }],
    slices: [{ kind: 'EndpointSlice', metadata: { name: 'nons-a', labels: { 'kubernetes.io/service-name': 'nons' } }, addressType: 'IPv4', ports: [{ port: 80 }], endpoints: [{ addresses: ['10.42.0.61'] }] }],
    want: ['default/nons 10.43.1.7:80/TCP -> 10.42.0.61:80'],
    noWarnings: true,
  },
  {
    name: 'IPv4 slices do not feed IPv6 frontends and vice versa',
    services: [cip('fam', ['fd00:10:43::70'], [{ port: 80 }])],
    slices: [slice('fam-a', 'fam', 'IPv4', [{ port: 80 }], [{ ip: '10.42.0.71' }])],
    want: ['default/fam fd00:10:43::70:80/TCP -> -'],
    noWarnings: true,
  },
  {
    name: 'sessionAffinity: ClientIP default, explicit, out of range; None; unknown',
    services: [
      cip('aff-default', '10.43.2.1', [{ port: 80 }], { sessionAffinity: 'ClientIP' }),
      cip('aff-explicit', '10.43.2.2', [{ port: 80 }], { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } }),
      cip('aff-bad', '10.43.2.3', [{ port: 80 }], { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 0 } } }),
      cip('aff-none', '10.43.2.4', [{ port: 80 }], { sessionAffinity: 'None', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } }),
      cip('aff-odd', '10.43.2.5', [{ port: 80 }], { sessionAffinity: 'Cookie' }),
    ],
    want: [
      'default/aff-default 10.43.2.1:80/TCP -> -',
      'default/aff-explicit 10.43.2.2:80/TCP -> -',
      'default/aff-bad 10.43.2.3:80/TCP -> -',
      'default/aff-none 10.43.2.4:80/TCP -> -',
      'default/aff-odd 10.43.2.5:80/TCP -> -',
    ],
    warn: ['Service default/aff-bad: spec.sessionAffinityConfig.clientIP.timeoutSeconds', 'Service default/aff-odd: spec.sessionAffinity "Cookie"'],
    check: (t, fes) => t.same(fes.map((f) => f.affinityTimeoutSeconds), [DEFAULT_AFFINITY_TIMEOUT_SECONDS, 60, 10800, 0, 0]),
  },
  {
    name: 'no slices, or slices with no endpoints: frontends with no backends',
    services: [cip('empty', '10.43.2.10', [{ port: 80 }]), cip('empty2', '10.43.2.11', [{ port: 80 }])],
    slices: [{ kind: 'EndpointSlice', metadata: { name: 'empty2-a', labels: { 'kubernetes.io/service-name': 'empty2' } }, addressType: 'IPv4', ports: null, endpoints: null }],
    want: ['default/empty 10.43.2.10:80/TCP -> -', 'default/empty2 10.43.2.11:80/TCP -> -'],
    noWarnings: true,
  },
  {
    name: 'ordering: family, numeric address, port, protocol; backends by numeric address then port',
    services: [
      cip('z', '10.43.0.100', [{ name: 'u', port: 53, protocol: 'UDP' }, { name: 't', port: 53, protocol: 'TCP' }, { name: 'h', port: 443 }, { name: 'l', port: 80 }]),
      cip('a', 'fd00::1', [{ port: 1 }]),
      cip('m', '10.43.0.9', [{ port: 80 }]),
    ],
    slices: [slice('m-a', 'm', 'IPv4', [{ port: 80 }, { port: 81 }], [{ ip: '10.42.0.10' }, { ip: '10.42.0.9' }, { ip: '10.42.0.100' }])],
    want: [
      'default/m 10.43.0.9:80/TCP -> 10.42.0.9:80,10.42.0.10:80,10.42.0.100:80',
      'default/z 10.43.0.100:53/TCP -> -',
      'default/z 10.43.0.100:53/UDP -> -',
      'default/z 10.43.0.100:80/TCP -> -',
      'default/z 10.43.0.100:443/TCP -> -',
      'default/a fd00::1:1/TCP -> -',
    ],
  },
  {
    name: 'two services claiming one address/port: the first by name keeps it',
    services: [cip('b', '10.43.3.1', [{ port: 80 }]), cip('a', '10.43.3.1', [{ port: 80 }, { port: 81 }])],
    want: ['default/a 10.43.3.1:80/TCP -> -', 'default/a 10.43.3.1:81/TCP -> -'],
    warn: ['Service default/b: 10.43.3.1:80/TCP is already used by Service default/a'],
  },
  {
    name: 'the same service twice: identical copies are silent, different ones reported',
    services: [cip('twice', '10.43.3.2', [{ port: 80 }]), cip('twice', '10.43.3.2', [{ port: 80 }]), cip('thrice', '10.43.3.3', [{ port: 80 }]), cip('thrice', '10.43.3.4', [{ port: 80 }])],
    want: ['default/twice 10.43.3.2:80/TCP -> -', 'default/thrice 10.43.3.3:80/TCP -> -'],
    warn: ['Service default/thrice: defined 2 times'],
  },
  {
    name: 'malformed services are skipped with a warning naming them; the rest still works',
    services: [
      null,
      'a string',
      [],
      { kind: 'Service' },
      { metadata: { namespace: 'x' }, spec: {} },
      { metadata: { name: 42 }, spec: {} },
      { metadata: { name: 'badns', namespace: 7 }, spec: {} },
      svc('nospec', undefined as unknown as Record<string, unknown>),
      { metadata: { name: 'arrayspec' }, spec: [] },
      svc('noip', { ports: [{ port: 80 }] }),
      svc('badip', { clusterIP: '10.43.999.1', ports: [{ port: 80 }] }),
      svc('zeroip', { clusterIP: '0.0.0.0', ports: [{ port: 80 }] }),
      svc('iptype', { clusterIP: 10, ports: [{ port: 80 }] }),
      svc('ipstype', { clusterIPs: '10.43.0.1', ports: [{ port: 80 }] }),
      svc('noports', { clusterIP: '10.43.4.1' }),
      svc('portsobj', { clusterIP: '10.43.4.2', ports: { port: 80 } }),
      svc('badports', { clusterIP: '10.43.4.3', ports: [{ port: 0 }, { port: 65536 }, { port: '80' }, { port: 80.5 }, null, { port: 81, name: 3 }] }),
      svc('badtype', { type: 'Magic', clusterIP: '10.43.4.4', ports: [{ port: 80 }] }),
      svc('dupport', { clusterIP: '10.43.4.5', ports: [{ name: 'a', port: 80 }, { name: 'b', port: 80 }, { name: 'c', port: 80, protocol: 'UDP' }] }),
      svc('halfbad', { clusterIPs: ['10.43.4.6', 'nonsense'], ports: [{ port: 80 }] }),
      svc('mismatch', { clusterIP: '10.43.4.8', clusterIPs: ['10.43.4.7'], ports: [{ port: 80 }] }),
      cip('good', '10.43.4.100', [{ port: 80 }]),
    ],
    want: [
      'default/dupport 10.43.4.5:80/TCP -> -',
      'default/dupport 10.43.4.5:80/UDP -> -',
      'default/halfbad 10.43.4.6:80/TCP -> -',
      'default/mismatch 10.43.4.7:80/TCP -> -',
      'default/good 10.43.4.100:80/TCP -> -',
    ],
    warn: [
      'Service #0: not an object', 'Service #1: not an object', 'Service #2: not an object',
      'Service #3: metadata missing', 'Service #4: metadata.name missing', 'Service #5: metadata.name missing',
      'Service #6: metadata.namespace',
      'Service default/nospec: spec missing', 'Service default/arrayspec: spec missing',
      'Service default/noip: no cluster IP', 'Service default/badip: spec.clusterIPs[0] "10.43.999.1" is not an IP',
      'Service default/zeroip: spec.clusterIPs[0] 0.0.0.0 is the unspecified', 'Service default/iptype: spec.clusterIP is not a string',
      'Service default/ipstype: spec.clusterIPs is not a list', 'Service default/noports: spec.ports missing',
      'Service default/portsobj: spec.ports missing', 'Service default/badports: spec.ports[0].port number 0',
      'Service default/badports: spec.ports[1].port number 65536', 'Service default/badports: spec.ports[2].port "80"',
      'Service default/badports: spec.ports[3].port number 80.5', 'Service default/badports: spec.ports[4] is not an object',
      'Service default/badports: spec.ports[5].name is not a string', 'Service default/badtype: spec.type "Magic"',
      'Service default/dupport: spec.ports[1] 80/TCP is a duplicate', 'Service default/halfbad: spec.clusterIPs[1] "nonsense"',
      'Service default/mismatch: spec.clusterIP "10.43.4.8" differs',
    ],
  },
  {
    name: 'malformed slices and endpoints are skipped with a warning; good endpoints still used',
    services: [cip('s', '10.43.5.1', [{ port: 80 }]), cip('s2', '10.43.5.2', [{ port: 80 }])],
    slices: [
      null,
      { metadata: {} },
      { metadata: { name: 'badlabel', labels: { 'kubernetes.io/service-name': 5 } }, addressType: 'IPv4' },
      { metadata: { name: 'badtype', labels: { 'kubernetes.io/service-name': 's' } }, addressType: 'IPv5', endpoints: [{ addresses: ['10.42.9.9'] }], ports: [{ port: 80 }] },
      { metadata: { name: 'portsobj', labels: { 'kubernetes.io/service-name': 's' } }, addressType: 'IPv4', ports: {}, endpoints: [{ addresses: ['10.42.9.8'] }] },
      { metadata: { name: 'epsobj', labels: { 'kubernetes.io/service-name': 's' } }, addressType: 'IPv4', ports: [{ port: 80 }], endpoints: 'x' },
      {
        metadata: { name: 's-good', labels: { 'kubernetes.io/service-name': 's' } }, addressType: 'IPv4',
        ports: [{ port: 80 }, { port: 70000 }, 'p', { port: 80, name: 1 }, { port: 80, protocol: 6 }, { port: null, name: 'all' }],
        endpoints: [
          { addresses: ['10.42.5.1'] },
          'junk',
          { addresses: [] },
          { addresses: ['fd00::1'] },
          { addresses: ['10.42.5.300'] },
          { addresses: ['10.42.5.2'], conditions: 'ready' },
          { addresses: ['10.42.5.3'], conditions: { ready: 'true' } },
          { addresses: ['10.42.5.4', '10.42.5.5'], conditions: { ready: true }, nodeName: 7 },
        ],
      },
      { metadata: { name: 's2-a', labels: { 'kubernetes.io/service-name': 's2' } }, addressType: 'IPv4', ports: [{ port: 8080 }], endpoints: [{ addresses: ['10.42.5.9'] }] },
    ],
    want: ['default/s 10.43.5.1:80/TCP -> 10.42.5.1:80,10.42.5.4:80', 'default/s2 10.43.5.2:80/TCP -> 10.42.5.9:8080'],
    warn: [
      'EndpointSlice #0: not an object', 'EndpointSlice #1: metadata.name missing',
      'EndpointSlice default/badlabel: label kubernetes.io/service-name', 'EndpointSlice default/badtype: addressType "IPv5"',
      'EndpointSlice default/portsobj: ports is not a list', 'EndpointSlice default/epsobj: endpoints is not a list',
      'EndpointSlice default/s-good: ports[1].port number 70000', 'EndpointSlice default/s-good: ports[2] is not an object',
      'EndpointSlice default/s-good: ports[3].name is not a string', 'EndpointSlice default/s-good: ports[4].protocol is not a string',
      'EndpointSlice default/s-good: endpoints[1] is not an object', 'EndpointSlice default/s-good: endpoints[2].addresses missing',
      'EndpointSlice default/s-good: endpoints[3].addresses[0] fd00::1 is not IPv4', 'EndpointSlice default/s-good: endpoints[4].addresses[0] "10.42.5.300"',
      'EndpointSlice default/s-good: endpoints[5].conditions is not an object', 'EndpointSlice default/s-good: endpoints[6].conditions has a non-boolean',
    ],
    check: (t, fes) => t.notOk('nodeName' in (fes[0]?.backends.at(1) ?? {}), 'a non-string nodeName is left out'),
  },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const { state, warnings } = run(c.services, c.slices ?? []);
    t.same(state.frontends.map(brief), c.want, 'frontends');
    const texts = warnings.map((w) => `${w.object}: ${w.reason}`);
    if (c.noWarnings) t.same(texts, [], 'no warnings');
    for (const w of c.warn ?? []) t.ok(texts.some((x) => x.startsWith(w)), `warning "${w}"`, { found: texts });
    if (c.warn) t.equal(texts.length, c.warn.length, 'no other warnings', { found: texts });
    c.check?.(t, state.frontends);
  });
}

// --- determinism ---------------------------------------------------------------

function shuffle<T>(a: T[], rnd: () => number): T[] {
  const b = [...a];
  for (let i = b.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [b[i], b[j]] = [b[j] as T, b[i] as T];
  }
  return b;
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

t.test('determinism: the same objects in any order give the same output', async (t) => {
  const services: unknown[] = [];
  const slices: unknown[] = [];
  for (let i = 0; i < 40; i++) {
    services.push(cip(`s${i}`, [`10.43.${i}.1`, `fd00::${i}:1`], [{ name: 'http', port: 80 }, { name: 'dns', port: 53, protocol: 'UDP' }], i % 3 ? {} : { sessionAffinity: 'ClientIP' }, `ns${i % 4}`));
    for (let k = 0; k < 2; k++) {
      slices.push(slice(`s${i}-v4-${k}`, `s${i}`, 'IPv4', [{ name: 'http', port: 8080 }, { name: 'dns', port: 5353, protocol: 'UDP' }],
        [{ ip: `10.42.${i}.${k + 1}`, node: `n${k}` }, { ip: `10.42.${i}.9`, ready: k === 0, serving: true, terminating: k !== 0, node: `n${k}` }], `ns${i % 4}`));
      slices.push(slice(`s${i}-v6-${k}`, `s${i}`, 'IPv6', [{ name: 'http', port: 8080 }], [{ ip: `fd00:42::${i}:${k + 1}` }], `ns${i % 4}`));
    }
  }
  // Conflicts and duplicates must also be settled independently of the order.
  services.push(cip('conflict', '10.43.1.1', [{ name: 'http', port: 80 }], {}, 'ns1'));
  services.push(cip('s1', '10.43.200.1', [{ port: 80 }], {}, 'ns1'));
  const base = run(services, slices);
  t.ok(base.state.frontends.length > 150, 'frontends');
  t.ok(base.warnings.some((w) => w.reason.includes('already used')), 'a conflict was settled');
  const rnd = lcg(7);
  for (let i = 0; i < 20; i++) {
    const r = run(shuffle(services, rnd), shuffle(slices, rnd));
    t.same(r.state, base.state, `shuffle ${i}: same state`);
    t.same(r.warnings, base.warnings, `shuffle ${i}: same warnings`);
  }
  t.equal(JSON.stringify(run(services, slices)), JSON.stringify(base), 'byte-identical JSON on a re-run');
});

t.test('backends: the order of endpoints inside slices never matters (numeric addresses, copies across and within slices)', async (t) => {
  // Addresses above 2^31 (192.168.x), below (9.x, 10.x), IPv4-mapped IPv6 spelling, the same
  // address twice in one slice (nodes differ) and across slices (ready in one, terminating in the other).
  const eps: EpIn[] = [
    { ip: '192.168.0.2', node: 'b' }, { ip: '9.0.0.1' }, { ip: '10.0.0.1', node: 'z' }, { ip: '192.168.0.2', node: 'a' },
    { ip: '::ffff:10.0.0.2' }, { ip: '200.1.1.1', ready: false, serving: true, terminating: true }, { ip: '10.0.0.10', node: 'n' },
  ];
  const other: EpIn[] = [{ ip: '10.0.0.1', ready: false, serving: true, terminating: true, node: 'a' }, { ip: '172.16.0.1', node: 'c' }];
  const want = ['9.0.0.1:8080', '10.0.0.1:8080@z', '10.0.0.2:8080', '10.0.0.10:8080@n', '172.16.0.1:8080@c', '192.168.0.2:8080@a'];
  const rnd = lcg(11);
  for (let i = 0; i < 12; i++) {
    const a = i === 0 ? eps : i === 1 ? [...eps].reverse() : shuffle(eps, rnd);
    const b = i % 2 ? [...other].reverse() : other;
    const { state } = run([cip('o', '10.43.7.1', [{ port: 80 }])], [slice('o-b', 'o', 'IPv4', [{ port: 8080 }], b), slice('o-a', 'o', 'IPv4', [{ port: 8080 }], a)]);
    const got = [...state.frontends[0]!.backends].map((x) => `${x.address}:${x.port}${x.nodeName ? '@' + x.nodeName : ''}${x.terminating ? ' T' : ''}`);
    t.same(got, want, `order ${i}`);
  }
  // No ready endpoint at all: the terminating ones, in address order, marked.
  const term: EpIn[] = [{ ip: '10.0.0.3', ready: false, serving: true, terminating: true }, { ip: '10.0.0.2', ready: false, serving: true, terminating: true }];
  const { state } = run([cip('q', '10.43.7.2', [{ port: 80 }])], [slice('q-a', 'q', 'IPv4', [{ port: 8080 }], term)]);
  t.same(state.frontends[0]!.backends, [{ address: '10.0.0.2', port: 8080, terminating: true }, { address: '10.0.0.3', port: 8080, terminating: true }]);
});

t.test('backends are one immutable value, shared by the frontends of a port; the objects read from it are fresh', async (t) => {
  const { state } = run([cip('m', ['10.43.9.1', '10.43.9.2'], [{ port: 80 }])], [slice('m-a', 'm', 'IPv4', [{ port: 80 }], [{ ip: '10.42.9.1' }])]);
  t.equal(state.frontends.length, 2);
  t.equal(state.frontends[0]!.backends, state.frontends[1]!.backends, 'both cluster IPs share one value');
  const b = state.frontends[0]!.backends.at(0);
  b.address = '10.99.9.9';
  t.same(state.frontends[1]!.backends.toJSON(), [{ address: '10.42.9.1', port: 80, terminating: false }], 'changing a read object changes nothing');
});

// --- fuzz --------------------------------------------------------------------------

function junk(rnd: () => number, depth: number): unknown {
  const pick = Math.floor(rnd() * 14);
  const atoms: unknown[] = [null, undefined, 0, -1, 1.5, 65536, 80, '', 'None', 'TCP', 'SCTP', 'IPv4', 'IPv6', '10.0.0.1', 'fd00::1', '::ffff:1.2.3.4', true, false, NaN, Infinity, 'kubernetes.io/service-name', 'ClientIP', {}, []];
  if (depth <= 0 || pick < 6) return atoms[Math.floor(rnd() * atoms.length)];
  if (pick < 9) return Array.from({ length: Math.floor(rnd() * 4) }, () => junk(rnd, depth - 1));
  const keys = ['metadata', 'name', 'namespace', 'labels', 'spec', 'type', 'clusterIP', 'clusterIPs', 'ports', 'port', 'protocol', 'endpoints', 'addresses', 'conditions', 'ready', 'serving', 'terminating', 'addressType', 'sessionAffinity', 'sessionAffinityConfig', 'clientIP', 'timeoutSeconds', 'nodeName', 'kubernetes.io/service-name', '__proto__', 'constructor'];
  const o: Record<string, unknown> = {};
  const n = 1 + Math.floor(rnd() * 5);
  for (let i = 0; i < n; i++) o[keys[Math.floor(rnd() * keys.length)] as string] = junk(rnd, depth - 1);
  return o;
}

/** Plausible objects with one field broken at random: reaches deeper branches than pure junk. */
function mutated(rnd: () => number, i: number): [unknown, unknown] {
  const s = cip(`f${i}`, ['10.43.7.1', 'fd00::7'], [{ name: 'p', port: 80 }, { port: 53, protocol: 'UDP' }], { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 5 } } });
  const e = slice(`f${i}-a`, `f${i}`, 'IPv4', [{ name: 'p', port: 8080 }, { port: 53, protocol: 'UDP' }], [{ ip: '10.42.7.1', ready: false, serving: true, terminating: true }]);
  const paths: [Record<string, unknown>, string][] = [];
  const walk = (o: unknown) => {
    if (typeof o !== 'object' || o === null) return;
    for (const k of Object.keys(o)) {
      paths.push([o as Record<string, unknown>, k]);
      walk((o as Record<string, unknown>)[k]);
    }
  };
  walk(s);
  walk(e);
  const [target, key] = paths[Math.floor(rnd() * paths.length)] as [Record<string, unknown>, string];
  target[key] = junk(rnd, 2);
  return [s, e];
}

t.test('fuzz: random junk never throws and always gives well-formed output', async (t) => {
  const rnd = lcg(12345);
  let frontends = 0;
  for (let round = 0; round < 3000; round++) {
    const services: unknown[] = [];
    const slices: unknown[] = [];
    for (let i = 0; i < 4; i++) {
      if (round % 2) {
        const [s, e] = mutated(rnd, i);
        services.push(s);
        slices.push(e);
      } else {
        services.push(junk(rnd, 5));
        slices.push(junk(rnd, 5));
      }
    }
    let r;
    try {
      r = run(services, slices);
    } catch (err) {
      t.fail(`threw on round ${round}: ${String(err)}`);
      return;
    }
    for (const fe of r.state.frontends) {
      frontends++;
      if (!(Number.isInteger(fe.port) && fe.port > 0 && fe.port < 65536 && parseIp(fe.address)?.address === fe.address && (fe.protocol === 'TCP' || fe.protocol === 'UDP') && Array.isArray(fe.backends.toJSON()) && Number.isInteger(fe.affinityTimeoutSeconds))) {
        t.fail(`bad frontend on round ${round}`, { fe });
        return;
      }
      for (const b of fe.backends) {
        if (!(parseIp(b.address)?.family === fe.family && Number.isInteger(b.port) && b.port > 0 && b.port < 65536 && typeof b.terminating === 'boolean')) {
          t.fail(`bad backend on round ${round}`, { fe });
          return;
        }
      }
    }
    for (const w of r.warnings) {
      if (typeof w.object !== 'string' || typeof w.reason !== 'string') {
        t.fail('bad warning', { w });
        return;
      }
    }
  }
  t.ok(frontends > 100, `fuzz reached real frontends too (${frontends})`);
  // The whole input being junk.
  for (const bad of [null, undefined, 1, 'x', [], { services: 'x', endpointSlices: 5 }, { services: [null], endpointSlices: [undefined] }]) {
    t.doesNotThrow(() => buildLbState(bad as unknown as ServicesInput));
  }
  // Throwing getters are caught and reported, not propagated.
  const evil = { metadata: { name: 'evil' }, get spec(): unknown { throw new Error('boom'); } };
  const r = run([evil, cip('ok', '10.43.8.1', [{ port: 80 }])]);
  t.equal(r.state.frontends.length, 1);
});

// Correctness at scale; the time is only printed (timed targets belong in test/bench).
t.test('scale: 10k services x 10 endpoints', async (t) => {
  const services: unknown[] = [];
  const slices: unknown[] = [];
  for (let i = 0; i < 10000; i++) {
    const ip = `10.43.${i >> 8}.${i & 255}`;
    services.push(cip(`svc${i}`, ip, [{ name: 'http', port: 80 }]));
    slices.push(slice(`svc${i}-a`, `svc${i}`, 'IPv4', [{ name: 'http', port: 8080 }],
      Array.from({ length: 10 }, (_, k) => ({ ip: `10.${42 + (i >> 8)}.${i & 255}.${k + 1}`, node: 'n' }))));
  }
  const t0 = performance.now();
  const r = run(services, slices);
  const ms = performance.now() - t0;
  t.equal(r.state.frontends.length, 10000);
  t.equal(r.warnings.length, 0);
  t.comment(`buildLbState 10k services x 10 endpoints: ${ms.toFixed(0)} ms`);
});
