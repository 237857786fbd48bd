/*
 * System primitives for the Lua layer: UUIDs, HMAC, clocks, and the small
 * file operations the token cache needs (0600 atomic writes, flock).
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/random.h>

#include "lauxlib.h"
#include "errors.h"
#include "lazy.h"
#include "core.h"

volatile sig_atomic_t uqlua_interrupted = 0;

void uqpay_hex(const unsigned char *p, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[p[i] >> 4];
    out[2 * i + 1] = digits[p[i] & 15];
  }
  out[2 * n] = '\0';
}

/* Random bytes for UUIDs, drawn from getrandom(2) a pool at a time: one
 * system call per 32 keys instead of one per key (libuuid made six). The
 * pool is per thread (the simulator's thread makes ids too) and emptied in
 * a forked child, so that no two processes hand out the same bytes. */
#define RANDOM_POOL 512
static _Thread_local unsigned char pool[RANDOM_POOL];
static _Thread_local size_t pool_left;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void pool_forget(void) {
  explicit_bzero(pool, sizeof pool);
  pool_left = 0;
}
static void pool_register(void) { pthread_atfork(NULL, NULL, pool_forget); }

static int random_bytes(unsigned char *out, size_t n) {
  pthread_once(&pool_once, pool_register);
  if (pool_left < n) {
    size_t got = 0;
    while (got < sizeof pool) {
      ssize_t r = getrandom(pool + got, sizeof pool - got, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return -1;
      got += (size_t)r;
    }
    pool_left = sizeof pool;
  }
  unsigned char *from = pool + sizeof pool - pool_left;
  memcpy(out, from, n);
  explicit_bzero(from, n); /* handed out once */
  pool_left -= n;
  return 0;
}

/* A random (version 4) UUID. */
int uqpay_uuid4(char out[37]) {
  unsigned char u[16];
  if (random_bytes(u, sizeof u) != 0) return -1;
  u[6] = (unsigned char)((u[6] & 0x0f) | 0x40); /* version 4 */
  u[8] = (unsigned char)((u[8] & 0x3f) | 0x80); /* RFC 4122 variant */
  char hex[33];
  uqpay_hex(u, sizeof u, hex);
  char *o = out;
  for (int i = 0; i < 32; i++) {
    if (i == 8 || i == 12 || i == 16 || i == 20) *o++ = '-';
    *o++ = hex[i];
  }
  *o = '\0';
  return 0;
}

static int l_uuid(lua_State *L) {
  char s[37];
  if (uqpay_uuid4(s) != 0) return uqpay_raise(L, "config", "cannot get random bytes: %s", strerror(errno));
  lua_pushstring(L, s);
  return 1;
}

static int is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

/* Is s[i..] a UUID (8-4-4-4-12 hex digits, either case)? */
static int uuid_at(const char *s, size_t n, size_t i) {
  if (n - i < 36) return 0;
  for (size_t k = 0; k < 36; k++) {
    char c = s[i + k];
    if (k == 8 || k == 13 || k == 18 || k == 23) {
      if (c != '-') return 0;
    } else if (!is_hex(c)) {
      return 0;
    }
  }
  return 1;
}

/* uuid_lower(v) -> v in lower case when it is a UUID (8-4-4-4-12 hex
 * digits, either case), else nil. The endpoints' check of every id: a Lua
 * pattern took some 5,000 instructions per UUID. */
static int l_uuid_lower(lua_State *L) {
  size_t n;
  const char *s = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &n) : NULL;
  if (!s || n != 36 || !uuid_at(s, n, 0)) return lua_pushnil(L), 1;
  char low[36];
  int upper = 0;
  for (size_t i = 0; i < sizeof low; i++) {
    char c = s[i];
    if (c >= 'A' && c <= 'F') {
      c = (char)(c - 'A' + 'a');
      upper = 1;
    }
    low[i] = c;
  }
  if (upper) lua_pushlstring(L, low, sizeof low);
  else lua_settop(L, 1);
  return 1;
}

/* card_like(text) -> boolean: twelve digits or more in a row, a single
 * space or dash allowed between two of them, outside a UUID: where a card
 * number could be. The redactor's cheap look before its thorough (and
 * twenty times dearer) pass over what the journal keeps; Lua patterns
 * with optional separators backtrack, 6 µs on a 300-byte answer. */
