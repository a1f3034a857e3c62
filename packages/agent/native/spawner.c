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
 *   "S" ID STDIN HOLD ROOT CWD UID GID FILE ARGC ARG... ENVC KEY=VALUE...
 *       start FILE with ARG... as its argv and only these variables, in the root ROOT (chroot;
 *       "": the spawner's own), in CWD (a path inside that root), as UID and GID ("-1": as the
 *       spawner, root; GID may go on with ",GROUP..." for setgroups: group-list.c); FILE without a
 *       slash is looked up on the variables' PATH inside the root. STDIN "1": a pipe, "0":
 *       /dev/null. Its stdout and stderr are relayed (EV_DATA). HOLD: for how many ms its
 *       EV_STARTED may wait for its first output or its exit (see EV_STARTED); 0: said at once.
 *   "F" ...                  the same as "S", with fork() for vfork() (vmctl_exec_via=fork)
 *   "P" ...                  the same as "S", but the agent opens the output pipes itself (the
 *                            path before the relay: vmctl_exec_via=pipes, one side of an A/B)
 *   "C" ID                   the agent has opened the ends it was given: close ours
 *   "A" ID STREAM BYTES      the agent passed BYTES more of stream 1 (stdout) or 2 (stderr) on
 *   "D" ID STREAM            the agent stopped reading that stream: close it
 *   "W" ID                   the agent wants the pid now (a signal before EV_STARTED): say it
 *   "U" ID                   diagnostics: how many job slots are in use (EV_SLOTS; tests use it
 *                            to see that every ended command's slot was freed)
 * Events, each six native 32-bit numbers (KIND ID A B C D), EV_DATA followed by its bytes:
 *   EV_STARTED ID PID IN OUT ERR  the ends to open as /proc/<spawner>/fd/<n> (-1: none: IN with no
 *                                 stdin pipe, OUT and ERR when relayed). Relayed without stdin it
 *                                 is held up to HOLD ms and said just before the command's first
 *                                 output or its exit, in the same write, if these come first
 *   EV_FAILED ID ERRNO STAGE      the process never ran the command: STAGE says which step failed
 *                                 (0 exec, 1 FILE is on no PATH directory, 2 chroot, 3 CWD,
 *                                 4 user and groups)
 *   EV_DATA ID STREAM SIZE        SIZE bytes of its stdout (1) or stderr (2) follow
 *   EV_EOF ID STREAM              that stream ended (every writer closed it): sent with the
 *                                 exit, just before it (or at once if the exit was sent before)
 *   EV_EXIT ID STATUS SIGNAL RAN  the process ended (STATUS -1 when SIGNAL is set); sent after
 *                                 what its pipes held when it was reaped. RAN: microseconds from
 *                                 its start (vfork returning) to its reaping (exec timing laps)
 *   EV_SLOTS ID USED TABLE        the answer to "U" ID: USED slots of the TABLE's are taken (by
 *                                 commands running, or ended with an end still open here)
 * All the events of one turn of the loop leave in one write: a short command's output, the end
 * of its streams and its exit usually reach the agent together.
 *
 * Why relay: the agent opening each command's pipes through /proc/<spawner>/fd (three opens, a
 * "C" request, two sockets and streams in Node, the exit a turn later) cost more per exec in the
 * guest than the copy through this process does (docs/exec-path.md). Memory stays bounded: a
 * stream has at most WINDOW bytes in flight until the agent grants more, so a command writing
 * faster than the host reads blocks on its own pipe.
 *
 * The child does what busybox's `nsenter -F -r ROOT -w CWD -S UID -G GID` did before (the agent
 * still uses it when commands start through child_process): chroot, working directory,
 * setgroups(0) and setgid, setuid, in that order, then execs the command itself: one exec where
 * there were two (busybox's, then the command's), and a PATH lookup of one stat per directory
 * (exec_command) instead of the agent's stats in JS.
 *
 * The command's process is the leader of a new session (Node's `detached: true`), so a signal to
 * its process group reaches everything it started; its signal mask and handlers are the defaults.
 * Stdin's end (and in pipe mode the output's) stays open here until the agent has opened its own
 * (so a command that exits at once leaves its stdin writable and its output readable). Exits when its stdin closes (the agent
 * is gone).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "group-list.h"

#define MAX_REQUEST (1 << 20)
#define MAX_FIELDS 8192
#define HEADER 10 /* "S" ID STDIN HOLD ROOT CWD UID GID FILE ARGC */
/* What one relayed stream may have in flight to the agent before it grants more ("A"): a command
 * writing faster than the host reads blocks on its pipe, the spawner and the agent hold at most
 * this much of it. Matches WINDOW in spawner.ts. */
