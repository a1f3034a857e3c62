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
 *   "S" ID STDIN ROOT CWD UID GID FILE ARGC ARG... ENVC KEY=VALUE...
 *       start FILE with ARG... as its argv and only these variables, in the root ROOT (chroot;
 *       "": the spawner's own), in CWD (a path inside that root), as UID and GID ("-1": as the
 *       spawner, root; GID may go on with ",GROUP..." for setgroups: group-list.c); FILE without a
 *       slash is looked up on the variables' PATH inside the root.
 *       STDIN "1": a pipe, "0": /dev/null
 *   "F" ...                                            the same as "S", with fork() for vfork()
 *                                                      (vmctl_exec_via=fork: one side of an A/B)
 *   "C" ID                                             the agent has opened the pipes: close ours
 * Events, one line each:
 *   started ID PID OUT ERR IN    the pipes' ends, to open as /proc/<spawner>/fd/<n> (IN -1: none)
 *   failed ID ERRNO STAGE        the process never ran the command: STAGE says which step failed
 *                                (0 exec, 1 FILE is on no PATH directory, 2 chroot, 3 CWD,
 *                                4 user and groups)
 *   exit ID STATUS SIGNAL        the process ended (STATUS -1 when SIGNAL is set)
 *
 * The child does what busybox's `nsenter -F -r ROOT -w CWD -S UID -G GID` did before (the agent
 * still uses it when commands start through child_process): chroot, working directory,
 * setgroups(0) and setgid, setuid, in that order, then execs the command itself: one exec where
 * there were two (busybox's, then the command's), and a PATH lookup of one stat per directory
 * (exec_command) instead of the agent's stats in JS.
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
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "group-list.h"

#define MAX_REQUEST (1 << 20)
#define MAX_FIELDS 8192
#define HEADER 9 /* "S" ID STDIN ROOT CWD UID GID FILE ARGC */

struct job {
  int used;     /* the slot is taken until the process has exited and its pipes are released */
  int exited;   /* its exit line was sent */
  int released; /* the agent has opened its pipes: ours are closed */
  long id;
  pid_t pid;
  int ends[3]; /* our copies: stdin's write end, stdout's and stderr's read ends (-1: closed) */
};

/* Grown as needed: as many commands may run at once as child_process would allow. */
static struct job *jobs;
static int job_count;

/* A free slot (the table grown when none is), or NULL when memory is out. */
static struct job *free_job(void) {
  for (int i = 0; i < job_count; i++)
    if (!jobs[i].used) return &jobs[i];
  int count = job_count ? job_count * 2 : 64;
  struct job *grown = realloc(jobs, (size_t)count * sizeof *grown);
  if (!grown) return NULL;
  for (int i = job_count; i < count; i++) grown[i] = (struct job){.ends = {-1, -1, -1}};
  jobs = grown;
  struct job *job = &jobs[job_count];
  job_count = count;
  return job;
}

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

enum stage { STAGE_EXEC, STAGE_PATH, STAGE_ROOT, STAGE_CWD, STAGE_USER };

/* Writes DIR (size bytes of it, trailing slashes dropped) + "/" + FILE into candidate; 0 when too long. */
static int join_path(char *candidate, size_t room, const char *dir, size_t size, const char *file) {
  size_t length = strlen(file);
  while (size > 1 && dir[size - 1] == '/') size--;
  if (size + 1 + length >= room) return 0;
  memcpy(candidate, dir, size);
  candidate[size] = '/';
  memcpy(candidate + size + 1, file, length + 1);
  return 1;
}

/* execve, and for a file the kernel cannot run (ENOEXEC: a script without a #! line) /bin/sh with
 * it, as execvp does. */
static void exec_file(const char *file, char **argv, char **envp) {
  execve(file, argv, envp);
  if (errno != ENOEXEC) return;
  int argc = 0;
  while (argv[argc]) argc++;
  /* On the stack: after vfork() the heap is the spawner's (start_child). */
  char *shell[argc + 2];
  shell[0] = "sh";
  shell[1] = (char *)file;
  for (int i = 1; i < argc; i++) shell[i + 1] = argv[i];
  shell[argc + 1] = NULL;
  execve("/bin/sh", shell, envp);
  errno = ENOEXEC;
}

/* The command as it is named, or looked up on PATH (absolute entries only) when it has no slash,
 * as execvp would but inside the root. One stat per directory finds it: a failed execve costs
 * ~0.5-1.7 ms in a guest under TCG (a new mm, the strings copied) where a stat of a missing file
 * costs ~20-60 us. Returns the stage that failed, errno set. */
static enum stage exec_command(const char *file, char **argv, char **envp) {
  if (strchr(file, '/')) return exec_file(file, argv, envp), STAGE_EXEC;
  const char *path = NULL;
  for (char **e = envp; *e; e++)
    if (strncmp(*e, "PATH=", 5) == 0) path = *e + 5;
  if (!path) path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  char candidate[4096];
  int denied = 0, found = 0;
  for (const char *dir = path; *dir;) {
    const char *end = strchrnul(dir, ':');
    struct stat entry;
    if (dir[0] == '/' && join_path(candidate, sizeof candidate, dir, (size_t)(end - dir), file)) {
      if (stat(candidate, &entry) < 0) {
        /* A directory this user cannot search: execvp's execve would say EACCES there. */
        if (errno == EACCES) denied = 1;
      } else if (!S_ISDIR(entry.st_mode)) {
        found = 1;
        exec_file(candidate, argv, envp);
        /* As glibc's execvp: not runnable by this user (EACCES), or a missing ELF loader or #!
         * interpreter (ENOENT) and its kin: the next directory. Anything else is this command's
         * failure. */
        if (errno == EACCES) denied = 1;
        else if (errno != ENOENT && errno != ENOTDIR && errno != ESTALE) return STAGE_EXEC;
      }
    }
    dir = *end ? end + 1 : end;
  }
  if (denied) return errno = EACCES, STAGE_EXEC;
  return errno = ENOENT, found ? STAGE_EXEC : STAGE_PATH;
}

