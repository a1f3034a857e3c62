/**
 * The initramfs's /init (busybox sh, PID 1). Its configuration arrives as `vmctl_*` kernel
 * parameters, which the kernel hands to init as environment variables (names without a dot are
 * not taken for module parameters).
 *
 * The guest's /tmp is the host's /tmp under the overlay, not a fresh tmpfs: projects checked out
 * under /tmp (CI clones, mktemp -d) must be visible at the same path, and writes stay in the guest.
 *
 * Order matters for speed and for snapshots: the agent starts right after the drivers load and
 * before the root is mounted, so a later snapshot can be taken before any host share exists (QEMU
 * refuses to migrate while a 9p export is mounted). The root mount runs beside it; the agent
 * reports SERVING once /run/vmctl/root-ready appears.
 *
 *   vmctl_hostname   guest hostname
 *   vmctl_net        "ADDR/PREFIX,GATEWAY,DNS" for eth0 (QEMU user networking)
 *   vmctl_root       "9p:TAG" host root over virtio-9p, read-only, with a tmpfs overlay on top;
 *                    "disk:SERIAL" image mode: the ext4 root filesystem of the virtio-blk disk with
 *                    that serial (the whole disk, or the largest of its partitions holding one),
 *                    mounted read-write (the disk is the VM's own qcow2 overlay)
 *   vmctl_mounts     "TAG:GUESTPATH:ro|rw,..." host directories over 9p, mounted once the root is
 *   vmctl_modules    host path of the guest kernel's module tree (seen through the root share)
 *   vmctl_chroot     where the root is mounted and commands run (the agent reads it too)
 *   vmctl_runtime_serial  serial of the virtio-blk disk holding node and the agent
 *   vmctl_agent      "vsock:PORT": the agent listens on vsock (its modules load first), else virtio-serial
 *   vmctl_defer_root "1": mount the root only once the agent writes to the FIFO /run/vmctl/go (a
 *                    template is saved before that, with this shell asleep in open(): no polling
 *                    wakes a saved guest; each VM restored from it gets its hostname, clock and
 *                    entropy, then goes)
 */
