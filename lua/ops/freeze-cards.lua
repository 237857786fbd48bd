-- Freeze, unfreeze or cancel cards by list, status or cardholder.
local ops = require "uqpay.ops"
local core = require "uqpay.core"

local p = ops.parser("freeze-cards", "Freeze, unfreeze or cancel cards chosen by a CSV file (column card_id), a " ..
  "status or a cardholder. Cancelling is for good: it asks for confirmation on a terminal unless --yes.")
p:argument("action", "freeze, unfreeze or cancel"):choices { "freeze", "unfreeze", "cancel" }
p:mutex(p:option("--cards", "CSV file with a card_id column."),
        p:option("--status", "Every card with this status (ACTIVE, FROZEN, ...)."),
        p:option("--cardholder", "Every card of this cardholder."))
p:option("--reason", "Recorded with each change.")
p:flag("--yes", "Cancel without asking.")
p:option("--concurrency", "Changes at a time (1-64).", "8"):convert(math.tointeger)
local args = p:parse(arg)
if not (args.cards or args.status or args.cardholder) then
  p:error("choose the cards: --cards FILE, --status STATUS or --cardholder ID")
end
-- the reason as the endpoint table declares it (at most 100 characters), before anything is read or sent
if args.reason ~= nil then require("uqpay.api").check_field("cards.freeze", "update_reason", args.reason, "--reason") end

local TARGET = { freeze = "FROZEN", unfreeze = "ACTIVE", cancel = "CANCELLED" }
local cards = {}
if args.cards then
  -- every card is read first: an unknown one is a usage error naming it (exit 2, nothing sent)
  local rows = ops.csv_read(args.cards, { columns = { card_id = "uuid!" }, unique = "card_id" })
  local got = ops.check_cards(rows, args.cards, nil, args.concurrency)
  for _, r in ipairs(rows) do cards[#cards + 1] = got[r.card_id] end
else
  local filter = { card_status = args.status, cardholder_id = args.cardholder }
  for c in uqpay.cards.each(filter) do cards[#cards + 1] = c end
end

local todo = {}
for _, c in ipairs(cards) do
  if c.card_status == TARGET[args.action] then
    io.stderr:write(string.format("skipped %s: already %s\n", c.card_id, c.card_status))
  elseif c.card_status == "CANCELLED" then
    io.stderr:write(string.format("skipped %s: CANCELLED for good\n", c.card_id))
  else
    todo[#todo + 1] = c
  end
end

if args.action == "cancel" and #todo > 0 and not (args.yes or uqpay.config().yes) and not uqpay.config().dry_run then
  if not (core.isatty(0) and core.isatty(2)) then
    uqpay.errors.raise { kind = "config", message = "cancelling " .. #todo .. " card(s) is for good: run it on a " ..
      "terminal to confirm, or pass --yes" }
  end
  io.stderr:write(string.format("Cancel %d card(s) for good? Type 'yes' to go on: ", #todo))
  if io.read("l") ~= "yes" then uqpay.errors.raise { kind = "interrupted", message = "not confirmed" } end
end

ops.finish(ops.apply(todo, function(c)
  return uqpay.cards[args.action](c.card_id, args.reason)
end, { concurrency = args.concurrency, label = "freeze-cards " .. args.action,
       describe = function(c) return "card " .. c.card_id end }))
