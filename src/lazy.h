/* libcurl and libmicrohttpd, opened on first use (see lazy.c). */
#ifndef UQLUA_LAZY_H
#define UQLUA_LAZY_H

/* why the last library could not be opened (after a constructor returned NULL) */
const char *lazy_error(void);

/* whether libmicrohttpd could be opened (opens it) */
int lazy_have_mhd(void);

#endif
