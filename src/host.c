#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "lauxlib.h"
#include "lua-cjson.h"
#include "errors.h"
#include "host.h"
#include "sim.h"
#include "uqpay.h"

static struct sim *inproc_sim = NULL;

static void set_str(lua_State *L, const char *k, const char *v) {
  if (!v) return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

static void set_bool(lua_State *L, const char *k, int v) {
  lua_pushboolean(L, v);
  lua_setfield(L, -2, k);
}

/* Pushes the simulator settings table from the options. */
static void push_sim_config(lua_State *L, const struct uqlua_options *o) {
  lua_newtable(L);
  set_str(L, "seed", o->serve_sim ? o->seed_file : o->sim_seed);
  set_str(L, "faults", o->faults);
  set_str(L, "token_ttl", o->token_ttl);
  set_str(L, "rate_limit", o->rate_limit);
  set_str(L, "rate_burst", o->rate_burst);
  set_str(L, "webhook_url", o->webhook_url);
}

static int open_host(lua_State *L) {
  const struct uqlua_options *o = lua_touserdata(L, 1);
  int noenv = lua_toboolean(L, 2);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_uqpay);
  lua_setfield(L, -2, "uqpay");
  lua_pushcfunction(L, luaopen_cjson);
  lua_setfield(L, -2, "cjson");
  lua_pop(L, 1);
  lua_newtable(L);
  set_str(L, "env", o->env);
  set_str(L, "profile", o->profile);
  set_str(L, "on_behalf_of", o->on_behalf_of);
  set_bool(L, "trace", o->trace);
  set_bool(L, "yes", o->yes);
  set_bool(L, "dry_run", o->dry_run);
  set_bool(L, "json", o->json);
  set_bool(L, "fresh", o->fresh);
  set_bool(L, "no_journal", o->no_journal);
  set_str(L, "journal", o->journal);
  if (o->script) { /* the invocation's identity, for the run journal */
    set_str(L, "script", o->script);
    set_bool(L, "bundled", o->bundled);
    lua_newtable(L);
    for (int i = 0; o->script_args && o->script_args[i]; i++) {
      lua_pushstring(L, o->script_args[i]);
      lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "script_args");
  }
  set_bool(L, "noenv", noenv);
  if (o->sim && !o->serve_sim) {
    char err[512], url[64];
    push_sim_config(L, o);
    inproc_sim = sim_start(L, -1, "127.0.0.1", 0, err, sizeof err);
    lua_pop(L, 1);
    if (!inproc_sim) return uqpay_raise(L, "usage", "--sim: %s", err);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api", sim_port(inproc_sim));
    set_str(L, "env", "sim");
    set_str(L, "base_url", url);
    set_str(L, "client_id", sim_client_id(inproc_sim));
    set_str(L, "api_key", sim_api_key(inproc_sim));
  }
  lua_setfield(L, LUA_REGISTRYINDEX, "uqlua.options");
  if (o->serve_sim) return 0; /* the server needs no client module */
  lua_getglobal(L, "require");
  lua_pushliteral(L, "uqpay");
  lua_call(L, 1, 1);
  lua_setglobal(L, "uqpay");
  return 0;
}

/* Calls require("uqpay.run")[fn](arg) under docall. */
static int run_call(lua_State *L, const char *fn, int arg) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "uqpay.run");
  int status = docall(L, 1, 1);
  if (status != LUA_OK) return status;
  lua_getfield(L, -1, fn);
  lua_remove(L, -2);
  lua_pushboolean(L, arg);
  return docall(L, 1, 0);
}

int uqlua_begin_run(lua_State *L) { return run_call(L, "begin", 0); }

int uqlua_finish_run(lua_State *L, int success) { return run_call(L, "finish", success); }

int uqlua_open_host(lua_State *L, const struct uqlua_options *o, int noenv) {
  lua_pushcfunction(L, open_host);
  lua_pushlightuserdata(L, (void *)o);
  lua_pushboolean(L, noenv);
  return docall(L, 2, 0);
}

void uqlua_close_host(lua_State *L) {
  (void)L;
  sim_stop(inproc_sim);
  inproc_sim = NULL;
}

/* Writes text to path through a temporary file and a rename (0600). */
static int write_file(const char *path, const char *text) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  size_t n = strlen(text), off = 0;
  while (off < n) {
    ssize_t w = write(fd, text + off, n - off);
    if (w <= 0) { close(fd); unlink(tmp); return -1; }
    off += (size_t)w;
  }
  if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) { unlink(tmp); return -1; }
  return 0;
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  for (size_t r; buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
    n += r;
    if (n + 1 >= cap) {
      char *b = realloc(buf, cap *= 2);
      if (!b) { free(buf); buf = NULL; }
      else buf = b;
    }
  }
  fclose(f);
  if (buf) buf[n] = '\0';
  return buf;
}

