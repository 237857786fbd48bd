-- Top sub-accounts up to target Issuing balances with transfers from the master account.
local ops = require "uqpay.ops"
local money = uqpay.money

local p = ops.parser("fund-subaccounts", "Transfer from the master account to each sub-account the difference " ..
  "up to its target Issuing balance. Accounts at or above their target are left alone; nothing is sent when " ..
  "the master balance cannot cover the total.")
p:option("--targets", "CSV file: account_id,currency,target.")
p:option("--target", "One target for every chosen account (with --currency).")
p:option("--currency", "The currency of --target (USD or SGD).")
p:option("--account", "A sub-account to fund with --target (repeatable; default: every sub-account).")
  :count("*")
p:option("--concurrency", "Transfers at a time (1-64).", "8"):convert(math.tointeger)
local args = p:parse(arg)
local api = require "uqpay.api"

local targets = {}
if args.targets then
  if args.target or args.currency or #args.account > 0 then p:error("--targets FILE goes alone") end
  targets = ops.csv_read(args.targets, { columns = { account_id = "uuid!", currency = "currency!", target = "amount0!" },
    unique = { "account_id", "currency" } })
elseif args.target then
  if not args.currency then p:error("--target needs --currency") end
  local cur = api.check("--currency", "currency", args.currency)
  local target = api.check("--target", "amount0", args.target)
  local ids = {}
  for _, a in ipairs(args.account) do ids[#ids + 1] = api.check("--account", "uuid", a) end
  if #ids == 0 then for a in uqpay.accounts.each() do ids[#ids + 1] = a.account_id end end
  for _, id in ipairs(ids) do targets[#targets + 1] = { account_id = id, currency = cur, target = target } end
else
  p:error("give the targets: --targets FILE, or --target AMOUNT --currency CUR")
end

local master = uqpay.account().account_id
local todo, need, problems = {}, {}, {}
-- the master account is no target: its balance cannot be read on behalf of
-- it (the API knows no such sub-account), so it is set aside before the reads
local subs = {}
for _, t in ipairs(targets) do
  if t.account_id == master then
    problems[#problems + 1] = string.format("account %s is the master account: the transfers come from it",
      t.account_id)
  else
    subs[#subs + 1] = t
  end
end
-- how far each account is from its target (reads only)
local now, errs = uqpay.parallel(subs, function(t)
  return uqpay.balance(t.currency, { on_behalf_of = t.account_id })
end, { concurrency = args.concurrency })
for i, t in ipairs(subs) do
  local b = now[i]
  if not b then
    problems[#problems + 1] = string.format("account %s: cannot read its %s balance: %s", t.account_id, t.currency,
      tostring(errs[i] and errs[i].message or errs[i]))
  elseif b.available_balance < t.target then
    local diff = t.target - b.available_balance
    todo[#todo + 1] = { account_id = t.account_id, currency = t.currency, amount = diff, from = b.available_balance,
                        target = t.target }
    need[t.currency] = (need[t.currency] or money("0")) + diff
  else
    io.stderr:write(string.format("left alone %s: %s %s is at or above %s\n", t.account_id, t.currency,
      tostring(b.available_balance), tostring(t.target)))
  end
end
for cur, total in pairs(need) do
  local have = uqpay.balance(cur).available_balance
  if have < total then
    problems[#problems + 1] = string.format("the master %s balance %s cannot cover %s", cur, tostring(have),
      tostring(total))
  end
end
if #problems > 0 then
  uqpay.errors.raise { kind = "usage", message = "nothing was sent:\n  " .. table.concat(problems, "\n  ") }
end

ops.finish(ops.apply(todo, function(t)
  local res = uqpay.transfer { source_account_id = master, destination_account_id = t.account_id,
                               currency = t.currency, amount = t.amount, remark = "fund-subaccounts" }
  return res, { currency = t.currency, amount = t.amount }
end, { concurrency = args.concurrency, label = "fund-subaccounts",
       describe = function(t) return string.format("account %s %s %s -> %s (+%s)", t.account_id, t.currency,
         tostring(t.from), tostring(t.target), tostring(t.amount)) end }))
