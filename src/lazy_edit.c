/* libedit, opened when the REPL starts on a terminal, not at every start.
 *
 * Linked, libedit and what it needs (libtinfo, libbsd, libmd) cost about
 * 0.4 ms of every start-up, scripts included, for a REPL most runs never
 * open. Unlike libcurl (lazy.c), the REPL also sets libedit's variables, so
 * everything it uses is reached through one table of addresses. */
#include <pthread.h>

#include "lazy.h"
#include "lazy_edit.h"

static struct lazy_edit ed;
static int edit_ok;
static char edit_err[LAZY_ERRLEN];

#define EDIT_RESOLVE(n) \
  if (!(ed.n = (__typeof__(ed.n))lazy_sym(lib, name, #n, err))) return 0;

static int resolve_edit(void *lib, const char *name, char *err) {
  EDIT_NAMES(EDIT_RESOLVE)
  return 1;
}

static void load_edit(void) {
  static const char *const names[] = {"libedit.so.2", NULL};
  const char *name = "libedit";
  void *lib = lazy_open(names, &name, edit_err);
  edit_ok = lib && resolve_edit(lib, name, edit_err);
}

const char *lazy_edit_error(void) { return lazy_reason(edit_err); }

const struct lazy_edit *lazy_edit(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, load_edit);
  return edit_ok ? &ed : NULL;
}
