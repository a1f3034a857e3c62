/*
 * Warming the root for the first command (part of guest-setup), off the critical path.
 *
 * A VM restored from a template mounts the host's root over 9p after the restore, so the guest's
 * page cache holds nothing of it, and QEMU's translation cache (which no snapshot keeps) holds none
 * of the guest code that starts a process. The first command a test runs then pays for both: the
 * dynamic loader, libc and the binary read over 9p (2.2 MB for /usr/bin/true, all of it), and the
 * kernel's fork, exec, mmap and page-fault paths, the loader's relocation and libc's start-up
 * translated again (docs/first-command-prefetch.md has the figures).
 *
 * Right after the root is mounted, a background process (the warmer: niced, forked before the
 * template was saved, not waited for) does what nearly every first command needs, on the vCPU that
 * is otherwise idle while the Node agent wakes up:
 *   - reads the root's dynamic loader (the PT_INTERP of the root's /bin/sh), the libc.so.6 beside
 *     it (where glibc keeps both), /etc/ld.so.cache and /bin/sh into the page cache;
 *   - with vmctl_warm unset or "all", runs the root's `/bin/sh -c :` once (chrooted, stdio on
 *     /dev/null): a dynamic binary's fork, exec, loading and exit, the shell that string commands
 *     run in, and nothing of any command a test might run.
 * vmctl_warm=0 (a kernel argument) turns it off, "files" does the reads only (the A/B's sides).
 */
#define _GNU_SOURCE
#include <elf.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guest-setup.h"

/** Reads the whole file into the page cache (9p with cache=loose keeps what was read). */
static void read_through(const char *path) {
  static char buffer[512 * 1024];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  while (read(fd, buffer, sizeof buffer) > 0) {
  }
  close(fd);
}

/** The program interpreter (PT_INTERP) of a 64-bit ELF file, e.g. "/lib64/ld-linux-x86-64.so.2". */
static int interpreter_of(const char *path, char *out, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  Elf64_Ehdr header;
  int found = -1;
  if (pread(fd, &header, sizeof header, 0) == (ssize_t)sizeof header && memcmp(header.e_ident, ELFMAG, SELFMAG) == 0 &&
      header.e_ident[EI_CLASS] == ELFCLASS64) {
    for (int i = 0; i < header.e_phnum && found < 0; i++) {
      Elf64_Phdr segment;
      if (pread(fd, &segment, sizeof segment, (off_t)(header.e_phoff + (Elf64_Off)i * header.e_phentsize)) !=
          (ssize_t)sizeof segment)
        break;
      if (segment.p_type != PT_INTERP || segment.p_filesz == 0 || segment.p_filesz >= size) continue;
      if (pread(fd, out, segment.p_filesz, (off_t)segment.p_offset) == (ssize_t)segment.p_filesz) {
        out[segment.p_filesz - 1] = 0;
        found = 0;
      }
    }
  }
  close(fd);
  return found;
}

static void read_root_files(const char *root) {
  char path[4096], interpreter[256], resolved[4096];
  snprintf(path, sizeof path, "%s/bin/sh", root);
  read_through(path);
  snprintf(path, sizeof path, "%s/etc/ld.so.cache", root);
  read_through(path);
  snprintf(path, sizeof path, "%s/bin/sh", root);
  if (interpreter_of(path, interpreter, sizeof interpreter) < 0) return;
  // The loader's own path may be a symlink out of the root's view (/lib64 → /lib/x86_64-linux-gnu):
  // resolved inside the root by chrooting is not possible here, so follow it by hand, relative links
  // and absolute ones, both read under `root`.
  snprintf(path, sizeof path, "%s%s", root, interpreter);
  for (int hops = 0; hops < 8; hops++) {
    char target[1024];
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n <= 0) break;
    target[n] = 0;
    if (target[0] == '/') {
      snprintf(path, sizeof path, "%s%s", root, target);
    } else {
      snprintf(resolved, sizeof resolved, "%s", path);
      snprintf(path, sizeof path, "%s/%s", dirname(resolved), target);
    }
  }
  read_through(path);
  snprintf(resolved, sizeof resolved, "%s", path);
  snprintf(path, sizeof path, "%s/libc.so.6", dirname(resolved));
  read_through(path);
}

static void rehearse_shell(const char *root) {
  pid_t child = fork();
  if (child == 0) {
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
      dup2(null, 0);
      dup2(null, 1);
      dup2(null, 2);
    }
    if (chroot(root) < 0 || chdir("/") < 0) _exit(127);
    char *const argv[] = {"sh", "-c", ":", NULL};
    char *const envp[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL};
    execve("/bin/sh", argv, envp);
    _exit(127);
  }
  if (child > 0) waitpid(child, NULL, 0);
}

/*
 * The warmer is forked when guest-setup starts, that is before a template is saved, and waits on a
 * pipe: after a restore, guest-setup only writes a byte to it. A fork there (guest-setup's and the
 * kernel's fork path run through a cold translation cache) delayed the root's answer to the host,
 * and with it "ready", by hundreds of milliseconds.
 */
static int trigger = -1;

static void warm(const char *root, const char *mode) {
  read_root_files(root);
  if (!mode || !*mode || strcmp(mode, "all") == 0) rehearse_shell(root);
}

void warm_start(void) {
  const char *mode = getenv("vmctl_warm"), *root = getenv("vmctl_chroot");
  if (!root || !*root || (mode && strcmp(mode, "0") == 0) || trigger >= 0) return;
  int ends[2];
  if (pipe2(ends, O_CLOEXEC) < 0) return;
  pid_t warmer = fork();
  if (warmer < 0) {
    close(ends[0]);
    close(ends[1]);
    return;
  }
  if (warmer > 0) {
    close(ends[0]);
    trigger = ends[1];
    fcntl(trigger, F_SETFL, O_NONBLOCK);
    return;
  }
  close(ends[1]);
  setpriority(PRIO_PROCESS, 0, 19);
  char byte;
  // Ends with guest-setup (EOF: the init starts a new one, with a warmer of its own).
  while (read(ends[0], &byte, 1) == 1) {
    if (access("/run/vmctl/root-ready", F_OK) == 0) warm(root, mode);
  }
  _exit(0);
}

void warm_root(void) {
  if (trigger >= 0 && write(trigger, "w", 1) < 0) {
    // A warm-up still pending (the pipe is full) is enough.
  }
}
