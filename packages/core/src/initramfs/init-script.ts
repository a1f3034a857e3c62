/**
 * The initramfs's /init (busybox sh, PID 1). Its configuration arrives as `vmctl_*` kernel
 * parameters, which the kernel hands to init as environment variables (names without a dot are
 * not taken for module parameters).
 *
 * The guest's /tmp is the host's /tmp under the overlay, not a fresh tmpfs: projects checked out
 * under /tmp (CI clones, mktemp -d) must be visible at the same path, and writes stay in the guest.
 *
 * Order matters for speed and for snapshots: guest-setup (native C: the root mount, the refresh of
 * restored VMs) and the agent start right after the drivers load, before the root is mounted, so
 * a later snapshot can be taken before any host share exists (QEMU refuses to migrate while a 9p
 * export is mounted). The root mount runs beside the agent, which reports SERVING once
 * /run/vmctl/root-ready appears. The init itself only waits: after a restore no shell runs.
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
 *   vmctl_defer_root "1": guest-setup mounts the root only after its first refresh (a template is
 *                    saved before that; each VM restored from it gets its hostname, clock and
 *                    entropy, then its root)
 */
export const INIT_SCRIPT = `#!/bin/busybox sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t devtmpfs -o mode=0755 devtmpfs /dev 2>/dev/null
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /run/vmctl /tmp /dev/pts /dev/shm
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

# The root for commands, and the refreshes of VMs restored from snapshots (clock, RNG, hostname):
# guest-setup, one static C process (packages/agent/native/guest-setup.c). The same root mount as
# busybox commands cost ~20 fork/execs, 0.5 s under TCG. It exits with 3 when the VM has no refresh
# port; then it is not restarted.
(
  while :; do
    /vmctl/guest-setup
    [ $? = 3 ] && break
    say "guest-setup exited, restarting"
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

# PID 1 stays, reaping orphans (ash's wait collects any child).
while :; do sleep 3600; done
`
