// The kernel upgrade runbook, as a pure planner: from host facts and the
// operator's choices to the concrete steps that put a newer kernel in place
// and make it the boot default. Enterprise Linux 7/8/9 get ELRepo's
// kernel-lt (or kernel-ml); other distributions get told which package to
// install. Rebooting, and resuming afterwards, is the caller's business
// (installer/phases.ts), so `kinglet kernel upgrade` and `kinglet install`
// share this.
import type { HostFacts } from '../installer/facts.ts';
import { elMajor, has, kernelVerdict } from '../installer/facts.ts';
import type { Problem, Step } from '../installer/steps.ts';

export interface UpgradeOptions {
  channel: 'lt' | 'ml';
  /** Base URL of ELRepo's site (keys, elrepo-release RPMs). */
  elrepoUrl: string;
  /** Base URL of a yum repository serving kernel-lt/kernel-ml RPMs (EL7). */
  mirror?: string;
  /** Directory of local kernel RPMs (EL7). */
  rpmDir?: string;
}

export interface UpgradePlan {
  /** Nothing to do: the running kernel is new enough. */
  current: boolean;
  /** Steps ran and a reboot into the new kernel is due afterwards. */
  needsReboot: boolean;
  steps: Step[];
  notes: string[];
  problems: Problem[];
}

/** Where a distribution gets a newer kernel, for the non-EL advice. */
export function newerKernelAdvice(f: HostFacts): string {
  const ids = [f.os.id, ...f.os.idLike];
  if (ids.includes('ubuntu')) return `install an HWE kernel: apt-get install linux-generic-hwe-${f.os.versionId}, then reboot`;
  if (ids.includes('debian')) return 'install a newer kernel from backports: apt-get install -t <codename>-backports linux-image-' + (f.arch === 'aarch64' ? 'arm64' : 'amd64') + ', then reboot';
  if (ids.includes('alpine')) return 'install the LTS kernel: apk add linux-lts, then reboot';
  if (ids.includes('suse') || ids.includes('opensuse')) return 'install kernel-default from a current Leap/SLES service pack, then reboot';
  if (ids.includes('fedora')) return 'dnf upgrade kernel, then reboot';
  return `install a kernel >= ${kernelVerdict(f).minimum} from your distribution, then reboot`;
}

const KEY_V1 = 'RPM-GPG-KEY-elrepo.org';
// ELRepo signs its EL9 packages with a second (SHA-256) key.
const KEY_V2 = 'RPM-GPG-KEY-v2-elrepo.org';

function grubCfgPath(f: HostFacts, el: number): string {
  if (f.firmware === 'uefi' && el < 9) return `/boot/efi/EFI/${f.efiVendor ?? f.os.id}/grub.cfg`;
  // BIOS; and on EL9 UEFI the vendor grub.cfg only forwards to this one.
  return '/boot/grub2/grub.cfg';
}

