-- Issuing (and Banking) balances per account and currency, with names and totals; table, CSV or JSON.
local ops = require "uqpay.ops"
local money = uqpay.money

local p = ops.parser("balance-report", "Issuing balances per account and currency, with account names and " ..
  "totals per currency; Banking balances too with --banking.")
p:option("--format", "table, csv or json (json under uqlua --json).", ops.default_format())
  :choices { "table", "csv", "json" }
p:flag("--sub-accounts", "Every connected sub-account too.")
p:flag("--banking", "Banking balances too.")
local args = p:parse(arg)

local accounts = ops.accounts(args.sub_accounts)

local rows, totals, order = {}, {}, {}
local function add(scope, a, b)
  rows[#rows + 1] = { scope = scope, account_id = a.id, account_name = a.name, currency = b.currency,
                      available_balance = b.available_balance, frozen_balance = b.frozen_balance }
  local k = scope .. " " .. b.currency
  if not totals[k] then totals[k] = { scope = scope, currency = b.currency, available_balance = money("0") }; order[#order + 1] = k end
  totals[k].available_balance = totals[k].available_balance + b.available_balance
end
for _, a in ipairs(accounts) do
  for _, b in ipairs(uqpay.balances(nil, a.obo and { on_behalf_of = a.obo } or nil)) do add("issuing", a, b) end
end
if args.banking then
  for _, a in ipairs(accounts) do
    local ok, list = pcall(uqpay.banking.balances, nil, a.obo and { on_behalf_of = a.obo } or nil)
    if ok then for _, b in ipairs(list) do add("banking", a, b) end end
  end
end
table.sort(order)
for _, k in ipairs(order) do
  local t = totals[k]
  rows[#rows + 1] = { scope = t.scope, account_id = "", account_name = "TOTAL", currency = t.currency,
                      available_balance = t.available_balance }
end
ops.output(rows, { "scope", "account_name", "account_id", "currency", "available_balance", "frozen_balance" },
  args.format)
io.stderr:write(string.format("%d balances in %d account(s)\n", #rows - #order, #accounts))
