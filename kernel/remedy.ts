// What to do about a kernel below the minimum, per distribution. Pure.
// On EL7/8/9 the answer is the ELRepo upgrade that `kinglet kernel upgrade`
// runs; elsewhere it is the distribution's own newer kernel package.
import type { Distro } from './os-release.ts';
import type { EffectiveKernel } from './version.ts';

export type RemedyKind = 'elrepo' | 'distro-package' | 'os-upgrade' | 'wsl' | 'generic';

export interface Remedy {
  kind: RemedyKind;
  /** One line for people. */
  summary: string;
  /** Package names that carry a new enough kernel. */
  packages: string[];
  /** Commands an operator could run by hand, in order (root). */
  commands: string[];
  /** The kinglet command that does it, when there is one. */
  kingletCommand?: string;
  notes: string[];
}

export const KERNEL_UPGRADE_COMMAND = 'kinglet kernel upgrade';

const DEBIAN_CODENAMES: Record<string, string> = {
  '7': 'wheezy',
  '8': 'jessie',
  '9': 'stretch',
  '10': 'buster',
  '11': 'bullseye',
  '12': 'bookworm',
  '13': 'trixie',
};

const UBUNTU_VERSIONS: Record<string, string> = {
  trusty: '14.04',
  xenial: '16.04',
  bionic: '18.04',
  focal: '20.04',
  jammy: '22.04',
  noble: '24.04',
};

function elMajor(distro: Distro, kernel: EffectiveKernel): number | undefined {
  const m = /^el(\d+)$/.exec(distro.family);
  if (m) return Number(m[1]);
  if (distro.family === 'el' || distro.family === 'unknown') return kernel.el;
  return undefined;
}

/** A newer kernel from the distribution's own packages: install, then reboot. */
function distroPackage(summary: string, packages: string[], commands: string[]): Remedy {
  return { kind: 'distro-package', summary, packages, commands: [...commands, 'reboot'], notes: [] };
}

/** Fedora, EL10+, Amazon Linux 2023: the distribution's kernel through dnf. */
const dnfKernelRemedy = (): Remedy =>
  distroPackage('update the kernel package (dnf upgrade --refresh kernel) and reboot', ['kernel'], ['dnf upgrade -y --refresh kernel']);

/** ELRepo (EL7/8/9), through `kinglet kernel upgrade`. */
export function elrepoRemedy(el: number): Remedy {
  const pm = el >= 8 ? 'dnf' : 'yum';
  const releaseRpm = `https://www.elrepo.org/elrepo-release-${el}.el${el}.elrepo.noarch.rpm`;
  const remedy: Remedy = {
    kind: 'elrepo',
    summary:
      `run \`${KERNEL_UPGRADE_COMMAND}\`: it installs ELRepo's kernel-lt (long-term; kernel-ml is mainline) ` +
      `for EL${el}, makes it the default boot entry and reboots`,
    packages: ['kernel-lt', 'kernel-ml'],
    commands: [],
    kingletCommand: KERNEL_UPGRADE_COMMAND,
    notes: [],
  };
  if (el === 7) {
    remedy.summary +=
      "; ELRepo's el7 archive is gone, so EL7 needs a mirror that still carries the el7 kernel-lt (5.4) packages " +
      '(KINGLET_KERNEL_MIRROR=<yum repository URL>, or KINGLET_KERNEL_RPM_DIR=<directory of the RPMs>)';
    remedy.notes.push(
      "ELRepo removed its el7 repository after EL7's end of life: point the upgrade at a mirror of it " +
        '(KINGLET_KERNEL_MIRROR) or at local RPMs (KINGLET_KERNEL_RPM_DIR)',
    );
    remedy.commands.push(
      `${pm} --enablerepo=elrepo-kernel install -y kernel-lt   # elrepo-kernel pointed at an el7 mirror`,
      'grub2-set-default 0',
      'reboot',
    );
  } else {
    remedy.commands.push(
      `${pm} install -y ${releaseRpm}`,
      `${pm} --enablerepo=elrepo-kernel install -y kernel-lt`,
      'grubby --set-default /boot/vmlinuz-<the kernel-lt version just installed>',
      'reboot',
    );
  }
  return remedy;
}

