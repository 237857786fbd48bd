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
#include <strings.h>

#include <curl/curl.h>

#include "lauxlib.h"
#include "errors.h"
#include "core.h"
#include "buf.h"
#include "journal.h"
#include "lazy.h"

#define HTTP_MT "uqpay.Http"

typedef struct {
  CURL *curl;
} http_t;

#define MAX_HEADER_BYTES (1024 * 1024)

struct xfer;
static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud);

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud) {
  struct buf *b = (struct buf *)ud;
  if (b->len + size * nmemb > MAX_HEADER_BYTES) return 0; /* ends the transfer */
  buf_add(b, ptr, size * nmemb);
  return size * nmemb;
}

/* Ctrl-C: the signal handler sets the flag; returning non-zero aborts. */
static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d) {
  (void)ud; (void)a; (void)b; (void)c; (void)d;
  return uqlua_interrupted ? 1 : 0;
}

/* libcurl looks up its proxy variables in the environment for every
 * transfer (five or six getenv calls, each a scan of the environment).
 * When none of them is set, a handle is told once what libcurl would
 * find: no proxy. */
static int proxy_in_environment(void) {
  static const char *const names[] = {"http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy",
                                      "ALL_PROXY", "no_proxy", "NO_PROXY"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (getenv(names[i])) return 1;
  return 0;
}

/* The options every request shares, set once per easy handle. */
static CURL *handle_new(void) {
  CURL *c = curl_easy_init();
  if (!c) return NULL;
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "uqlua/" UQLUA_VERSION);
  if (!proxy_in_environment()) {
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_NOPROXY, "");
  }
  return c;
}

static int l_http_new(lua_State *L) {
  http_t *h = (http_t *)lua_newuserdatauv(L, sizeof(http_t), 0);
  h->curl = NULL;
  luaL_setmetatable(L, HTTP_MT);
  h->curl = handle_new();
  if (!h->curl) return uqpay_raise(L, "config", "cannot initialise libcurl: %s", lazy_curl_error());
  return 1;
}

static http_t *check_http(lua_State *L) {
  http_t *h = (http_t *)luaL_checkudata(L, 1, HTTP_MT);
  if (!h->curl) uqpay_raise(L, "usage", "HTTP client is closed");
  return h;
}

/* Calls fn(name, name_len, value, value_len, ud) for each response header,
 * in order, the name as sent: a later one of the same name wins (an interim
 * block, 100 Continue or a proxy's CONNECT reply, comes before the reply's
 * own; redirects are not followed). */
static void each_header(const struct buf *hb, void (*fn)(const char *, size_t, const char *, size_t, void *),
                        void *ud) {
  if (!hb->data) return;
  const char *p = hb->data, *end = hb->data + hb->len;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) eol = end;
    const char *colon = memchr(p, ':', (size_t)(eol - p));
    if (colon && colon > p && colon - p <= 256) { /* longer names are nobody's we read */
      const char *v = colon + 1;
      const char *ve = eol;
      while (v < ve && (*v == ' ' || *v == '\t')) v++;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ')) ve--;
      fn(p, (size_t)(colon - p), v, (size_t)(ve - v), ud);
    }
    p = eol + 1;
  }
}

/* headers[name in lower case] = value */
static void set_header(const char *k, size_t kn, const char *v, size_t vn, void *ud) {
  lua_State *L = (lua_State *)ud;
  char name[256];
  for (size_t i = 0; i < kn; i++) name[i] = (char)tolower((unsigned char)k[i]);
  lua_pushlstring(L, name, kn);
  lua_pushlstring(L, v, vn);
  lua_rawset(L, -3);
}

/* The only response header the client reads: a 429's or 503's wait (the
 * last one, as in the headers table: an interim block comes first). */
static void set_retry_after(const char *k, size_t kn, const char *v, size_t vn, void *ud) {
  if (kn != 11 || strncasecmp(k, "retry-after", 11) != 0) return;
  lua_State *L = (lua_State *)ud;
  lua_pushlstring(L, v, vn);
  lua_setfield(L, -2, "retry_after");
}

