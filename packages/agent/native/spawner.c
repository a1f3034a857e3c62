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
 *   "T" ID SIZE HOLD ...     the same as "S", on a pseudo-terminal of SIZE (ROWSxCOLS): its slave is
 *                            the command's controlling terminal, stdin, stdout and stderr; its
 *                            master is read as stream 1 (EV_DATA) and written by "I"
 *   "I" ID HEX               bytes for the terminal's input, hex-encoded (written as it takes them)
 *   "Z" ID ROWS COLS         the terminal's new size (its foreground processes get SIGWINCH)
 *   "E" ID                   the end of the terminal's input: its end-of-file character (Ctrl-D)
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
 * The parts, each its own file: the request reader (spawner-requests.c), what a command's process
 * does between vfork and execve (spawner-child.c), the table of commands and the relay of their
 * output (spawner-jobs.c); here, the loop that waits on all of them.
 *
 * Stdin's end (and in pipe mode the output's) stays open here until the agent has opened its own
 * (so a command that exits at once leaves its stdin writable and its output readable). Exits when
 * its stdin closes (the agent is gone).
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
#include <unistd.h>

#include "spawner-jobs.h"
#include "spawner-requests.h"

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
  int *which = NULL; /* fds[2 + k] is stream which[k] % 3 of job which[k] / 3 (0: a terminal's input) */
  int room = 0, timeout = -1;
  for (;;) {
    if (room < 2 + 3 * job_count) {
      room = 2 + 3 * job_count;
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
    for (int i = 0; i < job_count; i++)
      if (jobs[i].used && jobs[i].tty && jobs[i].input_used && jobs[i].ends[1] >= 0) {
        which[polled - 2] = i * 3;
        fds[polled++] = (struct pollfd){.fd = jobs[i].ends[1], .events = POLLOUT};
      }
    if (poll(fds, (nfds_t)polled, timeout) < 0) {
      if (errno == EINTR) continue;
      return perror("vmctl-spawner: poll"), 1;
    }
    /* Output first (the jobs' indexes above still hold: requests may grow the table), then
     * requests, then the exits, so that a command's output goes out before its exit. */
    for (int k = 2; k < polled; k++)
      if (fds[k].revents && which[k - 2] % 3 == 0) write_input(&jobs[which[k - 2] / 3]);
      else if (fds[k].revents) relay(&jobs[which[k - 2] / 3], which[k - 2] % 3, 0);
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
