/*
 * The spawner's request reader (spawner.c lists the requests): splits the agent's bytes into
 * requests of NUL-terminated fields and carries each out; "S" (and "F", "P") starts a command.
 */
#define _GNU_SOURCE
#include "spawner-requests.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "group-list.h"
#include "spawner-child.h"
#include "spawner-jobs.h"

#define MAX_FIELDS 8192
#define HEADER 10 /* "S" ID STDIN HOLD ROOT CWD UID GID FILE ARGC */

/* /dev/null, opened once: the stdin of every command that has no stdin pipe. */
static int dev_null(void) {
  static int fd = -1;
  if (fd < 0) fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  return fd;
}

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

/* A pseudo-terminal of `rows` x `cols` on the devpts of `root` (the command's: the spawner's own
 * /dev has none mounted), its master (non-blocking: read and written in the main loop) in *master,
 * its slave in *slave; -1 with errno on failure. The kernel finds the devpts beside the ptmx node
 * it opens; the slave is opened from the master (TIOCGPTPEER), or by its path inside the root. */
static int open_tty(const char *root, int rows, int cols, int *master, int *slave) {
  char path[4096];
  if (snprintf(path, sizeof path, "%s/dev/ptmx", root) >= (int)sizeof path) return errno = ENAMETOOLONG, -1;
  *master = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
  if (*master < 0) return -1;
  struct winsize size = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
  unsigned number = 0;
  int unlock = 0;
  if (ioctl(*master, TIOCSPTLCK, &unlock) < 0 || ioctl(*master, TIOCSWINSZ, &size) < 0) goto failed;
  *slave = ioctl(*master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (*slave >= 0) return 0;
  if (ioctl(*master, TIOCGPTN, &number) < 0) goto failed;
  snprintf(path, sizeof path, "%s/dev/pts/%u", root, number);
  if ((*slave = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC)) >= 0) return 0;
failed:;
  int error = errno;
  close(*master), *master = -1;
  return errno = error, -1;
}

static void start(char **fields, int count) {
  /* "S" ID STDIN HOLD ROOT CWD UID GID FILE ARGC ARG... ENVC ENV... ("F": with fork; "P": the agent
   * opens the output pipes itself; "T": on a terminal, STDIN its size as ROWSxCOLS) */
  if (count < HEADER + 1) return;
  int with_fork = fields[0][0] == 'F', relayed = fields[0][0] != 'P', tty = fields[0][0] == 'T';
  long id = atol(fields[1]);
  int stdin_wanted = !tty && strcmp(fields[2], "1") == 0;
  int rows = tty ? atoi(fields[2]) : 0, cols = tty && strchr(fields[2], 'x') ? atoi(strchr(fields[2], 'x') + 1) : 0;
  long hold = atol(fields[3]);
  struct place place = {fields[4], fields[5], atol(fields[6]), atol(fields[7]), NULL, 0};
  const char *file = fields[8];
  int argc = atoi(fields[9]);
  if (argc < 1 || HEADER + argc >= count) return;
  int envc = atoi(fields[HEADER + argc]);
  if (envc < 0 || HEADER + 1 + argc + envc > count) return;
  char **argv = calloc((size_t)argc + 1, sizeof *argv), **envp = calloc((size_t)envc + 1, sizeof *envp);
  if (!argv || !envp) exit(1);
  for (int i = 0; i < argc; i++) argv[i] = fields[HEADER + i];
  for (int i = 0; i < envc; i++) envp[i] = fields[HEADER + 1 + argc + i];

  struct job *job = free_job();
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, report[2] = {-1, -1};
  int error = 0, stage = STAGE_EXEC;
  if (group_list(fields[7], &place.groups, &place.group_count) < 0) error = errno, stage = STAGE_USER;
  else if (!job) error = ENOMEM;
  else if (tty) {
    /* The slave is the command's stdin, stdout and stderr; the master our one end (stream 1). */
    if (rows <= 0 || cols <= 0) error = EINVAL;
    else if (open_tty(place.root, rows, cols, &out[0], &in[0]) < 0) error = errno;
    else out[1] = err[1] = in[0];
  }
  else if (stdin_wanted ? pipe2(in, O_CLOEXEC) < 0 : (in[0] = dev_null()) < 0)
    error = errno;
  else if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
           (with_fork && pipe2(report, O_CLOEXEC) < 0))
    error = errno;
  /* Relayed output is read here without blocking the other commands: our read ends are
   * O_NONBLOCK (the command's write ends stay blocking: a full pipe stops it, not us). */
  else if (relayed && (fcntl(out[0], F_SETFL, O_NONBLOCK) < 0 || fcntl(err[0], F_SETFL, O_NONBLOCK) < 0))
    error = errno;
  pid_t pid = -1;
  volatile int shared[2] = {0, STAGE_EXEC};
  if (!error) {
    pid = start_child(with_fork, report[1], shared, in[0], out[1], err[1], tty, &place, file, argv, envp);
    if (pid < 0) error = errno;
    else if (shared[0]) error = shared[0], stage = shared[1];
  }
  free(argv);
  free(envp);
  free(place.groups);
  int ours[3] = {in[1], out[0], err[0]};
  /* The slave once (in, out and err are the same fd on a terminal). */
  for (int *fd = (int[]){stdin_wanted || tty ? in[0] : -1, tty ? -1 : out[1], tty ? -1 : err[1], report[1]}, i = 0;
       i < 4; i++)
    if (fd[i] >= 0) close(fd[i]);
  if (!error && with_fork) {
    int failure[2];
    ssize_t n;
    while ((n = read(report[0], failure, sizeof failure)) < 0 && errno == EINTR) {}
    if (n == sizeof failure) error = failure[0], stage = failure[1];
  }
  if (report[0] >= 0) close(report[0]);
  if (error) {
    for (int i = 0; i < 3; i++)
      if (ours[i] >= 0) close(ours[i]);
    /* The child (if any) exits 127: reaped in reap() with no job to report. */
    say(EV_FAILED, id, error, stage, 0, 0);
    return;
  }
  begin_job(job, id, pid, relayed, ours, stdin_wanted || tty ? 0 : hold, tty);
}

