/*
 * The random pool behind UUIDs (src/sys.c) is emptied in a forked child: a
 * parent and its child never hand out the same key. TAP on stdout.
 */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core.h"

int main(void) {
  char first[37], parent[37], child[37] = "";
  int fds[2];
  if (uqpay_uuid4(first) != 0 || pipe(fds) != 0) return 2; /* the parent's pool is filled */
  pid_t pid = fork();
  if (pid < 0) return 2;
  if (pid == 0) {
    char c[37];
    if (uqpay_uuid4(c) != 0) _exit(1);
    ssize_t w = write(fds[1], c, sizeof c);
    _exit(w == (ssize_t)sizeof c ? 0 : 1);
  }
  close(fds[1]);
  ssize_t r = read(fds[0], child, sizeof child);
  int status = 0;
  waitpid(pid, &status, 0);
  if (uqpay_uuid4(parent) != 0) return 2;
  int ok = r == (ssize_t)sizeof child && WIFEXITED(status) && WEXITSTATUS(status) == 0 && strcmp(parent, child) != 0;
  printf("%s 1 - a forked child's next UUID is not its parent's (parent %s, child %s)\n", ok ? "ok" : "not ok", parent,
         child);
  printf("1..1\n");
  return ok ? 0 : 1;
}
