/* IMPORTANT
 * This snapshot file is auto-generated, but designed for humans.
 * It should be checked into source control and tracked carefully.
 * Re-generate by setting TAP_SNAPSHOT=1 and running tests.
 * Make sure to inspect the output below.  Do not ignore changes!
 */
'use strict'
exports[`test/unit/installer/plan.test.ts > TAP > air-gapped k3s: local script, binary and images > air-gapped k3s phase 1`] = `
== k3s
  note  k3s server with flannel, its network policy controller and kube-proxy disabled: kinglet does all three
  [k3s.script] k3s's install script (local copy)
        copy    /media/k3s/install.sh -> /var/lib/kinglet/k3s-install.sh (0700)
  [k3s.binary] the k3s binary (air-gapped)
        copy    /media/k3s/k3s-arm64 -> /usr/local/bin/k3s (0755)
  [k3s.images-dir] k3s image import directory
        dir     /var/lib/rancher/k3s/agent/images (0755)
  [k3s.images] k3s air-gap images
        copy    /media/k3s/k3s-airgap-images-arm64.tar.zst -> /var/lib/rancher/k3s/agent/images/k3s-airgap-images-arm64.tar.zst (0644)
  [k3s.install] install and start k3s (server)
        run     INSTALL_K3S_EXEC='--flannel-backend=none --disable-network-policy --disable-kube-proxy' INSTALL_K3S_SKIP_DOWNLOAD=true sh /var/lib/kinglet/k3s-install.sh
  [k3s.wait-api] wait for the Kubernetes API
        wait    KUBECONFIG=/etc/rancher/k3s/k3s.yaml k3s kubectl get --raw=/readyz (up to 300s)
  [k3s.wait-containerd] wait for k3s's containerd config
        wait    for file /var/lib/rancher/k3s/agent/etc/containerd/config.toml (up to 300s)

`

exports[`test/unit/installer/plan.test.ts > TAP > alpine (OpenRC) > human plan 1`] = `
== preflight
  note  Alpine Linux v3.20 (x86_64), kernel 6.6.31-0-lts, 1 CPU, 1024 MiB, init openrc, BIOS; role server
  note  kernel 6.6.31 (release 6.6.31-0-lts) meets the minimum 4.9.17
  (nothing to do)
== kernel
  note  kernel 6.6.31-0-lts meets the minimum 4.9.17: no upgrade
  (nothing to do)
== bpffs
  note  cgroup2 is mounted at /sys/fs/cgroup/unified
  [bpffs.mount] mount the BPF filesystem at /sys/fs/bpf
        mount   -t bpf bpffs /sys/fs/bpf
  [bpffs.persist] mount /sys/fs/bpf at boot (fstab)
        line    /etc/fstab: + bpffs /sys/fs/bpf bpf rw,nosuid,nodev,noexec,relatime,mode=700 0 0
== k3s
  note  k3s server with flannel, its network policy controller and kube-proxy disabled: kinglet does all three
  [k3s.script] download k3s's install script from https://get.k3s.io
        run     wget -q -T 60 -O /var/lib/kinglet/k3s-install.sh https://get.k3s.io
  [k3s.install] install and start k3s (server)
        run     INSTALL_K3S_EXEC='--flannel-backend=none --disable-network-policy --disable-kube-proxy' sh /var/lib/kinglet/k3s-install.sh
  [k3s.wait-api] wait for the Kubernetes API
        wait    KUBECONFIG=/etc/rancher/k3s/k3s.yaml k3s kubectl get --raw=/readyz (up to 300s)
  [k3s.wait-containerd] wait for k3s's containerd config
        wait    for file /var/lib/rancher/k3s/agent/etc/containerd/config.toml (up to 300s)
== agent
  note  CNI dirs assumed (bin /var/lib/rancher/k3s/data/cni, conf /var/lib/rancher/k3s/agent/etc/cni/net.d); a real run reads them from /var/lib/rancher/k3s/agent/etc/containerd/config.toml once k3s has started
  [agent.etc] kinglet configuration directory
        dir     /etc/kinglet (0755)
  [agent.cni-bin-dir] CNI plugin directory
        dir     /var/lib/rancher/k3s/data/cni (0755)
  [agent.cni-plugin] the kinglet-cni plugin (runs the bundle with its own Node.js)
        file    /var/lib/rancher/k3s/data/cni/kinglet-cni (0755, 142 bytes)
  [agent.cni-conf-dir] CNI config directory
        dir     /var/lib/rancher/k3s/agent/etc/cni/net.d (0755)
  [agent.conflist] kinglet's CNI network config
        file    /var/lib/rancher/k3s/agent/etc/cni/net.d/05-kinglet.conflist (0644, 195 bytes)
  [agent.rbac] the agent's RBAC (auto-deployed by k3s)
        copy    <bundle>/manifests/agent-rbac.yaml -> /var/lib/rancher/k3s/server/manifests/kinglet-rbac.yaml (0600)
  [agent.kubeconfig] the agent's kubeconfig (direct to the API server)
        file    /etc/kinglet/agent.kubeconfig (0600, 448 bytes)
  [agent.service] the agent service (OpenRC)
        unit    openrc kinglet-agent -> /etc/init.d/kinglet-agent, enable, start; uninstall stops it, then runs /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts agent --cleanup --bpf-root /sys/fs/bpf/kinglet --state-dir /var/lib/kinglet/agent
  [agent.wait-ready] wait for node edge-1 to be Ready
        wait    k3s kubectl --kubeconfig /etc/kinglet/agent.kubeconfig wait --for=condition=Ready node/edge-1 --timeout=10s (up to 300s)
== verify
  [verify.kernel] kernel check
        check   /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts kernel check
  [verify.probe] BPF feature probe
        check   /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts kernel probe
  [verify.status] agent status
        check   /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts status --api-socket /run/kinglet/agent.sock
  [verify.connectivity] connectivity checks
        check   /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts connectivity test --kubeconfig /etc/rancher/k3s/k3s.yaml --api-socket /run/kinglet/agent.sock

`