struct place {
  const char *root; /* "" for the spawner's own */
  const char *cwd;
  long uid, gid; /* -1: unchanged */
  gid_t *groups;  /* the user's groups for setgroups (group_list), with GID */
  int group_count;
};

/* In the child: never returns. Reports errno and the failed stage in `shared` (after vfork: the
 * spawner's memory) or, after fork, on `report` (close-on-exec: EOF on success). */
static void run(int report, volatile int *shared, int in, int out, int err, const struct place *place,
                const char *file, char **argv, char **envp) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  signal(SIGPIPE, SIG_DFL);
  setsid();
  int failure[2] = {0, STAGE_EXEC};
  if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) goto failed;
  /* Everything else is close-on-exec (see main), our copies of the pipes included. */
  failure[1] = STAGE_ROOT;
  if (place->root[0] && (chroot(place->root) < 0 || chdir("/") < 0)) goto failed;
  failure[1] = STAGE_CWD;
  if (chdir(place->cwd) < 0) goto failed;
  failure[1] = STAGE_USER;
  if (place->gid >= 0) {
    /* None, as nsenter -G (its failure alone is not fatal), or the user's: root's never stay. */
    if (setgroups((size_t)place->group_count, place->groups) < 0 && place->group_count) goto failed;
    if (setgid((gid_t)place->gid) < 0) goto failed;
  }
  if (place->uid >= 0 && setuid((uid_t)place->uid) < 0) goto failed;
  failure[1] = exec_command(file, argv, envp);
failed:
  failure[0] = errno;
  if (report < 0) {
    shared[0] = failure[0], shared[1] = failure[1];
    _exit(127);
  }
  if (write(report, failure, sizeof failure) < 0) _exit(127);
  _exit(127);
}

/*
 * vfork(): the child runs in the spawner's memory, the spawner stopped, until it execs or exits:
 * no page tables copied, no copy-on-write faults on either side after, and its failure comes back
 * through memory instead of a pipe (three system calls fewer). What the child does is safe there:
 * system calls on its own fd table, root, directory, credentials and signal dispositions (none of
 * them shared by vfork), on its own stack frames below this one, no heap, and _exit. Its own
 * function, so no variable of start() lives across the vfork.
 */
static pid_t __attribute__((noinline)) start_child(int with_fork, int report, volatile int *shared, int in,
                                                   int out, int err, const struct place *place,
                                                   const char *file, char **argv, char **envp) {
  pid_t pid = with_fork ? fork() : vfork();
  if (pid == 0) run(with_fork ? report : -1, shared, in, out, err, place, file, argv, envp);
  return pid;
}

static void start(char **fields, int count) {
  /* "S" ID STDIN ROOT CWD UID GID FILE ARGC ARG... ENVC ENV... ("F": the same, with fork) */
  if (count < HEADER + 1) return;
  int with_fork = fields[0][0] == 'F';
  long id = atol(fields[1]);
  int stdin_wanted = strcmp(fields[2], "1") == 0;
  struct place place = {fields[3], fields[4], atol(fields[5]), atol(fields[6]), NULL, 0};
  const char *file = fields[7];
  int argc = atoi(fields[8]);
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
  if (group_list(fields[6], &place.groups, &place.group_count) < 0) error = errno, stage = STAGE_USER;
  else if (!job) error = ENOMEM;
  else if (stdin_wanted ? pipe2(in, O_CLOEXEC) < 0 : (in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
    error = errno;
  else if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
           (with_fork && pipe2(report, O_CLOEXEC) < 0))
    error = errno;
  pid_t pid = -1;
  volatile int shared[2] = {0, STAGE_EXEC};
  if (!error) {
    pid = start_child(with_fork, report[1], shared, in[0], out[1], err[1], &place, file, argv, envp);
    if (pid < 0) error = errno;
    else if (shared[0]) error = shared[0], stage = shared[1];
  }
  free(argv);
  free(envp);
  free(place.groups);
  int ours[3] = {in[1], out[0], err[0]};
  for (int *fd = (int[]){in[0], out[1], err[1], report[1]}, i = 0; i < 4; i++)
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
    say("failed %ld %ld %ld\n", id, error, stage, 0, 0);
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
    for (int i = 0; i < job_count; i++) {
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
  for (int i = 0; i < job_count; i++) {
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
      if (count == 1 && (strcmp(next, "S") == 0 || strcmp(next, "F") == 0)) need = HEADER; /* S ... ARGC */
      else if (count == HEADER && need == HEADER) need = HEADER + 1 + atoi(next); /* ARG... ENVC */
      else if (need > HEADER && count == need && count == HEADER + 1 + atoi(fields[HEADER - 1]))
        need += atoi(next);                                                /* ... ENV... */
    }
    if (strcmp(fields[0], "S") == 0 || strcmp(fields[0], "F") == 0) start(fields, count);
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
