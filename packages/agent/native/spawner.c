/*
 * vmctl-spawner: starts the agent's commands (exec-service.ts), so that the agent, a large Node
 * process, does not fork itself for each one. Started once by the agent (before a template is
 * saved, by the warm-up's first exec); talks to it over its stdin (requests) and stdout (events).
 *
 * Why: after a restore, Node's child_process.spawn of the first command costs ~230 ms of guest
 * time under TCG (the fork of a big address space, page tables and copy-on-write faults all run
 * through a cold translation cache), a third of that exec (docs/first-command.md). This process
 * is small, and forks in a fraction of that.
 *
 * Requests, each a run of NUL-terminated fields:
 *   "S" ID STDIN FILE ARGC ARG... ENVC KEY=VALUE...   start FILE (a PATH lookup when it has no
 *                                                      slash) with ARG... as its argv and only
 *                                                      these variables; STDIN "1": a pipe, "0":
 *                                                      /dev/null
 *   "C" ID                                             the agent has opened the pipes: close ours
 * Events, one line each:
 *   started ID PID OUT ERR IN    the pipes' ends, to open as /proc/<spawner>/fd/<n> (IN -1: none)
 *   failed ID ERRNO              FILE could not be executed (the process never ran)
 *   exit ID STATUS SIGNAL        the process ended (STATUS -1 when SIGNAL is set)
 *
 * The command's process is the leader of a new session (Node's `detached: true`), so a signal to
 * its process group reaches everything it started; its signal mask and handlers are the defaults.
 * The pipes' ends stay open here until the agent has opened its own (so a command that exits at
 * once leaves its output readable and its stdin writable). Exits when its stdin closes (the agent
 * is gone).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_JOBS 256
#define MAX_REQUEST (1 << 20)
#define MAX_FIELDS 8192

struct job {
  int used;     /* the slot is taken until the process has exited and its pipes are released */
  int exited;   /* its exit line was sent */
  int released; /* the agent has opened its pipes: ours are closed */
  long id;
  pid_t pid;
  int ends[3]; /* our copies: stdin's write end, stdout's and stderr's read ends (-1: closed) */
};

static struct job jobs[MAX_JOBS];

static void say(const char *format, long a, long b, long c, long d, long e) {
  char line[160];
  int length = snprintf(line, sizeof line, format, a, b, c, d, e);
  for (int done = 0; done < length;) {
    ssize_t n = write(1, line + done, (size_t)(length - done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) exit(1); /* the agent is gone */
    done += (int)n;
  }
}

static void close_ends(struct job *job) {
  for (int i = 0; i < 3; i++)
    if (job->ends[i] >= 0) close(job->ends[i]), job->ends[i] = -1;
}

/* In the child: never returns. Reports exec's errno on `report` (close-on-exec: EOF on success). */
static void run(int report, int in, int out, int err, const char *file, char **argv, char **envp) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  signal(SIGPIPE, SIG_DFL);
  setsid();
  if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0 || chdir("/") < 0) goto failed;
  /* Everything else is close-on-exec (see main), our copies of the pipes included. */
  extern char **environ;
  environ = envp;
  execvp(file, argv);
failed:;
  int error = errno;
  if (write(report, &error, sizeof error) < 0) _exit(127);
  _exit(127);
}