exports[`test/unit/installer/plan.test.ts > TAP > centos 7, 3.10, BIOS (grubby), kernel mirror > human plan 1`] = `
== preflight
  warn  this kernel has no cgroup v2: socket load balancing is unavailable, kinglet falls back to tc load balancing
        fix: use a kernel with cgroup2 (4.5+) to enable socket LB
  note  CentOS Linux 7 (Core) (x86_64), kernel 3.10.0-1160.el7.x86_64, 2 CPU, 4096 MiB, init systemd, BIOS; role server
  note  kernel 3.10.0 (release 3.10.0-1160.el7.x86_64) is below the minimum 4.9.17; a Red Hat EL7 vendor kernel with backports, counted as its upstream base 3.10.0: the kernel phase upgrades it
== kernel
  note  kernel 3.10.0-1160.el7.x86_64 is older than 4.9.17: installing kernel-lt on EL7 from https://mirror.example.org/elrepo/kernel/el7/x86_64
  [kernel.key] import the kernel repository signing key
        run     rpm --import https://mirror.example.org/elrepo/kernel/el7/x86_64/RPM-GPG-KEY-elrepo.org
  [kernel.repo] add the kernel mirror as a yum repository
        file    /etc/yum.repos.d/kinglet-kernel.repo (0644, 268 bytes)
  [kernel.install] install kernel-lt from the mirror
        run     yum '--disablerepo=*' --enablerepo=kinglet-kernel install -y kernel-lt
  [kernel.default] make the new kernel-lt the default boot entry (grubby)
        run     sh -c 'q=$(rpm -q --qf '\\''%{VERSION}-%{RELEASE}.%{ARCH}\\n'\\'' "$0") || q=; k=$(printf '\\''%s\\n'\\'' "$q" | sort -V | tail -n 1); [ -n "$k" ] || { echo "no $0 is installed" >&2; exit 1; }; exec grubby --set-default "/boot/vmlinuz-$k"' kernel-lt
  [kernel.verify-default] verify the default boot entry is the new kernel-lt
        check   sh -c 'q=$(rpm -q --qf '\\''%{VERSION}-%{RELEASE}.%{ARCH}\\n'\\'' "$0") || q=; k=$(printf '\\''%s\\n'\\'' "$q" | sort -V | tail -n 1); d=$(grubby --default-kernel); echo "boot default: $d; newest $0: \${k:-none}"; [ -n "$k" ] && [ "$d" = "/boot/vmlinuz-$k" ]' kernel-lt
  [kernel.resume-env] record the install settings for the resumed run (root only)
        file    /var/lib/kinglet/resume.env (0600, secret content)
  [kernel.resume-hook] resume the install at boot (one-shot unit)
        unit    systemd kinglet-resume.service -> /etc/systemd/system/kinglet-resume.service, enable
  [kernel.stop] stop: a reboot is due
        stop    the new kernel is installed and is the boot default; reboot to use it (the install resumes by itself at boot (or re-run it)). To let kinglet reboot, pass --allow-reboot or set KINGLET_ALLOW_REBOOT=1
== bpffs
  note  no cgroup2 in this kernel: nothing to mount
  [bpffs.mount] mount the BPF filesystem at /sys/fs/bpf
        mount   -t bpf bpffs /sys/fs/bpf
  [bpffs.persist] mount /sys/fs/bpf at boot (systemd mount unit)
        unit    systemd sys-fs-bpf.mount -> /etc/systemd/system/sys-fs-bpf.mount, enable
== k3s
  note  k3s server with flannel, its network policy controller and kube-proxy disabled: kinglet does all three
  [k3s.script] download k3s's install script from https://get.k3s.io
        run     curl -sfL --retry 3 --connect-timeout 20 --speed-limit 1 --speed-time 60 -o /var/lib/kinglet/k3s-install.sh https://get.k3s.io
  [k3s.install] install and start k3s (server)
        run     INSTALL_K3S_EXEC='--flannel-backend=none --disable-network-policy --disable-kube-proxy' sh /var/lib/kinglet/k3s-install.sh
  [k3s.wait-api] wait for the Kubernetes API
        wait    KUBECONFIG=/etc/rancher/k3s/k3s.yaml k3s kubectl get --raw=/readyz (up to 300s)
  [k3s.wait-containerd] wait for k3s's containerd config
        wait    for file /var/lib/rancher/k3s/agent/etc/containerd/config.toml (up to 300s)
== agent
  note  CNI dirs assumed (bin /var/lib/rancher/k3s/data/cni, conf /var/lib/rancher/k3s/agent/etc/cni/net.d); a real run reads them from /var/lib/rancher/k3s/agent/etc/containerd/config.toml once k3s has started
  [agent.etc] kinglet configuration directory
        dir     /etc/kinglet (0755)
  [agent.cni-bin-dir] CNI plugin directory
        dir     /var/lib/rancher/k3s/data/cni (0755)
  [agent.cni-plugin] the kinglet-cni plugin (runs the bundle with its own Node.js)
        file    /var/lib/rancher/k3s/data/cni/kinglet-cni (0755, 142 bytes)
  [agent.cni-conf-dir] CNI config directory
        dir     /var/lib/rancher/k3s/agent/etc/cni/net.d (0755)
  [agent.conflist] kinglet's CNI network config
        file    /var/lib/rancher/k3s/agent/etc/cni/net.d/05-kinglet.conflist (0644, 195 bytes)
  [agent.rbac] the agent's RBAC (auto-deployed by k3s)
        copy    <bundle>/manifests/agent-rbac.yaml -> /var/lib/rancher/k3s/server/manifests/kinglet-rbac.yaml (0600)
  [agent.kubeconfig] the agent's kubeconfig (direct to the API server)
        file    /etc/kinglet/agent.kubeconfig (0600, 448 bytes)
  [agent.service] the agent service (systemd)
        unit    systemd kinglet-agent.service -> /etc/systemd/system/kinglet-agent.service, enable, start; uninstall stops it, then runs /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts agent --cleanup --bpf-root /sys/fs/bpf/kinglet --state-dir /var/lib/kinglet/agent
  [agent.wait-ready] wait for node c7-bios to be Ready
        wait    k3s kubectl --kubeconfig /etc/kinglet/agent.kubeconfig wait --for=condition=Ready node/c7-bios --timeout=10s (up to 300s)
== verify
  [verify.kernel] kernel check
        check   /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts kernel check
  [verify.probe] BPF feature probe
        check   /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts kernel probe
  [verify.status] agent status
        check   /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts status --api-socket /run/kinglet/agent.sock
  [verify.connectivity] connectivity checks
        check   /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts connectivity test --kubeconfig /etc/rancher/k3s/k3s.yaml --api-socket /run/kinglet/agent.sock

`

