/* A server that answers every request at once with a fixed body: the
 * token endpoint's reply for /connect/token, and a recharge's reply for
 * anything else (a card lookup reads the same fields). A client measured
 * against it pays for nothing but its own work and the loopback.
 *   const_server PORT   (prints "ready" once listening; stops on SIGTERM) */
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char TOKEN[] = "{\"auth_token\":\"bench\",\"expired_at\":4102444800}";
static const char BODY[] =
    "{\"amount\":\"0.01\",\"card_currency\":\"USD\",\"card_id\":\"66666666-6666-4666-8666-666666666662\","
    "\"card_order_id\":\"77777777-7777-4777-8777-777777777777\",\"card_status\":\"ACTIVE\","
    "\"complete_time\":\"2026-11-24T12:00:00+00:00\",\"create_time\":\"2026-11-24T12:00:00+00:00\","
    "\"order_status\":\"SUCCESS\",\"order_type\":\"CARD_RECHARGE\",\"update_time\":\"2026-11-24T12:00:00+00:00\"}";

static struct MHD_Response *resp, *token;

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *data, size_t *size, void **state) {
  (void)cls; (void)method; (void)version; (void)data;
  if (*state == NULL) { /* first call: headers only */
    *state = (void *)1;
    return MHD_YES;
  }
  if (*size) { /* discard the body */
    *size = 0;
    return MHD_YES;
  }
  size_t n = strlen(url);
  int is_token = n >= 14 && strcmp(url + n - 14, "/connect/token") == 0;
  return MHD_queue_response(c, MHD_HTTP_OK, is_token ? token : resp);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: const_server PORT\n");
    return 2;
  }
  resp = MHD_create_response_from_buffer(sizeof BODY - 1, (void *)BODY, MHD_RESPMEM_PERSISTENT);
  MHD_add_response_header(resp, "Content-Type", "application/json");
  token = MHD_create_response_from_buffer(sizeof TOKEN - 1, (void *)TOKEN, MHD_RESPMEM_PERSISTENT);
  MHD_add_response_header(token, "Content-Type", "application/json");
  struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY,
                                          (uint16_t)atoi(argv[1]), NULL, NULL, answer, NULL,
                                          MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
  if (!d) {
    fprintf(stderr, "const_server: cannot listen on 127.0.0.1:%s\n", argv[1]);
    return 1;
  }
  puts("ready");
  fflush(stdout);
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGTERM);
  sigaddset(&s, SIGINT);
  sigprocmask(SIG_BLOCK, &s, NULL);
  int sig;
  sigwait(&s, &sig);
  MHD_stop_daemon(d);
  MHD_destroy_response(resp);
  MHD_destroy_response(token);
  return 0;
}
