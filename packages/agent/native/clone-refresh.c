/*
 * clone-refresh: what a VM restored from a snapshot needs so that it is not a twin of its siblings.
 *
 *   clone-refresh UNIX_TIME_NS < ENTROPY
 *
 * Mixes the host's random bytes (stdin, up to 512) into the kernel's pool, crediting them, and
 * forces the kernel's RNG to reseed: every clone of one snapshot starts with the same RNG state,
 * and microvm has no ACPI vmgenid table to do this for us. Then steps CLOCK_REALTIME to the host's
 * time (the guest clock stands still while a snapshot sits on disk). Prints the step in ns.
 * Node can do neither (no ioctl, no clock_settime), hence this small static program.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
#include <linux/random.h>

static void die(const char *what) {
  fprintf(stderr, "clone-refresh: %s: %s\n", what, strerror(errno));
  exit(1);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: clone-refresh UNIX_TIME_NS < ENTROPY\n");
    return 2;
  }
  struct {
    struct rand_pool_info info;
    unsigned char bytes[512];
  } pool;
  size_t length = 0;
  ssize_t n;
  while (length < sizeof pool.bytes && (n = read(0, pool.bytes + length, sizeof pool.bytes - length)) > 0)
    length += (size_t)n;
  if (length > 0) {
    int random = open("/dev/urandom", O_RDWR);
    if (random < 0) die("open /dev/urandom");
    pool.info.entropy_count = (int)(length * 8);
    pool.info.buf_size = (int)length;
    if (ioctl(random, RNDADDENTROPY, &pool) < 0) die("RNDADDENTROPY");
    if (ioctl(random, RNDRESEEDCRNG) < 0) die("RNDRESEEDCRNG");
    close(random);
  }
  long long target = strtoll(argv[1], NULL, 10);
  if (target > 0) {
    struct timespec before, now = {.tv_sec = target / 1000000000LL, .tv_nsec = target % 1000000000LL};
    clock_gettime(CLOCK_REALTIME, &before);
    if (clock_settime(CLOCK_REALTIME, &now) < 0) die("clock_settime");
    long long step = target - ((long long)before.tv_sec * 1000000000LL + before.tv_nsec);
    printf("%lld\n", step);
  } else {
    printf("0\n");
  }
  return 0;
}
