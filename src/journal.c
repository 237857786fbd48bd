/*
 * The run journal's file: an append-only file of checksummed lines. Each
 * append is written whole and made durable with fdatasync before append()
 * returns, so an intent is on disk before its request's first byte leaves.
 * Opened 0600; the directory is made 0700 by the Lua side (mkdir_private).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lauxlib.h"
#include "core.h"

#define JOURNAL_MT "uqpay.Journal"

typedef struct {
  int fd;
} journal_t;

static journal_t *check_journal(lua_State *L) {
  journal_t *j = (journal_t *)luaL_checkudata(L, 1, JOURNAL_MT);
  if (j->fd < 0) luaL_error(L, "journal is closed");
  return j;
}

/* journal_open(path) -> journal | nil, message */
static int l_journal_open(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  journal_t *j = (journal_t *)lua_newuserdatauv(L, sizeof(journal_t), 0);
  j->fd = -1;
  luaL_setmetatable(L, JOURNAL_MT);
  j->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (j->fd < 0) return luaL_fileresult(L, 0, path);
  return 1;
}

static int sync_fd(lua_State *L, journal_t *j) {
  while (fdatasync(j->fd) != 0) {
    if (errno != EINTR) return luaL_fileresult(L, 0, "journal fdatasync");
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* j:append(text [, sync=true]): the whole text, then fdatasync unless
 * sync is false. true | nil, message */
static int l_journal_append(lua_State *L) {
  journal_t *j = check_journal(L);
  size_t n, off = 0;
  const char *s = luaL_checklstring(L, 2, &n);
  int sync = lua_isnone(L, 3) || lua_toboolean(L, 3);
  while (off < n) {
    ssize_t w = write(j->fd, s + off, n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return luaL_fileresult(L, 0, "journal");
    off += (size_t)w;
  }
  if (sync) return sync_fd(L, j);
  lua_pushboolean(L, 1);
  return 1;
}

/* j:sync(): fdatasync what was appended without it (group commit). */
static int l_journal_sync(lua_State *L) {
  return sync_fd(L, check_journal(L));
}

/* j:truncate(length): cut a torn tail off, durably. */
static int l_journal_truncate(lua_State *L) {
  journal_t *j = check_journal(L);
  off_t len = (off_t)luaL_checkinteger(L, 2);
  if (ftruncate(j->fd, len) != 0 || fsync(j->fd) != 0) return luaL_fileresult(L, 0, "journal truncate");
  lua_pushboolean(L, 1);
  return 1;
}

static int l_journal_close(lua_State *L) {
  journal_t *j = (journal_t *)luaL_checkudata(L, 1, JOURNAL_MT);
  if (j->fd >= 0) {
    close(j->fd);
    j->fd = -1;
  }
  return 0;
}

/* checksum(s) -> 16 hex digits of FNV-1a 64: detects torn or garbled lines. */
static int l_checksum(lua_State *L) {
  size_t n;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++) {
    h ^= s[i];
    h *= 1099511628211ULL;
  }
  char buf[17];
  snprintf(buf, sizeof buf, "%016llx", (unsigned long long)h);
  lua_pushstring(L, buf);
  return 1;
}

static const luaL_Reg journal_methods[] = {
  {"append", l_journal_append}, {"sync", l_journal_sync}, {"truncate", l_journal_truncate},
  {"close", l_journal_close}, {NULL, NULL}};

void uqpay_open_journal(lua_State *L) {
  uqpay_class(L, JOURNAL_MT, journal_methods, l_journal_close);
  lua_pushcfunction(L, l_journal_open);
  lua_setfield(L, -2, "journal_open");
  lua_pushcfunction(L, l_checksum);
  lua_setfield(L, -2, "checksum");
}