#define WINDOW (1024 * 1024)
/* The most one read takes from a command's pipe. A pipe holds 64 KiB; one that a read finds full
 * is grown to BIG_PIPE (once), so a command with much output wakes us once per 256 KiB instead of
 * per 64 KiB: each wake-up and write is a context switch under emulation (4 MiB of output cost
 * 1.17x the QEMU CPU of the agent reading the pipe itself with 64 KiB pipes). A command with
 * little output never pays the fcntl. */
#define CHUNK (256 * 1024)
#define BIG_PIPE (256 * 1024)

enum event { EV_STARTED = 1, EV_FAILED, EV_EXIT, EV_DATA, EV_EOF, EV_SLOTS };

struct job {
  int used;     /* the slot is taken until its exit was sent and all its ends are closed */
  int relay;    /* we read its output and send it as EV_DATA (else the agent opens the pipes) */
  int reaped;   /* the process has ended: status and signal hold its end */
  int exited;   /* its exit event was sent */
  int released; /* the agent has opened its ends (stdin's, and in pipe mode the output's) */
  int announced; /* its EV_STARTED was said */
  long long hold_until; /* not announced: when it goes out alone (monotonic ms) */
  long long started_us; /* when the child was started (monotonic us): EV_EXIT says how long it ran */
  long id;
  pid_t pid;
  long status, signal;
  long long reaped_us;
  int ends[3];   /* our copies: stdin's write end, stdout's and stderr's read ends (-1: closed) */
  int ended[3];  /* relay: that stream's EOF is due, sent with the exit (see relay) */
  int grown[3];  /* relay: that pipe was grown to BIG_PIPE */
  long credit[3]; /* relay: bytes stdout (1) and stderr (2) may still send before an "A" */
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

static struct job *find_job(long id) {
  for (int i = 0; i < job_count; i++)
    if (jobs[i].used && jobs[i].id == id) return &jobs[i];
  return NULL;
}

/* Events wait here and leave in one write per turn of the main loop (flush): a short command's
 * output, end of streams and exit usually go to the agent together. */
static char out_buf[2 * CHUNK];
static size_t out_used;

static void flush(void) {
  for (size_t done = 0; done < out_used;) {
    ssize_t n = write(1, out_buf + done, out_used - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) exit(1); /* the agent is gone */
    done += (size_t)n;
  }
  out_used = 0;
}

/* One event: six 32-bit numbers (kind, id, a, b, c, d), then `size` bytes of data for EV_DATA. */
static void say(int kind, long id, long a, long b, long c, long d) {
  if (out_used + 24 > sizeof out_buf) flush();
  int32_t header[6] = {kind, (int32_t)id, (int32_t)a, (int32_t)b, (int32_t)c, (int32_t)d};
  memcpy(out_buf + out_used, header, sizeof header);
  out_used += sizeof header;
}

static long long now_us(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (long long)now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

/* EV_STARTED, once, before anything else of the job is said. */
static void announce(struct job *job) {
  if (job->announced) return;
  job->announced = 1;
  say(EV_STARTED, job->id, job->pid, job->ends[0], job->relay ? -1 : job->ends[1], job->relay ? -1 : job->ends[2]);
}

static void close_ends(struct job *job) {
  for (int i = 0; i < 3; i++)
    if (job->ends[i] >= 0) close(job->ends[i]), job->ends[i] = -1;
}

/* The slot is free once the exit is out and nothing of the command is open here. */
static void maybe_free(struct job *job) {
  if (job->exited && job->ends[0] < 0 && job->ends[1] < 0 && job->ends[2] < 0) job->used = 0;
}

/* Relay: reads what stream (1 stdout, 2 stderr) has, within its credit, into events; at its end
 * (EOF, or an error) says so and closes it. `all`: until the pipe is empty (after the exit). */
static void relay(struct job *job, int stream, int all) {
  do {
    int fd = job->ends[stream];
    if (fd < 0 || job->credit[stream] <= 0) return;
    announce(job); /* before the read: its bytes go after the header that follows this event */
    if (out_used + 24 + 1 > sizeof out_buf) flush();
    size_t room = sizeof out_buf - out_used - 24;
    if (room > (size_t)job->credit[stream]) room = (size_t)job->credit[stream];
    if (room > CHUNK) room = CHUNK;
    ssize_t n = read(fd, out_buf + out_used + 24, room);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
      /* A command's pipes close in its exit before its parent can reap it: when the pipes' end
       * wakes us first, the end waits for the exit, so both reach the agent in one write (one
       * wake-up of the agent, not two). The agent's streams end on that EOF, not at the exit. */
      if (job->reaped) say(EV_EOF, job->id, stream, 0, 0, 0);
      else job->ended[stream] = 1;
      close(fd), job->ends[stream] = -1;
      /* An end after the exit was sent (output held back by credit, or by a background child):
       * the last thing that kept the slot. */
      maybe_free(job);
      return;
    }
    say(EV_DATA, job->id, stream, n, 0, 0);
    out_used += (size_t)n;
    job->credit[stream] -= n;
    if (n >= 64 * 1024 && !job->grown[stream]) {
      job->grown[stream] = 1;
      fcntl(fd, F_SETPIPE_SZ, BIG_PIPE); /* a failure leaves it as it was */
    }
  } while (all);
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
      } else if (S_ISDIR(entry.st_mode)) {
        denied = 1; /* execvp's execve of a directory says EACCES, and it goes on */
      } else {
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

/* /dev/null, opened once: the stdin of every command that has no stdin pipe. */
static int dev_null(void) {
  static int fd = -1;
  if (fd < 0) fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  return fd;
}

static void start(char **fields, int count) {
  /* "S" ID STDIN HOLD ROOT CWD UID GID FILE ARGC ARG... ENVC ENV... ("F": with fork; "P": the agent
   * opens the output pipes itself) */
  if (count < HEADER + 1) return;
  int with_fork = fields[0][0] == 'F', relayed = fields[0][0] != 'P';
  long id = atol(fields[1]);
  int stdin_wanted = strcmp(fields[2], "1") == 0;
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
    pid = start_child(with_fork, report[1], shared, in[0], out[1], err[1], &place, file, argv, envp);
    if (pid < 0) error = errno;
    else if (shared[0]) error = shared[0], stage = shared[1];
  }
  free(argv);
  free(envp);
  free(place.groups);
  int ours[3] = {in[1], out[0], err[0]};
  for (int *fd = (int[]){stdin_wanted ? in[0] : -1, out[1], err[1], report[1]}, i = 0; i < 4; i++)
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
  long long now = now_us();
  *job = (struct job){.used = 1, .relay = relayed, .id = id, .pid = pid, .credit = {0, WINDOW, WINDOW}};
  job->started_us = now;
  memcpy(job->ends, ours, sizeof ours);
  /* Relayed without stdin, its start is said with its first output or its exit if they come
   * within HOLD ms: a short command then wakes the agent once, not twice (docs/exec-path.md). A
   * stdin pipe is opened by the agent on EV_STARTED, and the command may wait for its input before
   * it writes anything: said at once, as in pipe mode (the agent opens the output pipes). A signal
   * the agent wants to send before it has the pid ends the wait ("W"). */
  if (relayed && !stdin_wanted && hold > 0) job->hold_until = now / 1000 + hold;
  else announce(job);
}

/* Records each ended command's status; its exit event goes out once its output has been read
 * (send_exits), so that the agent sees the output first. */
static void reap(void) {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    for (int i = 0; i < job_count; i++) {
      if (!jobs[i].used || jobs[i].reaped || jobs[i].pid != pid) continue;
      jobs[i].reaped = 1;
      jobs[i].reaped_us = now_us();
      jobs[i].status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      jobs[i].signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    }
  }
}

