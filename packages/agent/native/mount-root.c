/*
 * The guest's root for commands, assembled with system calls (part of guest-setup).
 *
 * From the init's environment (kernel parameters, see core's init-script.ts):
 *   vmctl_root "9p:TAG": the host's root over virtio-9p (read-only) with a tmpfs overlay on top,
 *              mounted at vmctl_chroot (kernel mode);
 *              "disk:SERIAL": the ext4 root filesystem of the virtio-blk disk with that serial, the
 *              whole disk or the largest of its partitions holding /bin/sh (image mode).
 * Then, in it: proc, sys, dev, dev/pts, dev/shm, run and the cgroup2 hierarchy (its controllers
 * enabled for child cgroups); the guest kernel's modules (vmctl_modules, seen through the 9p share)
 * where modprobe looks for them; the host directories of vmctl_mounts ("TAG:GUESTPATH:ro|rw,...");
 * resolv.conf (vmctl_net's DNS), hostname and hosts. Last, /run/vmctl/root-ready.
 *
 * Why C: the same steps as busybox commands cost about twenty fork/execs (busybox mount forks once
 * more to look for a mount.TYPE helper in every PATH directory), 0.5-0.6 s under TCG, and a VM
 * restored from a template can run no command before they are done.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "guest-setup.h"

static int fail(const char *format, ...) {
  char reason[512];
  va_list args;
  va_start(args, format);
  vsnprintf(reason, sizeof reason, format, args);
  va_end(args);
  printf("vmctl-init: root: %s\n", reason);
  fflush(stdout);
  FILE *file = fopen("/run/vmctl/root-failed", "w");
  if (file) {
    fprintf(file, "%s\n", reason);
    fclose(file);
  }
  return -1;
}

/*
 * Where a root mount's time goes, for its console line: after a restore every kernel path here runs
 * through a cold TCG translation cache, and this line says which step pays (docs/first-command.md).
 */
static char laps[256];
static struct timespec lap_start;

void lap(const char *step) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  if (*step) {
    long ms = (now.tv_sec - lap_start.tv_sec) * 1000 + (now.tv_nsec - lap_start.tv_nsec) / 1000000;
    size_t used = strlen(laps);
    snprintf(laps + used, sizeof laps - used, "%s%s %ld", used ? ", " : "", step, ms);
  }
  lap_start = now;
}

/** mkdir -p */
static int make_dirs(const char *path, mode_t mode) {
  char buffer[4096];
  if (snprintf(buffer, sizeof buffer, "%s", path) >= (int)sizeof buffer) return errno = ENAMETOOLONG, -1;
  for (char *p = buffer + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(buffer, mode) < 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  return mkdir(buffer, mode) < 0 && errno != EEXIST ? -1 : 0;
}

static int is_mount_point(const char *path);

static int join(char *out, size_t size, const char *a, const char *b) {
  if (snprintf(out, size, "%s%s", a, b) < (int)size) return 0;
  out[0] = 0;
  return errno = ENAMETOOLONG, -1;
}

static int mount_at(const char *source, const char *root, const char *path, const char *type,
                    unsigned long flags, const char *data) {
  char target[4096];
  if (join(target, sizeof target, root, path) < 0) return -1;
  make_dirs(target, 0755);
  return mount(source, target, type, flags, data);
}

/*
 * Every controller the kernel offers is made available to child cgroups, as systemd does on a
 * host, so a test can `mkdir /sys/fs/cgroup/x` and set x/memory.max at once. One write per
 * controller: one the root cannot delegate (cpu, with realtime threads) must not hold back the
 * rest. Kernel state made by every boot and restore alike (a template is saved before this runs).
 */
static void enable_controllers(const char *root) {
  char path[4096], controllers[512] = "";
  if (join(path, sizeof path, root, "/sys/fs/cgroup/cgroup.controllers") < 0) return;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t length = read(fd, controllers, sizeof controllers - 1);
  close(fd);
  if (length <= 0) return;
  controllers[length] = 0;
  if (join(path, sizeof path, root, "/sys/fs/cgroup/cgroup.subtree_control") < 0) return;
  fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  for (char *name = strtok(controllers, " \n"); name; name = strtok(NULL, " \n")) {
    char enable[64];
    snprintf(enable, sizeof enable, "+%s", name);
    if (write(fd, enable, strlen(enable)) < 0)
      printf("vmctl-init: cgroup controller %s not enabled for child cgroups: %s\n", name, strerror(errno));
  }
  close(fd);
}

static void write_file(const char *path, const char *text) {
  unlink(path);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || write(fd, text, strlen(text)) < 0)
    printf("vmctl-init: cannot write %s: %s\n", path, strerror(errno));
  if (fd >= 0) close(fd);
}

