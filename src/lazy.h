/* Shared libraries opened on first use, not at start (see lazy.c). */
#ifndef UQLUA_LAZY_H
#define UQLUA_LAZY_H

#include <pthread.h>

/* Why each library could not be opened (after a constructor returned
 * NULL). Each keeps its own reason: a library opened later, or on another
 * thread, does not overwrite it. */
const char *lazy_curl_error(void);
const char *lazy_mhd_error(void);
const char *lazy_crypto_error(void);
const char *lazy_edit_error(void);

/* whether libmicrohttpd could be opened (opens it) */
int lazy_have_mhd(void);

#define LAZY_ERRLEN 512

/* For the lazy_*.c files: one library, opened by the first lazy_load()
 * (on any thread, once): the first of names that dlopen()s (RTLD_NOW |
 * RTLD_LOCAL), then resolve() takes what uqlua uses from it. err says why
 * not, every candidate's reason or the missing symbol. */
struct lazy_lib {
  const char *names[3];                                   /* NULL-ended */
  int (*resolve)(void *lib, const char *name, char *err); /* 0 (err set) when a symbol is missing */
  pthread_mutex_t mu;
  int state;                                              /* 0 not tried yet, 1 open, -1 cannot be */
  char err[LAZY_ERRLEN];
};
#define LAZY_LIB(resolve, ...) {{__VA_ARGS__, NULL}, resolve, PTHREAD_MUTEX_INITIALIZER, 0, ""}
/* whether the library is open (opens it the first time) */
int lazy_load(struct lazy_lib *l);
/* why it could not be opened ("out of memory" when it was) */
const char *lazy_why(const struct lazy_lib *l);
/* dlsym, or NULL with err naming the library and the symbol (LAZY_RESOLVE) */
void *lazy_sym(void *lib, const char *name, const char *fn, char err[LAZY_ERRLEN]);

/* p_f: where f is kept once resolved */
#define LAZY_POINTER(f) static __typeof__(f) *p_##f;

/* In a function with `void *lib`, `const char *name` and `char *err`: p_f = f from lib, or return 0 */
#define LAZY_RESOLVE(f)                                                     \
  if (!(p_##f = (__typeof__(p_##f))lazy_sym(lib, name, #f, err))) return 0;

#endif
