/* A server that answers every request at once with the same body: enough
 * for a token, a card lookup and a recharge, so that a client measured
 * against it pays for nothing but its own work and the loopback.
 *   const_server PORT   (prints "ready" once listening; stops on SIGTERM) */
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char BODY[] =
    "{\"auth_token\":\"bench\",\"expired_at\":4102444800,"
    "\"card_id\":\"66666666-6666-4666-8666-666666666662\",\"card_currency\":\"USD\",\"card_status\":\"ACTIVE\","
    "\"card_order_id\":\"77777777-7777-4777-8777-777777777777\",\"order_status\":\"SUCCESS\",\"amount\":\"0.01\"}";

static struct MHD_Response *resp;

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *data, size_t *size, void **state) {
  (void)cls; (void)url; (void)method; (void)version; (void)data;
  if (*state == NULL) { /* first call: headers only */
    *state = (void *)1;
    return MHD_YES;
  }
  if (*size) { /* discard the body */
    *size = 0;
    return MHD_YES;
  }
  return MHD_queue_response(c, MHD_HTTP_OK, resp);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: const_server PORT\n");
    return 2;
  }
  resp = MHD_create_response_from_buffer(sizeof BODY - 1, (void *)BODY, MHD_RESPMEM_PERSISTENT);
  MHD_add_response_header(resp, "Content-Type", "application/json");
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
  return 0;
}
