-- Withdraw ACTIVE SINGLE cards' balances above --keep back to the Issuing balance.
local ops = require "uqpay.ops"

local p = ops.parser("sweep-cards", "Withdraw from each selected ACTIVE SINGLE card its available balance above " ..
  "--keep back to the Issuing balance. SHARE cards are skipped: their funds never left the Issuing balance.")
p:mutex(p:option("--cards", "CSV file with a card_id column."), p:flag("--all", "Every ACTIVE card."))
p:option("--keep", "Leave this much on each card.", "0")
p:option("--concurrency", "Withdrawals at a time (1-64).", "8"):convert(math.tointeger)
local args = p:parse(arg)
if not args.cards and not args.all then p:error("choose the cards: --cards FILE or --all") end
local keep = require("uqpay.api").check("--keep", "amount0", args.keep)

local cards = {}
if args.all then
  for c in uqpay.cards.each { card_status = "ACTIVE" } do cards[#cards + 1] = c end
else
  local rows = ops.csv_read(args.cards, { columns = { card_id = "uuid!" }, unique = "card_id" })
  local got, errs = uqpay.parallel(rows, function(r) return uqpay.cards.get(r.card_id) end,
    { concurrency = args.concurrency })
  local problems = {}
  for i, r in ipairs(rows) do
    if errs[i] then problems[#problems + 1] = string.format("%s:%d: %s", args.cards, r.line, errs[i].message or
      tostring(errs[i])) end
    cards[i] = got[i]
  end
  if #problems > 0 then
    uqpay.errors.raise { kind = "usage", message = "nothing was sent:\n  " .. table.concat(problems, "\n  ") }
  end
end

local todo = {}
for _, c in ipairs(cards) do
  if c.card_status ~= "ACTIVE" then
    io.stderr:write(string.format("skipped %s: %s\n", c.card_id, c.card_status))
  elseif c.mode_type ~= "SINGLE" then
    io.stderr:write(string.format("skipped %s: a %s card (its funds never left the Issuing balance)\n", c.card_id,
      tostring(c.mode_type)))
  elseif c.available_balance > keep then
    todo[#todo + 1] = { card = c, amount = c.available_balance - keep }
  end
end

ops.finish(ops.apply(todo, function(t)
  local order = uqpay.withdraw(t.card.card_id, t.amount)
  return order, { currency = t.card.card_currency, amount = t.amount }
end, { concurrency = args.concurrency, label = "sweep-cards",
       describe = function(t) return string.format("card %s %s %s", t.card.card_id, t.card.card_currency,
         tostring(t.amount)) end }))
