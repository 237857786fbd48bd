/*
 * Simulator transport: libmicrohttpd serves HTTP on a thread per connection;
 * the business rules live in Lua (lua/uqpay/sim/) in a lua_State of their
 * own, guarded by one mutex. Latency faults sleep outside the lock, so a
 * second request with the same idempotency key sees the first one in
 * flight. A "drop" fault closes the connection without any response.
 * Webhooks are posted by one worker thread with libcurl.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <microhttpd.h>

#include "lauxlib.h"
#include "errors.h"
#include "lualib.h"
#include "core.h"
#include "lazy.h"
#include "embed.h"
#include "sim.h"

#define SIM_MT "uqpay.Sim"
#define MAX_BODY (4 * 1024 * 1024)

struct hook {
  struct hook *next;
  char *url, *body, *ts, *sig;
};

struct sim {
  struct MHD_Daemon *d;
  lua_State *L;
  pthread_mutex_t mu;
  int port;
  char client_id[128], api_key[128];
  /* webhook worker */
  pthread_t worker;
  int worker_started, stopping;
  volatile sig_atomic_t quitting; /* cuts latency sleeps short at shutdown */
  pthread_mutex_t qmu;
  pthread_cond_t qcv;
  struct hook *head, *tail;
};

struct reqctx {
  char *body;
  size_t len;
  int too_big;
};

/* ---------- webhook delivery ---------- */

static size_t discard(char *p, size_t size, size_t n, void *ud) {
  (void)p; (void)ud;
  return size * n;
}

static void *webhook_worker(void *arg) {
  struct sim *s = arg;
  CURL *c = curl_easy_init();
  for (;;) {
    pthread_mutex_lock(&s->qmu);
    while (!s->head && !s->stopping) pthread_cond_wait(&s->qcv, &s->qmu);
    struct hook *h = s->head;
    if (h) {
      s->head = h->next;
      if (!s->head) s->tail = NULL;
    }
    pthread_mutex_unlock(&s->qmu);
    if (!h) break; /* stopping and drained */
    if (c) {
      char ts[160], sig[200];
      snprintf(ts, sizeof ts, "x-wk-timestamp: %s", h->ts);
      snprintf(sig, sizeof sig, "x-wk-signature: %s", h->sig);
      struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
      hd = curl_slist_append(hd, ts);
      hd = curl_slist_append(hd, sig);
      curl_easy_reset(c);
      curl_easy_setopt(c, CURLOPT_URL, h->url);
      curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, h->body);
      curl_easy_setopt(c, CURLOPT_HTTPHEADER, hd);
      curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
      curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
      curl_easy_perform(c); /* best effort, as a real webhook sender */
      curl_slist_free_all(hd);
    }
    free(h->url); free(h->body); free(h->ts); free(h->sig); free(h);
  }
  if (c) curl_easy_cleanup(c);
  return NULL;
}

static char *dupfield(lua_State *L, int t, const char *k) {
  lua_getfield(L, t, k);
  const char *v = lua_tostring(L, -1);
  char *r = strdup(v ? v : "");
  lua_pop(L, 1);
  return r;
}

/* Queues result.webhooks = {{url=, body=, timestamp=, signature=}, ...} */
static void queue_webhooks(struct sim *s, lua_State *L, int res) {
  if (lua_getfield(L, res, "webhooks") != LUA_TTABLE) { lua_pop(L, 1); return; }
  int t = lua_gettop(L);
  lua_Integer n = (lua_Integer)lua_rawlen(L, t);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, t, i);
    int w = lua_gettop(L);
    struct hook *h = calloc(1, sizeof *h);
    if (h) {
      h->url = dupfield(L, w, "url");
      h->body = dupfield(L, w, "body");
      h->ts = dupfield(L, w, "timestamp");
      h->sig = dupfield(L, w, "signature");
      pthread_mutex_lock(&s->qmu);
      if (s->tail) s->tail->next = h; else s->head = h;
      s->tail = h;
      pthread_cond_signal(&s->qcv);
      pthread_mutex_unlock(&s->qmu);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* ---------- request handling ---------- */

static enum MHD_Result collect(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
  lua_State *L = cls;
  (void)kind;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (const char *p = key; *p; p++) luaL_addchar(&b, (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p));
  luaL_pushresult(&b);
  lua_pushstring(L, value ? value : "");
  lua_rawset(L, -3);
  return MHD_YES;
}

static int is_loopback(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if (!ci || !ci->client_addr) return 0;
  const struct sockaddr *sa = ci->client_addr;
  if (sa->sa_family == AF_INET)
    return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
  if (sa->sa_family == AF_INET6) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
  }
  return 0;
}

