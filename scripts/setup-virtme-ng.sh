#!/usr/bin/env bash
# Installs virtme-ng's `vng` for `pnpm bench:kernels`' side-by-side comparison, on Debian 12.
#
# virtme-ng is packaged for Debian 13 (trixie) only; its .deb is architecture `all` (Python) and
# runs on bookworm's python3. This script leaves the host's apt alone: no trixie line in
# sources.list, no `dpkg -i` of a package from another release. It installs the dependencies
# from bookworm with apt, downloads trixie's .deb over HTTPS (checked against the SHA256 that
# trixie's package index gives; the index's own signature is not checked), unpacks it under
# $PREFIX (default /opt/virtme-ng), and puts a `vng` wrapper in $BINDIR (default /usr/local/bin).
# Idempotent; `--remove` undoes it.
set -euo pipefail

MIRROR="${VMCTL_DEBIAN_MIRROR:-https://deb.debian.org/debian}"
PREFIX="${PREFIX:-/opt/virtme-ng}"
BINDIR="${BINDIR:-/usr/local/bin}"
say() { printf '\033[1msetup-virtme-ng:\033[0m %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if [ "${1:-}" = "--remove" ]; then
  [ -f "$PREFIX/wrappers" ] && while read -r w; do as_root rm -f "$BINDIR/$w"; done <"$PREFIX/wrappers"
  as_root rm -rf "$PREFIX"
  say "removed $PREFIX and its programs in $BINDIR"
  exit 0
fi

# What the package's Depends line names, all in bookworm; qemu-system-x86 vmctl needs anyway; udev:
# vng's shell init (the Rust virtme-ng-init is not in the package) runs the host's systemd-udevd to
# create /dev/virtio-ports/*, and without it every `vng --run -- CMD` ends with "cannot find
# script I/O ports". Installing it in a container starts nothing.
deps=(python3 python3-requests python3-argcomplete python3-pkg-resources file kmod qemu-system-x86 udev)
missing=()
for p in "${deps[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} (bookworm)"
  as_root apt-get install -y --no-install-recommends "${missing[@]}"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
say "looking up virtme-ng in trixie's index"
curl -fsSL "$MIRROR/dists/trixie/main/binary-all/Packages.xz" | xz -dc >"$work/Packages"
stanza="$(awk -v RS= '/(^|\n)Package: virtme-ng\n/' "$work/Packages")"
[ -n "$stanza" ] || { say "trixie's index has no virtme-ng"; exit 1; }
field() { printf '%s\n' "$stanza" | sed -n "s/^$1: //p" | head -1; }
version="$(field Version)"
if [ -x "$BINDIR/vng" ] && [ "$(cat "$PREFIX/version" 2>/dev/null)" = "$version" ]; then
  say "virtme-ng $version is already installed ($BINDIR/vng)"
  exit 0
fi
say "downloading virtme-ng $version"
curl -fsSL -o "$work/virtme-ng.deb" "$MIRROR/$(field Filename)"
echo "$(field SHA256)  $work/virtme-ng.deb" | sha256sum -c --quiet

as_root rm -rf "$PREFIX"
as_root mkdir -p "$PREFIX" "$BINDIR"
as_root dpkg-deb -x "$work/virtme-ng.deb" "$PREFIX"
echo "$version" | as_root tee "$PREFIX/version" >/dev/null
# A wrapper per program (vng runs virtme-run, ...), each setting PYTHONPATH to the unpacked
# modules. The programs' own #! names /usr/bin/python3, Debian's, whose python3-* packages are
# the ones installed above (a python3 earlier on PATH, pyenv or a virtualenv, lacks them).
for program in "$PREFIX"/usr/bin/*; do
  as_root tee "$BINDIR/${program##*/}" >/dev/null <<EOF
#!/bin/sh
# virtme-ng $version from Debian trixie, unpacked by vmctl's scripts/setup-virtme-ng.sh.
PYTHONPATH="$PREFIX/usr/lib/python3/dist-packages\${PYTHONPATH:+:\$PYTHONPATH}" exec "$program" "\$@"
EOF
  as_root chmod +x "$BINDIR/${program##*/}"
  echo "${program##*/}" | as_root tee -a "$PREFIX/wrappers" >/dev/null
done
say "installed: $("$BINDIR/vng" --version 2>&1 | head -1)"
