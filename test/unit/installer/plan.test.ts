// Plan snapshots for the reference hosts: what `kinglet install --dry-run`
// would do, step by step, for each fixture in test/fixtures/installer.
import t from 'tap';
import { checkKernel } from '../../../kernel/check.ts';
import { kernelVerdict, osReleaseOf } from '../../../installer/facts.ts';
import { planInstall } from '../../../installer/phases.ts';
import { settingsFromEnv } from '../../../installer/settings.ts';
import { fatalProblems, redactPlan, renderPlan } from '../../../installer/steps.ts';
import { fixture, input } from '../../lib/installer-helpers.ts';

const EL7 = { KINGLET_KERNEL_MIRROR: 'https://mirror.example.org/elrepo/kernel/el7/x86_64' };
const cases: [string, string, Record<string, string>][] = [
  ['centos 7, 3.10, BIOS (grubby), kernel mirror', 'centos7-bios', EL7],
  ['centos 7, 3.10, UEFI (no grubby), local RPMs, reboot allowed', 'centos7-uefi', { KINGLET_KERNEL_RPM_DIR: '/srv/kernels', KINGLET_ALLOW_REBOOT: '1', KINGLET_KERNEL_CHANNEL: 'ml' }],
  ['rocky 9', 'rocky9', {}],
  ['rhel 8 (cgroup v1 host)', 'rhel8', {}],
  ['ubuntu 22.04, extra k3s flags', 'ubuntu2204', { INSTALL_K3S_EXEC: '--write-kubeconfig-mode=644 --tls-san=k3s.example.org', INSTALL_K3S_VERSION: 'v1.31.4+k3s1' }],
  ['debian 12 arm64, agent joining a server', 'debian12', { K3S_URL: 'https://10.0.0.1:6443', K3S_TOKEN: 'K10secret::server:abc' }],
  ['alpine (OpenRC)', 'alpine', {}],
];

for (const [name, file, env] of cases) {
  t.test(name, async (t) => {
    const plan = planInstall(input(await fixture(file), env));
    t.same(fatalProblems(plan), [], 'no fatal problems');
    t.matchSnapshot(renderPlan(redactPlan(plan)), 'human plan');
    const json = JSON.stringify(redactPlan(plan));
    t.notMatch(json, /K10secret/, 'no token in the plan');
  });
}

t.test('k3s server flags: ours first, the user\'s after, no duplicates', async (t) => {
  const plan = planInstall(input(await fixture('rocky9'), { INSTALL_K3S_EXEC: 'server --disable-kube-proxy --node-ip=10.1.1.1' }));
  const k3s = plan.phases.find((p) => p.phase === 'k3s')!.steps.find((s) => s.id === 'k3s.install');
  t.equal(k3s?.kind === 'run' ? k3s.env?.['INSTALL_K3S_EXEC'] : undefined, 'server --flannel-backend=none --disable-network-policy --disable-kube-proxy --node-ip=10.1.1.1');
});

