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
 *
 * A boot that cannot succeed (the runtime disk missing or unmountable, a helper that cannot run,
 * an agent that exits again and again before it ever answered the host) prints one line starting
 * with `vmctl-init: fatal: ` (the cause and the fix) and stops there: the supervisor fails the
 * boot on that line at once (GUEST_FATAL_LINE in supervisor.ts) instead of waiting for its boot
 * timeout while the init loops. An agent that dies after it served the host (it leaves
 * /run/vmctl/agent-session) is an ordinary crash: it is restarted, as before.
 */
/** How many times an agent that never answered the host may exit before the boot is given up. */
const AGENT_START_TRIES = 3

export const INIT_SCRIPT = `#!/bin/busybox sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t devtmpfs -o mode=0755 devtmpfs /dev 2>/dev/null
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /run/vmctl /tmp /dev/pts /dev/shm
# Terminals for commands that run here (a VM without a root: vm.exec(cmd, { tty })); a root brings
# its own (mount-root.c).
mount -t devpts -o newinstance,ptmxmode=0666,gid=5,mode=620 devpts /dev/pts 2>/dev/null
exec </dev/null >/dev/console 2>&1
say() { echo "vmctl-init: $*"; }
# Stops this boot for good: the host reads the line and ends the VM (no loop, no reboot: QEMU's exit
# could reach the host before the line does).
fatal() { echo "vmctl-init: fatal: $*"; while :; do sleep 3600; done; }
# A helper that cannot be executed: the usual cause is a package whose files lost their modes.
check_executable() {
  [ -x "$1" ] && return
  fatal "$1 on the runtime disk is not executable ($(ls -l "$1" 2>&1)): the runtime disk lacks the modes vmctl gives it when it builds one (a disk made by another tool or an older vmctl?). Fix: delete the cached runtime disks in ~/.cache/vmctl/runtime so that vmctl builds a new one"
}
uptime_s() { read -r up _ </proc/uptime; echo "$up"; }
say "started at $(uptime_s)s"

while read -r m; do
  [ -n "$m" ] && { insmod "/lib/modules/$m" || say "insmod $m failed"; }
done </etc/vmctl/modules
case "$vmctl_agent" in
  vsock:*) while read -r m; do [ -n "$m" ] && { insmod "/lib/modules/$m" || say "insmod $m failed"; }; done </etc/vmctl/modules-vsock ;;
esac
# The SCSI disk drivers of hot-plugged disks, loaded before the agent (and so before a template is
# saved): every VM restored from the template has them, and its first attachDisk does not pay ~9
# insmods under TCG (docs/disks.md).
while read -r m; do
  [ -n "$m" ] && { insmod "/lib/modules/$m" || say "insmod $m failed"; }
done </etc/vmctl/modules-disks
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
serials=
for b in /sys/block/vd*; do
  serial="$(cat "$b/serial" 2>/dev/null)"
  serials="$serials \${b##*/}:'$serial'"
  [ "$serial" = "$vmctl_runtime_serial" ] && rt="/dev/\${b##*/}"
done
[ -n "$rt" ] || fatal "no disk has the serial '$vmctl_runtime_serial' of vmctl's runtime disk (disks:\${serials:- none}), so the agent cannot start. Fix: do not set vmctl_runtime_serial (or other vmctl_* parameters) in kernelArgs; the guest kernel needs virtio_blk"
err="$(mount -t ext4 -o ro,noload "$rt" /vmctl 2>&1)" ||
  fatal "cannot mount vmctl's runtime disk $rt (ext4, read-only): \${err:-mount failed}. Fix: delete the cached runtime disks in ~/.cache/vmctl/runtime so that vmctl builds a new one; the guest kernel needs ext4"
check_executable /vmctl/guest-setup
check_executable /vmctl/vmctl-agent
case "$vmctl_agent" in vsock:*) check_executable /vmctl/vsock-bridge ;; esac

# The root for commands, and the refreshes of VMs restored from snapshots (clock, RNG, hostname):
# guest-setup, one static C process (packages/agent/native/guest-setup.c). The same root mount as
# busybox commands cost ~20 fork/execs, 0.5 s under TCG. It exits with 3 when the VM has no refresh
# port; then it is not restarted.
(
  while :; do
    /vmctl/guest-setup
    status=$?
    [ $status = 3 ] && break
    [ $status -ge 126 ] && [ $status -le 127 ] &&
      fatal "/vmctl/guest-setup cannot run (exit status $status; its error is above). Fix: delete the cached runtime disks in ~/.cache/vmctl/runtime and check that @vmctl/agent's dist/guest-setup is a static x86-64 executable"
    say "guest-setup exited with status $status, restarting"
    sleep 1
  done
) &

# The agent, restarted whenever it exits. One that never answered the host and keeps exiting cannot
# start at all: after AGENT_START_TRIES exits the boot ends (its own error is on the console above).
(
  tries=0
  while :; do
    /vmctl/vmctl-agent
    status=$?
    [ $status -ge 126 ] && [ $status -le 127 ] &&
      fatal "the guest agent /vmctl/vmctl-agent cannot run (exit status $status; its error is above). Fix: delete the cached runtime disks in ~/.cache/vmctl/runtime so that vmctl builds the agent again"
    if [ ! -e /run/vmctl/agent-session ]; then
      tries=$((tries + 1))
      [ $tries -ge ${AGENT_START_TRIES} ] &&
        fatal "the guest agent exited $tries times (last exit status $status) before it ever answered the host; its own error is in the lines above. Fix: that error's cause (a broken agent build: delete ~/.cache/vmctl/runtime to rebuild it)"
    fi
    say "agent exited with status $status, restarting"
    sleep 0.2
  done
) &

# PID 1 stays, reaping orphans (ash's wait collects any child).
while :; do sleep 3600; done
`