/* One transfer: an easy handle with its buffers and header list. */
struct xfer {
  CURL *c;
  struct buf bb, hb;
  size_t max_body; /* a longer response body ends the transfer */
  int too_big;
  curl_mime *mime; /* a multipart upload, freed with the transfer */
  struct curl_slist *hdrs;
  lua_Integer id;
  struct xfer *next;      /* in the multi's list of transfers under way */
  CURLcode rc;            /* its outcome, once done */
  int done;               /* finished, not yet handed to Lua */
  struct xfer *next_done; /* in the multi's queue of finished transfers */
};

/* Sets up x->c from the request table at index t:
 *   {method=, url=, headers={"Name: value", ...}, body=, timeout_ms=,
 *    connect_timeout_ms=, fresh=}
 * Every Lua read happens before anything is allocated, so a bad argument
 * leaks nothing; curl copies the body. */
/* Response bodies are bounded: a hostile or broken server cannot make
 * uqlua hold more than max_body bytes. */
static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud) {
  struct xfer *x = (struct xfer *)ud;
  if (x->bb.len + size * nmemb > x->max_body) {
    x->too_big = 1;
    return 0;
  }
  buf_add(&x->bb, ptr, size * nmemb);
  return size * nmemb;
}

static void xfer_setup(lua_State *L, int t, struct xfer *x, const op_t *op) {
  lua_getfield(L, t, "method");
  const char *method = lua_tostring(L, -1);
  if (!method) uqpay_raise(L, "usage", "request.method must be a string");
  lua_getfield(L, t, "url");
  const char *url = lua_tostring(L, -1);
  if (!url) uqpay_raise(L, "usage", "request.url must be a string");
  lua_getfield(L, t, "body");
  size_t body_len = 0;
  const char *body = lua_isnil(L, -1) ? NULL : luaL_checklstring(L, -1, &body_len);
  lua_getfield(L, t, "timeout_ms");
  long timeout_ms = (long)luaL_optinteger(L, -1, 30000);
  lua_getfield(L, t, "connect_timeout_ms");
  long connect_ms = (long)luaL_optinteger(L, -1, 10000);
  lua_getfield(L, t, "fresh"); /* a new connection, not reused after */
  long fresh = lua_toboolean(L, -1);
  lua_getfield(L, t, "max_response_bytes");
  lua_Integer max_body = luaL_optinteger(L, -1, 32 * 1024 * 1024);
  if (max_body < 1) uqpay_raise(L, "usage", "max_response_bytes must be positive");
  /* multipart = {name=, path=, filename=, content_type=}: one file part */
  const char *mp_name = NULL, *mp_path = NULL, *mp_file = NULL, *mp_type = NULL;
  if (lua_getfield(L, t, "multipart") == LUA_TTABLE) {
    int mt = lua_gettop(L);
    lua_getfield(L, mt, "name");
    lua_getfield(L, mt, "path");
    lua_getfield(L, mt, "filename");
    lua_getfield(L, mt, "content_type");
    mp_name = luaL_optstring(L, -4, "file");
    mp_path = lua_tostring(L, -3);
    mp_file = lua_tostring(L, -2);
    mp_type = lua_tostring(L, -1);
    if (!mp_path) uqpay_raise(L, "usage", "multipart.path must be a string");
    lua_settop(L, mt); /* the strings stay referenced by the table */
  }
  lua_getfield(L, t, "headers");
  int ht = lua_gettop(L);
  lua_Integer nh = lua_istable(L, ht) ? (lua_Integer)lua_rawlen(L, ht) : 0;
  for (lua_Integer i = 1; i <= nh; i++) {
    lua_rawgeti(L, ht, i);
    if (!lua_isstring(L, -1)) uqpay_raise(L, "usage", "headers[%d] is not a string", (int)i);
    /* a write's key comes from its operation, nowhere else */
    if (op && strncasecmp(lua_tostring(L, -1), "x-idempotency-key", 17) == 0)
      uqpay_raise(L, "usage", "headers[%d]: a write's idempotency key comes from its operation", (int)i);
    lua_pop(L, 1);
  }
  char keyline[128] = "Expect:";
  if (op) { /* a key is at most 64 characters (journal.c) */
    static const char name[] = "x-idempotency-key: ";
    memcpy(keyline, name, sizeof name - 1);
    memcpy(keyline + sizeof name - 1, op->key, strlen(op->key) + 1);
  }
  /* the strings stay alive in the request table while we use them */
  struct curl_slist *hdrs = NULL;
  for (lua_Integer i = 1; i <= nh + 2; i++) {
    const char *line;
    if (i <= nh) {
      lua_rawgeti(L, ht, i);
      line = lua_tostring(L, -1);
      lua_pop(L, 1);
    } else if (i == nh + 1) {
      line = "Expect:"; /* no 100-continue round trip on large POSTs */
    } else {
      line = keyline;
    }
    struct curl_slist *n = curl_slist_append(hdrs, line);
    if (!n) {
      curl_slist_free_all(hdrs);
      uqpay_raise(L, "config", "out of memory");
    }
    hdrs = n;
  }
  /* no curl_easy_reset: the options every request shares were set once,
   * when the handle was made (handle_new); each request sets all of the
   * ones that differ, the method included, so nothing carries over */
  CURL *c = x->c;
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &x->hb);
  curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, fresh);
  curl_easy_setopt(c, CURLOPT_FORBID_REUSE, fresh);
  curl_easy_setopt(c, CURLOPT_PRIVATE, x);
  x->mime = NULL;
  if (strcmp(method, "GET") == 0 || mp_path) {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL); /* a POST's body, gone */
  }
  if (strcmp(method, "GET") == 0) {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else if (mp_path) {
    x->mime = curl_mime_init(c);
    curl_mimepart *part = x->mime ? curl_mime_addpart(x->mime) : NULL;
    if (part) {
      curl_mime_name(part, mp_name);
      curl_mime_filedata(part, mp_path);
      if (mp_file) curl_mime_filename(part, mp_file);
      curl_mime_type(part, mp_type ? mp_type : "application/octet-stream");
    }
    curl_easy_setopt(c, CURLOPT_MIMEPOST, x->mime);
  } else {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
    curl_easy_setopt(c, CURLOPT_COPYPOSTFIELDS, body ? body : "");
  }
  lua_settop(L, ht - 9);
  x->hdrs = hdrs;
  x->max_body = (size_t)max_body;
  x->too_big = 0;
}

