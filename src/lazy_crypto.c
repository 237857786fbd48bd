/* libcrypto, opened on first use (the pattern of lazy.c).
 *
 * Linked, libcrypto's loading and relocation was about 0.7 ms of every
 * start-up, `uqlua -e ''` included, though only HMACs use it: the
 * journal's operation identities and core.hmac_sha512_hex. Each function
 * uqlua uses is defined here and forwards once the library is open; if it
 * cannot be opened, the constructors fail (EVP_MAC_fetch, EVP_sha512 and
 * HMAC return NULL), the others do nothing, and lazy_crypto_error() says why. */
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>

#include "lazy.h"

#define CRYPTO_FNS(X)                                                                                          \
  X(EVP_MAC_fetch) X(EVP_MAC_free) X(EVP_MAC_CTX_new) X(EVP_MAC_CTX_dup) X(EVP_MAC_CTX_free) \
  X(EVP_MAC_init) X(EVP_MAC_update) X(EVP_MAC_final) X(EVP_sha512) X(HMAC) X(OSSL_PARAM_construct_utf8_string) \
  X(OSSL_PARAM_construct_end)

CRYPTO_FNS(LAZY_POINTER)

static int resolve_crypto(void *lib, const char *name, char *err) {
  CRYPTO_FNS(LAZY_RESOLVE)
  return 1;
}

static struct lazy_lib crypto_lib = LAZY_LIB(resolve_crypto, "libcrypto.so.3");

static int have_crypto(void) { return lazy_load(&crypto_lib); }

const char *lazy_crypto_error(void) { return lazy_why(&crypto_lib); }

/* Constructors: NULL when the library cannot be opened. */
EVP_MAC *EVP_MAC_fetch(OSSL_LIB_CTX *c, const char *alg, const char *props) {
  return have_crypto() ? p_EVP_MAC_fetch(c, alg, props) : NULL;
}
const EVP_MD *EVP_sha512(void) { return have_crypto() ? p_EVP_sha512() : NULL; }
unsigned char *HMAC(const EVP_MD *md, const void *key, int keyn, const unsigned char *d, size_t n, unsigned char *out,
                    unsigned int *outn) {
  return have_crypto() && md ? p_HMAC(md, key, keyn, d, n, out, outn) : NULL;
}

/* The parameters are built once EVP_MAC_CTX_new gave a context, so the
 * library is open. */
OSSL_PARAM OSSL_PARAM_construct_utf8_string(const char *key, char *buf, size_t n) {
  return p_OSSL_PARAM_construct_utf8_string(key, buf, n);
}
OSSL_PARAM OSSL_PARAM_construct_end(void) { return p_OSSL_PARAM_construct_end(); }

/* The rest take an object a constructor made, or NULL. */
void EVP_MAC_free(EVP_MAC *m) {
  if (m) p_EVP_MAC_free(m);
}
EVP_MAC_CTX *EVP_MAC_CTX_new(EVP_MAC *m) { return m ? p_EVP_MAC_CTX_new(m) : NULL; }
EVP_MAC_CTX *EVP_MAC_CTX_dup(const EVP_MAC_CTX *c) { return c ? p_EVP_MAC_CTX_dup(c) : NULL; }
void EVP_MAC_CTX_free(EVP_MAC_CTX *c) {
  if (c) p_EVP_MAC_CTX_free(c);
}
int EVP_MAC_init(EVP_MAC_CTX *c, const unsigned char *key, size_t n, const OSSL_PARAM params[]) {
  return c ? p_EVP_MAC_init(c, key, n, params) : 0;
}
int EVP_MAC_update(EVP_MAC_CTX *c, const unsigned char *d, size_t n) { return c ? p_EVP_MAC_update(c, d, n) : 0; }
int EVP_MAC_final(EVP_MAC_CTX *c, unsigned char *out, size_t *outn, size_t outsize) {
  return c ? p_EVP_MAC_final(c, out, outn, outsize) : 0;
}
