-- Recharge many cards from a CSV (card_id,amount[,currency]), in parallel, journaled.
local ops = require "uqpay.ops"

local p = ops.parser("bulk-recharge", "Recharge the cards of a CSV file (columns card_id,amount, and optionally " ..
  "currency, checked against each card's). Every line is checked before anything is sent; an interrupted run " ..
  "resumes where it stopped when run again.")
p:argument("file", "CSV file: card_id,amount[,currency]")
p:option("--concurrency", "Recharges at a time (1-64).", "8"):convert(math.tointeger)
p:flag("--allow-duplicates", "Let a card appear on several lines (each line is one recharge).")
local args = p:parse(arg)

local rows = ops.csv_read(args.file, {
  columns = { card_id = "uuid!", amount = "amount!", currency = "currency" }, unique = "card_id",
  allow_duplicates = args.allow_duplicates, duplicates_hint = " (--allow-duplicates to recharge it twice)" })

-- A currency column must be each card's: checked with reads, before any write.
local cards, problems = {}, {}
local checks = {}
for _, r in ipairs(rows) do if r.currency and not cards[r.card_id] then cards[r.card_id] = true; checks[#checks + 1] = r end end
local got, errs = uqpay.parallel(checks, function(r) return uqpay.cards.get(r.card_id) end,
  { concurrency = args.concurrency })
for i, r in ipairs(checks) do cards[r.card_id] = got[i] or errs[i] end
for _, r in ipairs(rows) do
  local c = r.currency and cards[r.card_id]
  if c and uqpay.errors.is(c) then
    problems[#problems + 1] = string.format("%s:%d: card %s: %s", args.file, r.line, r.card_id, c.message)
  elseif c and c.card_currency ~= r.currency then
    problems[#problems + 1] = string.format("%s:%d: card %s is a %s card, the line says %s", args.file, r.line,
      r.card_id, c.card_currency, r.currency)
  end
end
if #problems > 0 then
  uqpay.errors.raise { kind = "usage", message = string.format("%d problem(s) in %s, nothing was sent:\n  %s",
    #problems, args.file, table.concat(problems, "\n  ")) }
end

ops.finish(ops.apply(rows, function(r)
  local order = uqpay.recharge(r.card_id, r.amount)
  return order, { currency = order.card_currency or r.currency or "?", amount = r.amount }
end, { concurrency = args.concurrency, label = "bulk-recharge",
       describe = function(r) return string.format("line %d card %s %s", r.line, r.card_id, tostring(r.amount)) end }))
