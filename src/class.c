/* The one way a userdata type gets its metatable (Http, Multi, Journal,
 * Op, Lock, Sim): methods as __index, and one closer as both __gc and
 * __close, so that `local x <close>` and the collector free it alike. */
#include "lauxlib.h"
#include "core.h"

void uqpay_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction closer) {
  if (luaL_newmetatable(L, name)) {
    lua_pushcfunction(L, closer);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, closer);
    lua_setfield(L, -2, "__close");
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
}
