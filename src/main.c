/*
 * uqlua: the Lua 5.4 standalone interpreter contract (lua.c) plus uqlua's
 * own long options. Structure follows lua.c: pmain runs under lua_pcall,
 * every chunk goes through one docall with a traceback handler, and
 * Ctrl-C arrives as a Lua hook set from the signal handler.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

#include "core.h"
#include "errors.h"
#include "host.h"
#include "options.h"
#include "repl.h"
#include "uqpay.h"

#ifndef LUA_IGMARK
#define LUA_IGMARK "-" /* as loadlib.c: "-l a-b" loads a-b into global a */
#endif

static const char *progname = "uqlua";
static int json_output = 0; /* --json */

static void print_usage(const char *badoption) {
  if (badoption) {
    lua_writestringerror("%s: ", progname);
    if (badoption[1] == 'e' || badoption[1] == 'l')
      lua_writestringerror("'%s' needs argument\n", badoption);
    else
      lua_writestringerror("unrecognized option '%s'\n", badoption);
  }
  lua_writestringerror("usage: %s [options] [script [args]]\n", progname);
  lua_writestringerror("Try '%s --help' for more information.\n", progname);
}

static void l_message(const char *pname, const char *msg) {
  if (pname) lua_writestringerror("%s: ", pname);
  lua_writestringerror("%s\n", msg);
}

/* Prints the message of a failed chunk; the exit code was decided by the
 * message handler (uqlua_exit_code). */
static int report(lua_State *L, int status) {
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    if (msg == NULL) msg = "(error object is not a string)";
    l_message(progname, msg);
    lua_pop(L, 1);
  }
  return status;
}

static void print_version(void) {
  lua_writestring("uqlua " UQLUA_VERSION " (" LUA_RELEASE ")", strlen("uqlua " UQLUA_VERSION " (" LUA_RELEASE ")"));
  lua_writeline();
}

