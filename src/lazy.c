/* libcurl and libmicrohttpd are opened on first use, not at start.
 *
 * Linked normally, the two pull in some 35 shared libraries (TLS, LDAP,
 * Kerberos, SSH, IDN...) whose loading and symbol binding is most of
 * `uqlua -e ''` (about 8 ms of 9). So neither is linked: each function
 * uqlua uses is defined here, and the first call dlopen()s the library
 * once (lazy_load) and forwards. A library that cannot be opened makes
 * the constructors fail (curl_easy_init, curl_url, MHD_start_daemon return
 * NULL) and lazy_curl_error() / lazy_mhd_error() say why; the callers raise that as an error
 * object. Only the functions listed here may be used elsewhere in src/.
 * libcrypto (lazy_crypto.c) and libedit (lazy_edit.c) are opened the same
 * way, through lazy_load and LAZY_RESOLVE from here. */
#define CURL_DISABLE_TYPECHECK /* curl_easy_setopt is the function, not the checking macro */
#include <curl/curl.h>
#include <dlfcn.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "lazy.h"

/* ---------- libcurl ---------- */

#define CURL_FNS(X)                                                                                           \
  X(curl_global_init) X(curl_easy_init) X(curl_easy_setopt) X(curl_easy_getinfo) X(curl_easy_perform)       \
  X(curl_easy_reset) X(curl_easy_cleanup) X(curl_easy_strerror) X(curl_slist_append) X(curl_slist_free_all) \
  X(curl_free) X(curl_multi_init) X(curl_multi_add_handle) X(curl_multi_remove_handle) X(curl_multi_perform) \
  X(curl_multi_poll) X(curl_multi_info_read) X(curl_multi_cleanup) X(curl_url) X(curl_url_set)               \
  X(curl_url_get) X(curl_url_cleanup) X(curl_mime_init) X(curl_mime_addpart) X(curl_mime_name)               \
  X(curl_mime_filename) X(curl_mime_type) X(curl_mime_filedata) X(curl_mime_free)

#define MHD_FNS(X)                                                                                    \
  X(MHD_start_daemon_va) X(MHD_stop_daemon) X(MHD_get_daemon_info) X(MHD_get_connection_info)       \
  X(MHD_get_connection_values) X(MHD_create_response_from_buffer) X(MHD_add_response_header)        \
  X(MHD_queue_response) X(MHD_destroy_response)

CURL_FNS(LAZY_POINTER)
MHD_FNS(LAZY_POINTER)

void *lazy_sym(void *lib, const char *name, const char *fn, char err[LAZY_ERRLEN]) {
  void *p = dlsym(lib, fn);
  if (!p) snprintf(err, LAZY_ERRLEN, "%s has no %s: %s", name, fn, dlerror());
  return p;
}

static void *lazy_open(const char *const *names, const char **used, char err[LAZY_ERRLEN]) {
  size_t n = (size_t)snprintf(err, LAZY_ERRLEN, "cannot load");
  for (; *names; names++) {
    void *lib = dlopen(*names, RTLD_NOW | RTLD_LOCAL);
    if (lib) {
      err[0] = '\0';
      *used = *names;
      return lib;
    }
    const char *why = dlerror(); /* each candidate's reason, not only the last */
    if (n < LAZY_ERRLEN) n += (size_t)snprintf(err + n, LAZY_ERRLEN - n, " %s%s", why ? why : *names, names[1] ? ";" : "");
  }
  return NULL;
}

int lazy_load(struct lazy_lib *l) {
  int state = __atomic_load_n(&l->state, __ATOMIC_ACQUIRE);
  if (state) return state > 0;
  pthread_mutex_lock(&l->mu);
  if (!(state = l->state)) {
    const char *name = l->names[0];
    void *lib = lazy_open(l->names, &name, l->err);
    state = lib && l->resolve(lib, name, l->err) ? 1 : -1;
    __atomic_store_n(&l->state, state, __ATOMIC_RELEASE);
  }
  pthread_mutex_unlock(&l->mu);
  return state > 0;
}

