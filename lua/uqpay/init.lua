-- The uqpay module: the public Lua API. Endpoint functions come from the
-- declarative table in uqpay.endpoints; everything goes through one
-- Client (uqpay.client), created on first use so that utilities such as
-- uqpay.uuid() need no credentials.
local core = require "uqpay.core"
local E = require "uqpay.errors"
local C = require "uqpay.config"
local A = require "uqpay.api"
local Parallel = require "uqpay.parallel"

local uqpay = {
  version = core.version,
  money = core.money,
  uuid = core.uuid,
  json = require "uqpay.json",
  errors = E,
}

local client, cfg

local function get_client()
  if not client then
    cfg = cfg or C.resolve()
    client = require("uqpay.client").new(cfg)
  end
  return client
end

-- The run's journal (or false when not journaled) and dry-run plan, both
-- created at the first write.
local journal, dryrun

-- Called by the host once the script has ended without error.
local function on_success(finish)
  debug.getregistry()["uqlua.finish_run"] = finish
end

-- The one request path: reads straight to the client; writes through the
-- dry-run plan or the run journal.
local function dispatch(spec)
  local c = get_client()
  if spec.master then spec.on_behalf_of = false end
  if spec.method == "GET" or spec.read_only then return (c:call(spec)) end
  spec.body_text = spec.body ~= nil and uqpay.json.encode(spec.body, { money = spec.banking and "string" or "number" }) or ""
  if cfg.dry_run then
    if not dryrun then
      dryrun = require("uqpay.dryrun").new(function(s) return (c:call(s)) end)
      on_success(function() dryrun:finish() end)
    end
    return (dryrun:record(spec, spec.body_text))
  end
  if journal == nil then
    journal = require("uqpay.journal").open(cfg) or false
    if journal then on_success(function() journal:finish() end) end
  end
  if journal then return journal:perform(spec, function(s) return c:call(s) end, spec.body_text) end
  return (c:call(spec))
end

-- The cards and accounts a write touches: inside uqpay.parallel, writes to
-- the same one are never reordered.
local function resources(spec)
  local keys = {}
  local card = spec.path:match("^/v1/issuing/cards/([^/]+)")
  if card then keys[#keys + 1] = "card:" .. card end
  local b = type(spec.body) == "table" and spec.body or {}
  for _, f in ipairs { "source_account_id", "destination_account_id", "target_account_id" } do
    if type(b[f]) == "string" then keys[#keys + 1] = "account:" .. b[f] end
  end
  return keys
end

local function call(spec)
  if Parallel.active() and spec.method ~= "GET" and not spec.read_only then
    return Parallel.with_locks(resources(spec), dispatch, spec)
  end
  return dispatch(spec)
end

A.install(uqpay, require "uqpay.endpoints", call)

-- uqpay.config(): the active configuration, secrets redacted.
function uqpay.config()
  cfg = cfg or C.resolve()
  return C.redacted(cfg)
end

-- uqpay.request(method, path, {query=, body=, key=, on_behalf_of=,
-- timeout_ms=, banking=}): any endpoint not in the table.
function uqpay.request(method, path, opts)
  if type(method) ~= "string" or not ({ GET = true, POST = true, PUT = true, PATCH = true, DELETE = true })[method:upper()] then
    E.usage("method", method, "must be GET, POST, PUT, PATCH or DELETE")
  end
  if type(path) ~= "string" or path:sub(1, 1) ~= "/" then E.usage("path", path, "must start with '/' (e.g. /v1/issuing/cards)") end
  opts = opts or {}
  local allowed = { query = true, body = true, key = true, on_behalf_of = true, timeout_ms = true, banking = true, raw = true }
  for k in pairs(opts) do
    if not allowed[k] then E.usage("opts." .. tostring(k), opts[k], "is not an option of uqpay.request") end
  end
  if opts.on_behalf_of ~= nil and (type(opts.on_behalf_of) ~= "string" or not opts.on_behalf_of:match(C.UUID)) then
    E.usage("on_behalf_of", opts.on_behalf_of, "is not a UUID")
  end
  local q
  for k, v in pairs(opts.query or {}) do q = q or {}; q[k] = tostring(v) end
  return call { method = method:upper(), path = path, query = q, body = opts.body, key = opts.key,
                on_behalf_of = opts.on_behalf_of, timeout_ms = opts.timeout_ms, banking = opts.banking, raw = opts.raw }
end

local TERMINAL = { success = true, succeeded = true, completed = true, failed = true, cancelled = true, rejected = true }

-- uqpay.wait(result, {timeout_ms=, on_behalf_of=}): polls a card order or
-- transfer until a terminal status and returns the final object. Pass the
-- on_behalf_of the operation used.
function uqpay.wait(result, opts)
  if type(result) ~= "table" then E.usage("result", result, "is not a card order or transfer") end
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "timeout_ms" and k ~= "on_behalf_of" then E.usage("opts." .. tostring(k), opts[k], "is not an option of uqpay.wait") end
  end
  if result.dry_run then return result end -- nothing was sent: nothing to wait for
  local timeout = opts.timeout_ms or 60000
  local ropts = { on_behalf_of = opts.on_behalf_of }
  local fetch, field
  if result.card_order_id then
    fetch, field = function() return uqpay.cards.order(result.card_order_id, ropts) end, "order_status"
  elseif result.transfer_id and result.target_account_id == nil and not result.short_reference_id then
    fetch, field = function() return uqpay.transfers.get(result.transfer_id, ropts) end, "transfer_status"
  elseif result.transfer_id then
    fetch, field = function() return uqpay.banking.transfers.get(result.transfer_id, ropts) end, "transfer_status"
  else
    E.usage("result", result, "has neither card_order_id nor transfer_id")
  end
  local deadline = core.monotonic_ms() + timeout
  local delay = 250
  while true do
    local cur = fetch()
    local status = tostring(cur[field] or ""):lower()
    if TERMINAL[status] then return cur end
    if core.monotonic_ms() + delay > deadline then
      E.raise { kind = "timeout", message = "still " .. tostring(cur[field]) .. " after " .. timeout .. " ms" }
    end
    if not Parallel.sleep(delay) then E.raise { kind = "interrupted", message = "interrupted while waiting" } end
    delay = math.min(delay * 2, 5000)
  end
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
