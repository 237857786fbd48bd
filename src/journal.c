/*
 * The run journal's file (SPEC §5): append-only checksummed JSON lines,
 * locked by the live run for its whole life, read back on resume into a
 * small index (identity hash -> state and file offsets) so that a resume
 * holds no bodies in memory. The operations themselves are in operation.c.
 *
 *   line   := checksum(16 hex, FNV-1a 64 of json) " " json "\n"
 *   record := run | intent | outcome | resume | unrepeated | complete
 *
 * A journal with no path is a memory journal: every write still goes
 * through an operation, but nothing is kept (-e, stdin, the REPL,
 * --no-journal, the in-process simulator).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "lauxlib.h"
#include "core.h"
#include "errors.h"
#include "json.h"
#include "journal.h"

/* ---------- record text (struct buf is shared with http.c) ---------- */

int buf_reserve(struct buf *b, size_t n) {
  if (b->oom) return 0;
  if (n > ((size_t)-1) / 4 - b->len) {
    b->oom = 1;
    return 0;
  }
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) {
      b->oom = 1;
      return 0;
    }
    b->data = d;
    b->cap = cap;
  }
  return 1;
}

void buf_add(struct buf *b, const char *p, size_t n) {
  if (!buf_reserve(b, n)) return;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
}

/* A JSON string, escaped by the encoder's escaper (json.c) a piece at a
 * time, so that a long reply does not reserve six times its size. */
void rb_str(struct buf *b, const char *s, size_t n) {
  rb_lit(b, "\"");
  for (size_t i = 0; i < n;) {
    size_t m = n - i > 4096 ? 4096 : n - i;
    if (!buf_reserve(b, JSON_ESCAPED_MAX(m))) return;
    b->len += json_escape(b->data + b->len, s + i, m);
    i += m;
  }
  rb_lit(b, "\""); /* and the NUL after it */
}

void rb_int(struct buf *b, long long v) {
  char tmp[JSON_INTEGER_TEXT];
  size_t n;
  const char *p = json_integer_text(tmp, v, &n);
  rb_add(b, p, n);
}

#define FNV1A_START 1469598103934665603ULL

/* FNV-1a 64 of s, continuing from h: parts hashed in turn hash as their
 * concatenation would. */
static uint64_t fnv1a_more(uint64_t h, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ULL;
  }
  return h;
}

static uint64_t fnv1a(const char *s, size_t n) { return fnv1a_more(FNV1A_START, s, n); }

/* ---------- the file ---------- */

static int pwrite_all(int fd, const char *s, size_t n, int64_t at) {
  size_t off = 0;
  while (off < n) {
    ssize_t w = pwrite(fd, s + off, n - off, (off_t)(at + (int64_t)off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      if (w == 0) errno = ENOSPC;
      return -1;
    }
    off += (size_t)w;
  }
  return 0;
}

/* The file is written ahead with zeros, in chunks that double from 64 KiB
 * to 4 MiB, and synced once per chunk: a record then overwrites bytes that
 * already exist, so its fdatasync flushes the data and no metadata (the
 * file's size does not change). Readers stop at the first zero byte. */
static int preallocate(journal_t *j, size_t need) {
  static const char zeros[65536];
  int64_t chunk = j->alloc < 65536 ? 65536 : (j->alloc > 4194304 ? 4194304 : j->alloc);
  int64_t to = j->alloc + chunk;
  while (to < j->size + (int64_t)need) to += chunk;
  for (int64_t at = j->alloc; at < to; at += (int64_t)sizeof zeros) {
    size_t n = (size_t)(to - at < (int64_t)sizeof zeros ? to - at : (int64_t)sizeof zeros);
    if (pwrite_all(j->fd, zeros, n, at) != 0) return -1;
  }
  while (fdatasync(j->fd) != 0) {
    if (errno != EINTR) return -1;
  }
  j->alloc = to;
  return 0;
}

/* Appends one whole line. A write that fails halfway (a full disk) is cut
 * off again, so that the file never holds half a line before good ones,
 * and the journal takes no more records: the run stops where it is. */
int journal_append(journal_t *j, const char *s, size_t n, int sync) {
  if (j->closed || j->broken) {
    errno = j->closed ? EBADF : EIO;
    return -1;
  }
  j->appended++;
  if (j->fd < 0 || j->readonly) { /* the lifecycle without a record */
    j->synced = j->appended;
    return 0;
  }
  if (j->unscanned) { /* appending after the zeros would hide the record from every reader */
    errno = EINVAL;
    return -1;
  }
  /* no room to write ahead (a nearly full disk): give back what was zeroed
   * and write the record at the end, as a plain append would */
  if (j->size + (int64_t)n > j->alloc && preallocate(j, n) != 0 &&
      (errno != ENOSPC || ftruncate(j->fd, (off_t)j->alloc) != 0))
    goto failed;
  if (pwrite_all(j->fd, s, n, j->size) != 0) goto failed;
  j->size += (int64_t)n;
  if (j->size > j->alloc) j->alloc = j->size;
  return sync ? journal_sync(j) : 0;
failed:;
  int e = errno;
  if (ftruncate(j->fd, (off_t)j->size) != 0) { /* nothing more to do: the next scan cuts a torn tail */ }
  j->alloc = j->size;
  j->broken = 1;
  errno = e;
  return -1;
}

int journal_sync(journal_t *j) {
  if (j->closed || j->broken) {
    errno = j->closed ? EBADF : EIO;
    return -1;
  }
  if (j->fd >= 0 && !j->readonly && j->synced != j->appended) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (fdatasync(j->fd) != 0) {
      if (errno != EINTR) return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    j->sync_ns += (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec));
    j->nsyncs++;
  }
  j->synced = j->appended;
  return 0;
}