/* Calls sim[fn](arg at top) under pcall; leaves the result table or an
 * error response on top. Caller holds the lock. */
static void call_sim(lua_State *L, const char *fn) {
  lua_getfield(L, LUA_REGISTRYINDEX, "uqpay.sim");
  lua_getfield(L, -1, fn);
  lua_remove(L, -2);
  lua_insert(L, -2);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_istable(L, -1)) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "uqlua-sim: internal error: %s\n", msg ? msg : "(no table returned)");
    lua_pop(L, 1);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, 500);
    lua_setfield(L, -2, "status");
    lua_pushliteral(L, "{\"type\":\"api_error\",\"code\":\"internal_error\",\"message\":\"simulator internal error\"}");
    lua_setfield(L, -2, "body");
  }
}

static enum MHD_Result respond(struct MHD_Connection *c, lua_State *L, int res) {
  lua_getfield(L, res, "drop");
  int drop = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (drop) return MHD_NO; /* connection closed with no response */
  lua_getfield(L, res, "status");
  unsigned status = (unsigned)luaL_optinteger(L, -1, 200);
  lua_getfield(L, res, "body");
  size_t n = 0;
  const char *body = lua_tolstring(L, -1, &n);
  struct MHD_Response *r = MHD_create_response_from_buffer(n, (void *)(body ? body : ""), MHD_RESPMEM_MUST_COPY);
  lua_pop(L, 2);
  if (!r) return MHD_NO;
  MHD_add_response_header(r, "Content-Type", "application/json");
  if (lua_getfield(L, res, "headers") == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      if (lua_type(L, -2) == LUA_TSTRING && lua_isstring(L, -1))
        MHD_add_response_header(r, lua_tostring(L, -2), lua_tostring(L, -1));
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  enum MHD_Result ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

/* One request's work on the rules state, run under lua_pcall so that no
 * Lua error (not even out of memory) can abort the process from a server
 * thread. The lock is held on entry and on exit; it is released only
 * around a latency fault's sleep. */
struct work {
  struct sim *s;
  struct MHD_Connection *c;
  struct reqctx *rc;
  const char *url, *method;
  enum MHD_Result ret;
};

static int handle_protected(lua_State *L) {
  struct work *w = (struct work *)lua_touserdata(L, 1);
  struct sim *s = w->s;
  struct MHD_Connection *c = w->c;
  struct reqctx *rc = w->rc;
  lua_createtable(L, 0, 8);
  lua_pushstring(L, w->method);
  lua_setfield(L, -2, "method");
  lua_pushstring(L, w->url);
  lua_setfield(L, -2, "path");
  lua_pushlstring(L, rc->body ? rc->body : "", rc->len);
  lua_setfield(L, -2, "body");
  lua_pushboolean(L, rc->too_big);
  lua_setfield(L, -2, "too_big");
  lua_pushboolean(L, is_loopback(c));
  lua_setfield(L, -2, "loopback");
  lua_newtable(L);
  MHD_get_connection_values(c, MHD_HEADER_KIND, collect, L);
  lua_setfield(L, -2, "headers");
  lua_newtable(L);
  MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect, L);
  lua_setfield(L, -2, "query");
  call_sim(L, "handle");
  /* latency fault: wait without the lock, then let the rules finish */
  for (;;) {
    lua_getfield(L, -1, "delay_ms");
    lua_Integer delay = lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (delay <= 0) break;
    lua_getfield(L, -1, "resume");
    lua_remove(L, -2);
    /* one registry ref per request: several may be waiting at once */
    int ref = luaL_ref(L, LUA_REGISTRYINDEX);
    pthread_mutex_unlock(&s->mu); /* nothing below raises until the relock */
    for (lua_Integer left = delay; left > 0 && !s->quitting; left -= 20) {
      struct timespec ts = {0, (long)(left < 20 ? left : 20) * 1000000L};
      nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&s->mu);
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    call_sim(L, "resume");
  }
  int res = lua_gettop(L);
  queue_webhooks(s, L, res);
  w->ret = respond(c, L, res);
  return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
  struct sim *s = cls;
  struct reqctx *rc = *con_cls;
  (void)version;
  if (!rc) {
    rc = calloc(1, sizeof *rc);
    if (!rc) return MHD_NO;
    *con_cls = rc;
    return MHD_YES;
  }
  if (*upload_size) {
    if (rc->len + *upload_size > MAX_BODY) rc->too_big = 1;
    else {
      char *nb = realloc(rc->body, rc->len + *upload_size + 1);
      if (!nb) return MHD_NO;
      rc->body = nb;
      memcpy(rc->body + rc->len, upload, *upload_size);
      rc->len += *upload_size;
      rc->body[rc->len] = '\0';
    }
    *upload_size = 0;
    return MHD_YES;
  }
  lua_State *L = s->L;
  struct work w = {s, c, rc, url, method, MHD_NO};
  pthread_mutex_lock(&s->mu);
  int top = lua_gettop(L);
  lua_pushcfunction(L, handle_protected);
  lua_pushlightuserdata(L, &w);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "uqlua-sim: internal error: %s\n", msg ? msg : "(error object)");
    static const char body[] = "{\"type\":\"api_error\",\"code\":\"internal_error\",\"message\":\"simulator internal error\"}";
    struct MHD_Response *r = MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    w.ret = r ? MHD_queue_response(c, 500, r) : MHD_NO;
    if (r) MHD_destroy_response(r);
  }
  lua_settop(L, top);
  pthread_mutex_unlock(&s->mu);
  return w.ret;
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t) {
  (void)cls; (void)c; (void)t;
  struct reqctx *rc = *con_cls;
  if (rc) {
    free(rc->body);
    free(rc);
    *con_cls = NULL;
  }
}

