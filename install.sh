#!/bin/sh
# kinglet installer bootstrap.
#
#   curl -sfL https://<where kinglet is published>/install.sh | sh -
#   curl -sfL .../install.sh | K3S_URL=https://server:6443 K3S_TOKEN=... sh -
#
# Makes sure Node.js >= 22.18 is there, unpacks the kinglet bundle (or uses the
# checkout this script sits in), then hands over to `kinglet install`, which
# does the real work: preflight, kernel, bpffs, k3s, agent, verify.
#
# Environment (all optional):
#   KINGLET_VERSION          bundle version to fetch when no KINGLET_BUNDLE_URL (default: 0.1.0)
#   KINGLET_RELEASE_URL      base URL of published bundles: <base>/v<version>/kinglet-<version>.tar.gz
#   KINGLET_BUNDLE_URL       URL of a kinglet bundle tarball (overrides the two above)
#   KINGLET_BUNDLE_SHA256    its sha256; default: the first word of <KINGLET_BUNDLE_URL>.sha256
#   KINGLET_INSTALL_DIR      where the bundle and Node.js go (default: /opt/kinglet)
#   KINGLET_NODE_VERSION     Node.js to download when the system one is older than 22.18 (default: 22.18.0)
#   KINGLET_NODE_MIRROR      Node.js downloads, nodejs.org/dist layout (default: https://nodejs.org/dist)
#   KINGLET_NODE_GLIBC217_MIRROR  the same for glibc < 2.28 hosts such as EL7, which need the
#                            glibc-2.17 build flavour (default: https://unofficial-builds.nodejs.org/download/release)
#   KINGLET_FORCE_NODE_DOWNLOAD=1  download Node.js even when the system one is new enough
#   KINGLET_GLIBC_VERSION    override the detected glibc version (e.g. 2.17)
#   KINGLET_DRY_RUN=1        print the install plan, change nothing
#   KINGLET_SKIP             install phases to skip, comma separated (preflight,kernel,bpffs,k3s,agent,verify)
#   KINGLET_KERNEL_CHANNEL   lt (long-term, default) or ml (mainline) ELRepo kernel
#   KINGLET_KERNEL_MIRROR    EL7: base URL of a yum repository with ELRepo el7 kernels
#   KINGLET_KERNEL_RPM_DIR   EL7: a directory holding the kernel RPMs instead
#   KINGLET_ELREPO_URL       where ELRepo's key and elrepo-release come from (default: https://www.elrepo.org)
#   KINGLET_ALLOW_REBOOT=1   reboot into a newly installed kernel (the install resumes after boot)
#   KINGLET_K3S_INSTALL_URL  k3s's install script (default: https://get.k3s.io)
#   KINGLET_K3S_INSTALL_SCRIPT, KINGLET_K3S_BINARY, KINGLET_K3S_IMAGES
#                            air-gapped: local k3s install script, binary and images tarball
#   KINGLET_PROGRESS_SECONDS seconds between "still ..." progress lines (default: 15). On a
#                            terminal downloads show a progress bar instead; in logs and CI
#                            they stay quiet but for these lines.
# Passed through to k3s unchanged:
#   K3S_URL, K3S_TOKEN (join as an agent), K3S_*, INSTALL_K3S_* (INSTALL_K3S_EXEC,
#   INSTALL_K3S_VERSION, INSTALL_K3S_SKIP_DOWNLOAD, ...)
#
# Everything below is functions; the only command run at load time is the
# main block at the very end, so a truncated download runs nothing.

set -eu

info() { printf '[kinglet] %s\n' "$*" >&2; }
warn() { printf '[kinglet] WARN: %s\n' "$*" >&2; }
fatal() {
    printf '[kinglet] ERROR: %s\n' "$*" >&2
    cleanup
    exit 1
}

TMP_DIR=
cleanup() {
    progress_stop
    if [ -n "$TMP_DIR" ] && [ -d "$TMP_DIR" ]; then rm -rf "$TMP_DIR"; fi
    TMP_DIR=
}

# A download that moves no data for this long is given up (curl retries it first).
STALL_SECONDS=60

