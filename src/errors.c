#include "lauxlib.h"
#include "errors.h"

/* "uqpay <kind> error: message (HTTP 400 card_error/card_not_found; POST /v1/...; key ...)" */
static int error_tostring(lua_State *L) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  lua_getfield(L, 1, "kind");
  lua_getfield(L, 1, "message");
  lua_pushfstring(L, "uqpay %s error: %s", luaL_optstring(L, -2, "unknown"), luaL_optstring(L, -1, "(no message)"));
  luaL_addvalue(&b);
  lua_pop(L, 2);
  const char *sep = " (";
  if (lua_getfield(L, 1, "status") == LUA_TNUMBER) {
    lua_pushfstring(L, "%sHTTP %d", sep, (int)lua_tointeger(L, -1));
    luaL_addvalue(&b);
    sep = "; ";
  }
  lua_pop(L, 1);
  lua_getfield(L, 1, "type");
  lua_getfield(L, 1, "code");
  if (lua_isstring(L, -2) || lua_isstring(L, -1)) {
    lua_pushfstring(L, "%s%s%s%s", sep, luaL_optstring(L, -2, ""), lua_isstring(L, -2) && lua_isstring(L, -1) ? "/" : "",
                    lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
    luaL_addvalue(&b);
    sep = "; ";
  }
  lua_pop(L, 2);
  lua_getfield(L, 1, "method");
  lua_getfield(L, 1, "path");
  if (lua_isstring(L, -2) && lua_isstring(L, -1)) {
    lua_pushfstring(L, "%s%s %s", sep, lua_tostring(L, -2), lua_tostring(L, -1));
    luaL_addvalue(&b);
    sep = "; ";
  }
  lua_pop(L, 2);
  if (lua_getfield(L, 1, "idempotency_key") == LUA_TSTRING) {
    lua_pushfstring(L, "%sidempotency key %s", sep, lua_tostring(L, -1));
    luaL_addvalue(&b);
    sep = "; ";
  }
  lua_pop(L, 1);
  if (lua_getfield(L, 1, "attempts") == LUA_TNUMBER && lua_tointeger(L, -1) > 1) {
    lua_pushfstring(L, "%s%d attempts", sep, (int)lua_tointeger(L, -1));
    luaL_addvalue(&b);
    sep = "; ";
  }
  lua_pop(L, 1);
  if (sep[0] == ';') luaL_addchar(&b, ')');
  luaL_pushresult(&b);
  return 1;
}

void uqpay_error_metatable(lua_State *L) {
  if (luaL_newmetatable(L, ERROR_MT)) {
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
  }
}

int uqpay_l_error(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  uqpay_error_metatable(L);
  lua_setmetatable(L, 1);
  return 1;
}

int uqpay_raise_usage(lua_State *L, const char *field, const char *shown, const char *why) {
  lua_createtable(L, 0, 4);
  lua_pushliteral(L, "usage");
  lua_setfield(L, -2, "kind");
  lua_pushstring(L, field);
  lua_setfield(L, -2, "field");
  lua_pushstring(L, shown);
  lua_setfield(L, -2, "value");
  lua_pushfstring(L, "%s %s %s", field, shown, why);
  lua_setfield(L, -2, "message");
  uqpay_error_metatable(L);
  lua_setmetatable(L, -2);
  return lua_error(L);
}