function wslRemedy(kernel: EffectiveKernel): Remedy {
  if (kernel.vendor === 'wsl1') {
    return {
      kind: 'wsl',
      summary: 'WSL 1 has no Linux kernel: convert the distribution to WSL 2 (in Windows: wsl --set-version <distro> 2)',
      packages: [],
      commands: ['wsl --set-version <distro> 2   # in Windows PowerShell', 'wsl --update'],
      notes: [],
    };
  }
  return {
    kind: 'wsl',
    summary: 'update the WSL 2 kernel from Windows: wsl --update, then wsl --shutdown and start the distribution again',
    packages: [],
    commands: ['wsl --update   # in Windows PowerShell', 'wsl --shutdown'],
    notes: [],
  };
}

function debianRemedy(distro: Distro, kernel: EffectiveKernel): Remedy {
  const flavour = kernel.vendor === 'debian' && kernel.flavour ? kernel.flavour : 'amd64';
  const pkg = `linux-image-${flavour}`;
  const major = distro.versionId === undefined ? undefined : Number(/^(\d+)/.exec(distro.versionId)?.[1]);
  const codename = distro.versionCodename ?? (major === undefined ? undefined : DEBIAN_CODENAMES[String(major)]);
  if (major !== undefined && major <= 7) {
    return {
      kind: 'os-upgrade',
      summary: `Debian ${distro.versionId} has no kernel >= 4.9 even in its backports: upgrade to a current Debian release`,
      packages: [pkg],
      commands: [],
      notes: [],
    };
  }
  const suite = codename ? `${codename}-backports` : 'the release backports';
  const remedy: Remedy = {
    kind: 'distro-package',
    summary: `install ${pkg} from ${suite} and reboot, or upgrade to a newer Debian release`,
    packages: [pkg],
    commands: codename
      ? [`apt-get update`, `apt-get install -t ${codename}-backports ${pkg}`, 'reboot']
      : [`apt-get update`, `apt-get install ${pkg}`, 'reboot'],
    notes: [],
  };
  if (major !== undefined && major <= 8) {
    remedy.summary += ` (${codename ?? `Debian ${major}`} is archived: its backports are on archive.debian.org)`;
    remedy.notes.push(`${codename ?? `Debian ${major}`} and its backports moved to archive.debian.org`);
  }
  return remedy;
}

function raspberryPiRemedy(): Remedy {
  return distroPackage('update the Raspberry Pi OS kernel: apt update && apt full-upgrade (raspberrypi-kernel, or linux-image-rpi-* from bookworm on), then reboot', ['raspberrypi-kernel'], ['apt update', 'apt full-upgrade']);
}

function ubuntuRemedy(distro: Distro, kernel: EffectiveKernel): Remedy {
  const version =
    distro.id === 'ubuntu' ? distro.versionId : distro.ubuntuCodename ? UBUNTU_VERSIONS[distro.ubuntuCodename] : undefined;
  const m = version === undefined ? null : /^(\d+)\.(\d+)/.exec(version);
  const year = m ? Number(m[1]) : undefined;
  const month = m ? Number(m[2]) : undefined;
  const flavour = kernel.flavour === 'lowlatency' ? 'lowlatency' : 'generic';
  if (year !== undefined && year < 16) {
    return {
      kind: 'os-upgrade',
      summary:
        `Ubuntu ${version}'s newest kernel (4.4, linux-generic-lts-xenial) is below the minimum: ` +
        'upgrade the release (do-release-upgrade) to 18.04 or later, or to 16.04 with linux-generic-hwe-16.04',
      packages: ['linux-generic-hwe-16.04'],
      commands: ['do-release-upgrade'],
      notes: [],
    };
  }
  if (year !== undefined && month === 4 && year % 2 === 0) {
    const pkg = `linux-${flavour}-hwe-${version}`;
    return {
      kind: 'distro-package',
      summary: `install the hardware enablement kernel ${pkg} (apt-get install --install-recommends ${pkg}) and reboot`,
      packages: [pkg],
      commands: ['apt-get update', `apt-get install --install-recommends ${pkg}`, 'reboot'],
      notes: [],
    };
  }
  return {
    kind: 'os-upgrade',
    summary:
      `upgrade to a current Ubuntu LTS release (do-release-upgrade) and its kernel (linux-${flavour}), ` +
      `or install linux-${flavour}-hwe-<LTS version> on an LTS release`,
    packages: [`linux-${flavour}`],
    commands: ['do-release-upgrade'],
    notes: [],
  };
}

