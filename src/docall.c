/*
 * How the host calls Lua (lua.c's docall): every chunk under lua_pcall
 * with a message handler that decides the exit code from the error's kind
 * (SPEC §1) and adds a traceback where one helps; Ctrl-C arrives as a hook
 * set from the signal handler, raising an "interrupted" error object.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "lua.h"
#include "lauxlib.h"

#include "core.h"
#include "errors.h"
#include "host.h"

static lua_State *globalL = NULL;

/* The exit code of the last failed chunk. */
static int last_error_code = EXIT_FAILURE;

int uqlua_exit_code(void) { return last_error_code; }
void uqlua_set_exit_code(int code) { last_error_code = code; }

/* Hook set by the signal handler: raise an error at the next Lua step. */
static void lstop(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  uqpay_raise(L, "interrupted", "interrupted");
}

static void laction(int i) {
  int flag = LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT;
  signal(i, SIG_DFL); /* a second Ctrl-C kills the process */
  uqlua_interrupted = 1; /* also seen by libcurl's progress callback */
  lua_sethook(globalL, lstop, flag, 1);
}

/* Exit code for an error object: kind decides (SPEC §1). */
static int error_exit_code(lua_State *L, int idx) {
  int code = EXIT_FAILURE;
  if (uqlua_interrupted) return EXIT_INTERRUPTED;
  if (lua_type(L, idx) == LUA_TTABLE) {
    lua_getfield(L, idx, "kind");
    const char *kind = lua_tostring(L, -1);
    if (kind) {
      if (strcmp(kind, "reconcile_required") == 0) code = EXIT_RECONCILE;
      else if (strcmp(kind, "interrupted") == 0) code = EXIT_INTERRUPTED;
      else if (strcmp(kind, "usage") == 0 || strcmp(kind, "config") == 0) code = EXIT_USAGE;
    }
    lua_pop(L, 1);
  }
  return code;
}

/* Message handler: turn any error object into "message\ntraceback". Error
 * tables from uqpay keep their kind: the handler stores it for the exit code
 * and renders them through __tostring. */
static int msghandler(lua_State *L) {
  lua_pushvalue(L, 1); /* the error as raised, for --json */
  lua_setfield(L, LUA_REGISTRYINDEX, "uqlua.last_error");
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) {
      last_error_code = error_exit_code(L, 1);
      msg = lua_tostring(L, -1);
      /* the user's mistake or Ctrl-C, not the program's: one line */
      if (last_error_code == EXIT_USAGE || last_error_code == EXIT_INTERRUPTED) return 1;
    } else {
      msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
  } else {
    last_error_code = uqlua_interrupted ? EXIT_INTERRUPTED : EXIT_FAILURE;
  }
  luaL_traceback(L, L, msg, 1);
  uqpay_redact_top(L); /* a script's own error("...") too, and chunk names in the traceback */
  return 1;
}

int docall(lua_State *L, int narg, int nres) {
  return docall_with(L, narg, nres, msghandler);
}

int docall_with(lua_State *L, int narg, int nres, lua_CFunction handler) {
  int base = lua_gettop(L) - narg;
  lua_pushcfunction(L, handler);
  lua_insert(L, base);
  globalL = L;
  uqlua_interrupted = 0;
  last_error_code = EXIT_FAILURE;
  signal(SIGINT, laction);
  int status = lua_pcall(L, narg, nres, base);
  signal(SIGINT, SIG_DFL);
  lua_remove(L, base);
  return status;
}