# progress_start <what> <file>: when stderr is not a terminal, a line every
# KINGLET_PROGRESS_SECONDS while <file> downloads, with its size so far.
# On a terminal the downloader draws its own bar instead.
PROGRESS_PID=
progress_start() {
    PROGRESS_PID=
    if [ -t 2 ]; then return 0; fi
    (
        sp=
        trap 'if [ -n "$sp" ]; then kill "$sp" 2>/dev/null; fi; exit 0' TERM
        n=0
        while :; do
            sleep "$PROGRESS_EVERY" &
            sp=$!
            wait "$sp" || :
            n=$((n + PROGRESS_EVERY))
            got=$(wc -c 2>/dev/null <"$2" | tr -d ' ') || got=
            info "still downloading $1 (${n}s, ${got:-0} bytes so far; gives up after ${STALL_SECONDS}s without data)"
        done
    ) &
    PROGRESS_PID=$!
}

progress_stop() {
    if [ -n "${PROGRESS_PID:-}" ]; then
        kill "$PROGRESS_PID" 2>/dev/null || :
        wait "$PROGRESS_PID" 2>/dev/null || :
    fi
    PROGRESS_PID=
}

setup_defaults() {
    KINGLET_VERSION=${KINGLET_VERSION:-0.1.0}
    KINGLET_RELEASE_URL=${KINGLET_RELEASE_URL:-https://github.com/kinglet/kinglet/releases/download}
    KINGLET_INSTALL_DIR=${KINGLET_INSTALL_DIR:-/opt/kinglet}
    KINGLET_NODE_VERSION=${KINGLET_NODE_VERSION:-22.18.0}
    KINGLET_NODE_MIRROR=${KINGLET_NODE_MIRROR:-https://nodejs.org/dist}
    KINGLET_NODE_GLIBC217_MIRROR=${KINGLET_NODE_GLIBC217_MIRROR:-https://unofficial-builds.nodejs.org/download/release}
    PROGRESS_EVERY=${KINGLET_PROGRESS_SECONDS:-15}
    case $PROGRESS_EVERY in
        '' | *[!0-9]* | 0) fatal "KINGLET_PROGRESS_SECONDS must be a whole number of seconds >= 1, not \"$PROGRESS_EVERY\"" ;;
    esac
    # 22.18: the first 22.x that runs TypeScript (type stripping) without a flag
    NODE_MIN_VERSION=22.18.0
}

# Root, or sudo that keeps the KINGLET_*, K3S_* and INSTALL_K3S_* settings.
setup_sudo() {
    SUDO=
    if [ "$(id -u)" = 0 ]; then return 0; fi
    command -v sudo >/dev/null 2>&1 || fatal "run this as root: kinglet installs system services (no sudo found)"
    keep=$(env | grep -E '^(KINGLET|K3S|INSTALL_K3S)_[A-Za-z0-9_]*=' | cut -d = -f 1 | tr '\n' ',' | sed 's/,$//') || keep=
    if [ -n "$keep" ]; then SUDO="sudo --preserve-env=$keep"; else SUDO=sudo; fi
    info "not root: using sudo for the installation"
}

verify_downloader() {
    WGET_BAR=
    if command -v curl >/dev/null 2>&1; then
        DOWNLOADER=curl
    elif command -v wget >/dev/null 2>&1; then
        DOWNLOADER=wget
        # GNU wget draws its bar with -q --show-progress; busybox wget draws one unless -q.
        if wget --help 2>&1 | grep -q -- --show-progress; then WGET_BAR="-q --show-progress"; fi
    else
        fatal "neither curl nor wget is installed: install one (apt-get install curl / yum install curl / apk add curl) and re-run"
    fi
}

verify_tools() {
    command -v tar >/dev/null 2>&1 || fatal "tar is missing: install it with your package manager and re-run"
    command -v gzip >/dev/null 2>&1 || fatal "gzip is missing: install it with your package manager and re-run"
    if command -v sha256sum >/dev/null 2>&1; then
        SHA256="sha256sum"
    elif command -v shasum >/dev/null 2>&1; then
        SHA256="shasum -a 256"
    else
        fatal "no sha256sum (coreutils) or shasum: install coreutils and re-run"
    fi
}

# download <url> <file>: a progress bar on a terminal, quiet lines otherwise.
# shellcheck disable=SC2086 # curl_show and wget_show hold options
download() {
    rc=0
    if [ -t 2 ]; then
        curl_show=--progress-bar wget_show=$WGET_BAR
    else
        curl_show=-sS wget_show=-q
    fi
    progress_start "$1" "$2"
    case $DOWNLOADER in
        curl) curl -fL $curl_show --retry 3 --connect-timeout 20 --speed-limit 1 --speed-time "$STALL_SECONDS" -o "$2" "$1" || rc=$? ;;
        wget) wget $wget_show -T "$STALL_SECONDS" -O "$2" "$1" || rc=$? ;;
    esac
    progress_stop
    [ "$rc" = 0 ] || fatal "download failed: $1 (check the URL and network, or set the matching KINGLET_*_URL/MIRROR)"
    info "downloaded $1 ($(wc -c <"$2" | tr -d ' ') bytes)"
}