static void xfer_release(struct xfer *x) {
  curl_slist_free_all(x->hdrs);
  x->hdrs = NULL;
  curl_easy_setopt(x->c, CURLOPT_HTTPHEADER, NULL);
  if (x->mime) {
    curl_easy_setopt(x->c, CURLOPT_MIMEPOST, NULL);
    curl_mime_free(x->mime);
    x->mime = NULL;
  }
  /* the buffers stay with a pooled transfer for the next request (two
   * 4 KB allocations per request otherwise), unless a big reply grew them */
  struct buf *bufs[2] = {&x->bb, &x->hb};
  for (int i = 0; i < 2; i++) {
    if (bufs[i]->cap > 65536) {
      free(bufs[i]->data);
      bufs[i]->data = NULL;
      bufs[i]->cap = 0;
    }
    bufs[i]->len = 0;
    bufs[i]->oom = 0;
  }
}

static void xfer_free_buffers(struct xfer *x) {
  free(x->bb.data);
  free(x->hb.data);
  memset(&x->bb, 0, sizeof x->bb);
  memset(&x->hb, 0, sizeof x->hb);
}

/* Pushes a finished transfer's outcome and releases it (xfer_release):
 * {status=, body=, time_ms=, retry_after= (when the reply has one),
 * headers= (all of them, when all_headers)}, or nil, kind, message. */
