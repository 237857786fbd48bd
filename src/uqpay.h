/* Entry points of the uqpay module shared by the uqlua binary and uqpay.so. */
#ifndef UQPAY_H
#define UQPAY_H
#include "lua.h"

#define UQLUA_VERSION "0.1.0"

/* Built with -fvisibility=hidden: uqpay.so exports luaopen_uqpay alone. */
#define UQPAY_EXPORT __attribute__((visibility("default")))

UQPAY_EXPORT int luaopen_uqpay(lua_State *L);
int luaopen_uqpay_core(lua_State *L);
/* Is NAME a bundled ops script (lua/ops/NAME.lua) or the "ops" lister? */
int uqlua_has_ops_script(const char *name);
#endif