exports[`test/unit/installer/plan.test.ts > TAP > centos 7, 3.10, UEFI (no grubby), local RPMs, reboot allowed > human plan 1`] = `
== preflight
  warn  this kernel has no cgroup v2: socket load balancing is unavailable, kinglet falls back to tc load balancing
        fix: use a kernel with cgroup2 (4.5+) to enable socket LB
  note  CentOS Linux 7 (Core) (x86_64), kernel 3.10.0-1160.el7.x86_64, 2 CPU, 4096 MiB, init systemd, UEFI; role server
  note  kernel 3.10.0 (release 3.10.0-1160.el7.x86_64) is below the minimum 4.9.17; a Red Hat EL7 vendor kernel with backports, counted as its upstream base 3.10.0: the kernel phase upgrades it
== kernel
  note  kernel 3.10.0-1160.el7.x86_64 is older than 4.9.17: installing kernel-ml on EL7 from /srv/kernels
  [kernel.install] install kernel-ml from the local RPMs in /srv/kernels
        run     sh -c 'set -- "$0"/kernel-ml-[0-9]*.rpm; [ -e "$1" ] || { echo "no kernel-ml RPM in $0" >&2; exit 1; }; exec yum localinstall -y "$@"' /srv/kernels
  [kernel.grub-default] boot the first (newest) menu entry by default
        line    /etc/default/grub: /^GRUB_DEFAULT=.*/ -> GRUB_DEFAULT=0
  [kernel.grub-mkconfig] regenerate /boot/efi/EFI/centos/grub.cfg (UEFI)
        run     grub2-mkconfig -o /boot/efi/EFI/centos/grub.cfg
  [kernel.verify-default] verify the first menu entry is the new kernel-ml
        check   sh -c 'q=$(rpm -q --qf '\\''%{VERSION}-%{RELEASE}.%{ARCH}\\n'\\'' "$0") || q=; k=$(printf '\\''%s\\n'\\'' "$q" | sort -V | tail -n 1); e=$(grep -m1 '\\''^menuentry '\\'' "$1"); echo "first entry: $e; newest $0: \${k:-none}"; [ -n "$k" ] && case $e in *"($k)"*) ;; *) exit 1 ;; esac' kernel-ml /boot/efi/EFI/centos/grub.cfg
  [kernel.resume-env] record the install settings for the resumed run (root only)
        file    /var/lib/kinglet/resume.env (0600, secret content)
  [kernel.resume-hook] resume the install at boot (one-shot unit)
        unit    systemd kinglet-resume.service -> /etc/systemd/system/kinglet-resume.service, enable
  [kernel.reboot] reboot into the new kernel
        reboot  systemctl reboot
== bpffs
  note  no cgroup2 in this kernel: nothing to mount
  [bpffs.mount] mount the BPF filesystem at /sys/fs/bpf
        mount   -t bpf bpffs /sys/fs/bpf
  [bpffs.persist] mount /sys/fs/bpf at boot (systemd mount unit)
        unit    systemd sys-fs-bpf.mount -> /etc/systemd/system/sys-fs-bpf.mount, enable
== k3s
  note  k3s server with flannel, its network policy controller and kube-proxy disabled: kinglet does all three
  [k3s.script] download k3s's install script from https://get.k3s.io
        run     curl -sfL --retry 3 --connect-timeout 20 --speed-limit 1 --speed-time 60 -o /var/lib/kinglet/k3s-install.sh https://get.k3s.io
  [k3s.install] install and start k3s (server)
        run     INSTALL_K3S_EXEC='--flannel-backend=none --disable-network-policy --disable-kube-proxy' sh /var/lib/kinglet/k3s-install.sh
  [k3s.wait-api] wait for the Kubernetes API
        wait    KUBECONFIG=/etc/rancher/k3s/k3s.yaml k3s kubectl get --raw=/readyz (up to 300s)
  [k3s.wait-containerd] wait for k3s's containerd config
        wait    for file /var/lib/rancher/k3s/agent/etc/containerd/config.toml (up to 300s)
== agent
  note  CNI dirs assumed (bin /var/lib/rancher/k3s/data/cni, conf /var/lib/rancher/k3s/agent/etc/cni/net.d); a real run reads them from /var/lib/rancher/k3s/agent/etc/containerd/config.toml once k3s has started
  [agent.etc] kinglet configuration directory
        dir     /etc/kinglet (0755)
  [agent.cni-bin-dir] CNI plugin directory
        dir     /var/lib/rancher/k3s/data/cni (0755)
  [agent.cni-plugin] the kinglet-cni plugin (runs the bundle with its own Node.js)
        file    /var/lib/rancher/k3s/data/cni/kinglet-cni (0755, 142 bytes)
  [agent.cni-conf-dir] CNI config directory
        dir     /var/lib/rancher/k3s/agent/etc/cni/net.d (0755)
  [agent.conflist] kinglet's CNI network config
        file    /var/lib/rancher/k3s/agent/etc/cni/net.d/05-kinglet.conflist (0644, 195 bytes)
  [agent.rbac] the agent's RBAC (auto-deployed by k3s)
        copy    <bundle>/manifests/agent-rbac.yaml -> /var/lib/rancher/k3s/server/manifests/kinglet-rbac.yaml (0600)
  [agent.kubeconfig] the agent's kubeconfig (direct to the API server)
        file    /etc/kinglet/agent.kubeconfig (0600, 448 bytes)
  [agent.service] the agent service (systemd)
        unit    systemd kinglet-agent.service -> /etc/systemd/system/kinglet-agent.service, enable, start; uninstall stops it, then runs /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts agent --cleanup --bpf-root /sys/fs/bpf/kinglet --state-dir /var/lib/kinglet/agent
  [agent.wait-ready] wait for node c7-uefi to be Ready
        wait    k3s kubectl --kubeconfig /etc/kinglet/agent.kubeconfig wait --for=condition=Ready node/c7-uefi --timeout=10s (up to 300s)
== verify
  [verify.kernel] kernel check
        check   /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts kernel check
  [verify.probe] BPF feature probe
        check   /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts kernel probe
  [verify.status] agent status
        check   /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts status --api-socket /run/kinglet/agent.sock
  [verify.connectivity] connectivity checks
        check   /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts connectivity test --kubeconfig /etc/rancher/k3s/k3s.yaml --api-socket /run/kinglet/agent.sock

`

