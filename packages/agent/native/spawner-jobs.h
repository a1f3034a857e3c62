/* The table of the commands the spawner started, and the relay of their output (spawner-jobs.c). */
#ifndef VMCTL_SPAWNER_JOBS_H
#define VMCTL_SPAWNER_JOBS_H

#include <sys/types.h>

/* What one relayed stream may have in flight to the agent before it grants more ("A"): a command
 * writing faster than the host reads blocks on its pipe, the spawner and the agent hold at most
 * this much of it. Matches WINDOW in spawned-command.ts. */
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
  int tty;        /* on a pseudo-terminal: ends[1] is its master, written by "I" (input below) */
  char *input;    /* tty: bytes for the terminal that it has not taken yet */
  size_t input_used;
};

/* What the input of one terminal may hold before "I" drops bytes (typing never comes near it). */
#define TTY_INPUT_MAX (1024 * 1024)

/* Grown as needed: as many commands may run at once as child_process would allow. */
extern struct job *jobs;
extern int job_count;

struct job *free_job(void);
/* One event: six 32-bit numbers (kind, id, a, b, c, d); it leaves with the others at flush(). */
void say(int kind, long id, long a, long b, long c, long d);
/* Writes the events said since the last flush, in one write (exits when the agent is gone). */
void flush(void);
void begin_job(struct job *job, long id, pid_t pid, int relayed, const int ends[3], long hold, int tty);
void relay(struct job *job, int stream, int all);
void reap(void);
void send_exits(void);
int announce_due(void);
/* The agent's requests about a job (spawner.c's "C", "A", "D", "W", "U"). */
void release(long id);
void grant(long id, int stream, long bytes);
void drop(long id, int stream);
void want_pid(long id);
void usage(long id);
/* A terminal's requests ("I", "Z", "E"), and its input written as it takes it (the main loop). */
void tty_input(long id, const char *hex);
void tty_resize(long id, int rows, int cols);
void tty_end(long id);
void write_input(struct job *job);

#endif
