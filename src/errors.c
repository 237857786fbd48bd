#include "lauxlib.h"
#include "errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends ", label value" pieces into a fixed buffer. */
struct line {
  char buf[2048];
  size_t n;
  int parts;
};

static void add(struct line *l, const char *fmt, const char *a, const char *b) {
  if (l->n >= sizeof l->buf - 1) return;
  int w = snprintf(l->buf + l->n, sizeof l->buf - l->n, "%s", l->parts++ ? "; " : " (");
  if (w > 0) l->n += (size_t)w;
  if (l->n >= sizeof l->buf - 1) return;
  w = snprintf(l->buf + l->n, sizeof l->buf - l->n, fmt, a, b);
  if (w > 0) l->n += (size_t)w;
  if (l->n > sizeof l->buf - 1) l->n = sizeof l->buf - 1;
}

/* A field as text. The value stays on the stack until the caller is done:
 * lua_tostring turns a number into a new string that only the stack
 * anchors (popping it here was a use-after-free with numeric fields). */
static const char *field(lua_State *L, const char *k) {
  lua_getfield(L, 1, k);
  return lua_isstring(L, -1) ? lua_tostring(L, -1) : NULL;
}

/* R.text(line) of lua/uqpay/redact.lua, the one redactor: called by name. */
static int redact_text(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "uqpay.redact");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "text");
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  if (!lua_isstring(L, -1)) return luaL_error(L, "redact.text returned no text");
  return 1;
}

/* Replaces the text on top of the stack by what the redactor leaves of it,
 * or, when it cannot run, by a note that it was withheld (returns 0 then):
 * for every message the host prints, error objects', a script's own
 * error("...") and its traceback included. */
int uqpay_redact_top(lua_State *L) {
  lua_pushcfunction(L, redact_text);
  lua_insert(L, -2);
  if (lua_pcall(L, 1, 1, 0) == LUA_OK) return 1;
  lua_pop(L, 1);
  lua_pushliteral(L, "(message withheld: it could not be redacted)");
  return 0;
}

/* "uqpay api error: message (HTTP 400; card_error/card_not_found; POST /v1/...;
 *  idempotency key ...; 3 attempts)", as free text through the redactor: a
 * message made in C (a value echoed back, a path) is redacted like one made
 * in Lua. When the redactor cannot run, the message is withheld. */
static int error_tostring(lua_State *L) {
  struct line l = {.n = 0, .parts = 0};
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  const char *kind = field(L, "kind"), *msg = field(L, "message");
  int w = snprintf(l.buf, sizeof l.buf, "uqpay %s error: %s", kind ? kind : "unknown", msg ? msg : "(no message)");
  l.n = w < 0 ? 0 : ((size_t)w < sizeof l.buf ? (size_t)w : sizeof l.buf - 1);
  const char *status = field(L, "status"), *type = field(L, "type"), *code = field(L, "code");
  const char *method = field(L, "method"), *path = field(L, "path"), *key = field(L, "idempotency_key");
  if (status) add(&l, "HTTP %s%s", status, "");
  if (type || code) add(&l, "%s%s", type ? type : "", code ? (type ? "/" : "") : "");
  if (code) {
    size_t cn = strlen(code);
    if (l.n + cn < sizeof l.buf - 1) { memcpy(l.buf + l.n, code, cn); l.n += cn; }
  }
  if (method && path) add(&l, "%s %s", method, path);
  if (key) add(&l, "idempotency key %s%s", key, "");
  lua_getfield(L, 1, "attempts");
  if (lua_isinteger(L, -1) && lua_tointeger(L, -1) > 1) add(&l, "%s attempts%s", lua_tostring(L, -1), "");
  lua_pop(L, 1);
  if (l.parts && l.n < sizeof l.buf - 1) l.buf[l.n++] = ')';
  lua_pushlstring(L, l.buf, l.n);
  if (!uqpay_redact_top(L)) {
    lua_pop(L, 1);
    lua_pushfstring(L, "uqpay %s error: (message withheld: it could not be redacted)", kind ? kind : "unknown");
  }
  return 1;
}

void uqpay_error_metatable(lua_State *L) {
  if (luaL_newmetatable(L, ERROR_MT)) {
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
  }
}

int uqpay_l_error(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  uqpay_error_metatable(L);
  lua_setmetatable(L, 1);
  return 1;
}

int uqpay_raise_usage(lua_State *L, const char *field, const char *shown, const char *why) {
  lua_createtable(L, 0, 4);
  lua_pushliteral(L, "usage");
  lua_setfield(L, -2, "kind");
  lua_pushstring(L, field);
  lua_setfield(L, -2, "field");
  lua_pushstring(L, shown);
  lua_setfield(L, -2, "value");
  lua_pushfstring(L, "%s %s %s", field, shown, why);
  lua_setfield(L, -2, "message");
  uqpay_error_metatable(L);
  lua_setmetatable(L, -2);
  return lua_error(L);
}

_Noreturn int uqpay_raise(lua_State *L, const char *kind, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  lua_createtable(L, 0, 2);
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  lua_pushvfstring(L, fmt, ap);
  lua_setfield(L, -2, "message");
  va_end(ap);
  uqpay_error_metatable(L);
  lua_setmetatable(L, -2);
  lua_error(L);
  abort(); /* lua_error does not return */
}