static int xfer_result(lua_State *L, struct xfer *x, CURLcode rc, int all_headers) {
  if (rc != CURLE_OK || x->bb.oom || x->hb.oom) {
    const char *kind = "network";
    if (rc == CURLE_ABORTED_BY_CALLBACK) kind = "interrupted";
    else if (rc == CURLE_OPERATION_TIMEDOUT) kind = "timeout";
    const char *msg = rc != CURLE_OK ? curl_easy_strerror(rc) : "out of memory";
    char toolong[96];
    if (x->too_big) {
      kind = "api";
      snprintf(toolong, sizeof toolong, "the response is larger than %zu bytes (max_response_bytes)", x->max_body);
      msg = toolong;
    }
    /* may the request have reached the server? Not when the connection
     * was never made or the request never started to leave. */
    curl_off_t pre = 0;
    long reqsize = 0;
    curl_easy_getinfo(x->c, CURLINFO_PRETRANSFER_TIME_T, &pre);
    curl_easy_getinfo(x->c, CURLINFO_REQUEST_SIZE, &reqsize);
    int sent = !(rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
                 rc == CURLE_COULDNT_RESOLVE_PROXY || rc == CURLE_SSL_CONNECT_ERROR ||
                 rc == CURLE_PEER_FAILED_VERIFICATION || (pre == 0 && reqsize == 0));
    xfer_release(x);
    lua_pushnil(L);
    lua_pushstring(L, kind);
    lua_pushstring(L, msg);
    lua_pushboolean(L, sent);
    return 4;
  }
  long status = 0;
  double total = 0;
  curl_easy_getinfo(x->c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(x->c, CURLINFO_TOTAL_TIME, &total);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, status);
  lua_setfield(L, -2, "status");
  lua_pushlstring(L, x->bb.data ? x->bb.data : "", x->bb.len);
  lua_setfield(L, -2, "body");
  each_header(&x->hb, set_retry_after, L);
  if (all_headers) {
    lua_newtable(L);
    each_header(&x->hb, set_header, L);
    lua_setfield(L, -2, "headers");
  }
  lua_pushnumber(L, total * 1000.0);
  lua_setfield(L, -2, "time_ms");
  xfer_release(x);
  return 1;
}

/* http:request{...} -> {status=, body=, headers=, time_ms=} | nil, kind, message, sent
 * A raw exchange for tests and tools; the client sends through Multi,
 * whose replies carry only the header the client reads (retry_after). */
