-- The uqpay module: the public Lua API. Endpoint functions come from the
-- declarative table in uqpay.endpoints; everything goes through one
-- Client (uqpay.client), created on first use so that utilities such as
-- uqpay.uuid() need no credentials.
local core = require "uqpay.core"
local E = require "uqpay.errors"
local C = require "uqpay.config"
local A = require "uqpay.api"
local Parallel = require "uqpay.parallel"

local json = require "uqpay.json"
local R = require "uqpay.redact"

local uqpay = {
  version = core.version,
  money = core.money,
  uuid = core.uuid,
  json = require "uqpay.json",
  errors = E,
}

local cfg
local Session = require "uqpay.session"

local function get_client()
  cfg = cfg or C.active()
  return Session.client()
end

local Run = require "uqpay.run"

-- Where a result came from (weak keys): uqpay.wait follows it with the
-- endpoint its entry names.
local origin = setmetatable({}, { __mode = "k" })

-- Each card's currency, from every answer that showed one (a card, a page
-- of cards, a recharge's order): a card's currency never changes.
local card_currency = {}
local function learn_cards(res)
  local items = type(res.data) == "table" and res.data or { res }
  for _, x in ipairs(items) do
    if type(x) == "table" and type(x.card_id) == "string" and type(x.card_currency) == "string" then
      card_currency[x.card_id] = x.card_currency:upper()
    end
  end
end

-- Every answer the request path returns comes through here.
local function tag(res, spec)
  if type(res) == "table" then
    if spec.ep then origin[res] = spec.ep end
    learn_cards(res)
  end
  return res
end

local MONEY_AS_STRING, MONEY_AS_NUMBER = { money = "string" }, { money = "number" } -- Banking sends strings

local function replayed(op, spec)
  local body = op:replay()
  Run.count("replayed")
  if spec.raw then return body end
  if body == "" then return {} end
  local ok, d = pcall(json.decode, body)
  if ok then return d end
  -- applied, with an answer that was not JSON: the same error as when it
  -- was sent, not a decoder's usage error that no resume gets past
  error(require("uqpay.client").not_json(spec, body, d, op:key(), nil, true), 0)
end

local dispatch