exports[`test/unit/installer/plan.test.ts > TAP > debian 12 arm64, agent joining a server > human plan 1`] = `
== preflight
  warn  another CNI config is present: /etc/cni/net.d/10-flannel.conflist
        fix: remove it (or uninstall the CNI that wrote it) so containerd picks kinglet's conflist
  note  Debian GNU/Linux 12 (bookworm) (aarch64), kernel 6.1.0-21-arm64, 2 CPU, 4096 MiB, init systemd, BIOS; role agent
  note  kernel 6.1.90 (release 6.1.0-21-arm64, upstream patch level from Debian's uname -v) meets the minimum 4.9.17
== kernel
  note  kernel 6.1.0-21-arm64 meets the minimum 4.9.17: no upgrade
  (nothing to do)
== bpffs
  note  systemd 252 mounts /sys/fs/bpf at boot
  note  cgroup2 is mounted at /sys/fs/cgroup
  [bpffs.mount] mount the BPF filesystem at /sys/fs/bpf
        mount   -t bpf bpffs /sys/fs/bpf
== k3s
  note  k3s agent joining https://10.0.0.1:6443
  [k3s.script] download k3s's install script from https://get.k3s.io
        run     wget -q -T 60 -O /var/lib/kinglet/k3s-install.sh https://get.k3s.io
  [k3s.install] install and start k3s (agent)
        run     K3S_URL=https://10.0.0.1:6443 K3S_TOKEN=<redacted> sh /var/lib/kinglet/k3s-install.sh
  [k3s.wait-containerd] wait for k3s's containerd config
        wait    for file /var/lib/rancher/k3s/agent/etc/containerd/config.toml (up to 300s)
== agent
  note  CNI dirs assumed (bin /var/lib/rancher/k3s/data/cni, conf /var/lib/rancher/k3s/agent/etc/cni/net.d); a real run reads them from /var/lib/rancher/k3s/agent/etc/containerd/config.toml once k3s has started
  [agent.etc] kinglet configuration directory
        dir     /etc/kinglet (0755)
  [agent.cni-bin-dir] CNI plugin directory
        dir     /var/lib/rancher/k3s/data/cni (0755)
  [agent.cni-plugin] the kinglet-cni plugin (runs the bundle with its own Node.js)
        file    /var/lib/rancher/k3s/data/cni/kinglet-cni (0755, 142 bytes)
  [agent.cni-conf-dir] CNI config directory
        dir     /var/lib/rancher/k3s/agent/etc/cni/net.d (0755)
  [agent.conflist] kinglet's CNI network config
        file    /var/lib/rancher/k3s/agent/etc/cni/net.d/05-kinglet.conflist (0644, 195 bytes)
  [agent.kubeconfig] the agent's kubeconfig (direct to the API server)
        file    /etc/kinglet/agent.kubeconfig (0600, 448 bytes)
  [agent.service] the agent service (systemd)
        unit    systemd kinglet-agent.service -> /etc/systemd/system/kinglet-agent.service, enable, start; uninstall stops it, then runs /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts agent --cleanup --bpf-root /sys/fs/bpf/kinglet --state-dir /var/lib/kinglet/agent
  [agent.wait-ready] wait for node deb12 to be Ready
        wait    k3s kubectl --kubeconfig /etc/kinglet/agent.kubeconfig wait --for=condition=Ready node/deb12 --timeout=10s (up to 300s)
== verify
  [verify.kernel] kernel check
        check   /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts kernel check
  [verify.probe] BPF feature probe
        check   /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts kernel probe
  [verify.status] agent status
        check   /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts status --api-socket /run/kinglet/agent.sock
  [verify.connectivity] connectivity checks
        skip    a k3s agent node has no cluster-admin kubeconfig to deploy the checks with: run \`kinglet connectivity test\` on a server (it runs the multi-node checks once two nodes are Ready)

`