static void uptime(char *out, size_t size) {
  snprintf(out, size, "?");
  FILE *file = fopen("/proc/uptime", "r");
  if (!file) return;
  double seconds;
  if (fscanf(file, "%lf", &seconds) == 1) snprintf(out, size, "%.2f", seconds);
  fclose(file);
}

static int host_directories(const char *root, char *spec) {
  for (char *save = NULL, *entry = strtok_r(spec, ",", &save); entry; entry = strtok_r(NULL, ",", &save)) {
    // TAG:GUESTPATH:MODE, the guest path possibly holding colons: the mode is after the last one.
    char *first = strchr(entry, ':'), *last = strrchr(entry, ':');
    if (!first || first == last) return fail("bad vmctl_mounts entry '%s'", entry);
    *first = 0;
    *last = 0;
    const char *tag = entry, *guest = first + 1, *mode = last + 1;
    unsigned long flags = strcmp(mode, "ro") == 0 ? MS_RDONLY : 0;
    if (mount_at(tag, root, guest, "9p", flags, "trans=virtio,version=9p2000.L,msize=512000,cache=mmap") < 0)
      return fail("cannot mount the host directory for %s (9p tag %s): %s", guest, tag, strerror(errno));
  }
  return 0;
}

static const char *env(const char *name) {
  const char *value = getenv(name);
  return value ? value : "";
}

int read_line(const char *path, char *out, size_t size) {
  out[0] = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, out, size - 1);
  close(fd);
  if (n <= 0) return -1;
  out[n] = 0;
  out[strcspn(out, "\n")] = 0;
  return 0;
}

int root_wanted(void) {
  return *env("vmctl_root") != 0;
}

void root_status(const char *id, char *reply, size_t size) {
  char reason[512];
  if (!root_wanted() || access("/run/vmctl/root-ready", F_OK) == 0)
    snprintf(reply, size, "OK %.32s\n", id);
  else if (read_line("/run/vmctl/root-failed", reason, sizeof reason) == 0)
    snprintf(reply, size, "ERR %.32s %s\n", id, reason);
  else
    snprintf(reply, size, "ERR %.32s the root is not mounted yet (deferred until a refresh)\n", id);
}

struct candidate {
  char name[256];
  long long size;
};

static int by_size_descending(const void *a, const void *b) {
  long long x = ((const struct candidate *)a)->size, y = ((const struct candidate *)b)->size;
  return x < y ? 1 : x > y ? -1 : 0;
}

/** Image mode: the disk with `serial`, whole or its largest partition, whose ext4 holds /bin/sh. */
static int mount_image_root(const char *serial, const char *root) {
  char disk[256] = "", path[768], text[128];
  DIR *block = opendir("/sys/block");
  for (struct dirent *entry; block && (entry = readdir(block));) {
    if (strncmp(entry->d_name, "vd", 2) != 0) continue;
    snprintf(path, sizeof path, "/sys/block/%s/serial", entry->d_name);
    if (read_line(path, text, sizeof text) == 0 && strcmp(text, serial) == 0)
      snprintf(disk, sizeof disk, "%s", entry->d_name);
  }
  if (block) closedir(block);
  if (!*disk) return fail("the image disk is missing");
  // A whole-disk filesystem, or partitions (cloud images: GPT, root usually the largest).
  struct candidate candidates[64];
  int count = 0;
  snprintf(candidates[count++].name, sizeof candidates[0].name, "%s", disk);
  candidates[0].size = -1;
  snprintf(path, sizeof path, "/sys/block/%s", disk);
  DIR *partitions = opendir(path);
  for (struct dirent *entry; partitions && count < 64 && (entry = readdir(partitions));) {
    if (strncmp(entry->d_name, disk, strlen(disk)) != 0) continue;
    snprintf(path, sizeof path, "/sys/block/%s/%s/partition", disk, entry->d_name);
    if (access(path, F_OK) < 0) continue;
    snprintf(path, sizeof path, "/sys/block/%s/%s/size", disk, entry->d_name);
    if (read_line(path, text, sizeof text) < 0) continue;
    snprintf(candidates[count].name, sizeof candidates[0].name, "%s", entry->d_name);
    candidates[count++].size = atoll(text);
  }
  if (partitions) closedir(partitions);
  qsort(candidates + 1, (size_t)(count - 1), sizeof candidates[0], by_size_descending);
  make_dirs(root, 0755);
  char tried[1024] = "";
  for (int i = 0; i < count; i++) {
    snprintf(path, sizeof path, "/dev/%.255s", candidates[i].name);
    size_t used = strlen(tried);
    snprintf(tried + used, sizeof tried - used, "%s%.255s", used ? " " : "", candidates[i].name);
    if (mount(path, root, "ext4", MS_NOATIME, NULL) < 0) continue;
    struct stat shell;
    snprintf(path, sizeof path, "%s/bin/sh", root);
    if (lstat(path, &shell) == 0) {
      printf("vmctl-init: image root: /dev/%s\n", candidates[i].name);
      return 0;
    }
    umount(root);
  }
  return fail("no ext4 root filesystem with /bin/sh on the image disk (devices tried: %s). vmctl boots images "
              "whose root is ext4, on the whole disk or a partition",
              tried);
}