export const INIT_SCRIPT = `#!/bin/busybox sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t devtmpfs -o mode=0755 devtmpfs /dev 2>/dev/null
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /run/vmctl /tmp /dev/pts /dev/shm
[ -n "$vmctl_defer_root" ] && mkfifo /run/vmctl/go
exec </dev/null >/dev/console 2>&1
say() { echo "vmctl-init: $*"; }
uptime_s() { read -r up _ </proc/uptime; echo "$up"; }
say "started at $(uptime_s)s"

while read -r m; do
  [ -n "$m" ] && { insmod "/lib/modules/$m" || say "insmod $m failed"; }
done </etc/vmctl/modules
case "$vmctl_agent" in
  vsock:*) while read -r m; do [ -n "$m" ] && { insmod "/lib/modules/$m" || say "insmod $m failed"; }; done </etc/vmctl/modules-vsock ;;
esac
say "drivers loaded at $(uptime_s)s"

ip link set lo up
[ -n "$vmctl_hostname" ] && hostname "$vmctl_hostname"
if [ -n "$vmctl_net" ]; then
  IFS=, read -r addr gw dns <<EOF
$vmctl_net
EOF
  ip link set eth0 up && ip addr add "$addr" dev eth0 && ip route add default via "$gw" || say "network setup failed"
fi

# The agent (one executable) comes on a read-only disk found by its serial, not in this initramfs.
for b in /sys/block/vd*; do
  [ "$(cat "$b/serial" 2>/dev/null)" = "$vmctl_runtime_serial" ] && rt="/dev/\${b##*/}"
done
mount -t ext4 -o ro,noload "$rt" /vmctl || say "cannot mount the runtime disk '$rt'"

# Refreshes a VM restored from a snapshot (clock, RNG, hostname) and lets a deferred root go, in C,
# before the agent is awake (see clone-refresh.c). It exits with 3 when the VM has no such port.
[ -x /vmctl/clone-refresh ] && (
  while :; do
    /vmctl/clone-refresh serve vmctl.refresh /run/vmctl/go
    [ $? = 3 ] && break
    sleep 1
  done
) &

# The agent, restarted whenever it exits.
(
  while :; do
    /vmctl/vmctl-agent
    say "agent exited with status $?, restarting"
    sleep 0.2
  done
) &

fail_root() { say "root: $*"; echo "$*" >/run/vmctl/root-failed; }

mount_root() {
  R="$vmctl_chroot"
  case "$vmctl_root" in
    9p:*)
      mkdir -p /mnt/lower /mnt/rw "$R"
      mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose "\${vmctl_root#9p:}" /mnt/lower \\
        || { fail_root "cannot mount the host root over 9p (does the kernel have 9p/9pnet_virtio?)"; return; }
      mount -t tmpfs -o mode=0755 rw /mnt/rw && mkdir -p /mnt/rw/upper /mnt/rw/work
      mount -t overlay -o lowerdir=/mnt/lower,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work overlay "$R" \\
        || { fail_root "cannot mount the overlay (does the kernel have overlayfs?)"; return; }
      ;;
    disk:*)
      mkdir -p "$R"
      disk=""
      for b in /sys/block/vd*; do
        [ "$(cat "$b/serial" 2>/dev/null)" = "\${vmctl_root#disk:}" ] && disk="\${b##*/}"
      done
      [ -n "$disk" ] || { fail_root "the image disk is missing"; return; }
      # A whole-disk filesystem, or partitions (cloud images: GPT, root usually the largest).
      parts=$(for p in /sys/block/$disk/$disk*; do [ -e "$p/partition" ] && echo "$(cat "$p/size") \${p##*/}"; done | sort -rn | while read -r _ n; do echo "$n"; done)
      mounted=""
      for dev in $disk $parts; do
        mount -t ext4 -o rw,noatime "/dev/$dev" "$R" 2>/dev/null || continue
        if [ -e "$R/bin/sh" ] || [ -L "$R/bin/sh" ]; then mounted=$dev; break; fi
        umount "$R"
      done
      [ -n "$mounted" ] || { fail_root "no ext4 root filesystem with /bin/sh on the image disk (devices tried: $disk $parts). vmctl boots images whose root is ext4, on the whole disk or a partition"; return; }
      say "image root: /dev/$mounted"
      mkdir -p "$R/proc" "$R/sys" "$R/dev" "$R/run" "$R/tmp"
      ;;
    *) fail_root "unknown vmctl_root '$vmctl_root'"; return ;;
  esac
  mount -t proc proc "$R/proc"
  mount -t sysfs sysfs "$R/sys"
  mount -t devtmpfs -o mode=0755 devtmpfs "$R/dev"
  mkdir -p "$R/dev/pts" "$R/dev/shm"
  mount -t devpts -o newinstance,ptmxmode=0666,gid=5,mode=620 devpts "$R/dev/pts"
  ln -sf pts/ptmx "$R/dev/ptmx" 2>/dev/null
  mount -t tmpfs -o mode=1777 shm "$R/dev/shm"
  mount -t tmpfs -o mode=0755 run "$R/run"
  mount -t cgroup2 cgroup2 "$R/sys/fs/cgroup" 2>/dev/null
  release=$(uname -r)
  if [ -n "$vmctl_modules" ] && [ -d "/mnt/lower$vmctl_modules" ]; then
    # The guest kernel's own modules, where modprobe (ours and the root's) looks for them.
    mkdir -p "$R/lib/modules/$release"
    mount --bind "/mnt/lower$vmctl_modules" "$R/lib/modules/$release"
    mount --bind "/mnt/lower$vmctl_modules" "/lib/modules/$release"
  fi
  if [ -n "$vmctl_mounts" ]; then
    for m in $(echo "$vmctl_mounts" | tr , ' '); do
      tag=\${m%%:*}; rest=\${m#*:}; mode=\${rest##*:}; guest=\${rest%:*}
      mkdir -p "$R$guest" && mount -t 9p -o "trans=virtio,version=9p2000.L,msize=512000,cache=mmap,$mode" "$tag" "$R$guest" \
        || { fail_root "cannot mount the host directory for $guest (9p tag $tag)"; return; }
    done
  fi
  rm -f "$R/etc/resolv.conf" "$R/etc/hostname"
  [ -n "$dns" ] && echo "nameserver $dns" >"$R/etc/resolv.conf"
  h=$(hostname)
  echo "$h" >"$R/etc/hostname"
  printf '127.0.0.1\\tlocalhost\\n127.0.1.1\\t%s\\n::1\\tlocalhost ip6-localhost ip6-loopback\\n' "$h" >"$R/etc/hosts"
  touch /run/vmctl/root-ready
  say "root ready at $(uptime_s)s"
}

defer_root() { read -r _ </run/vmctl/go; }
[ -n "$vmctl_root" ] && { [ -z "$vmctl_defer_root" ] || defer_root; mount_root; } &

# PID 1 stays, reaping orphans (ash's wait collects any child).
while :; do sleep 3600; done
`
