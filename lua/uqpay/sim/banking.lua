-- The simulator's Banking ("Global Account") rules: balances, balance
-- transactions, transfers between accounts, payouts, quotes and
-- conversions at fixed rates, seeded deposits and beneficiaries. Amounts are
-- exact and go out as strings, as the reference documents.
local core = require "uqpay.core"
local S = require "uqpay.sim.state"
local H = require "uqpay.sim.issuing"

local money = core.money
local iso = S.iso
local need, need_uuid, need_amount, need_currency = H.need, H.need_uuid, H.need_amount, H.need_currency
local bad, own_account, insufficient, copy, filtered = H.bad, H.own_account, H.insufficient, H.copy, H.filtered
local owned, owned_list = H.owned, H.owned_list
local B = {}

-- Mid rates with four decimals, sell -> buy.
local RATES = {
  USD = { SGD = 13500, EUR = 9200, HKD = 78000 },
  SGD = { USD = 7407, EUR = 6815 },
  EUR = { USD = 10870, SGD = 14674 },
  HKD = { USD = 1282 },
}
local QUOTE_VALID_S = 75
B.RATES = RATES

local function balance(st, acct, cur, create)
  st.banking[acct] = st.banking[acct] or {}
  local b = st.banking[acct][cur]
  if not b and create then
    b = { balance_id = core.uuid(), currency = cur, available_balance = money("0"), prepaid_balance = money("0"),
          margin_balance = money("0"), frozen_balance = money("0"), create_time = iso(st.now()),
          last_trade_time = iso(st.now()), balance_status = "ACTIVE" }
    st.banking[acct][cur] = b
  end
  return b
end

