import t, { type Test } from 'tap';
import {
  checkPodCidr,
  CniError,
  compareVersions,
  ErrorCode,
  formatError,
  formatResult,
  parseCniArgs,
  parseEnv,
  parseNetConf,
  SUPPORTED_VERSIONS,
  validIfname,
  versionResult,
  type AddResult,
} from '../../../../agent/cni/protocol.ts';

/** The CniError code `fn` throws (fails the test when it does not throw one). */
type Asserts = Pick<Test, 'ok' | 'fail'>;

function codeOf(t: Asserts, fn: () => unknown): number | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof CniError) {
      t.ok(e.message.length > 0 && (e.details ?? '').length > 0, `message and details say what to fix: ${e.message} / ${e.details}`);
      return e.code;
    }
    t.fail(`threw a non-CNI error: ${String(e)}`);
    return undefined;
  }
  t.fail('did not throw');
  return undefined;
}

const baseEnv = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc123', CNI_NETNS: '/var/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin:/usr/lib/cni' };
const conf = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({ cniVersion: '1.0.0', name: 'kinglet', type: 'kinglet-cni', podCIDR: '10.42.0.0/24', ...extra });

t.test('environment', async (t) => {
  const e = parseEnv(baseEnv);
  t.equal(e.command, 'ADD');
  t.equal(e.containerId, 'abc123');
  t.same(e.path, ['/opt/cni/bin', '/usr/lib/cni']);

  t.equal(codeOf(t, () => parseEnv({ ...baseEnv, CNI_COMMAND: undefined })), ErrorCode.InvalidEnvironment, 'missing CNI_COMMAND -> 4');
  t.equal(codeOf(t, () => parseEnv({ ...baseEnv, CNI_COMMAND: 'FROB' })), ErrorCode.InvalidEnvironment, 'unknown command -> 4');
  t.equal(codeOf(t, () => parseEnv({ ...baseEnv, CNI_COMMAND: 'add' })), ErrorCode.InvalidEnvironment, 'commands are upper case');
  t.equal(codeOf(t, () => parseEnv({ ...baseEnv, CNI_CONTAINERID: '' })), ErrorCode.InvalidEnvironment, 'missing container id -> 4');
  t.equal(codeOf(t, () => parseEnv({ ...baseEnv, CNI_CONTAINERID: '-bad' })), ErrorCode.InvalidEnvironment, 'bad container id -> 4');
  t.equal(codeOf(t, () => parseEnv({ ...baseEnv, CNI_IFNAME: undefined })), ErrorCode.InvalidEnvironment, 'missing ifname -> 4');
  t.equal(codeOf(t, () => parseEnv({ ...baseEnv, CNI_IFNAME: 'a-very-long-name0' })), ErrorCode.InvalidEnvironment, 'ifname too long -> 4');
  t.equal(codeOf(t, () => parseEnv({ ...baseEnv, CNI_NETNS: '' })), ErrorCode.InvalidEnvironment, 'ADD without netns -> 4');
  t.equal(codeOf(t, () => parseEnv({ ...baseEnv, CNI_COMMAND: 'CHECK', CNI_NETNS: '' })), ErrorCode.InvalidEnvironment, 'CHECK without netns -> 4');
  t.equal(parseEnv({ ...baseEnv, CNI_COMMAND: 'DEL', CNI_NETNS: '' }).netns, '', 'DEL without netns is fine');
  t.equal(parseEnv({ CNI_COMMAND: 'VERSION' }).command, 'VERSION', 'VERSION needs nothing else');
  t.equal(parseEnv({ CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin' }).command, 'GC');
  t.equal(parseEnv({ CNI_COMMAND: 'STATUS' }).command, 'STATUS');

  for (const n of ['eth0', 'net1', 'a', 'x'.repeat(15)]) t.ok(validIfname(n), `${n} is a valid ifname`);
  for (const n of ['', '.', '..', 'a/b', 'a:b', 'a b', 'x'.repeat(16)]) t.notOk(validIfname(n), `${JSON.stringify(n)} is not`);
});

t.test('CNI_ARGS', async (t) => {
  const orders = [
    'K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=web-0;K8S_POD_UID=u-1;IgnoreUnknown=1',
    'IgnoreUnknown=1;K8S_POD_UID=u-1;K8S_POD_NAME=web-0;K8S_POD_NAMESPACE=ns1',
    'K8S_POD_NAME=web-0;IgnoreUnknown=1;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_NAMESPACE=ns1;K8S_POD_UID=u-1',
  ];
  for (const s of orders) {
    const a = parseCniArgs(s);
    t.equal(a.podNamespace, 'ns1', s);
    t.equal(a.podName, 'web-0');
    t.equal(a.podUid, 'u-1');
  }
  t.equal(parseCniArgs('K8S_POD_INFRA_CONTAINER_ID=abc;IgnoreUnknown=1').infraContainerId, 'abc');
  t.same(parseCniArgs(undefined).raw, {});
  t.same(parseCniArgs('').raw, {});
  t.equal(parseCniArgs('FOO=1;IgnoreUnknown=true').raw['FOO'], '1', 'unknown keys pass with IgnoreUnknown');
  t.equal(parseCniArgs('K8S_POD_NAME=a=b').podName, 'a=b', 'values may contain =');
  t.equal(codeOf(t, () => parseCniArgs('FOO=1')), ErrorCode.InvalidEnvironment, 'unknown key without IgnoreUnknown -> 4');
  t.equal(codeOf(t, () => parseCniArgs('K8S_POD_NAME')), ErrorCode.InvalidEnvironment, 'pair without = -> 4');
  t.equal(codeOf(t, () => parseEnv({ ...baseEnv, CNI_ARGS: 'junk' })), ErrorCode.InvalidEnvironment, 'parseEnv checks CNI_ARGS');
});

t.test('network configuration', async (t) => {
  const c = parseNetConf(conf({ mtu: 1450, agentSocket: '/run/x.sock', dataDir: '/tmp/d' }), 'ADD');
  t.equal(c.cniVersion, '1.0.0');
  t.equal(c.name, 'kinglet');
  t.equal(c.podCIDR, '10.42.0.0/24');
  t.equal(c.mtu, 1450);
  t.equal(c.agent, true, 'agent on by default');
  t.equal(c.agentSocket, '/run/x.sock');
  t.equal(parseNetConf(conf({ agent: false }), 'ADD').agent, false);

  t.equal(codeOf(t, () => parseNetConf('', 'ADD')), ErrorCode.DecodingFailure, 'empty stdin -> 6');
  t.equal(codeOf(t, () => parseNetConf('{"cniVersion":', 'ADD')), ErrorCode.DecodingFailure, 'bad JSON -> 6');
  t.equal(codeOf(t, () => parseNetConf('[1,2]', 'ADD')), ErrorCode.DecodingFailure, 'not an object -> 6');
  t.equal(codeOf(t, () => parseNetConf(conf({ cniVersion: '2.0.0' }), 'ADD')), ErrorCode.IncompatibleVersion, 'unsupported version -> 1');
  t.equal(codeOf(t, () => parseNetConf(conf({ cniVersion: '0.2.0' }), 'ADD')), ErrorCode.IncompatibleVersion, 'too old -> 1');
  t.equal(codeOf(t, () => parseNetConf(conf({ cniVersion: '0.3.1' }), 'CHECK')), ErrorCode.IncompatibleVersion, 'CHECK needs 0.4.0 -> 1');
  t.equal(codeOf(t, () => parseNetConf(conf({ cniVersion: '1.0.0' }), 'STATUS')), ErrorCode.IncompatibleVersion, 'STATUS needs 1.1.0 -> 1');
  t.equal(codeOf(t, () => parseNetConf(conf({ cniVersion: '1.0.0' }), 'GC')), ErrorCode.IncompatibleVersion, 'GC needs 1.1.0 -> 1');
  t.equal(codeOf(t, () => parseNetConf(conf({ cniVersion: undefined }), 'ADD')), ErrorCode.InvalidNetworkConfig, 'no cniVersion -> 7');
  t.equal(codeOf(t, () => parseNetConf(conf({ name: '' }), 'ADD')), ErrorCode.InvalidNetworkConfig, 'no name -> 7');
  t.equal(codeOf(t, () => parseNetConf(conf({ type: undefined }), 'ADD')), ErrorCode.InvalidNetworkConfig, 'no type -> 7');
  t.equal(codeOf(t, () => parseNetConf(conf({ podCIDR: '10.42.0.1/24' }), 'ADD')), ErrorCode.InvalidNetworkConfig, 'host bits -> 7');
  t.equal(codeOf(t, () => parseNetConf(conf({ podCIDR: 'banana' }), 'ADD')), ErrorCode.InvalidNetworkConfig, 'not a CIDR -> 7');
  t.equal(codeOf(t, () => parseNetConf(conf({ podCIDR: '10.42.0.0/31' }), 'ADD')), ErrorCode.InvalidNetworkConfig, 'too small -> 7');
  t.equal(codeOf(t, () => parseNetConf(conf({ podCIDR: '300.1.0.0/24' }), 'ADD')), ErrorCode.InvalidNetworkConfig, 'bad octet -> 7');
  t.equal(codeOf(t, () => parseNetConf(conf({ podCIDR: 'fd00::/64' }), 'ADD')), ErrorCode.InvalidNetworkConfig, 'IPv6 not yet -> 7');
  t.equal(codeOf(t, () => parseNetConf(conf({ podCIDR: 24 }), 'ADD')), ErrorCode.InvalidNetworkConfig, 'podCIDR not a string -> 7');
  t.equal(codeOf(t, () => parseNetConf(conf({ mtu: 100 }), 'ADD')), ErrorCode.InvalidNetworkConfig, 'mtu too small -> 7');
  t.equal(codeOf(t, () => parseNetConf(conf({ mtu: '1500' }), 'ADD')), ErrorCode.InvalidNetworkConfig, 'mtu not a number -> 7');
  t.equal(codeOf(t, () => parseNetConf(conf({ agent: 'no' }), 'ADD')), ErrorCode.InvalidNetworkConfig, 'agent not boolean -> 7');
  t.equal(codeOf(t, () => parseNetConf(conf({ agentSocket: 'rel.sock' }), 'ADD')), ErrorCode.InvalidNetworkConfig, 'relative socket -> 7');
  t.equal(codeOf(t, () => parseNetConf(conf({ dataDir: 'var' }), 'ADD')), ErrorCode.InvalidNetworkConfig, 'relative dataDir -> 7');
  t.equal(codeOf(t, () => parseNetConf(conf({ agent: false, podCIDR: undefined }), 'ADD')), ErrorCode.InvalidNetworkConfig, 'no agent and no podCIDR -> 7');
  t.equal(codeOf(t, () => parseNetConf(conf({ podCidr: '10.0.0.0/24' }), 'ADD')), ErrorCode.UnsupportedField, 'misspelt field -> 2');
  t.equal(codeOf(t, () => parseNetConf(conf({ ipam: { type: 'host-local' } }), 'ADD')), ErrorCode.UnsupportedField, 'ipam -> 2');
  t.equal(codeOf(t, () => parseNetConf(conf({ ipMasq: true }), 'ADD')), ErrorCode.UnsupportedField, 'ipMasq -> 2');
  t.equal(parseNetConf(conf({ ipam: {}, runtimeConfig: {}, args: {} }), 'ADD').name, 'kinglet', 'an empty ipam, runtimeConfig and args are fine');
  t.equal(parseNetConf(conf({ agent: false, podCIDR: undefined }), 'DEL').podCIDR, undefined, 'DEL does not need the range');

  const prev = { cniVersion: '1.0.0', interfaces: [{ name: 'kl1' }, { name: 'eth0', sandbox: '/x' }], ips: [{ address: '10.42.0.2/32', interface: 1 }] };
  t.equal(parseNetConf(conf({ prevResult: prev }), 'CHECK').prevResult?.ips[0]?.address, '10.42.0.2/32');
  t.equal(codeOf(t, () => parseNetConf(conf({ prevResult: { ips: 'x' } }), 'CHECK')), ErrorCode.InvalidNetworkConfig, 'bad prevResult -> 7');

  const gc = parseNetConf(conf({ cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: 'a', ifname: 'eth0' }] }), 'GC');
  t.same(gc.validAttachments, [{ containerId: 'a', ifname: 'eth0' }]);
  t.same(parseNetConf(conf({ cniVersion: '1.1.0', 'cni.dev/attachments': [{ containerID: 'b', ifname: 'eth0' }] }), 'GC').validAttachments, [{ containerId: 'b', ifname: 'eth0' }], 'the old key works too');
  t.equal(codeOf(t, () => parseNetConf(conf({ cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ id: 1 }] }), 'GC')), ErrorCode.InvalidNetworkConfig, 'bad attachments -> 7');
});

