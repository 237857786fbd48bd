-- No core dumps (src/main.c): a crash must not put the process's memory (the
-- API key, the token, card data) on disk, and other processes of the same
-- user must not read it.
--   uqlua tests/integration/no_core.lua UQLUA
local UQ = assert(arg[1], "usage: no_core.lua UQLUA")
local core = require "uqpay.core"
local T = require("tests.helpers.proc").new(UQ)

local ABS = UQ:sub(1, 1) == "/" and UQ or os.getenv("PWD") .. "/" .. UQ

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- sh(script) -> what it printed; ulimit -c unlimited first where the hard
-- limit allows, so that the limit seen is uqlua's own doing
local function sh(script)
  local p = io.popen(T.env .. "sh -c " .. quote("ulimit -c unlimited 2>/dev/null; " .. script) .. " 2>&1")
  local out = p:read("a")
  p:close()
  return out
end

local function cores(dir)
  local n = 0
  for _, name in ipairs(core.listdir(dir) or {}) do
    if name:find("^core") then n = n + 1 end
  end
  return n
end

-- the limit, inherited by a child
local control = sh("ulimit -c")
local out = sh(ABS .. " -e " .. quote('os.execute("ulimit -c")'))
T:check("uqlua runs with a core size limit of 0 (seen by its child)", out == "0\n",
  "outside: " .. control .. "in uqlua: " .. out)

-- not dumpable: /proc/<pid> files belong to root, whoever runs it (as root,
-- run it as nobody so that the owner tells)
local as = core.getuid() == 0 and "setpriv --reuid=65534 --regid=65534 --clear-groups " or ""
local probe = "stat -c %u /proc/$PPID/environ"
local own = sh(as .. "sh -c " .. quote("sh -c " .. quote(probe)))
out = sh(as .. ABS .. " -e " .. quote('os.execute("' .. probe .. '")'))
if not own:match("^%d+\n$") or own == "0\n" or not out:match("^%d+\n$") then
  T:check("uqlua is not dumpable # SKIP cannot run uqlua as another user than root here: " .. out:gsub("\n", " "), true)
else
  T:check("uqlua is not dumpable: no other process of the user can attach or read its memory", out == "0\n",
    "a shell's: " .. own .. "uqlua's: " .. out)
end

-- the whole promise: a crash leaves no core file, where a shell's leaves one
local d1, d2 = T.dir .. "/crash-sh", T.dir .. "/crash-uqlua"
assert(core.mkdir_private(d1) and core.mkdir_private(d2))
sh("cd " .. d1 .. " && sh -c " .. quote("kill -ABRT $$"))
if cores(d1) == 0 then
  T:check("a crash leaves no core file # SKIP this system writes no core files here (kernel.core_pattern)", true)
else
  out = sh("cd " .. d2 .. " && " .. ABS .. " -e " .. quote('os.execute("kill -ABRT $PPID")') .. "; echo status=$?")
  T:check("a crash leaves no core file (a shell's left one)", out:find("status=134") and cores(d2) == 0,
    out .. table.concat(core.listdir(d2), " "))
end

T:finish()