-- Moves a Banking balance and leaves a transaction row.
local function move(st, acct, cur, delta, ttype, reference)
  local b = balance(st, acct, cur, true)
  b.available_balance = b.available_balance + delta
  b.last_trade_time = iso(st.now())
  local t = { transaction_id = core.uuid(), balance_id = b.balance_id, account_id = acct,
    transaction_type = ttype, currency = cur, amount = delta:sign() < 0 and -delta or delta,
    credit_debit_type = delta:sign() < 0 and "D" or "C", create_time = iso(st.now()), complete_time = iso(st.now()),
    reference_id = reference, transaction_status = "COMPLETED", transaction_way = "API" }
  st.btxns[#st.btxns + 1] = t
  return t
end

B.move = move

-- amount * rate (four decimals), rounded half up to cents, exactly.
local function convert_amount(amount, rate)
  local minor = (amount:minor() * rate + 5000) // 10000
  return money(string.format("%d.%02d", minor // 100, minor % 100))
end

local function rate(ctx, sell, buy)
  local r = RATES[sell] and RATES[sell][buy]
  if not r then bad(ctx, "unsupported_currency_pair", "no rate for " .. sell .. buy) end
  return r
end

function B.balances(st, ctx, _, q)
  local mine, out, curs = st.banking[ctx.account_id] or {}, {}, {}
  for cur in pairs(mine) do curs[#curs + 1] = cur end
  table.sort(curs)
  for _, cur in ipairs(curs) do out[#out + 1] = copy(mine[cur]) end
  return H.page(ctx, out, q)
end

function B.balance(st, ctx, _, _, cur)
  local b = (st.banking[ctx.account_id] or {})[cur]
  if not b then ctx.fail(400, "invalid_request_error", "balance_not_found", "no " .. cur .. " balance") end
  return 200, copy(b)
end

function B.transactions(st, ctx, _, q)
  return H.page(ctx, owned_list(ctx, st.btxns, nil, function(t)
    return (not q.currency or q.currency == t.currency)
      and (not q.transaction_type or q.transaction_type == "ALL" or q.transaction_type == t.transaction_type)
  end), q)
end

-- ---------- transfers ----------

function B.transfer(st, ctx, body)
  local src = need_uuid(ctx, body, "source_account_id")
  local dst = need_uuid(ctx, body, "target_account_id")
  local cur = need_currency(ctx, body, "currency")
  local amount = need_amount(ctx, body, "amount")
  need(ctx, body, "reason")
  own_account(ctx, st, src, "source_account_id")
  own_account(ctx, st, dst, "target_account_id")
  local sb = balance(st, src, cur)
  if not sb or sb.available_balance < amount then insufficient(ctx, cur) end
  local id = core.uuid()
  move(st, src, cur, -amount, "TRANSFER", id)
  move(st, dst, cur, amount, "TRANSFER", id)
  local t = { transfer_id = id, reference_id = id, short_reference_id = string.format("TR%08d", #st.banking_transfer_order + 1),
    source_account_id = src, target_account_id = dst,
    source_account_name = st.accounts[src].account_name, destination_account_name = st.accounts[dst].account_name,
    transfer_currency = cur, transfer_amount = amount, transfer_status = "completed", reason = body.reason,
    create_time = iso(st.now()), complete_time = iso(st.now()), created_by = ctx.account_id }
  st.banking_transfers[id] = t
  st.banking_transfer_order[#st.banking_transfer_order + 1] = id
  S.applied(st, ctx, "banking_transfer", { transfer_id = id, amount = amount, currency = cur,
    source_account_id = src, destination_account_id = dst })
  return 200, { transfer_id = id, short_reference_id = t.short_reference_id }
end

local function visible_transfer(ctx, t)
  return t.source_account_id == ctx.account_id or t.target_account_id == ctx.account_id or t.created_by == ctx.account_id
end

function B.transfers(st, ctx, _, q)
  return H.page(ctx, filtered(st.banking_transfer_order, st.banking_transfers, function(t)
    return visible_transfer(ctx, t) and (not q.transfer_status or q.transfer_status == t.transfer_status)
      and (not q.currency or q.currency:find(t.transfer_currency, 1, true))
  end), q)
end

function B.get_transfer(st, ctx, _, _, id)
  local t = st.banking_transfers[id]
  if not t or not visible_transfer(ctx, t) then
    ctx.fail(400, "invalid_request_error", "transfer_not_found", "transfer " .. id .. " not found")
  end
  return 200, copy(t)
end

-- ---------- payouts ----------

function B.create_payout(st, ctx, body)
  local cur = need_currency(ctx, body, "currency")
  local amount = need_amount(ctx, body, "amount")
  for _, f in ipairs { "purpose_code", "payout_reference", "fee_paid_by", "payout_date" } do need(ctx, body, f) end
  if body.fee_paid_by ~= "SHARED" and body.fee_paid_by ~= "OURS" then
    bad(ctx, "invalid_parameter", "fee_paid_by must be SHARED or OURS")
  end
  -- a known beneficiary of this account, or one given inline
  if body.beneficiary_id then
    owned(ctx, st.beneficiaries[body.beneficiary_id], "invalid_request_error", "beneficiary_not_found",
      "beneficiary " .. tostring(body.beneficiary_id))
  elseif type(body.beneficiary) ~= "table" then
    bad(ctx, "missing_parameter", "beneficiary_id or beneficiary is required")
  end
  local b = balance(st, ctx.account_id, cur)
  if not b or b.available_balance < amount then insufficient(ctx, cur) end
  local id = core.uuid()
  move(st, ctx.account_id, cur, -amount, "PAYOUT", id)
  local p = { payout_id = id, short_reference_id = string.format("P%08d", #st.payout_order + 1), account_id = ctx.account_id,
    payout_currency = cur, payout_amount = amount, currency = cur, amount = amount, fee_paid_by = body.fee_paid_by,
    fee_amount = money("0"), payout_date = body.payout_date, payout_reference = body.payout_reference,
    purpose_code = body.purpose_code, payout_status = "READY_TO_SEND", beneficiary_id = body.beneficiary_id,
    create_time = iso(st.now()) }
  st.payouts[id] = p
  st.payout_order[#st.payout_order + 1] = id
  S.applied(st, ctx, "payout", { payout_id = id, amount = amount, currency = cur })
  return 200, { payout_id = id, short_reference_id = p.short_reference_id, payout_status = p.payout_status }
end

local function payout_view(p) return copy(p, { account_id = true }) end

function B.payouts(st, ctx, _, q)
  return H.page(ctx, owned_list(ctx, st.payout_order, st.payouts, function(p)
    return not q.payout_status or q.payout_status == p.payout_status
  end), q, payout_view)
end

function B.get_payout(st, ctx, _, _, id)
  return 200, payout_view(owned(ctx, st.payouts[id], "invalid_request_error", "payout_not_found", "payout " .. id))
end

-- ---------- quotes and conversions ----------

-- Exactly one of sell_amount / buy_amount; returns sell, buy, rate.
local function amounts(ctx, body, sell, buy)
  if (body.sell_amount == nil) == (body.buy_amount == nil) then
    bad(ctx, "invalid_parameter", "give exactly one of sell_amount and buy_amount")
  end
  local r = rate(ctx, sell, buy)
  if body.sell_amount ~= nil then
    local s = need_amount(ctx, body, "sell_amount")
    return s, convert_amount(s, r), r
  end
  local b = need_amount(ctx, body, "buy_amount")
  return convert_amount(b, rate(ctx, buy, sell)), b, r
end

function B.quote(st, ctx, body)
  local sell = need_currency(ctx, body, "sell_currency")
  local buy = need_currency(ctx, body, "buy_currency")
  require("uqpay.sim.more").check_date(st, ctx, need(ctx, body, "conversion_date"))
  local ttype = body.transaction_type or "conversion"
  if ttype ~= "conversion" and ttype ~= "payout" then bad(ctx, "invalid_parameter", "transaction_type must be conversion or payout") end
  local s, b, r = amounts(ctx, body, sell, buy)
  local id = core.uuid()
  local q = { quote_id = id, account_id = ctx.account_id, sell_currency = sell, buy_currency = buy, sell_amount = s,
              buy_amount = b, transaction_type = ttype, valid_to = st.now() + QUOTE_VALID_S }
  st.quotes[id] = q
  local function r4(x) return string.format("%d.%04d", x // 10000, x % 10000) end
  return 200, { sell_currency = sell, sell_amount = s, buy_currency = buy, buy_amount = b,
    conversion_date = body.conversion_date,
    quote_price = { currency_pair = sell .. buy, direct_rate = r4(r), inverse_rate = r4(rate(ctx, buy, sell)),
      quote_id = id, validity = { valid_from = iso(st.now()), valid_to = iso(q.valid_to) } } }
end

function B.convert(st, ctx, body)
  local qid = need(ctx, body, "quote_id")
  local sell = need_currency(ctx, body, "sell_currency")
  local buy = need_currency(ctx, body, "buy_currency")
  require("uqpay.sim.more").check_date(st, ctx, need(ctx, body, "conversion_date"))
  local q = owned(ctx, st.quotes[qid], "invalid_request_error", "quote_not_found", "quote " .. tostring(qid))
  if st.now() > q.valid_to then bad(ctx, "quote_expired", "quote " .. qid .. " has expired") end
  if q.transaction_type ~= "conversion" then bad(ctx, "invalid_quote", "quote was made for a " .. q.transaction_type) end
  local s, b = amounts(ctx, body, sell, buy)
  if sell ~= q.sell_currency or buy ~= q.buy_currency or s ~= q.sell_amount then
    bad(ctx, "quote_mismatch", "the conversion does not match quote " .. qid)
  end
  local sb = balance(st, ctx.account_id, sell)
  if not sb or sb.available_balance < s then insufficient(ctx, sell) end
  local id = core.uuid()
  move(st, ctx.account_id, sell, -s, "CONVERSION", id)
  move(st, ctx.account_id, buy, b, "CONVERSION", id)
  st.quotes[qid] = nil
  S.applied(st, ctx, "conversion", { conversion_id = id, sell_amount = s, sell_currency = sell, buy_amount = b,
    buy_currency = buy })
  st.conversions = st.conversions or {}
  st.conversions_order = st.conversions_order or {}
  st.conversions[id] = { conversion_id = id, short_reference_id = string.format("C%08d", st.seq), account_id = ctx.account_id,
    sell_currency = sell, buy_currency = buy, sell_amount = s, buy_amount = b,
    client_rate = string.format("%d.%04d", rate(ctx, sell, buy) // 10000, rate(ctx, sell, buy) % 10000),
    conversion_status = "TRADE_SETTLED", create_time = iso(st.now()), settle_time = iso(st.now()),
    account_name = st.accounts[ctx.account_id].account_name, creator = "api" }
  st.conversions_order[#st.conversions_order + 1] = id
  return 200, { conversion_id = id, short_reference_id = string.format("C%08d", st.seq), sell_currency = sell,
    sell_amount = s, buy_currency = buy, buy_amount = b, currency_pair = sell .. buy, conversion_status = "COMPLETED",
    create_time = iso(st.now()) }
end

-- ---------- deposits and beneficiaries (seeded) ----------

local function view(x) return copy(x, { account_id = true }) end

function B.deposits(st, ctx, _, q)
  return H.page(ctx, owned_list(ctx, st.deposit_order, st.deposits, function(d)
    return not q.status or q.status == d.deposit_status
  end), q, view)
end

function B.get_deposit(st, ctx, _, _, id)
  return 200, view(owned(ctx, st.deposits[id], "invalid_request_error", "deposit_not_found", "deposit " .. id))
end

function B.beneficiaries(st, ctx, _, q)
  return H.page(ctx, owned_list(ctx, st.beneficiary_order, st.beneficiaries, function(b) return not b.deleted end), q, view)
end

function B.get_beneficiary(st, ctx, _, _, id)
  local b = st.beneficiaries[id]
  if b and b.deleted then b = nil end
  return 200, view(owned(ctx, b, "invalid_request_error", "beneficiary_not_found", "beneficiary " .. id))
end

return B