t.test('pod CIDR checks', async (t) => {
  t.equal(checkPodCidr('10.42.0.0/24'), '10.42.0.0/24');
  t.equal(checkPodCidr('192.168.4.0/30'), '192.168.4.0/30');
  try {
    checkPodCidr('10.42.0.7/24');
  } catch (e) {
    t.match((e as CniError).details, '10.42.0.0/24', 'suggests the canonical range');
  }
});

t.test('versions', async (t) => {
  t.equal(compareVersions('0.3.1', '0.4.0'), -1);
  t.equal(compareVersions('1.1.0', '1.0.0'), 1);
  t.equal(compareVersions('1.0.0', '1.0.0'), 0);
  t.same(versionResult(), { cniVersion: '1.1.0', supportedVersions: [...SUPPORTED_VERSIONS] });
  t.equal(versionResult('0.4.0').cniVersion, '0.4.0', 'answers in the asked version');
  t.equal(versionResult('9.9.9').cniVersion, '1.1.0', 'unknown asked version: answers in the latest');
  t.same(SUPPORTED_VERSIONS, ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']);
});

t.test('results and errors', async (t) => {
  const r: AddResult = {
    interfaces: [{ name: 'kl0', mac: '02:00:00:00:00:01', mtu: 1500 }, { name: 'eth0', mac: '02:00:00:00:00:02', mtu: 1500, sandbox: '/ns' }],
    ips: [{ address: '10.42.0.2/32', gateway: '10.42.0.1', interface: 1 }],
    routes: [{ dst: '0.0.0.0/0', gw: '10.42.0.1' }],
    dns: {},
  };
  const v1 = formatResult('1.0.0', r) as { ips: Record<string, unknown>[]; interfaces: Record<string, unknown>[] };
  t.notOk('version' in v1.ips[0]!, '1.0.0 ips have no version');
  t.notOk('mtu' in v1.interfaces[0]!, '1.0.0 interfaces have no mtu');
  const v11 = formatResult('1.1.0', r) as { interfaces: Record<string, unknown>[] };
  t.equal(v11.interfaces[0]!['mtu'], 1500, '1.1.0 interfaces carry mtu');
  const v04 = formatResult('0.4.0', r) as { cniVersion: string; ips: Record<string, unknown>[] };
  t.equal(v04.ips[0]!['version'], '4', '0.4.0 ips carry version');
  t.equal(v04.cniVersion, '0.4.0');
  const err = formatError(new CniError(7, 'bad', 'fix it'), '0.4.0');
  t.same(err, { cniVersion: '0.4.0', code: 7, msg: 'bad', details: 'fix it' });
  t.equal(formatError(new CniError(4, 'x')).cniVersion, '1.1.0', 'unknown version: latest');
  t.notOk('details' in formatError(new CniError(4, 'x')), 'no empty details');
});

t.test('DEL is lenient about fields it does not need', async (t) => {
  const c = parseNetConf(conf({ podCIDR: '10.42.0.9/24', mtu: 5, bogus: 1, ipam: { type: 'host-local' }, prevResult: 'x' }), 'DEL');
  t.equal(c.name, 'kinglet', 'a conflist gone bad after ADD does not block DEL');
  t.equal(c.podCIDR, undefined);
  t.equal(c.mtu, undefined);
  t.throws(() => parseNetConf(conf({ cniVersion: '7.0.0' }), 'DEL'), 'but an unknown version still is an error');
  t.throws(() => parseNetConf(conf({ dataDir: 'rel' }), 'DEL'), 'and so is a bad dataDir (DEL needs it)');
});