-- A money value that knows its currency, sent as a card's recharge or
-- withdrawal (whose body names no currency: it is the card's), must be in
-- the card's currency: 100 JPY would otherwise go out as 100 USD. The
-- card is read when no answer has shown its currency yet.
local function check_card_currency(spec)
  local m = spec.card_money
  local cur = card_currency[m.card_id]
  if not cur then
    local get = A.spec(A.endpoint("cards.get"), { card_id = m.card_id })
    get.on_behalf_of = spec.on_behalf_of
    dispatch(get)
    cur = card_currency[m.card_id]
  end
  for _, f in ipairs(m) do
    local have = f.amount:currency()
    if cur ~= have then
      E.usage(f.field, tostring(f.amount) .. " " .. have, "is an amount in " .. have .. "; card " .. m.card_id ..
        (cur and (" is in " .. cur) or "'s currency could not be read"))
    end
  end
end

-- The one request path: reads straight to the client; a write becomes an
-- operation of the run's journal (or of the dry-run plan): answered from
-- the journal when it was applied before, refused when it has been in
-- doubt for more than 24 hours, else guarded, made durable, then sent.
function dispatch(spec)
  local c = get_client()
  if spec.master then spec.on_behalf_of = false end
  if spec.card_money then check_card_currency(spec) end
  local as = spec.banking and MONEY_AS_STRING or MONEY_AS_NUMBER
  spec.body_text = spec.body ~= nil and json.encode(spec.body, as) or ""
  if spec.effect ~= "write" then return tag((c:call(spec)), spec) end
  local j = Run.journal()
  local obo = c:account(spec) or ""
  -- what the intent record shows (a memory journal keeps no record): the
  -- body as sent when nothing in it needs redacting
  local shown
  if j:persistent() then shown = R.kept(spec.body, spec.body_text, as) end
  -- the query is part of what the write is
  local where = spec.path .. c.query_string(spec.query)
  local op = j:op(spec.method, where, obo, spec.body_text, shown, spec.key)
  local state = op:state()
  if state == "applied" then return tag(replayed(op, spec), spec) end
  local info = state ~= "new" and op:info() or nil -- a resumed operation: its key and when it was sent
  if state == "rejected_earlier" then
    -- rejected in the interrupted run, which then tried the same again:
    -- that later try is its own operation; this one stays rejected
    local body, status = op:replay()
    Run.count("replayed")
    error(c:api_error({ status = status, body = body }, spec, info.key, 1), 0)
  end
  if info then
    if Run.key_life_left(info.ts) < 0 then
      E.raise { kind = "reconcile_required", method = spec.method, path = spec.path, idempotency_key = info.key,
        message = string.format("run %s: %s %s (occurrence %d) was sent at %s and its outcome is unknown; its key " ..
          "is too old to be sent again (UQPAY keeps keys for 24 hours), so sending it could apply it twice. Check " ..
          "the resource, then record what you found with `uqlua reconcile %s --mark %s=applied` (or =not-applied: " ..
          "it is then sent anew with a new key) and run this again", tostring(Run.id()), spec.method, spec.path,
          info.occ, os.date("!%Y-%m-%dT%H:%M:%SZ", info.ts), tostring(Run.id()), info.key) }
    end
    Run.count("resent")
  else
    Run.count("sent")
  end
  -- under --dry-run nothing leaves (the transport answers from the twin)
  if not cfg.dry_run then c:confirm_production(spec, obo ~= "" and obo or nil) end
  local group = Parallel.active()
  op:intent(group)
  if group then Parallel.dirty(j) end
  local res = c:call(spec, op, info and info.ts or Run.now())
  if cfg.dry_run and type(res) == "table" then res.dry_run = true end
  return tag(res, spec)
end

-- Inside uqpay.parallel, writes that share a card or an account (as the
-- endpoint table declares) are never reordered.
local function call(spec)
  if Parallel.active() and spec.effect == "write" and spec.locks then
    local keys = {}
    for i, k in ipairs(spec.locks) do
      if k == "account:@" then
        local obo = get_client():account(spec)
        k = "account:" .. (obo or "master")
      end
      keys[i] = k
    end
    return Parallel.with_locks(keys, dispatch, spec)
  end
  return dispatch(spec)
end

A.install(uqpay, require "uqpay.endpoints", call)

-- uqpay.cards.secure_iframe_url(card_id [, {lang=, styles=}]): the secure
-- card iframe's URL, from a fresh PAN token (built here, no extra call).
function uqpay.cards.secure_iframe_url(card_id, opts)
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "lang" and k ~= "styles" and k ~= "on_behalf_of" then
      E.usage("opts." .. tostring(k), opts[k], "is not an option of uqpay.cards.secure_iframe_url (lang, styles)")
    end
  end
  if opts.styles ~= nil and type(opts.styles) ~= "table" then E.usage("styles", opts.styles, "must be a table") end
  local t = uqpay.cards.pan_token(card_id, opts.on_behalf_of and { on_behalf_of = opts.on_behalf_of } or nil)
  local function enc(s) return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end)) end
  local url = C.active().iframe_url .. "/iframe/card?token=" .. enc(t.token) .. "&cardId=" .. enc(card_id)
  if opts.lang then url = url .. "&lang=" .. enc(opts.lang) end
  if opts.styles then url = url .. "&styles=" .. enc(json.encode(opts.styles)) end
  R.secret(t.token) -- a single-use key to the card's number: never printed
  return { iframe_url = url, expires_in = t.expires_in, expires_at = t.expires_at }
end