static int l_card_like(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  int digits = 0, sep = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (is_hex(c) && (i == 0 || !is_hex(s[i - 1])) && uuid_at(s, n, i)) {
      i += 35;
      digits = sep = 0;
    } else if (c >= '0' && c <= '9') {
      if (++digits >= 12) return lua_pushboolean(L, 1), 1;
      sep = 0;
    } else if ((c == ' ' || c == '-') && digits > 0 && !sep) {
      sep = 1;
    } else {
      digits = sep = 0;
    }
  }
  lua_pushboolean(L, 0);
  return 1;
}

/* hmac_sha512_hex(key, message) -> lowercase hex */
static int l_hmac_sha512_hex(lua_State *L) {
  size_t kn, mn;
  const char *k = luaL_checklstring(L, 1, &kn);
  const char *m = luaL_checklstring(L, 2, &mn);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdn = 0;
  if (!HMAC(EVP_sha512(), k, (int)kn, (const unsigned char *)m, mn, md, &mdn))
    return uqpay_raise(L, "config", "HMAC failed: %s", lazy_crypto_error());
  char hex[2 * EVP_MAX_MD_SIZE + 1];
  uqpay_hex(md, mdn, hex);
  lua_pushlstring(L, hex, 2 * mdn);
  return 1;
}

/* Constant-time equality of two strings (length is not secret): every
 * byte is read, through volatile so the loop cannot stop at the first
 * difference. Here rather than CRYPTO_memcmp, which would open libcrypto
 * to compare a webhook signature. */
static int l_consttime_eq(lua_State *L) {
  size_t an, bn;
  const char *a = luaL_checklstring(L, 1, &an);
  const char *b = luaL_checklstring(L, 2, &bn);
  unsigned char d = an != bn;
  if (!d) {
    const volatile unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
    for (size_t i = 0; i < an; i++) d |= x[i] ^ y[i];
  }
  lua_pushboolean(L, d == 0);
  return 1;
}

static int l_now(lua_State *L) { /* wall clock, seconds as a float */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushnumber(L, (double)ts.tv_sec + ts.tv_nsec / 1e9);
  return 1;
}

static int l_monotonic_ms(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushinteger(L, (lua_Integer)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
  return 1;
}

/* sleep_ms(ms) -> true, or false when Ctrl-C cut it short */
static int l_sleep_ms(lua_State *L) {
  lua_Integer ms = luaL_checkinteger(L, 1);
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR)
    if (uqlua_interrupted) break;
  lua_pushboolean(L, !uqlua_interrupted);
  return 1;
}

static int l_interrupted(lua_State *L) {
  lua_pushboolean(L, uqlua_interrupted != 0);
  return 1;
}

/* stat(path) -> {mode=, uid=, size=} | nil */
static int l_stat(lua_State *L) {
  struct stat st;
  if (stat(luaL_checkstring(L, 1), &st) != 0) return 0;
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, st.st_mode & 07777);
  lua_setfield(L, -2, "mode");
  lua_pushinteger(L, st.st_uid);
  lua_setfield(L, -2, "uid");
  lua_pushinteger(L, st.st_size);
  lua_setfield(L, -2, "size");
  lua_pushboolean(L, S_ISDIR(st.st_mode));
  lua_setfield(L, -2, "dir");
  return 1;
}

/* listdir(path) -> array of names (no . or ..), or nil, message */
static int l_listdir(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  DIR *d = opendir(path);
  if (!d) return luaL_fileresult(L, 0, path);
  lua_newtable(L);
  lua_Integer i = 1;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    lua_pushstring(L, e->d_name);
    lua_rawseti(L, -2, i++);
  }
  closedir(d);
  return 1;
}

/* realpath(path) -> absolute path, or nil */
static int l_realpath(lua_State *L) {
  char buf[PATH_MAX];
  if (!realpath(luaL_checkstring(L, 1), buf)) return 0;
  lua_pushstring(L, buf);
  return 1;
}

static int l_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
  return 1;
}

static int l_getuid(lua_State *L) {
  lua_pushinteger(L, getuid());
  return 1;
}

/* mkdir_private(path): mkdir -p with 0700 for every created level. */
static int l_mkdir_private(lua_State *L) {
  char p[4096];
  const char *path = luaL_checkstring(L, 1);
  if (strlen(path) >= sizeof p) return uqpay_raise(L, "usage", "path too long");
  strcpy(p, path);
  for (char *s = p + 1; *s; s++) {
    if (*s != '/') continue;
    *s = '\0';
    if (mkdir(p, 0700) != 0 && errno != EEXIST) return luaL_fileresult(L, 0, p);
    *s = '/';
  }
  if (mkdir(p, 0700) != 0 && errno != EEXIST) return luaL_fileresult(L, 0, p);
  lua_pushboolean(L, 1);
  return 1;
}

