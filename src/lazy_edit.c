/* libedit, opened when the REPL starts on a terminal, not at every start.
 *
 * Linked, libedit and what it needs (libtinfo, libbsd, libmd) cost about
 * 0.4 ms of every start-up, scripts included, for a REPL most runs never
 * open. Unlike libcurl (lazy.c), the REPL also sets libedit's variables, so
 * everything it uses is reached through one table of addresses. */
#include "lazy.h"
#include "lazy_edit.h"

static struct lazy_edit ed;

#define EDIT_RESOLVE(n) \
  if (!(ed.n = (__typeof__(ed.n))lazy_sym(lib, name, #n, err))) return 0;

static int resolve_edit(void *lib, const char *name, char *err) {
  EDIT_NAMES(EDIT_RESOLVE)
  return 1;
}

static struct lazy_lib edit_lib = LAZY_LIB(resolve_edit, "libedit.so.2");

const char *lazy_edit_error(void) { return lazy_why(&edit_lib); }

const struct lazy_edit *lazy_edit(void) { return lazy_load(&edit_lib) ? &ed : NULL; }
