/*
 * Base URL check with libcurl's own URL parser (CURLU), so that the host
 * checked is the host libcurl will connect to: https anywhere, plain http
 * only to loopback, never userinfo (http://127.0.0.1:80@otherhost/ is a
 * connection to otherhost), no query or fragment.
 */
#include <string.h>

#include <curl/curl.h>

#include "lauxlib.h"
#include "core.h"
#include "errors.h"
#include "lazy.h"

static int is_loopback(const char *host) {
  if (strcmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0) return 1;
  unsigned a, b, c, d;
  char extra;
  return sscanf(host, "%u.%u.%u.%u%c", &a, &b, &c, &d, &extra) == 4 && a == 127 && b < 256 && c < 256 && d < 256;
}

/* url_check(url) -> normalized url (no trailing slash), loopback; raises a
 * config error naming the URL and what is wrong with it. */
static int l_url_check(lua_State *L) {
  const char *url = luaL_checkstring(L, 1);
  CURLU *u = curl_url();
  if (!u) return uqpay_raise(L, "config", "cannot check the URL: %s", lazy_curl_error());
  char *scheme = NULL, *user = NULL, *password = NULL, *host = NULL, *query = NULL, *fragment = NULL, *full = NULL;
  const char *why = NULL;
  if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
    why = "is not a URL";
  } else {
    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    curl_url_get(u, CURLUPART_USER, &user, 0);
    curl_url_get(u, CURLUPART_PASSWORD, &password, 0);
    curl_url_get(u, CURLUPART_HOST, &host, 0);
    curl_url_get(u, CURLUPART_QUERY, &query, 0);
    curl_url_get(u, CURLUPART_FRAGMENT, &fragment, 0);
    if (user || password) why = "must not carry a user name or password";
    else if (query || fragment) why = "must not carry a query or a fragment";
    else if (!host || !*host) why = "has no host";
    else if (!scheme || (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0)) why = "is not an http(s) URL";
    else if (strcmp(scheme, "http") == 0 && !is_loopback(host))
      why = "must use https (plain http is accepted only for loopback addresses)";
    else if (curl_url_get(u, CURLUPART_URL, &full, 0) != CURLUE_OK) why = "is not a URL";
  }
  int loop = host && is_loopback(host);
  if (!why) {
    size_t n = strlen(full);
    while (n > 0 && full[n - 1] == '/') n--;
    lua_pushlstring(L, full, n);
    lua_pushboolean(L, loop);
  }
  curl_free(scheme); curl_free(user); curl_free(password); curl_free(host);
  curl_free(query); curl_free(fragment); curl_free(full);
  curl_url_cleanup(u);
  if (why) return uqpay_raise(L, "config", "base URL '%s' %s", url, why);
  return 2;
}

void uqpay_open_url(lua_State *L) {
  lua_pushcfunction(L, l_url_check);
  lua_setfield(L, -2, "url_check");
}
