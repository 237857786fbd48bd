-- Recharge many cards from a CSV (card_id,amount[,currency]), in parallel, journaled.
local ops = require "uqpay.ops"

local p = ops.parser("bulk-recharge", "Recharge the cards of a CSV file (columns card_id,amount, and optionally " ..
  "currency, checked against each card's). Every line, and every card (it must exist and be ACTIVE), is checked " ..
  "before anything is sent; an interrupted run resumes where it stopped when run again. A SHARE card's recharge " ..
  "moves no funds (it raises the card's available balance): the summary counts it apart.")
p:argument("file", "CSV file: card_id,amount[,currency]")
p:option("--concurrency", "Recharges at a time (1-64).", "8"):convert(math.tointeger)
p:flag("--allow-duplicates", "Let a card appear on several lines (each line is one recharge).")
local args = p:parse(arg)

local rows = ops.csv_read(args.file, {
  columns = { card_id = "uuid!", amount = "amount!", currency = "currency" }, unique = "card_id",
  allow_duplicates = args.allow_duplicates, duplicates_hint = " (--allow-duplicates to recharge it twice)" })

-- Every card is read before any write: it must exist, be ACTIVE and, where
-- the line gives a currency, be in that currency. A resumed run does not
-- ask for ACTIVE: a card frozen since its recharge was applied must not
-- stop the run from settling the rest (a card not active now fails on its
-- own line, and the lines already applied are answered from the journal).
local resumed = require("uqpay.run").resumed()
local cards = ops.check_cards(rows, args.file, function(r, c)
  if c.card_status ~= "ACTIVE" and not resumed then return "it is " .. tostring(c.card_status) .. ", not ACTIVE" end
  if r.currency and c.card_currency ~= r.currency then
    return "it is a " .. tostring(c.card_currency) .. " card, the line says " .. r.currency
  end
end, args.concurrency)

ops.finish(ops.apply(rows, function(r)
  local order = uqpay.recharge(r.card_id, r.amount)
  local c = cards[r.card_id]
  -- a SHARE card's recharge raises its available balance and moves no funds
  -- (the card draws on the Issuing balance when it spends)
  return order, { currency = order.card_currency or c.card_currency, amount = r.amount, funds = c.mode_type ~= "SHARE" }
end, { concurrency = args.concurrency, label = "bulk-recharge",
       describe = function(r) return string.format("line %d card %s %s", r.line, r.card_id, tostring(r.amount)) end }))
