-- --dry-run: no write leaves the process. Each would-be write is printed
-- (method, path, body, the key it would use) and answered with a stand-in
-- result marked dry_run = true; reads still run. At the end, a plan:
-- operations, counts and totals per currency.
local core = require "uqpay.core"
local json = require "uqpay.json"
local out = require "uqpay.jsonout"

local D = {}
D.__index = D

local active -- the plan of this process's dry run

function D.new(read)
  active = setmetatable({ read = read, ops = {}, order = {}, card_currency = {}, n = 0 }, D)
  return active
end

-- The script ended with success: print the plan, once.
function D.finish_active()
  local plan = active
  active = nil
  if plan then plan:finish() end
end

-- The currency an amount is in, as the endpoint table says: a field of the
-- body, or the card's (looked up once with a read, which dry runs allow).
function D:currency(spec, body, money)
  if money.currency then return body[money.currency] or "?" end
  local card = money.currency_of_card and spec.path:match("^/v1/issuing/cards/([^/]+)")
  if not card then return "?" end
  if self.card_currency[card] == nil then
    local ok, c = pcall(self.read, { method = "GET", path = "/v1/issuing/cards/" .. card,
                                     on_behalf_of = spec.on_behalf_of })
    self.card_currency[card] = ok and c.card_currency or "?"
  end
  return self.card_currency[card]
end

function D:record(spec, body_text)
  local key = spec.key or core.uuid()
  local body = spec.body or {}
  self.n = self.n + 1
  if out.enabled() then
    out.emit { dry_run = { n = self.n, method = spec.method, path = spec.path, idempotency_key = key,
                           on_behalf_of = spec.on_behalf_of or nil, body = body_text } }
  else
    io.stderr:write(string.format("dry-run %d: %s %s  key=%s%s\n    %s\n", self.n, spec.method, spec.path, key,
      spec.on_behalf_of and (" on-behalf-of=" .. spec.on_behalf_of) or "", body_text ~= "" and body_text or "(no body)"))
  end
  local name = spec.op or (spec.method .. " " .. spec.path)
  local op = self.ops[name]
  if not op then
    op = { count = 0, totals = {} }
    self.ops[name] = op
    self.order[#self.order + 1] = name
  end
  op.count = op.count + 1
  local money = spec.ep and spec.ep.money
  if money and core.money.is(body[money.amount]) then
    local cur = self:currency(spec, body, money)
    op.totals[cur] = (op.totals[cur] or core.money("0")) + body[money.amount]
  end
  -- a stand-in result, shaped enough for a script to carry on
  local res = { dry_run = true, idempotency_key = key, card_order_id = core.uuid(), order_status = "DRY_RUN",
                card_id = spec.path:match("^/v1/issuing/cards/([^/]+)") or core.uuid(), transfer_id = core.uuid() }
  for k, v in pairs(body) do if res[k] == nil then res[k] = v end end
  return res, json.encode(res)
end

function D:finish()
  if out.enabled() then
    local ops = json.array {}
    for _, name in ipairs(self.order) do
      local op = self.ops[name]
      ops[#ops + 1] = { operation = name, count = op.count, totals = op.totals }
    end
    out.emit { plan = { writes = self.n, operations = ops } }
    return
  end
  if self.n == 0 then
    io.stderr:write("dry run: no write would be sent\n")
    return
  end
  io.stderr:write(string.format("dry run: %d write(s) would be sent, none was:\n", self.n))
  for _, name in ipairs(self.order) do
    local op = self.ops[name]
    local parts = {}
    local curs = {}
    for cur in pairs(op.totals) do curs[#curs + 1] = cur end
    table.sort(curs)
    for _, cur in ipairs(curs) do parts[#parts + 1] = cur .. " " .. tostring(op.totals[cur]) end
    io.stderr:write(string.format("  %-28s %5d   %s\n", name, op.count, table.concat(parts, ", ")))
  end
end

return D