t.test('a token inside INSTALL_K3S_EXEC moves to K3S_TOKEN (k3s would put it on a command line ps shows)', async (t) => {
  const k3sStep = (env: Record<string, string>, facts: Awaited<ReturnType<typeof fixture>>) => {
    const plan = planInstall(input(facts, env));
    const st = plan.phases.find((p) => p.phase === 'k3s')!.steps.find((s) => s.id === 'k3s.install');
    if (st?.kind !== 'run') throw new Error('no k3s.install');
    return { plan, st };
  };
  const rocky = await fixture('rocky9');
  for (const exec of ['--token=hunter2 --node-ip=10.1.1.1', '--token hunter2 --node-ip=10.1.1.1', '-t hunter2 --node-ip=10.1.1.1']) {
    const { plan, st } = k3sStep({ INSTALL_K3S_EXEC: exec }, rocky);
    t.equal(st.env?.['INSTALL_K3S_EXEC'], '--flannel-backend=none --disable-network-policy --disable-kube-proxy --node-ip=10.1.1.1', `${exec}: the rest stays`);
    t.same(st.secretEnv, { K3S_TOKEN: 'hunter2' });
    t.notMatch(renderPlan(redactPlan(plan)), /hunter2/);
    t.notMatch(JSON.stringify(redactPlan(plan)), /hunter2/);
    t.match(plan.phases.find((p) => p.phase === 'k3s')!.notes, [/--token as K3S_TOKEN: k3s reads them from its root-only environment file/]);
  }
  const agent = k3sStep({ INSTALL_K3S_EXEC: '--agent-token=a9', K3S_TOKEN: 'x' }, rocky).st;
  t.same(agent.secretEnv, { K3S_TOKEN: 'x', K3S_AGENT_TOKEN: 'a9' });
  // Given twice, differently: which one is meant?
  t.match(fatalProblems(k3sStep({ INSTALL_K3S_EXEC: '--token=a', K3S_TOKEN: 'b' }, rocky).plan)[0], { message: /K3S_TOKEN and --token in INSTALL_K3S_EXEC differ/, fix: /give the token once/ });
  t.same(fatalProblems(k3sStep({ INSTALL_K3S_EXEC: '--token=a', K3S_TOKEN: 'a' }, rocky).plan), []);
  // Joining with the token only in INSTALL_K3S_EXEC is fine.
  t.same(fatalProblems(k3sStep({ K3S_URL: 'https://10.0.0.1:6443', INSTALL_K3S_EXEC: '--token s3' }, await fixture('debian12')).plan), []);
  // Other secret k3s variables are redacted; *_FILE paths are not secrets.
  const other = k3sStep({ K3S_DATASTORE_ENDPOINT: 'mysql://k3s:pw@tcp(db:3306)/k3s', K3S_TOKEN_FILE: '/root/token' }, rocky).st;
  t.same(other.secretEnv, { K3S_DATASTORE_ENDPOINT: 'mysql://k3s:pw@tcp(db:3306)/k3s' });
  t.equal(other.env?.['K3S_TOKEN_FILE'], '/root/token');
});

t.test('refusals name their fix', async (t) => {
  const c7 = await fixture('centos7-bios');
  const noMirror = fatalProblems(planInstall(input(c7)));
  t.match(noMirror[0]?.message, /ELRepo no longer serves EL7/);
  t.match(noMirror[0]?.fix, /KINGLET_KERNEL_MIRROR.*KINGLET_KERNEL_RPM_DIR/);

  const deb = await fixture('debian12');
  const urlNoToken = fatalProblems(planInstall(input(deb, { K3S_URL: 'https://10.0.0.1:6443' })));
  t.match(urlNoToken[0]?.fix, /K3S_TOKEN/);

  const flannel = fatalProblems(planInstall(input(deb, { INSTALL_K3S_EXEC: '--flannel-backend=vxlan' })));
  t.match(flannel[0]?.message, /flannel-backend=vxlan/);

  const wrongBpf = { ...deb, mounts: [...deb.mounts, { source: 'tmpfs', target: '/sys/fs/bpf', fstype: 'tmpfs' }] };
  const bpf = fatalProblems(planInstall(input(wrongBpf)));
  t.match(bpf[0]?.message, /\/sys\/fs\/bpf is a tmpfs mount/);

  const busy = { ...deb, portsInUse: [6443] };
  t.match(fatalProblems(planInstall(input(busy)))[0]?.message, /port 6443/);

  const oldUbuntu = { ...(await fixture('ubuntu2204')), kernel: { release: '4.4.0-210-generic' } };
  t.match(fatalProblems(planInstall(input(oldUbuntu)))[0]?.fix, /linux-generic-hwe-22.04/);

  const airgap = fatalProblems(planInstall(input(deb, { INSTALL_K3S_SKIP_DOWNLOAD: 'true' })));
  t.match(airgap[0]?.fix, /KINGLET_K3S_INSTALL_SCRIPT/);
});

