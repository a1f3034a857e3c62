/*
 * Refreshing a VM restored from a snapshot, so that it is not a twin of its siblings.
 *
 * The host sends requests on the `vmctl.setup` virtio-serial port, one per line, and gets one
 * answer each, in order:
 *     REFRESH <id> <unix_time_ns> <hostname|-> <entropy as hex> [<modules path|->]
 *       →   OK <id> <clock step ns>   |   ERR <id> <text>
 *     ROOT <id>        (is the root for commands mounted? see mount-root.c)
 *       →   OK <id>                   |   ERR <id> <why not>
 * A template is saved with this loop blocked in read() and the port's host connected, so a
 * restored VM runs it first, in C, while the Node agent is still waking up.
 *
 * A refresh mixes the host's random bytes (up to 512) into the kernel's pool, crediting them, and
 * forces the kernel's RNG to reseed (every clone of one snapshot starts with the same RNG state,
 * and microvm has no ACPI vmgenid table to do this for us); steps CLOCK_REALTIME to the host's
 * time (the guest clock stands still while a snapshot sits on disk); sets the hostname. Node can
 * do none of this (no ioctl, no clock_settime, no sethostname). The optional last field replaces
 * vmctl_modules for the deferred root mount: the kernel command line a template was booted with
 * names the module tree where it was on the host that made it, and a cache restored on another
 * host (another $HOME) has it elsewhere.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <linux/random.h>

#include "guest-setup.h"

#define MAX_ENTROPY 512

static int reseed(const unsigned char *bytes, size_t length, char *error, size_t error_size) {
  if (length == 0) return 0;
  struct {
    struct rand_pool_info info;
    unsigned char bytes[MAX_ENTROPY];
  } pool;
  if (length > MAX_ENTROPY) length = MAX_ENTROPY;
  memcpy(pool.bytes, bytes, length);
  pool.info.entropy_count = (int)(length * 8);
  pool.info.buf_size = (int)length;
  int random = open("/dev/urandom", O_RDWR | O_CLOEXEC);
  if (random < 0) return snprintf(error, error_size, "open /dev/urandom: %s", strerror(errno)), -1;
  int failed = ioctl(random, RNDADDENTROPY, &pool) < 0 ? 1 : ioctl(random, RNDRESEEDCRNG) < 0 ? 2 : 0;
  int saved = errno;
  close(random);
  if (failed)
    return snprintf(error, error_size, "%s: %s", failed == 1 ? "RNDADDENTROPY" : "RNDRESEEDCRNG",
                    strerror(saved)),
           -1;
  return 0;
}

/** Steps the clock to target_ns; *step_ns is how far it moved. */
static int step_clock(long long target_ns, long long *step_ns, char *error, size_t error_size) {
  *step_ns = 0;
  if (target_ns <= 0) return 0;
  struct timespec before, now = {.tv_sec = target_ns / 1000000000LL, .tv_nsec = target_ns % 1000000000LL};
  clock_gettime(CLOCK_REALTIME, &before);
  if (clock_settime(CLOCK_REALTIME, &now) < 0)
    return snprintf(error, error_size, "clock_settime: %s", strerror(errno)), -1;
  *step_ns = target_ns - ((long long)before.tv_sec * 1000000000LL + before.tv_nsec);
  return 0;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/** One request line, answered into `reply`. */
static int handle(char *line, char *reply, size_t reply_size) {
  char error[160] = "";
  char *fields[6] = {0};
  int count = 0;
  for (char *save = NULL, *field = strtok_r(line, " ", &save); field && count < 6;
       field = strtok_r(NULL, " ", &save))
    fields[count++] = field;
  if (count < 5 || strcmp(fields[0], "REFRESH") != 0 || strlen(fields[1]) > 32) {
    snprintf(reply, reply_size,
             "ERR - expected: REFRESH <id> <unix_time_ns> <hostname|-> <entropy hex> [<modules path|->]\n");
    return -1;
  }
  const char *id = fields[1];
  unsigned char entropy[MAX_ENTROPY];
  size_t length = 0;
  for (const char *p = fields[4]; p[0] && p[1] && length < MAX_ENTROPY; p += 2) {
    int high = hex_value(p[0]), low = hex_value(p[1]);
    if (high < 0 || low < 0) {
      snprintf(reply, reply_size, "ERR %s entropy is not hex\n", id);
      return -1;
    }
    entropy[length++] = (unsigned char)(high << 4 | low);
  }
  lap("parse");
  // The clock first: the host took its time as it sent the request, and every step before this one
  // (after a restore each runs through a cold translation cache, tens of ms) is that much more
  // that the guest's clock would be behind the host's.
  long long step = 0;
  if (step_clock(strtoll(fields[2], NULL, 10), &step, error, sizeof error) < 0) {
    snprintf(reply, reply_size, "ERR %s %s\n", id, error);
    return -1;
  }
  lap("clock");
  struct utsname before;
  uname(&before);
  if (strcmp(fields[3], "-") != 0 && sethostname(fields[3], strlen(fields[3])) < 0) {
    snprintf(reply, reply_size, "ERR %s sethostname: %s\n", id, strerror(errno));
    return -1;
  }
  // A spare VM renamed once its root was mounted (a rollback's refresh keeps the name: no rewrite).
  if (strcmp(fields[3], "-") != 0 && strcmp(fields[3], before.nodename) != 0) root_hostname_changed();
  if (count == 6 && strcmp(fields[5], "-") != 0 && setenv("vmctl_modules", fields[5], 1) < 0) {
    snprintf(reply, reply_size, "ERR %s setenv: %s\n", id, strerror(errno));
    return -1;
  }
  lap("hostname");
  if (reseed(entropy, length, error, sizeof error) < 0) {
    snprintf(reply, reply_size, "ERR %s %s\n", id, error);
    return -1;
  }
  lap("reseed");
  snprintf(reply, reply_size, "OK %s %lld\n", id, step);
  return 0;
}

/** /dev/vportNpM of the virtio-serial port called `name`, once the kernel has made it. */
static int find_port(const char *name, char *path, size_t size) {
  DIR *dir = opendir("/sys/class/virtio-ports");
  if (!dir) return -1;
  int found = -1;
  for (struct dirent *entry; found < 0 && (entry = readdir(dir));) {
    if (entry->d_name[0] == '.') continue;
    char file[300], text[128];
    snprintf(file, sizeof file, "/sys/class/virtio-ports/%s/name", entry->d_name);
    if (read_line(file, text, sizeof text) == 0 && strcmp(text, name) == 0) {
      snprintf(path, size, "/dev/%s", entry->d_name);
      found = 0;
    }
  }
  closedir(dir);
  return found;
}

void serve_refresh(const char *name, void (*after_refresh)(void)) {
  char path[300];
  // Ports appear just after the driver loads; a VM without this port has no use for us.
  for (int waited = 0; find_port(name, path, sizeof path) < 0; waited++) {
    if (waited == 500) {
      fprintf(stderr, "guest-setup: no virtio-serial port named %s\n", name);
      return;
    }
    usleep(10000);
  }
  int port = -1;
  char buffer[2048];
  size_t used = 0;
  for (;;) {
    if (port < 0 && (port = open(path, O_RDWR | O_CLOEXEC)) < 0) {
      perror("guest-setup: open port");
      sleep(1);
      continue;
    }
    // Blocks while the host is connected and quiet; with no host it reads 0 at once, so wait.
    ssize_t n = read(port, buffer + used, sizeof buffer - used - 1);
    if (n == 0) {
      usleep(100000);
      continue;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      close(port);
      port = -1;
      usleep(100000);
      continue;
    }
    if (!used) lap(""); // the refresh's laps start as the guest wakes with its request
    used += (size_t)n;
    char *newline;
    while ((newline = memchr(buffer, '\n', used))) {
      *newline = 0;
      char reply[640];
      if (strncmp(buffer, "ROOT ", 5) == 0) {
        root_status(buffer + 5, reply, sizeof reply);
        if (write(port, reply, strlen(reply)) < 0) perror("guest-setup: reply");
        size_t rest = used - (size_t)(newline + 1 - buffer);
        memmove(buffer, newline + 1, rest);
        used = rest;
        continue;
      }
      int refreshed = handle(buffer, reply, sizeof reply) == 0;
      if (write(port, reply, strlen(reply)) < 0) perror("guest-setup: reply");
      lap("reply");
      // Answered first: a root that then fails to mount is this VM's failure, not the template's.
      if (refreshed) after_refresh();
      size_t rest = used - (size_t)(newline + 1 - buffer);
      memmove(buffer, newline + 1, rest);
      used = rest;
    }
    if (used == sizeof buffer - 1) used = 0; // a line this long is garbage
  }
}
