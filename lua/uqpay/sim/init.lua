-- The UQPAY simulator's request pipeline, called from C (src/sim.c) with
-- the rules state locked: rate limit -> token endpoint -> auth ->
-- x-on-behalf-of -> route -> idempotency -> faults -> business rule.
local core = require "uqpay.core"
local S = require "uqpay.sim.state"
local H = require "uqpay.sim.issuing"
local B = require "uqpay.sim.banking"
local F = require "uqpay.sim.faults"
local X = require "uqpay.sim.more"
local default_seed = require "uqpay.sim.seed"

local sim = {}
local IDEM_TTL = 24 * 3600

local cfg, seed, st
-- tokens: the x-auth-token values that authenticate ("Bearer <jwt>"), so
-- that a request's header is looked up as it came
local tokens, rules, window = {}, {}, {}
-- Idempotency keys per account: idem[account_id][key] is a positional
-- entry { fingerprint, time, status, body[, headers] }, status nil while
-- the request is in flight. Named fields and an "account|key" string cost
-- 400 bytes a key.
local idem = {}
local FP, TIME, STATUS, BODY, HEADERS = 1, 2, 3, 4, 5
local revoked = {} -- tokens revoked through /__sim/tokens; a reset brings them back
local request_count, tokens_issued, sink = 0, 0, {}
local in_flight, max_in_flight = 0, 0 -- requests held by a latency fault at once
local clock_offset = 0
-- the last requests (method, path): what a dry run's stand-in was asked; a
-- ring of LOG_SIZE, so that keeping it costs no shifting, and the method
-- and path kept apart, so that it costs no string per request either
local LOG_SIZE = 2000
local log_methods, log_paths, logged_count = {}, {}, 0
local function logged()
  local out = {}
  local n = #log_paths
  local start = n < LOG_SIZE and 1 or (logged_count % LOG_SIZE) + 1
  for i = 0, n - 1 do
    local at = (start - 1 + i) % n + 1
    out[#out + 1] = log_methods[at] .. " " .. log_paths[at]
  end
  return out
end
local twin -- set when this pipeline is a dry run's twin (uqpay.twin): no auth, state read through

function sim.now() return core.now() + clock_offset end

local function encode(t, banking) return core.json_encode(t, banking) end

local function reply(status, body, headers, banking)
  return { status = status, body = type(body) == "string" and body or encode(body, banking), headers = headers }
end

local function envelope(status, etype, code, message)
  return reply(status, { type = etype, code = code, message = message })
end

-- A business rule's failure, raised through ctx.fail and caught below.
local Fail = {}
Fail.__index = Fail

local function fail(status, etype, code, message)
  error(setmetatable({ status = status, etype = etype, code = code, message = message }, Fail), 0)
end

-- What every request's context shares (ctx.fail, ctx.webhooks: whether a
-- rule's events are wanted), so that a context holds only its own six
-- fields.
local shared_ctx = { fail = fail, webhooks = false }
local Ctx = { __index = shared_ctx }

-- ---------- routes ----------

-- Routes are indexed so that finding one costs no scan of the table: a
-- literal path by the path itself; a path with a placeholder by its last
-- segment, or by the segment before it and "/*" when the placeholder is
-- last; in the order declared.
local LITERAL, BY_END = {}, {}
local function route(method, pattern, handler, opts)
  opts = opts or {}
  local r = { method = method, pattern = "^" .. pattern .. "$", handler = handler,
              write = method ~= "GET", banking = opts.banking, name = opts.name, raw = opts.raw }
  if not pattern:find("(", 1, true) then
    LITERAL[pattern] = LITERAL[pattern] or {}
    LITERAL[pattern][method] = r
  else
    local plain, captures = pattern:gsub("%b()", "()") -- a placeholder's [^/] is no separator
    -- one id per path: a rule gets it as its one argument after the query
    assert(captures == 1, "a route has at most one placeholder: " .. pattern)
    local prev, last = plain:match("^.*/([^/]*)/([^/]*)$")
    local key = last == "()" and prev .. "/*" or last
    BY_END[key] = BY_END[key] or {}
    table.insert(BY_END[key], r)
  end
end
-- Specific paths first: /v1/issuing/cards/arts is not a card, nor is
-- /v1/beneficiaries/paymentmethods a beneficiary.
route("GET", "/v1/issuing/cards/arts", X.arts)
route("POST", "/v1/issuing/cards/arts/default", X.set_default_art)
route("POST", "/v1/issuing/cards/activate", X.activate)
route("POST", "/v1/issuing/cards/assign", X.assign)
route("POST", "/v1/issuing/cards/bulk", X.bulk_create)
route("POST", "/v1/issuing/cards/pin", X.reset_pin)
route("POST", "/v1/issuing/cards/manage/pin", X.manage_pin)
route("GET", "/v1/issuing/cards/([^/]+)/secure", X.secure)
route("POST", "/v1/issuing/cards/([^/]+)/token", X.pan_token)
route("POST", "/v1/issuing/cards/([^/]+)/elevate_limit", X.elevate_limit)
route("POST", "/v1/issuing/cards/([^/]+)/risk", X.risk)
route("DELETE", "/v1/issuing/cards/([^/]+)/risk", X.risk)
route("GET", "/v1/issuing/merchant_brands", X.merchant_brands)
route("POST", "/v1/issuing/transactions/unsolicited_refund/release", X.release_refund)
route("GET", "/v1/beneficiaries/paymentmethods", X.payment_methods, { banking = true })
route("POST", "/v1/beneficiaries/check", X.check_beneficiary, { banking = true })
route("POST", "/v1/beneficiaries", X.create_beneficiary, { banking = true })
route("POST", "/v1/beneficiaries/([^/]+)/delete", X.delete_beneficiary, { banking = true })
route("POST", "/v1/beneficiaries/([^/]+)", X.update_beneficiary, { banking = true })
route("GET", "/v1/conversion/conversion_dates", X.conversion_dates, { banking = true })
route("GET", "/v1/conversion", X.conversions, { banking = true })
route("GET", "/v1/conversion/([^/]+)", X.get_conversion, { banking = true })
route("GET", "/v1/exchange/rates", function(s, ctx, b, q) return X.rates(s, ctx, b, q, nil, B.RATES) end,
  { banking = true })
route("POST", "/v1/virtual/accounts", X.create_virtual_account, { banking = true })
route("GET", "/v1/virtual/accounts", X.virtual_accounts, { banking = true })
route("GET", "/v1/virtual/applications", X.va_applications, { banking = true })
route("GET", "/v1/virtual/applications/([^/]+)", X.get_va_application, { banking = true })
route("POST", "/v1/accounts/create_accounts", X.create_sub_account)
route("GET", "/v1/accounts/get_additional", X.additional_docs)
route("POST", "/v1/accounts", X.create_account)
route("GET", "/v1/rfis", X.rfis)
route("POST", "/v1/rfis/answer", X.answer_rfi)
route("GET", "/v1/rfis/([^/]+)", X.get_rfi)
route("POST", "/v1/simulation/deposit", function(s, ctx, b, q) return X.simulate_deposit(s, ctx, b, q, nil, B.move) end,
  { banking = true })
route("POST", "/v1/files/upload", function(s, ctx, b, q) return X.upload(s, ctx, b, q, nil, nil, ctx.raw) end,
  { raw = true })
route("POST", "/v1/files/download_links", function(s, ctx, b, q)
  return X.download_links(s, ctx, b, q, nil, nil, nil, "http://" .. (ctx.host or "127.0.0.1"))
end)
route("POST", "/v1/issuing/balances", H.retrieve_balance)
route("GET", "/v1/issuing/balances", H.list_balances)
route("GET", "/v1/issuing/balances/transactions", H.list_balance_transactions)
route("POST", "/v1/issuing/transfers", H.create_transfer)
route("GET", "/v1/issuing/transfers/([^/]+)", H.get_transfer)
route("GET", "/v1/issuing/products", H.list_products)
route("POST", "/v1/issuing/cardholders", H.create_cardholder)
route("GET", "/v1/issuing/cardholders", H.list_cardholders)
route("GET", "/v1/issuing/cardholders/([^/]+)", H.get_cardholder)
route("POST", "/v1/issuing/cardholders/([^/]+)", H.update_cardholder)
route("POST", "/v1/issuing/cards", H.create_card)
route("GET", "/v1/issuing/cards", H.list_cards)
route("GET", "/v1/issuing/cards/([^/]+)/order", H.get_order)
route("POST", "/v1/issuing/cards/([^/]+)/status", H.card_status)
route("POST", "/v1/issuing/cards/([^/]+)/recharge", H.recharge)
route("POST", "/v1/issuing/cards/([^/]+)/withdraw", H.withdraw)
route("GET", "/v1/issuing/cards/([^/]+)", H.get_card)
route("POST", "/v1/issuing/cards/([^/]+)", H.update_card)
route("POST", "/v1/simulation/issuing/authorization", H.simulate_authorization)
route("POST", "/v1/simulation/issuing/reversal", H.simulate_reversal)
route("GET", "/v1/issuing/transactions", H.list_card_transactions)
route("GET", "/v1/issuing/transactions/([^/]+)", H.get_card_transaction)
route("POST", "/v1/issuing/reports", H.create_report)
route("GET", "/v1/issuing/reports/([^/]+)", H.download_report)
route("GET", "/v1/accounts", H.list_accounts)
route("GET", "/v1/accounts/([^/]+)", H.get_account)
route("GET", "/v1/balances", B.balances, { banking = true })
route("GET", "/v1/balances/transactions", B.transactions, { banking = true })
route("GET", "/v1/balances/(%u%u%u)", B.balance, { banking = true })
route("POST", "/v1/transfer", B.transfer, { banking = true })
route("GET", "/v1/transfer", B.transfers, { banking = true })
route("GET", "/v1/transfer/([^/]+)", B.get_transfer, { banking = true })
route("POST", "/v1/payouts", B.create_payout, { banking = true })
route("GET", "/v1/payouts", B.payouts, { banking = true })
route("GET", "/v1/payouts/([^/]+)", B.get_payout, { banking = true })
route("POST", "/v1/conversion/quote", B.quote, { banking = true })
route("POST", "/v1/conversion", B.convert, { banking = true })
route("GET", "/v1/deposit", B.deposits, { banking = true })
route("GET", "/v1/deposit/([^/]+)", B.get_deposit, { banking = true })
route("GET", "/v1/beneficiaries", B.beneficiaries, { banking = true })
route("GET", "/v1/beneficiaries/([^/]+)", B.get_beneficiary, { banking = true })

-- A path that a route names literally (/v1/beneficiaries/check) is never
-- an id for a route with a placeholder (/v1/beneficiaries/{id}): literal
-- routes are tried first, and a literal path with another method is a 405.
-- Returns the route and the path's id (its one placeholder), or nil and
-- whether the path exists.
local function find_route(method, path)
  local literal = LITERAL[path]
  if literal then
    if literal[method] then return literal[method] end
    return nil, true
  end
  local path_known = false
  -- anchored, so one pass from the end: an unanchored "[^/]*$" is tried
  -- from every position (5 us on a card path)
  local prev, last = path:match("^.*/([^/]*)/([^/]*)$")
  if not prev then return nil, false end
  for pass = 1, 2 do
    local routes = BY_END[pass == 1 and last or prev .. "/*"]
    for i = 1, routes and #routes or 0 do
      local r = routes[i]
      local id = path:match(r.pattern)
      if id ~= nil then
        path_known = true
        if r.method == method then return r, id end
      end
    end
  end
  return nil, path_known
end

-- ---------- configuration ----------

local function load_seed(path)
  local f, err = io.open(path, "rb")
  if not f then error("cannot read seed: " .. err, 0) end
  local text = f:read("a")
  f:close()
  local ok, s = pcall(core.json_decode, text, false)
  if not ok then error("seed " .. path .. ": " .. tostring(s), 0) end
  for _, k in ipairs { "client_id", "api_key", "master" } do
    if s[k] == nil then error("seed " .. path .. ": missing '" .. k .. "'", 0) end
  end
  return s
end

local function reset()
  st = S.build(seed, sim.now)
  -- a dry run's twin holds only what it read from the real API and what the
  -- script planned: never the simulator's demo data
  if twin then X.empty(st); st.twin = true else X.seed(st, seed) end
  idem, window = {}, {}
end

local function set_number(name, value, min)
  if value == nil then return end
  local n = math.tointeger(tonumber(value))
  if not n or n < min then error(name .. " must be an integer >= " .. min .. ", not '" .. tostring(value) .. "'", 0) end
  cfg[name] = n
end

function sim.init(c)
  -- The rules state is the simulator's own (src/sim.c). Its ledger only
  -- grows and every cycle of the collector marks all of it: a cycle when
  -- the heap has grown fourfold (pause 400) is a third of the default's
  -- marking per request, for a heap of up to four times what it keeps.
  collectgarbage("incremental", 400, 100)
  cfg = { token_ttl = 1800, rate_limit = 0, rate_burst = 0, webhook_url = c.webhook_url }
  shared_ctx.webhooks = c.webhook_url ~= nil
  set_number("token_ttl", c.token_ttl, 1)
  set_number("rate_limit", c.rate_limit, 0)
  set_number("rate_burst", c.rate_burst, 0)
  cfg.initial_token_ttl, cfg.initial_rate_limit, cfg.initial_rate_burst = cfg.token_ttl, cfg.rate_limit, cfg.rate_burst
  seed = c.seed and load_seed(c.seed) or default_seed
  if c.faults then
    local r, err = F.parse(c.faults)
    if not r then error("--faults: " .. err, 0) end
    rules = r
  end
  math.randomseed(tonumber(c.fault_seed) or 20261124)
  reset()
  return { client_id = seed.client_id, api_key = seed.api_key }
end

-- ---------- the ledger across restarts (--state FILE) ----------

local function plain(v, seen)
  if type(v) ~= "table" or core.money.is(v) then return v end
  seen = seen or {}
  if seen[v] then return seen[v] end
  local out = setmetatable({}, getmetatable(v))
  seen[v] = out
  for k, x in pairs(v) do if type(x) ~= "function" then out[k] = plain(x, seen) end end
  return out
end

-- Everything a restart must keep: the ledger, keys and their answers,
-- tokens, counters and the clock. Keys still in flight are left out.
function sim.save()
  local keys = {}
  for account_id, entries in pairs(idem) do
    for key, e in pairs(entries) do
      if e[STATUS] then
        keys[account_id] = keys[account_id] or {}
        keys[account_id][key] = e
      end
    end
  end
  return encode(plain { version = 2, st = st, idem = keys, tokens = tokens, revoked = revoked,
    request_count = request_count, tokens_issued = tokens_issued, clock_offset = clock_offset,
    token_ttl = cfg.token_ttl, rate_limit = cfg.rate_limit, rate_burst = cfg.rate_burst }, true)
end

-- A version 1 file's keys: "account|key" -> named entry, its fingerprint
-- the whole request text or its checksum in hex.
local function keys_of_v1(old)
  local out = {}
  for scope, e in pairs(old or {}) do
    local account_id, key = scope:match("^([^|]*)|(.*)$")
    if account_id and e.state ~= "in_flight" then
      local fp = type(e.fp) == "string" and #e.fp ~= 16 and core.checksum(e.fp) or e.fp
      out[account_id] = out[account_id] or {}
      out[account_id][key] = { math.tointeger(tonumber(fp, 16)) or 0, e.time, e.status, e.body, e.headers }
    end
  end
  return out
end

local function tokens_of_v1(old)
  local out = {}
  for t, v in pairs(old or {}) do out["Bearer " .. t] = v end
  return out
end

function sim.load(text)
  local t = core.json_decode(text, true)
  if type(t) ~= "table" or (t.version ~= 1 and t.version ~= 2) or type(t.st) ~= "table" then
    error("not a simulator state file", 0)
  end
  st = t.st
  st.now = sim.now
  if t.version == 1 then
    idem, tokens, revoked = keys_of_v1(t.idem), tokens_of_v1(t.tokens), tokens_of_v1(t.revoked)
  else
    idem, tokens, revoked = t.idem or {}, t.tokens or {}, t.revoked or {}
  end
  -- a file saved before orders and the applied log were kept as text
  for id, o in pairs(st.orders or {}) do if type(o) == "table" then st.orders[id] = S.put_order(st, o) end end
  S.compact_applied(st)
  request_count, tokens_issued, clock_offset = t.request_count or 0, t.tokens_issued or 0, t.clock_offset or 0
  cfg.token_ttl, cfg.rate_limit = t.token_ttl or cfg.token_ttl, t.rate_limit or cfg.rate_limit
  cfg.rate_burst = t.rate_burst or cfg.rate_burst
  return "loaded"
end

-- ---------- admin (/__sim/..., loopback only) ----------

local function dump_state()
  local out = { accounts = {}, issuing_balances = {}, banking_balances = {}, cards = {}, transfers = {},
                banking_transfers = {}, applied = S.applied_records(st), master_account_id = st.master_id,
                now = S.iso(sim.now()), clock_offset_s = clock_offset, request_count = request_count,
                tokens_issued = tokens_issued, in_flight = in_flight, max_in_flight = max_in_flight,
                requests = #log_paths > 0 and logged() or core.json_decode("[]") }
  for _, id in ipairs(st.account_order) do
    local a = st.accounts[id]
    out.accounts[#out.accounts + 1] = { account_id = id, account_name = a.account_name, master = a.master }
  end
  for acct, curs in pairs(st.issuing) do
    out.issuing_balances[acct] = {}
    for cur, b in pairs(curs) do out.issuing_balances[acct][cur] = b.available_balance end
  end
  for acct, curs in pairs(st.banking) do
    out.banking_balances[acct] = {}
    for cur, b in pairs(curs) do out.banking_balances[acct][cur] = b.available_balance end
  end
  for _, id in ipairs(st.card_order) do
    local c = st.cards[id]
    out.cards[#out.cards + 1] = { card_id = id, account_id = c.account_id, mode_type = c.mode_type,
      card_status = c.card_status, card_currency = c.card_currency, card_limit = c.card_limit,
      available_balance = c.available_balance }
  end
  for id, t in pairs(st.transfers) do out.transfers[id] = t end
  for id, t in pairs(st.banking_transfers) do out.banking_transfers[id] = t end
  out.applied = #out.applied > 0 and out.applied or core.json_decode("[]")
  return out
end

local function admin(req)
  if not req.loopback then return envelope(403, "unauthorized_error", "forbidden", "admin endpoints are loopback only") end
  local p, m = req.path, req.method
  local body = {}
  if req.body ~= "" and p ~= "/__sim/webhook-sink" then
    local ok, b = pcall(core.json_decode, req.body, true)
    if not ok or type(b) ~= "table" then return envelope(400, "invalid_request_error", "invalid_json", "body is not JSON") end
    body = b
  end
  if p == "/__sim/state" and m == "GET" then return reply(200, dump_state(), nil, true) end
  if p == "/__sim/reset" and m == "POST" then
    reset()
    rules, request_count, tokens_issued, sink, clock_offset = {}, 0, 0, {}, 0
    log_methods, log_paths, logged_count = {}, {}, 0
    for t, v in pairs(revoked) do tokens[t] = v end
    revoked = {}
    max_in_flight = in_flight
    cfg.token_ttl, cfg.rate_limit, cfg.rate_burst = cfg.initial_token_ttl, cfg.initial_rate_limit, cfg.initial_rate_burst
    return reply(200, { reset = true })
  end
  -- A webhook receiver for tests: deliveries POSTed here are kept as sent.
  if p == "/__sim/webhook-sink" then
    if m == "POST" then
      sink[#sink + 1] = { body = req.body, timestamp = req.headers["x-wk-timestamp"],
                          signature = req.headers["x-wk-signature"] }
      return reply(200, { received = true })
    end
    return reply(200, { deliveries = #sink > 0 and sink or core.json_decode("[]") })
  end
  if p == "/__sim/seed" and m == "POST" then
    for _, k in ipairs { "client_id", "api_key", "master" } do
      if body[k] == nil then return envelope(400, "invalid_request_error", "invalid_seed", "seed needs '" .. k .. "'") end
    end
    -- build the new state first: a seed that does not build leaves the old one
    local new_seed = core.json_decode(req.body, false)
    local ok, new_st = pcall(function()
      local built = S.build(new_seed, sim.now)
      X.seed(built, new_seed)
      return built
    end)
    if not ok then
      return envelope(400, "invalid_request_error", "invalid_seed", "seed does not build: " .. tostring(new_st))
    end
    seed, st, idem, window = new_seed, new_st, {}, {}
    return reply(200, { seeded = true })
  end
  if p == "/__sim/faults" then
    if m == "POST" then
      local new = {}
      if body.spec then
        local r, err = F.parse(body.spec)
        if not r then return envelope(400, "invalid_request_error", "invalid_faults", err) end
        new = r
      end
      for _, t in ipairs(body.rules or {}) do
        local r, err = F.rule(t)
        if not r then return envelope(400, "invalid_request_error", "invalid_faults", err) end
        new[#new + 1] = r
      end
      if body.append then for _, r in ipairs(new) do rules[#rules + 1] = r end else rules = new end
    end
    local d = F.describe(rules)
    return reply(200, { rules = #d > 0 and d or core.json_decode("[]") })
  end
  if p == "/__sim/tokens" and m == "POST" then -- revoke: later requests get 401 "invalid token"
    for t, v in pairs(tokens) do revoked[t] = v end
    tokens = {}
    return reply(200, { revoked = true })
  end
  if p == "/__sim/clock" then
    if m == "POST" then clock_offset = clock_offset + (tonumber(body.advance_s) or 0) end
    return reply(200, { now = sim.now(), offset_s = clock_offset })
  end
  if p == "/__sim/config" then
    if m == "POST" then
      local ok, err = pcall(function()
        set_number("token_ttl", body.token_ttl, 1)
        set_number("rate_limit", body.rate_limit, 0)
        set_number("rate_burst", body.rate_burst, 0)
        if body.rate_limit or body.rate_burst then window = {} end
      end)
      if not ok then return envelope(400, "invalid_request_error", "invalid_config", err) end
    end
    return reply(200, { token_ttl = cfg.token_ttl, rate_limit = cfg.rate_limit, rate_burst = cfg.rate_burst })
  end
  return reply(404, { code = 404, message = "unknown admin endpoint " .. m .. " " .. p })
end

-- ---------- the pipeline ----------

local UUID = H.UUID

-- UQPAY's limiter "allows bursting" (uqpay-api.md §7.2): a token bucket
-- per client, rate_limit per minute, holding up to rate_burst (default a
-- tenth of a minute's quota). Returns the seconds until the next token when
-- the request is refused.
local function rate_limited(who)
  local per_min = cfg.rate_limit
  if per_min <= 0 then return nil end
  local cap = cfg.rate_burst > 0 and cfg.rate_burst or math.max(1, per_min // 10)
  local now = sim.now()
  local b = window[who]
  if not b then b = { tokens = cap, last = now }; window[who] = b end
  b.tokens = math.min(cap, b.tokens + (now - b.last) * per_min / 60)
  b.last = now
  if b.tokens < 1 then return math.ceil((1 - b.tokens) * 60 / per_min) end
  b.tokens = b.tokens - 1
end

local function too_many(retry_after)
  return reply(429, { code = "too_many_requests",
    message = "Too many requests have been made to the api. Please refer to the Developer Center for more information" },
    { ["Retry-After"] = tostring(math.max(1, retry_after)) })
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local function b64url(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local k = 4 - (c and 0 or (b and 1 or 2))
    for j = 1, k do
      local v = (n >> (18 - 6 * (j - 1))) & 63
      out[#out + 1] = B64:sub(v + 1, v + 1)
    end
  end
  return table.concat(out)
end

-- Access tokens are JWTs, as UQPAY's are: the SDKs read the account from
-- the claims (entity_id, short_entity_id, parent_entity_id, client_id,
-- api_version, bus_type) without verifying the signature.
local function jwt(claims)
  local head = b64url('{"alg":"HS256","typ":"JWT"}')
  local body = b64url(encode(claims))
  local sig = core.hmac_sha512_hex(st.api_key, head .. "." .. body):sub(1, 43)
  return head .. "." .. body .. "." .. sig
end

local function issue_token(req)
  local h = req.headers
  if req.method ~= "POST" then return reply(405, { code = 405, message = "method not allowed" }) end
  if h["x-client-id"] ~= st.client_id then
    return reply(400, { code = 400, message = "Invalid client id" })
  end
  if not core.consttime_eq(h["x-api-key"] or "", st.api_key) then
    return reply(401, { error = "invalid api key" })
  end
  local exp = math.floor(sim.now()) + cfg.token_ttl
  local master = st.accounts[st.master_id]
  local token = jwt { entity_id = st.master_id, short_entity_id = master.short_reference_id or "",
    parent_entity_id = "", client_id = st.client_id, api_version = "v1.6", bus_type = "ISSUING", exp = exp,
    jti = core.uuid() }
  tokens["Bearer " .. token] = { client_id = st.client_id, expired_at = exp }
  tokens_issued = tokens_issued + 1
  return reply(200, { auth_token = token, expired_at = exp })
end

local function authenticate(req)
  local v = req.headers["x-auth-token"]
  if not v or v == "" then return nil, reply(401, { error = "x-auth-token header is required" }) end
  -- the header as it came is the key: no copy of the token per request
  local t = tokens[v]
  if not t and not v:match("^Bearer %S+$") then
    return nil, reply(401, { error = "x-auth-token must be 'Bearer <token>'" })
  end
  if not t then return nil, reply(401, { error = "invalid token" }) end
  if sim.now() >= t.expired_at then return nil, reply(401, { error = "token expired" }) end
  return t
end

-- events: a rule's list (a rule may leave it out when ctx.webhooks is off).
local function webhooks(events)
  if not cfg.webhook_url or not events then return nil end
  local out = {}
  for _, e in ipairs(events) do
    local body = encode({ version = "V1.6.0", event_name = "ISSUING", event_type = e.type, event_id = core.uuid(),
                          source_id = e.source_id, data = e.data }, true)
    local ts = string.format("%d", math.floor(sim.now() * 1000))
    out[#out + 1] = { url = cfg.webhook_url, body = body, timestamp = ts,
                      signature = core.hmac_sha512_hex(st.webhook_secret or "", body .. ts) }
  end
  return out
end

-- Runs the business rule and records the idempotent outcome.
local function apply(ctx, r, body, id, fired, entry)
  local ok, status, out, events, ctype = pcall(r.handler, st, ctx, body, ctx.query, id)
  local res
  if ok then
    res = reply(status, out, ctype and { ["Content-Type"] = ctype } or nil, r.banking)
    res.webhooks = webhooks(events)
  elseif getmetatable(status) == Fail then
    res = envelope(status.status, status.etype, status.code, status.message)
  else
    io.stderr:write("uqlua-sim: rule error: ", tostring(status), "\n")
    if entry then idem[ctx.account_id][ctx.key] = nil end
    return envelope(500, "api_error", "internal_error", "Internal server error")
  end
  if entry then
    entry[STATUS], entry[BODY] = res.status, res.body
    if res.headers then entry[HEADERS] = res.headers end
  end
  if fired.fail_after then
    return envelope(500, "api_error", "internal_error", "Internal server error. Safe to retry with the same Idempotency-Key.")
  end
  if fired.conflict then return envelope(409, "conflict", "conflict", "Conflict") end
  if fired.drop then return { drop = true } end
  return res
end

-- A dry run's twin (uqpay.twin): the same rules over a state that starts
-- empty and that uqpay.twin fills from the real account before each request
-- it hands over. No token: the real API authorised the reads that fill it.
function sim.twin_init(twin_seed)
  cfg = { token_ttl = 1800, rate_limit = 0, rate_burst = 0 }
  shared_ctx.webhooks = false
  cfg.initial_token_ttl, cfg.initial_rate_limit, cfg.initial_rate_burst = cfg.token_ttl, cfg.rate_limit, cfg.rate_burst
  seed, twin, rules = twin_seed, true, {}
  reset()
  return st
end

function sim.handle(req)
  local path = req.path
  if path:sub(1, 7) == "/__sim/" then return admin(req) end
  if path:sub(1, 5) ~= "/api/" then return reply(404, { code = 404, message = "route not found" }) end
  path = path:sub(5)
  request_count = request_count + 1
  local method = req.method
  logged_count = logged_count + 1
  local at = (logged_count - 1) % LOG_SIZE + 1
  log_methods[at], log_paths[at] = method, path
  local fired = F.pick(rules, method, path, math.random)
  if fired.burst429 then return too_many(1) end
  if fired.oversize then return reply(200, "{}" .. string.rep(" ", fired.oversize.bytes - 2)) end
  if fired.redirect then
    return reply(302, { message = "moved" }, { Location = "http://127.0.0.2:9/api" .. path })
  end
  if fired.hollow_pages and method == "GET" then
    return reply(200, { total_pages = 1000000000, total_items = 100000000000, data = core.json_decode("[]") })
  end
  if path == "/v1/connect/token" then
    if fired.fail_before or fired.fail_after then -- only with an explicit path=/v1/connect/token
      return envelope(500, "api_error", "internal_error", "Internal server error")
    end
    local ra = rate_limited("token")
    if ra then return too_many(ra) end
    return issue_token(req)
  end
  local tok, err
  if twin then tok = { client_id = st.client_id } else tok, err = authenticate(req) end
  if not tok then return err end
  local ra = rate_limited(tok.client_id)
  if ra then return too_many(ra) end
  local account_id = st.master_id
  local obo = req.headers["x-on-behalf-of"]
  if obo and obo ~= "" then
    local a = st.accounts[obo]
    if not obo:match(UUID) or not a or a.master then
      return envelope(400, "account_error", "sub_account_not_found", "sub account not found: " .. obo)
    end
    account_id = obo
  end
  local r, id = find_route(method, path)
  if not r then
    if id then
      return envelope(405, "invalid_request_error", "method_not_allowed", "method not allowed: " .. method .. " " .. path)
    end
    return envelope(404, "not_found", "not_found", "route not found: " .. method .. " " .. path)
  end
  local body = {}
  if req.too_big then return envelope(400, "invalid_request_error", "body_too_large", "request body too large") end
  if r.write and req.body ~= "" and not r.raw then
    local ok, b = pcall(core.json_decode, req.body, true)
    if not ok or type(b) ~= "table" then
      return envelope(400, "invalid_request_error", "invalid_json", "request body is not a JSON object")
    end
    body = b
  end
  local ctx = setmetatable({ account_id = account_id, method = method, path = path, query = req.query,
                             raw = r.raw and req.body or nil, host = req.headers.host }, Ctx)
  local entry
  if r.write then
    local key = req.headers["x-idempotency-key"]
    if not key or key == "" then
      return envelope(400, "invalid_request_error", "missing_idempotency_key", "x-idempotency-key is required")
    end
    if #key > 64 then
      return envelope(400, "idempotency_error", "invalid_idempotency_key", "x-idempotency-key is too long")
    end
    ctx.key = key
    -- a failing server fails replays too: nothing is looked up or applied
    if fired.fail_before then
      return envelope(500, "api_error", "internal_error", "Internal server error. Safe to retry with the same Idempotency-Key.")
    end
    local keys = idem[account_id]
    if not keys then keys = {}; idem[account_id] = keys end
    -- what the key was used for, as a 64-bit checksum: the whole text cost
    -- a hundred bytes per key kept
    local fp = math.tointeger(tonumber(core.checksum(method, " ", path, " ", encode(body)), 16))
    entry = keys[key]
    if entry and sim.now() - entry[TIME] > IDEM_TTL then entry = nil end
    if entry then
      if entry[FP] ~= fp then
        return envelope(400, "idempotency_error", "idempotency_key_mismatch",
          "x-idempotency-key was already used with a different request")
      end
      if not entry[STATUS] then
        return envelope(409, "idempotency_error", "request_processing", "Request is processing, please retry later")
      end
      local h = { ["x-idempotent-replayed"] = "true" }
      for k, v in pairs(entry[HEADERS] or {}) do h[k] = v end
      return { status = entry[STATUS], body = entry[BODY], headers = h }
    end
    entry = { fp, sim.now(), false, false } -- the slots made now: no rehash when it is answered
    entry[STATUS], entry[BODY] = nil, nil
    keys[key] = entry
  elseif fired.fail_before then
    return envelope(500, "api_error", "internal_error", "Internal server error")
  end
  if fired.latency and fired.latency.ms > 0 then
    in_flight = in_flight + 1
    max_in_flight = math.max(max_in_flight, in_flight)
    return { delay_ms = fired.latency.ms, resume = { run = function()
      in_flight = in_flight - 1
      return apply(ctx, r, body, id, fired, entry)
    end } }
  end
  return apply(ctx, r, body, id, fired, entry)
end

function sim.resume(pending)
  return pending.run()
end

return sim