exports[`test/unit/installer/plan.test.ts > TAP > rhel 8 (cgroup v1 host) > human plan 1`] = `
== preflight
  note  Red Hat Enterprise Linux 8.9 (Ootpa) (x86_64), kernel 4.18.0-513.5.1.el8_9.x86_64, 2 CPU, 4096 MiB, init systemd, BIOS; role server
  note  kernel 4.18.0 (release 4.18.0-513.5.1.el8_9.x86_64) meets the minimum 4.9.17; a Red Hat EL8 vendor kernel with backports, counted as its upstream base 4.18.0
  (nothing to do)
== kernel
  note  kernel 4.18.0-513.5.1.el8_9.x86_64 meets the minimum 4.9.17: no upgrade
  (nothing to do)
== bpffs
  note  systemd 239 mounts /sys/fs/bpf at boot
  [bpffs.mount] mount the BPF filesystem at /sys/fs/bpf
        mount   -t bpf bpffs /sys/fs/bpf
  [cgroup2.dir] mount point for cgroup2
        dir     /run/kinglet/cgroupv2 (0755)
  [cgroup2.mount] mount the cgroup2 hierarchy at /run/kinglet/cgroupv2
        mount   -t cgroup2 none /run/kinglet/cgroupv2
  [cgroup2.persist] mount cgroup2 at boot (systemd mount unit)
        unit    systemd run-kinglet-cgroupv2.mount -> /etc/systemd/system/run-kinglet-cgroupv2.mount, enable
== k3s
  note  k3s server with flannel, its network policy controller and kube-proxy disabled: kinglet does all three
  [k3s.script] download k3s's install script from https://get.k3s.io
        run     curl -sfL --retry 3 --connect-timeout 20 --speed-limit 1 --speed-time 60 -o /var/lib/kinglet/k3s-install.sh https://get.k3s.io
  [k3s.install] install and start k3s (server)
        run     INSTALL_K3S_EXEC='--flannel-backend=none --disable-network-policy --disable-kube-proxy' sh /var/lib/kinglet/k3s-install.sh
  [k3s.wait-api] wait for the Kubernetes API
        wait    KUBECONFIG=/etc/rancher/k3s/k3s.yaml k3s kubectl get --raw=/readyz (up to 300s)
  [k3s.wait-containerd] wait for k3s's containerd config
        wait    for file /var/lib/rancher/k3s/agent/etc/containerd/config.toml (up to 300s)
== agent
  note  CNI dirs assumed (bin /var/lib/rancher/k3s/data/cni, conf /var/lib/rancher/k3s/agent/etc/cni/net.d); a real run reads them from /var/lib/rancher/k3s/agent/etc/containerd/config.toml once k3s has started
  [agent.etc] kinglet configuration directory
        dir     /etc/kinglet (0755)
  [agent.cni-bin-dir] CNI plugin directory
        dir     /var/lib/rancher/k3s/data/cni (0755)
  [agent.cni-plugin] the kinglet-cni plugin (runs the bundle with its own Node.js)
        file    /var/lib/rancher/k3s/data/cni/kinglet-cni (0755, 142 bytes)
  [agent.cni-conf-dir] CNI config directory
        dir     /var/lib/rancher/k3s/agent/etc/cni/net.d (0755)
  [agent.conflist] kinglet's CNI network config
        file    /var/lib/rancher/k3s/agent/etc/cni/net.d/05-kinglet.conflist (0644, 195 bytes)
  [agent.rbac] the agent's RBAC (auto-deployed by k3s)
        copy    <bundle>/manifests/agent-rbac.yaml -> /var/lib/rancher/k3s/server/manifests/kinglet-rbac.yaml (0600)
  [agent.kubeconfig] the agent's kubeconfig (direct to the API server)
        file    /etc/kinglet/agent.kubeconfig (0600, 448 bytes)
  [agent.service] the agent service (systemd)
        unit    systemd kinglet-agent.service -> /etc/systemd/system/kinglet-agent.service, enable, start; uninstall stops it, then runs /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts agent --cleanup --bpf-root /sys/fs/bpf/kinglet --state-dir /var/lib/kinglet/agent
  [agent.wait-ready] wait for node rhel8 to be Ready
        wait    k3s kubectl --kubeconfig /etc/kinglet/agent.kubeconfig wait --for=condition=Ready node/rhel8 --timeout=10s (up to 300s)
== verify
  [verify.kernel] kernel check
        check   /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts kernel check
  [verify.probe] BPF feature probe
        check   /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts kernel probe
  [verify.status] agent status
        check   /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts status --api-socket /run/kinglet/agent.sock
  [verify.connectivity] connectivity checks
        check   /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts connectivity test --kubeconfig /etc/rancher/k3s/k3s.yaml --api-socket /run/kinglet/agent.sock

`

