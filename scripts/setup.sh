#!/usr/bin/env bash
# Sets up everything vmctl needs on a Debian/Ubuntu machine, idempotently: a second run takes
# seconds. System packages (with sudo only when not root), pnpm, the workspace's dependencies and
# build, then `vmctl setup` (what users run as `npx vmctl setup`): the default guest kernel in
# ~/.cache/vmctl (or $XDG_CACHE_HOME/vmctl), fetched from Debian's archive in Node, and the host check.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1mvmctl setup:\033[0m %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# qemu-system-x86/qemu-utils: the VMs. busybox-static: the guest init (vmctl fetches Debian's when a
# host has none; the host's is preferred). e2fsprogs: the agent's runtime disk (mkfs.ext4 -d).
# kmod: depmod, for the module indexes kmod's modprobe reads in the guest.
# util-linux: setpriv, which ties QEMU's life to its supervisor. iproute2: `ip` for guest commands.
# gcc + libc6-dev: the native helpers, small static C programs: guest-setup (the guest's root mount and
# the refresh of VMs restored from templates; required) and vsock-bridge (Node has no AF_VSOCK).
packages=(qemu-system-x86 qemu-utils busybox-static e2fsprogs kmod util-linux iproute2 gcc libc6-dev)
# mmdebstrap (+ fakeroot when not root): `vmctl image build`, Debian images from the archive without
# root-only mounts (the filesystem is made with mkfs.ext4 -d).
packages+=(mmdebstrap fakeroot)
# runc, postgresql: guest programs of examples/1-kernel-features and examples/3-postgresql. (Debian
# starts a host cluster when it installs postgresql; the example never uses it: its cluster lives in
# the VM.)
packages+=(runc postgresql)
# zstd: the test that carries a vmctl cache through tar and zstd, as actions/cache does.
packages+=(zstd)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

node_version=$(node -p 'process.versions.node' 2>/dev/null || echo 0)
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' 2>/dev/null; then
  echo "vmctl setup: Node.js >= 20.19 is required (found $node_version). Install Node 20.19+, 22 or 24." >&2
  exit 1
fi

if ! command -v pnpm >/dev/null 2>&1; then
  say "installing pnpm"
  # corepack's signature check fails on some machines; npm is the dependable path.
  if [ -w "$(npm prefix -g)/lib" ] || [ "$(id -u)" -eq 0 ]; then npm i -g pnpm@10 >/dev/null; else as_root npm i -g pnpm@10 >/dev/null; fi
fi

say "installing dependencies"
pnpm install --frozen-lockfile --reporter=silent
say "building"
TURBO_TELEMETRY_DISABLED=1 pnpm -s turbo run build --output-logs=errors-only >/dev/null

# The same code path as a user's `npx vmctl setup` (and as VM.up() on a host without a kernel).
# --no-kernel (CI, before a cached ~/.cache/vmctl is restored): check the host, download nothing.
if [ "${1:-}" = "--no-kernel" ]; then node packages/cli/dist/main.js setup --no-fetch; else node packages/cli/dist/main.js setup; fi
say "ready. Try: pnpm vmctl run -- uname -a"
