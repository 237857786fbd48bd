-- The simulator's ledger: accounts, balances, cards and every applied
-- operation, built from a seed. Money is exact (uqpay.money) throughout.
local core = require "uqpay.core"

local money = core.money
local M = {}

-- Times are whole seconds: the last one formatted is kept (a write asks
-- for the same second several times).
local last_t, last_iso
local function iso(t)
  t = math.floor(t)
  if t ~= last_t then last_t, last_iso = t, os.date("!%Y-%m-%dT%H:%M:%S+00:00", t) end
  return last_iso
end
M.iso = iso

-- Ids are random UUIDs (version 4), as UQPAY's are.
M.uuid = core.uuid

local function new_balance(st, account_id, currency, amount)
  local b = {
    balance_id = core.uuid(), currency = currency, available_balance = money(amount or "0"),
    margin_balance = money("0"), frozen_balance = money("0"),
    create_time = iso(st.now()), last_trade_time = iso(st.now()), balance_status = "ACTIVE",
  }
  st.issuing[account_id] = st.issuing[account_id] or {}
  st.issuing[account_id][currency] = b
  return b
end

function M.build(seed, now)
  local st = {
    seed = seed, now = now,
    client_id = seed.client_id, api_key = seed.api_key, webhook_secret = seed.webhook_secret,
    master_id = seed.master.account_id,
    accounts = {}, account_order = {},
    issuing = {},        -- account_id -> currency -> balance
    banking = {},        -- account_id -> currency -> balance
    itxns = {},          -- issuing balance transactions (all accounts, in order)
    transfers = {}, banking_transfers = {}, banking_transfer_order = {},
    products = {}, product_order = {},
    cardholders = {}, cardholder_order = {},
    cards = {}, card_order = {},
    orders = {},         -- card_order_id -> the order's JSON text (M.order reads it)
    ctxns = {}, ctxn_order = {}, -- card transactions
    reports = {},
    btxns = {},          -- Banking balance transactions
    payouts = {}, payout_order = {}, quotes = {},
    deposits = {}, deposit_order = {}, beneficiaries = {}, beneficiary_order = {},
    applied = {},        -- every applied write, rows of JSON text: the exactly-once evidence
    applied_tail = {},   -- (M.applied)
    seq = 0,
  }
  local function add_account(a, master)
    local acc = {
      account_id = a.account_id, account_name = a.account_name, short_reference_id = a.short_reference_id
        or ("A" .. a.account_id:sub(1, 8):upper()),
      status = "ACTIVE", verification_status = "APPROVED", business_code = { "ISSUING", "BANKING" },
      master = master,
    }
    st.accounts[a.account_id] = acc
    st.account_order[#st.account_order + 1] = a.account_id
  end
  add_account(seed.master, true)
  for _, a in ipairs(seed.sub_accounts or {}) do add_account(a, false) end
  local function resolve(k) return k == "master" and st.master_id or k end
  for acct, curs in pairs(seed.issuing_balances or {}) do
    for cur, amt in pairs(curs) do new_balance(st, resolve(acct), cur, amt) end
  end
  for acct, curs in pairs(seed.banking_balances or {}) do
    local id = resolve(acct)
    st.banking[id] = st.banking[id] or {}
    for cur, amt in pairs(curs) do
      st.banking[id][cur] = {
        balance_id = core.uuid(), currency = cur, available_balance = money(amt), prepaid_balance = money("0"),
        margin_balance = money("0"), frozen_balance = money("0"), create_time = iso(now()),
        last_trade_time = iso(now()), balance_status = "ACTIVE",
      }
    end
  end
  for _, p in ipairs(seed.products or {}) do
    local prod = {}
    for k, v in pairs(p) do prod[k] = v end
    prod.create_time = prod.create_time or iso(now())
    st.products[p.product_id] = prod
    st.product_order[#st.product_order + 1] = p.product_id
  end
  for _, h in ipairs(seed.cardholders or {}) do
    local ch = {}
    for k, v in pairs(h) do ch[k] = v end
    ch.account_id = resolve(ch.account_id or st.master_id)
    ch.cardholder_status = ch.cardholder_status or "SUCCESS"
    ch.create_time = ch.create_time or iso(now())
    ch.number_of_cards = 0
    st.cardholders[ch.cardholder_id] = ch
    st.cardholder_order[#st.cardholder_order + 1] = ch.cardholder_id
  end
  local function owned(list, idfield, into, order)
    for _, x in ipairs(list or {}) do
      local v = {}
      for k, y in pairs(x) do v[k] = y end
      v.account_id = resolve(v.account_id or st.master_id)
      for k, y in pairs(v) do
        if type(y) == "string" and core.is_amount_key(k) then v[k] = money(y) end
      end
      into[v[idfield]] = v
      order[#order + 1] = v[idfield]
    end
  end
  owned(seed.deposits, "deposit_id", st.deposits, st.deposit_order)
  owned(seed.beneficiaries, "beneficiary_id", st.beneficiaries, st.beneficiary_order)
  for _, c in ipairs(seed.cards or {}) do
    local prod = st.products[c.card_product_id]
    local card = {
      card_id = c.card_id, account_id = resolve(c.account_id or st.master_id), cardholder_id = c.cardholder_id,
      card_product_id = c.card_product_id, card_currency = c.card_currency, card_limit = money(c.card_limit),
      available_balance = money(c.available_balance or c.card_limit), card_status = c.card_status or "ACTIVE",
      mode_type = c.mode_type or (prod and prod.mode_type) or "SINGLE", card_bin = prod and prod.card_bin or "40963608",
      card_scheme = prod and prod.card_scheme or "VISA", form_factor = "VIRTUAL",
      card_number = "************" .. (c.last4 or "0000"), metadata = c.metadata or {},
      create_time = iso(now()), consumed_amount = money("0"),
    }
    st.cards[card.card_id] = card
    st.card_order[#st.card_order + 1] = card.card_id
    local ch = st.cardholders[card.cardholder_id]
    if ch then ch.number_of_cards = ch.number_of_cards + 1 end
  end
  return st
end

function M.balance(st, account_id, currency, create)
  local b = st.issuing[account_id] and st.issuing[account_id][currency]
  if not b and create then b = new_balance(st, account_id, currency, "0") end
  return b
end

local rows_cache = setmetatable({}, { __mode = "k" }) -- st -> {n, rows} (M.itxn_rows)

-- Records a movement on an issuing balance and its transaction row. The
-- row of a movement made by a card order (a SINGLE card's recharge or
-- withdraw) is that order's id and nothing else: everything it shows is
-- the order's or derived (M.itxn_rows). A row of its own cost 750 bytes
-- a write, for what only the list endpoint and the ledger report read.
function M.move(st, account_id, currency, delta, ttype, description, order_id)
  local b = M.balance(st, account_id, currency, true)
  b.available_balance = b.available_balance + delta
  b.last_trade_time = iso(st.now())
  rows_cache[st] = nil -- every ending balance derived from this one changed
  if order_id then
    st.itxns[#st.itxns + 1] = order_id
    return
  end
  local amount = delta
  if amount < 0 then amount = -amount end
  local t = {
    -- numbered among this ledger's own rows (the twin's copies of real ones come first)
    transaction_id = core.uuid(), short_transaction_id = string.format("CT%08d", #st.itxns + 1 - (st.real_itxns or 0)),
    account_id = account_id, balance_id = b.balance_id, transaction_type = ttype, currency = currency,
    amount = amount, create_time = iso(st.now()), complete_time = iso(st.now()),
    transaction_status = "COMPLETED", ending_balance = b.available_balance, description = description,
  }
  st.itxns[#st.itxns + 1] = t
  return t
end

-- Movements that take money out of the issuing balance.
local DEBITS = { CARD_RECHARGE = true, TRANSFER_OUT = true, ISSUING_AUTHORIZATION = true }
local ORDER_ROW = { CARD_RECHARGE = "Card recharge ", CARD_WITHDRAW = "Card withdraw " }

-- A row's id, made from its order's: the same on every read and after a save.
local function order_row_id(order_id)
  local a, b = core.checksum("itxn " .. order_id), core.checksum(order_id .. " itxn")
  return string.format("%s-%s-4%s-8%s-%s", a:sub(1, 8), a:sub(9, 12), a:sub(13, 15), b:sub(1, 3), b:sub(4, 15))
end

-- Every issuing balance transaction as a full row, oldest first. A row
-- kept as an order's id is made from that order; its ending balance is
-- derived walking back from the balance now (every movement has a row,
-- and a full row's recorded ending balance anchors the walk). The rows
-- are kept until the next movement: a listing reads them page by page.
function M.itxn_rows(st)
  local kept = st.itxns
  local cached = rows_cache[st]
  if cached and cached.n == #kept then return cached.rows end
  local rows, real = {}, 0
  for i = 1, #kept do
    local e = kept[i]
    if type(e) == "string" then
      local o = M.order(st, e)
      local acct = st.cards[o.card_id].account_id
      rows[i] = { transaction_id = order_row_id(e), short_transaction_id = string.format("CT%08d", i - real),
        account_id = acct, balance_id = M.balance(st, acct, o.card_currency).balance_id,
        transaction_type = o.order_type, currency = o.card_currency, amount = o.amount, create_time = o.create_time,
        complete_time = o.complete_time, transaction_status = "COMPLETED",
        description = ORDER_ROW[o.order_type] .. o.card_id }
    else
      rows[i] = e
      if e._real then real = real + 1 end
    end
  end
  local before = {} -- account|currency -> the balance before the row just walked
  for i = #rows, 1, -1 do
    local r = rows[i]
    local k = tostring(r.account_id) .. "|" .. tostring(r.currency)
    if type(kept[i]) == "string" then
      local b = before[k]
      if b == nil then b = M.balance(st, r.account_id, r.currency).available_balance end
      r.ending_balance = b
    end
    -- a row as the real API sent it (the twin's) may lack what the walk needs;
    -- it comes before every row made here, so nothing older is derived from it
    if money.is(r.ending_balance) and money.is(r.amount) then
      before[k] = r.ending_balance - (DEBITS[r.transaction_type] and -r.amount or r.amount)
    end
  end
  rows_cache[st] = { n = #kept, rows = rows }
  return rows
end

-- The applied-operations log (what /__sim/state shows) is kept as compact
-- JSON text, one row a write: the fields every record has by position, then
-- the operation's own fields (amounts as strings, as the dump sends them).
-- Rows are joined in blocks of BLOCK lines (st.applied), the newest ones
-- waiting in st.applied_tail: a string of its own cost each row 50 bytes
-- more. A table per write cost 660 bytes, and named JSON 470, for what
-- only the admin dump reads back.
local COMMON = { "seq", "op", "idempotency_key", "account_id", "method", "path", "time" }
local NULL = core.json_decode("null")
local BLOCK = 64

function M.applied(st, ctx, op, fields)
  st.seq = st.seq + 1
  local tail = st.applied_tail
  if not tail then tail = {}; st.applied_tail = tail end
  local n = #tail + 1
  -- the time as whole seconds: the dump writes it out
  tail[n] = core.json_encode({ st.seq, op, ctx.key or NULL, ctx.account_id, ctx.method, ctx.path,
    math.floor(st.now()), fields or {} }, true)
  if n == BLOCK then
    st.applied[#st.applied + 1] = table.concat(tail, "\n")
    for i = 1, n do tail[i] = nil end
  end
end

-- A record with named fields (a state file's older shape) as a row.
local function row_of(rec)
  local row, own = {}, {}
  for k, v in pairs(rec) do own[k] = v end
  for i, k in ipairs(COMMON) do
    row[i] = rec[k] == nil and NULL or rec[k]
    own[k] = nil
  end
  row[#COMMON + 1] = own
  return core.json_encode(row, true)
end

-- Rows from records of an older state file (tables, or named JSON text,
-- one a slot); blocks of rows are kept as they are.
function M.compact_applied(st)
  for i, rec in ipairs(st.applied or {}) do
    if type(rec) == "table" then
      st.applied[i] = row_of(rec)
    elseif rec:sub(1, 1) == "{" then
      st.applied[i] = row_of(core.json_decode(rec, false))
    end
  end
end

-- The applied log as named records (the admin dump).
function M.applied_records(st)
  local out = {}
  local function add(text)
    local row = core.json_decode(text, false)
    local rec = row[#COMMON + 1]
    for j, k in ipairs(COMMON) do if row[j] ~= NULL then rec[k] = row[j] end end
    if math.type(rec.time) == "integer" then rec.time = iso(rec.time) end
    out[#out + 1] = rec
  end
  for _, block in ipairs(st.applied) do
    for text in block:gmatch("[^\n]+") do add(text) end
  end
  for _, text in ipairs(st.applied_tail or {}) do add(text) end
  return out
end

-- Card orders are kept as the JSON text they are answered with: the reply
-- to the write that made one is that same string, so the order costs no
-- memory of its own beyond its slot. M.order decodes one (amounts exact).
function M.put_order(st, o)
  local text = core.json_encode(o, false)
  st.orders[o.card_order_id] = text
  return text
end

function M.order(st, id)
  local text = st.orders[id]
  return text and core.json_decode(text, true), text
end

-- A new card order (SUCCESS unless status says otherwise): the order and
-- its text.
function M.new_order(st, c, order_type, amount, status)
  local now = iso(st.now())
  local o = { card_order_id = core.uuid(), card_id = c.card_id, order_type = order_type, amount = amount,
              card_currency = c.card_currency, create_time = now, update_time = now, complete_time = now,
              order_status = status or "SUCCESS" }
  return o, M.put_order(st, o)
end

return M
