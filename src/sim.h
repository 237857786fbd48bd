/* The simulator's HTTP transport (see sim.c). */
#ifndef UQPAY_SIM_H
#define UQPAY_SIM_H
#include <stddef.h>
#include "lua.h"

struct sim;
/* Starts serving on host:port (0 = ephemeral); cfg indexes a table of
 * simulator settings in L (seed, faults, token_ttl, ...). NULL + err on failure. */
struct sim *sim_start(lua_State *L, int cfg, const char *host, int port, char *err, size_t errn);
int sim_port(const struct sim *s);
const char *sim_client_id(const struct sim *s);
const char *sim_api_key(const struct sim *s);
void sim_stop(struct sim *s);
/* Calls the rules' sim[fn](arg) under the lock and lua_pcall; returns its
 * string result (malloc'ed; the caller frees it) or NULL with err set. */
char *sim_call(struct sim *s, const char *fn, const char *arg, char *err, size_t errn);
#endif
