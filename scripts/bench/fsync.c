/* The disk's price for one journal record: a small write inside a file
 * already zero-filled to its size, then fdatasync (no metadata to flush),
 * and for comparison the same write appended (the file grows each time).
 * Prints "label<TAB>us-per-sync" lines.   fsync DIR SECONDS */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double run(const char *path, int prealloc, double secs) {
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) { perror(path); exit(1); }
  static char zeros[1 << 20], rec[240];
  memset(rec, 'x', sizeof rec - 1);
  rec[sizeof rec - 1] = '\n';
  off_t at = 0;
  long n = 0;
  if (prealloc) {
    for (int i = 0; i < 16; i++)
      if (write(fd, zeros, sizeof zeros) != (ssize_t)sizeof zeros) { perror("write"); exit(1); }
    fsync(fd);
  }
  double t0 = now_s();
  while (now_s() - t0 < secs && at + (off_t)sizeof rec < (off_t)(16 << 20)) {
    if (pwrite(fd, rec, sizeof rec, at) != (ssize_t)sizeof rec || fdatasync(fd) != 0) { perror("sync"); exit(1); }
    at += (off_t)sizeof rec;
    n++;
  }
  double us = (now_s() - t0) * 1e6 / (double)n;
  close(fd);
  unlink(path);
  return us;
}

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: fsync DIR SECONDS\n"); return 2; }
  char path[4096];
  snprintf(path, sizeof path, "%s/fsync-bench", argv[1]);
  double secs = atof(argv[2]);
  printf("fdatasync of a 240-byte overwrite in a preallocated file\t%.1f\n", run(path, 1, secs));
  printf("fdatasync of a 240-byte append (the file grows)\t%.1f\n", run(path, 0, secs));
  return 0;
}