#define RECORD_HEAD 17 /* 16 hex digits of the checksum and a space */

struct buf *journal_record_begin(journal_t *j) {
  struct buf *b = &j->rec;
  if (b->cap > (1 << 20)) { /* one huge reply does not stay for the run */
    free(b->data);
    *b = (struct buf){0};
  }
  b->len = 0;
  b->oom = 0;
  rb_add(b, "0000000000000000 ", RECORD_HEAD);
  return b;
}

int journal_append_record(journal_t *j, struct buf *b, int sync) {
  /* its number first: a line deleted or moved by hand leaves a gap that
   * every reader sees, where a resume would otherwise take a write whose
   * intent was deleted for one never sent, and send it with a new key */
  char num[32];
  int nn = j->next_n > 0 ? snprintf(num, sizeof num, "\"n\":%lld,", (long long)j->next_n) : 0;
  if (nn > 0 && b->len > RECORD_HEAD && b->data[RECORD_HEAD] == '{' && buf_reserve(b, (size_t)nn)) {
    memmove(b->data + RECORD_HEAD + 1 + nn, b->data + RECORD_HEAD + 1, b->len - RECORD_HEAD - 1);
    memcpy(b->data + RECORD_HEAD + 1, num, (size_t)nn);
    b->len += (size_t)nn;
    b->data[b->len] = '\0';
  }
  rb_lit(b, "\n");
  if (b->oom) { errno = ENOMEM; return -1; }
  uint64_t h = fnv1a(b->data + RECORD_HEAD, b->len - RECORD_HEAD - 1);
  static const char hex[] = "0123456789abcdef";
  for (int i = 15; i >= 0; i--, h >>= 4) b->data[i] = hex[h & 15];
  int rc = journal_append(j, b->data, b->len, sync);
  if (rc == 0 && j->next_n > 0) j->next_n++;
  return rc;
}

/* Reads the line starting at off (without its newline) into a malloc'ed
 * buffer; returns its length, or -1. */
ssize_t journal_read_line(journal_t *j, int64_t off, char **out) {
  size_t cap = 4096, n = 0;
  char *p = malloc(cap);
  if (!p) return -1;
  for (;;) {
    if (n + 2048 > cap) {
      char *q = realloc(p, cap *= 2);
      if (!q) { free(p); return -1; }
      p = q;
    }
    ssize_t r = pread(j->fd, p + n, cap - n - 1, (off_t)(off + (int64_t)n));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    char *nl = memchr(p + n, '\n', (size_t)r);
    if (nl) {
      n = (size_t)(nl - p);
      break;
    }
    n += (size_t)r;
  }
  p[n] = '\0';
  *out = p;
  return (ssize_t)n;
}

/* ---------- the index ---------- */

