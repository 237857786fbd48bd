#include <stdlib.h>
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

/* Where development files stand in for embedded modules: UQLUA_PATH (a
 * package.path-style template), read once per state unless lua.c's -E set
 * LUA_NOENV. Kept in the registry ("" for none) so a state made from this
 * one (the simulator's rules) can inherit the decision. */
#define DEV_PATH "uqlua.dev_path"

static const char *dev_path(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, DEV_PATH) != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
    const char *env = lua_toboolean(L, -1) ? NULL : getenv("UQLUA_PATH");
    lua_pop(L, 1);
    lua_pushstring(L, env ? env : "");
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, DEV_PATH);
  }
  const char *p = lua_tostring(L, -1); /* the registry keeps it alive */
  lua_pop(L, 1);
  return *p ? p : NULL;
}

void uqlua_inherit_dev_path(lua_State *to, lua_State *from) {
  const char *p = dev_path(from);
  lua_pushstring(to, p ? p : "");
  lua_setfield(to, LUA_REGISTRYINDEX, DEV_PATH);
}

/* Pushes the file on the development path that holds module name and
 * returns 1; else pushes where it looked (searchpath's "no file ..." lines,
 * "" without UQLUA_PATH) and returns 0. */
static int dev_file(lua_State *L, const char *name) {
  const char *dev = dev_path(L);
  if (!dev) {
    lua_pushliteral(L, "");
    return 0;
  }
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchpath");
  lua_remove(L, -2);
  lua_pushstring(L, name);
  lua_pushstring(L, dev);
  lua_call(L, 2, 2);
  if (lua_isstring(L, -2)) {
    lua_pop(L, 1);
    return 1;
  }
  lua_remove(L, -2); /* the nil */
  if (!lua_isstring(L, -1)) {
    lua_pop(L, 1);
    lua_pushliteral(L, "");
  }
  return 0;
}

/* An embedded module: not a bundled script (ops/NAME), which `uqlua NAME`
 * runs and no require should, nor hide a script's own ops/NAME.lua. */
static const struct uqlua_embedded *embedded_module(const char *name) {
  return strncmp(name, "ops/", 4) == 0 ? NULL : uqlua_find_embedded(name);
}

int uqlua_find_module(lua_State *L, const char *name) {
  const struct uqlua_embedded *e = NULL;
  if (!dev_file(L, name)) {
    if (!(e = embedded_module(name))) {
      /* the UQLUA_PATH files looked for, as package.path's are listed */
      const char *looked = lua_tostring(L, -1);
      lua_pushfstring(L, "no embedded module '%s'%s%s", name, *looked ? "\n\t" : "", looked);
      lua_remove(L, -2);
      return 1;
    }
    lua_pop(L, 1);
    lua_pushstring(L, e->chunkname);
  }
  int status = e ? uqlua_load_embedded(L, e) : luaL_loadfilex(L, lua_tostring(L, -1), "t");
  if (status != LUA_OK)
    return uqpay_raise(L, "config", "error loading module '%s' from %s:\n\t%s", name, lua_tostring(L, -2),
                       lua_tostring(L, -1));
  lua_insert(L, -2); /* the loader, then where it came from */
  return 2;
}

/* The package.searchers entry. It comes before the Lua file searcher: a
 * uqpay/redact.lua in the working directory (on package.path as ./?.lua)
 * must not replace the redactor that was built and tested. Names we do not
 * embed (a script's own uqpay/helpers.lua) fall through to package.path. */
static int searcher(lua_State *L) { return uqlua_find_module(L, luaL_checkstring(L, 1)); }

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
  /* Shift the file searchers up and insert after the preload searcher (1). */
  for (lua_Integer i = n; i >= 2; i--) {
    lua_rawgeti(L, -1, i);
    lua_rawseti(L, -2, i + 1);
  }
  lua_pushcfunction(L, searcher);
  lua_rawseti(L, -2, 2);
  lua_pop(L, 2);
}
