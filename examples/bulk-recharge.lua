-- Recharge many cards from a CSV (card_id,amount), eight at a time.
--   uqlua --sim examples/bulk-recharge.lua examples/cards.csv
-- Every line is checked before anything is sent; each recharge is journaled,
-- so if the run dies, running the same command again finishes it without
-- recharging any card twice.
local path = assert(arg[1], "usage: bulk-recharge.lua cards.csv")

local rows, problems = {}, {}
local n = 0
for line in io.lines(path) do
  n = n + 1
  if n > 1 and line:match("%S") then
    local card, amount = line:match("^%s*([^,%s]+)%s*,%s*([^,%s]+)%s*$")
    if not card then
      problems[#problems + 1] = ("line %d: expected card_id,amount"):format(n)
    else
      -- validate now, before any request: a bad line stops the whole run
      local ok, err = pcall(uqpay.money, amount, "USD")
      if not ok then problems[#problems + 1] = ("line %d: %s"):format(n, err.message) end
      if not card:match("^%x+%-%x+%-%x+%-%x+%-%x+$") then
        problems[#problems + 1] = ("line %d: card_id %q is not a UUID"):format(n, card)
      end
      rows[#rows + 1] = { line = n, card = card, amount = amount }
    end
  end
end
if #problems > 0 then
  io.stderr:write(table.concat(problems, "\n"), "\n", "nothing was sent\n")
  os.exit(2)
end

local results, errors = uqpay.parallel(rows, function(row)
  return uqpay.recharge(row.card, row.amount)
end, { concurrency = 8 })

local totals, failed = {}, 0
for i, row in ipairs(rows) do
  if errors[i] then
    failed = failed + 1
    io.stderr:write(("line %d: %s\n"):format(row.line, tostring(errors[i])))
  else
    local cur = results[i].card_currency or "?"
    totals[cur] = (totals[cur] or uqpay.money("0")) + results[i].amount
  end
end
local curs = {}
for cur in pairs(totals) do curs[#curs + 1] = cur end
table.sort(curs)
for _, cur in ipairs(curs) do print(("recharged %s %s"):format(cur, tostring(totals[cur]))) end
print(("%d recharged, %d failed"):format(#rows - failed, failed))
os.exit(failed == 0 and 0 or 1)