t.test('persisting bpffs: a unit (old systemd) or an fstab line (OpenRC), never both, nothing when the init or the host already does it', async (t) => {
  const c7 = await fixture('centos7-bios');
  const ids = (f: typeof c7) => planInstall(input(f, EL7)).phases.find((p) => p.phase === 'bpffs')!.steps.map((s) => s.id);
  t.same(ids(c7), ['bpffs.mount', 'bpffs.persist']);
  t.same(ids({ ...c7, fstab: [...c7.fstab, { source: 'bpffs', target: '/sys/fs/bpf', fstype: 'bpf' }] }), ['bpffs.mount']);
  t.same(ids({ ...c7, systemdVersion: 239 }), ['bpffs.mount']);
  t.same(ids({ ...c7, unitFiles: ['sys-fs-bpf.mount'] }), ['bpffs.mount'], 'a mount unit already there');
  const unit = planInstall(input(c7, EL7)).phases.find((p) => p.phase === 'bpffs')!.steps.find((s) => s.id === 'bpffs.persist');
  t.match(unit, { kind: 'unit', init: 'systemd', name: 'sys-fs-bpf.mount' }, 'systemd < 238: a mount unit, not an fstab line');
  t.notOk(planInstall(input(c7, EL7)).phases.flatMap((p) => p.steps).some((s) => s.kind === 'line' && s.path === '/etc/fstab'), 'never both');
  const alp = await fixture('alpine');
  const alpIds = (f: typeof alp) => planInstall(input(f)).phases.find((p) => p.phase === 'bpffs')!.steps;
  t.match(alpIds(alp).find((s) => s.id === 'bpffs.persist'), { kind: 'line', path: '/etc/fstab' }, 'OpenRC: fstab');
  t.notOk(alpIds(alp).some((s) => s.kind === 'unit'), 'never a unit');
  t.same(alpIds({ ...alp, openrcMountsBpffs: true }).map((s) => s.id), ['bpffs.mount'], "OpenRC whose sysfs service mounts it: nothing to persist");
  const mounted = { ...c7, mounts: [...c7.mounts, { source: 'bpffs', target: '/sys/fs/bpf', fstype: 'bpf' }], systemdVersion: 239 };
  t.same(ids(mounted), [], 'mounted, and mounted at boot: nothing at all');
});

t.test('air-gapped k3s: local script, binary and images', async (t) => {
  const plan = planInstall(input(await fixture('debian12'), {
    INSTALL_K3S_SKIP_DOWNLOAD: 'true', KINGLET_K3S_INSTALL_SCRIPT: '/media/k3s/install.sh',
    KINGLET_K3S_BINARY: '/media/k3s/k3s-arm64', KINGLET_K3S_IMAGES: '/media/k3s/k3s-airgap-images-arm64.tar.zst',
  }));
  t.matchSnapshot(renderPlan(redactPlan({ phases: plan.phases.filter((p) => p.phase === 'k3s') })), 'air-gapped k3s phase');
});

t.test('skipped phases are shown as skipped', async (t) => {
  const plan = planInstall(input(await fixture('rocky9'), { KINGLET_SKIP: 'k3s,verify' }));
  t.same(plan.phases.find((p) => p.phase === 'k3s'), { phase: 'k3s', steps: [], notes: ['skipped (KINGLET_SKIP)'], problems: [] });
  t.throws(() => settingsFromEnv({ KINGLET_SKIP: 'kernal' }, '/opt/kinglet', 'node'), /unknown phase "kernal"/);
  t.throws(() => settingsFromEnv({ KINGLET_KERNEL_CHANNEL: 'rt' }, '/opt/kinglet', 'node'), /"lt".*"ml"/);
});

