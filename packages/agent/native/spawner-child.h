/* What a command's process does between vfork and execve (spawner-child.c). */
#ifndef VMCTL_SPAWNER_CHILD_H
#define VMCTL_SPAWNER_CHILD_H

#include <sys/types.h>

/* Which step of a start failed (EV_FAILED's STAGE; spawner.ts's StartStage). */
enum stage { STAGE_EXEC, STAGE_PATH, STAGE_ROOT, STAGE_CWD, STAGE_USER };

struct place {
  const char *root; /* "" for the spawner's own */
  const char *cwd;
  long uid, gid; /* -1: unchanged */
  gid_t *groups;  /* the user's groups for setgroups (group_list), with GID */
  int group_count;
};

/* Starts the command's process (vfork, or fork when with_fork) on the pipes in, out and err (with
 * `tty`: all three a pseudo-terminal's slave, made its controlling terminal), placed
 * and as the user `place` says: its pid, or -1 with errno. A step that failed before the command
 * ran: shared[0] holds its errno and shared[1] its stage after vfork; after fork they come on
 * `report` (close-on-exec: EOF when the exec succeeded). */
pid_t start_child(int with_fork, int report, volatile int *shared, int in, int out, int err, int tty,
                  const struct place *place, const char *file, char **argv, char **envp);

#endif