/*
 * The overlay's writable layer: a tmpfs with its upper and work directories. Nothing in it is the
 * host's, so a VM that a template is saved from makes it before the save (stage_system_mounts).
 */
#define UPPER "/mnt/rw/upper"

static int mount_upper(void) {
  if (is_mount_point("/mnt/rw")) return 0;
  make_dirs("/mnt/rw", 0755);
  if (mount("rw", "/mnt/rw", "tmpfs", 0, "mode=0755") < 0) return -1;
  if (make_dirs(UPPER, 0755) < 0 || make_dirs("/mnt/rw/work", 0755) < 0) return -1;
  return 0;
}

/*
 * The root's /etc files of this VM (write_etc), put straight into the upper layer before the
 * overlay is mounted: through the overlay, the first write in /etc copies the directory up and
 * replacing the host's resolv.conf makes a whiteout, kernel paths that a restored VM runs through a
 * cold translation cache (docs/first-command.md). The directory gets the host's /etc's mode and
 * owner, as a copy-up would. Without a DNS server (the host's resolv.conf is then removed, which
 * takes a whiteout) the files are written through the overlay: -1.
 */
static void write_etc(const char *etc, const char *dns);

static int prepare_upper_etc(const char *dns) {
  struct stat lower;
  /* lstat: an upper /etc over a symlinked one would hide its target (the overlay path then). */
  if (!*dns || lstat("/mnt/lower/etc", &lower) < 0 || !S_ISDIR(lower.st_mode)) return -1;
  if (mkdir(UPPER "/etc", lower.st_mode & 07777) < 0 && errno != EEXIST) return -1;
  if (chown(UPPER "/etc", lower.st_uid, lower.st_gid) < 0) return -1;
  write_etc(UPPER "/etc", dns);
  return 0;
}

/** Kernel mode: the host's root over 9p, read-only, under a tmpfs overlay. */
static int mount_host_root(const char *tag, const char *root, const char *dns, int *etc_done) {
  make_dirs("/mnt/lower", 0755);
  if (mount(tag, "/mnt/lower", "9p", MS_RDONLY, "trans=virtio,version=9p2000.L,msize=512000,cache=loose") < 0)
    return fail("cannot mount the host root over 9p (does the kernel have 9p/9pnet_virtio?): %s", strerror(errno));
  lap("9p");
  if (mount_upper() < 0) return fail("cannot mount a tmpfs for the root's writable layer: %s", strerror(errno));
  // vmctl_stage=0 (the other side of an A/B): the files are written through the overlay, as before.
  const char *stage = env("vmctl_stage");
  *etc_done = strcmp(stage, "0") != 0 && prepare_upper_etc(dns) == 0;
  lap("upper-etc");
  make_dirs(root, 0755);
  if (mount("overlay", root, "overlay", 0, "lowerdir=/mnt/lower,upperdir=" UPPER ",workdir=/mnt/rw/work") < 0)
    return fail("cannot mount the overlay (does the kernel have overlayfs?): %s", strerror(errno));
  return 0;
}

/*
 * The kernel filesystems of the root (proc, sys, dev with pts and shm, run, cgroup2), mounted under
 * `base`. Returns -1 (with the reason reported) when one cannot be mounted.
 */
