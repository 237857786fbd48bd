/* Lua sources compiled into the binary (see scripts/embed.sh). */
#ifndef UQLUA_EMBED_H
#define UQLUA_EMBED_H
#include <stddef.h>
#include "lua.h"

struct uqlua_embedded {
  const char *name;     /* module name, or "ops/NAME" for a bundled script */
  const char *chunkname;
  const unsigned char *data;
  size_t len;
  int bytecode;         /* 1: luac output (modules); 0: source (bundled scripts) */
};

extern const struct uqlua_embedded uqlua_embedded_files[];

const struct uqlua_embedded *uqlua_find_embedded(const char *name);
/* Adds the module searcher to package.searchers, before the Lua file
 * searcher: embedded modules win over files on package.path, and only
 * UQLUA_PATH (development; not under -E) overrides them. */
void uqlua_install_searcher(lua_State *L);
/* What the searcher does: pushes the loader of module name (from UQLUA_PATH,
 * else embedded) and where it came from, returning 2; or one message,
 * returning 1. Raises a config error when the chunk does not load. */
int uqlua_find_module(lua_State *L, const char *name);
/* A new state (the simulator's rules) takes from's UQLUA_PATH decision. */
void uqlua_inherit_dev_path(lua_State *to, lua_State *from);
/* Loads an embedded chunk; LUA_ERRFILE-like failure pushes a message. */
int uqlua_load_embedded(lua_State *L, const struct uqlua_embedded *e);
#endif