slot_t *journal_slot(journal_t *j, uint64_t h, int create) {
  if (create && (j->nslots + 1) * 5 >= j->slotcap * 4) {
    size_t cap = j->slotcap ? j->slotcap * 2 : 1024;
    slot_t *s = calloc(cap, sizeof *s);
    if (!s) return NULL;
    for (size_t i = 0; i < j->slotcap; i++) {
      if (!j->slots[i].h) continue;
      size_t k = j->slots[i].h & (cap - 1);
      while (s[k].h) k = (k + 1) & (cap - 1);
      s[k] = j->slots[i];
    }
    free(j->slots);
    j->slots = s;
    j->slotcap = cap;
  }
  if (!j->slotcap) return NULL;
  size_t k = h & (j->slotcap - 1);
  while (j->slots[k].h) {
    if (j->slots[k].h == h) return &j->slots[k];
    k = (k + 1) & (j->slotcap - 1);
  }
  if (!create) return NULL;
  j->nslots++;
  j->slots[k].h = h;
  j->slots[k].packed = 0;
  return &j->slots[k];
}

journal_t *journal_check(lua_State *L, int idx) {
  journal_t *j = (journal_t *)luaL_checkudata(L, idx, JOURNAL_MT);
  if (j->closed) uqpay_raise(L, "config", "the run journal is closed (the run has ended)");
  return j;
}

/* The journals this process holds open. Closing any descriptor of a file
 * drops the process's POSIX lock on it, so a file that is an open journal
 * is read through the journal's own descriptor (journal_read), never
 * opened and closed again. Journals belong to the main Lua state only. */
static journal_t *open_journals;

static void unlist(journal_t *j) {
  for (journal_t **p = &open_journals; *p; p = (journal_t **)&(*p)->next_open)
    if (*p == j) {
      *p = j->next_open;
      break;
    }
  j->next_open = NULL;
}

void journal_forget_mac(journal_t *j) {
  EVP_MAC_CTX_free((EVP_MAC_CTX *)j->mac);
  j->mac = NULL;
}

static void journal_free(journal_t *j) {
  unlist(j);
  journal_forget_mac(j);
  /* the room written ahead goes back; a crash leaves it, and readers stop at it */
  if (j->fd >= 0 && !j->readonly && j->alloc > j->size && !j->broken && ftruncate(j->fd, (off_t)j->size) == 0) j->alloc = j->size;
  if (j->fd >= 0) close(j->fd); /* drops the lock */
  j->fd = -1;
  j->closed = 1;
  free(j->path);
  free(j->slots);
  free(j->occs);
  free(j->rec.data);
  j->rec = (struct buf){0};
  j->path = NULL;
  j->slots = NULL;
  j->occs = NULL;
  j->nslots = j->slotcap = j->nocc = j->occcap = 0;
}

static int l_journal_close(lua_State *L) {
  journal_t *j = (journal_t *)luaL_checkudata(L, 1, JOURNAL_MT);
  if (!j->closed) journal_free(j);
  return 0;
}

/* The holder of the lock on fd, or 0. */
static int lock_holder(int fd) {
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
  if (fcntl(fd, F_GETLK, &fl) != 0 || fl.l_type == F_UNLCK) return 0;
  return (int)fl.l_pid;
}

/* journal_open(path | nil, run_id [, readonly]) -> journal. Raises a
 * config error when the path is not a regular file or another process
 * holds the run. The lock is a POSIX record lock on the whole file, so
 * F_GETLK names the holder; nothing else in this process opens the file (a
 * close would drop the lock). readonly (a dry run): the file is opened for
 * reading only and never created, locked, cut or written; records appended
 * to it go nowhere, as a memory journal's do (and when there is no file, it
 * is a memory journal). */