static int mount_system(const char *base, const char *which) {
  int all = !*which;
  if ((all || strcmp(which, "/proc") == 0) && mount_at("proc", base, "/proc", "proc", 0, NULL) < 0)
    return fail("cannot mount /proc: %s", strerror(errno));
  if (all || strcmp(which, "/sys") == 0) {
    if (mount_at("sysfs", base, "/sys", "sysfs", 0, NULL) < 0) return fail("cannot mount /sys: %s", strerror(errno));
    // A kernel without cgroup v2 is fine.
    if (mount_at("cgroup2", base, "/sys/fs/cgroup", "cgroup2", 0, NULL) == 0) enable_controllers(base);
  }
  if (all || strcmp(which, "/dev") == 0) {
    if (mount_at("devtmpfs", base, "/dev", "devtmpfs", 0, "mode=0755") < 0)
      return fail("cannot mount /dev: %s", strerror(errno));
    if (mount_at("devpts", base, "/dev/pts", "devpts", 0, "newinstance,ptmxmode=0666,gid=5,mode=620") < 0)
      return fail("cannot mount /dev/pts: %s", strerror(errno));
    char path[4096];
    join(path, sizeof path, base, "/dev/ptmx");
    unlink(path);
    if (symlink("pts/ptmx", path) < 0) printf("vmctl-init: cannot link %s: %s\n", path, strerror(errno));
    if (mount_at("shm", base, "/dev/shm", "tmpfs", 0, "mode=1777") < 0)
      return fail("cannot mount /dev/shm: %s", strerror(errno));
    // What udev makes on a host: scripts open /dev/stdin (a command's stdin is a pipe, see spawner.c).
    static const char *const links[][2] = {
        {"/dev/fd", "/proc/self/fd"}, {"/dev/stdin", "/proc/self/fd/0"},
        {"/dev/stdout", "/proc/self/fd/1"}, {"/dev/stderr", "/proc/self/fd/2"}};
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
      join(path, sizeof path, base, links[i][0]);
      if (symlink(links[i][1], path) < 0 && errno != EEXIST)
        printf("vmctl-init: cannot link %s: %s\n", path, strerror(errno));
    }
  }
  if ((all || strcmp(which, "/run") == 0) && mount_at("run", base, "/run", "tmpfs", 0, "mode=0755") < 0)
    return fail("cannot mount /run: %s", strerror(errno));
  return 0;
}

/*
 * Where the kernel filesystems wait for the root. A VM that a template is saved from mounts them
 * here before the save (only the 9p share keeps QEMU from saving a VM, and it is not among them),
 * so a restored VM moves four mounts into its root instead of making seven: after a restore every
 * kernel path runs through a cold TCG translation cache (docs/first-command.md).
 */
#define STAGE "/mnt/stage"
static const char *const SYSTEM_MOUNTS[] = {"/proc", "/sys", "/dev", "/run"};

/** A mount point: on another filesystem than its parent directory. */
static int is_mount_point(const char *path) {
  char parent[256];
  struct stat self, above;
  snprintf(parent, sizeof parent, "%s/..", path);
  return stat(path, &self) == 0 && stat(parent, &above) == 0 && self.st_dev != above.st_dev;
}

void stage_system_mounts(void) {
  if (is_mount_point(STAGE "/proc")) return; // staged by this process before a restart
  if (access("/run/vmctl/root-ready", F_OK) == 0) return;
  if (strncmp(env("vmctl_root"), "9p:", 3) == 0 && mount_upper() < 0)
    printf("vmctl-init: the root's writable layer is mounted with the root instead: %s\n", strerror(errno));
  if (mount_system(STAGE, "") < 0) {
    // Not this VM's failure: the root mounts them itself.
    unlink("/run/vmctl/root-failed");
    printf("vmctl-init: the kernel filesystems are mounted with the root instead\n");
  }
}

/** The staged kernel filesystems moved under `root` (each one that was not staged, mounted there). */
static int place_system_mounts(const char *root) {
  for (size_t i = 0; i < sizeof SYSTEM_MOUNTS / sizeof SYSTEM_MOUNTS[0]; i++) {
    char staged[256], target[4096];
    snprintf(staged, sizeof staged, "%s%s", STAGE, SYSTEM_MOUNTS[i]);
    int moved = 0;
    if (is_mount_point(staged) && join(target, sizeof target, root, SYSTEM_MOUNTS[i]) == 0) {
      make_dirs(target, 0755);
      moved = mount(staged, target, NULL, MS_MOVE, NULL) == 0;
      if (!moved) printf("vmctl-init: cannot move %s into the root: %s\n", staged, strerror(errno));
    }
    if (!moved && mount_system(root, SYSTEM_MOUNTS[i]) < 0) return -1;
  }
  return 0;
}

