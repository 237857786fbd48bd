-- Fund a sub-account, issue it a SINGLE card, recharge it, and report.
-- Run against the built-in simulator:   uqlua --sim examples/fund-and-recharge.lua
-- Against the sandbox (credentials in the environment or config file):
--   uqlua examples/fund-and-recharge.lua SUB_ACCOUNT_ID PRODUCT_ID CARDHOLDER_ID
local SUB = arg[1] or "22222222-2222-4222-8222-222222222222"      -- simulator seed: "Ops Team SG"
local PRODUCT = arg[2] or "44444444-4444-4444-8444-444444444441"  -- SINGLE-mode product
local HOLDER = arg[3]

for _, a in ipairs(uqpay.accounts.list()) do
  if a.account_id == SUB then print(("sub-account: %s (%s)"):format(a.account_name, a.account_id)) end
end
local master = uqpay.account().account_id -- the account the credentials belong to

-- 1. Top the sub-account's USD issuing balance up to 2,000.00.
local target = uqpay.money("2000.00")
local have = uqpay.balance("USD", { on_behalf_of = SUB }).available_balance
if have < target then
  local t = uqpay.transfer { source_account_id = master, destination_account_id = SUB, currency = "USD",
                             amount = target - have, remark = "top-up to " .. tostring(target) }
  print(("transfer %s: %s USD, %s"):format(t.transfer_id, tostring(target - have), uqpay.wait(t).transfer_status))
end

-- 2. A cardholder and a SINGLE card funded with 300.00 from that balance.
local opts = { on_behalf_of = SUB }
if not HOLDER then
  local tag = uqpay.uuid():sub(1, 8)
  HOLDER = uqpay.cardholders.create({ first_name = "Demo", last_name = "Holder", email = "demo+" .. tag .. "@example.com",
                                      country_code = "SG", phone_number = "9" .. tostring(tonumber(tag, 16) % 10000000) },
                                    opts).cardholder_id
end
local card = uqpay.cards.create({ card_currency = "USD", cardholder_id = HOLDER, card_product_id = PRODUCT,
                                  card_limit = "300.00" }, opts)
print(("card %s: %s"):format(card.card_id, card.card_status))

-- 3. Recharge it twice, exactly: no float ever reaches the request.
for _, amount in ipairs { "120.10", "0.20" } do
  local order = uqpay.recharge(card.card_id, amount, opts)
  print(("recharge %s USD: %s"):format(amount, uqpay.wait(order, opts).order_status))
end

-- 4. Report.
local c = uqpay.cards.get(card.card_id, opts)
local b = uqpay.balance("USD", opts)
print(("card balance %s USD (expected 420.30), sub-account issuing balance %s USD"):format(
  tostring(c.available_balance), tostring(b.available_balance)))
assert(c.available_balance == uqpay.money("420.30"), "card balance is not exact")