static int l_journal_open(lua_State *L) {
  const char *path = luaL_optstring(L, 1, NULL);
  const char *label = luaL_optstring(L, 2, "");
  int readonly = lua_toboolean(L, 3);
  journal_t *j = (journal_t *)lua_newuserdatauv(L, sizeof(journal_t), 0);
  memset(j, 0, sizeof *j);
  j->fd = -1;
  luaL_setmetatable(L, JOURNAL_MT);
  if (getrandom(j->salt, sizeof j->salt, 0) != (ssize_t)sizeof j->salt)
    return uqpay_raise(L, "config", "cannot read random bytes for the journal");
  if (!path) return 1;
  j->path = strdup(path);
  if (!j->path) return uqpay_raise(L, "config", "out of memory");
  /* A journal this process holds is never opened again: closing the second
   * descriptor would drop the first's lock, and a second writer in one
   * process would not be stopped by it (a process's own lock never
   * conflicts). A look at it (--runs, reconcile's list) gets no descriptor. */
  struct stat st0;
  if (stat(path, &st0) == 0)
    for (journal_t *o = open_journals; o; o = o->next_open)
      if (!o->readonly && o->fd >= 0 && o->dev == st0.st_dev && o->ino == st0.st_ino) {
        if (!readonly) return uqpay_raise(L, "config", "%s is in progress (pid %d, this process); journal %s", label,
                                          (int)getpid(), path);
        j->readonly = j->held_here = 1;
        return 1;
      }
  for (int tries = 0; tries < 5; tries++) {
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
      return uqpay_raise(L, "config", "run journal %s is not a regular file", path);
    int fd = readonly ? open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
                      : open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
    if (fd < 0 && readonly && errno == ENOENT) return 1; /* nothing to read: as a memory journal */
    if (fd < 0) return uqpay_raise(L, "config", "cannot open the run journal %s: %s", path, strerror(errno));
    j->fd = fd;
    j->readonly = readonly;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
      return uqpay_raise(L, "config", "run journal %s is not a regular file", path);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (!readonly && fcntl(fd, F_SETLK, &fl) != 0) {
      int pid = lock_holder(fd);
      return uqpay_raise(L, "config", "%s is in progress (pid %d); journal %s", label, pid, path);
    }
    /* the path may have been renamed away (archived) before we locked */
    struct stat now;
    if (stat(path, &now) == 0 && now.st_ino == st.st_ino && now.st_dev == st.st_dev) {
      j->size = j->alloc = st.st_size; /* scan() finds where the records end */
      j->unscanned = st.st_size > 0;
      j->dev = st.st_dev;
      j->ino = st.st_ino;
      j->next_open = open_journals;
      open_journals = j;
      return 1;
    }
    close(fd);
    j->fd = -1;
  }
  return uqpay_raise(L, "config", "run journal %s keeps changing under us", path);
}

/* Whether [from, to) of the file holds only zero bytes. */
static int all_zero(journal_t *j, int64_t from, int64_t to) {
  char buf[65536];
  while (from < to) {
    size_t want = (size_t)(to - from < (int64_t)sizeof buf ? to - from : (int64_t)sizeof buf);
    ssize_t r = pread(j->fd, buf, want, (off_t)from);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return 1;
    for (ssize_t i = 0; i < r; i++)
      if (buf[i]) return 0;
    from += r;
  }
  return 1;
}

/* Whether a line that is not a record could be the start of one cut short
 * (checksum digits, a space, a brace), up to its first zero byte. */
static int torn_record(const char *line, size_t n) {
  for (size_t i = 0; i < n && line[i]; i++) {
    char c = line[i];
    int ok = i < 16 ? ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) : i == 16 ? c == ' ' : i == 17 ? c == '{' : 1;
    if (!ok) return 0;
  }
  return 1;
}

/* Decodes a record line "<sum> <json>" under protection: the table, or
 * nothing when the line is damaged. */
static int decode_record(lua_State *L) {
  size_t n;
  const char *s = lua_tolstring(L, 1, &n);
  if (n < 18 || s[16] != ' ') return 0;
  char sum[17];
  snprintf(sum, sizeof sum, "%016llx", (unsigned long long)fnv1a(s + 17, n - 17));
  if (memcmp(sum, s, 16) != 0) return 0;
  json_decode(L, s + 17, n - 17, 0);
  return lua_istable(L, -1) ? 1 : 0;
}

/* Pushes the decoded record of a line, or nil when it is damaged. */
int journal_push_record(lua_State *L, const char *s, size_t n) {
  lua_pushcfunction(L, decode_record);
  lua_pushlstring(L, s, n);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_pushnil(L);
    return 0;
  }
  return 1;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

int journal_parse_id(const char *hex, unsigned char id[16]) {
  if (!hex || strlen(hex) != 32) return 0;
  for (int i = 0; i < 16; i++) {
    int a = hexval(hex[2 * i]), b = hexval(hex[2 * i + 1]);
    if (a < 0 || b < 0) return 0;
    id[i] = (unsigned char)(a * 16 + b);
  }
  return 1;
}