export function planKernelUpgrade(f: HostFacts, o: UpgradeOptions): UpgradePlan {
  const v = kernelVerdict(f);
  const plan: UpgradePlan = { current: v.ok, needsReboot: false, steps: [], notes: [], problems: [] };
  if (v.ok) {
    plan.notes.push(`kernel ${v.release} meets the minimum ${v.minimum}: no upgrade`);
    return plan;
  }
  const el = elMajor(f);
  if (el === undefined) {
    plan.problems.push({
      severity: 'fatal',
      message: `kernel ${v.release} is older than ${v.minimum} and kinglet only automates kernel upgrades on CentOS/RHEL/Rocky/Alma 7-9`,
      fix: newerKernelAdvice(f),
    });
    return plan;
  }
  const pkg = `kernel-${o.channel}`;
  const pm = el === 7 ? 'yum' : 'dnf';
  const keyName = el >= 9 ? KEY_V2 : KEY_V1;
  if (el === 7) {
    // ELRepo stopped serving el7 kernels after EL7's end of life; only a
    // mirror (an archive of them) or local RPMs can provide one.
    if (!o.mirror && !o.rpmDir) {
      plan.problems.push({
        severity: 'fatal',
        message: `ELRepo no longer serves EL7 kernels, so ${pkg} cannot be installed from it`,
        fix: `set KINGLET_KERNEL_MIRROR to the base URL of a yum repository holding ${pkg} for el7 (an ELRepo archive mirror), or KINGLET_KERNEL_RPM_DIR to a directory holding the ${pkg} RPMs, and re-run`,
      });
      return plan;
    }
    plan.notes.push(`kernel ${v.release} is older than ${v.minimum}: installing ${pkg} on EL7 from ${o.rpmDir ?? o.mirror}`);
    if (o.rpmDir) {
      plan.steps.push({
        id: 'kernel.install', title: `install ${pkg} from the local RPMs in ${o.rpmDir}`, kind: 'run',
        argv: ['sh', '-c', `set -- "$0"/${pkg}-[0-9]*.rpm; [ -e "$1" ] || { echo "no ${pkg} RPM in $0" >&2; exit 1; }; exec yum localinstall -y "$@"`, o.rpmDir],
      });
    } else {
      plan.steps.push(
        {
          id: 'kernel.key', title: 'import the kernel repository signing key', kind: 'run',
          argv: ['rpm', '--import', `${o.mirror}/${KEY_V1}`],
        },
        {
          id: 'kernel.repo', title: 'add the kernel mirror as a yum repository', kind: 'file',
          path: '/etc/yum.repos.d/kinglet-kernel.repo', mode: 0o644,
          content: [
            '# Written by kinglet: kernel packages for EL7 from a mirror.',
            '[kinglet-kernel]',
            'name=kinglet kernel mirror',
            `baseurl=${o.mirror}`,
            'enabled=0',
            'gpgcheck=1',
            `gpgkey=${o.mirror}/${KEY_V1}`,
            '',
          ].join('\n'),
        },
        {
          id: 'kernel.install', title: `install ${pkg} from the mirror`, kind: 'run',
          argv: ['yum', '--disablerepo=*', '--enablerepo=kinglet-kernel', 'install', '-y', pkg],
        },
      );
    }
  } else {
    plan.notes.push(`kernel ${v.release} is older than ${v.minimum}: installing ELRepo ${pkg} on EL${el}`);
    plan.steps.push(
      {
        id: 'kernel.key', title: "import ELRepo's signing key", kind: 'run',
        argv: ['rpm', '--import', `${o.elrepoUrl}/${keyName}`],
      },
      {
        id: 'kernel.elrepo-release', title: `install elrepo-release for EL${el}`, kind: 'run',
        argv: [pm, 'install', '-y', `${o.elrepoUrl}/elrepo-release-${el}.el${el}.elrepo.noarch.rpm`],
        undo: [pm, 'remove', '-y', 'elrepo-release'],
      },
      {
        id: 'kernel.install', title: `install ${pkg} from elrepo-kernel`, kind: 'run',
        argv: [pm, '--enablerepo=elrepo-kernel', 'install', '-y', pkg],
      },
    );
  }

  // The newest installed kernel of the channel ("<version>-<release>.<arch>", as in /boot/vmlinuz-*),
  // into $k; the package name is the script's $0. Empty when none is installed.
  const newest = `q=$(rpm -q --qf '%{VERSION}-%{RELEASE}.%{ARCH}\\n' "$0") || q=; k=$(printf '%s\\n' "$q" | sort -V | tail -n 1)`;
  if (has(f, 'grubby')) {
    plan.steps.push(
      {
        id: 'kernel.default', title: `make the new ${pkg} the default boot entry (grubby)`, kind: 'run',
        argv: ['sh', '-c', `${newest}; [ -n "$k" ] || { echo "no $0 is installed" >&2; exit 1; }; exec grubby --set-default "/boot/vmlinuz-$k"`, pkg],
      },
      {
        // Not "some ELRepo kernel": exactly the newest one just installed, before any reboot.
        id: 'kernel.verify-default', title: `verify the default boot entry is the new ${pkg}`, kind: 'check',
        argv: ['sh', '-c', `${newest}; d=$(grubby --default-kernel); echo "boot default: $d; newest $0: \${k:-none}"; [ -n "$k" ] && [ "$d" = "/boot/vmlinuz-$k" ]`, pkg],
        fix: `set it by hand: grubby --set-default /boot/vmlinuz-<newest ${pkg} version from rpm -q ${pkg}>, check with grubby --default-kernel, then reboot`,
      },
    );
  } else {
    const cfg = grubCfgPath(f, el);
    plan.steps.push(
      {
        id: 'kernel.grub-default', title: 'boot the first (newest) menu entry by default', kind: 'line',
        path: '/etc/default/grub', line: 'GRUB_DEFAULT=0', replace: '^GRUB_DEFAULT=.*',
      },
      {
        id: 'kernel.grub-mkconfig', title: `regenerate ${cfg} (${f.firmware.toUpperCase()})`, kind: 'run',
        argv: ['grub2-mkconfig', '-o', cfg],
      },
      {
        id: 'kernel.verify-default', title: `verify the first menu entry is the new ${pkg}`, kind: 'check',
        argv: ['sh', '-c', `${newest}; e=$(grep -m1 '^menuentry ' "$1"); echo "first entry: $e; newest $0: \${k:-none}"; [ -n "$k" ] && case $e in *"($k)"*) ;; *) exit 1 ;; esac`, pkg, cfg],
        fix: `the first entry of ${cfg} is not the newest ${pkg} (rpm -q ${pkg}): pick it with grub2-set-default, regenerate ${cfg} with grub2-mkconfig, then reboot`,
      },
    );
  }
  plan.needsReboot = true;
  return plan;
}