/* For each command that ended: what its pipes hold now (within credit), then its exit. A
 * background child may keep the pipes open: they stay relayed after the exit. */
static void send_exits(void) {
  for (int i = 0; i < job_count; i++) {
    struct job *job = &jobs[i];
    if (!job->used || !job->reaped || job->exited) continue;
    if (job->relay) relay(job, 1, 1), relay(job, 2, 1);
    announce(job);
    for (int stream = 1; stream <= 2; stream++)
      if (job->ended[stream]) say(EV_EOF, job->id, stream, 0, 0, 0);
    long long ran = job->reaped_us - job->started_us;
    say(EV_EXIT, job->id, job->status, job->signal, ran > INT32_MAX ? INT32_MAX : ran, 0);
    job->exited = 1;
    maybe_free(job);
  }
}

/* "C": the agent has opened its ends (stdin's; in pipe mode all three): close ours. */
static void release(long id) {
  struct job *job = find_job(id);
  if (!job || job->released) return;
  job->released = 1;
  if (job->relay) {
    if (job->ends[0] >= 0) close(job->ends[0]), job->ends[0] = -1;
  } else {
    close_ends(job);
  }
  maybe_free(job);
}

/* "A" ID STREAM BYTES: the agent passed that much of a stream on; "D" ID STREAM: it stopped
 * reading it (the caller cut the output, a background child holding the pipe): close it. */