/* --detach: the parent prints what the server writes to the pipe (the
 * export lines, once it is listening) and exits; the server goes on in a
 * session of its own. Returns the write end in the child, -1 in the
 * parent (after it has relayed everything: *code holds its exit code). */
static int detach(int *code) {
  int fds[2];
  if (pipe(fds) != 0) { perror("uqlua: --detach"); *code = 2; return -1; }
  pid_t pid = fork();
  if (pid < 0) { perror("uqlua: --detach"); *code = 2; return -1; }
  if (pid > 0) {
    close(fds[1]);
    char buf[512];
    ssize_t r, got = 0;
    while ((r = read(fds[0], buf, sizeof buf)) > 0 || (r < 0 && errno == EINTR)) {
      if (r > 0) { fwrite(buf, 1, (size_t)r, stdout); got += r; }
    }
    fflush(stdout);
    close(fds[0]);
    *code = got > 0 ? 0 : 2; /* nothing: the server failed (and said why on stderr) */
    return -1;
  }
  close(fds[0]);
  setsid();
  return fds[1];
}

int uqlua_serve_sim(lua_State *L, const struct uqlua_options *o) {
  char host[64] = "127.0.0.1", err[512];
  int port = 8787;
  if (o->listen) {
    const char *colon = strrchr(o->listen, ':');
    char *end;
    long p = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || colon == o->listen || (size_t)(colon - o->listen) >= sizeof host || *end || p < 0 || p > 65535) {
      fprintf(stderr, "uqlua: --listen wants HOST:PORT (for example 127.0.0.1:8787), not '%s'\n", o->listen);
      return 2;
    }
    memcpy(host, o->listen, (size_t)(colon - o->listen));
    host[colon - o->listen] = '\0';
    port = (int)p;
  }
  int out_fd = -1;
  if (o->detach) {
    int code = 0;
    out_fd = detach(&code);
    if (out_fd < 0) return code;
  }
  /* Block the stop signals before any server thread exists; wait for them. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  push_sim_config(L, o);
  struct sim *s = sim_start(L, -1, host, port, err, sizeof err);
  lua_pop(L, 1);
  if (!s) {
    fprintf(stderr, "uqlua: --serve-sim: %s\n", err);
    return 2;
  }
  if (o->state_file) { /* the ledger of the last run, if there is one */
    char *text = read_file(o->state_file);
    if (text) {
      char *ok = sim_call(s, "load", text, err, sizeof err);
      free(text);
      if (!ok) {
        fprintf(stderr, "uqlua: --state %s: %s\n", o->state_file, err);
        sim_stop(s);
        return 2;
      }
      free(ok);
    }
  }
  if (o->pidfile) {
    char pid[32];
    snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (write_file(o->pidfile, pid) != 0) {
      fprintf(stderr, "uqlua: --pidfile %s: %s\n", o->pidfile, strerror(errno));
      sim_stop(s);
      return 2;
    }
  }
  FILE *out = out_fd >= 0 ? fdopen(out_fd, "w") : stdout;
  fprintf(out, "export UQPAY_BASE_URL=http://%s:%d/api\n", host, sim_port(s));
  fprintf(out, "export UQPAY_CLIENT_ID=%s\n", sim_client_id(s));
  fprintf(out, "export UQPAY_API_KEY=%s\n", sim_api_key(s));
  fflush(out);
  if (out_fd >= 0) { /* the parent prints them and exits; we stay, quietly */
    fclose(out);
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
      dup2(null, 0); dup2(null, 1); dup2(null, 2);
      if (null > 2) close(null);
    }
  } else {
    fprintf(stderr, "uqlua: simulator listening on http://%s:%d (Ctrl-C to stop)\n", host, sim_port(s));
  }
  int sig = 0;
  sigwait(&set, &sig);
  int rc = 0;
  if (o->state_file) {
    char *text = sim_call(s, "save", NULL, err, sizeof err);
    if (!text || write_file(o->state_file, text) != 0) {
      fprintf(stderr, "uqlua: --state %s: cannot save the ledger: %s\n", o->state_file, text ? strerror(errno) : err);
      rc = 1;
    }
    free(text);
  }
  if (out_fd < 0) fprintf(stderr, "uqlua: simulator stopped\n");
  sim_stop(s);
  if (o->pidfile) unlink(o->pidfile);
  return rc;
}