/* write_private(path, data): atomic replace with a 0600 file. The file
 * written first, beside path, is a new one under a random name
 * (O_EXCL|O_NOFOLLOW): a report's directory may be shared (/tmp), and a
 * file or symbolic link another user planted at a name we would use must
 * not be written through. A name taken (a stale file) means another. */
static int l_write_private(lua_State *L) {
  size_t n;
  const char *path = luaL_checkstring(L, 1);
  const char *data = luaL_checklstring(L, 2, &n);
  char tmp[4200];
  int fd = -1;
  for (int tries = 0; fd < 0 && tries < 16; tries++) {
    unsigned char r[8];
    char hex[2 * sizeof r + 1];
    if (random_bytes(r, sizeof r) != 0) return luaL_fileresult(L, 0, path);
    uqpay_hex(r, sizeof r, hex);
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.%s.tmp", path, hex) >= sizeof tmp) {
      errno = ENAMETOOLONG;
      return luaL_fileresult(L, 0, path);
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST) return luaL_fileresult(L, 0, tmp);
  }
  if (fd < 0) return luaL_fileresult(L, 0, tmp);
  size_t off = 0;
  while (off < n) {
    ssize_t w = write(fd, data + off, n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) { close(fd); unlink(tmp); return luaL_fileresult(L, 0, tmp); }
    off += (size_t)w;
  }
  if (fsync(fd) != 0 || close(fd) != 0) { unlink(tmp); return luaL_fileresult(L, 0, tmp); }
  if (rename(tmp, path) != 0) { unlink(tmp); return luaL_fileresult(L, 0, path); }
  lua_pushboolean(L, 1);
  return 1;
}

/* lock(path [, try]) -> an exclusive advisory lock held by a userdata;
 * released by :unlock(), __close or __gc. Waits for it, or with try
 * answers nil, "busy" when another holds it. flock, not fcntl: closing
 * another descriptor of the file does not drop it. Used so concurrent
 * processes do not stampede the token endpoint, and for one writer per run. */
#define LOCK_MT "uqpay.Lock"
static int l_lock(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int try = lua_toboolean(L, 2);
  int *fd = (int *)lua_newuserdatauv(L, sizeof(int), 0);
  *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (*fd < 0) return luaL_fileresult(L, 0, path);
  luaL_setmetatable(L, LOCK_MT);
  while (flock(*fd, LOCK_EX | (try ? LOCK_NB : 0)) != 0) {
    if (try && errno == EWOULDBLOCK) {
      close(*fd);
      *fd = -1;
      luaL_pushfail(L);
      lua_pushliteral(L, "busy");
      return 2;
    }
    if (errno != EINTR || uqlua_interrupted) {
      close(*fd);
      *fd = -1;
      return luaL_fileresult(L, 0, path);
    }
  }
  return 1;
}

static int l_unlock(lua_State *L) {
  int *fd = (int *)luaL_checkudata(L, 1, LOCK_MT);
  if (*fd >= 0) {
    close(*fd); /* closing drops the flock */
    *fd = -1;
  }
  return 0;
}

static const luaL_Reg sys_funcs[] = {
  {"uuid", l_uuid},         {"uuid_lower", l_uuid_lower}, {"card_like", l_card_like}, {"hmac_sha512_hex", l_hmac_sha512_hex}, {"consttime_eq", l_consttime_eq},
  {"now", l_now},           {"monotonic_ms", l_monotonic_ms},       {"sleep_ms", l_sleep_ms},
  {"interrupted", l_interrupted}, {"stat", l_stat},                 {"getuid", l_getuid}, {"isatty", l_isatty}, {"listdir", l_listdir}, {"realpath", l_realpath},
  {"mkdir_private", l_mkdir_private}, {"write_private", l_write_private}, {"lock", l_lock},
  {NULL, NULL}};

static const luaL_Reg lock_methods[] = {{"unlock", l_unlock}, {NULL, NULL}};

void uqpay_open_sys(lua_State *L) {
  uqpay_class(L, LOCK_MT, lock_methods, l_unlock);
  luaL_setfuncs(L, sys_funcs, 0);
}
