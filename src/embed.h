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
/* Adds the embedded-module searcher to package.searchers, after the Lua
 * file searcher so that package.path / UQLUA_PATH can override it. */
void uqlua_install_searcher(lua_State *L);
/* Loads an embedded chunk; LUA_ERRFILE-like failure pushes a message. */
int uqlua_load_embedded(lua_State *L, const struct uqlua_embedded *e);
#endif
