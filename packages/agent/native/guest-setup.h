/*
 * guest-setup: the guest's native helper, started by vmctl's init (see guest-setup.c). Two parts:
 * mount-root.c assembles the root filesystem commands run in; clone-refresh.c makes a VM restored
 * from a snapshot its own (clock, RNG, hostname) on request from the host.
 */
#ifndef VMCTL_GUEST_SETUP_H
#define VMCTL_GUEST_SETUP_H

#include <stddef.h>

/**
 * Mounts the root described by the init's environment (vmctl_root, vmctl_chroot, vmctl_modules,
 * vmctl_mounts, vmctl_net), then creates /run/vmctl/root-ready. On failure, writes the reason to
 * /run/vmctl/root-failed, prints it on the console as "vmctl-init: root: REASON" and returns -1.
 * Does nothing when the root is already done (this process was restarted).
 */
int mount_root(void);

/**
 * Mounts the root's kernel filesystems (proc, sys, dev, run, cgroup2) in a staging directory, so
 * that mount_root only moves them into place: done before a template is saved. Idempotent.
 */
void stage_system_mounts(void);

/**
 * The hostname changed after the root was mounted (a spare VM given its name, see
 * packages/core/src/supervisor/spare-park.ts): the root's /etc/hostname and /etc/hosts say the
 * new one. Nothing when the root is not mounted (yet): mount_root writes them then.
 */
void root_hostname_changed(void);

/**
 * The answer to the host's `ROOT <id>` request: "OK <id>" once the root is mounted (or when the VM
 * has none to mount), "ERR <id> <reason>" when it failed or is still deferred.
 */
void root_status(const char *id, char *reply, size_t size);

/**
 * Ends the lap `step` (its guest milliseconds go on the "root ready" console line) and starts the
 * next; "" only starts one.
 */
void lap(const char *step);

/** The first line of a (small) file, without its newline; -1 when it cannot be read or is empty. */
int read_line(const char *path, char *out, size_t size);

/** True when the init's environment asks for a root (kernel and image modes). */
int root_wanted(void);

/**
 * Serves refresh requests on the virtio-serial port called `port_name` (see clone-refresh.c),
 * calling `after_refresh` after each successful one. Returns only when the VM has no such port.
 */
void serve_refresh(const char *port_name, void (*after_refresh)(void));

#endif