static int l_http_request(lua_State *L) {
  http_t *h = check_http(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  struct xfer x;
  memset(&x, 0, sizeof x);
  x.c = h->curl;
  xfer_setup(L, 2, &x, NULL);
  CURLcode rc = curl_easy_perform(h->curl);
  int nr = xfer_result(L, &x, rc, 1);
  xfer_free_buffers(&x);
  return nr;
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

/* ---------- concurrency: one multi handle, many transfers ---------- */

#define MULTI_MT "uqpay.Multi"
#define POOL_MAX 32

typedef struct {
  CURLM *m;
  struct xfer *active;   /* transfers under way, and finished ones not yet handed over */
  struct xfer *done_head, *done_tail; /* finished, in the order libcurl said so */
  struct xfer *pool[POOL_MAX]; /* finished transfers: easy handle and buffers, reused (keep-alive) */
  int npool;
  lua_Integer next_id;
} multi_t;

static multi_t *check_multi(lua_State *L) {
  multi_t *mt = (multi_t *)luaL_checkudata(L, 1, MULTI_MT);
  if (!mt->m) uqpay_raise(L, "usage", "multi handle is closed");
  return mt;
}

static int l_multi_new(lua_State *L) {
  multi_t *mt = (multi_t *)lua_newuserdatauv(L, sizeof(multi_t), 0);
  memset(mt, 0, sizeof *mt);
  luaL_setmetatable(L, MULTI_MT);
  mt->m = curl_multi_init();
  if (!mt->m) return uqpay_raise(L, "config", "cannot initialise libcurl: %s", lazy_curl_error());
  return 1;
}

static void xfer_free(struct xfer *x) {
  curl_easy_cleanup(x->c);
  xfer_free_buffers(x);
  free(x);
}

/* A finished (released) transfer goes back to the pool, or away. */
static void pool_or_free(multi_t *mt, struct xfer *x) {
  if (mt->npool < POOL_MAX) mt->pool[mt->npool++] = x;
  else xfer_free(x);
}

static int setup_protected(lua_State *L) {
  xfer_setup(L, 2, (struct xfer *)lua_touserdata(L, 1), (const op_t *)lua_touserdata(L, 3));
  return 0;
}

/* Starts a transfer for the request at index 2 (see http:request for its
 * fields). A write (request.write = true) needs its operation at index 3,
 * whose intent must be durable; the operation's key is the request's key. */
static struct xfer *add_xfer(lua_State *L, multi_t *mt) {
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_getfield(L, 2, "write");
  int write = lua_toboolean(L, -1);
  lua_pop(L, 1);
  op_t *op = write ? op_check_sendable(L, 3) : NULL;
  struct xfer *x = mt->npool > 0 ? mt->pool[--mt->npool] : calloc(1, sizeof *x);
  if (!x) uqpay_raise(L, "config", "out of memory");
  if (!x->c) x->c = handle_new();
  if (!x->c) {
    free(x);
    uqpay_raise(L, "config", "cannot initialise libcurl: %s", lazy_curl_error());
  }
  x->hdrs = NULL;
  x->mime = NULL;
  x->done = 0;
  x->next_done = NULL;
  /* set up under pcall: a bad request must not leak x or its handle */
  lua_pushcfunction(L, setup_protected);
  lua_pushlightuserdata(L, x);
  lua_pushvalue(L, 2);
  lua_pushlightuserdata(L, op);
  if (lua_pcall(L, 3, 0, 0) != LUA_OK) {
    pool_or_free(mt, x);
    lua_error(L);
  }
  if (op) op_mark_in_flight(op);
  x->id = ++mt->next_id;
  x->next = mt->active;
  mt->active = x;
  curl_multi_add_handle(mt->m, x->c);
  return x;
}

/* m:add(request [, op]) -> id: starts a transfer; m:run reports it. */
static int l_multi_add(lua_State *L) {
  multi_t *mt = check_multi(L);
  lua_pushinteger(L, add_xfer(L, mt)->id);
  return 1;
}

/* Drives the transfers once and queues the ones libcurl says are done;
 * with wait_ms >= 0 and none done yet, first waits up to wait_ms for
 * something to happen. */
static void drive(multi_t *mt, int wait_ms) {
  int running = 0;
  if (wait_ms >= 0) curl_multi_poll(mt->m, NULL, 0, wait_ms, NULL);
  curl_multi_perform(mt->m, &running);
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(mt->m, &left)) != NULL) {
    if (msg->msg != CURLMSG_DONE) continue;
    struct xfer *x = NULL;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
    x->rc = msg->data.result;
    x->done = 1;
    x->next_done = NULL;
    if (mt->done_tail) mt->done_tail->next_done = x;
    else mt->done_head = x;
    mt->done_tail = x;
  }
}

static void dequeue_done(multi_t *mt, struct xfer *x) {
  struct xfer *prev = NULL;
  for (struct xfer *d = mt->done_head; d; prev = d, d = d->next_done) {
    if (d == x) {
      if (prev) prev->next_done = d->next_done;
      else mt->done_head = d->next_done;
      if (mt->done_tail == d) mt->done_tail = prev;
      return;
    }
  }
}

static void unlink_xfer(multi_t *mt, struct xfer *x) {
  for (struct xfer **p = &mt->active; *p; p = &(*p)->next) {
    if (*p == x) {
      *p = x->next;
      break;
    }
  }
  curl_multi_remove_handle(mt->m, x->c);
  pool_or_free(mt, x);
}