/* The next NUL-terminated field at *at, or NULL when the buffer ends first (the request is partial). */
static char *field(char *buf, size_t used, size_t *at) {
  char *end = *at < used ? memchr(buf + *at, 0, used - *at) : NULL;
  if (!end) return NULL;
  char *start = buf + *at;
  *at = (size_t)(end - buf) + 1;
  return start;
}

size_t handle(char *buf, size_t used) {
  static char *fields[MAX_FIELDS];
  size_t done = 0;
  for (;;) {
    size_t at = done;
    int count = 0, need = 2;
    while (count < need) {
      char *next = field(buf, used, &at);
      if (!next) return done;
      if (count == MAX_FIELDS) exit((fputs("vmctl-spawner: too many fields\n", stderr), 1));
      fields[count++] = next;
      if (count == 1 && strchr("SFPT", next[0]) && next[0] && !next[1]) need = HEADER; /* S ... ARGC */
      else if (count == 1 && (strcmp(next, "I") == 0)) need = 3;                 /* I ID HEX */
      else if (count == 1 && (strcmp(next, "Z") == 0)) need = 4;                 /* Z ID ROWS COLS */
      else if (count == 1 && (strcmp(next, "A") == 0)) need = 4;                 /* A ID STREAM BYTES */
      else if (count == 1 && (strcmp(next, "D") == 0)) need = 3;                 /* D ID STREAM */
      else if (count == HEADER && need == HEADER) need = HEADER + 1 + atoi(next); /* ARG... ENVC */
      else if (need > HEADER && count == need && count == HEADER + 1 + atoi(fields[HEADER - 1]))
        need += atoi(next);                                                /* ... ENV... */
    }
    if (need >= HEADER) start(fields, count);
    else if (strcmp(fields[0], "C") == 0) release(atol(fields[1]));
    else if (strcmp(fields[0], "A") == 0) grant(atol(fields[1]), atoi(fields[2]), atol(fields[3]));
    else if (strcmp(fields[0], "D") == 0) drop(atol(fields[1]), atoi(fields[2]));
    else if (strcmp(fields[0], "U") == 0) usage(atol(fields[1]));
    else if (strcmp(fields[0], "W") == 0) want_pid(atol(fields[1]));
    else if (strcmp(fields[0], "I") == 0) tty_input(atol(fields[1]), fields[2]);
    else if (strcmp(fields[0], "Z") == 0) tty_resize(atol(fields[1]), atoi(fields[2]), atoi(fields[3]));
    else if (strcmp(fields[0], "E") == 0) tty_end(atol(fields[1]));
    done = at;
  }
}