t.test('the kernel decision is kernel/check.ts\'s, on the facts\' strings', async (t) => {
  for (const name of ['alpine', 'centos7-bios', 'centos7-uefi', 'debian12', 'rhel8', 'rocky9', 'ubuntu2204']) {
    const f = await fixture(name);
    const direct = checkKernel({ ...f.kernel, osRelease: osReleaseOf(f) });
    const v = kernelVerdict(f);
    t.equal(v.ok, direct.ok, `${name}: same verdict`);
    t.equal(v.reason, direct.reason, `${name}: same reason`);
  }
  const deb = await fixture('debian12');
  // A release candidate of the minimum sorts below it: not ok, and the kernel phase has to act.
  const rc = kernelVerdict({ ...deb, kernel: { release: '4.9.17-rc3' } });
  t.notOk(rc.ok);
  t.match(rc.reason, /release candidate/);
  // Debian's uname -v moves the effective version past the release string's base.
  t.match(kernelVerdict(deb).reason, /6\.1\.90/);
  const junk = fatalProblems(planInstall(input({ ...deb, kernel: { release: 'not-a-kernel' } })));
  t.match(junk[0]?.message, /cannot read kernel "not-a-kernel"/);
  t.match(junk[0]?.fix, /kinglet kernel check/);
});

t.test('verify runs kinglet\'s checks; skips only what cannot run on this node', async (t) => {
  const verify = (p: ReturnType<typeof planInstall>) => p.phases.find((x) => x.phase === 'verify')!.steps;
  const rocky = await fixture('rocky9');
  const server = verify(planInstall(input(rocky)));
  t.same(server.map((s) => s.kind), ['check', 'check', 'check', 'check'], 'a server runs all four');
  const conn = server.find((s) => s.id === 'verify.connectivity');
  t.ok(conn?.kind === 'check' && !conn.argv.includes('--single-node'), 'the connectivity test picks single-node or full by the Ready nodes itself');
  t.ok(conn?.kind === 'check' && conn.argv.join(' ').includes('--kubeconfig /etc/rancher/k3s/k3s.yaml'));
  t.notOk(server.some((s) => s.kind === 'check' && s.needs), 'the agent phase ran: its socket must be there');

  const joining = verify(planInstall(input(rocky, { K3S_URL: 'https://10.0.0.1:6443', K3S_TOKEN: 'x' })));
  t.match(joining.find((s) => s.id === 'verify.connectivity'), { kind: 'skip', reason: /cluster-admin kubeconfig.*on a server/ });

  const airgap = verify(planInstall(input(rocky, { INSTALL_K3S_SKIP_DOWNLOAD: 'true', KINGLET_K3S_INSTALL_SCRIPT: '/media/install.sh' })));
  t.match(airgap.find((s) => s.id === 'verify.connectivity'), { kind: 'skip', reason: /air-gapped.*--image-echo/ });

  const noAgent = verify(planInstall(input(rocky, { KINGLET_SKIP: 'agent' })));
  t.match(noAgent.find((s) => s.id === 'verify.status'), { kind: 'check', needs: '/run/kinglet/agent.sock' });
  t.match(noAgent.find((s) => s.id === 'verify.connectivity'), { kind: 'check', needs: '/run/kinglet/agent.sock' });
  t.notMatch(renderPlan(planInstall(input(rocky))), /does not exist in this build/);
});