static void start(char **fields, int count) {
  /* "S" ID STDIN FILE ARGC ARG... ENVC ENV... */
  if (count < 6) return;
  long id = atol(fields[1]);
  int stdin_wanted = strcmp(fields[2], "1") == 0;
  const char *file = fields[3];
  int argc = atoi(fields[4]);
  if (argc < 1 || 5 + argc >= count) return;
  int envc = atoi(fields[5 + argc]);
  if (envc < 0 || 6 + argc + envc > count) return;
  char **argv = calloc((size_t)argc + 1, sizeof *argv), **envp = calloc((size_t)envc + 1, sizeof *envp);
  if (!argv || !envp) exit(1);
  for (int i = 0; i < argc; i++) argv[i] = fields[5 + i];
  for (int i = 0; i < envc; i++) envp[i] = fields[6 + argc + i];

  struct job *job = NULL;
  for (int i = 0; !job && i < MAX_JOBS; i++)
    if (!jobs[i].used) job = &jobs[i];
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, report[2] = {-1, -1};
  int error = 0;
  if (!job) error = EAGAIN;
  else if (stdin_wanted ? pipe2(in, O_CLOEXEC) < 0 : (in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
    error = errno;
  else if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 || pipe2(report, O_CLOEXEC) < 0)
    error = errno;
  pid_t pid = -1;
  if (!error) {
    pid = fork();
    if (pid == 0) run(report[1], in[0], out[1], err[1], file, argv, envp);
    if (pid < 0) error = errno;
  }
  free(argv);
  free(envp);
  int ours[3] = {in[1], out[0], err[0]};
  for (int *fd = (int[]){in[0], out[1], err[1], report[1]}, i = 0; i < 4; i++)
    if (fd[i] >= 0) close(fd[i]);
  if (!error) {
    ssize_t n;
    while ((n = read(report[0], &error, sizeof error)) < 0 && errno == EINTR) {}
    if (n != sizeof error) error = 0;
  }
  if (report[0] >= 0) close(report[0]);
  if (error) {
    for (int i = 0; i < 3; i++)
      if (ours[i] >= 0) close(ours[i]);
    /* The child (if any) exits 127: reaped in reap() with no job to report. */
    say("failed %ld %ld\n", id, error, 0, 0, 0);
    return;
  }
  *job = (struct job){.used = 1, .id = id, .pid = pid};
  memcpy(job->ends, ours, sizeof ours);
  say("started %ld %ld %ld %ld %ld\n", id, pid, ours[1], ours[2], ours[0]);
}

static void reap(void) {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    for (int i = 0; i < MAX_JOBS; i++) {
      if (!jobs[i].used || jobs[i].exited || jobs[i].pid != pid) continue;
      long code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      long signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
      say("exit %ld %ld %ld\n", jobs[i].id, code, signal, 0, 0);
      /* Its pipes stay ours until the agent says it has opened them ("C"). */
      jobs[i].exited = 1;
      if (jobs[i].released) jobs[i].used = 0;
    }
  }
}

static void release(long id) {
  for (int i = 0; i < MAX_JOBS; i++) {
    if (!jobs[i].used || jobs[i].released || jobs[i].id != id) continue;
    close_ends(&jobs[i]);
    jobs[i].released = 1;
    if (jobs[i].exited) jobs[i].used = 0;
  }
}

/* The next NUL-terminated field at *at, or NULL when the buffer ends first (the request is partial). */
static char *field(char *buf, size_t used, size_t *at) {
  char *end = *at < used ? memchr(buf + *at, 0, used - *at) : NULL;
  if (!end) return NULL;
  char *start = buf + *at;
  *at = (size_t)(end - buf) + 1;
  return start;
}

/* Handles every complete request at the start of buf; returns how many bytes it used. */
static size_t handle(char *buf, size_t used) {
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
      if (count == 1 && strcmp(next, "S") == 0) need = 5;          /* S ID STDIN FILE ARGC */
      else if (count == 5 && need == 5) need = 6 + atoi(next);     /* ... ARG... ENVC */
      else if (need > 5 && count == need && count == 6 + atoi(fields[4]))
        need += atoi(next);                                        /* ... ENV... */
    }
    if (strcmp(fields[0], "S") == 0) start(fields, count);
    else if (strcmp(fields[0], "C") == 0) release(atol(fields[1]));
    done = at;
  }
}

int main(void) {
  /* Nothing of ours may leak into a command: every fd here is close-on-exec from now on. */
  for (int fd = 0; fd < 1024; fd++) fcntl(fd, F_SETFD, FD_CLOEXEC);
  signal(SIGPIPE, SIG_IGN);
  sigset_t child;
  sigemptyset(&child);
  sigaddset(&child, SIGCHLD);
  sigprocmask(SIG_BLOCK, &child, NULL);
  int children = signalfd(-1, &child, SFD_CLOEXEC | SFD_NONBLOCK);
  if (children < 0) return perror("vmctl-spawner: signalfd"), 1;
  for (int i = 0; i < MAX_JOBS; i++) jobs[i].ends[0] = jobs[i].ends[1] = jobs[i].ends[2] = -1;
  static char buf[MAX_REQUEST];
  size_t used = 0;
  for (;;) {
    struct pollfd fds[2] = {{.fd = 0, .events = POLLIN}, {.fd = children, .events = POLLIN}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return perror("vmctl-spawner: poll"), 1;
    }
    if (fds[1].revents) {
      struct signalfd_siginfo info;
      while (read(children, &info, sizeof info) > 0) {}
      reap();
    }
    if (fds[0].revents) {
      ssize_t n = read(0, buf + used, sizeof buf - used);
      if (n == 0) return 0; /* the agent is gone */
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return 1;
      }
      used += (size_t)n;
      size_t done = handle(buf, used);
      memmove(buf, buf + done, used - done);
      used -= done;
      if (used == sizeof buf) return fputs("vmctl-spawner: request too long\n", stderr), 1;
    }
  }
}