sha256_of() {
    $SHA256 "$1" | cut -d ' ' -f 1
}

# verify_sha256 <file> <expected> <what>
verify_sha256() {
    got=$(sha256_of "$1")
    want=$(printf '%s' "$2" | tr 'A-F' 'a-f')
    if [ "$got" != "$want" ]; then
        fatal "checksum mismatch for $3: expected $want, got $got; the download is corrupt or tampered with: do not use it (retry, or check the mirror)"
    fi
    info "sha256 verified: $3"
}

# version_ge A B: A >= B for dotted numbers.
version_ge() {
    [ "$(printf '%s\n%s\n' "$1" "$2" | sort -t . -k 1,1n -k 2,2n -k 3,3n | head -n 1)" = "$2" ]
}

detect_arch() {
    case $(uname -m) in
        x86_64 | amd64) NODE_ARCH=x64 ;;
        aarch64 | arm64) NODE_ARCH=arm64 ;;
        *) fatal "unsupported architecture $(uname -m): kinglet runs on x86_64 and aarch64" ;;
    esac
}

detect_glibc() {
    GLIBC=${KINGLET_GLIBC_VERSION:-}
    if [ -z "$GLIBC" ]; then
        GLIBC=$(getconf GNU_LIBC_VERSION 2>/dev/null | sed -n 's/^glibc //p') || GLIBC=
    fi
}

node_version() {
    "$1" -p 'process.versions.node' 2>/dev/null || echo 0.0.0
}

setup_node() {
    if [ "${KINGLET_FORCE_NODE_DOWNLOAD:-}" != 1 ] && command -v node >/dev/null 2>&1 \
        && version_ge "$(node_version node)" "$NODE_MIN_VERSION"; then
        NODE=$(command -v node)
        info "using system Node.js $(node -v) at $NODE"
        return 0
    fi
    detect_arch
    detect_glibc
    flavour=
    mirror=$KINGLET_NODE_MIRROR
    if [ -z "$GLIBC" ]; then
        fatal "no glibc found (musl?): install Node.js >= $NODE_MIN_VERSION from your distribution (apk add nodejs) and re-run"
    fi
    if ! version_ge "$GLIBC" 2.28; then
        [ "$NODE_ARCH" = x64 ] || fatal "glibc $GLIBC is too old for Node.js on $NODE_ARCH: install Node.js >= $NODE_MIN_VERSION by hand"
        flavour=-glibc-217
        mirror=$KINGLET_NODE_GLIBC217_MIRROR
        info "glibc $GLIBC < 2.28: using the glibc-2.17 build of Node.js"
    fi
    v=$KINGLET_NODE_VERSION
    file="node-v$v-linux-$NODE_ARCH$flavour.tar.gz"
    info "downloading Node.js $v ($file) from $mirror"
    download "$mirror/v$v/SHASUMS256.txt" "$TMP_DIR/SHASUMS256.txt"
    want=$(awk -v f="$file" '$2 == f { print $1 }' "$TMP_DIR/SHASUMS256.txt")
    [ -n "$want" ] || fatal "$file is not listed in $mirror/v$v/SHASUMS256.txt: pick another KINGLET_NODE_VERSION"
    download "$mirror/v$v/$file" "$TMP_DIR/$file"
    verify_sha256 "$TMP_DIR/$file" "$want" "$file"
    dest="$KINGLET_INSTALL_DIR/node"
    $SUDO mkdir -p "$dest.new"
    $SUDO tar -xzf "$TMP_DIR/$file" -C "$dest.new" --strip-components=1 || fatal "cannot unpack $file into $dest.new"
    $SUDO rm -rf "$dest"
    $SUDO mv "$dest.new" "$dest"
    NODE="$dest/bin/node"
    version_ge "$(node_version "$NODE")" "$NODE_MIN_VERSION" || fatal "the downloaded Node.js at $NODE does not run or is older than $NODE_MIN_VERSION: check KINGLET_NODE_VERSION and the mirror"
}