exports[`test/unit/installer/plan.test.ts > TAP > rocky 9 > human plan 1`] = `
== preflight
  note  Rocky Linux 9.3 (Blue Onyx) (x86_64), kernel 5.14.0-362.8.1.el9_3.x86_64, 2 CPU, 4096 MiB, init systemd, UEFI; role server
  note  kernel 5.14.0 (release 5.14.0-362.8.1.el9_3.x86_64) meets the minimum 4.9.17; a Red Hat EL9 vendor kernel with backports, counted as its upstream base 5.14.0
  (nothing to do)
== kernel
  note  kernel 5.14.0-362.8.1.el9_3.x86_64 meets the minimum 4.9.17: no upgrade
  (nothing to do)
== bpffs
  note  /sys/fs/bpf is mounted (bpf)
  note  systemd 252 mounts /sys/fs/bpf at boot
  note  cgroup2 is mounted at /sys/fs/cgroup
  (nothing to do)
== k3s
  note  k3s server with flannel, its network policy controller and kube-proxy disabled: kinglet does all three
  [k3s.script] download k3s's install script from https://get.k3s.io
        run     curl -sfL --retry 3 --connect-timeout 20 --speed-limit 1 --speed-time 60 -o /var/lib/kinglet/k3s-install.sh https://get.k3s.io
  [k3s.install] install and start k3s (server)
        run     INSTALL_K3S_EXEC='--flannel-backend=none --disable-network-policy --disable-kube-proxy' sh /var/lib/kinglet/k3s-install.sh
  [k3s.wait-api] wait for the Kubernetes API
        wait    KUBECONFIG=/etc/rancher/k3s/k3s.yaml k3s kubectl get --raw=/readyz (up to 300s)
  [k3s.wait-containerd] wait for k3s's containerd config
        wait    for file /var/lib/rancher/k3s/agent/etc/containerd/config.toml (up to 300s)
== agent
  note  CNI dirs assumed (bin /var/lib/rancher/k3s/data/cni, conf /var/lib/rancher/k3s/agent/etc/cni/net.d); a real run reads them from /var/lib/rancher/k3s/agent/etc/containerd/config.toml once k3s has started
  [agent.etc] kinglet configuration directory
        dir     /etc/kinglet (0755)
  [agent.cni-bin-dir] CNI plugin directory
        dir     /var/lib/rancher/k3s/data/cni (0755)
  [agent.cni-plugin] the kinglet-cni plugin (runs the bundle with its own Node.js)
        file    /var/lib/rancher/k3s/data/cni/kinglet-cni (0755, 142 bytes)
  [agent.cni-conf-dir] CNI config directory
        dir     /var/lib/rancher/k3s/agent/etc/cni/net.d (0755)
  [agent.conflist] kinglet's CNI network config
        file    /var/lib/rancher/k3s/agent/etc/cni/net.d/05-kinglet.conflist (0644, 195 bytes)
  [agent.rbac] the agent's RBAC (auto-deployed by k3s)
        copy    <bundle>/manifests/agent-rbac.yaml -> /var/lib/rancher/k3s/server/manifests/kinglet-rbac.yaml (0600)
  [agent.kubeconfig] the agent's kubeconfig (direct to the API server)
        file    /etc/kinglet/agent.kubeconfig (0600, 448 bytes)
  [agent.service] the agent service (systemd)
        unit    systemd kinglet-agent.service -> /etc/systemd/system/kinglet-agent.service, enable, start; uninstall stops it, then runs /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts agent --cleanup --bpf-root /sys/fs/bpf/kinglet --state-dir /var/lib/kinglet/agent
  [agent.wait-ready] wait for node rocky9 to be Ready
        wait    k3s kubectl --kubeconfig /etc/kinglet/agent.kubeconfig wait --for=condition=Ready node/rocky9 --timeout=10s (up to 300s)
== verify
  [verify.kernel] kernel check
        check   /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts kernel check
  [verify.probe] BPF feature probe
        check   /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts kernel probe
  [verify.status] agent status
        check   /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts status --api-socket /run/kinglet/agent.sock
  [verify.connectivity] connectivity checks
        check   /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts connectivity test --kubeconfig /etc/rancher/k3s/k3s.yaml --api-socket /run/kinglet/agent.sock

`

