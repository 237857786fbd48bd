/*
 * The REPL, as lua.c's doREPL on libedit: read a line, try it as
 * "return <line>" first so expressions print without '=', continue
 * incomplete chunks on further lines, run through docall, show results with
 * the Lua pretty printer (lua/uqlua/printer.lua).
 *
 * Around libedit: history persists in $XDG_STATE_HOME/uqlua/history, less
 * the lines that hold card data or a secret (uqlua.repl.history_keeps); Tab
 * completes dotted paths through lua/uqlua/repl.lua (called protected);
 * Ctrl-C at the prompt clears the line: libedit leaves signals alone
 * (rl_catch_signals = 0), our handler sets a flag without SA_RESTART, and
 * our getc function ends the line on EINTR so the loop can drop it. While
 * code runs, Ctrl-C goes through docall's hook and libcurl's progress
 * callback and comes back as an error; the REPL carries on.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lauxlib.h"
#include "errors.h"
#include "host.h"
#include "lazy.h"
#include "lazy_edit.h"
#include "repl.h"

#define EOFMARK "<eof>"
#define MARKLEN (sizeof(EOFMARK) / sizeof(char) - 1)

static lua_State *replL = NULL;
static const struct lazy_edit *ed = NULL; /* libedit, on a terminal */
static char history_path[4096];
static volatile sig_atomic_t prompt_interrupted = 0;

/* Calls uqlua.repl[fn] with nargs arguments on the stack, protected;
 * leaves nres results (nil on failure). */
static int call_repl(lua_State *L, const char *fn, int nargs, int nres) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "uqlua.repl");
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    lua_pop(L, 1 + nargs);
    for (int i = 0; i < nres; i++) lua_pushnil(L);
    return 0;
  }
  lua_getfield(L, -1, fn);
  lua_remove(L, -2);
  lua_insert(L, -(nargs + 1));
  if (lua_pcall(L, nargs, nres, 0) != LUA_OK) {
    fprintf(stderr, "uqlua: repl %s: %s\n", fn, lua_tostring(L, -1));
    lua_pop(L, 1);
    for (int i = 0; i < nres; i++) lua_pushnil(L);
    return 0;
  }
  return 1;
}

/* ---------- input ---------- */

static void on_prompt_sigint(int sig) {
  (void)sig;
  prompt_interrupted = 1;
}

/* Reads one character (UTF-8 decoded) for libedit; on Ctrl-C ends the line. */
static int repl_getc(FILE *f) {
  unsigned char c;
  for (;;) {
    ssize_t n = read(fileno(f), &c, 1);
    if (n == 1) break;
    if (n < 0 && errno == EINTR) {
      if (prompt_interrupted) return '\n';
      continue;
    }
    return EOF;
  }
  int extra = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
  int cp = extra == 3 ? (c & 0x07) : extra == 2 ? (c & 0x0F) : extra == 1 ? (c & 0x1F) : c;
  for (int i = 0; i < extra; i++) {
    unsigned char cc;
    if (read(fileno(f), &cc, 1) != 1) break;
    cp = (cp << 6) | (cc & 0x3F);
  }
  return cp;
}

static const char *get_prompt(lua_State *L, int firstline) {
  lua_pushboolean(L, firstline);
  call_repl(L, "prompt", 1, 1);
  const char *p = lua_tostring(L, -1);
  return p ? p : (firstline ? "> " : ">> ");
}

static int incomplete(lua_State *L, int status) {
  if (status == LUA_ERRSYNTAX) {
    size_t lmsg;
    const char *msg = lua_tolstring(L, -1, &lmsg);
    if (lmsg >= MARKLEN && strcmp(msg + lmsg - MARKLEN, EOFMARK) == 0) {
      lua_pop(L, 1);
      return 1;
    }
  }
  return 0;
}

/* Pushes the next line; 0 at end of input. A Ctrl-C'd line comes back as
 * an empty string. */