/* ---------- lifecycle ---------- */

static void copy_str(lua_State *L, int t, const char *k, char *dst, size_t n) {
  lua_getfield(L, t, k);
  const char *v = lua_tostring(L, -1);
  snprintf(dst, n, "%s", v ? v : "");
  lua_pop(L, 1);
}

static int error_text(lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  return 1;
}

/* Creates the rules state and runs sim.init(config); config is the table at
 * cfg in the caller's state, passed across as JSON-free plain strings. */
static lua_State *rules_state(lua_State *from, int cfg, struct sim *s, char *err, size_t errn) {
  lua_State *L = luaL_newstate();
  if (!L) { snprintf(err, errn, "out of memory"); return NULL; }
  luaL_openlibs(L);
  uqlua_inherit_dev_path(L, from); /* so UQLUA_PATH overrides reach the rules */
  uqlua_install_searcher(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_uqpay_core);
  lua_setfield(L, -2, "uqpay.core");
  lua_pop(L, 1);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "uqpay.sim");
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) goto fail;
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, "uqpay.sim");
  lua_getfield(L, -1, "init");
  lua_newtable(L);
  /* copy string/number/boolean fields of the config table */
  lua_pushnil(from);
  while (lua_next(from, cfg)) {
    if (lua_type(from, -2) == LUA_TSTRING) {
      lua_pushstring(L, lua_tostring(from, -2));
      if (lua_type(from, -1) == LUA_TBOOLEAN) lua_pushboolean(L, lua_toboolean(from, -1));
      else if (lua_isinteger(from, -1)) lua_pushinteger(L, lua_tointeger(from, -1));
      else if (lua_type(from, -1) == LUA_TNUMBER) lua_pushnumber(L, lua_tonumber(from, -1));
      else if (lua_type(from, -1) == LUA_TSTRING) lua_pushstring(L, lua_tostring(from, -1));
      else lua_pushnil(L);
      lua_rawset(L, -3);
    }
    lua_pop(from, 1);
  }
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) goto fail;
  copy_str(L, -1, "client_id", s->client_id, sizeof s->client_id);
  copy_str(L, -1, "api_key", s->api_key, sizeof s->api_key);
  lua_settop(L, 0);
  return L;
fail:
  /* an error object (a module that failed to load) says why through __tostring */
  lua_pushcfunction(L, error_text);
  lua_insert(L, -2);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_isstring(L, -1)) lua_pushnil(L);
  snprintf(err, errn, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "simulator failed to start");
  lua_close(L);
  return NULL;
}

