/*
 * libFuzzer targets over uqlua's parsers (make fuzz). One harness, built
 * once per target with -DTARGET="name":
 *   json     core.json_decode (money on), then encode what it decoded
 *   money    uqpay.money(text) and money.check(text, ...) against USD
 *   journal  the journal reader: the input as a journal file, scanned
 *   url      the base URL check (CURLU)
 *   redact   uqpay.redact text() and body()
 *   csv      the ops scripts' CSV reader (uqpay.ops.csv_parse)
 * Any crash or sanitizer report is a finding; so is an error raised from C
 * that is not an error object with a kind (the one error convention).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"
#include "embed.h"
#include "uqpay.h"

#ifndef TARGET
#error "build with -DTARGET=\"json\" (or money, journal, url, redact)"
#endif

static lua_State *L;
static char journal_path[64];

/* Each target is a Lua function of the input that returns nothing, or
 * raises: an error object is fine, anything else is a finding. */
static const char *const chunk =
  "local target, path = ...\n"
  "local core = require 'uqpay.core'\n"
  "local function object(e) return type(e) == 'table' and getmetatable(e) == core.error_mt and e.kind end\n"
  "local run = {}\n"
  "function run.json(s)\n"
  "  local ok, v = pcall(core.json_decode, s, true)\n"
  "  if ok then ok, v = pcall(core.json_encode, v) end\n"
  "  if not ok and not object(v) then error('bare error: ' .. tostring(v), 0) end\n"
  "end\n"
  "function run.money(s)\n"
  "  for _, f in ipairs { function() return core.money(s) end,\n"
  "                      function() return core.money.check(s, 'f', true, 'USD') end,\n"
  "                      function() return core.money(s, 'JPY') end } do\n"
  "    local ok, e = pcall(f)\n"
  "    if not ok and not object(e) then error('bare error: ' .. tostring(e), 0) end\n"
  "  end\n"
  "end\n"
  "function run.journal(s)\n"
  "  local f = assert(io.open(path, 'wb')); f:write(s); f:close()\n"
  "  local j = core.journal_open(path, 'fuzz')\n"
  "  local ok, e = pcall(j.scan, j)\n"
  "  if ok then\n"
  "    local op = j:op('POST', '/x', '', '{}', '{}')\n"
  "    local ok2, e2 = pcall(function() if op:info().state == 'applied' then op:replay() end end)\n"
  "    if not ok2 and not object(e2) then error('bare error: ' .. tostring(e2), 0) end\n"
  "    j:unseen()\n"
  "  elseif not object(e) then error('bare error: ' .. tostring(e), 0) end\n"
  "  j:close()\n"
  "end\n"
  "function run.url(s)\n"
  "  local ok, e = pcall(core.url_check, s)\n"
  "  if not ok and not object(e) then error('bare error: ' .. tostring(e), 0) end\n"
  "end\n"
  "function run.redact(s)\n"
  "  local R = require 'uqpay.redact'\n"
  "  local t = R.text(s)\n"
  "  R.body(s)\n"
  "  -- a Luhn-valid card number never survives free text\n"
  "  if t:find('%f[%w]4111111111111111%f[%W]') then error('a card number survived: ' .. t, 0) end\n"
  "end\n"
  "function run.csv(s)\n"
  "  local ok, e = pcall(require('uqpay.ops').csv_parse, s)\n"
  "  if not ok and not object(e) then error('bare error: ' .. tostring(e), 0) end\n"
  "end\n"
  "return run[target]\n";

static void remove_journal(void) { unlink(journal_path); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc; (void)argv;
  atexit(remove_journal);
  L = luaL_newstate();
  luaL_openlibs(L);
  uqlua_install_searcher(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_uqpay_core);
  lua_setfield(L, -2, "uqpay.core");
  lua_pop(L, 1);
  snprintf(journal_path, sizeof journal_path, "/tmp/uqlua-fuzz-%d.journal", (int)getpid());
  if (luaL_loadstring(L, chunk) != LUA_OK) abort();
  lua_pushstring(L, TARGET);
  lua_pushstring(L, journal_path);
  if (lua_pcall(L, 2, 1, 0) != LUA_OK || !lua_isfunction(L, -1)) {
    fprintf(stderr, "fuzz: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_setfield(L, LUA_REGISTRYINDEX, "fuzz.target");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz.target");
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    fprintf(stderr, "fuzz finding: %s\n", lua_tostring(L, -1) ? lua_tostring(L, -1) : "(error object)");
    abort();
  }
  lua_settop(L, 0);
  lua_gc(L, LUA_GCSTEP, 0);
  return 0;
}
