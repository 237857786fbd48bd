/* A growable byte buffer for C-only work (no Lua inside): libcurl's
 * callbacks and journal records. On allocation failure it sets oom and
 * ignores further adds; callers check oom once at the end. */
#ifndef UQPAY_BUF_H
#define UQPAY_BUF_H
#include <stddef.h>

struct buf {
  char *data;
  size_t len, cap;
  int oom;
};

void buf_add(struct buf *b, const char *p, size_t n);
#endif