function alpineRemedy(kernel: EffectiveKernel): Remedy {
  const pkg = kernel.vendor === 'alpine' && kernel.flavour === 'virt' ? 'linux-virt' : 'linux-lts';
  return {
    kind: 'distro-package',
    summary:
      `install ${pkg} (apk update && apk add ${pkg}) and reboot; on an old Alpine branch first move ` +
      '/etc/apk/repositories to a current one and apk upgrade --available',
    packages: [pkg],
    commands: ['apk update', `apk add ${pkg}`, 'reboot'],
    notes: [],
  };
}

function amazonRemedy(distro: Distro, kernel: EffectiveKernel): Remedy {
  const generation = distro.family === 'amzn' ? distro.versionId : kernel.amzn;
  if (generation === '2') {
    return distroPackage('install a newer kernel through amazon-linux-extras (amazon-linux-extras install kernel-5.10) and reboot', ['kernel-5.10'], ['amazon-linux-extras install -y kernel-5.10']);
  }
  if (generation === '2023') {
    return dnfKernelRemedy();
  }
  return distroPackage('update the kernel package (yum update kernel) and reboot, or move to Amazon Linux 2023', ['kernel'], ['yum update -y kernel']);
}

/** Generic advice, for distributions this file does not know. */
export function genericRemedy(minimum: string): Remedy {
  return {
    kind: 'generic',
    summary:
      `install a kernel >= ${minimum} (preferably a current long-term series) from your distribution, ` +
      'or build one from kernel.org, boot it, and run kinglet kernel check again',
    packages: [],
    commands: [],
    notes: [],
  };
}

/** The remedy for a kernel below `minimum` on `distro`. */
export function kernelRemedy(distro: Distro, kernel: EffectiveKernel, minimum: string): Remedy {
  if (kernel.vendor === 'wsl1' || kernel.vendor === 'wsl2') return wslRemedy(kernel);
  const el = elMajor(distro, kernel);
  if (el !== undefined) {
    if (el >= 7 && el <= 9) return elrepoRemedy(el);
    if (el < 7) {
      return {
        kind: 'os-upgrade',
        summary:
          `EL${el} is out of reach: ELRepo no longer ships EL${el} kernels and \`${KERNEL_UPGRADE_COMMAND}\` ` +
          'handles EL7/8/9 only; reinstall the node with EL8 or later',
        packages: [],
        commands: [],
        notes: [],
      };
    }
    return dnfKernelRemedy();
  }
  if (distro.family === 'raspbian' || kernel.vendor === 'raspberrypi') return raspberryPiRemedy();
  switch (distro.family) {
    case 'debian':
      return debianRemedy(distro, kernel);
    case 'ubuntu':
      return ubuntuRemedy(distro, kernel);
    case 'alpine':
      return alpineRemedy(kernel);
    case 'amzn':
      return amazonRemedy(distro, kernel);
    case 'fedora':
      return dnfKernelRemedy();
    case 'suse':
      return distroPackage('update kernel-default (zypper update kernel-default) and reboot; SLES 12 kernels are 4.4-based, so move to SLES 15 or later', ['kernel-default'], ['zypper refresh', 'zypper update kernel-default']);
    case 'arch':
      return distroPackage('update the kernel (pacman -Syu linux, or linux-lts) and reboot', ['linux', 'linux-lts'], ['pacman -Syu linux']);
    default:
      return genericRemedy(minimum);
  }
}