t.test('every preflight refusal names what is wrong and how to fix it', async (t) => {
  const deb = await fixture('debian12');
  const cases: [string, Partial<typeof deb>, RegExp, RegExp][] = [
    ['arch', { arch: 'riscv64' }, /unsupported architecture riscv64/, /x86_64 and aarch64/],
    ['init', { init: 'unknown' }, /no systemd or OpenRC/, /boot the host with one of them/],
    ['ip', { commands: deb.commands.filter((c) => c !== 'ip') }, /iproute2 \(`ip`\) is missing/, /^apt-get install -y iproute2$/],
    ['mount', { commands: deb.commands.filter((c) => c !== 'mount') }, /`mount` is missing/, /util-linux/],
    ['kernel string', { kernel: { release: 'garbage' } }, /cannot read kernel "garbage"/, /kinglet kernel check --release/],
    ['downloader', { commands: deb.commands.filter((c) => c !== 'curl' && c !== 'wget') }, /neither curl nor wget/, /^apt-get install -y curl$/],
    ['port 6443', { portsInUse: [6443] }, /TCP port 6443 is in use/, /ss -ltnp 'sport = :6443'/],
    ['port 10250', { portsInUse: [10250] }, /TCP port 10250 is in use/, /ss -ltnp 'sport = :10250'/],
    ['memory cgroup', { cgroupControllers: ['cpu', 'pids', 'cpuset'] }, /the memory cgroup controller\(s\) are disabled/, /cgroup_enable=memory cgroup_memory=1.*\/boot\/cmdline\.txt.*reboot and re-run/],
    ['pids cgroup', { cgroupControllers: ['cpu', 'memory'] }, /the pids cgroup controller/, /cgroup_enable=pids/],
  ];
  for (const [name, patch, message, fix] of cases) {
    const facts = { ...deb, ...patch };
    const pre = planInstall(input(facts)).phases.find((p) => p.phase === 'preflight')!;
    const fatal = pre.problems.filter((p) => p.severity === 'fatal');
    t.equal(fatal.length, 1, `${name}: one refusal`);
    t.match(fatal[0], { message, fix }, `${name}: says what and how`);
  }
  // EL hosts get their own package manager in the fix.
  const c7 = await fixture('centos7-bios');
  t.match(fatalProblems(planInstall(input({ ...c7, commands: c7.commands.filter((c) => c !== 'ip') }, EL7)))[0]?.fix, /^yum install -y iproute$/);
  const alp = await fixture('alpine');
  t.match(fatalProblems(planInstall(input({ ...alp, commands: alp.commands.filter((c) => c !== 'ip') })))[0]?.fix, /^apk add iproute2$/);
  // Warnings do not stop an install; they carry a fix too.
  const warned = planInstall(input({ ...deb, memoryMiB: 256, cniConfigs: ['/etc/cni/net.d/10-flannel.conflist'], cgroup2Supported: false }));
  const warns = warned.phases[0]!.problems;
  t.same(warns.map((w) => w.severity), ['warn', 'warn', 'warn']);
  t.ok(warns.every((w) => w.fix.length > 10), 'each with a fix');
  t.same(fatalProblems(warned), []);
  // k3s already installed: its ports are its own.
  t.same(fatalProblems(planInstall(input({ ...deb, portsInUse: [6443, 10250], k3s: { installed: true, active: true } }))), []);
  // An agent only needs 10250.
  t.same(fatalProblems(planInstall(input({ ...deb, portsInUse: [6443] }, { K3S_URL: 'https://10.0.0.1:6443', K3S_TOKEN: 'x' }))), []);
});

t.test('a facts file is checked field by field: a clear error, never a crash', async (t) => {
  const { parseFacts } = await import('../../../installer/facts.ts');
  const min = { hostname: 'h', os: { id: 'debian' }, arch: 'x86_64', kernel: { release: '6.1.0' }, init: 'systemd', commands: ['ip', 'mount', 'curl'], mounts: [] };
  const f = parseFacts(JSON.stringify(min), 'min.json');
  t.same(f.os, { id: 'debian', idLike: [], versionId: '', prettyName: 'debian' }, 'optional os fields get defaults');
  t.same(f.k3s, { installed: false, active: false });
  t.ok(planInstall(input(f)).phases.length === 6, 'a minimal file plans');
  const bad: [unknown, RegExp][] = [
    ['not json', /x\.json: not JSON/],
    [[1], /facts must be a JSON object/],
    [{ ...min, os: undefined }, /facts lack "os\.id"/],
    [{ ...min, commands: 'ip' }, /"commands" must be a list of command names, not "ip"/],
    [{ ...min, mounts: [{ target: '/' }] }, /"mounts" must be a list of \{source, target, fstype\}/],
    [{ ...min, init: 'runit' }, /"init" must be "systemd", "openrc" or "unknown", not "runit"/],
    [{ ...min, os: { id: 'debian', idLike: 'ubuntu' } }, /"os\.idLike" must be a list of strings/],
    [{ ...min, k3s: { installed: 'yes' } }, /"k3s\.installed" must be true or false/],
    [{ ...min, kernel: { release: 6 } }, /"kernel\.release" must be a string \(uname -r\), not 6/],
  ];
  for (const [v, re] of bad) t.throws(() => parseFacts(typeof v === 'string' ? v : JSON.stringify(v), 'x.json'), re);
});
