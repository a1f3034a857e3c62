/*
 * The spawner's table of commands (spawner.c), and the relay of their output to the agent: events
 * (spawner.c lists them) wait in one buffer and leave in one write per turn of the main loop.
 *
 * Why relay: the agent opening each command's pipes through /proc/<spawner>/fd (three opens, a
 * "C" request, two sockets and streams in Node, the exit a turn later) cost more per exec in the
 * guest than the copy through this process does (docs/exec-path.md). Memory stays bounded: a
 * stream has at most WINDOW bytes in flight until the agent grants more, so a command writing
 * faster than the host reads blocks on its own pipe.
 */
#define _GNU_SOURCE
#include "spawner-jobs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct job *jobs;
int job_count;

/* A free slot (the table grown when none is), or NULL when memory is out. */
struct job *free_job(void) {
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

void flush(void) {
  for (size_t done = 0; done < out_used;) {
    ssize_t n = write(1, out_buf + done, out_used - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) exit(1); /* the agent is gone */
    done += (size_t)n;
  }
  out_used = 0;
}

/* One event: six 32-bit numbers (kind, id, a, b, c, d); EV_DATA's bytes follow it (relay). */
void say(int kind, long id, long a, long b, long c, long d) {
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

/* A terminal's input is kept only while its master is open. */
static void drop_input(struct job *job) {
  free(job->input);
  job->input = NULL;
  job->input_used = 0;
}

/* The slot is free once the exit is out and nothing of the command is open here. */
static void maybe_free(struct job *job) {
  if (job->ends[1] < 0) drop_input(job);
  if (job->exited && job->ends[0] < 0 && job->ends[1] < 0 && job->ends[2] < 0) job->used = 0;
}

/* A command that runs: its slot keeps our ends of its pipes (stdin's write end, stdout's and
 * stderr's read ends; -1: none). Relayed, its start is said with its first output or its exit if
 * they come within `hold` ms: a short command then wakes the agent once, not twice
 * (docs/exec-path.md). The caller gives 0 for a command with a stdin pipe: the agent opens that on
 * EV_STARTED, and the command may wait for its input before it writes anything. In pipe mode (the
 * agent opens the output pipes) it is said at once. A signal the agent wants to send before it
 * has the pid ends the wait ("W"). */
void begin_job(struct job *job, long id, pid_t pid, int relayed, const int ends[3], long hold, int tty) {
  long long now = now_us();
  *job = (struct job){.used = 1, .relay = relayed, .id = id, .pid = pid, .credit = {0, WINDOW, WINDOW}, .tty = tty};
  job->started_us = now;
  memcpy(job->ends, ends, sizeof job->ends);
  if (relayed && hold > 0) job->hold_until = now / 1000 + hold;
  else announce(job);
}

/* Relay: reads what stream (1 stdout, 2 stderr) has, within its credit, into events; at its end
 * (EOF, or an error) says so and closes it. `all`: until the pipe is empty (after the exit). */
void relay(struct job *job, int stream, int all) {
  do {
    int fd = job->ends[stream];
    if (fd < 0 || job->credit[stream] <= 0) return;
    /* Not announced yet: room for EV_STARTED before EV_DATA's header, said only if the read
     * brings bytes (an EOF first waits for the exit, with the start: see below). */
    size_t header = job->announced ? 24 : 48;
    if (out_used + header + 1 > sizeof out_buf) flush();
    size_t room = sizeof out_buf - out_used - header;
    if (room > (size_t)job->credit[stream]) room = (size_t)job->credit[stream];
    if (room > CHUNK) room = CHUNK;
    ssize_t n = read(fd, out_buf + out_used + header, room);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
      /* A command's pipes close in its exit before its parent can reap it: when the pipes' end
       * wakes us first, the end waits for the exit, so both reach the agent in one write (one
       * wake-up of the agent, not two). The agent's streams end on that EOF, not at the exit. */
      if (job->reaped) announce(job), say(EV_EOF, job->id, stream, 0, 0, 0);
      else job->ended[stream] = 1;
      close(fd), job->ends[stream] = -1;
      /* An end after the exit was sent (output held back by credit, or by a background child):
       * the last thing that kept the slot. */
      maybe_free(job);
      return;
    }
    announce(job); /* fills the first 24 of `header` when it was 48 */
    say(EV_DATA, job->id, stream, n, 0, 0);
    out_used += (size_t)n;
    job->credit[stream] -= n;
    if (n >= 64 * 1024 && !job->grown[stream]) {
      job->grown[stream] = 1;
      fcntl(fd, F_SETPIPE_SZ, BIG_PIPE); /* a failure leaves it as it was */
    }
  } while (all);
}

/* Records each ended command's status; its exit event goes out once its output has been read
 * (send_exits), so that the agent sees the output first. */
void reap(void) {
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
void send_exits(void) {
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
void release(long id) {
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
void grant(long id, int stream, long bytes) {
  struct job *job = find_job(id);
  if (job && job->relay && (stream == 1 || stream == 2)) job->credit[stream] += bytes;
}

void drop(long id, int stream) {
  struct job *job = find_job(id);
  if (!job || !job->relay || (stream != 1 && stream != 2) || job->ends[stream] < 0) return;
  close(job->ends[stream]), job->ends[stream] = -1;
  maybe_free(job);
}

/* "W" ID: the agent wants the pid now (a signal for a command it has not seen start). */
void want_pid(long id) {
  struct job *job = find_job(id);
  if (job) announce(job);
}

/* Says the start of each held job whose HOLD is over; returns the ms until the next one is
 * due (poll's timeout), -1 when none is held. */
int announce_due(void) {
  long long now = now_us() / 1000, next = -1;
  for (int i = 0; i < job_count; i++) {
    struct job *job = &jobs[i];
    if (!job->used || job->announced) continue;
    if (job->hold_until <= now) announce(job);
    else if (next < 0 || job->hold_until - now < next) next = job->hold_until - now;
  }
  return (int)next;
}

static int hex_digit(char c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Writes what the terminal takes of its input now (its master is non-blocking: a program that
 * does not read leaves the rest here, and the main loop waits for the terminal to take more). */
void write_input(struct job *job) {
  size_t done = 0;
  while (job->ends[1] >= 0 && done < job->input_used) {
    ssize_t n = write(job->ends[1], job->input + done, job->input_used - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n < 0 && errno != EAGAIN) job->input_used = done = 0; /* gone (EIO): nobody reads it */
      break;
    }
    done += (size_t)n;
  }
  memmove(job->input, job->input + done, job->input_used - done);
  job->input_used -= done;
}

/* Queues bytes for a terminal; beyond TTY_INPUT_MAX not taken they are dropped, as a terminal
 * whose program never reads would have to. */
static void queue_input(struct job *job, const char *bytes, size_t size) {
  if (!job->input && !(job->input = malloc(TTY_INPUT_MAX))) return;
  if (size > TTY_INPUT_MAX - job->input_used) size = TTY_INPUT_MAX - job->input_used;
  memcpy(job->input + job->input_used, bytes, size);
  job->input_used += size;
  write_input(job);
}

/* "I" ID HEX: bytes typed (or pasted) into the command's terminal, hex-encoded (fields end at NUL). */
void tty_input(long id, const char *hex) {
  struct job *job = find_job(id);
  if (!job || !job->tty || job->ends[1] < 0) return;
  char bytes[4096];
  size_t size = 0;
  for (const char *at = hex; at[0] && at[1]; at += 2) {
    int high = hex_digit(at[0]), low = hex_digit(at[1]);
    if (high < 0 || low < 0) return;
    bytes[size++] = (char)(high << 4 | low);
    if (size == sizeof bytes) queue_input(job, bytes, size), size = 0;
  }
  if (size) queue_input(job, bytes, size);
}

/* "Z" ID ROWS COLS: the terminal's new size; the kernel sends SIGWINCH to its foreground group. */
void tty_resize(long id, int rows, int cols) {
  struct job *job = find_job(id);
  if (!job || !job->tty || job->ends[1] < 0 || rows <= 0 || cols <= 0) return;
  struct winsize size = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
  ioctl(job->ends[1], TIOCSWINSZ, &size);
}

/* "E" ID: the end of the terminal's input: its end-of-file character (Ctrl-D), as a user types it. */
void tty_end(long id) {
  struct job *job = find_job(id);
  if (job && job->tty && job->ends[1] >= 0) queue_input(job, "\x04", 1);
}

/* "U" ID: how many slots are taken, of how many (diagnostics: a slot that is never freed shows). */
void usage(long id) {
  int used = 0;
  for (int i = 0; i < job_count; i++) used += jobs[i].used;
  say(EV_SLOTS, id, used, job_count, 0, 0);
}