static void grant(long id, int stream, long bytes) {
  struct job *job = find_job(id);
  if (job && job->relay && (stream == 1 || stream == 2)) job->credit[stream] += bytes;
}

static void drop(long id, int stream) {
  struct job *job = find_job(id);
  if (!job || !job->relay || (stream != 1 && stream != 2) || job->ends[stream] < 0) return;
  close(job->ends[stream]), job->ends[stream] = -1;
  maybe_free(job);
}

/* "W" ID: the agent wants the pid now (a signal for a command it has not seen start). */
static void want_pid(long id) {
  struct job *job = find_job(id);
  if (job) announce(job);
}

/* Says the start of each held job whose HOLD is over; returns the ms until the next one is
 * due (poll's timeout), -1 when none is held. */
static int announce_due(void) {
  long long now = now_us() / 1000, next = -1;
  for (int i = 0; i < job_count; i++) {
    struct job *job = &jobs[i];
    if (!job->used || job->announced) continue;
    if (job->hold_until <= now) announce(job);
    else if (next < 0 || job->hold_until - now < next) next = job->hold_until - now;
  }
  return (int)next;
}

/* "U" ID: how many slots are taken, of how many (diagnostics: a slot that is never freed shows). */
static void usage(long id) {
  int used = 0;
  for (int i = 0; i < job_count; i++) used += jobs[i].used;
  say(EV_SLOTS, id, used, job_count, 0, 0);
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
      if (count == 1 && strchr("SFP", next[0]) && next[0] && !next[1]) need = HEADER; /* S ... ARGC */
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
  /* Our events to the agent carry up to CHUNK of output each: a pipe that holds a few of them. */
  fcntl(1, F_SETPIPE_SZ, 2 * BIG_PIPE);
  if (children < 0) return perror("vmctl-spawner: signalfd"), 1;
  static char buf[MAX_REQUEST];
  size_t used = 0;
  struct pollfd *fds = NULL;
  int *which = NULL; /* fds[2 + k] is stream which[k] % 3 of job which[k] / 3 */
  int room = 0, timeout = -1;
  for (;;) {
    if (room < 2 + 2 * job_count) {
      room = 2 + 2 * job_count;
      fds = realloc(fds, (size_t)room * sizeof *fds);
      which = realloc(which, (size_t)room * sizeof *which);
      if (!fds || !which) return fputs("vmctl-spawner: out of memory\n", stderr), 1;
    }
    fds[0] = (struct pollfd){.fd = 0, .events = POLLIN};
    fds[1] = (struct pollfd){.fd = children, .events = POLLIN};
    int polled = 2;
    for (int i = 0; i < job_count; i++)
      for (int stream = 1; stream <= 2; stream++)
        if (jobs[i].used && jobs[i].relay && jobs[i].ends[stream] >= 0 && jobs[i].credit[stream] > 0) {
          which[polled - 2] = i * 3 + stream;
          fds[polled++] = (struct pollfd){.fd = jobs[i].ends[stream], .events = POLLIN};
        }
    if (poll(fds, (nfds_t)polled, timeout) < 0) {
      if (errno == EINTR) continue;
      return perror("vmctl-spawner: poll"), 1;
    }
    /* Output first (the jobs' indexes above still hold: requests may grow the table), then
     * requests, then the exits, so that a command's output goes out before its exit. */
    for (int k = 2; k < polled; k++)
      if (fds[k].revents) relay(&jobs[which[k - 2] / 3], which[k - 2] % 3, 0);
    if (fds[0].revents) {
      ssize_t n = read(0, buf + used, sizeof buf - used);
      if (n == 0) return 0; /* the agent is gone */
      if (n < 0 && errno != EINTR && errno != EAGAIN) return 1;
      if (n > 0) {
        used += (size_t)n;
        size_t done = handle(buf, used);
        memmove(buf, buf + done, used - done);
        used -= done;
        if (used == sizeof buf) return fputs("vmctl-spawner: request too long\n", stderr), 1;
      }
    }
    if (fds[1].revents) {
      struct signalfd_siginfo info;
      while (read(children, &info, sizeof info) > 0) {}
      reap();
    }
    send_exits();
    timeout = announce_due();
    flush();
  }
}
