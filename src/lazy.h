/* Shared libraries opened on first use, not at start (see lazy.c). */
#ifndef UQLUA_LAZY_H
#define UQLUA_LAZY_H

/* Why each library could not be opened (after a constructor returned
 * NULL). Each keeps its own reason: a library opened later, or on another
 * thread, does not overwrite it. */
const char *lazy_curl_error(void);
const char *lazy_mhd_error(void);
const char *lazy_crypto_error(void);
const char *lazy_edit_error(void);

/* whether libmicrohttpd could be opened (opens it) */
int lazy_have_mhd(void);

/* For the lazy_*.c files. lazy_open: dlopen the first of names that opens
 * (RTLD_NOW | RTLD_LOCAL), and set *used to it; NULL with every candidate's
 * reason in err. lazy_sym: dlsym, or NULL with err naming
 * the library and the symbol. */
#define LAZY_ERRLEN 512
void *lazy_open(const char *const *names, const char **used, char err[LAZY_ERRLEN]);
void *lazy_sym(void *lib, const char *name, const char *fn, char err[LAZY_ERRLEN]);
/* err's reason, or "out of memory" when the library opened */
const char *lazy_reason(const char *err);

/* p_f: where f is kept once resolved */
#define LAZY_POINTER(f) static __typeof__(f) *p_##f;

/* In a function with `void *lib`, `const char *name` and `char *err`: p_f = f from lib, or return 0 */
#define LAZY_RESOLVE(f)                                                     \
  if (!(p_##f = (__typeof__(p_##f))lazy_sym(lib, name, #f, err))) return 0;

#endif
