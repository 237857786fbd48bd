/* Wiring between the uqlua binary and the uqpay module (see host.c). */
#ifndef UQLUA_HOST_H
#define UQLUA_HOST_H
#include "lua.h"
#include "options.h"

/* Preloads uqpay and cjson, starts the in-process
 * simulator for --sim, records the options and sets the global uqpay.
 * On failure leaves an error object on the stack and returns non-zero. */
int uqlua_open_host(lua_State *L, const struct uqlua_options *o, int noenv);
void uqlua_close_host(lua_State *L);
/* Before a script file runs: open (lock, resume) its run's journal. */
int uqlua_begin_run(lua_State *L);
/* The script ended: success marks its run complete (uqpay.run.finish). */
int uqlua_finish_run(lua_State *L, int success);
/* --serve-sim: serve until SIGINT/SIGTERM. Returns 0, or 2 after a message. */
int uqlua_serve_sim(lua_State *L, const struct uqlua_options *o);
/* Exit codes (SPEC §1): 0, 1 (EXIT_FAILURE) and these. */
#define EXIT_USAGE 2
#define EXIT_RECONCILE 3
#define EXIT_INTERRUPTED 130

/* docall.c: every chunk runs through docall, as in lua.c. */
int docall(lua_State *L, int narg, int nres);
/* docall with another message handler (the REPL's). */
int docall_with(lua_State *L, int narg, int nres, lua_CFunction handler);
/* The exit code the last failed chunk's error decided. */
int uqlua_exit_code(void);
void uqlua_set_exit_code(int code);
#endif
