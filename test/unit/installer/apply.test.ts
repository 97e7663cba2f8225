// Apply against a scratch root with a recording runner: files and units
// land where they should, a second run is a no-op, a run cut by the kernel
// reboot resumes, uninstall removes what install added.
import t from 'tap';
import { copyFile, lstat, mkdtemp, mkdir, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { runWith as install } from '../../../agent/cli/commands/install.ts';
import { runWith as uninstall } from '../../../agent/cli/commands/uninstall.ts';
import { runWith as kernelUpgrade } from '../../../agent/cli/commands/kernel-upgrade.ts';
import { loadState, saveState } from '../../../installer/apply.ts';
import type { HostFacts } from '../../../installer/facts.ts';
import { deps, FakeClock, fixture, io, kernelStubs, RecordingRunner, runWithStubs, simulateHost } from '../../lib/installer-helpers.ts';

async function tree(dir: string, base = dir): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) Object.assign(out, await tree(p, base), { [p.slice(base.length) + '/']: 'dir' });
    else out[p.slice(base.length)] = `${((await stat(p)).mode & 0o777).toString(8)} ${await readFile(p, 'utf8')}`;
  }
  return out;
}

async function scratch(t: { teardown(fn: () => unknown): void }): Promise<{ root: string; bundle: string }> {
  const base = await mkdtemp(join(tmpdir(), 'kinglet-apply-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  const root = join(base, 'root');
  const bundle = join(base, 'bundle');
  await mkdir(join(root, 'etc'), { recursive: true });
  await writeFile(join(root, 'etc/fstab'), '/dev/sda1 / ext4 defaults 0 1\n');
  await mkdir(join(bundle, 'manifests'), { recursive: true });
  await copyFile(new URL('../../../manifests/agent-rbac.yaml', import.meta.url), join(bundle, 'manifests/agent-rbac.yaml'));
  return { root, bundle };
}


/** A scratch host with kinglet installed on it (k3s simulated), for the tests that start from there. */
async function installed(t: { teardown(fn: () => unknown): void }, name: string) {
  const { root, bundle } = await scratch(t);
  const facts = await fixture(name);
  const runner = new RecordingRunner(root);
  simulateHost(runner);
  const o = io();
  const code = await install([], o.io, deps(root, runner, facts, {}, bundle));
  if (code !== 0) throw new Error(`install on ${name} exited ${code}:\n${o.err.join('')}`);
  return { root, bundle, facts, runner };
}

const TOKEN = 'K10topsecret::server:deadbeef';

t.test('alpine server: files land, second run is a no-op, uninstall restores', async (t) => {
  const { root, bundle } = await scratch(t);
  const before = await tree(root);
  const facts = await fixture('alpine');
  const env = { K3S_TOKEN: TOKEN };
  const r1 = new RecordingRunner(root);
  simulateHost(r1);
  const o1 = io();
  t.equal(await install([], o1.io, deps(root, r1, facts, env, bundle)), 0, o1.err.join(''));
  const after = await tree(root);
  // CNI dirs come from the containerd config k3s wrote, not the defaults.
  t.match(after['/var/lib/rancher/k3s/data/cni-test/kinglet-cni'], /^755 #!\/bin\/sh\n.*\nexec \/opt\/kinglet\/node\/bin\/node \S+\/bundle\/agent\/cni\/kinglet-cni "\$@"\n$/s, 'a wrapper that runs the bundle with its own node');
  t.match(after['/var/lib/rancher/k3s/agent/etc/cni/net.d/05-kinglet.conflist'], /^644 .*"type": "kinglet-cni"/s);
  t.match(after['/etc/init.d/kinglet-agent'], /^755 #!\/sbin\/openrc-run/);
  t.match(after['/etc/kinglet/agent.kubeconfig'], /^600 .*https:\/\/127\.0\.0\.1:6444.*client-kubelet\.crt/s);
  t.match(after['/var/lib/rancher/k3s/server/manifests/kinglet-rbac.yaml'], /^600 .*system:nodes/s);
  t.match(after['/etc/fstab'], /bpffs \/sys\/fs\/bpf bpf/);
  t.match(after['/var/lib/kinglet/state.json'], /^600 /);
  t.same(r1.lines().filter((l) => /^(mount|rc-update|rc-service)/.test(l)), [
    'mount -t bpf bpffs /sys/fs/bpf',
    'rc-update add kinglet-agent default',
    'rc-service kinglet-agent start',
  ]);
  const k3s = r1.calls.find((c) => c.argv[1]?.endsWith('k3s-install.sh'))!;
  t.equal(k3s.env['K3S_TOKEN'], TOKEN, 'k3s gets the token');
  t.equal(k3s.env['INSTALL_K3S_EXEC'], '--flannel-backend=none --disable-network-policy --disable-kube-proxy');
  for (const [path, content] of Object.entries(after)) t.notMatch(content, /topsecret/, `no token in ${path}`);
  t.notMatch(o1.err.join('') + o1.out.join(''), /topsecret/, 'no token in the log');

  const r2 = new RecordingRunner(root);
  simulateHost(r2);
  const o2 = io();
  t.equal(await install([], o2.io, deps(root, r2, facts, env, bundle)), 0);
  t.same(await tree(root), after, 'second run changes no file');
  t.same(r2.lines().filter((l) => !/kubectl|kinglet\.ts (kernel check|kernel probe|status|connectivity test)( |$)/.test(l)), [], 'second run runs only read-only probes');
  t.match(o2.out.join(''), /0 step\(s\) applied/);

  const r3 = new RecordingRunner(root);
  const o3 = io();
  t.equal(await uninstall([], o3.io, deps(root, r3, facts, env, bundle)), 0);
  const left = await tree(root);
  // k3s (and what it wrote) stays without --k3s; everything kinglet wrote is gone.
  const k3sOwn = (p: string) => p.startsWith('/var/lib/rancher/k3s/agent/etc/containerd') || ['/var/', '/var/lib/', '/var/lib/rancher/', '/var/lib/rancher/k3s/', '/var/lib/rancher/k3s/agent/', '/var/lib/rancher/k3s/agent/etc/'].includes(p);
  // ... and its record, so a later `kinglet uninstall --k3s` still removes it.
  const k3sRecord = (p: string) => ['/var/lib/kinglet/', '/var/lib/kinglet/state.json'].includes(p);
  t.same(Object.fromEntries(Object.entries(left).filter(([p]) => !k3sOwn(p) && !k3sRecord(p))), before, 'uninstall leaves the host as it was (but k3s)');
  t.same((await loadState(root)).steps.map((x) => x.id), ['k3s.install'], 'only k3s stays recorded');
  t.same(r3.lines(), [
    'rc-service kinglet-agent stop', 'rc-update del kinglet-agent default',
    `/opt/kinglet/node/bin/node ${bundle}/agent/cli/kinglet.ts agent --cleanup --bpf-root /sys/fs/bpf/kinglet --state-dir /var/lib/kinglet/agent`,
    'umount /sys/fs/bpf',
  ], 'the datapath goes (programs, tc filters, pins) before bpffs is unmounted');
  t.match(o3.out.join(''), /kept k3s\.install\nnote: k3s stays, without a CNI: .*`kinglet uninstall --k3s` removes k3s too\n/);
});

t.test('uninstall --k3s runs k3s\'s uninstall script', async (t) => {
  const { root, bundle, facts, runner: r } = await installed(t, 'ubuntu2204');
  const r2 = new RecordingRunner(root);
  t.equal(await uninstall(['--k3s'], io().io, deps(root, r2, facts, {}, bundle)), 0);
  t.ok(r2.lines().includes('/usr/local/bin/k3s-uninstall.sh'));
  t.ok(r2.lines().includes('systemctl disable --now kinglet-agent.service'));
});

t.test('uninstall stops the agent, then removes its datapath, then its unit', async (t) => {
  const { root, bundle, facts, runner: r } = await installed(t, 'ubuntu2204');
  t.notOk(r.lines().some((l) => l.includes('--cleanup')), 'install does not run the cleanup');
  const r2 = new RecordingRunner(root);
  const unitThere: boolean[] = [];
  r2.handlers.push(async (argv) => {
    if (argv.includes('--cleanup')) unitThere.push(await stat(join(root, 'etc/systemd/system/kinglet-agent.service')).then(() => true, () => false));
    return undefined;
  });
  t.equal(await uninstall([], io().io, deps(root, r2, facts, {}, bundle)), 0);
  const lines = r2.lines();
  const cleanup = `/opt/kinglet/node/bin/node ${bundle}/agent/cli/kinglet.ts agent --cleanup --bpf-root /sys/fs/bpf/kinglet --state-dir /var/lib/kinglet/agent`;
  t.equal(lines.filter((l) => l === cleanup).length, 1, 'the datapath cleanup runs once');
  t.ok(lines.indexOf('systemctl disable --now kinglet-agent.service') < lines.indexOf(cleanup), 'after the agent stopped');
  t.same(unitThere, [true], 'before its unit file is removed');
  t.ok(lines.indexOf(cleanup) < lines.lastIndexOf('systemctl daemon-reload'));

  // OpenRC: stopped through rc-service first, too.
  const alpine = await scratch(t);
  const ra = new RecordingRunner(alpine.root);
  simulateHost(ra);
  t.equal(await install([], io().io, deps(alpine.root, ra, await fixture('alpine'), {}, alpine.bundle)), 0);
  const ra2 = new RecordingRunner(alpine.root);
  t.equal(await uninstall([], io().io, deps(alpine.root, ra2, await fixture('alpine'), {}, alpine.bundle)), 0);
  const la = ra2.lines();
  const ic = la.findIndex((l) => l.includes('agent --cleanup'));
  t.ok(ic > la.indexOf('rc-service kinglet-agent stop') && la.indexOf('rc-service kinglet-agent stop') >= 0);
});

t.test('an install recorded before the datapath cleanup existed: uninstall still runs it, once', async (t) => {
  for (const [name, stop] of [['ubuntu2204', 'systemctl disable --now kinglet-agent.service'], ['alpine', 'rc-update del kinglet-agent default']] as const) {
    const { root, bundle, facts, runner: r } = await installed(t, name);
    // What such a record looks like: the agent.service undo without the cleanup run.
    const state = await loadState(root);
    const svc = state.steps.find((x) => x.id === 'agent.service');
    if (!svc) throw new Error('no agent.service record');
    svc.rec.undo = svc.rec.undo.filter((a) => !(a.kind === 'run' && a.argv.includes('--cleanup')));
    await saveState(root, state);
    const r2 = new RecordingRunner(root);
    const unitThere: boolean[] = [];
    const unit = name === 'alpine' ? 'etc/init.d/kinglet-agent' : 'etc/systemd/system/kinglet-agent.service';
    r2.handlers.push(async (argv) => {
      if (argv.includes('--cleanup')) unitThere.push(await stat(join(root, unit)).then(() => true, () => false));
      return undefined;
    });
    t.equal(await uninstall([], io().io, deps(root, r2, facts, {}, bundle)), 0);
    const lines = r2.lines();
    const cleanup = `/opt/kinglet/node/bin/node ${bundle}/agent/cli/kinglet.ts agent --cleanup --bpf-root /sys/fs/bpf/kinglet --state-dir /var/lib/kinglet/agent`;
    t.equal(lines.filter((l) => l.includes('--cleanup')).length, 1, `${name}: the datapath cleanup runs exactly once`);
    t.equal(lines.filter((l) => l === cleanup).length, 1, `${name}: with the installer's node, bundle, pin root and state dir`);
    t.ok(lines.indexOf(stop) >= 0 && lines.indexOf(stop) < lines.indexOf(cleanup), `${name}: after the agent stopped`);
    t.same(unitThere, [true], `${name}: before its unit file is removed`);
    if (name === 'alpine') t.ok(lines.indexOf(cleanup) < lines.indexOf('umount /sys/fs/bpf'), 'before bpffs is unmounted');
  }
});

t.test("the cleanup's pin root and state dir are the agent's own defaults", async (t) => {
  const { DEFAULT_BPF_ROOT } = await import('../../../agent/datapath/loader.ts');
  const { DEFAULT_STATE_DIR } = await import('../../../agent/endpoints.ts');
  const { AGENT_BPF_ROOT, AGENT_STATE_DIR } = await import('../../../installer/render.ts');
  t.equal(AGENT_BPF_ROOT, DEFAULT_BPF_ROOT);
  t.equal(AGENT_STATE_DIR, DEFAULT_STATE_DIR);
});

t.test('centos 7: stops for the reboot, resumes after it', async (t) => {
  const { root, bundle } = await scratch(t);
  await mkdir(join(root, 'etc/default'), { recursive: true });
  const facts = await fixture('centos7-bios');
  const env = { KINGLET_KERNEL_MIRROR: 'https://mirror.example.org/el7', K3S_TOKEN: TOKEN };

  // No consent: the kernel is installed, the boot hook set, then it stops.
  const r1 = new RecordingRunner(root);
  simulateHost(r1);
  const o1 = io();
  t.equal(await install([], o1.io, deps(root, r1, facts, env, bundle)), 3);
  t.match(o1.out.join(''), /reboot to use it/);
  t.same(r1.lines().slice(0, 3), [
    'rpm --import https://mirror.example.org/el7/RPM-GPG-KEY-elrepo.org',
    'yum --disablerepo=* --enablerepo=kinglet-kernel install -y kernel-lt',
    r1.lines()[2],
  ]);
  t.match(r1.lines()[2], /^sh -c q=\$\(rpm -q .*grubby --set-default .* kernel-lt$/);
  t.ok(r1.lines().some((l) => /^sh -c .*grubby --default-kernel.* kernel-lt$/.test(l)), 'default entry verified');
  t.notOk(r1.lines().some((l) => /reboot|k3s-install/.test(l)), 'no reboot, nothing past the kernel phase');
  const unit = await readFile(join(root, 'etc/systemd/system/kinglet-resume.service'), 'utf8');
  t.match(unit, /ExecStart=\/opt\/kinglet\/node\/bin\/node .*kinglet\.ts install --resume/);
  const envFile = join(root, 'var/lib/kinglet/resume.env');
  t.equal((await stat(envFile)).mode & 0o777, 0o600, 'resume settings are root-only');
  t.match(await readFile(envFile, 'utf8'), /KINGLET_KERNEL_MIRROR="https:\/\/mirror\.example\.org\/el7"/);

  // Consent given on the re-run: done steps are skipped, then it reboots.
  const r2 = new RecordingRunner(root);
  simulateHost(r2);
  t.equal(await install(['--allow-reboot'], io().io, deps(root, r2, facts, env, bundle)), 0);
  t.same(r2.lines().map((l) => l.includes('grubby --default-kernel') ? 'verify-default' : l), ['verify-default', 'systemctl reboot'], 'only the default entry is checked again before the reboot');
  t.equal((await loadState(root)).rebootedForKernel, true);

  // After the boot: new kernel, the hook runs install --resume.
  const booted: HostFacts = { ...facts, kernel: { release: '5.4.278-1.el7.elrepo.x86_64' } };
  const r3 = new RecordingRunner(root);
  simulateHost(r3);
  const o3 = io();
  t.equal(await install(['--resume'], o3.io, deps(root, r3, booted, env, bundle)), 0, o3.err.join(''));
  t.notOk(r3.lines().some((l) => /rpm --import|yum|grubby --set-default/.test(l)), 'kernel steps not repeated');
  t.ok(r3.lines().some((l) => l.endsWith('k3s-install.sh')), 'k3s installed');
  t.ok(r3.lines().includes('systemctl disable --now kinglet-resume.service'), 'resume hook disabled');
  await t.rejects(stat(join(root, 'etc/systemd/system/kinglet-resume.service')), 'resume unit removed');
  await t.rejects(stat(envFile), 'resume settings removed');
  t.match(await readFile(join(root, 'etc/systemd/system/sys-fs-bpf.mount'), 'utf8'), /Type=bpf/);
});

t.test('rebooted but still on the old kernel: refuses instead of looping', async (t) => {
  const { root, bundle } = await scratch(t);
  const facts = await fixture('centos7-bios');
  const env = { KINGLET_KERNEL_MIRROR: 'https://mirror.example.org/el7', KINGLET_ALLOW_REBOOT: '1' };
  const r1 = new RecordingRunner(root);
  simulateHost(r1);
  t.equal(await install([], io().io, deps(root, r1, facts, env, bundle)), 0);
  const r2 = new RecordingRunner(root);
  await t.rejects(install([], io().io, deps(root, r2, facts, env, bundle)), /rebooted for the new kernel but still runs 3\.10/);
  t.same(r2.lines(), [], 'nothing ran');
});

t.test('a failing default-entry check stops before any reboot', async (t) => {
  const { root, bundle } = await scratch(t);
  const facts = await fixture('centos7-bios');
  const r = new RecordingRunner(root);
  // grubby --set-default "succeeds" but the default stays the old kernel.
  const dir = await kernelStubs(join(root, '..', 'stubs'), ['5.4.278-1.el7.elrepo.x86_64'], '/boot/vmlinuz-3.10.0-1160.el7.x86_64');
  r.handlers.push((argv) => (argv[0] === 'sh' && argv[1] === '-c' ? (argv[2]?.includes('--set-default') ? { exitCode: 0 } : runWithStubs(argv, dir)) : undefined));
  await t.rejects(kernelUpgrade(['--allow-reboot'], io().io, deps(root, r, facts, { KINGLET_KERNEL_MIRROR: 'https://m.example/el7' }, bundle)),
    /verify the default boot entry is the new kernel-lt: failed \(exit 1\):\s+boot default: \/boot\/vmlinuz-3\.10\.0-1160\.el7\.x86_64; newest kernel-lt: 5\.4\.278-1\.el7\.elrepo\.x86_64\s+fix: set it by hand/);
  t.notOk(r.lines().includes('systemctl reboot'));
});

t.test('kernel upgrade alone: no resume hook', async (t) => {
  const { root, bundle } = await scratch(t);
  const facts = await fixture('centos7-uefi');
  const r = new RecordingRunner(root);
  await mkdir(join(root, 'etc/default'), { recursive: true });
  await writeFile(join(root, 'etc/default/grub'), 'GRUB_TIMEOUT=5\nGRUB_DEFAULT=saved\n');
  // The check reads the generated grub.cfg (in the scratch root) with the stand-in rpm.
  const dir = await kernelStubs(join(root, '..', 'stubs'), ['6.9.7-1.el7.elrepo.x86_64'], '');
  await mkdir(join(root, 'boot/efi/EFI/centos'), { recursive: true });
  await writeFile(join(root, 'boot/efi/EFI/centos/grub.cfg'), "menuentry 'CentOS Linux (6.9.7-1.el7.elrepo.x86_64) 7 (Core)' {\n}\n");
  r.handlers.push((argv) => (argv[0] === 'sh' && argv[1] === '-c' && argv.at(-1)?.endsWith('grub.cfg') ? runWithStubs([...argv.slice(0, -1), join(root, argv.at(-1)!)], dir) : undefined));
  const o = io();
  t.equal(await kernelUpgrade([], o.io, deps(root, r, facts, { KINGLET_KERNEL_RPM_DIR: '/srv/rpms' }, bundle)), 3);
  t.equal(await readFile(join(root, 'etc/default/grub'), 'utf8'), 'GRUB_TIMEOUT=5\nGRUB_DEFAULT=0\n');
  t.ok(r.lines().includes('grub2-mkconfig -o /boot/efi/EFI/centos/grub.cfg'));
  await t.rejects(stat(join(root, 'etc/systemd/system/kinglet-resume.service')));
  t.match(o.out.join(''), /then run kinglet install/);
  // Uninstall puts the GRUB_DEFAULT line back.
  t.equal(await uninstall([], io().io, deps(root, new RecordingRunner(root), facts, {}, bundle)), 0);
  t.equal(await readFile(join(root, 'etc/default/grub'), 'utf8'), 'GRUB_TIMEOUT=5\nGRUB_DEFAULT=saved\n');
});

t.test('--facts is for dry runs only; dry run with fatal problems exits 1', async (t) => {
  const { root, bundle } = await scratch(t);
  const facts = await fixture('centos7-bios');
  const r = new RecordingRunner(root);
  await t.rejects(install(['--facts', '/nonexistent.json'], io().io, deps(root, r, facts, {}, bundle)), /--dry-run only/);
  const o = io();
  t.equal(await install(['--dry-run', '--json'], o.io, deps(root, r, facts, {}, bundle)), 1);
  t.match(JSON.parse(o.out.join('')).phases[1].problems[0].message, /ELRepo no longer serves EL7/);
  t.same(r.calls, []);
  t.same(await readdir(root), ['etc'], 'dry run wrote nothing');
});

t.test('verify: checks without the agent socket they need are skipped, not run', async (t) => {
  const { root, bundle } = await scratch(t);
  const facts = await fixture('debian12');
  const env = { KINGLET_SKIP: 'kernel,bpffs,k3s,agent' };
  const r1 = new RecordingRunner(root);
  const o1 = io();
  t.equal(await install([], o1.io, deps(root, r1, facts, env, bundle)), 0, o1.err.join(''));
  const ran = r1.lines().filter((l) => l.includes('kinglet.ts'));
  t.same(ran.map((l) => l.replace(/^.*kinglet\.ts /, '')), ['kernel check', 'kernel probe'], 'status and connectivity need the socket');
  t.match(o1.err.join(''), /\/run\/kinglet\/agent\.sock does not exist/);

  // An agent from an earlier install is there: its socket makes them run.
  await mkdir(join(root, 'run/kinglet'), { recursive: true });
  await writeFile(join(root, 'run/kinglet/agent.sock'), '');
  const r2 = new RecordingRunner(root);
  t.equal(await install([], io().io, deps(root, r2, facts, env, bundle)), 0);
  t.same(r2.lines().filter((l) => l.includes('kinglet.ts')).map((l) => l.replace(/^.*kinglet\.ts /, '')), [
    'kernel check', 'kernel probe', 'status --api-socket /run/kinglet/agent.sock',
    'connectivity test --kubeconfig /etc/rancher/k3s/k3s.yaml --api-socket /run/kinglet/agent.sock',
  ]);

  // A failing check names its fix.
  const r3 = new RecordingRunner(root);
  r3.handlers.push((argv) => (argv.includes('status') ? { exitCode: 1, stdout: 'agent unhealthy' } : undefined));
  await t.rejects(install([], io().io, deps(root, r3, facts, env, bundle)), { message: /agent status: failed \(exit 1\):\s+agent unhealthy\s+fix: run `kinglet status --api-socket/ });
});

t.test('progress: long commands and waits say what is going on, for how long, and the limit', async (t) => {
  const { root, bundle } = await scratch(t);
  const facts = await fixture('ubuntu2204');
  const clock = new FakeClock();
  const r = new RecordingRunner(root);
  r.handlers.push((argv, _root, onLine) => {
    if (argv[0] === 'sh' && argv[1]?.endsWith('k3s-install.sh')) {
      // k3s's script talks, takes 35s, and (say) echoes its token.
      onLine?.('[INFO]  Downloading binary https://github.com/k3s-io/k3s/releases/download/v1.31.4+k3s1/k3s');
      clock.advance(35_000);
      onLine?.(`[INFO]  token ${TOKEN}`);
      return undefined; // simulateHost writes the containerd config
    }
    if (argv.includes('--raw=/readyz')) return clock.now() < 77_000 ? { exitCode: 1 } : { exitCode: 0 };
    if (argv.includes('connectivity')) {
      onLine?.('PASS  pod-to-pod');
      clock.advance(20_000);
      return { stdout: 'PASS  pod-to-pod\n' };
    }
    return undefined;
  });
  simulateHost(r);
  const o = io();
  t.equal(await install([], o.io, deps(root, r, facts, { K3S_TOKEN: TOKEN }, bundle, clock)), 0, o.err.join(''));
  const log = o.err.join('');
  t.match(log, /\n {4}\| \[INFO\] {2}Downloading binary https:\/\/github\.com\/k3s-io/, "k3s's output is shown as it comes");
  t.match(log, /\n {4}still running: install and start k3s \(server\) \(15s\)\n {4}still running: install and start k3s \(server\) \(30s\)\n {4}\| \[INFO\] {2}token <redacted>\n/);
  t.notMatch(log, /topsecret/, 'a secret in command output is redacted');
  // The API wait starts at 35s and succeeds at 77s: tries every 3s, a line every 15s.
  t.match(log, /waiting up to 300s for the Kubernetes API\n {4}still waiting for the Kubernetes API \(15s of up to 300s\)\n {4}still waiting for the Kubernetes API \(30s of up to 300s\)\n {4}done waiting for the Kubernetes API after 42s\n/);
  t.match(log, /\[verify\] connectivity checks\n.*\n {4}\| PASS {2}pod-to-pod\n {4}still running: connectivity checks \(15s\)\n/, 'a long check is shown as it goes');
  t.notMatch(log, /still running: (?!install and start k3s|connectivity checks)/, 'quick steps stay quiet');
  t.notMatch(log, /still waiting for (?!the Kubernetes API)/);
});

t.test('a wait gives up at its deadline by the clock, with its fix', async (t) => {
  const { root, bundle } = await scratch(t);
  const facts = await fixture('ubuntu2204');
  const clock = new FakeClock();
  const r = new RecordingRunner(root);
  r.handlers.push((argv) => {
    if (!argv.includes('--raw=/readyz')) return undefined;
    clock.advance(2_000); // each try itself takes 2s
    return { exitCode: 1 };
  });
  simulateHost(r);
  const o = io();
  await t.rejects(install([], o.io, deps(root, r, facts, { KINGLET_PROGRESS_SECONDS: '60' }, bundle, clock)),
    /wait for the Kubernetes API: gave up after 300s\nfix: see why k3s is not ready: journalctl -u k3s/);
  const tries = r.lines().filter((l) => l.includes('readyz')).length;
  t.ok(tries >= 55 && tries <= 62, `tries spaced by the clock (2s each + 3s pause): ${tries}`);
  t.ok(clock.now() >= 300_000 && clock.now() < 306_000, `gave up at the deadline (${clock.now()}ms)`);
  t.equal(o.err.join('').match(/still waiting/g)?.length, 4, 'KINGLET_PROGRESS_SECONDS=60: a line a minute');
  await t.rejects(install([], io().io, deps(root, r, facts, { KINGLET_PROGRESS_SECONDS: 'often' }, bundle, clock)), /KINGLET_PROGRESS_SECONDS must be a whole number/);
});

t.test('tokens never reach a log, a plan, the state, a unit, a command line or a file others can read', async (t) => {
  const { root, bundle } = await scratch(t);
  const secrets = ['K10tok-one::node:aaa', 'K10db-password-two', 'K10agent-three'];
  const env = {
    KINGLET_KERNEL_MIRROR: 'https://mirror.example.org/el7',
    K3S_TOKEN: secrets[0]!, K3S_DATASTORE_ENDPOINT: `mysql://k3s:${secrets[1]}@tcp(db:3306)/k3s`, INSTALL_K3S_EXEC: `--node-label a=b --agent-token ${secrets[2]}`,
  };
  const leaks = (text: string) => secrets.filter((s) => text.includes(s));
  const facts = await fixture('centos7-bios');
  // A resume.env left by an earlier attempt: its old content must not be carried into the state either.
  await mkdir(join(root, 'var/lib/kinglet'), { recursive: true });
  await writeFile(join(root, 'var/lib/kinglet/resume.env'), "K3S_TOKEN='K10old-secret'\n", { mode: 0o644 });
  secrets.push('K10old-secret');

  for (const args of [['--dry-run'], ['--dry-run', '--json']]) {
    const o = io();
    await install(args, o.io, deps(root, new RecordingRunner(root), facts, env, bundle));
    t.same(leaks(o.out.join('') + o.err.join('')), [], `install ${args.join(' ')}`);
  }
  const o = io();
  const r1 = new RecordingRunner(root);
  simulateHost(r1);
  t.equal(await install(['--json'], o.io, deps(root, r1, facts, env, bundle)), 3, 'stopped for the reboot');
  const files = await tree(root);
  for (const [path, entry] of Object.entries(files)) {
    if (leaks(entry).length === 0) continue;
    t.equal(path, '/var/lib/kinglet/resume.env', `only the resume settings hold a token (${path})`);
    t.match(entry, /^600 /, 'and only root can read them');
  }
  t.match(files['/var/lib/kinglet/resume.env'], 'K3S_TOKEN="K10tok-one::node:aaa"', 'the resumed run gets the new token');
  t.same(leaks(files['/var/lib/kinglet/state.json'] ?? ''), [], 'state.json');
  t.same(leaks(files['/etc/systemd/system/kinglet-resume.service'] ?? 'missing'), [], 'the resume unit reads them from its EnvironmentFile');

  // After the reboot: k3s is installed, and happens to print its token.
  const booted: HostFacts = { ...facts, kernel: { release: '5.4.278-1.el7.elrepo.x86_64' } };
  const r2 = new RecordingRunner(root);
  r2.handlers.push((argv, _root, onLine) => {
    if (argv[1]?.endsWith('k3s-install.sh')) for (const s of secrets.slice(0, 3)) onLine?.(`[INFO] token ${s}`);
    return undefined;
  });
  simulateHost(r2);
  const o2 = io();
  t.equal(await install(['--resume', '--json'], o2.io, deps(root, r2, booted, env, bundle)), 0, o2.err.join(''));
  const k3s = r2.calls.find((c) => c.argv[1]?.endsWith('k3s-install.sh'));
  t.same([k3s?.env['K3S_TOKEN'], k3s?.env['K3S_DATASTORE_ENDPOINT'], k3s?.env['K3S_AGENT_TOKEN']], [secrets[0], env.K3S_DATASTORE_ENDPOINT, secrets[2]], 'k3s gets all three');
  t.equal(k3s?.env['INSTALL_K3S_EXEC'], '--flannel-backend=none --disable-network-policy --disable-kube-proxy --node-label a=b', 'the agent token moved out of the k3s command line');
  t.match(o2.err.join(''), /\[INFO\] token <redacted>/);
  t.same(leaks(o.out.join('') + o.err.join('') + o2.out.join('') + o2.err.join('')), [], 'logs and --json outcomes');
  t.same([...r1.calls, ...r2.calls].filter((c) => leaks(c.argv.join(' ')).length), [], 'no command line (what ps shows) carries one');
  for (const [path, entry] of Object.entries(await tree(root))) t.same(leaks(entry), [], `nothing left holds one: ${path}`);

  // A failing k3s install that prints the token: the error shows its output, redacted.
  const fresh = await scratch(t);
  const r3 = new RecordingRunner(fresh.root);
  r3.handlers.push((argv) => (argv[1]?.endsWith('k3s-install.sh') ? { exitCode: 1, stderr: `[ERROR] bad token ${secrets[0]}` } : undefined));
  const e = await install([], io().io, deps(fresh.root, r3, booted, env, fresh.bundle)).catch((x: Error) => x);
  t.match(e, { message: /bad token <redacted>/ });
  t.same(leaks(String((e as Error).message)), []);
});

t.test('uninstall --dry-run [--json] shows what would be undone; a later --k3s still finds k3s', async (t) => {
  const { root, bundle, facts, runner: r } = await installed(t, 'ubuntu2204');
  const before = await tree(root);
  const dry = new RecordingRunner(root);
  const o = io();
  t.equal(await uninstall(['--dry-run'], o.io, deps(root, dry, facts, {}, bundle)), 0);
  const text = o.out.join('');
  t.match(text, /^\[agent\.service\] the agent service \(systemd\)\n {8}run {5}systemctl disable --now kinglet-agent\.service\n {8}run {5}\S+node \S+kinglet\.ts agent --cleanup .*\n {8}remove {2}\/etc\/systemd\/system\/kinglet-agent\.service\n/m);
  t.match(text, /kept: k3s\.install \(pass --k3s to undo it too\)\n$/);
  const oj = io();
  t.equal(await uninstall(['--dry-run', '--json', '--k3s'], oj.io, deps(root, dry, facts, {}, bundle)), 0);
  const plan = JSON.parse(oj.out.join('')) as { undo: { id: string; undo: { kind: string; argv?: string[] }[] }[]; kept: string[] };
  t.same(plan.kept, []);
  t.same(plan.undo.find((u) => u.id === 'k3s.install')?.undo[0], { kind: 'run', argv: ['/usr/local/bin/k3s-uninstall.sh'] });
  t.same(dry.calls, [], 'a dry run runs nothing');
  t.same(await tree(root), before, 'and changes nothing');

  t.equal(await uninstall([], io().io, deps(root, new RecordingRunner(root), facts, {}, bundle)), 0);
  const later = new RecordingRunner(root);
  t.equal(await uninstall(['--k3s'], io().io, deps(root, later, facts, {}, bundle)), 0);
  t.same(later.lines(), ['/usr/local/bin/k3s-uninstall.sh'], 'k3s removed by a later --k3s run');
  await t.rejects(stat(join(root, 'var/lib/kinglet')), 'nothing recorded any more');
  const empty = io();
  t.equal(await uninstall(['--dry-run'], empty.io, deps(root, later, facts, {}, bundle)), 0);
  t.match(empty.out.join(''), /nothing to undo/);
});

t.test("uninstall: a failed datapath cleanup is an error with its fix, and a re-run retries it", async (t) => {
  const { root, bundle, facts, runner: r } = await installed(t, 'ubuntu2204');
  const r2 = new RecordingRunner(root);
  r2.handlers.push((argv) => (argv.includes('--cleanup') ? { exitCode: 1, stderr: 'error: cannot detach tc filter from eth0' } : undefined));
  const o = io();
  t.equal(await uninstall([], o.io, deps(root, r2, facts, {}, bundle)), 1);
  t.match(o.out.join(''), /error: the agent's datapath cleanup failed: .*\nfix: run `\S+node \S+kinglet\.ts agent --cleanup --bpf-root \/sys\/fs\/bpf\/kinglet --state-dir \/var\/lib\/kinglet\/agent` and read its error/);
  t.match(o.err.join(''), /warn: .*--cleanup.* exited 1 \(error: cannot detach tc filter from eth0\)/);
  await t.rejects(stat(join(root, 'etc/systemd/system/kinglet-agent.service')), 'the rest is undone all the same');
  t.same((await loadState(root)).steps.map((x) => x.id), ['k3s.install', 'agent.service'], 'the agent record stays for a re-run');

  // The re-run retries the cleanup; pins left behind (a cleanup that "succeeded" but left them) are an error too.
  await mkdir(join(root, 'sys/fs/bpf/kinglet'), { recursive: true });
  const r3 = new RecordingRunner(root);
  const o3 = io();
  t.equal(await uninstall(['--json'], o3.io, deps(root, r3, facts, {}, bundle)), 1);
  t.ok(r3.lines().some((l) => l.includes('--cleanup')), 'cleanup retried');
  t.match(JSON.parse(o3.out.join('')).problems[0].message, /pinned maps are still in \/sys\/fs\/bpf\/kinglet/);
  await rm(join(root, 'sys'), { recursive: true });
  t.equal(await uninstall([], io().io, deps(root, new RecordingRunner(root), facts, {}, bundle)), 0, 'clean once the datapath is gone');
  t.same((await loadState(root)).steps.map((x) => x.id), ['k3s.install']);
});

t.test('a refused install says every problem with its fix, and changes nothing', async (t) => {
  const { root, bundle } = await scratch(t);
  const before = await tree(root);
  const deb = await fixture('debian12');
  const facts = { ...deb, portsInUse: [6443], commands: deb.commands.filter((c) => c !== 'ip') };
  const r = new RecordingRunner(root);
  await t.rejects(install([], io().io, deps(root, r, facts, {}, bundle)),
    /^cannot install on this host:\niproute2 \(`ip`\) is missing.*\n {2}fix: apt-get install -y iproute2\nTCP port 6443 is in use and k3s needs it\n {2}fix: stop what listens there .*\nfix: nothing was changed; fix the above and re-run$/);
  t.same(r.calls, [], 'nothing ran');
  t.same(await tree(root), before, 'nothing written');
});

t.test('a second apply is a no-op on every reference host', async (t) => {
  const cases: [string, Record<string, string>][] = [
    ['ubuntu2204', {}], ['debian12', { K3S_URL: 'https://10.0.0.1:6443', K3S_TOKEN: TOKEN }], ['rocky9', {}], ['rhel8', {}], ['alpine', {}],
  ];
  for (const [name, env] of cases) {
    const { root, bundle } = await scratch(t);
    const facts = await fixture(name);
    const r1 = new RecordingRunner(root);
    simulateHost(r1);
    const o1 = io();
    t.equal(await install([], o1.io, deps(root, r1, facts, env, bundle)), 0, `${name}: ${o1.err.join('')}`);
    const after = await tree(root);
    const r2 = new RecordingRunner(root);
    simulateHost(r2);
    const o2 = io();
    t.equal(await install([], o2.io, deps(root, r2, facts, env, bundle)), 0);
    t.same(await tree(root), after, `${name}: no file changes`);
    t.same(r2.lines().filter((l) => !/kubectl|kinglet\.ts (kernel check|kernel probe|status|connectivity test)( |$)/.test(l)), [], `${name}: only read-only probes run`);
    t.match(o2.out.join(''), /done \(0 step\(s\) applied, \d+ already done\)/);
  }
});

t.test('a run cut in the k3s phase resumes there: done steps are not repeated', async (t) => {
  const { root, bundle } = await scratch(t);
  const facts = await fixture('rhel8');
  const r1 = new RecordingRunner(root);
  r1.handlers.push((argv) => (argv[1]?.endsWith('k3s-install.sh') ? { exitCode: 1, stderr: '[ERROR] Download failed' } : undefined));
  await t.rejects(install([], io().io, deps(root, r1, facts, {}, bundle)), /install and start k3s \(server\): `sh \/var\/lib\/kinglet\/k3s-install\.sh` exited 1:\n\[ERROR\] Download failed\nfix: fix the cause above and re-run: steps already done are skipped/);
  t.ok(r1.lines().includes('mount -t bpf bpffs /sys/fs/bpf'));
  const r2 = new RecordingRunner(root);
  simulateHost(r2);
  t.equal(await install([], io().io, deps(root, r2, facts, {}, bundle)), 0);
  t.notOk(r2.lines().some((l) => l.startsWith('mount ') || l.startsWith('curl ')), 'bpffs and the script download are not repeated');
  t.ok(r2.lines().some((l) => l.endsWith('k3s-install.sh')), 'k3s install retried');
  t.ok(r2.lines().includes('systemctl enable --now kinglet-agent.service'), 'and the rest done');
  t.equal((await loadState(root)).completed, true);
});

t.test("CNI dirs: read from the containerd config k3s writes when it starts, never assumed", async (t) => {
  // The host had an older config (say, from a previous k3s); the one k3s writes now wins.
  const { root, bundle } = await scratch(t);
  const facts = { ...(await fixture('ubuntu2204')), k3s: { installed: true, active: true, containerdConfig: 'version = 2\n[plugins."io.containerd.grpc.v1.cri".cni]\n  bin_dir = "/opt/cni/bin"\n  conf_dir = "/etc/cni/net.d"\n' } };
  const r = new RecordingRunner(root);
  simulateHost(r);
  t.equal(await install([], io().io, deps(root, r, facts, {}, bundle)), 0);
  const files = await tree(root);
  t.ok(files['/var/lib/rancher/k3s/data/cni-test/kinglet-cni'], 'plugin where the new config says');
  t.ok(files['/var/lib/rancher/k3s/agent/etc/cni/net.d/05-kinglet.conflist']);
  t.notOk(Object.keys(files).some((p) => p.startsWith('/opt/cni') || p.startsWith('/etc/cni')), 'nothing where the old one said');

  // k3s skipped and no config: refuse rather than guess, writing no CNI file.
  const bare = await scratch(t);
  const r2 = new RecordingRunner(bare.root);
  await t.rejects(install([], io().io, deps(bare.root, r2, await fixture('ubuntu2204'), { KINGLET_SKIP: 'k3s' }, bare.bundle)),
    /k3s's containerd config \(\/var\/lib\/rancher\/k3s\/agent\/etc\/containerd\/config\.toml\) is missing.*\nfix: start k3s once \(it writes that file\), or drop k3s from KINGLET_SKIP/s);
  t.notOk(Object.keys(await tree(bare.root)).some((p) => p.includes('cni')), 'no CNI file written');
});

t.test('kernel upgrade: --json plans and outcomes; EL7 without a mirror or RPMs refuses with that advice', async (t) => {
  const { root, bundle } = await scratch(t);
  const c7 = await fixture('centos7-bios');
  const r = new RecordingRunner(root);
  const o = io();
  t.equal(await kernelUpgrade(['--dry-run', '--json'], o.io, deps(root, r, c7, {}, bundle)), 1, 'a plan with errors exits 1');
  const plan = JSON.parse(o.out.join('')) as { phases: { phase: string; problems: { message: string; fix: string }[]; steps: unknown[] }[] };
  t.same(plan.phases.map((p) => p.phase), ['kernel']);
  t.match(plan.phases[0]!.problems[0], { message: /ELRepo no longer serves EL7 kernels/, fix: /KINGLET_KERNEL_MIRROR.*KINGLET_KERNEL_RPM_DIR/ });
  await t.rejects(kernelUpgrade([], io().io, deps(root, r, c7, {}, bundle)), /ELRepo no longer serves EL7 kernels.*\n {2}fix: set KINGLET_KERNEL_MIRROR/s);
  t.same(r.calls, [], 'nothing ran');

  const ok = io();
  t.equal(await kernelUpgrade(['--dry-run', '--json'], ok.io, deps(root, r, c7, { KINGLET_KERNEL_RPM_DIR: '/srv/rpms' }, bundle)), 0);
  t.same((JSON.parse(ok.out.join('')) as typeof plan).phases[0]!.steps.map((s) => (s as { id: string }).id), ['kernel.install', 'kernel.default', 'kernel.verify-default', 'kernel.stop']);
  const rocky = io();
  t.equal(await kernelUpgrade(['--json'], rocky.io, deps(root, r, await fixture('rocky9'), {}, bundle)), 0);
  t.same(JSON.parse(rocky.out.join('')), { status: 'done', applied: 0, skipped: 0 }, 'a current kernel: nothing to do');
});

t.test('a damaged state file is a clear error with its fix, for install and uninstall alike', async (t) => {
  const { root, bundle } = await scratch(t);
  const facts = await fixture('ubuntu2204');
  await mkdir(join(root, 'var/lib/kinglet'), { recursive: true });
  await writeFile(join(root, 'var/lib/kinglet/state.json'), '{"version": 1, "steps": [{"id": "k3s.ins');
  for (const run of [() => install([], io().io, deps(root, new RecordingRunner(root), facts, {}, bundle)), () => uninstall([], io().io, deps(root, new RecordingRunner(root), facts, {}, bundle)), () => uninstall(['--dry-run'], io().io, deps(root, new RecordingRunner(root), facts, {}, bundle))]) {
    await t.rejects(run(), { name: 'CommandError', message: /\/var\/lib\/kinglet\/state\.json is damaged \(.*JSON.*\).*\nfix: move it aside \(mv \/var\/lib\/kinglet\/state\.json \/var\/lib\/kinglet\/state\.json\.damaged\)/ });
  }
  t.equal(await readFile(join(root, 'var/lib/kinglet/state.json'), 'utf8'), '{"version": 1, "steps": [{"id": "k3s.ins', 'left as it was');
});

t.test('config lines are edited by replacing the file whole, through a symlink, keeping its mode', async (t) => {
  const { root, bundle } = await scratch(t);
  const facts = await fixture('alpine');
  // /etc/fstab as a link to the real file, mode 0600.
  await writeFile(join(root, 'etc/fstab.real'), '/dev/sda1 / ext4 defaults 0 1\n', { mode: 0o600 });
  await rm(join(root, 'etc/fstab'));
  await symlink('fstab.real', join(root, 'etc/fstab'));
  const r = new RecordingRunner(root);
  simulateHost(r);
  t.equal(await install([], io().io, deps(root, r, facts, {}, bundle)), 0);
  t.ok((await lstat(join(root, 'etc/fstab'))).isSymbolicLink(), 'the link stays a link');
  t.match(await readFile(join(root, 'etc/fstab.real'), 'utf8'), /^\/dev\/sda1 .*\nbpffs \/sys\/fs\/bpf bpf /);
  t.equal((await stat(join(root, 'etc/fstab.real'))).mode & 0o777, 0o600);
  t.same((await readdir(join(root, 'etc'))).filter((n) => n.includes('kinglet-new')), [], 'no temporary file left');
  t.equal(await uninstall([], io().io, deps(root, new RecordingRunner(root), facts, {}, bundle)), 0);
  t.equal(await readFile(join(root, 'etc/fstab.real'), 'utf8'), '/dev/sda1 / ext4 defaults 0 1\n');
});

t.test('not root: real runs refuse up front, saying how; dry runs work', async (t) => {
  const { root, bundle } = await scratch(t);
  const facts = await fixture('ubuntu2204');
  const r = new RecordingRunner(root);
  const user = { ...deps(root, r, facts, {}, bundle), isRoot: false };
  await t.rejects(install([], io().io, user), { name: 'CommandError', message: /^kinglet install installs and removes system services, mounts and files: run it as root \(sudo kinglet install \.\.\.\), or add --dry-run/ });
  await t.rejects(kernelUpgrade([], io().io, user), /run it as root \(sudo kinglet kernel upgrade \.\.\.\)/);
  await t.rejects(uninstall([], io().io, user), /run it as root \(sudo kinglet uninstall \.\.\.\)/);
  t.equal(await install(['--dry-run'], io().io, user), 0);
  t.equal(await uninstall(['--dry-run'], io().io, user), 0);
  t.same(r.calls, []);
});

t.test('file system errors during an apply name their fix', async (t) => {
  const { guard } = await import('../../../installer/cli.ts');
  const fsError = (code: string) => Promise.reject(Object.assign(new Error(`${code}: something, open '/etc/fstab'`), { code }));
  await t.rejects(guard(() => fsError('EROFS')), { name: 'CommandError', message: /EROFS: .*\nfix: the file system is mounted read-only: remount it read-write/ });
  await t.rejects(guard(() => fsError('ENOSPC')), { name: 'CommandError', message: /\nfix: free some disk space and re-run/ });
  await t.rejects(guard(() => fsError('EACCES')), { name: 'CommandError', message: /\nfix: run it as root/ });
  await t.rejects(guard(() => Promise.reject(new TypeError('a bug'))), { name: 'TypeError' }, 'anything else stays a bug');
});

t.test("the installer's download: bytes so far in the lines of a log, a line redrawn in place on a terminal", async (t) => {
  for (const tty of [false, true]) {
    const { root, bundle } = await scratch(t);
    const facts = await fixture('ubuntu2204');
    const clock = new FakeClock();
    const r = new RecordingRunner(root);
    r.handlers.push(async (argv, base) => {
      if (argv[0] !== 'curl') return undefined;
      // The script arrives in two halves, 20s apart.
      const out = join(base, argv[argv.indexOf('-o') + 1]!);
      await mkdir(dirname(out), { recursive: true });
      await writeFile(out, 'x'.repeat(1536));
      clock.advance(20_000);
      await writeFile(out, 'x'.repeat(3 * 1048576));
      clock.advance(2_000);
      return { exitCode: 0 };
    });
    simulateHost(r);
    const o = io();
    t.equal(await install([], o.io, { ...deps(root, r, facts, {}, bundle, clock), tty }), 0, o.err.join(''));
    const log = o.err.join('');
    if (tty) {
      t.match(log, "\r\x1b[2K    downloading: 1.5 KiB (1s)\r\x1b[2K    downloading: 1.5 KiB (2s)", 'redrawn every second');
      t.match(log, "\r\x1b[2K    downloading: 1.5 KiB (20s)\r\x1b[2K    downloading: 3.0 MiB (21s)\r\x1b[2K    downloading: 3.0 MiB (22s)\r\x1b[2K    3.0 MiB in 22s\n", 'then cleared, and the total');
      t.notMatch(log, /still running: download/);
    } else {
      t.match(log, /\n {4}still running: download k3s's install script from https:\/\/get\.k3s\.io \(15s, 1\.5 KiB so far\)\n {4}3\.0 MiB in 22s\n/);
      t.notMatch(log, /\x1b|\r/, 'no terminal control in a log');
    }
  }
});
