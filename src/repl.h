/* The interactive loop (lua.c's doREPL on libedit). */
#ifndef UQLUA_REPL_H
#define UQLUA_REPL_H
#include "lua.h"
void uqlua_repl(lua_State *L);
#endif