struct sim *sim_start(lua_State *from, int cfg, const char *host, int port, char *err, size_t errn) {
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
    snprintf(err, errn, "--listen host must be an IPv4 address such as 127.0.0.1, not '%s'", host);
    return NULL;
  }
  struct sim *s = calloc(1, sizeof *s);
  if (!s) { snprintf(err, errn, "out of memory"); return NULL; }
  cfg = lua_absindex(from, cfg);
  s->L = rules_state(from, cfg, s, err, errn);
  if (!s->L) { free(s); return NULL; }
  pthread_mutex_init(&s->mu, NULL);
  pthread_mutex_init(&s->qmu, NULL);
  pthread_cond_init(&s->qcv, NULL);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  /* the server's threads never take SIGINT/SIGTERM: those belong to the
   * main thread (Ctrl-C under --sim, sigwait under --serve-sim) */
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL,
                          on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                          MHD_OPTION_NOTIFY_COMPLETED, on_done, s, MHD_OPTION_CONNECTION_TIMEOUT,
                          (unsigned int)120, MHD_OPTION_END);
  if (s->d && pthread_create(&s->worker, NULL, webhook_worker, s) == 0) s->worker_started = 1;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (!s->d) {
    if (!lazy_have_mhd())
      snprintf(err, errn, "cannot start the simulator: %s", lazy_mhd_error());
    else
      snprintf(err, errn, "cannot listen on %s:%d (address in use?)", host, port);
    lua_close(s->L);
    free(s);
    return NULL;
  }
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
  s->port = di ? di->port : port;
  return s;
}

char *sim_call(struct sim *s, const char *fn, const char *arg, char *err, size_t errn) {
  lua_State *L = s->L;
  char *out = NULL;
  pthread_mutex_lock(&s->mu);
  int top = lua_gettop(L);
  lua_getfield(L, LUA_REGISTRYINDEX, "uqpay.sim");
  lua_getfield(L, -1, fn);
  if (arg) lua_pushstring(L, arg);
  if (lua_pcall(L, arg ? 1 : 0, 1, 0) != LUA_OK || !lua_isstring(L, -1)) {
    const char *m = lua_tostring(L, -1);
    snprintf(err, errn, "%s", m ? m : "no result");
  } else {
    size_t n;
    const char *r = lua_tolstring(L, -1, &n);
    out = malloc(n + 1);
    if (out) memcpy(out, r, n + 1);
    else snprintf(err, errn, "out of memory");
  }
  lua_settop(L, top);
  pthread_mutex_unlock(&s->mu);
  return out;
}

int sim_port(const struct sim *s) { return s->port; }
const char *sim_client_id(const struct sim *s) { return s->client_id; }
const char *sim_api_key(const struct sim *s) { return s->api_key; }

void sim_stop(struct sim *s) {
  if (!s) return;
  s->quitting = 1;
  MHD_stop_daemon(s->d);
  if (s->worker_started) {
    pthread_mutex_lock(&s->qmu);
    s->stopping = 1;
    pthread_cond_signal(&s->qcv);
    pthread_mutex_unlock(&s->qmu);
    pthread_join(s->worker, NULL);
  }
  lua_close(s->L);
  pthread_mutex_destroy(&s->mu);
  pthread_mutex_destroy(&s->qmu);
  pthread_cond_destroy(&s->qcv);
  free(s);
}

/* ---------- Lua control: core.sim_start{...} -> handle ---------- */

static int l_sim_start(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "host");
  const char *host = luaL_optstring(L, -1, "127.0.0.1");
  lua_getfield(L, 1, "port");
  int port = (int)luaL_optinteger(L, -1, 0);
  char err[512];
  struct sim **ud = (struct sim **)lua_newuserdatauv(L, sizeof *ud, 0);
  *ud = NULL;
  luaL_setmetatable(L, SIM_MT);
  *ud = sim_start(L, 1, host, port, err, sizeof err);
  if (!*ud) return uqpay_raise(L, "config", "simulator: %s", err);
  return 1;
}

static struct sim *check_sim(lua_State *L) {
  struct sim **ud = (struct sim **)luaL_checkudata(L, 1, SIM_MT);
  if (!*ud) uqpay_raise(L, "usage", "simulator is stopped");
  return *ud;
}

static int l_sim_info(lua_State *L) {
  struct sim *s = check_sim(L);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, s->port);
  lua_setfield(L, -2, "port");
  lua_pushstring(L, s->client_id);
  lua_setfield(L, -2, "client_id");
  lua_pushstring(L, s->api_key);
  lua_setfield(L, -2, "api_key");
  return 1;
}

static int l_sim_stop(lua_State *L) {
  struct sim **ud = (struct sim **)luaL_checkudata(L, 1, SIM_MT);
  sim_stop(*ud);
  *ud = NULL;
  return 0;
}

static const luaL_Reg sim_methods[] = {{"info", l_sim_info}, {"stop", l_sim_stop}, {NULL, NULL}};

void uqpay_open_simctl(lua_State *L) {
  uqpay_class(L, SIM_MT, sim_methods, l_sim_stop);
  lua_pushcfunction(L, l_sim_start);
  lua_setfield(L, -2, "sim_start");
}