static int pushline(lua_State *L, int firstline) {
  char *b;
  int tty = isatty(0); /* Ctrl-C at a terminal's prompt: a fresh line, libedit or not */
  if (tty) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_prompt_sigint; /* no SA_RESTART: read() sees EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
  }
  prompt_interrupted = 0;
  const char *prmt = get_prompt(L, firstline);
  if (ed) {
    b = ed->readline(prmt);
  } else {
    char buf[4096];
    fputs(prmt, stdout);
    fflush(stdout);
    b = fgets(buf, sizeof buf, stdin) ? strdup(buf) : NULL;
    if (!b && prompt_interrupted) clearerr(stdin); /* EINTR, not the end of input */
  }
  lua_pop(L, 1); /* the prompt */
  if (tty) signal(SIGINT, SIG_DFL);
  if (prompt_interrupted) {
    free(b);
    lua_pushliteral(L, "");
    return 2; /* interrupted: the caller drops what was typed */
  }
  if (b == NULL) return 0;
  size_t l = strlen(b);
  if (l > 0 && b[l - 1] == '\n') b[--l] = '\0';
  if (firstline && b[0] == '=') lua_pushfstring(L, "return %s", b + 1);
  else lua_pushlstring(L, b, l);
  free(b);
  return 1;
}

/* Whether history may keep a line: uqlua.repl.history_keeps decides (not
 * when the line holds card data or a secret), and says why not unless
 * quiet. Fails closed. */
static int history_keeps(lua_State *L, const char *line, int quiet) {
  lua_pushstring(L, line);
  int keep = call_repl(L, "history_keeps", 1, 2) && lua_toboolean(L, -2);
  if (!keep && !quiet && lua_isstring(L, -1)) fprintf(stderr, "uqlua: not kept in history: %s\n", lua_tostring(L, -1));
  lua_pop(L, 2);
  return keep;
}

/* A refused line is kept out of the in-memory list (Up) as well as the
 * file: write_history writes the whole list, and Up would show it again. */
static void remember(const char *line) {
  if (line[0] == '\0' || replL == NULL || !ed || !history_keeps(replL, line, 0)) return;
  ed->add_history(line);
  if (history_path[0]) ed->write_history(history_path);
}

/* A history file written before lines with card data were refused may
 * hold some: they are dropped on reading, and the file rewritten. */
static void purge_history(lua_State *L) {
  int dropped = 0;
  for (int i = *ed->history_length - 1; i >= 0; i--) {
    HIST_ENTRY *e = ed->history_get(*ed->history_base + i);
    if (e && e->line && !history_keeps(L, e->line, 1)) {
      HIST_ENTRY *gone = ed->remove_history(i);
      if (gone) ed->free_history_entry(gone);
      dropped++;
    }
  }
  if (dropped) ed->write_history(history_path);
}

static int addreturn(lua_State *L) {
  const char *line = lua_tostring(L, -1);
  const char *retline = lua_pushfstring(L, "return %s;", line);
  int status = luaL_loadbuffer(L, retline, strlen(retline), "=stdin");
  if (status == LUA_OK) {
    lua_remove(L, -2);
    remember(line);
  } else {
    lua_pop(L, 2);
  }
  return status;
}

static int multiline(lua_State *L) {
  for (;;) {
    size_t len;
    const char *line = lua_tolstring(L, 1, &len);
    int status = luaL_loadbuffer(L, line, len, "=stdin");
    if (!incomplete(L, status)) {
      remember(line);
      return status;
    }
    int got = pushline(L, 0);
    if (got != 1) { /* end of input or Ctrl-C: drop the whole chunk */
      if (got == 2) lua_pop(L, 1);
      lua_pushliteral(L, "");
      return -2;
    }
    lua_pushliteral(L, "\n");
    lua_insert(L, -2);
    lua_concat(L, 3);
  }
}

/* Returns a load status, -1 at end of input, -2 for a dropped line. */
static int loadline(lua_State *L) {
  int status;
  lua_settop(L, 0);
  int got = pushline(L, 1);
  if (got == 0) return -1;
  if (got == 2) return -2;
  if ((status = addreturn(L)) != LUA_OK) status = multiline(L);
  lua_remove(L, 1);
  return status;
}

/* ---------- completion ---------- */