uint64_t journal_slot_hash(const unsigned char id[16], uint32_t occ) {
  uint64_t h;
  memcpy(&h, id, 8);
  h ^= (uint64_t)occ * 0x9E3779B97F4A7C15ULL;
  return h ? h : 1;
}

static const char *str_field(lua_State *L, int t, const char *k) {
  lua_getfield(L, t, k);
  const char *v = lua_tostring(L, -1);
  lua_pop(L, 1); /* the string stays referenced by the record */
  return v;
}

/* j:scan() -> {header=, complete=, torn=, records=, applied=, in_doubt=,
 * unsent=, rejected=}: reads the whole file line by line into the index;
 * cuts a torn last line off; a damaged line before good ones raises. */
static int l_journal_scan(lua_State *L) {
  journal_t *j = journal_check(L, 1);
  lua_settop(L, 1);
  lua_newtable(L); /* 2: result */
  if (j->fd < 0) return 1;
  int64_t off = 0, good = 0, line_no = 0, records = 0, numbered = 0;
  int complete = 0, torn = 0, zeros = 0;
  struct stat st;
  fstat(j->fd, &st);
  while (off < st.st_size) {
    char *line;
    ssize_t n = journal_read_line(j, off, &line);
    if (n < 0) return uqpay_raise(L, "config", "out of memory");
    if (n > 0 && line[0] == '\0') { /* the zero-filled room ahead: the records end here */
      free(line);
      zeros = 1;
      break;
    }
    int has_nl = off + n < st.st_size;
    /* a record never holds a zero byte (the encoder escapes it): a line with
     * one was never completely written, a crash's doing and not an edit's */
    int has_zero = memchr(line, '\0', (size_t)n) != NULL;
    line_no++;
    int ok = has_nl && journal_push_record(L, line, (size_t)n);
    int ours = ok || torn_record(line, (size_t)n);
    free(line);
    if (!ok) {
      if (has_nl) lua_pop(L, 1);
      /* the file's first line is not even a record cut short: not a journal */
      if (records == 0 && !ours)
        return uqpay_raise(L, "config", "run journal %s is damaged at line 1 (it is not a journal?); inspect it, "
                             "or start over with --fresh", j->path);
      if (has_nl && off + n + 1 < st.st_size && !has_zero)
        return uqpay_raise(L, "config", "run journal %s is damaged at line %d; inspect it, or start over "
                             "with --fresh", j->path, (int)line_no);
      torn = 1;
      break;
    }
    int rec = lua_gettop(L);
    records++;
    lua_getfield(L, rec, "n");
    lua_Integer n_rec = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
    lua_pop(L, 1);
    if (records == 1) numbered = n_rec == 1;
    if (numbered && n_rec != records)
      return uqpay_raise(L, "config", "run journal %s is damaged at line %d: it is record %I where record %I "
                           "belongs (a line was deleted or moved); inspect it, or start over with --fresh",
                         j->path, (int)line_no, (lua_Integer)n_rec, (lua_Integer)records);
    const char *t = str_field(L, rec, "t");
    if (t && strcmp(t, "run") == 0) {
      const char *salt = str_field(L, rec, "salt");
      if (!journal_parse_id(salt, j->salt))
        return uqpay_raise(L, "config", "run journal %s has no valid salt in its header", j->path);
      journal_forget_mac(j);
      lua_pushvalue(L, rec);
      lua_setfield(L, 2, "header");
    } else if (t && (strcmp(t, "intent") == 0 || strcmp(t, "outcome") == 0)) {
      unsigned char id[16];
      lua_getfield(L, rec, "occ");
      lua_Integer occ = lua_tointeger(L, -1);
      lua_pop(L, 1);
      if (!journal_parse_id(str_field(L, rec, "op"), id) || occ < 1)
        return uqpay_raise(L, "config", "run journal %s: line %d names no operation", j->path, (int)line_no);
      slot_t *s = journal_slot(j, journal_slot_hash(id, (uint32_t)occ), 1);
      if (!s) return uqpay_raise(L, "config", "out of memory");
      if (t[0] == 'i') {
        SLOT_SET(s, off, OP_IN_DOUBT, 0); /* an intent alone may have been sent */
      } else {
        const char *state = str_field(L, rec, "state");
        if (state && strcmp(state, "applied") == 0) SLOT_SET(s, off, OP_APPLIED, 0);
        else if (state && strcmp(state, "rejected") == 0) SLOT_SET(s, off, OP_REJECTED, 0);
        else if (state && strcmp(state, "unsent") == 0) SLOT_SET(s, SLOT_OFF(s), OP_INTENT, 0);
        else SLOT_SET(s, SLOT_OFF(s), OP_IN_DOUBT, 0);
      }
    } else if (t && strcmp(t, "complete") == 0) {
      complete = 1;
    } else if (t && strcmp(t, "resume") == 0) {
      complete = 0;
    }
    lua_settop(L, 2);
    off += n + 1;
    good = off;
  }
  /* zeros first and then something else: not a journal this process wrote */
  if (zeros && records == 0 && !all_zero(j, off, st.st_size))
    return uqpay_raise(L, "config", "run journal %s is damaged at line 1 (it is not a journal?); inspect it, "
                         "or start over with --fresh", j->path);
  /* Cut what follows the records: a torn line, or the zeros and whatever a
   * crash left beyond them (after a power loss, bytes of records that were
   * never synced; each synced record has every byte before it durable) */
  if ((torn || zeros) && good < st.st_size && !j->readonly) {
    if (ftruncate(j->fd, (off_t)good) != 0 || fsync(j->fd) != 0)
      return uqpay_raise(L, "config", "cannot cut the torn tail of %s: %s", j->path, strerror(errno));
  }
  j->size = j->alloc = good < st.st_size ? good : st.st_size;
  j->unscanned = 0;
  j->next_n = numbered ? records + 1 : 0;
  size_t counts[OP_NSTATES] = {0};
  for (size_t i = 0; i < j->slotcap; i++)
    if (j->slots[i].h) counts[SLOT_STATE(&j->slots[i])]++;
  lua_pushboolean(L, complete);
  lua_setfield(L, 2, "complete");
  lua_pushboolean(L, torn);
  lua_setfield(L, 2, "torn");
  lua_pushinteger(L, (lua_Integer)records);
  lua_setfield(L, 2, "records");
  for (int s = OP_INTENT; s < OP_NSTATES; s++) {
    if (s == OP_IN_FLIGHT) continue;
    lua_pushinteger(L, (lua_Integer)counts[s]);
    lua_setfield(L, 2, s == OP_INTENT ? "unsent" : op_state_names[s]);
  }
  return 1;
}

