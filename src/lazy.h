/* Shared libraries opened on first use, not at start (see lazy.c). */
#ifndef UQLUA_LAZY_H
#define UQLUA_LAZY_H

/* why the last library could not be opened (after a constructor returned NULL) */
const char *lazy_error(void);

/* whether libmicrohttpd could be opened (opens it) */
int lazy_have_mhd(void);

/* For the lazy_*.c files. lazy_open: dlopen the first of names that opens
 * (RTLD_NOW | RTLD_LOCAL), and set *used to it; NULL with every candidate's
 * reason in lazy_error(). lazy_sym: dlsym, or NULL with lazy_error() naming
 * the library and the symbol. */
void *lazy_open(const char *const *names, const char **used);
void *lazy_sym(void *lib, const char *name, const char *fn);

/* p_f: where f is kept once resolved */
#define LAZY_POINTER(f) static __typeof__(f) *p_##f;

/* In a function with `void *lib` and `const char *name`: p_f = f from lib, or return 0 */
#define LAZY_RESOLVE(f)                                                     \
  if (!(p_##f = (__typeof__(p_##f))lazy_sym(lib, name, #f))) return 0;

#endif
