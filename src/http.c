/*
 * HTTP transport: one reused libcurl easy handle per uqpay.Http object
 * (keep-alive), explicit timeouts, TLS verification on, redirects never
 * followed, CURLOPT_NOSIGNAL. Callbacks only copy bytes into C buffers and
 * check the interrupt flag; no Lua runs inside libcurl frames, so nothing
 * can longjmp across them. Errors come back as (nil, kind, message).
 */
#include <ctype.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "lauxlib.h"
#include "core.h"

#define HTTP_MT "uqpay.Http"

typedef struct {
  CURL *curl;
} http_t;

struct buf {
  char *data;
  size_t len, cap;
  int oom;
};

static void buf_add(struct buf *b, const char *p, size_t n) {
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) { b->oom = 1; return; }
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud) {
  buf_add((struct buf *)ud, ptr, size * nmemb);
  return size * nmemb;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud) {
  buf_add((struct buf *)ud, ptr, size * nmemb);
  return size * nmemb;
}

/* Ctrl-C: the signal handler sets the flag; returning non-zero aborts. */
static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d) {
  (void)ud; (void)a; (void)b; (void)c; (void)d;
  return uqlua_interrupted ? 1 : 0;
}

static int l_http_new(lua_State *L) {
  http_t *h = (http_t *)lua_newuserdatauv(L, sizeof(http_t), 0);
  h->curl = NULL;
  luaL_setmetatable(L, HTTP_MT);
  h->curl = curl_easy_init();
  if (!h->curl) return luaL_error(L, "cannot initialise libcurl");
  return 1;
}

static http_t *check_http(lua_State *L) {
  http_t *h = (http_t *)luaL_checkudata(L, 1, HTTP_MT);
  if (!h->curl) luaL_error(L, "HTTP client is closed");
  return h;
}

/* Pushes the response headers as {lowercase-name = value}; the last
 * header block wins (there is only one: redirects are not followed). */
static void push_headers(lua_State *L, const struct buf *hb) {
  lua_newtable(L);
  if (!hb->data) return;
  const char *p = hb->data, *end = hb->data + hb->len;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) eol = end;
    const char *colon = memchr(p, ':', (size_t)(eol - p));
    if (colon && colon > p) {
      luaL_Buffer b;
      luaL_buffinit(L, &b);
      for (const char *q = p; q < colon; q++) luaL_addchar(&b, (char)tolower((unsigned char)*q));
      luaL_pushresult(&b);
      const char *v = colon + 1;
      const char *ve = eol;
      while (v < ve && (*v == ' ' || *v == '\t')) v++;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ')) ve--;
      lua_pushlstring(L, v, (size_t)(ve - v));
      lua_rawset(L, -3);
    }
    p = eol + 1;
  }
}

/* http:request{method=, url=, headers={"Name: value", ...}, body=,
 *              timeout_ms=, connect_timeout_ms=}
 * -> {status=, body=, headers=, time_ms=} | nil, kind, message */
static int l_http_request(lua_State *L) {
  http_t *h = check_http(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_getfield(L, 2, "method");
  const char *method = luaL_checkstring(L, -1);
  lua_getfield(L, 2, "url");
  const char *url = luaL_checkstring(L, -1);
  lua_getfield(L, 2, "body");
  size_t body_len = 0;
  const char *body = lua_isnil(L, -1) ? NULL : luaL_checklstring(L, -1, &body_len);
  lua_getfield(L, 2, "timeout_ms");
  long timeout_ms = (long)luaL_optinteger(L, -1, 30000);
  lua_getfield(L, 2, "connect_timeout_ms");
  long connect_ms = (long)luaL_optinteger(L, -1, 10000);
  lua_getfield(L, 2, "fresh"); /* a new connection, not reused after */
  long fresh = lua_toboolean(L, -1);
  lua_pop(L, 3);

  struct curl_slist *hdrs = NULL;
  if (lua_getfield(L, 2, "headers") == LUA_TTABLE) {
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      const char *line = lua_tostring(L, -1);
      struct curl_slist *nh = line ? curl_slist_append(hdrs, line) : hdrs;
      lua_pop(L, 1);
      if (!nh) { curl_slist_free_all(hdrs); return luaL_error(L, "out of memory"); }
      hdrs = nh;
    }
  }
  lua_pop(L, 1);
  /* curl adds "Expect: 100-continue" to large POSTs; a needless round trip. */
  struct curl_slist *nh = curl_slist_append(hdrs, "Expect:");
  if (nh) hdrs = nh;

  CURL *c = h->curl;
  struct buf bb = {0}, hb = {0};
  curl_easy_reset(c); /* keeps the connection cache: keep-alive survives */
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &bb);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &hb);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "uqlua/" UQLUA_VERSION);
  curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, fresh);
  curl_easy_setopt(c, CURLOPT_FORBID_REUSE, fresh);
  if (strcmp(method, "GET") == 0) {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
  }
  CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(hdrs);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);

  if (rc != CURLE_OK || bb.oom || hb.oom) {
    const char *kind = "network";
    if (rc == CURLE_ABORTED_BY_CALLBACK) kind = "interrupted";
    else if (rc == CURLE_OPERATION_TIMEDOUT) kind = "timeout";
    free(bb.data);
    free(hb.data);
    lua_pushnil(L);
    lua_pushstring(L, kind);
    lua_pushstring(L, rc != CURLE_OK ? curl_easy_strerror(rc) : "out of memory");
    return 3;
  }
  long status = 0;
  double total = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &total);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, status);
  lua_setfield(L, -2, "status");
  lua_pushlstring(L, bb.data ? bb.data : "", bb.len);
  lua_setfield(L, -2, "body");
  push_headers(L, &hb);
  lua_setfield(L, -2, "headers");
  lua_pushnumber(L, total * 1000.0);
  lua_setfield(L, -2, "time_ms");
  free(bb.data);
  free(hb.data);
  return 1;
}

static int l_http_close(lua_State *L) {
  http_t *h = (http_t *)luaL_checkudata(L, 1, HTTP_MT);
  if (h->curl) {
    curl_easy_cleanup(h->curl);
    h->curl = NULL;
  }
  return 0;
}

static const luaL_Reg http_methods[] = {{"request", l_http_request}, {"close", l_http_close}, {NULL, NULL}};

void uqpay_open_http(lua_State *L) {
  static int curl_ready = 0;
  if (!curl_ready) { /* process-wide; never cleaned up mid-run */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    curl_ready = 1;
  }
  if (luaL_newmetatable(L, HTTP_MT)) {
    lua_pushcfunction(L, l_http_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_http_close);
    lua_setfield(L, -2, "__close");
    luaL_newlib(L, http_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_http_new);
  lua_setfield(L, -2, "http_new");
}