/* j:ends_complete() -> boolean: whether the file's last line is a good
 * "complete" record. A finished run is then set aside without reading the
 * rest (100,000 writes make about 80 MB, read at 12 ms a MB); anything else
 * gets the full scan. Only a finished run's close leaves the file ending
 * so: the zeros written ahead are cut at close, and a crash leaves them. */
static int l_journal_ends_complete(lua_State *L) {
  journal_t *j = journal_check(L, 1);
  int yes = 0;
  struct stat st;
  char tail[4096];
  if (j->fd >= 0 && fstat(j->fd, &st) == 0 && st.st_size > 0) {
    int64_t from = st.st_size > (off_t)sizeof tail ? (int64_t)st.st_size - (int64_t)sizeof tail : 0;
    size_t want = (size_t)(st.st_size - from);
    ssize_t r;
    do r = pread(j->fd, tail, want, (off_t)from); while (r < 0 && errno == EINTR);
    if (r == (ssize_t)want && tail[want - 1] == '\n') {
      size_t start = want - 1;
      while (start > 0 && tail[start - 1] != '\n') start--;
      if (start > 0 || from == 0) { /* the whole line is in the tail read */
        if (journal_push_record(L, tail + start, want - 1 - start)) {
          const char *t = str_field(L, -1, "t");
          yes = t && strcmp(t, "complete") == 0;
        }
        lua_pop(L, 1);
      }
    }
  }
  lua_pushboolean(L, yes);
  return 1;
}

/* j:reset(): empties the file for a new run (the old one was archived or
 * had nothing) and forgets the index; a new salt keys the new run. */
static int l_journal_reset(lua_State *L) {
  journal_t *j = journal_check(L, 1);
  if (j->fd >= 0 && !j->readonly && (ftruncate(j->fd, 0) != 0 || fsync(j->fd) != 0))
    return uqpay_raise(L, "config", "cannot reset the run journal %s: %s", j->path, strerror(errno));
  j->size = j->alloc = 0;
  j->unscanned = 0;
  j->next_n = 0; /* numbered again from its header */
  if (j->slots) memset(j->slots, 0, j->slotcap * sizeof *j->slots);
  j->nslots = 0;
  if (getrandom(j->salt, sizeof j->salt, 0) != (ssize_t)sizeof j->salt)
    return uqpay_raise(L, "config", "cannot read random bytes for the journal");
  journal_forget_mac(j);
  return 0;
}

