-- Every card (master and sub-accounts) with status, mode, balances, cardholder and account.
local ops = require "uqpay.ops"

local p = ops.parser("card-report", "Every card of the master account and its sub-accounts: id, status, mode, " ..
  "currency, available balance, limit, cardholder and account, as a table, CSV or JSON lines.")
p:option("--format", "table, csv or json (json under uqlua --json).", ops.default_format())
  :choices { "table", "csv", "json" }
p:option("--output", "Write to this file instead of standard output.")
p:option("--status", "Only cards with this status (ACTIVE, FROZEN, CANCELLED, ...).")
local args = p:parse(arg)

local accounts = ops.accounts(true)

local rows = {}
for _, a in ipairs(accounts) do
  local opts = a.obo and { on_behalf_of = a.obo } or nil
  for c in uqpay.cards.each({ card_status = args.status }, opts) do
    local ch = type(c.cardholder) == "table" and c.cardholder or {}
    local name = ch.first_name and (ch.first_name .. " " .. (ch.last_name or "")) or nil
    rows[#rows + 1] = { card_id = c.card_id, status = c.card_status, mode = c.mode_type, currency = c.card_currency,
      available_balance = c.available_balance, card_limit = c.card_limit, cardholder = name or c.cardholder_id,
      account = a.name }
  end
end

local fh = io.stdout
if args.output then
  local err
  fh, err = io.open(args.output, "w")
  if not fh then uqpay.errors.raise { kind = "usage", field = "--output", message = "cannot write " .. tostring(err) } end
end
ops.output(rows, { "card_id", "status", "mode", "currency", "available_balance", "card_limit", "cardholder", "account" },
  args.format, fh)
if args.output then fh:close() end
io.stderr:write(string.format("%d cards in %d account(s)\n", #rows, #accounts))