/** resolv.conf (the network's DNS, or none), hostname and hosts in the directory `etc`. */
static void write_etc(const char *etc, const char *dns) {
  struct utsname system;
  uname(&system);
  char path[4096], text[1024];
  join(path, sizeof path, etc, "/resolv.conf");
  unlink(path);
  if (*dns) {
    snprintf(text, sizeof text, "nameserver %s\n", dns);
    write_file(path, text);
  }
  join(path, sizeof path, etc, "/hostname");
  snprintf(text, sizeof text, "%s\n", system.nodename);
  write_file(path, text);
  join(path, sizeof path, etc, "/hosts");
  snprintf(text, sizeof text, "127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n",
           system.nodename);
  write_file(path, text);
}

/** The DNS server of vmctl_net ("ADDR/PREFIX,GATEWAY,DNS"), or "". */
static void network_dns(char *dns, size_t size) {
  const char *net = env("vmctl_net"), *comma = strrchr(net, ',');
  *dns = 0;
  if (comma && comma != strchr(net, ',')) snprintf(dns, size, "%s", comma + 1);
}

void root_hostname_changed(void) {
  if (!root_wanted() || access("/run/vmctl/root-ready", F_OK) != 0) return;
  char dns[64], path[4096];
  network_dns(dns, sizeof dns);
  join(path, sizeof path, env("vmctl_chroot"), "/etc");
  write_etc(path, dns);
}

int mount_root(void) {
  if (access("/run/vmctl/root-ready", F_OK) == 0 || access("/run/vmctl/root-failed", F_OK) == 0) return 0;
  const char *kind = env("vmctl_root"), *root = env("vmctl_chroot"), *modules = env("vmctl_modules");
  if (!*root) return fail("no vmctl_chroot");
  char mounts[4096], dns[64];
  snprintf(mounts, sizeof mounts, "%s", env("vmctl_mounts"));
  network_dns(dns, sizeof dns);
  lap("");
  int etc_done = 0;
  if (strncmp(kind, "9p:", 3) == 0) {
    if (mount_host_root(kind + 3, root, dns, &etc_done) < 0) return -1;
  } else if (strncmp(kind, "disk:", 5) == 0) {
    if (mount_image_root(kind + 5, root) < 0) return -1;
  } else {
    return fail("unknown vmctl_root '%s'", kind);
  }
  lap("overlay");
  if (place_system_mounts(root) < 0) return -1;
  lap("proc-dev-run-cgroup");

  char path[4096];
  join(path, sizeof path, root, "/tmp");
  make_dirs(path, 01777);

  struct utsname system;
  uname(&system);
  if (*modules) {
    // The guest kernel's own modules, where modprobe (ours and the root's) looks for them.
    char source[4096], target[4096];
    join(source, sizeof source, "/mnt/lower", modules);
    struct stat info;
    if (stat(source, &info) == 0 && S_ISDIR(info.st_mode)) {
      snprintf(target, sizeof target, "%s/lib/modules/%s", root, system.release);
      if (make_dirs(target, 0755) < 0 || mount(source, target, NULL, MS_BIND, NULL) < 0)
        printf("vmctl-init: cannot bind the kernel modules at %s: %s\n", target, strerror(errno));
      snprintf(target, sizeof target, "/lib/modules/%s", system.release);
      if (make_dirs(target, 0755) < 0 || mount(source, target, NULL, MS_BIND, NULL) < 0)
        printf("vmctl-init: cannot bind the kernel modules at %s: %s\n", target, strerror(errno));
    }
  }
  lap("modules");
  if (*mounts && host_directories(root, mounts) < 0) return -1;
  lap("mounts");

  if (!etc_done) {
    join(path, sizeof path, root, "/etc");
    write_etc(path, dns);
    lap("etc");
  }
  write_file("/run/vmctl/root-ready", "");
  char seconds[32];
  uptime(seconds, sizeof seconds);
  printf("vmctl-init: root ready at %ss (ms: %s)\n", seconds, laps);
  return 0;
}