/* j:record(table [, sync]): appends a record made from a Lua table (run
 * header, resume, complete); the header gets the salt. */
static int l_journal_record(lua_State *L) {
  journal_t *j = journal_check(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  int sync = lua_toboolean(L, 3);
  lua_getfield(L, 2, "t");
  if (lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), "run") == 0) {
    j->next_n = 1; /* a header starts a journal whose records are numbered */
    char hex[33];
    uqpay_hex(j->salt, sizeof j->salt, hex);
    lua_pushstring(L, hex);
    lua_setfield(L, 2, "salt");
  }
  lua_pop(L, 1);
  json_encode(L, 2, 1);
  size_t n;
  const char *s = lua_tolstring(L, -1, &n);
  struct buf *b = journal_record_begin(j);
  rb_add(b, s, n);
  if (journal_append_record(j, b, sync) != 0)
    return uqpay_raise(L, "config", "cannot write the run journal %s: %s", j->path, strerror(errno));
  return 0;
}

/* j:sync(): makes every appended record durable (group commit). */
static int l_journal_sync(lua_State *L) {
  journal_t *j = journal_check(L, 1);
  if (journal_sync(j) != 0)
    return uqpay_raise(L, "config", "cannot sync the run journal %s: %s", j->path, strerror(errno));
  return 0;
}

static int l_journal_dirty(lua_State *L) {
  journal_t *j = journal_check(L, 1);
  lua_pushboolean(L, j->synced != j->appended);
  return 1;
}

/* j:unseen() -> array of {state=, record=} for the operations of the
 * interrupted run this invocation did not reach (applied, in doubt or
 * never sent), each with its latest intent record: a pass over the file,
 * made only when there are such operations. */
static int l_journal_unseen(lua_State *L) {
  journal_t *j = journal_check(L, 1);
  lua_settop(L, 1);
  lua_newtable(L); /* 2: h -> {state=, record=} */
  int any = 0;
  for (size_t i = 0; i < j->slotcap; i++) {
    slot_t *s = &j->slots[i];
    if (!s->h || SLOT_SEEN(s) || SLOT_STATE(s) == OP_REJECTED) continue;
    lua_createtable(L, 0, 2);
    lua_pushstring(L, op_state_names[SLOT_STATE(s)]);
    lua_setfield(L, -2, "state");
    lua_rawseti(L, 2, (lua_Integer)s->h);
    any = 1;
  }
  lua_newtable(L); /* 3: the array */
  if (!any || j->fd < 0) return 1;
  int64_t off = 0;
  while (off < j->size) {
    char *line;
    ssize_t n = journal_read_line(j, off, &line);
    if (n < 0) return uqpay_raise(L, "config", "out of memory");
    if (n > 17 && strstr(line, "\"t\":\"intent\"")) {
      if (journal_push_record(L, line, (size_t)n)) {
        unsigned char id[16];
        lua_getfield(L, -1, "occ");
        lua_Integer occ = lua_tointeger(L, -1);
        lua_pop(L, 1);
        if (journal_parse_id(str_field(L, -1, "op"), id) && occ > 0) {
          if (lua_rawgeti(L, 2, (lua_Integer)journal_slot_hash(id, (uint32_t)occ)) == LUA_TTABLE) {
            lua_pushvalue(L, -2);
            lua_setfield(L, -2, "record"); /* the latest intent wins */
          }
          lua_pop(L, 1);
        }
      }
      lua_pop(L, 1); /* the record, or nil */
    }
    free(line);
    off += n + 1;
  }
  lua_Integer k = 0;
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    lua_getfield(L, -1, "record");
    int has = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (has) {
      lua_pushvalue(L, -1);
      lua_rawseti(L, 3, ++k);
    }
    lua_pop(L, 1);
  }
  return 1;
}

/* j:stats() -> {syncs=, sync_ns=, records=, open=}: nanoseconds, because
 * a sync on tmpfs takes less than a microsecond */
