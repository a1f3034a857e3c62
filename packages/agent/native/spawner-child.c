/*
 * The command's side of a start (spawner.c): what its process does between vfork and execve.
 *
 * It does what busybox's `nsenter -F -r ROOT -w CWD -S UID -G GID` did before (the agent still
 * uses that when commands start through child_process): chroot, working directory, setgroups and
 * setgid, setuid, in that order, then execs the command itself: one exec where there were two
 * (busybox's, then the command's), and a PATH lookup of one stat per directory (exec_command)
 * instead of the agent's stats in JS.
 *
 * The command's process is the leader of a new session (Node's `detached: true`), so a signal to
 * its process group reaches everything it started; its signal mask and handlers are the defaults.
 */
#define _GNU_SOURCE
#include "spawner-child.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* In the child: never returns. Reports errno and the failed stage in `shared` (after vfork: the
 * spawner's memory) or, after fork, on `report` (close-on-exec: EOF on success). */
static void run(int report, volatile int *shared, int in, int out, int err, int tty,
                const struct place *place, const char *file, char **argv, char **envp) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  signal(SIGPIPE, SIG_DFL);
  setsid();
  /* The agent keeps the OOM killer off itself and this spawner (agent-main.ts), and a fork inherits
   * that: a command is an ordinary process again, the one a guest out of memory loses first. */
  int adjust = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
  if (adjust >= 0) {
    if (write(adjust, "0", 1) < 0) { /* a kernel without it: the command keeps the agent's */ }
    close(adjust);
  }
  int failure[2] = {0, STAGE_EXEC};
  if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) goto failed;
  /* A terminal: the session's controlling terminal, so that Ctrl-C, job control and a hangup reach
   * its foreground processes. */
  if (tty && ioctl(0, TIOCSCTTY, 0) < 0) goto failed;
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
pid_t __attribute__((noinline)) start_child(int with_fork, int report, volatile int *shared, int in,
                                                   int out, int err, int tty, const struct place *place,
                                                   const char *file, char **argv, char **envp) {
  pid_t pid = with_fork ? fork() : vfork();
  if (pid == 0) run(with_fork ? report : -1, shared, in, out, err, tty, place, file, argv, envp);
  return pid;
}
