-- The end of a dry run: the plan the twin (uqpay.twin) worked out. Every
-- would-be write in order (printed as it happened), the money moved per
-- currency, balances and cards before -> after, and the first error the
-- real run would hit. --json gives the same as one JSON line.
local json = require "uqpay.json"
local out = require "uqpay.jsonout"

local D = {}

local function money_text(t)
  local curs = {}
  for cur in pairs(t) do curs[#curs + 1] = cur end
  table.sort(curs)
  local parts = {}
  for _, cur in ipairs(curs) do parts[#parts + 1] = cur .. " " .. tostring(t[cur]) end
  return table.concat(parts, ", ")
end

-- The script ended with success (or through os.exit): print the plan, once.
function D.finish_active()
  local twin = require("uqpay.twin").active()
  if not twin or D.done then return end
  D.done = true
  local p = twin:plan()
  if out.enabled() then
    local fe = p.first_error
    out.emit { plan = { writes = #p.writes, moved = p.moved, balances = json.array(p.balances),
      cards = json.array(p.cards), first_error = fe and { n = fe.n, method = fe.method, path = fe.path,
      status = fe.status, message = fe.error } or nil } }
    return
  end
  if #p.writes == 0 then
    io.stderr:write("dry run: no write would be sent\n")
    return
  end
  io.stderr:write(string.format("dry run: %d write(s) would be sent, none was\n", #p.writes))
  io.stderr:write("  money moved: ", next(p.moved) and money_text(p.moved) or "none", "\n")
  for _, b in ipairs(p.balances) do
    io.stderr:write(string.format("  %s %s %s: %s -> %s\n", b.scope, b.account_id, b.currency, tostring(b.before),
      tostring(b.after)))
  end
  for _, c in ipairs(p.cards) do
    io.stderr:write(string.format("  card %s %s: %s -> %s%s\n", c.card_id, c.currency, tostring(c.before),
      tostring(c.after), c.new and " (new card)" or ""))
  end
  if p.first_error then
    local fe = p.first_error
    io.stderr:write(string.format("  the real run would fail at write %d: %s %s: %s\n", fe.n, fe.method, fe.path,
      tostring(fe.error)))
  end
end

return D