static void createargtable(lua_State *L, char **argv, int argc, int script) {
  int i, narg;
  narg = argc - (script + 1);
  lua_createtable(L, narg, script + 1);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

/* --json: what a chunk returned, one JSON line per value on stdout
 * (require("uqpay.jsonout").results(...)). */
static int emit_results(lua_State *L, int base) {
  int n = lua_gettop(L) - base;
  if (n <= 0 || !json_output) {
    lua_settop(L, base);
    return LUA_OK;
  }
  lua_getglobal(L, "require");
  lua_pushliteral(L, "uqpay.jsonout");
  int status = docall(L, 1, 1);
  if (status != LUA_OK) return status;
  lua_getfield(L, -1, "results");
  lua_remove(L, -2);
  lua_insert(L, base + 1);
  return docall(L, n, 0);
}

static int dochunk(lua_State *L, int status) {
  int base = lua_gettop(L) - 1;
  if (status == LUA_OK) status = docall(L, 0, LUA_MULTRET);
  if (status == LUA_OK) status = emit_results(L, base);
  return report(L, status);
}

static int dofile(lua_State *L, const char *name) {
  return dochunk(L, luaL_loadfile(L, name));
}

static int dostring(lua_State *L, const char *s, const char *name) {
  return dochunk(L, luaL_loadbuffer(L, s, strlen(s), name));
}

/* -l mod or -l g=mod: require mod and store it in global g (or mod). */
static int dolibrary(lua_State *L, char *globname) {
  int status;
  char *suffix;
  char *modname = strchr(globname, '=');
  if (modname == NULL) {
    modname = globname;
    suffix = strchr(modname, *LUA_IGMARK);
    if (suffix) *suffix = '\0';
  } else {
    *modname = '\0';
    modname++;
  }
  lua_getglobal(L, "require");
  lua_pushstring(L, modname);
  status = docall(L, 1, 1);
  if (status == LUA_OK) lua_setglobal(L, globname);
  return report(L, status);
}

static int pushargs(lua_State *L) {
  int i, n;
  if (lua_getglobal(L, "arg") != LUA_TTABLE) luaL_error(L, "'arg' is not a table");
  n = (int)luaL_len(L, -1);
  luaL_checkstack(L, n + 3, "too many arguments to script");
  for (i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
  lua_remove(L, -i);
  return n;
}

static int handle_script(lua_State *L, char **argv) {
  int status;
  const char *fname = argv[0];
  if (strcmp(fname, "-") == 0 && strcmp(argv[-1], "--") != 0) fname = NULL; /* stdin */
  int base = lua_gettop(L);
  status = luaL_loadfile(L, fname);
  if (status == LUA_OK) {
    int n = pushargs(L);
    status = docall(L, n, LUA_MULTRET);
  }
  if (status == LUA_OK) status = emit_results(L, base);
  return report(L, status);
}

/* bits of 'args' */
#define has_error 1
#define has_i 2
#define has_v 4
#define has_e 8
#define has_E 16

/* Lua's own short options, exactly as lua.c collects them. */
static int collectargs(char **argv, int *first) {
  int args = 0;
  int i;
  for (i = *first; argv[i] != NULL; i++) {
    *first = i;
    if (argv[i][0] != '-') return args;
    switch (argv[i][1]) {
      case '-':
        if (argv[i][2] != '\0') return has_error;
        *first = i + 1;
        return args;
      case '\0':
        return args;
      case 'E':
        if (argv[i][2] != '\0') return has_error;
        args |= has_E;
        break;
      case 'W':
        if (argv[i][2] != '\0') return has_error;
        break;
      case 'i':
        args |= has_i; /* FALLTHROUGH */
      case 'v':
        if (argv[i][2] != '\0') return has_error;
        args |= has_v;
        break;
      case 'e':
        args |= has_e; /* FALLTHROUGH */
      case 'l':
        if (argv[i][2] == '\0') {
          i++;
          if (argv[i] == NULL || argv[i][0] == '-') return has_error;
        }
        break;
      default:
        return has_error;
    }
  }
  *first = i;
  return args;
}

static int runargs(lua_State *L, char **argv, int from, int n) {
  int i;
  for (i = from; i < n; i++) {
    int option = argv[i][1];
    switch (option) {
      case 'e':
      case 'l': {
        int status;
        char *extra = argv[i] + 2;
        if (*extra == '\0') extra = argv[++i];
        status = (option == 'e') ? dostring(L, extra, "=(command line)") : dolibrary(L, extra);
        if (status != LUA_OK) return 0;
        break;
      }
      case 'W':
        lua_warning(L, "@on", 0);
        break;
    }
  }
  return 1;
}

static int handle_luainit(lua_State *L) {
  const char *name = "=UQLUA_INIT";
  const char *init = getenv("UQLUA_INIT");
  if (init == NULL) return LUA_OK;
  if (init[0] == '@') return dofile(L, init + 1);
  return dostring(L, init, name);
}

/* `uqlua NAME args` runs bundled script NAME when NAME is not a file path. */
static int bundled_script(const char *name) {
  return strchr(name, '/') == NULL && access(name, F_OK) != 0 && uqlua_has_ops_script(name);
}

/* The script failed: its run stays resumable (and says so). The exit code
 * is the script's error's, whatever finishing the run says. */
static int script_failed(lua_State *L) {
  int code = uqlua_exit_code();
  if (uqlua_finish_run(L, 0) != LUA_OK) lua_pop(L, 1);
  uqlua_set_exit_code(code);
  return 0;
}

static int pmain(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  struct uqlua_options *opts = (struct uqlua_options *)lua_touserdata(L, 3);
  int script;
  int first = opts->first_lua_arg;
  int args = collectargs(argv, &first);
  int optlim = first; /* lua options end here; script name (if any) at first */
  script = (argv[first] != NULL) ? first : 0;
  luaL_checkversion(L);
  if (args == has_error) {
    print_usage(argv[first]);
    uqlua_set_exit_code(EXIT_USAGE);
    return 0;
  }
  if (args & has_v) print_version();
  if (args & has_E) {
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  luaL_openlibs(L);
  json_output = opts->json;
  /* a bare name (no '/', no '.') that is no file: an ops script or a typo */
  if (script > 0 && !strpbrk(argv[script], "/.") && strcmp(argv[script], "-") != 0 && access(argv[script], F_OK) != 0
      && !bundled_script(argv[script])) {
    lua_writestringerror("%s: ", progname);
    lua_writestringerror("no file and no bundled ops script named '%s' (uqlua ops lists them)\n", argv[script]);
    uqlua_set_exit_code(EXIT_USAGE);
    return 0;
  }
  if (script > 0) {
    opts->script = argv[script];
    opts->script_args = argv + script + 1;
    opts->bundled = bundled_script(argv[script]);
  }
  if (uqlua_open_host(L, opts, (args & has_E) != 0) != LUA_OK) {
    report(L, LUA_ERRRUN);
    return 0;
  }
  createargtable(L, argv, argc, script);
  lua_gc(L, LUA_GCRESTART);
  lua_gc(L, LUA_GCGEN, 0, 0);
  if (!(args & has_E)) {
    if (handle_luainit(L) != LUA_OK) return 0;
  }
  if (opts->serve_sim) { /* standalone simulator: nothing else runs */
    if (uqlua_serve_sim(L, opts) != 0) {
      uqlua_set_exit_code(EXIT_USAGE);
      return 0;
    }
    lua_pushboolean(L, 1);
    return 1;
  }
  if (opts->runs || opts->run_id) { /* journal inspection: nothing else runs */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "uqpay.journal");
    if (report(L, docall(L, 1, 1)) != LUA_OK) return 0;
    lua_getfield(L, -1, opts->runs ? "list_runs" : "show_run");
    lua_pushstring(L, opts->run_id);
    if (report(L, docall(L, 1, 0)) != LUA_OK) return 0;
    lua_pushboolean(L, 1);
    return 1;
  }
  if (script == 0 && opts->journal) { /* -e, stdin and the REPL are never journaled */
    l_message(progname, "--journal needs a script file: -e, stdin and the REPL are never journaled");
    uqlua_set_exit_code(EXIT_USAGE);
    return 0;
  }
  if (!runargs(L, argv, opts->first_lua_arg, optlim)) return 0;
  if (script > 0) {
    if (report(L, uqlua_begin_run(L)) != LUA_OK) return 0;
    if (bundled_script(argv[script])) {
      lua_getglobal(L, "require");
      lua_pushliteral(L, "uqlua.ops");
      if (report(L, docall(L, 1, 1)) != LUA_OK) return 0;
      lua_getfield(L, -1, "run");
      lua_remove(L, -2);
      lua_pushstring(L, argv[script]);
      int n = 1;
      for (int i = script + 1; argv[i]; i++, n++) lua_pushstring(L, argv[i]);
      if (report(L, docall(L, n, 0)) != LUA_OK) return script_failed(L);
    } else if (handle_script(L, argv + script) != LUA_OK) {
      return script_failed(L);
    }
    if (report(L, uqlua_finish_run(L, 1)) != LUA_OK) return 0;
  }
  if (args & has_i) {
    uqlua_repl(L);
  } else if (script == 0 && !(args & (has_e | has_v))) {
    if (isatty(0)) {
      print_version();
      uqlua_repl(L);
    } else {
      dofile(L, NULL);
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* --json: the uncaught error as one JSON line on stdout, as well. */
static int print_json_error(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "uqpay.jsonout");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "error");
  lua_getfield(L, LUA_REGISTRYINDEX, "uqlua.last_error");
  lua_call(L, 1, 0);
  return 0;
}

static void json_error(lua_State *L) {
  lua_pushcfunction(L, print_json_error);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) lua_pop(L, 1);
}

/* No core dumps: a dump is this process's memory on disk, with the API key,
 * the access token and whatever card data a script read. Not dumpable stops
 * every dump, a core_pattern pipe too (which ignores RLIMIT_CORE), and other
 * processes of the same user attaching (ptrace, gdb -p) or reading
 * /proc/<pid>/mem and environ; it is not inherited across exec. The soft
 * core limit 0 as well, in case anything made us dumpable again; the hard
 * limit is left, so that programs a script runs may raise theirs
 * (docs/security.md). */
static void no_core_dumps(void) {
  struct rlimit lim;
  if (getrlimit(RLIMIT_CORE, &lim) == 0) {
    lim.rlim_cur = 0;
    setrlimit(RLIMIT_CORE, &lim);
  }
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

int main(int argc, char **argv) {
  int status, result;
  struct uqlua_options opts;
  no_core_dumps(); /* first: nothing secret is read before */
  int rc = uqlua_parse_options(argc, argv, &opts);
  if (rc >= 0) return rc; /* --help, --version, or a usage error */
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    l_message(argv[0], "cannot create state: not enough memory");
    return EXIT_FAILURE;
  }
  lua_gc(L, LUA_GCSTOP);
  lua_pushcfunction(L, &pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  lua_pushlightuserdata(L, &opts);
  status = lua_pcall(L, 3, 1, 0);
  result = lua_toboolean(L, -1);
  if (!result && opts.json) json_error(L);
  if (status != LUA_OK) {
    uqlua_set_exit_code(EXIT_FAILURE);
    report(L, status);
  }
  uqlua_close_host(L);
  lua_close(L);
  if (result && status == LUA_OK) return EXIT_SUCCESS;
  return uqlua_exit_code();
}