local FILE_TYPES = { jpg = "image/jpeg", jpeg = "image/jpeg", png = "image/png", pdf = "application/pdf",
  doc = "application/msword", docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document" }

-- uqpay.files.upload(path [, {notes=, key=, on_behalf_of=}]): a multipart
-- upload to the file service's host. A write: journaled, known by the
-- file's name, size and content hash.
function uqpay.files.upload(path, opts)
  opts = opts or {}
  if type(path) ~= "string" then E.usage("path", path, "must be the path of a file") end
  for k in pairs(opts) do
    if k ~= "notes" and k ~= "key" and k ~= "on_behalf_of" then
      E.usage("opts." .. tostring(k), opts[k], "is not an option of uqpay.files.upload (notes, key, on_behalf_of)")
    end
  end
  if opts.notes ~= nil and (type(opts.notes) ~= "string" or #opts.notes > 50) then
    E.usage("notes", opts.notes, "must be a string of at most 50 characters")
  end
  if opts.key ~= nil then C.check_key(opts.key) end
  local name = path:match("[^/]+$") or path
  local ctype = FILE_TYPES[(name:match("%.(%w+)$") or ""):lower()]
  if not ctype then E.usage("path", path, "must be a jpeg, jpg, png, pdf, doc or docx file") end
  local f, err = io.open(path, "rb")
  if not f then E.usage("path", path, "cannot be read: " .. tostring(err)) end
  local data, rerr = f:read("a")
  f:close()
  if not data then E.usage("path", path, "cannot be read: " .. tostring(rerr)) end
  if #data > 20 * 1024 * 1024 then E.usage("path", path, "is larger than 20 MB") end
  local spec = { op = "files.upload", effect = "write", method = "POST", path = "/v1/files/upload", files = true,
    query = opts.notes and { notes = opts.notes } or nil, key = opts.key, on_behalf_of = opts.on_behalf_of,
    multipart = { name = "file", path = path, filename = name, content_type = ctype },
    body = { file = name, size = #data, sha512 = core.hmac_sha512_hex("uqlua-file", data), notes = opts.notes } }
  return call(spec)
end

-- uqpay.config(): the active configuration, secrets redacted.
function uqpay.config()
  return C.redacted(C.active())
end

-- uqpay.request(method, path, {query=, body=, key=, on_behalf_of=,
-- timeout_ms=, banking=, effect=}): any endpoint not in the table. effect
-- is "read" for GET and "write" otherwise unless given: a POST that only
-- reads says effect = "read".
function uqpay.request(method, path, opts)
  if type(method) ~= "string" or not ({ GET = true, POST = true, PUT = true, PATCH = true, DELETE = true })[method:upper()] then
    E.usage("method", method, "must be GET, POST, PUT, PATCH or DELETE")
  end
  if type(path) ~= "string" or path:sub(1, 1) ~= "/" then E.usage("path", path, "must start with '/' (e.g. /v1/issuing/cards)") end
  opts = opts or {}
  local allowed = { query = true, body = true, key = true, on_behalf_of = true, timeout_ms = true, banking = true,
                    raw = true, effect = true }
  for k in pairs(opts) do
    if not allowed[k] then E.usage("opts." .. tostring(k), opts[k], "is not an option of uqpay.request") end
  end
  if opts.on_behalf_of ~= nil and not core.uuid_lower(opts.on_behalf_of) then
    E.usage("on_behalf_of", opts.on_behalf_of, "is not a UUID")
  end
  if opts.key ~= nil then C.check_key(opts.key) end
  if opts.effect ~= nil and opts.effect ~= "read" and opts.effect ~= "write" then
    E.usage("effect", opts.effect, "must be \"read\" or \"write\"")
  end
  method = method:upper()
  local effect = opts.effect or (method == "GET" and "read" or "write")
  if effect == "write" and method == "GET" then E.usage("effect", effect, "cannot be a GET") end
  if opts.query ~= nil and type(opts.query) ~= "table" then E.usage("query", opts.query, "must be a table") end
  local q
  for k, v in pairs(opts.query or {}) do q = q or {}; q[k] = A.query_value("query." .. tostring(k), v) end
  if opts.body ~= nil and type(opts.body) ~= "table" then E.usage("body", opts.body, "must be a table") end
  -- amounts in the body are checked as the endpoint functions check them
  local body = opts.body and A.coerce_amounts(opts.body, "")
  return call { method = method, path = path, query = q, body = body, key = opts.key, effect = effect,
                on_behalf_of = opts.on_behalf_of, timeout_ms = opts.timeout_ms, banking = opts.banking, raw = opts.raw,
                card_money = A.raw_card_money(method, path, body) }
end

local TERMINAL = { success = true, succeeded = true, completed = true, failed = true, cancelled = true, rejected = true }

local endpoints = require "uqpay.endpoints"

-- The endpoint that follows a result: the one its write's entry names, or
-- for a table of unknown origin the first poll entry whose id it has.
local function poller(result)
  local ep = origin[result]
  if ep and ep.wait_with then return A.endpoint(ep.wait_with) end
  if ep and ep.poll then return ep end
  for pass = 1, 2 do
    for _, e in ipairs(endpoints) do
      local p = e.poll
      if p and result[p.id] ~= nil and ((pass == 1 and p.when and result[p.when] ~= nil) or (pass == 2 and not p.when)) then
        return e
      end
    end
  end
end

local function get_fn(name)
  local f = uqpay
  for part in name:gmatch("[^%.]+") do f = f[part] end
  return f
end

-- uqpay.wait(result, {timeout_ms=, on_behalf_of=}): polls a card order or
-- transfer until a terminal status and returns the final object. Pass the
-- on_behalf_of the operation used.
function uqpay.wait(result, opts)
  if type(result) ~= "table" then E.usage("result", result, "is not a card order or transfer") end
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "timeout_ms" and k ~= "on_behalf_of" then E.usage("opts." .. tostring(k), opts[k], "is not an option of uqpay.wait") end
  end
  local ep = poller(result)
  if not ep or result[ep.poll.id] == nil then E.usage("result", result, "has neither card_order_id nor transfer_id") end
  local timeout = opts.timeout_ms or 60000
  local fetch, field = get_fn(ep.name), ep.poll.status
  local id, ropts = result[ep.poll.id], { on_behalf_of = opts.on_behalf_of }
  local deadline = core.monotonic_ms() + timeout
  local delay = 250
  while true do
    local cur = fetch(id, ropts)
    local status = tostring(cur[field] or ""):lower()
    if TERMINAL[status] then return cur end
    if core.monotonic_ms() + delay > deadline then
      E.raise { kind = "timeout", message = "still " .. tostring(cur[field]) .. " after " .. timeout .. " ms" }
    end
    if not Parallel.sleep(delay) then E.raise { kind = "interrupted", message = "interrupted while waiting" } end
    delay = math.min(delay * 2, 5000)
  end
end

local account_cache
-- uqpay.account() -> {account_id, account_name, short_account_id}: the
-- account the credentials belong to (the token's entity_id claim), named
-- by the accounts endpoint, so that nobody copies the master id from docs.
function uqpay.account()
  if account_cache then return account_cache end
  local c = get_client()
  local t = require("uqpay.token").claims(c.token:get())
  if not t or type(t.entity_id) ~= "string" or t.entity_id == "" then
    E.raise { kind = "auth", message = "the access token names no account (no entity_id claim)" }
  end
  local a = { account_id = t.entity_id, short_account_id = t.short_entity_id ~= "" and t.short_entity_id or nil }
  local ok, full = pcall(uqpay.accounts.get, t.entity_id)
  if ok then a.account_name = full.account_name end
  account_cache = a
  return a
end

-- uqpay.table(list [, columns]): prints a list of records as an aligned
-- table (amounts right-aligned, secrets redacted); returns the text.
function uqpay.table(list, columns)
  if type(list) ~= "table" then E.usage("list", list, "is not a list of records") end
  if columns ~= nil and type(columns) ~= "table" then E.usage("columns", columns, "is not a list of names") end
  local text = require("uqpay.ops").table(list, columns)
  print(text)
  return text
end

-- uqpay.parallel(items, fn, {concurrency=8, stop_on_error=false})
-- -> results, errors (both indexed like items).
uqpay.parallel = Parallel.run

uqpay.webhook = {}

-- uqpay.webhook.verify{body=, timestamp=, signature=, secret=, tolerance_s=300}
-- -> true, or false and the reason. HMAC-SHA512 over body .. timestamp (the
-- header text as sent), hex, compared in constant time; timestamps in
-- seconds or milliseconds.
function uqpay.webhook.verify(t)
  if type(t) ~= "table" then E.usage("webhook.verify", t, "takes a table {body=, timestamp=, signature=, secret=}") end
  for _, k in ipairs { "body", "timestamp", "signature", "secret" } do
    if type(t[k]) ~= "string" and not (k == "timestamp" and math.type(t[k]) == "integer") then
      E.usage(k, t[k], "is required (a string)")
    end
  end
  local ts_text = tostring(t.timestamp)
  local ts = tonumber(ts_text)
  if not ts then return false, "timestamp is not a number" end
  if ts >= 1e12 then ts = ts / 1000 end
  local tolerance = t.tolerance_s or 300
  local now = t.now or core.now()
  if math.abs(now - ts) > tolerance then return false, "timestamp outside the tolerance" end
  local expected = core.hmac_sha512_hex(t.secret, t.body .. ts_text)
  if not core.consttime_eq(expected, t.signature:lower()) then return false, "signature mismatch" end
  return true
end

return uqpay
