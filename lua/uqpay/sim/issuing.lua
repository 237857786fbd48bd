-- The simulator's business rules for Issuing and Banking endpoints.
-- Each handler gets (st, ctx, body, params) and returns (status, table[,
-- webhooks]) or raises through ctx.fail(status, type, code, message).
local core = require "uqpay.core"
local S = require "uqpay.sim.state"
local CSV = require "uqpay.csv"

local money = core.money
local iso = S.iso
local H = {}

local UUID = require("uqpay.config").UUID
H.UUID = UUID

local function bad(ctx, code, msg) ctx.fail(400, "invalid_request_error", code, msg) end

local function need(ctx, body, field)
  local v = body[field]
  if v == nil or v == core.json_decode("null") or v == "" then
    bad(ctx, "missing_parameter", field .. " is required")
  end
  return v
end

local function need_uuid(ctx, body, field)
  local v = need(ctx, body, field)
  if type(v) ~= "string" or not v:match(UUID) then
    bad(ctx, "invalid_parameter", field .. " must be a UUID")
  end
  return v
end

-- A positive amount with at most two decimals, from a JSON number or string.
local function need_amount(ctx, body, field, allow_zero)
  local v = need(ctx, body, field)
  if not money.is(v) then bad(ctx, "invalid_amount", field .. " must be a number") end
  local ok = pcall(v.minor, v)
  if not ok then bad(ctx, "invalid_amount", field .. " precision is limited to two decimal places") end
  if v:sign() < 0 or (v:sign() == 0 and not allow_zero) then
    bad(ctx, "invalid_amount", field .. " must be greater than 0")
  end
  return v
end

local function need_currency(ctx, body, field, allowed)
  local v = need(ctx, body, field)
  if type(v) ~= "string" or not v:match("^%u%u%u$") then bad(ctx, "invalid_currency", field .. " must be an ISO 4217 code") end
  if allowed and not allowed[v] then bad(ctx, "invalid_currency", field .. " " .. v .. " is not supported") end
  return v
end

local ISSUING_CURRENCIES = { USD = true, SGD = true }

local function own_account(ctx, st, id, field)
  local a = st.accounts[id]
  if not a then ctx.fail(400, "account_error", "account_not_found", field .. " " .. id .. " not found") end
  return a
end

local function insufficient(ctx, what)
  ctx.fail(400, "account_error", "insufficient_balance", "insufficient " .. what .. " balance")
end

