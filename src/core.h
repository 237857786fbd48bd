/* uqpay.core: the C primitives under the Lua resource layer. */
#ifndef UQPAY_CORE_H
#define UQPAY_CORE_H
#include <signal.h>
#include "lua.h"
#include "lauxlib.h"
#include "uqpay.h"

extern volatile sig_atomic_t uqlua_interrupted;

void uqpay_open_http(lua_State *L);   /* adds http_new to the table on top */
void uqpay_open_sys(lua_State *L);    /* adds uuid, hmac, files, clocks */
void uqpay_open_simctl(lua_State *L); /* adds sim_start / sim_stop */
void uqpay_open_journal(lua_State *L); /* adds journal_open, checksum */
void uqpay_open_url(lua_State *L);     /* adds url_check */
/* Lowercase hex of n bytes into out (2n + 1 bytes, NUL-terminated). */
void uqpay_hex(const unsigned char *p, size_t n, char *out);
/* A random UUID (version 4, lowercase) into out; -1 (errno) without randomness. */
int uqpay_uuid4(char out[37]);
/* Registers the metatable of a userdata type: methods as __index, and
 * closer as both __gc and __close (it must be safe to call twice). */
void uqpay_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction closer);
#endif
