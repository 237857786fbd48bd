-- The simulator's rules for the rest of the reference (uqpay-api-more.md):
-- card capabilities (secure data, PAN tokens, activation, assignment, PINs,
-- limits, network protection, arts), merchant brands, unsolicited refunds,
-- Banking beneficiaries (create, update, delete, check), payment methods,
-- conversions and their dates, rates, virtual accounts and applications,
-- Connect (accounts, sub-accounts, extra documents, RFIs), simulated
-- deposits and the file service.
local core = require "uqpay.core"
local S = require "uqpay.sim.state"
local H = require "uqpay.sim.issuing"

local money = core.money
local iso = S.iso
local need, need_uuid, need_amount, need_currency = H.need, H.need_uuid, H.need_amount, H.need_currency
local bad, copy, owned, owned_list = H.bad, H.copy, H.owned, H.owned_list
local M = {}

local function list_of(st, name)
  st[name] = st[name] or {}
  st[name .. "_order"] = st[name .. "_order"] or {}
  return st[name], st[name .. "_order"]
end

local function add(st, name, id, item)
  local map, order = list_of(st, name)
  map[id] = item
  order[#order + 1] = id
  return item
end

local function card(st, ctx, id)
  return owned(ctx, st.cards[id], "card_error", "card_not_found", nil, "card not found or deactivated")
end

local function need_enum(ctx, body, field, values)
  local v = need(ctx, body, field)
  for _, x in ipairs(values) do if v == x then return v end end
  bad(ctx, "invalid_parameter", field .. " must be one of " .. table.concat(values, ", "))
end

local function need_pin(ctx, body, field, len)
  local v = need(ctx, body, field)
  if type(v) ~= "string" or not v:match("^%d+$") or (len and #v ~= len) then
    bad(ctx, "invalid_parameter", field .. " must be " .. (len and (len .. " ") or "") .. "digits")
  end
  return v
end

local new_order = S.new_order

-- ---------- seed: data for every list (a --seed file may give its own) ----------

local DEFAULTS = {
  merchant_brands = { { merchant_code = "M000123", display_name = "Grab" },
                      { merchant_code = "M000124", display_name = "GrabFood" },
                      { merchant_code = "M000200", display_name = "Shopee" } },
  card_arts = { { card_art_id = "art-0001", card_product_id = "44444444-4444-4444-8444-444444444441", name = "Classic" },
                { card_art_id = "art-0002", card_product_id = "44444444-4444-4444-8444-444444444442", name = "Midnight" } },
  physical_cards = { { card_number = "4096360800001234", activation_code = "ACT123",
                       card_product_id = "44444444-4444-4444-8444-444444444442" } },
}

-- The collections these rules use, empty (a dry run's twin starts so).
function M.empty(st)
  st.merchant_brands, st.card_arts, st.physical_cards, st.rfis = {}, {}, {}, {}
end

function M.seed(st, seed)
  local function deep(t) return core.json_decode(core.json_encode(t, true), true) end
  st.merchant_brands = deep(seed.merchant_brands or DEFAULTS.merchant_brands)
  st.card_arts = deep(seed.card_arts or DEFAULTS.card_arts)
  st.default_card_art_id = st.card_arts[1] and st.card_arts[1].card_art_id or nil
  st.physical_cards = {}
  for _, p in ipairs(seed.physical_cards or DEFAULTS.physical_cards) do st.physical_cards[p.card_number] = deep(p) end
  st.rfis = { { account_id = st.master_id, rfi_id = "rfi-0001", status = "ACTION_REQUIRED",
    create_time = iso(st.now()), update_time = iso(st.now()),
    request = { { question = { key = "proof_of_address", comment = "Utility bill under 3 months", type = "ATTACHMENT" } } } } }
  -- an unsolicited refund waiting to be released, on the first SINGLE card
  for _, id in ipairs(st.card_order) do
    local c = st.cards[id]
    if c.mode_type == "SINGLE" and c.card_status == "ACTIVE" then
      local t = { transaction_id = "99999999-9999-4999-8999-999999999991", card_id = id, account_id = c.account_id,
        cardholder_id = c.cardholder_id, transaction_type = "REFUND", unsolicited = true,
        transaction_amount = money("12.34"), transaction_currency = c.card_currency, billing_amount = money("12.34"),
        billing_currency = c.card_currency, transaction_status = "APPROVED", transaction_time = iso(st.now()),
        merchant_data = { name = "Refunding Shop", category_code = "5734", city = "SINGAPORE", country = "SG" } }
      st.ctxns[t.transaction_id] = t
      st.ctxn_order[#st.ctxn_order + 1] = t.transaction_id
      break
    end
  end
  -- an issued virtual account, from an application
  local app = { account_id = st.master_id, direct_id = "0", application_id = "app-seed-0001", public_version = 2,
    country = "SG", currency = "USD", status = "COMPLETED", created_at = iso(st.now()), results = {} }
  local va = { account_bank_id = "77777777-7777-4777-8777-777777777781", account_holder = "Demo Master Ltd",
    account_number = "8812345678", country_code = "SG", currency = "usd", bank_name = "Simulated Bank",
    bank_address = "1 Sim Quay", capability = { payment_method = "LOCAL" },
    clearing_system = { type = "bic_swift", value = "SIMBSGSG" }, status = "ACTIVE", close_reason = "",
    account_id = st.master_id }
  app.results[1] = { payment_method = "LOCAL", status = "COMPLETED", error = core.json_decode("null"),
                     virtual_accounts = { copy(va, { account_id = true }) } }
  add(st, "virtual_accounts", va.account_bank_id, va)
  add(st, "va_applications", app.application_id, app)
  -- a settled conversion
  add(st, "conversions", "77777777-7777-4777-8777-777777777791", { conversion_id = "77777777-7777-4777-8777-777777777791",
    short_reference_id = "C00000001", account_id = st.master_id, sell_currency = "USD", buy_currency = "SGD",
    sell_amount = money("100.00"), buy_amount = money("135.00"), client_rate = "1.3500",
    conversion_status = "TRADE_SETTLED", create_time = iso(st.now()), settle_time = iso(st.now()),
    account_name = "Demo Master Ltd", creator = "api" })
end

-- ---------- cards ----------

local luhn = require("uqpay.redact").luhn -- the one Luhn check

-- body and the check digit that makes it pass
local function luhn_complete(body)
  for d = 0, 9 do
    if luhn(body .. d) then return body .. d end
  end
end

-- Secure card data (the simulator's accounts hold the licence): the full
-- number of a card the simulator issued is its BIN, three digits
-- from its id, one digit that makes the Luhn check pass, and the last four
-- digits cards.get shows.
local function pan_of(c)
  local salt = (c.card_id:gsub("%X", ""):gsub("%a", function(x) return tostring(x:byte() % 10) end))
  local head = ((c.card_bin or "40963608") .. salt):sub(1, 11)
  local last4 = c.card_number:sub(-4)
  for x = 0, 9 do
    local pan = head .. x .. last4
    if luhn(pan) then return pan end
  end
end

function M.secure(st, ctx, _, _, id) -- luacheck: ignore 212
  local c = card(st, ctx, id)
  local known = c.secure or {}
  local pan = known.card_number or pan_of(c)
  return 200, { card_number = pan, cvv = string.format("%03d", (pan:sub(-6, -1) + 0) % 1000),
                expire_date = known.expire_date or os.date("!%m/%y", math.floor(st.now()) + 3 * 365 * 24 * 3600) }
end

function M.pan_token(st, ctx, _, _, id)
  card(st, ctx, id)
  return 200, { token = "pan_" .. core.uuid():gsub("-", ""), expires_in = 60,
                expires_at = iso(st.now() + 60) }
end

function M.activate(st, ctx, body)
  local c = card(st, ctx, need_uuid(ctx, body, "card_id"))
  need(ctx, body, "activation_code")
  need_pin(ctx, body, "pin", 6)
  if c.card_status ~= "PENDING" then bad(ctx, "card_not_pending", "card is " .. c.card_status .. ", not PENDING") end
  if c.activation_code and body.activation_code ~= c.activation_code then
    bad(ctx, "invalid_activation_code", "activation_code does not match the card")
  end
  c.card_status = "ACTIVE"
  local o = c.assign_order_id and S.order(st, c.assign_order_id)
  if o and o.order_status == "PROCESSING" then
    o.order_status, o.update_time, o.complete_time = "SUCCESS", iso(st.now()), iso(st.now())
    S.put_order(st, o)
  end
  S.applied(st, ctx, "activate_card", { card_id = c.card_id })
  return 200, { request_status = "SUCCESS" }
end

function M.assign(st, ctx, body)
  local chid = need_uuid(ctx, body, "cardholder_id")
  local ch = owned(ctx, st.cardholders[chid], "cardholder_error", "cardholder_not_found", "cardholder " .. chid)
  local number = need(ctx, body, "card_number")
  local cur = need_currency(ctx, body, "card_currency", { USD = true, SGD = true })
  local mode = need_enum(ctx, body, "card_mode", { "SINGLE", "SHARE" })
  local pc = st.physical_cards[number]
  -- the API has no read for unassigned cards: a dry run's twin takes the
  -- number to be an unassigned physical card (the real run may refuse it)
  if not pc and st.twin then
    pc = { card_number = number }
    st.physical_cards[number] = pc
  end
  -- bulk-created cards belong to the account that created them
  if not pc or pc.assigned or (pc.account_id and pc.account_id ~= ctx.account_id) then
    bad(ctx, "card_not_found", "no unassigned card with that number")
  end
  pc.assigned = true
  local virtual = pc.form_factor == "VIRTUAL"
  local prod = st.products[pc.card_product_id]
  local id = core.uuid()
  -- a physical card waits for its mailer's activation code; a bulk virtual card is live at once
  local c = { card_id = id, account_id = ctx.account_id, cardholder_id = chid, card_product_id = pc.card_product_id,
    card_currency = cur, card_limit = money("0"), available_balance = money("0"),
    card_status = virtual and "ACTIVE" or "PENDING", mode_type = mode, card_bin = prod and prod.card_bin or number:sub(1, 8),
    card_scheme = prod and prod.card_scheme or "VISA", form_factor = virtual and "VIRTUAL" or "PHYSICAL",
    card_number = "************" .. number:sub(-4), metadata = {}, create_time = iso(st.now()),
    consumed_amount = money("0"), activation_code = pc.activation_code,
    secure = { card_number = number, expire_date = pc.expire_date } }
  st.cards[id] = c
  st.card_order[#st.card_order + 1] = id
  ch.number_of_cards = (ch.number_of_cards or 0) + 1
  local o = new_order(st, c, "CARD_ASSIGN", money("0"), virtual and "SUCCESS" or "PROCESSING")
  c.assign_order_id = o.card_order_id
  S.applied(st, ctx, "assign_card", { card_id = id })
  return 200, { card_id = id, card_order_id = o.card_order_id, create_time = c.create_time, card_status = c.card_status,
                order_status = o.order_status }
end

-- Bulk card creation (uqpay-api-more.md §1.13): numbers unassigned virtual
-- cards on a BIN of one of the products, listed in a report (number and
-- expiry) for assign to hand out. The simulator caps a batch at 1000.
local BULK_MAX = 1000

function M.bulk_create(st, ctx, body)
  local bin = need(ctx, body, "card_bin")
  local n = need(ctx, body, "numbers")
  if math.type(n) ~= "integer" or n < 1 or n > BULK_MAX then
    bad(ctx, "invalid_parameter", "numbers must be an integer from 1 to " .. BULK_MAX)
  end
  local prod
  for _, pid in ipairs(st.product_order) do
    if st.products[pid].card_bin == bin then prod = st.products[pid]; break end
  end
  if not prod then ctx.fail(400, "account_error", "product_not_found", "no card product with card_bin " .. tostring(bin)) end
  st.bulk_seq = st.bulk_seq or 0
  local expire = os.date("!%m/%y", math.floor(st.now()) + 3 * 365 * 24 * 3600)
  local rows = {}
  for _ = 1, n do
    st.bulk_seq = st.bulk_seq + 1
    local number = luhn_complete(bin .. string.format("%0" .. (15 - #bin) .. "d", st.bulk_seq))
    st.physical_cards[number] = { card_number = number, card_product_id = prod.product_id, form_factor = "VIRTUAL",
                                  account_id = ctx.account_id, expire_date = expire }
    rows[#rows + 1] = number
  end
  local id = core.uuid()
  st.reports[id] = { report_id = id, report_type = "BULK_CARDS", account_id = ctx.account_id, cards = rows,
                     expire_date = expire }
  S.applied(st, ctx, "bulk_create_cards", { report_id = id, numbers = n })
  return 200, { report_id = id, expire_date = expire }
end

function M.reset_pin(st, ctx, body)
  local c = card(st, ctx, need_uuid(ctx, body, "card_id"))
  need_pin(ctx, body, "pin", 6)
  if c.form_factor ~= "PHYSICAL" then bad(ctx, "not_physical", "reset_pin is for physical cards") end
  S.applied(st, ctx, "reset_pin", { card_id = c.card_id })
  return 200, { request_status = "SUCCESS" }
end

function M.manage_pin(st, ctx, body)
  local c = card(st, ctx, need_uuid(ctx, body, "card_id"))
  local kind = need_enum(ctx, body, "type", { "SET", "RESET" })
  local pin = need_pin(ctx, body, "pin")
  -- the simulator keeps a keyed hash of the PIN, never the PIN
  local function hash(v) return core.hmac_sha512_hex("uqlua-sim-pin " .. c.card_id, v) end
  if kind == "RESET" then
    if not c.pin_hash then bad(ctx, "pin_not_set", "no PIN to reset: SET it first") end
    if body.old_pin ~= nil and hash(tostring(body.old_pin)) ~= c.pin_hash then
      bad(ctx, "invalid_old_pin", "old_pin does not match the card's PIN")
    end
  end
  c.pin_hash = hash(pin)
  local o = new_order(st, c, "PIN_" .. kind, money("0"))
  S.applied(st, ctx, "manage_pin", { card_id = c.card_id })
  return 200, { card_id = c.card_id, card_order_id = o.card_order_id, create_time = o.create_time }
end

local ELEVATE_CAP = { USD = money("20000.00"), SGD = money("27000.00") }

function M.elevate_limit(st, ctx, body, _, id)
  local c = card(st, ctx, id)
  if c.card_status ~= "ACTIVE" then bad(ctx, "card_not_active", "card is " .. c.card_status .. ", not ACTIVE") end
  local amount = need_amount(ctx, body, "limit_amount")
  local cap = ELEVATE_CAP[c.card_currency]
  if cap and amount > cap then bad(ctx, "limit_too_high", "limit_amount exceeds " .. tostring(cap) .. " " .. c.card_currency) end
  local days = body.duration_in_days
  if days ~= nil and (math.type(days) ~= "integer" or days < 1 or days > 30) then
    bad(ctx, "invalid_parameter", "duration_in_days must be an integer from 1 to 30")
  end
  c.elevated_limit, c.elevated_until = amount, iso(st.now() + (days or 1) * 24 * 3600)
  local o = new_order(st, c, "ELEVATE_LIMIT", amount)
  S.applied(st, ctx, "elevate_limit", { card_id = c.card_id, amount = amount, currency = c.card_currency })
  return 200, { card_id = c.card_id, card_order_id = o.card_order_id, order_status = "SUCCESS" }
end

local function risk_view(c)
  local p = c.network_protection or {}
  return { card_id = c.card_id, card_number = c.card_number, cardholder_id = c.cardholder_id,
           card_scheme = c.card_scheme, enabled = p.enabled == true, status = p.enabled and "ACTIVE" or "INACTIVE",
           action_code = p.action_code or "", definition = p.action_code and ("network protection " .. p.action_code) or "",
           update_time = p.update_time or core.json_decode("null") }
end

function M.risk(st, ctx, body, _, id)
  local c = card(st, ctx, id)
  if body.risk_control ~= "network_protection" then bad(ctx, "invalid_parameter", "risk_control must be network_protection") end
  if ctx.method == "DELETE" then
    if not (c.network_protection and c.network_protection.enabled) then
      bad(ctx, "not_enrolled", "the card is not enrolled in network protection")
    end
    c.network_protection = { enabled = false, update_time = iso(st.now()) }
  else
    c.network_protection = { enabled = true, action_code = need(ctx, body, "action_code"), update_time = iso(st.now()) }
  end
  S.applied(st, ctx, "network_protection", { card_id = c.card_id, enabled = c.network_protection.enabled })
  return 200, risk_view(c)
end

function M.arts(st, _, _, q)
  local arts = {}
  for _, a in ipairs(st.card_arts or {}) do
    if not q.card_product_id or a.card_product_id == q.card_product_id then arts[#arts + 1] = copy(a) end
  end
  return 200, { default_card_art_id = st.default_card_art_id or "", card_arts = #arts > 0 and arts or core.json_decode("[]") }
end

function M.set_default_art(st, ctx, body)
  local id = need(ctx, body, "card_art_id")
  local found
  for _, a in ipairs(st.card_arts or {}) do if a.card_art_id == id then found = a end end
  if not found then ctx.fail(400, "card_error", "card_art_not_found", "card art " .. id .. " not found") end
  st.default_card_art_id = id
  S.applied(st, ctx, "set_default_art", { card_art_id = id })
  return 200, { default_card_art_id = id, updated_at = iso(st.now()) }
end

function M.merchant_brands(st, ctx, _, q)
  local out = {}
  for _, b in ipairs(st.merchant_brands or {}) do
    if (not q.display_name or b.display_name:sub(1, #q.display_name) == q.display_name)
        and (not q.merchant_code or b.merchant_code == q.merchant_code) then
      out[#out + 1] = copy(b)
    end
  end
  return H.page(ctx, out, q)
end

function M.release_refund(st, ctx, body)
  local id = need_uuid(ctx, body, "related_transaction_id")
  local t = owned(ctx, st.ctxns[id], "card_error", "transaction_not_found", "transaction " .. id)
  if t.transaction_type ~= "REFUND" or not t.unsolicited then
    bad(ctx, "not_unsolicited_refund", "transaction " .. id .. " is not an unsolicited refund")
  end
  if t.released then bad(ctx, "already_released", "refund " .. id .. " was released already") end
  local c = st.cards[t.card_id]
  t.released = true
  c.available_balance = c.available_balance + t.billing_amount
  S.applied(st, ctx, "release_refund", { card_id = c.card_id, amount = t.billing_amount, currency = c.card_currency })
  return 200, { request_status = "SUCCESS" }
end

-- ---------- Banking ----------

local function beneficiary_fields(ctx, body, partial)
  if not partial or body.entity_type ~= nil then need_enum(ctx, body, "entity_type", { "COMPANY", "INDIVIDUAL" }) end
  if not partial or body.payment_method ~= nil then need_enum(ctx, body, "payment_method", { "LOCAL", "SWIFT" }) end
  if not partial then
    if body.entity_type == "COMPANY" then need(ctx, body, "company_name") else
      need(ctx, body, "first_name"); need(ctx, body, "last_name") end
  end
  local bd = body.bank_details
  if bd ~= nil or not partial then
    if type(bd) ~= "table" then bad(ctx, "missing_parameter", "bank_details is required") end
    for _, f in ipairs { "bank_name", "bank_country_code", "account_holder", "account_currency_code", "clearing_system" } do
      if type(bd[f]) ~= "string" or bd[f] == "" then bad(ctx, "missing_parameter", "bank_details." .. f .. " is required") end
    end
    if not bd.account_number and not bd.iban then bad(ctx, "missing_parameter", "bank_details needs account_number or iban") end
    if (body.payment_method or "") == "SWIFT" and not bd.swift_code then
      bad(ctx, "missing_parameter", "bank_details.swift_code is required for SWIFT")
    end
  end
  local ad = body.address
  if ad ~= nil or not partial then
    if type(ad) ~= "table" then bad(ctx, "missing_parameter", "address is required") end
    for _, f in ipairs { "street_address", "city", "postal_code", "country" } do
      if type(ad[f]) ~= "string" or ad[f] == "" then bad(ctx, "missing_parameter", "address." .. f .. " is required") end
    end
  end
end

function M.create_beneficiary(st, ctx, body)
  beneficiary_fields(ctx, body, false)
  local b = copy(body)
  b.beneficiary_id, b.account_id = core.uuid(), ctx.account_id
  b.short_reference_id = string.format("B%08d", #st.beneficiary_order + 1)
  b.beneficiary_status, b.create_time, b.update_time = "ACTIVE", iso(st.now()), iso(st.now())
  st.beneficiaries[b.beneficiary_id] = b
  st.beneficiary_order[#st.beneficiary_order + 1] = b.beneficiary_id
  S.applied(st, ctx, "create_beneficiary", { beneficiary_id = b.beneficiary_id })
  return 200, { beneficiary_id = b.beneficiary_id, short_reference_id = b.short_reference_id }
end

local function beneficiary(st, ctx, id)
  local b = owned(ctx, st.beneficiaries[id], "invalid_request_error", "beneficiary_not_found", "beneficiary " .. id)
  if b.deleted then ctx.fail(400, "invalid_request_error", "beneficiary_not_found", "beneficiary " .. id .. " not found") end
  return b
end

function M.update_beneficiary(st, ctx, body, _, id)
  local b = beneficiary(st, ctx, id)
  beneficiary_fields(ctx, body, true)
  for k, v in pairs(body) do b[k] = v end
  b.update_time = iso(st.now())
  S.applied(st, ctx, "update_beneficiary", { beneficiary_id = id })
  return 200, { beneficiary_id = id, short_reference_id = b.short_reference_id }
end

function M.delete_beneficiary(st, ctx, _, _, id)
  local b = beneficiary(st, ctx, id)
  b.deleted, b.beneficiary_status = true, "INACTIVE"
  S.applied(st, ctx, "delete_beneficiary", { beneficiary_id = id })
  return 200, {}
end

function M.check_beneficiary(_, ctx, body)
  need_enum(ctx, body, "entity_type", { "COMPANY", "INDIVIDUAL" })
  local number = need(ctx, body, "account_number")
  need_enum(ctx, body, "payment_method", { "LOCAL", "SWIFT" })
  need(ctx, body, "currency")
  if not tostring(number):match("^%w+$") or #number > 60 then
    bad(ctx, "invalid_account_number", "account_number must be letters and digits, at most 60")
  end
  return 200, { entity_type = body.entity_type, company_name = body.company_name, first_name = body.first_name,
                last_name = body.last_name, payment_method = body.payment_method,
                bank_details = { account_number = number, account_currency_code = body.currency,
                                 bank_country_code = body.bank_country_code },
                summary = "account format valid" }
end

local METHODS = {
  { country = "SG", currency = "SGD", payment_method = "LOCAL", clearing_systems = "FAST" },
  { country = "SG", currency = "SGD", payment_method = "LOCAL", clearing_systems = "GIRO" },
  { country = "SG", currency = "USD", payment_method = "SWIFT", clearing_systems = "SWIFT" },
  { country = "US", currency = "USD", payment_method = "LOCAL", clearing_systems = "ACH" },
  { country = "US", currency = "USD", payment_method = "SWIFT", clearing_systems = "SWIFT" },
  { country = "HK", currency = "HKD", payment_method = "LOCAL", clearing_systems = "FPS" },
  { country = "GB", currency = "GBP", payment_method = "LOCAL", clearing_systems = "Faster Payments" },
}

function M.payment_methods(_, ctx, _, q)
  if not q.country or not q.currency then bad(ctx, "missing_parameter", "country and currency are required") end
  local out = {}
  for _, m in ipairs(METHODS) do
    if m.country == q.country:upper() and m.currency == q.currency:upper() then out[#out + 1] = copy(m) end
  end
  return 200, { data = #out > 0 and out or core.json_decode("[]") }
end

function M.conversions(st, ctx, _, q)
  local _, order = list_of(st, "conversions")
  return H.page(ctx, owned_list(ctx, order, st.conversions, function(c)
    return (not q.conversion_status or q.conversion_status == c.conversion_status)
      and (not q.sell_currency or q.sell_currency == c.sell_currency)
      and (not q.buy_currency or q.buy_currency == c.buy_currency)
  end), q, function(c) return copy(c, { account_id = true }) end)
end

function M.get_conversion(st, ctx, _, _, id)
  list_of(st, "conversions")
  local c = owned(ctx, st.conversions[id], "invalid_request_error", "conversion_not_found", "conversion " .. id)
  return 200, copy(c, { account_id = true })
end

-- The dates a conversion can settle on: today and the next 9 days, weekends
-- not valid (the simulator's own clock).
function M.dates(now)
  local out = {}
  for i = 0, 9 do
    local t = math.floor(now) + i * 24 * 3600
    local wd = tonumber(os.date("!%w", t))
    out[#out + 1] = { date = os.date("!%Y-%m-%d", t), valid = wd ~= 0 and wd ~= 6 }
  end
  return out
end

function M.check_date(st, ctx, date)
  for _, d in ipairs(M.dates(st.now())) do
    if d.date == date then
      if d.valid then return end
      bad(ctx, "invalid_conversion_date", "conversion_date " .. date .. " is not a settlement day")
    end
  end
  bad(ctx, "invalid_conversion_date", "conversion_date " .. tostring(date) .. " is not one of the published dates " ..
    "(GET /v1/conversion/conversion_dates)")
end

function M.conversion_dates(st, ctx, _, q) -- luacheck: ignore 212
  if not q.currency_from or not q.currency_to then bad(ctx, "missing_parameter", "currency_from and currency_to are required") end
  return 200, M.dates(st.now())
end

function M.rates(st, _, _, q, _, rates)
  local pairs_, out, missing = {}, {}, {}
  for p in (q.currency_pairs or "USDSGD,SGDUSD,EURUSD,USDEUR,USDHKD"):gmatch("[^,]+") do pairs_[#pairs_ + 1] = p:upper() end
  for _, p in ipairs(pairs_) do
    local r = rates[p:sub(1, 3)] and rates[p:sub(1, 3)][p:sub(4, 6)]
    if r and #p == 6 then
      out[#out + 1] = { currency_pair = p, buy_price = string.format("%d.%04d", (r - 20) // 10000, (r - 20) % 10000),
                        sell_price = string.format("%d.%04d", (r + 20) // 10000, (r + 20) % 10000) }
    else
      missing[#missing + 1] = p
    end
  end
  return 200, { data = { rates = #out > 0 and out or core.json_decode("[]"),
    unavailable_currency_pairs = #missing > 0 and missing or core.json_decode("[]"), last_updated = iso(st.now()) } }
end

local function application_view(a) return copy(a, { account_id_internal = true }) end

function M.create_virtual_account(st, ctx, body)
  local country = need(ctx, body, "country")
  local cur = need(ctx, body, "currency")
  if body.payment_method ~= nil and body.payment_method ~= "" and body.payment_method ~= "LOCAL"
      and body.payment_method ~= "SWIFT" then
    bad(ctx, "invalid_parameter", "payment_method must be LOCAL or SWIFT")
  end
  local methods = (body.payment_method == "LOCAL" or body.payment_method == "SWIFT") and { body.payment_method }
    or { "LOCAL", "SWIFT" }
  local app = { account_id = ctx.account_id, direct_id = ctx.account_id == st.master_id and "0" or st.master_id,
    application_id = "app-" .. core.uuid():sub(1, 13), public_version = 1, country = country, currency = cur,
    status = "COMPLETED", results = {}, created_at = iso(st.now()), nickname = body.nickname }
  for _, m in ipairs(methods) do
    local va = { account_bank_id = core.uuid(), account_holder = st.accounts[ctx.account_id].account_name,
      account_number = string.format("88%08d", (#(st.virtual_accounts_order or {}) + 1) * 7919 % 100000000),
      country_code = country, currency = cur:lower(), bank_name = "Simulated Bank", bank_address = "1 Sim Quay",
      capability = { payment_method = m }, clearing_system = { type = "bic_swift", value = "SIMBSGSG" },
      status = "ACTIVE", close_reason = "", account_id = ctx.account_id }
    add(st, "virtual_accounts", va.account_bank_id, va)
    app.results[#app.results + 1] = { payment_method = m, status = "COMPLETED", error = core.json_decode("null"),
      virtual_accounts = { copy(va, { account_id = true }) } }
  end
  add(st, "va_applications", app.application_id, app)
  S.applied(st, ctx, "virtual_account", { application_id = app.application_id })
  return 200, { data = application_view(app) }
end

function M.virtual_accounts(st, ctx, _, q)
  local _, order = list_of(st, "virtual_accounts")
  return H.page(ctx, owned_list(ctx, order, st.virtual_accounts, function(v)
    return not q.currency or v.currency:upper() == q.currency:upper()
  end), q, function(v) return copy(v, { account_id = true }) end)
end

function M.va_applications(st, ctx, _, q)
  local _, order = list_of(st, "va_applications")
  local out = owned_list(ctx, order, st.va_applications, function(a)
    return (not q.status or a.status == q.status) and (not q.country or a.country == q.country)
      and (not q.currency or a.currency == q.currency)
  end)
  local newest = {}
  for i = #out, 1, -1 do
    local a = out[i]
    newest[#newest + 1] = { account_id = a.account_id, direct_id = a.direct_id, application_id = a.application_id,
      public_version = a.public_version, country = a.country, currency = a.currency, status = a.status,
      created_at = a.created_at }
  end
  return H.page(ctx, newest, q)
end

function M.get_va_application(st, ctx, _, _, id)
  list_of(st, "va_applications")
  local a = st.va_applications[id]
  if not a or a.account_id ~= ctx.account_id then
    ctx.fail(400, "not_found", "virtual_account_application_not_found", "virtual account application " .. id .. " not found")
  end
  return 200, { data = application_view(a) }
end

-- ---------- Connect ----------

local function new_account(st, name, status)
  local id = core.uuid()
  local a = { account_id = id, account_name = name, short_reference_id = "A" .. id:sub(1, 8):upper(), status = status,
              verification_status = status == "ACTIVE" and "APPROVED" or "PENDING", business_code = { "ISSUING", "BANKING" },
              master = false, create_time = iso(st.now()) }
  st.accounts[id] = a
  st.account_order[#st.account_order + 1] = id
  return a
end

local function need_tos(ctx, body)
  local t = body.tos_acceptance
  if type(t) ~= "table" or t.tos_agreement ~= 1 or not t.ip or not t.date then
    bad(ctx, "missing_parameter", "tos_acceptance {ip, date, user_agent, tos_agreement = 1} is required")
  end
end

function M.create_account(st, ctx, body)
  need_enum(ctx, body, "entity_type", { "COMPANY", "INDIVIDUAL" })
  local name = need(ctx, body, "name")
  if type(body.contact_details) ~= "table" or not body.contact_details.email then
    bad(ctx, "missing_parameter", "contact_details.email is required")
  end
  need_tos(ctx, body)
  local a = new_account(st, name, "PROCESSING")
  S.applied(st, ctx, "create_account", { new_account_id = a.account_id })
  return 200, { account_id = a.account_id, short_reference_id = a.short_reference_id, status = a.status,
                verification_status = a.verification_status }
end

function M.create_sub_account(st, ctx, body)
  local kind = need_enum(ctx, body, "entity_type", { "COMPANY", "INDIVIDUAL" })
  local nick = need(ctx, body, "nickname")
  if #nick > 100 then bad(ctx, "invalid_parameter", "nickname is longer than 100 characters") end
  need_tos(ctx, body)
  if kind == "INDIVIDUAL" then
    local info = body.individual_info
    if type(info) ~= "table" then bad(ctx, "missing_parameter", "individual_info is required") end
    for _, f in ipairs { "first_name_english", "last_name_english", "nationality", "email_address", "date_of_birth",
                         "gender", "annual_income" } do
      if info[f] == nil then bad(ctx, "missing_parameter", "IndividualInfo." .. f .. " is required") end
    end
  elseif body.inherit ~= 1 then
    for _, f in ipairs { "company_info", "company_address", "ownership_details" } do
      if type(body[f]) ~= "table" then bad(ctx, "missing_parameter", f .. " is required unless inherit = 1") end
    end
  end
  -- the simulator approves at once, so that the sub-account can be funded and used
  local a = new_account(st, nick, "ACTIVE")
  st.issuing[a.account_id] = st.issuing[a.account_id] or {}
  S.applied(st, ctx, "create_sub_account", { new_account_id = a.account_id })
  return 200, { account_id = a.account_id, short_reference_id = a.short_reference_id, status = a.status,
                verification_status = a.verification_status }
end

function M.additional_docs(_, ctx, _, q)
  if not q.country or not q.business_code then bad(ctx, "missing_parameter", "country and business_code are required") end
  return 200, {
    { profile_key = "business_articles_of_association", profile_name = "Articles of association", profile_option = 1 },
    { profile_key = "shareholding_structure_chart", profile_name = "Shareholding chart", profile_option = 0 },
  }
end

function M.rfis(st, ctx, _, q)
  local out = {}
  for _, r in ipairs(st.rfis or {}) do
    if r.account_id == ctx.account_id and (not q.status or r.status == q.status) then out[#out + 1] = copy(r) end
  end
  return H.page(ctx, out, q)
end

local function rfi(st, ctx, id)
  for _, r in ipairs(st.rfis or {}) do if r.rfi_id == id and r.account_id == ctx.account_id then return r end end
  ctx.fail(400, "not_found", "rfi_not_found", "rfi " .. tostring(id) .. " not found")
end

function M.get_rfi(st, ctx, _, _, id) return 200, copy(rfi(st, ctx, id)) end

function M.answer_rfi(st, ctx, body)
  local r = rfi(st, ctx, need(ctx, body, "rfi_id"))
  if type(body.answer) ~= "table" or #body.answer == 0 then bad(ctx, "missing_parameter", "answer is required") end
  if r.status ~= "ACTION_REQUIRED" then bad(ctx, "rfi_not_open", "rfi is " .. r.status) end
  for _, a in ipairs(body.answer) do
    if a.type ~= "ATTACHMENT" then bad(ctx, "invalid_parameter", "answer[].type must be ATTACHMENT") end
    local asked
    for _, item in ipairs(r.request) do
      if item.question.key == a.key then item.answer, asked = a, true end
    end
    if not asked then bad(ctx, "invalid_parameter", "no question with key " .. tostring(a.key)) end
  end
  r.status, r.update_time = "SUBMITTED_PENDING", iso(st.now())
  S.applied(st, ctx, "answer_rfi", { rfi_id = r.rfi_id })
  return 200, copy(r)
end

-- ---------- deposits and files ----------

function M.simulate_deposit(st, ctx, body, _, _, banking_move)
  local amount = need_amount(ctx, body, "amount")
  local cur = need(ctx, body, "currency"):upper()
  need(ctx, body, "sender_swift_code")
  -- paid into a virtual account: the account that holds it is credited, in its currency
  local to = ctx.account_id
  if body.receiver_account_number ~= nil then
    local va
    for _, v in pairs(list_of(st, "virtual_accounts")) do
      if v.account_number == body.receiver_account_number
          and (v.account_id == ctx.account_id or ctx.account_id == st.master_id) then va = v end
    end
    if not va then
      bad(ctx, "virtual_account_not_found", "no virtual account with receiver_account_number " ..
        tostring(body.receiver_account_number))
    end
    if tostring(va.currency):upper() ~= cur then
      bad(ctx, "currency_mismatch", "virtual account " .. va.account_number .. " receives " ..
        tostring(va.currency):upper() .. ", not " .. cur)
    end
    to = va.account_id
  end
  local id = core.uuid()
  local d = { deposit_id = id, short_reference_id = string.format("D%08d", #st.deposit_order + 1), amount = amount,
    currency = cur, deposit_status = "COMPLETED", deposit_fee = money("0"), create_time = iso(st.now()),
    complete_time = iso(st.now()), receiver_account_number = body.receiver_account_number or "",
    sender = { sender_name = body.sender_name or "", sender_country = body.sender_country or "",
               sender_account_number = body.sender_account_number or "", sender_swift_code = body.sender_swift_code },
    account_id = to }
  st.deposits[id] = d
  st.deposit_order[#st.deposit_order + 1] = id
  banking_move(st, to, cur, amount, "DEPOSIT", id)
  S.applied(st, ctx, "deposit", { deposit_id = id, amount = amount, currency = cur })
  return 200, copy(d, { account_id = true })
end

local FILE_TYPES = { jpeg = true, jpg = true, png = true, pdf = true, doc = true, docx = true }

function M.upload(st, ctx, _, q, _, _, raw)
  local name = raw:match('filename="([^"]+)"')
  if not name then bad(ctx, "missing_parameter", "a multipart part 'file' is required") end
  local ext = (name:match("%.(%w+)$") or ""):lower()
  if not FILE_TYPES[ext] then bad(ctx, "invalid_file_type", "file type " .. ext .. " is not accepted") end
  local data = raw:match("\r\n\r\n(.-)\r\n%-%-[^\r\n]*%-%-") or ""
  if q.notes and #q.notes > 50 then bad(ctx, "invalid_parameter", "notes is longer than 50 characters") end
  local f = { file_id = core.uuid(), file_name = name, file_type = ext, size = #data, create_time = iso(st.now()),
              notes = q.notes or "", account_id = ctx.account_id }
  add(st, "files", f.file_id, f)
  S.applied(st, ctx, "upload_file", { file_id = f.file_id, size = f.size })
  return 200, copy(f, { account_id = true })
end

function M.download_links(st, ctx, body, _, _, _, _, base) -- luacheck: ignore 212
  if type(body.file_ids) ~= "table" or #body.file_ids == 0 then bad(ctx, "missing_parameter", "file_ids is required") end
  list_of(st, "files")
  local files, absent = {}, {}
  for _, id in ipairs(body.file_ids) do
    local f = st.files[id]
    if f and f.account_id == ctx.account_id then
      local v = copy(f, { account_id = true, notes = true, create_time = true })
      v.url = base .. "/__sim/files/" .. id .. "?expires=" .. math.floor(st.now() + 300)
      files[#files + 1] = v
    else
      absent[#absent + 1] = id
    end
  end
  return 200, { files = #files > 0 and files or core.json_decode("[]"), absent_files = #absent > 0 and absent
    or core.json_decode("[]") }
end

return M
