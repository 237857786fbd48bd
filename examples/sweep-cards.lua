-- Withdraw what is left on SINGLE-mode cards back to the Issuing balance,
-- leaving a float on each if asked.   uqlua --sim examples/sweep-cards.lua [KEEP]
local keep = uqpay.money(arg[1] or "0")
local before = {}
for _, b in ipairs(uqpay.balances()) do before[b.currency] = b.available_balance end

local swept = {}
for card in uqpay.cards.each { card_status = "ACTIVE" } do
  if card.mode_type == "SINGLE" and card.available_balance > keep then
    local amount = card.available_balance - keep
    uqpay.withdraw(card.card_id, amount)
    swept[card.card_currency] = (swept[card.card_currency] or uqpay.money("0")) + amount
    print(("%s  %s %s swept"):format(card.card_id, card.card_currency, tostring(amount)))
  end
end
for _, b in ipairs(uqpay.balances()) do
  local got = swept[b.currency] or uqpay.money("0")
  print(("%s issuing balance %s -> %s (+%s)"):format(b.currency, tostring(before[b.currency]),
    tostring(b.available_balance), tostring(got)))
  assert(b.available_balance == before[b.currency] + got, "balance moved by more than was swept")
end