# The checkout this script sits in, when run as a file from one.
checkout_dir() {
    case $0 in
        */install.sh | install.sh) d=$(cd "$(dirname "$0")" 2>/dev/null && pwd) || return 1 ;;
        *) return 1 ;;
    esac
    [ -f "$d/agent/cli/kinglet.ts" ] && printf '%s\n' "$d"
}

setup_bundle() {
    url=${KINGLET_BUNDLE_URL:-}
    if [ -z "$url" ] && BUNDLE_DIR=$(checkout_dir); then
        info "using the kinglet checkout at $BUNDLE_DIR"
        return 0
    fi
    if [ -z "$url" ]; then
        url="$KINGLET_RELEASE_URL/v$KINGLET_VERSION/kinglet-$KINGLET_VERSION.tar.gz"
    fi
    info "downloading the kinglet bundle from $url"
    download "$url" "$TMP_DIR/bundle.tar.gz"
    want=${KINGLET_BUNDLE_SHA256:-}
    if [ -z "$want" ]; then
        download "$url.sha256" "$TMP_DIR/bundle.sha256"
        want=$(cut -d ' ' -f 1 "$TMP_DIR/bundle.sha256" | head -n 1)
    fi
    [ -n "$want" ] || fatal "no checksum for the bundle: set KINGLET_BUNDLE_SHA256 or publish $url.sha256"
    verify_sha256 "$TMP_DIR/bundle.tar.gz" "$want" "kinglet bundle"
    dest="$KINGLET_INSTALL_DIR/bundle"
    $SUDO rm -rf "$dest.new"
    $SUDO mkdir -p "$dest.new"
    $SUDO tar -xzf "$TMP_DIR/bundle.tar.gz" -C "$dest.new" || fatal "cannot unpack the bundle into $dest.new"
    # Either the files at the top, or one top-level directory holding them.
    if [ ! -f "$dest.new/agent/cli/kinglet.ts" ]; then
        top=$(find "$dest.new" -mindepth 1 -maxdepth 1)
        [ -f "$top/agent/cli/kinglet.ts" ] || fatal "the bundle has no agent/cli/kinglet.ts: it is not a kinglet bundle"
        $SUDO mv "$top" "$dest.tmp"
        $SUDO rm -rf "$dest.new"
        $SUDO mv "$dest.tmp" "$dest.new"
    fi
    $SUDO rm -rf "$dest"
    $SUDO mv "$dest.new" "$dest"
    BUNDLE_DIR=$dest
}

handover() {
    set -- "$BUNDLE_DIR/agent/cli/kinglet.ts" install
    case ${KINGLET_DRY_RUN:-} in 1 | true | yes) set -- "$@" --dry-run ;; esac
    case ${KINGLET_ALLOW_REBOOT:-} in 1 | true | yes) set -- "$@" --allow-reboot ;; esac
    info "handing over: $NODE $*"
    cleanup
    # The settings travel in the environment (KINGLET_*, K3S_*, INSTALL_K3S_*).
    # shellcheck disable=SC2086 # SUDO is a command and its options
    exec $SUDO "$NODE" "$@"
}

main() {
    setup_defaults
    setup_sudo
    verify_downloader
    verify_tools
    TMP_DIR=$(mktemp -d "${TMPDIR:-/tmp}/kinglet-install.XXXXXX") || fatal "cannot create a temporary directory: check TMPDIR"
    trap cleanup EXIT
    # Ctrl-C, kill, or a dropped ssh session: nothing left in the temporary directory.
    trap 'cleanup; exit 129' HUP
    trap 'cleanup; exit 130' INT TERM
    setup_node
    setup_bundle
    handover
}

main "$@"
