-- Issuing (and Banking) balances per currency, for the master and sub-accounts; table, CSV or JSON.
local argparse = require "argparse"

local parser = argparse("uqlua balance-report", "Issuing balances per account and currency.")
parser:option("-f --format", "Output format (json by default under uqlua --json).",
  require("uqpay.jsonout").enabled() and "json" or "table"):choices { "table", "csv", "json" }
parser:flag("--sub-accounts", "Also report every connected sub-account.")
parser:flag("--banking", "Also report Banking balances (master account).")
local args = parser:parse(arg)

local rows = {}
local function add(scope, account, b)
  rows[#rows + 1] = { scope = scope, account_id = account, currency = b.currency,
                      available_balance = b.available_balance, frozen_balance = b.frozen_balance }
end

for _, b in ipairs(uqpay.balances()) do add("issuing", "master", b) end
if args.sub_accounts then
  for a in uqpay.accounts.each() do
    for _, b in ipairs(uqpay.balances(nil, { on_behalf_of = a.account_id })) do add("issuing", a.account_id, b) end
  end
end
if args.banking then
  for _, b in ipairs(uqpay.banking.balances()) do add("banking", "master", b) end
end

local cols = { "scope", "account_id", "currency", "available_balance", "frozen_balance" }
if args.format == "json" then
  for _, r in ipairs(rows) do print(uqpay.json.encode(r, { money = "string" })) end
elseif args.format == "csv" then
  print(table.concat(cols, ","))
  for _, r in ipairs(rows) do
    local line = {}
    for i, c in ipairs(cols) do line[i] = tostring(r[c] or "") end
    print(table.concat(line, ","))
  end
else
  local fmt = "%-8s %-36s %-4s %18s %14s"
  print(fmt:format("SCOPE", "ACCOUNT", "CUR", "AVAILABLE", "FROZEN"))
  for _, r in ipairs(rows) do
    print(fmt:format(r.scope, r.account_id, r.currency, tostring(r.available_balance), tostring(r.frozen_balance or "")))
  end
end
io.stderr:write(("%d balances\n"):format(#rows))
