#!/usr/bin/env bash
# Fetches Debian's generic amd64 kernel into vmctl's cache, idempotently.
#
# Why the generic kernel: Debian's -cloud- kernel has no 9p at all, and kernel mode shares the host
# root over virtio-9p. Its virtio, 9p, overlay and vsock drivers are modules; vmctl's generated
# initramfs loads them.
#
# Layout: $CACHE/kernels/<release>/{vmlinuz,vmlinux,config,lib/modules/<release>/...}
#         $CACHE/kernels/default -> <release>
# vmlinux is the uncompressed ELF taken out of vmlinuz: QEMU boots it through the PVH entry point,
# which skips the in-guest decompressor (about 0.9 s of a 3.5 s boot under TCG, see
# docs/boot-recipe.md).
set -euo pipefail

cache="${VMCTL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vmctl}"
kernels="$cache/kernels"
mkdir -p "$kernels"

if [ -L "$kernels/default" ] && [ -f "$kernels/default/vmlinux" ] && [ -f "$kernels/default/.complete" ]; then
  echo "vmctl: guest kernel $(readlink "$kernels/default") already in $kernels"
  exit 0
fi

need() { command -v "$1" >/dev/null 2>&1 || { echo "vmctl setup: '$1' is missing (install package $2)" >&2; exit 1; }; }
need apt-get apt; need dpkg-deb dpkg; need xz xz-utils; need depmod kmod

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# As root, apt downloads as its sandbox user _apt, which cannot write our private directory.
sandbox=()
[ "$(id -u)" -eq 0 ] && sandbox=(-o APT::Sandbox::User=root)

# The metapackage names the current versioned kernel package in its Depends.
if ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then
  echo "vmctl setup: this system's apt has no linux-image-amd64 (Debian's kernel package; Ubuntu has none)." >&2
  echo "  Point vmctl at a kernel instead: VMCTL_KERNEL=/boot/vmlinuz-\$(uname -r) (make it readable), or a kernel directory." >&2
  exit 1
fi
apt-get "${sandbox[@]}" download linux-image-amd64 >/dev/null
meta=$(ls linux-image-amd64_*.deb)
versioned=$(dpkg-deb -f "$meta" Depends | tr ',' '\n' | sed -n 's/^ *\(linux-image-[0-9][^ ]*\).*/\1/p' | head -n1)
[ -n "$versioned" ] || { echo "vmctl setup: cannot read the kernel package from $meta" >&2; exit 1; }
echo "vmctl: downloading $versioned"
apt-get "${sandbox[@]}" download "$versioned" >/dev/null
deb=$(ls "$versioned"_*.deb)
release=${versioned#linux-image-}

dest="$kernels/$release"
rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
dpkg-deb -x "$deb" "$dest.tmp/root"
mv "$dest.tmp/root/boot/vmlinuz-$release" "$dest.tmp/vmlinuz"
mv "$dest.tmp/root/boot/config-$release" "$dest.tmp/config"
mkdir -p "$dest.tmp/lib/modules"
mv "$dest.tmp/root/lib/modules/$release" "$dest.tmp/lib/modules/$release"
rm -rf "$dest.tmp/root"
# modules.dep is made by the package's postinst, which we do not run.
depmod -b "$dest.tmp" "$release"

# Extract the uncompressed ELF: find the xz stream inside the bzImage and decompress it.
offset=$(grep -abo $'\xfd7zXZ\x00' "$dest.tmp/vmlinuz" | head -n1 | cut -d: -f1)
[ -n "$offset" ] || { echo "vmctl setup: no xz payload found in vmlinuz" >&2; exit 1; }
tail -c +$((offset + 1)) "$dest.tmp/vmlinuz" | xz -dc 2>/dev/null > "$dest.tmp/vmlinux" || true
head -c 4 "$dest.tmp/vmlinux" | grep -q 'ELF' || { echo "vmctl setup: vmlinux extraction failed" >&2; exit 1; }
echo "$release" > "$dest.tmp/release"
touch "$dest.tmp/.complete"

rm -rf "$dest" && mv "$dest.tmp" "$dest"
ln -sfn "$release" "$kernels/default"
echo "vmctl: guest kernel $release installed in $dest"