static char **matches = NULL;
static int match_count = 0, match_next = 0;

static char *next_match(const char *text, int state) {
  (void)text;
  if (state == 0) match_next = 0;
  if (match_next >= match_count) return NULL;
  return strdup(matches[match_next++]);
}

static void clear_matches(void) {
  for (int i = 0; i < match_count; i++) free(matches[i]);
  free(matches);
  matches = NULL;
  match_count = 0;
}

static char **complete(const char *text, int start, int end) {
  (void)start; (void)end;
  lua_State *L = replL;
  clear_matches();
  *ed->rl_attempted_completion_over = 1; /* never fall back to file names */
  lua_pushstring(L, text);
  call_repl(L, "complete", 1, 1);
  if (lua_istable(L, -1)) {
    int n = (int)lua_rawlen(L, -1);
    matches = calloc((size_t)n + 1, sizeof *matches);
    for (int i = 1; matches && i <= n; i++) {
      lua_rawgeti(L, -1, i);
      const char *m = lua_tostring(L, -1);
      if (m) matches[match_count++] = strdup(m);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  if (match_count == 0) return NULL;
  return ed->rl_completion_matches(text, next_match);
}

/* ---------- the loop ---------- */

/* REPL message handler: uqpay error objects in their one-line form; any
 * other error with a traceback, as lua.c. */
static int repl_msghandler(lua_State *L) {
  if (lua_type(L, 1) == LUA_TTABLE && luaL_getmetafield(L, 1, "__tostring") != LUA_TNIL) {
    lua_pop(L, 1);
    luaL_tolstring(L, 1, NULL);
    return 1;
  }
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  luaL_traceback(L, L, msg, 1);
  uqpay_redact_top(L);
  return 1;
}

/* Without libedit the REPL still runs, reading plain lines. */
static void setup_editline(lua_State *L) {
  replL = L;
  if (!(ed = lazy_edit())) {
    fprintf(stderr, "uqlua: no line editing or history: %s\n", lazy_edit_error());
    return;
  }
  *ed->rl_readline_name = "uqlua";
  *ed->rl_catch_signals = 0;
  *ed->rl_getc_function = repl_getc;
  *ed->rl_attempted_completion_function = complete;
  *ed->rl_completion_append_character = '\0';
  /* '.' and ':' are not word breaks: "uqpay.cards.li" completes as a whole */
  static char breaks[] = " \t\n\"\\'`@$><=;|&{(,+-*/%^#~[]";
  *ed->rl_completer_word_break_characters = breaks;
  *ed->rl_basic_word_break_characters = breaks;
  call_repl(L, "history_path", 0, 1);
  const char *p = lua_tostring(L, -1);
  history_path[0] = '\0';
  if (p && strlen(p) < sizeof history_path) strcpy(history_path, p);
  lua_pop(L, 1);
  ed->stifle_history(1000);
  if (history_path[0] && ed->read_history(history_path) == 0) purge_history(L);
}

void uqlua_repl(lua_State *L) {
  int status;
  if (isatty(0)) setup_editline(L);
  lua_pushboolean(L, ed != NULL);
  call_repl(L, "start", 1, 1);
  if (lua_isstring(L, -1)) fprintf(stderr, "%s\n", lua_tostring(L, -1));
  lua_pop(L, 1);
  while ((status = loadline(L)) != -1) {
    if (status == -2) { /* Ctrl-C at the prompt: a fresh line */
      fputc('\n', stdout);
      fflush(stdout);
      continue;
    }
    if (status == LUA_OK) status = docall_with(L, 0, LUA_MULTRET, repl_msghandler);
    if (status == LUA_OK) {
      int n = lua_gettop(L);
      if (n > 0) call_repl(L, "show", n, 0);
    } else {
      const char *msg = lua_tostring(L, -1);
      fprintf(stderr, "%s\n", msg ? msg : "(error object is not a string)");
      lua_pop(L, 1);
    }
    fflush(stdout);
  }
  lua_settop(L, 0);
  fputc('\n', stdout);
  fflush(stdout);
  clear_matches();
}
