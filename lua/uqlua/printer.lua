-- The REPL's pretty printer. Tables print with sorted keys and
-- indentation; arrays of scalars stay on one line; nesting deeper than
-- max_depth shows as {...}; a table met again on its own path is marked
-- <cycle>; lists longer than max_items are cut with a count. Money prints as
-- 100.02, JSON null as null, and secrets (tokens, keys, card numbers, CVVs)
-- are redacted.
local core = require "uqpay.core"
local R = require "uqpay.redact"

local P = {}
P.defaults = { max_depth = 4, max_items = 20, width = 100, indent = "  " }

local NULL = core.json_decode("null")

local function is_identifier(k)
  return type(k) == "string" and k:match("^[%a_][%w_]*$") ~= nil
end

local function scalar(v)
  if v == NULL then return "null" end
  local t = type(v)
  if t == "string" then return (string.format("%q", R.text(v)):gsub("\\\n", "\\n")) end
  if core.money.is(v) then return tostring(v) end
  if t == "number" or t == "boolean" or t == "nil" then return tostring(v) end
  if t == "table" and getmetatable(v) == core.error_mt then return nil end
  if t == "table" then return nil end
  local name = getmetatable(v) and rawget(getmetatable(v), "__name")
  return "<" .. (name or t) .. ">"
end

local function key_text(k)
  if is_identifier(k) then return k end
  return "[" .. (scalar(k) or tostring(k)) .. "]"
end

-- Keys in a stable order: array part first, then the rest sorted by type
-- and value.
local function sorted_keys(t)
  local n = #t
  local keys = {}
  for k in pairs(t) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  table.sort(keys, function(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return ta < tb end
    if ta == "number" or ta == "string" then return a < b end
    return tostring(a) < tostring(b)
  end)
  return n, keys
end

local function render(v, opts, depth, path, out, prefix)
  local s = scalar(v)
  if s then out[#out + 1] = s return end
  if type(v) == "table" and getmetatable(v) == core.error_mt then
    out[#out + 1] = "<" .. tostring(v) .. ">"
    return
  end
  if path[v] then out[#out + 1] = "<cycle>" return end
  local n, keys = sorted_keys(v)
  if n == 0 and #keys == 0 then out[#out + 1] = "{}" return end
  if depth >= opts.max_depth then out[#out + 1] = "{...}" return end
  path[v] = true
  -- an array of scalars fits on one line when short enough
  if #keys == 0 then
    local parts, all_scalar = {}, true
    for i = 1, math.min(n, opts.max_items) do
      local x = scalar(v[i])
      if not x then all_scalar = false break end
      parts[#parts + 1] = x
    end
    if all_scalar then
      if n > opts.max_items then parts[#parts + 1] = string.format("... (%d more)", n - opts.max_items) end
      local line = "{ " .. table.concat(parts, ", ") .. " }"
      if #line + #prefix <= opts.width then
        out[#out + 1] = line
        path[v] = nil
        return
      end
    end
  end
  local inner = prefix .. opts.indent
  local lines = { "{" }
  local shown = 0
  for i = 1, n do
    if shown >= opts.max_items then
      lines[#lines + 1] = inner .. string.format("... (%d more)", n - shown)
      break
    end
    local sub = {}
    render(v[i], opts, depth + 1, path, sub, inner)
    lines[#lines + 1] = inner .. table.concat(sub) .. ","
    shown = shown + 1
  end
  for _, k in ipairs(keys) do
    local sub = {}
    local red = R.field(k, v[k])
    if red then
      sub[1] = string.format("%q", red)
    else
      render(v[k], opts, depth + 1, path, sub, inner)
    end
    lines[#lines + 1] = inner .. key_text(k) .. " = " .. table.concat(sub) .. ","
  end
  lines[#lines + 1] = prefix .. "}"
  out[#out + 1] = table.concat(lines, "\n")
  path[v] = nil
end

-- format(value [, opts]) -> text
function P.format(v, opts)
  local o = {}
  for k, x in pairs(P.defaults) do o[k] = x end
  for k, x in pairs(opts or {}) do o[k] = x end
  local out = {}
  render(v, o, 0, {}, out, "")
  return table.concat(out)
end

-- Prints each value on its own line, as the REPL shows results.
function P.print(...)
  for i = 1, select("#", ...) do
    io.write(P.format((select(i, ...))), "\n")
  end
  io.flush()
end

return P
