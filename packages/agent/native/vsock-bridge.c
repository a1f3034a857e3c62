/*
 * vsock-bridge: AF_VSOCK for vmctl, which runs on Node (Node has no AF_VSOCK sockets).
 *
 *   vsock-bridge listen PORT
 *       Guest side. Accepts host connections on PORT, one at a time, and copies bytes between the
 *       current connection and stdin/stdout. Between connections it reads and drops stdin, as a
 *       virtio-serial port without a host would; the agent's line handshake resynchronises each
 *       new connection. Exits when stdin closes (the agent is gone).
 *
 *   vsock-bridge connect CID PORT
 *       Host side. Connects to the guest (retrying until the guest listens), then copies bytes
 *       between the connection and stdin/stdout. Exits when either side closes.
 *
 *   vsock-bridge with-cid CID_FILE -- PROGRAM ARGS...
 *       Host side. Reserves a guest CID in the kernel (VHOST_VSOCK_SET_GUEST_CID on a fresh
 *       /dev/vhost-vsock fd: the kernel refuses a CID another VM holds, so concurrent VMs of any
 *       user or tool never collide), writes it to CID_FILE, replaces @VSOCK_FD@ and @VSOCK_CID@ in
 *       the arguments and execs PROGRAM (QEMU, with vhost-vsock-device,vhostfd=@VSOCK_FD@) with
 *       the fd inherited.
 *
 * Why a separate process and not a Node addon: the same small static binary serves the guest
 * (which has no compiler and runs the agent as a single executable that cannot load addons from
 * its bundle) and the host, and it is independent of Node's ABI version.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/vhost.h>
#include <linux/vm_sockets.h>

#define BUFFER_BYTES (256 * 1024)

static char buffer[BUFFER_BYTES];

static void die(const char *what) {
  fprintf(stderr, "vsock-bridge: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int write_all(int fd, const char *data, size_t length) {
  while (length > 0) {
    ssize_t n = write(fd, data, length);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        poll(&p, 1, -1);
        continue;
      }
      return -1;
    }
    data += n;
    length -= (size_t)n;
  }
  return 0;
}

/* Copies one read's worth from `from` to `to`: 1 copied, 0 end of input, -1 error. */
static int pump(int from, int to) {
  ssize_t n = read(from, buffer, sizeof buffer);
  if (n < 0) return (errno == EINTR || errno == EAGAIN) ? 1 : -1;
  if (n == 0) return 0;
  return write_all(to, buffer, (size_t)n) == 0 ? 1 : -1;
}

enum bridge_end { CONNECTION_ENDED, STDIN_ENDED };

/* Copies both ways between the connection and stdin/stdout until one of them ends. */
static enum bridge_end bridge(int connection) {
  struct pollfd fds[2] = {{.fd = 0, .events = POLLIN}, {.fd = connection, .events = POLLIN}};
  for (;;) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    if (fds[0].revents) {
      int r = pump(0, connection);
      if (r == 0) return STDIN_ENDED;
      if (r < 0) return CONNECTION_ENDED;
    }
    if (fds[1].revents) {
      int r = pump(connection, 1);
      if (r <= 0) return CONNECTION_ENDED;
    }
  }
}

static int listen_mode(unsigned port) {
  int server = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (server < 0) die("socket(AF_VSOCK) (is the vmw_vsock_virtio_transport module loaded?)");
  struct sockaddr_vm address = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
  if (bind(server, (struct sockaddr *)&address, sizeof address) < 0) die("bind");
  if (listen(server, 4) < 0) die("listen");
  fprintf(stderr, "vsock-bridge: listening on vsock port %u\n", port);
  for (;;) {
    struct pollfd fds[2] = {{.fd = 0, .events = POLLIN}, {.fd = server, .events = POLLIN}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    if (fds[0].revents) {
      /* No host connected: drop what the agent writes, like a virtio-serial port without a host. */
      ssize_t n = read(0, buffer, sizeof buffer);
      if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) return 0;
    }
    if (fds[1].revents) {
      int connection = accept4(server, NULL, NULL, SOCK_CLOEXEC);
      if (connection < 0) continue;
      enum bridge_end end = bridge(connection);
      close(connection);
      if (end == STDIN_ENDED) return 0;
    }
  }
}

static int connect_mode(unsigned cid, unsigned port) {
  for (;;) {
    int connection = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connection < 0) die("socket(AF_VSOCK) (is the vhost_vsock module loaded?)");
    struct sockaddr_vm address = {.svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port};
    if (connect(connection, (struct sockaddr *)&address, sizeof address) == 0) {
      bridge(connection);
      return 0;
    }
    /* The guest is not listening yet (ECONNRESET) or its transport is not up (ETIMEDOUT). */
    close(connection);
    struct timespec pause = {.tv_sec = 0, .tv_nsec = 20 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
}

static char *replace(const char *text, const char *token, const char *value) {
  const char *at = strstr(text, token);
  if (!at) return (char *)text;
  size_t size = strlen(text) - strlen(token) + strlen(value) + 1;
  char *result = malloc(size);
  if (!result) die("malloc");
  snprintf(result, size, "%.*s%s%s", (int)(at - text), text, value, at + strlen(token));
  return replace(result, token, value);
}

static int with_cid_mode(const char *cid_file, char **program) {
  int vhost = open("/dev/vhost-vsock", O_RDWR); /* inherited by the program: no O_CLOEXEC */
  if (vhost < 0) die("open /dev/vhost-vsock (modprobe vhost_vsock; the user needs read-write access)");
  /* Start somewhere random so concurrent starters rarely probe the same CIDs. 0-2 are reserved. */
  srand((unsigned)(time(NULL) ^ getpid()));
  uint64_t cid = 3 + (uint64_t)(rand() % 1000000);
  for (int attempt = 0;; attempt++, cid++) {
    if (ioctl(vhost, VHOST_VSOCK_SET_GUEST_CID, &cid) == 0) break;
    if (errno != EADDRINUSE || attempt > 100000) die("VHOST_VSOCK_SET_GUEST_CID");
  }
  char fd_text[16], cid_text[24];
  snprintf(fd_text, sizeof fd_text, "%d", vhost);
  snprintf(cid_text, sizeof cid_text, "%llu", (unsigned long long)cid);
  FILE *file = fopen(cid_file, "w");
  if (!file || fprintf(file, "%s\n", cid_text) < 0 || fclose(file) != 0) die(cid_file);
  for (char **arg = program; *arg; arg++) *arg = replace(replace(*arg, "@VSOCK_FD@", fd_text), "@VSOCK_CID@", cid_text);
  execvp(program[0], program);
  die(program[0]);
  return 1;
}

static void usage(void) {
  fprintf(stderr,
          "usage: vsock-bridge listen PORT\n"
          "       vsock-bridge connect CID PORT\n"
          "       vsock-bridge with-cid CID_FILE -- PROGRAM ARGS...\n");
  exit(2);
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc == 3 && strcmp(argv[1], "listen") == 0) return listen_mode((unsigned)strtoul(argv[2], NULL, 10));
  if (argc == 4 && strcmp(argv[1], "connect") == 0)
    return connect_mode((unsigned)strtoul(argv[2], NULL, 10), (unsigned)strtoul(argv[3], NULL, 10));
  if (argc >= 5 && strcmp(argv[1], "with-cid") == 0 && strcmp(argv[3], "--") == 0) return with_cid_mode(argv[2], argv + 4);
  usage();
  return 2;
}