-- Pagination as the reference documents: page_size 10..100, page_number >= 1.
function H.page(ctx, items, q, view)
  local size = tonumber(q.page_size or "10")
  local number = tonumber(q.page_number or "1")
  if not size or size ~= math.floor(size) or size < 10 or size > 100 then
    bad(ctx, "invalid_page_size", "page_size must be between 10 and 100")
  end
  if not number or number ~= math.floor(number) or number < 1 then
    bad(ctx, "invalid_page_number", "page_number must be >= 1")
  end
  size, number = math.tointeger(size), math.tointeger(number)
  local data = core.json_decode("[]")
  for i = (number - 1) * size + 1, math.min(#items, number * size) do
    data[#data + 1] = view and view(items[i]) or items[i]
  end
  return 200, { total_items = #items, total_pages = math.max(1, (#items + size - 1) // size), data = data }
end

local function filtered(list, lookup, pred)
  local out = {}
  for _, id in ipairs(list) do
    local v = lookup and lookup[id] or id
    if pred(v) then out[#out + 1] = v end
  end
  return out
end

local function copy(t, drop)
  local c = {}
  for k, v in pairs(t) do if not (drop and drop[k]) then c[k] = v end end
  return c
end

-- The item, if it belongs to the calling account; else a 400 naming it
-- ("<what> not found", or the message given).
local function owned(ctx, item, etype, code, what, message)
  if not item or item.account_id ~= ctx.account_id then ctx.fail(400, etype, code, message or (what .. " not found")) end
  return item
end

-- The items of order/lookup that belong to the calling account and pass pred.
local function owned_list(ctx, order, lookup, pred)
  return filtered(order, lookup, function(x) return x.account_id == ctx.account_id and (not pred or pred(x)) end)
end

-- ---------- accounts ----------

function H.get_account(st, ctx, _, _, id)
  local a = st.accounts[id]
  -- the master sees itself and its sub-accounts; a sub-account itself only
  if not a or (id ~= ctx.account_id and ctx.account_id ~= st.master_id) then
    ctx.fail(400, "account_error", "account_not_found", "account " .. id .. " not found")
  end
  return 200, copy(a)
end

function H.list_accounts(st, ctx, _, q)
  local subs = {}
  for _, id in ipairs(st.account_order) do
    local a = st.accounts[id]
    if not a.master then subs[#subs + 1] = copy(a, { master = true }) end
  end
  return H.page(ctx, subs, q)
end

-- ---------- issuing balances ----------

local function balance_view(b) return copy(b) end

function H.list_balances(st, ctx, _, q)
  local out = {}
  local mine = st.issuing[ctx.account_id] or {}
  local curs = {}
  for cur in pairs(mine) do curs[#curs + 1] = cur end
  table.sort(curs)
  for _, cur in ipairs(curs) do
    if not q.currency or q.currency == cur then out[#out + 1] = balance_view(mine[cur]) end
  end
  return H.page(ctx, out, q)
end

function H.retrieve_balance(st, ctx, body)
  local cur = need_currency(ctx, body, "currency")
  local b = S.balance(st, ctx.account_id, cur)
  if not b then ctx.fail(400, "account_error", "balance_not_found", "no " .. cur .. " issuing balance") end
  return 200, balance_view(b)
end

function H.list_balance_transactions(st, ctx, _, q)
  local out = owned_list(ctx, S.itxn_rows(st), nil, function(t)
    return (not q.currency or q.currency == t.currency)
      and (not q.transaction_type or q.transaction_type == t.transaction_type)
  end)
  return H.page(ctx, out, q)
end

-- ---------- issuing transfers ----------

function H.create_transfer(st, ctx, body)
  local src = need_uuid(ctx, body, "source_account_id")
  local dst = need_uuid(ctx, body, "destination_account_id")
  local cur = need_currency(ctx, body, "currency", ISSUING_CURRENCIES)
  local amount = need_amount(ctx, body, "amount")
  own_account(ctx, st, src, "source_account_id")
  own_account(ctx, st, dst, "destination_account_id")
  if src == dst then bad(ctx, "invalid_parameter", "source and destination accounts must differ") end
  local sb = S.balance(st, src, cur)
  if not sb or sb.available_balance < amount then insufficient(ctx, cur .. " issuing") end
  local id = core.uuid()
  S.move(st, src, cur, -amount, "TRANSFER_OUT", "Transfer to " .. dst)
  S.move(st, dst, cur, amount, "TRANSFER_IN", "Transfer from " .. src)
  local t = {
    transfer_id = id, reference_id = string.format("T%s-%06d", os.date("!%y%m%d", math.floor(st.now())), st.seq + 1),
    source_account_id = src, destination_account_id = dst, amount = amount, fee_amount = money("0"),
    currency = cur, transfer_status = "completed", create_time = iso(st.now()), complete_time = iso(st.now()),
    creator_id = ctx.account_id, remark = body.remark,
  }
  st.transfers[id] = t
  S.applied(st, ctx, "issuing_transfer", { transfer_id = id, amount = amount, currency = cur,
    source_account_id = src, destination_account_id = dst })
  return 200, { transfer_id = id, short_transaction_id = t.reference_id },
    { { type = "issuing.transfer.status_changed", source_id = id, data = copy(t) } }
end

function H.get_transfer(st, ctx, _, _, id)
  local t = st.transfers[id]
  if not t or (t.source_account_id ~= ctx.account_id and t.destination_account_id ~= ctx.account_id
               and t.creator_id ~= ctx.account_id) then
    ctx.fail(400, "account_error", "transfer_not_found", "transfer " .. id .. " not found")
  end
  return 200, copy(t)
end

-- ---------- products and cardholders ----------

function H.list_products(st, ctx, _, q)
  return H.page(ctx, filtered(st.product_order, st.products, function() return true end), q)
end

local function cardholder(st, ctx, id)
  return owned(ctx, st.cardholders[id], "cardholder_error", "cardholder_not_found", "cardholder " .. tostring(id))
end

local function ch_view(ch) return copy(ch, { account_id = true }) end

function H.create_cardholder(st, ctx, body)
  for _, f in ipairs { "first_name", "last_name", "email", "country_code", "phone_number" } do need(ctx, body, f) end
  for _, f in ipairs { "first_name", "last_name" } do
    local v = body[f]
    if type(v) ~= "string" or #v > 40 or not v:match("^[%a ]+$") then
      bad(ctx, "invalid_parameter", f .. " must be 1-40 letters and spaces")
    end
  end
  for _, id in ipairs(st.cardholder_order) do
    local o = st.cardholders[id]
    if o.account_id == ctx.account_id and (o.email == body.email or o.phone_number == body.phone_number) then
      ctx.fail(400, "cardholder_error", "cardholder_duplicate", "email and phone_number must be unique within the account")
    end
  end
  local ch = copy(body)
  ch.cardholder_id, ch.account_id, ch.cardholder_status = core.uuid(), ctx.account_id, "SUCCESS"
  ch.create_time, ch.number_of_cards = iso(st.now()), 0
  st.cardholders[ch.cardholder_id] = ch
  st.cardholder_order[#st.cardholder_order + 1] = ch.cardholder_id
  S.applied(st, ctx, "create_cardholder", { cardholder_id = ch.cardholder_id })
  return 200, { cardholder_id = ch.cardholder_id, cardholder_status = "SUCCESS" }
end

function H.list_cardholders(st, ctx, _, q)
  return H.page(ctx, owned_list(ctx, st.cardholder_order, st.cardholders, function(ch)
    return not q.cardholder_status or q.cardholder_status == ch.cardholder_status
  end), q)
end

function H.get_cardholder(st, ctx, _, _, id) return 200, ch_view(cardholder(st, ctx, id)) end

function H.update_cardholder(st, ctx, body, _, id)
  local ch = cardholder(st, ctx, id)
  for k in pairs(body) do
    if k == "first_name" or k == "last_name" then bad(ctx, "invalid_parameter", k .. " cannot be updated") end
  end
  for k, v in pairs(body) do ch[k] = v end
  S.applied(st, ctx, "update_cardholder", { cardholder_id = id })
  return 200, { cardholder_id = id, cardholder_status = ch.cardholder_status }
end

-- ---------- cards ----------

local function card_of(st, ctx, id)
  -- the reference's own wording
  return owned(ctx, st.cards[id], "card_error", "card_not_found", nil, "card not found or deactivated")
end

-- what the simulator keeps about a card but the API never shows
local CARD_PRIVATE = { account_id = true, activation_code = true, secure = true, assign_order_id = true,
  pin_hash = true }

local function card_view(st, c)
  local v = copy(c, CARD_PRIVATE)
  local ch = st.cardholders[c.cardholder_id]
  v.cardholder = ch and { cardholder_id = ch.cardholder_id, cardholder_status = ch.cardholder_status,
    email = ch.email, first_name = ch.first_name, last_name = ch.last_name, create_time = ch.create_time } or nil
  return v
end

local new_order = S.new_order

local function card_event(c, event, extra)
  local d = { card_id = c.card_id, card_status = c.card_status, card_currency = c.card_currency,
              card_available_balance = tostring(c.available_balance), update_time = extra.update_time }
  for k, v in pairs(extra) do d[k] = v end
  return { type = event, source_id = extra.card_order_id or c.card_id, data = d }
end

-- A recharge's or withdrawal's event, made only when webhooks are on.
local function order_events(ctx, c, event, amount, o)
  return ctx.webhooks and { card_event(c, event, { amount = tostring(amount), order_status = "SUCCESS",
    complete_time = o.complete_time, update_time = o.update_time, card_order_id = o.card_order_id }) } or nil
end

local LIMIT_BINS = { ["527735"] = true, ["555071"] = true, ["555243"] = true }

function H.create_card(st, ctx, body)
  local cur = need_currency(ctx, body, "card_currency", ISSUING_CURRENCIES)
  local ch = cardholder(st, ctx, need_uuid(ctx, body, "cardholder_id"))
  local pid = need_uuid(ctx, body, "card_product_id")
  local prod = st.products[pid]
  if not prod then ctx.fail(400, "account_error", "product_not_found", "card_product_id " .. pid .. " not found") end
  -- card_limit is optional (0) except for the BINs the reference names
  local limit = money("0")
  if body.card_limit ~= nil then limit = need_amount(ctx, body, "card_limit", true) end
  -- the reference names 6-digit BINs; a product's card_bin may be the 8-digit form
  if LIMIT_BINS[tostring(prod.card_bin):sub(1, 6)] and limit:sign() == 0 then
    bad(ctx, "invalid_amount", "card_limit is required (>= 0.01) for BIN " .. prod.card_bin)
  end
  if prod.mode_type == "SINGLE" then
    local b = S.balance(st, ctx.account_id, cur)
    if not b or b.available_balance < limit then insufficient(ctx, cur .. " issuing") end
  end
  local id = core.uuid()
  local c = {
    card_id = id, account_id = ctx.account_id, cardholder_id = ch.cardholder_id, card_product_id = pid,
    card_currency = cur, card_limit = limit, available_balance = limit, card_status = "ACTIVE",
    mode_type = prod.mode_type, card_bin = prod.card_bin, card_scheme = prod.card_scheme, form_factor = "VIRTUAL",
    card_number = string.format("************%04d", (#st.card_order * 7919) % 10000), metadata = body.metadata or {},
    spending_controls = body.spending_controls, risk_controls = body.risk_controls, create_time = iso(st.now()),
    consumed_amount = money("0"),
  }
  if prod.mode_type == "SINGLE" then
    S.move(st, ctx.account_id, cur, -limit, "CARD_RECHARGE", "Card creation funding " .. id)
  end
  st.cards[id] = c
  st.card_order[#st.card_order + 1] = id
  ch.number_of_cards = (ch.number_of_cards or 0) + 1
  local o = new_order(st, c, "CARD_CREATE", limit)
  S.applied(st, ctx, "create_card", { card_id = id, amount = limit, currency = cur, mode_type = c.mode_type })
  return 200, { card_id = id, card_order_id = o.card_order_id, create_time = c.create_time, card_status = "ACTIVE",
                order_status = "SUCCESS", cardholder_status = ch.cardholder_status },
    { card_event(c, "card.create.succeeded", { card_order_id = o.card_order_id, update_time = o.update_time }) }
end

function H.list_cards(st, ctx, _, q)
  return H.page(ctx, owned_list(ctx, st.card_order, st.cards, function(c)
    return (not q.card_status or q.card_status == c.card_status)
      and (not q.cardholder_id or q.cardholder_id == c.cardholder_id)
      and (not q.card_number or c.card_number:sub(-4) == q.card_number:sub(-4))
  end), q, function(c) return card_view(st, c) end)
end

function H.get_card(st, ctx, _, _, id) return 200, card_view(st, card_of(st, ctx, id)) end

function H.update_card(st, ctx, body, _, id)
  local c = card_of(st, ctx, id)
  if c.card_status == "CANCELLED" then ctx.fail(400, "card_error", "card_not_active", "card is cancelled") end
  if body.card_limit ~= nil then
    if c.mode_type == "SINGLE" then
      bad(ctx, "invalid_parameter", "card_limit cannot be changed for a SINGLE mode card")
    end
    local limit = need_amount(ctx, body, "card_limit", true)
    c.available_balance = c.available_balance + (limit - c.card_limit)
    c.card_limit = limit
  end
  for _, k in ipairs { "metadata", "spending_controls", "risk_controls", "no_pin_payment_amount" } do
    if body[k] ~= nil then c[k] = body[k] end
  end
  local o = new_order(st, c, "CARD_UPDATE", nil)
  S.applied(st, ctx, "update_card", { card_id = id })
  return 200, { card_id = id, card_order_id = o.card_order_id, card_status = c.card_status, order_status = "SUCCESS" }
end

local TRANSITIONS = { FROZEN = { ACTIVE = true }, ACTIVE = { FROZEN = true }, CANCELLED = { ACTIVE = true, FROZEN = true } }

function H.card_status(st, ctx, body, _, id)
  local c = card_of(st, ctx, id)
  local want = need(ctx, body, "card_status")
  if not TRANSITIONS[want] then bad(ctx, "invalid_parameter", "card_status must be ACTIVE, FROZEN or CANCELLED") end
  if body.update_reason and #tostring(body.update_reason) > 100 then
    bad(ctx, "invalid_parameter", "update_reason must be at most 100 characters")
  end
  if not TRANSITIONS[want][c.card_status] then
    ctx.fail(400, "card_error", "invalid_card_status", "cannot change card status from " .. c.card_status .. " to " .. want)
  end
  local refund
  if want == "CANCELLED" and c.mode_type == "SINGLE" and c.available_balance:sign() > 0 then
    refund = c.available_balance
    S.move(st, c.account_id, c.card_currency, refund, "CARD_WITHDRAW", "Card cancellation refund " .. id)
    c.available_balance = money("0")
  end
  c.card_status, c.update_reason = want, body.update_reason
  local o = new_order(st, c, "CARD_UPDATE", nil)
  S.applied(st, ctx, "card_status", { card_id = id, card_status = want, refund = refund, currency = c.card_currency })
  return 200, { card_id = id, card_order_id = o.card_order_id, order_status = "SUCCESS", update_reason = body.update_reason },
    { card_event(c, "card.status.update.succeeded", { update_time = o.update_time, update_reason = body.update_reason }) }
end

local function need_active(ctx, c)
  if c.card_status ~= "ACTIVE" then
    ctx.fail(400, "card_error", "card_not_active", "card is " .. c.card_status .. ", not ACTIVE")
  end
end

-- SINGLE moves funds between issuing balance and card; SHARE only changes
-- the card's available balance.
function H.recharge(st, ctx, body, _, id)
  local c = card_of(st, ctx, id)
  local amount = need_amount(ctx, body, "amount")
  need_active(ctx, c)
  if c.mode_type == "SINGLE" then
    local b = S.balance(st, c.account_id, c.card_currency)
    if not b or b.available_balance < amount then insufficient(ctx, c.card_currency .. " issuing") end
  end
  c.available_balance = c.available_balance + amount
  local o, text = new_order(st, c, "CARD_RECHARGE", amount)
  -- the balance row is the order's (S.itxn_rows)
  if c.mode_type == "SINGLE" then S.move(st, c.account_id, c.card_currency, -amount, nil, nil, o.card_order_id) end
  S.applied(st, ctx, "recharge", { card_id = id, amount = amount, currency = c.card_currency, mode_type = c.mode_type,
    card_order_id = o.card_order_id })
  -- the order's own text is the reply
  return 200, text, order_events(ctx, c, "card.recharge.succeeded", amount, o)
end

function H.withdraw(st, ctx, body, _, id)
  local c = card_of(st, ctx, id)
  local amount = need_amount(ctx, body, "amount")
  need_active(ctx, c)
  if c.available_balance < amount then insufficient(ctx, "card") end
  c.available_balance = c.available_balance - amount
  local o, text = new_order(st, c, "CARD_WITHDRAW", amount)
  if c.mode_type == "SINGLE" then S.move(st, c.account_id, c.card_currency, amount, nil, nil, o.card_order_id) end
  S.applied(st, ctx, "withdraw", { card_id = id, amount = amount, currency = c.card_currency, mode_type = c.mode_type,
    card_order_id = o.card_order_id })
  return 200, text, order_events(ctx, c, "card.withdraw.succeeded", amount, o)
end

function H.get_order(st, ctx, _, _, id)
  local o, text = S.order(st, id)
  if not o or not st.cards[o.card_id] or st.cards[o.card_id].account_id ~= ctx.account_id then
    ctx.fail(400, "card_error", "card_order_not_found", "card order " .. id .. " not found")
  end
  return 200, text
end

-- ---------- card transactions (sandbox simulators) ----------

local function ctxn_view(t) return copy(t, { account_id = true }) end

function H.simulate_authorization(st, ctx, body)
  local c = card_of(st, ctx, need_uuid(ctx, body, "card_id"))
  local charged = need_amount(ctx, body, "transaction_amount")
  local cur = body.transaction_currency or c.card_currency
  -- no exchange here: the card is billed the same figure in its own
  -- currency (an amount read with a currency keeps it, and two never add)
  local amount = money(tostring(charged), c.card_currency)
  local t = {
    transaction_id = core.uuid(), short_transaction_id = string.format("CT%08d", #st.ctxn_order + 1),
    card_id = c.card_id, card_number = c.card_number, cardholder_id = c.cardholder_id, account_id = c.account_id,
    transaction_type = "AUTHORIZATION", transaction_amount = charged, transaction_currency = cur,
    billing_amount = amount, billing_currency = c.card_currency, transaction_fee = money("0"),
    transaction_fee_currency = c.card_currency, transaction_time = iso(st.now()), posted_time = iso(st.now()),
    merchant_data = { name = body.merchant_name or "SIM MERCHANT",
                      category_code = body.merchant_category_code or body.mcc or "5734", city = "SINGAPORE", country = "SG" },
    authorization_code = math.random(100000, 999999),
  }
  local b = S.balance(st, c.account_id, c.card_currency)
  if body.transaction_status == "DECLINED" then
    t.transaction_status, t.description = "DECLINED", "declined as asked"
  elseif c.card_status ~= "ACTIVE" then
    t.transaction_status, t.description = "DECLINED", "card is " .. c.card_status
  elseif c.available_balance < amount then
    t.transaction_status, t.description = "DECLINED", "1116 - Insufficient funds"
  elseif c.mode_type == "SHARE" and (not b or b.available_balance < amount) then
    t.transaction_status, t.description = "DECLINED", "1116 - Insufficient funds (issuing balance)"
  else
    t.transaction_status, t.description = "APPROVED", "Approved"
    c.available_balance = c.available_balance - amount
    c.consumed_amount = c.consumed_amount + amount
    if c.mode_type == "SHARE" then
      S.move(st, c.account_id, c.card_currency, -amount, "ISSUING_AUTHORIZATION", "Authorization " .. t.transaction_id)
    end
  end
  t.card_available_balance = c.available_balance
  st.ctxns[t.transaction_id] = t
  st.ctxn_order[#st.ctxn_order + 1] = t.transaction_id
  S.applied(st, ctx, "authorization", { card_id = c.card_id, amount = amount, currency = c.card_currency,
    transaction_id = t.transaction_id, transaction_status = t.transaction_status })
  return 200, ctxn_view(t)
end

function H.simulate_reversal(st, ctx, body)
  local orig_id = body.original_transaction_id or body.transaction_id
  if not orig_id then need(ctx, body, "transaction_id") end
  local o = owned(ctx, st.ctxns[orig_id], "card_error", "transaction_not_found", "transaction " .. tostring(orig_id))
  if o.transaction_status ~= "APPROVED" or o.reversed then
    ctx.fail(400, "card_error", "transaction_not_reversible", "transaction cannot be reversed")
  end
  local c = st.cards[o.card_id]
  local amount = body.transaction_amount and need_amount(ctx, body, "transaction_amount") or o.billing_amount
  if o.billing_amount < amount then bad(ctx, "invalid_amount", "reversal exceeds the original amount") end
  o.reversed = true
  c.available_balance = c.available_balance + amount
  c.consumed_amount = c.consumed_amount - amount
  if c.mode_type == "SHARE" then
    S.move(st, c.account_id, c.card_currency, amount, "ISSUING_REVERSAL", "Reversal " .. orig_id)
  end
  local t = copy(o, { reversed = true })
  t.transaction_id, t.original_transaction_id = core.uuid(), orig_id
  t.transaction_type, t.transaction_status, t.description = "REVERSAL", "APPROVED", "Reversal"
  t.billing_amount, t.transaction_amount, t.card_available_balance = amount, amount, c.available_balance
  t.transaction_time, t.posted_time = iso(st.now()), iso(st.now())
  st.ctxns[t.transaction_id] = t
  st.ctxn_order[#st.ctxn_order + 1] = t.transaction_id
  S.applied(st, ctx, "reversal", { card_id = c.card_id, amount = amount, currency = c.card_currency,
    transaction_id = t.transaction_id })
  return 200, ctxn_view(t)
end

function H.list_card_transactions(st, ctx, _, q)
  return H.page(ctx, owned_list(ctx, st.ctxn_order, st.ctxns, function(t)
    return not q.card_id or q.card_id == t.card_id
  end), q, ctxn_view)
end

function H.get_card_transaction(st, ctx, _, _, id)
  return 200, ctxn_view(owned(ctx, st.ctxns[id], "card_error", "transaction_not_found", "transaction " .. id))
end

-- ---------- reports ----------

function H.create_report(st, ctx, body)
  local rtype = need(ctx, body, "report_type")
  if rtype ~= "SETTLEMENT" and rtype ~= "LEDGER" then
    bad(ctx, "invalid_parameter", "report_type must be SETTLEMENT or LEDGER")
  end
  need(ctx, body, "start_time")
  need(ctx, body, "end_time")
  local id = core.uuid()
  st.reports[id] = { report_id = id, report_type = rtype, account_id = ctx.account_id,
                     start_time = body.start_time, end_time = body.end_time }
  S.applied(st, ctx, "create_report", { report_id = id })
  return 200, { report_id = id }
end

local function csv_field(v) return CSV.cell(v == nil and "" or v) end

function H.download_report(st, ctx, _, _, id)
  local r = owned(ctx, st.reports[id], "invalid_request_error", "report_not_found", "report " .. id)
  local rows = {}
  if r.report_type == "BULK_CARDS" then
    -- the card numbers of a bulk creation, for assign (card data: the client redacts it when it prints)
    rows[1] = "card_number,expire_date,card_status"
    for _, number in ipairs(r.cards) do
      local pc = st.physical_cards[number]
      rows[#rows + 1] = table.concat({ number, r.expire_date, pc.assigned and "ASSIGNED" or "UNASSIGNED" }, ",")
    end
  elseif r.report_type == "LEDGER" then
    rows[1] = "transaction_id,transaction_type,currency,amount,ending_balance,create_time,description"
    for _, t in ipairs(S.itxn_rows(st)) do
      if t.account_id == ctx.account_id then
        rows[#rows + 1] = table.concat({ csv_field(t.transaction_id), t.transaction_type, t.currency,
          tostring(t.amount), tostring(t.ending_balance), t.create_time, csv_field(t.description) }, ",")
      end
    end
  else
    rows[1] = "transaction_id,card_id,transaction_type,transaction_status,billing_amount,billing_currency,transaction_time"
    for _, tid in ipairs(st.ctxn_order) do
      local t = st.ctxns[tid]
      if t.account_id == ctx.account_id then
        rows[#rows + 1] = table.concat({ t.transaction_id, t.card_id, t.transaction_type, t.transaction_status,
          tostring(t.billing_amount), t.billing_currency, t.transaction_time }, ",")
      end
    end
  end
  return 200, table.concat(rows, "\n") .. "\n", nil, "text/csv"
end

-- shared with the Banking rules (uqpay.sim.banking)
H.need, H.need_uuid, H.need_amount, H.need_currency = need, need_uuid, need_amount, need_currency
H.bad, H.own_account, H.insufficient, H.copy, H.filtered = bad, own_account, insufficient, copy, filtered
H.owned, H.owned_list = owned, owned_list

return H
