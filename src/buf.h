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
/* Room for n more bytes (and the NUL kept after them); 0 when there is
 * none (oom is set). */
int buf_reserve(struct buf *b, size_t n);
#endif