/* m:run(timeout_ms) -> array of finished {id=, res=, kind=, message=, sent=}:
 * drives the transfers, waiting up to timeout_ms for something to happen. */
static int l_multi_run(lua_State *L) {
  multi_t *mt = check_multi(L);
  int timeout = (int)luaL_optinteger(L, 2, 100);
  drive(mt, -1);
  if (!mt->done_head && mt->active) drive(mt, timeout);
  lua_newtable(L);
  int out = lua_gettop(L);
  lua_Integer n = 0;
  while (mt->done_head) {
    struct xfer *x = mt->done_head;
    dequeue_done(mt, x);
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, x->id);
    lua_setfield(L, -2, "id");
    int nr = xfer_result(L, x, x->rc, 0);
    if (nr == 1) {
      lua_setfield(L, -2, "res");
    } else {
      lua_setfield(L, -5, "sent");
      lua_setfield(L, -4, "message");
      lua_setfield(L, -3, "kind");
      lua_pop(L, 1);
    }
    lua_rawseti(L, out, ++n);
    unlink_xfer(mt, x);
  }
  return 1;
}

/* m:request(request [, op]) -> res | nil, kind, message, sent: one
 * transfer from start to end (a plain call's). Others that finish
 * meanwhile (uqpay.parallel's) stay queued for the next m:run. */
static int l_multi_request(lua_State *L) {
  multi_t *mt = check_multi(L);
  struct xfer *x = add_xfer(L, mt);
  drive(mt, -1);
  while (!x->done) drive(mt, 100);
  dequeue_done(mt, x);
  int nr = xfer_result(L, x, x->rc, 0);
  unlink_xfer(mt, x);
  return nr;
}

/* m:remove(id): abandons a transfer under way (its item was stopped). */
static int l_multi_remove(lua_State *L) {
  multi_t *mt = check_multi(L);
  lua_Integer id = luaL_checkinteger(L, 2);
  for (struct xfer *x = mt->active; x; x = x->next) {
    if (x->id == id) {
      curl_multi_remove_handle(mt->m, x->c); /* libcurl lets go of it first */
      if (x->done) dequeue_done(mt, x);
      xfer_release(x);
      unlink_xfer(mt, x);
      break;
    }
  }
  return 0;
}

static int l_multi_count(lua_State *L) {
  multi_t *mt = check_multi(L);
  lua_Integer n = 0;
  for (struct xfer *x = mt->active; x; x = x->next) n++;
  lua_pushinteger(L, n);
  return 1;
}

static int l_multi_close(lua_State *L) {
  multi_t *mt = (multi_t *)luaL_checkudata(L, 1, MULTI_MT);
  if (!mt->m) return 0;
  for (int i = 0; i < mt->npool; i++) xfer_free(mt->pool[i]);
  mt->npool = 0;
  while (mt->active) {
    struct xfer *x = mt->active;
    mt->active = x->next;
    curl_multi_remove_handle(mt->m, x->c);
    xfer_release(x);
    xfer_free(x);
  }
  mt->done_head = mt->done_tail = NULL;
  curl_multi_cleanup(mt->m);
  mt->m = NULL;
  return 0;
}

static const luaL_Reg multi_methods[] = {
  {"add", l_multi_add}, {"run", l_multi_run}, {"request", l_multi_request}, {"remove", l_multi_remove}, {"count", l_multi_count}, {"close", l_multi_close}, {NULL, NULL}};

void uqpay_open_http(lua_State *L) {
  uqpay_class(L, HTTP_MT, http_methods, l_http_close);
  uqpay_class(L, MULTI_MT, multi_methods, l_multi_close);
  lua_pushcfunction(L, l_http_new);
  lua_setfield(L, -2, "http_new");
  lua_pushcfunction(L, l_multi_new);
  lua_setfield(L, -2, "multi_new");
}