exports[`test/unit/installer/plan.test.ts > TAP > ubuntu 22.04, extra k3s flags > human plan 1`] = `
== preflight
  note  Ubuntu 22.04.4 LTS (x86_64), kernel 5.15.0-105-generic, 2 CPU, 4096 MiB, init systemd, BIOS; role server
  note  kernel 5.15.149 (release 5.15.0-105-generic, upstream patch level from /proc/version_signature) meets the minimum 4.9.17
  (nothing to do)
== kernel
  note  kernel 5.15.0-105-generic meets the minimum 4.9.17: no upgrade
  (nothing to do)
== bpffs
  note  /sys/fs/bpf is mounted (bpf)
  note  systemd 249 mounts /sys/fs/bpf at boot
  note  cgroup2 is mounted at /sys/fs/cgroup
  (nothing to do)
== k3s
  note  k3s server with flannel, its network policy controller and kube-proxy disabled: kinglet does all three
  [k3s.script] download k3s's install script from https://get.k3s.io
        run     curl -sfL --retry 3 --connect-timeout 20 --speed-limit 1 --speed-time 60 -o /var/lib/kinglet/k3s-install.sh https://get.k3s.io
  [k3s.install] install and start k3s (server)
        run     INSTALL_K3S_VERSION=v1.31.4+k3s1 INSTALL_K3S_EXEC='--flannel-backend=none --disable-network-policy --disable-kube-proxy --write-kubeconfig-mode=644 --tls-san=k3s.example.org' sh /var/lib/kinglet/k3s-install.sh
  [k3s.wait-api] wait for the Kubernetes API
        wait    KUBECONFIG=/etc/rancher/k3s/k3s.yaml k3s kubectl get --raw=/readyz (up to 300s)
  [k3s.wait-containerd] wait for k3s's containerd config
        wait    for file /var/lib/rancher/k3s/agent/etc/containerd/config.toml (up to 300s)
== agent
  note  CNI dirs assumed (bin /var/lib/rancher/k3s/data/cni, conf /var/lib/rancher/k3s/agent/etc/cni/net.d); a real run reads them from /var/lib/rancher/k3s/agent/etc/containerd/config.toml once k3s has started
  [agent.etc] kinglet configuration directory
        dir     /etc/kinglet (0755)
  [agent.cni-bin-dir] CNI plugin directory
        dir     /var/lib/rancher/k3s/data/cni (0755)
  [agent.cni-plugin] the kinglet-cni plugin (runs the bundle with its own Node.js)
        file    /var/lib/rancher/k3s/data/cni/kinglet-cni (0755, 142 bytes)
  [agent.cni-conf-dir] CNI config directory
        dir     /var/lib/rancher/k3s/agent/etc/cni/net.d (0755)
  [agent.conflist] kinglet's CNI network config
        file    /var/lib/rancher/k3s/agent/etc/cni/net.d/05-kinglet.conflist (0644, 195 bytes)
  [agent.rbac] the agent's RBAC (auto-deployed by k3s)
        copy    <bundle>/manifests/agent-rbac.yaml -> /var/lib/rancher/k3s/server/manifests/kinglet-rbac.yaml (0600)
  [agent.kubeconfig] the agent's kubeconfig (direct to the API server)
        file    /etc/kinglet/agent.kubeconfig (0600, 448 bytes)
  [agent.service] the agent service (systemd)
        unit    systemd kinglet-agent.service -> /etc/systemd/system/kinglet-agent.service, enable, start; uninstall stops it, then runs /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts agent --cleanup --bpf-root /sys/fs/bpf/kinglet --state-dir /var/lib/kinglet/agent
  [agent.wait-ready] wait for node ubuntu-jammy to be Ready
        wait    k3s kubectl --kubeconfig /etc/kinglet/agent.kubeconfig wait --for=condition=Ready node/ubuntu-jammy --timeout=10s (up to 300s)
== verify
  [verify.kernel] kernel check
        check   /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts kernel check
  [verify.probe] BPF feature probe
        check   /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts kernel probe
  [verify.status] agent status
        check   /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts status --api-socket /run/kinglet/agent.sock
  [verify.connectivity] connectivity checks
        check   /opt/kinglet/node/bin/node /opt/kinglet/agent/cli/kinglet.ts connectivity test --kubeconfig /etc/rancher/k3s/k3s.yaml --api-socket /run/kinglet/agent.sock

`