static int l_journal_stats(lua_State *L) {
  journal_t *j = journal_check(L, 1);
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, (lua_Integer)j->sync_ns);
  lua_setfield(L, -2, "sync_ns");
  lua_pushinteger(L, (lua_Integer)j->open_ops);
  lua_setfield(L, -2, "open");
  lua_pushinteger(L, (lua_Integer)j->nsyncs);
  lua_setfield(L, -2, "syncs");
  lua_pushinteger(L, (lua_Integer)j->appended);
  lua_setfield(L, -2, "records");
  lua_pushinteger(L, (lua_Integer)j->size);
  lua_setfield(L, -2, "size");
  return 1;
}

/* j:persistent() -> whether records reach a file (false: a memory journal) */
static int l_journal_persistent(lua_State *L) {
  journal_t *j = journal_check(L, 1);
  lua_pushboolean(L, j->fd >= 0);
  return 1;
}

/* j:holder() -> the pid of the process running this run (holding its
 * lock), or nil: how a read-only look tells a live run from an
 * interrupted one. */
static int l_journal_holder(lua_State *L) {
  journal_t *j = journal_check(L, 1);
  int pid = j->held_here ? (int)getpid() : j->fd >= 0 ? lock_holder(j->fd) : 0;
  if (!pid) return 0;
  lua_pushinteger(L, pid);
  return 1;
}

static int l_journal_path(lua_State *L) {
  journal_t *j = journal_check(L, 1);
  lua_pushstring(L, j->path);
  return 1;
}

/* journal_read(path) -> the file's bytes, or nil, message. Reads through
 * the descriptor of an open journal when path is one (see open_journals). */
static int l_journal_read(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  int bad = stat(path, &st) != 0 ? errno : 0;
  if (bad || !S_ISREG(st.st_mode)) {
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, bad ? strerror(bad) : "not a regular file");
    return 2;
  }
  /* the buffer first: its allocation may raise, and must not leak a descriptor */
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, (size_t)st.st_size);
  size_t size = (size_t)st.st_size;
  int fd = -1, own = 0;
  for (journal_t *j = open_journals; j; j = j->next_open)
    if (j->fd >= 0 && j->dev == st.st_dev && j->ino == st.st_ino) {
      fd = j->fd;
      own = 1;
      break;
    }
  if (fd < 0) fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    int e = errno;
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, strerror(e));
    return 2;
  }
  size_t got = 0; /* up to the size seen by stat: a journal only grows at its end */
  while (got < size) {
    ssize_t r = pread(fd, p + got, size - got, (off_t)got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  if (!own) close(fd);
  luaL_pushresultsize(&b, got);
  return 1;
}

/* checksum(s, ...) -> 16 hex digits of FNV-1a 64 of the strings joined:
 * detects torn or garbled lines; the simulator's key fingerprints pass their
 * parts without joining them first. */
static int l_checksum(lua_State *L) {
  uint64_t h = FNV1A_START;
  int top = lua_gettop(L);
  luaL_checkstring(L, 1);
  for (int i = 1; i <= top; i++) {
    size_t n;
    const char *s = luaL_checklstring(L, i, &n);
    h = fnv1a_more(h, s, n);
  }
  char buf[17];
  snprintf(buf, sizeof buf, "%016llx", (unsigned long long)h);
  lua_pushstring(L, buf);
  return 1;
}

static const luaL_Reg journal_methods[] = {
  {"scan", l_journal_scan}, {"ends_complete", l_journal_ends_complete}, {"reset", l_journal_reset}, {"record", l_journal_record},
  {"sync", l_journal_sync}, {"dirty", l_journal_dirty}, {"unseen", l_journal_unseen},
  {"path", l_journal_path}, {"holder", l_journal_holder}, {"persistent", l_journal_persistent}, {"stats", l_journal_stats},
  {"close", l_journal_close}, {NULL, NULL}};

void uqpay_open_journal(lua_State *L) {
  uqpay_class(L, JOURNAL_MT, journal_methods, l_journal_close);
  lua_pushcfunction(L, l_journal_open);
  lua_setfield(L, -2, "journal_open");
  lua_pushcfunction(L, l_checksum);
  lua_setfield(L, -2, "checksum");
  lua_pushcfunction(L, l_journal_read);
  lua_setfield(L, -2, "journal_read");
  uqpay_open_operation(L);
}
