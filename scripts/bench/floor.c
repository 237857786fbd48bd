/* The floor: what one keep-alive libcurl handle does with no client layer
 * at all. POSTs a recharge with a fresh idempotency key per request for
 * SECONDS and prints "label<TAB>req/s<TAB>cpu-us-per-req".
 *   floor BASE_URL TOKEN CARD_ID SECONDS LABEL [JOURNAL_DIR]
 * With JOURNAL_DIR, each request is first made durable the cheapest way a
 * journal can: a 240-byte pwrite into a zero-filled file, then fdatasync.
 * That is the floor of any journal on this disk and this machine. */
#include <curl/curl.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>

static size_t sink(char *p, size_t s, size_t n, void *u) { (void)p; (void)u; return s * n; }

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_s(void) {
  struct rusage r;
  getrusage(RUSAGE_SELF, &r);
  return (double)(r.ru_utime.tv_sec + r.ru_stime.tv_sec) + (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char **argv) {
  if (argc != 6 && argc != 7) {
    fprintf(stderr, "usage: floor BASE_URL TOKEN CARD_ID SECONDS LABEL [JOURNAL_DIR]\n");
    return 2;
  }
  int jfd = -1;
  off_t at = 0, room = 16 << 20;
  static char rec[240], zeros[1 << 20];
  if (argc == 7) {
    char path[4096];
    snprintf(path, sizeof path, "%s/floor-journal", argv[6]);
    jfd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (jfd < 0) { perror(path); return 1; }
    unlink(path);
    for (off_t z = 0; z < room; z += (off_t)sizeof zeros)
      if (write(jfd, zeros, sizeof zeros) != (ssize_t)sizeof zeros) { perror("write"); return 1; }
    if (fsync(jfd) != 0) { perror("fsync"); return 1; }
    memset(rec, 'x', sizeof rec - 1);
    rec[sizeof rec - 1] = '\n';
  }
  char url[1024], auth[2048], key[80];
  snprintf(url, sizeof url, "%s/v1/issuing/cards/%s/recharge", argv[1], argv[3]);
  snprintf(auth, sizeof auth, "x-auth-token: Bearer %s", argv[2]);
  double secs = atof(argv[4]);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURL *h = curl_easy_init();
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, "{\"amount\":\"0.01\"}");
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
  long n = 0;
  double t0 = now_s(), c0 = cpu_s();
  while (now_s() - t0 < secs) {
    uuid_t u;
    char s[37];
    uuid_generate_random(u);
    uuid_unparse_lower(u, s);
    snprintf(key, sizeof key, "x-idempotency-key: %s", s);
    struct curl_slist *hd = curl_slist_append(NULL, auth);
    hd = curl_slist_append(hd, "Content-Type: application/json");
    hd = curl_slist_append(hd, key);
    if (jfd >= 0) {
      if (at + (off_t)sizeof rec > room) at = 0; /* an overwrite either way */
      if (pwrite(jfd, rec, sizeof rec, at) != (ssize_t)sizeof rec || fdatasync(jfd) != 0) { perror("sync"); return 1; }
      at += (off_t)sizeof rec;
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    long code = 0;
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(hd);
    if (rc != CURLE_OK || code != 200) {
      fprintf(stderr, "floor: %s (HTTP %ld)\n", curl_easy_strerror(rc), code);
      return 1;
    }
    n++;
  }
  double t = now_s() - t0, c = cpu_s() - c0;
  printf("%s\t%.0f\t%.1f\n", argv[5], (double)n / t, c * 1e6 / (double)n);
  curl_easy_cleanup(h);
  curl_global_cleanup();
  return 0;
}
