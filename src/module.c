/*
 * The uqpay module's C side. luaopen_uqpay is both the binary's preload
 * entry and uqpay.so's entry point: it makes the embedded Lua sources
 * reachable, preloads uqpay.core, and runs the Lua module "uqpay" (from
 * UQLUA_PATH when a developer overrides it, else the embedded copy).
 */
#include <string.h>

#include "lauxlib.h"
#include "core.h"
#include "embed.h"
#include "errors.h"
#include "json.h"
#include "money.h"

/* json_encode(v [, money_as_string]) */
static int l_json_encode(lua_State *L) {
  luaL_checkany(L, 1);
  json_encode(L, 1, lua_toboolean(L, 2));
  return 1;
}

/* json_decode(s [, money]) */
static int l_json_decode(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  json_decode(L, s, n, lua_toboolean(L, 2));
  return 1;
}

static int l_json_array_mt(lua_State *L) {
  json_push_array_mt(L);
  return 1;
}

static int l_is_amount_key(lua_State *L) {
  size_t n;
  const char *k = luaL_checklstring(L, 1, &n);
  lua_pushboolean(L, json_is_amount_key(k, n));
  return 1;
}

/* currency_for(t, field) -> the currency t names for its amount field, as
 * the decoder reads answers (X_currency, the prefix's, currency,
 * card_currency), or nil: requests are checked by the same rule. */
static int l_currency_for(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  size_t n;
  const char *k = luaL_checklstring(L, 2, &n);
  char code[4];
  if (json_currency_for(L, 1, k, n, code)) lua_pushstring(L, code);
  else lua_pushnil(L);
  return 1;
}

/* The options uqlua was started with (a table in the registry), or {}. */
static int l_host_options(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, "uqlua.options") != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
  }
  return 1;
}

/* embedded_source(name) -> source text of an embedded bundled script, or
 * nil (modules are embedded as bytecode) */
static int l_embedded_source(lua_State *L) {
  const struct uqlua_embedded *e = uqlua_find_embedded(luaL_checkstring(L, 1));
  if (!e || e->bytecode) return 0;
  lua_pushlstring(L, (const char *)e->data, e->len);
  return 1;
}

/* embedded_names(prefix) -> array of embedded names starting with prefix */
static int l_embedded_names(lua_State *L) {
  size_t pn;
  const char *prefix = luaL_optlstring(L, 1, "", &pn);
  lua_newtable(L);
  lua_Integer i = 1;
  for (const struct uqlua_embedded *e = uqlua_embedded_files; e->name; e++) {
    if (strncmp(e->name, prefix, pn) == 0) {
      lua_pushstring(L, e->name);
      lua_rawseti(L, -2, i++);
    }
  }
  return 1;
}

static const luaL_Reg core_funcs[] = {
  {"json_encode", l_json_encode}, {"json_decode", l_json_decode}, {"json_array_mt", l_json_array_mt},
  {"is_amount_key", l_is_amount_key}, {"currency_for", l_currency_for}, {"error", uqpay_l_error}, {"host_options", l_host_options},
  {"embedded_source", l_embedded_source}, {"embedded_names", l_embedded_names}, {NULL, NULL}};

int luaopen_uqpay_core(lua_State *L) {
  luaL_newlib(L, core_funcs);
  uqpay_error_metatable(L);
  lua_setfield(L, -2, "error_mt");
  luaopen_uqpay_money(L);
  lua_setfield(L, -2, "money");
  uqpay_open_http(L);
  uqpay_open_sys(L);
  uqpay_open_simctl(L);
  uqpay_open_journal(L);
  uqpay_open_url(L);
  lua_pushliteral(L, UQLUA_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}

int uqlua_has_ops_script(const char *name) {
  char key[256];
  if (strcmp(name, "ops") == 0) return 1;
  if (strlen(name) > 200) return 0;
  strcpy(key, "ops/");
  strcat(key, name);
  return uqlua_find_embedded(key) != NULL;
}

UQPAY_EXPORT int luaopen_uqpay(lua_State *L) {
  uqlua_install_searcher(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_uqpay_core);
  lua_setfield(L, -2, "uqpay.core");
  lua_pop(L, 1);
  /* the Lua side: UQLUA_PATH's copy for development, else the embedded one */
  if (uqlua_find_module(L, "uqpay") != 2) return uqpay_raise(L, "config", "uqpay: %s", lua_tostring(L, -1));
  lua_pop(L, 1);
  lua_pushliteral(L, "uqpay");
  lua_call(L, 1, 1);
  return 1;
}