const char *lazy_why(const struct lazy_lib *l) { return l->err[0] ? l->err : "out of memory"; }

static int resolve_curl(void *lib, const char *name, char *err) {
  CURL_FNS(LAZY_RESOLVE)
  return p_curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

static int resolve_mhd(void *lib, const char *name, char *err) {
  MHD_FNS(LAZY_RESOLVE)
  return 1;
}

static struct lazy_lib curl_lib = LAZY_LIB(resolve_curl, "libcurl.so.4", "libcurl-gnutls.so.4");
static struct lazy_lib mhd_lib = LAZY_LIB(resolve_mhd, "libmicrohttpd.so.12");

static int have_curl(void) { return lazy_load(&curl_lib); }
static int have_mhd(void) { return lazy_load(&mhd_lib); }

int lazy_have_mhd(void) { return have_mhd(); }

const char *lazy_curl_error(void) { return lazy_why(&curl_lib); }
const char *lazy_mhd_error(void) { return lazy_why(&mhd_lib); }

/* curl_global_init runs once, when the library is opened */
CURLcode curl_global_init(long flags) {
  (void)flags;
  return have_curl() ? CURLE_OK : CURLE_FAILED_INIT;
}
CURL *curl_easy_init(void) { return have_curl() ? p_curl_easy_init() : NULL; }
CURLU *curl_url(void) { return have_curl() ? p_curl_url() : NULL; }
CURLM *curl_multi_init(void) { return have_curl() ? p_curl_multi_init() : NULL; }
struct curl_slist *curl_slist_append(struct curl_slist *l, const char *s) {
  return have_curl() ? p_curl_slist_append(l, s) : NULL;
}
const char *curl_easy_strerror(CURLcode c) { return have_curl() ? p_curl_easy_strerror(c) : lazy_curl_error(); }

/* The rest take an object one of the constructors made, so the library is
 * open when they run. The argument of setopt is read by the option's type
 * range, as libcurl itself reads it. */
CURLcode curl_easy_setopt(CURL *h, CURLoption o, ...) {
  va_list ap;
  va_start(ap, o);
  CURLcode rc;
  if (o < CURLOPTTYPE_OBJECTPOINT) rc = p_curl_easy_setopt(h, o, va_arg(ap, long));
  else if (o < CURLOPTTYPE_FUNCTIONPOINT) rc = p_curl_easy_setopt(h, o, va_arg(ap, void *));
  else if (o < CURLOPTTYPE_OFF_T) rc = p_curl_easy_setopt(h, o, va_arg(ap, void (*)(void)));
  else if (o < CURLOPTTYPE_BLOB) rc = p_curl_easy_setopt(h, o, va_arg(ap, curl_off_t));
  else rc = p_curl_easy_setopt(h, o, va_arg(ap, void *));
  va_end(ap);
  return rc;
}
CURLcode curl_easy_getinfo(CURL *h, CURLINFO i, ...) {
  va_list ap;
  va_start(ap, i);
  CURLcode rc = p_curl_easy_getinfo(h, i, va_arg(ap, void *)); /* always a pointer to the result */
  va_end(ap);
  return rc;
}
CURLcode curl_easy_perform(CURL *h) { return p_curl_easy_perform(h); }
void curl_easy_reset(CURL *h) { p_curl_easy_reset(h); }
void curl_easy_cleanup(CURL *h) {
  if (h) p_curl_easy_cleanup(h);
}
void curl_slist_free_all(struct curl_slist *l) {
  if (l) p_curl_slist_free_all(l);
}
void curl_free(void *p) {
  if (p) p_curl_free(p);
}
CURLMcode curl_multi_add_handle(CURLM *m, CURL *h) { return p_curl_multi_add_handle(m, h); }
CURLMcode curl_multi_remove_handle(CURLM *m, CURL *h) { return p_curl_multi_remove_handle(m, h); }
CURLMcode curl_multi_perform(CURLM *m, int *running) { return p_curl_multi_perform(m, running); }
CURLMcode curl_multi_poll(CURLM *m, struct curl_waitfd *fds, unsigned int n, int ms, int *numfds) {
  return p_curl_multi_poll(m, fds, n, ms, numfds);
}
CURLMsg *curl_multi_info_read(CURLM *m, int *left) { return p_curl_multi_info_read(m, left); }
CURLMcode curl_multi_cleanup(CURLM *m) { return m ? p_curl_multi_cleanup(m) : CURLM_OK; }
CURLUcode curl_url_set(CURLU *u, CURLUPart what, const char *part, unsigned int flags) {
  return p_curl_url_set(u, what, part, flags);
}
CURLUcode curl_url_get(CURLU *u, CURLUPart what, char **part, unsigned int flags) {
  return p_curl_url_get(u, what, part, flags);
}
void curl_url_cleanup(CURLU *u) {
  if (u) p_curl_url_cleanup(u);
}
curl_mime *curl_mime_init(CURL *h) { return p_curl_mime_init(h); }
curl_mimepart *curl_mime_addpart(curl_mime *m) { return p_curl_mime_addpart(m); }
CURLcode curl_mime_name(curl_mimepart *p, const char *s) { return p_curl_mime_name(p, s); }
CURLcode curl_mime_filename(curl_mimepart *p, const char *s) { return p_curl_mime_filename(p, s); }
CURLcode curl_mime_type(curl_mimepart *p, const char *s) { return p_curl_mime_type(p, s); }
CURLcode curl_mime_filedata(curl_mimepart *p, const char *s) { return p_curl_mime_filedata(p, s); }
void curl_mime_free(curl_mime *m) {
  if (m) p_curl_mime_free(m);
}

/* ---------- libmicrohttpd (the simulator's server) ---------- */

struct MHD_Daemon *MHD_start_daemon(unsigned int flags, uint16_t port, MHD_AcceptPolicyCallback apc, void *apc_cls,
                                    MHD_AccessHandlerCallback dh, void *dh_cls, ...) {
  if (!have_mhd()) return NULL;
  va_list ap;
  va_start(ap, dh_cls);
  struct MHD_Daemon *d = p_MHD_start_daemon_va(flags, port, apc, apc_cls, dh, dh_cls, ap);
  va_end(ap);
  return d;
}
void MHD_stop_daemon(struct MHD_Daemon *d) { p_MHD_stop_daemon(d); }
/* the info types uqlua asks for (BIND_PORT, CLIENT_ADDRESS) take no extra argument */
const union MHD_DaemonInfo *MHD_get_daemon_info(struct MHD_Daemon *d, enum MHD_DaemonInfoType t, ...) {
  return p_MHD_get_daemon_info(d, t);
}
const union MHD_ConnectionInfo *MHD_get_connection_info(struct MHD_Connection *c, enum MHD_ConnectionInfoType t, ...) {
  return p_MHD_get_connection_info(c, t);
}
int MHD_get_connection_values(struct MHD_Connection *c, enum MHD_ValueKind k, MHD_KeyValueIterator it, void *cls) {
  return p_MHD_get_connection_values(c, k, it, cls);
}
struct MHD_Response *MHD_create_response_from_buffer(size_t size, void *buffer, enum MHD_ResponseMemoryMode mode) {
  return have_mhd() ? p_MHD_create_response_from_buffer(size, buffer, mode) : NULL;
}
enum MHD_Result MHD_add_response_header(struct MHD_Response *r, const char *h, const char *v) {
  return p_MHD_add_response_header(r, h, v);
}
enum MHD_Result MHD_queue_response(struct MHD_Connection *c, unsigned int status, struct MHD_Response *r) {
  return p_MHD_queue_response(c, status, r);
}
void MHD_destroy_response(struct MHD_Response *r) { p_MHD_destroy_response(r); }
