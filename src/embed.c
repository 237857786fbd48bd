#include <string.h>

#include "lauxlib.h"
#include "errors.h"
#include "embed.h"

const struct uqlua_embedded *uqlua_find_embedded(const char *name) {
  for (const struct uqlua_embedded *e = uqlua_embedded_files; e->name; e++)
    if (strcmp(e->name, name) == 0) return e;
  return NULL;
}

int uqlua_load_embedded(lua_State *L, const struct uqlua_embedded *e) {
  return luaL_loadbufferx(L, (const char *)e->data, e->len, e->chunkname, e->bytecode ? "b" : "t");
}

static int searcher(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const struct uqlua_embedded *e = uqlua_find_embedded(name);
  if (e == NULL) {
    lua_pushfstring(L, "no embedded module '%s'", name);
    return 1;
  }
  if (uqlua_load_embedded(L, e) != LUA_OK)
    return uqpay_raise(L, "config", "error loading embedded module '%s':\n\t%s", name, lua_tostring(L, -1));
  lua_pushstring(L, e->chunkname);
  return 2;
}

void uqlua_install_searcher(lua_State *L) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchers");
  lua_Integer n = luaL_len(L, -1);
  /* Already there (the binary and uqpay.so both install it)? */
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    int same = lua_tocfunction(L, -1) == searcher;
    lua_pop(L, 1);
    if (same) { lua_pop(L, 2); return; }
  }
  /* Shift the C searchers up and insert after the Lua file searcher (2). */
  for (lua_Integer i = n; i >= 3; i--) {
    lua_rawgeti(L, -1, i);
    lua_rawseti(L, -2, i + 1);
  }
  lua_pushcfunction(L, searcher);
  lua_rawseti(L, -2, 3);
  lua_pop(L, 2);
}
