-- Bundled ops scripts (lua/ops/NAME.lua, embedded in the binary):
-- `uqlua ops` lists them, `uqlua NAME args` runs one. A script's first
-- line, a "-- " comment, is its one-line description.
local core = require "uqpay.core"

local M = {}

local function scripts()
  local out = {}
  for _, name in ipairs(core.embedded_names("ops/")) do
    local src = core.embedded_source(name)
    out[#out + 1] = { name = name:sub(5), summary = src:match("^%-%-%s*([^\n]*)") or "" }
  end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

function M.list()
  local list = scripts()
  for _, s in ipairs(list) do io.write(string.format("  %-18s %s\n", s.name, s.summary)) end
  io.write("Run one with: uqlua NAME [args]   (NAME --help for its options)\n")
end

function M.run(name, ...)
  if name == "ops" then return M.list() end
  local chunkname = "ops/" .. name
  local chunk = assert(load(core.embedded_source(chunkname), "@" .. chunkname .. ".lua", "t"))
  local args = table.pack(...)
  local a = { [0] = name }
  for i = 1, args.n do a[i] = args[i] end
  arg = a
  return chunk(...)
end

return M
