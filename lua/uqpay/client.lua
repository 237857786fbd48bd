-- The one request path (SPEC §4): rate limit -> token -> send over the C
-- transport -> classify -> retry with the same idempotency key -> decode.
-- Every write carries x-idempotency-key, minted once per logical operation.
local core = require "uqpay.core"
local json = require "uqpay.json"
local E = require "uqpay.errors"
local C = require "uqpay.config"
local R = require "uqpay.redact"
local Token = require "uqpay.token"
local Parallel = require "uqpay.parallel"

local Client = {}
Client.__index = Client

local RETRY_AFTER_CAP_MS = 60000

function Client.new(cfg)
  local self = setmetatable({ cfg = cfg, http = core.http_new(), attempts_total = 0 }, Client)
  self.token = Token.new(cfg, function() return self:fetch_token() end)
  -- starts full: a script's first burst (a tenth of a minute's quota) does not wait
  self.bucket = { tokens = math.max(1, (cfg.rate_limit or 0) // 10), last = core.monotonic_ms() }
  self.secrets = { cfg.api_key, cfg.client_id }
  return self
end

function Client:trace(fmt, ...)
  if self.cfg.trace then
    io.stderr:write(R.text(string.format(fmt, ...), self.secrets), "\n")
  end
end

local function urlencode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

function Client.query_string(q)
  if not q then return "" end
  local keys = {}
  for k in pairs(q) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = urlencode(k) .. "=" .. urlencode(q[k]) end
  return #parts > 0 and ("?" .. table.concat(parts, "&")) or ""
end

-- Token bucket: rate_limit requests per minute, bursts up to a tenth of it.
function Client:throttle()
  local per_min = self.cfg.rate_limit
  if not per_min or per_min <= 0 then return end
  local b = self.bucket
  local cap = math.max(1, per_min // 10)
  local now = core.monotonic_ms()
  b.tokens = math.min(cap, b.tokens + (now - b.last) * per_min / 60000)
  b.last = now
  if b.tokens < 1 then
    local wait = math.ceil((1 - b.tokens) * 60000 / per_min)
    self:sleep(wait)
    b.tokens, b.last = 1, core.monotonic_ms()
  end
  b.tokens = b.tokens - 1
end

function Client:sleep(ms)
  if not Parallel.sleep(ms) then
    E.raise { kind = "interrupted", message = "interrupted while waiting to retry" }
  end
end

-- Parses an error response: HTTP status first, then {type, code, message},
-- then {error}, then {code, message}. The raw body is kept, redacted.
function Client:api_error(res, spec, key, attempts)
  local ok, body = pcall(json.decode, res.body, { money = false })
  if not ok or type(body) ~= "table" then body = {} end
  local s = res.status
  local kind = "api"
  if s == 401 or s == 403 then kind = "auth"
  elseif s == 429 then kind = "rate_limit"
  elseif body.type == "idempotency_error" then kind = "idempotency" end
  local message = body.message or body.error
  if type(message) ~= "string" then message = "HTTP " .. s end
  local code = body.code
  if code ~= nil then code = tostring(code) end
  return E.new {
    kind = kind, status = s, type = type(body.type) == "string" and body.type or nil, code = code,
    message = R.text(message, self.secrets), method = spec.method, path = spec.path,
    idempotency_key = key, attempts = attempts, body = R.text(res.body, self.secrets),
  }
end

local function is_processing(res)
  return res.status == 409 or (res.body or ""):lower():find("request is processing", 1, true) ~= nil
end

local function token_expired(res)
  if res.status ~= 401 then return false end
  local b = (res.body or ""):lower()
  return b:find("expired", 1, true) ~= nil
end

local function retry_after_ms(res)
  local v = res.headers and res.headers["retry-after"]
  local n = v and tonumber(v)
  if n then return math.min(RETRY_AFTER_CAP_MS, math.floor(n * 1000)) end
  return nil
end

local function backoff_ms(attempt)
  return math.min(10000, 200 * 2 ^ (attempt - 1)) // 1 + math.random(0, 250)
end

-- One HTTP exchange: on this client's easy handle, or, inside
-- uqpay.parallel, on the scheduler's multi handle.
function Client:send(method, url, headers, body, timeout_ms)
  self.attempts_total = self.attempts_total + 1
  local req = { method = method, url = url, headers = headers, body = body,
    timeout_ms = timeout_ms or self.cfg.timeout_ms, connect_timeout_ms = self.cfg.connect_timeout_ms }
  if Parallel.active() then return Parallel.http(req) end
  return self.http:request(req)
end

function Client:fetch_token()
  if not self.cfg.client_id or not self.cfg.api_key then
    E.config("no credentials: set UQPAY_CLIENT_ID and UQPAY_API_KEY, or a profile in " ..
      C.config_path(self.cfg.noenv) .. " (or use --sim)")
  end
  local url = self.cfg.base_url .. "/v1/connect/token"
  local spec = { method = "POST", path = "/v1/connect/token" }
  for attempt = 1, self.cfg.max_attempts do
    self:throttle()
    self:trace("> POST %s (token)", url)
    local res, kind, msg = self:send("POST", url, {
      "Content-Type: application/json", "x-client-id: " .. self.cfg.client_id, "x-api-key: " .. self.cfg.api_key,
    }, "{}")
    if not res then
      if kind == "interrupted" then E.raise { kind = "interrupted", message = "interrupted", method = "POST", path = spec.path } end
      if attempt == self.cfg.max_attempts then
        E.raise { kind = kind, message = "token request failed: " .. msg, method = "POST", path = spec.path, attempts = attempt }
      end
      self:sleep(backoff_ms(attempt))
    else
      self:trace("< %d token (%.1f ms)", res.status, res.time_ms)
      if res.status == 200 then
        local ok, t = pcall(json.decode, res.body, { money = false })
        if ok and type(t) == "table" and type(t.auth_token) == "string" then return t end
        E.raise { kind = "auth", status = 200, message = "token endpoint returned no auth_token", method = "POST", path = spec.path }
      end
      if not (res.status == 429 or res.status >= 500) or attempt == self.cfg.max_attempts then
        local err = self:api_error(res, spec, nil, attempt)
        if err.kind == "api" and res.status < 500 then err.kind = "auth" end
        error(err, 0)
      end
      self:sleep(retry_after_ms(res) or backoff_ms(attempt))
    end
  end
end

-- Production guard (SPEC §9): before the first write in production, show
-- where it goes and ask on the terminal, unless --yes. Without a terminal
-- and without --yes, production writes are refused.
function Client:confirm_production(spec, obo)
  if self.cfg.env ~= "production" or self.confirmed or spec.method == "GET" or spec.read_only then return end
  local target = string.format("PRODUCTION %s, account %s", self.cfg.base_url, obo or "master")
  if self.cfg.yes then
    self.confirmed = true
    return
  end
  if not (core.isatty(0) and core.isatty(2)) then
    E.raise { kind = "config", method = spec.method, path = spec.path,
              message = "refusing a production write (" .. spec.method .. " " .. spec.path .. ") without a terminal " ..
                        "to confirm it; check the script with --dry-run, then run it with --yes" }
  end
  io.stderr:write(string.format("\n  About to write to %s\n  first write: %s %s\n  Type 'yes' to go on: ",
    target, spec.method, spec.path))
  io.stderr:flush()
  local answer = io.read("l")
  if answer ~= "yes" then
    E.raise { kind = "interrupted", message = "production write not confirmed", method = spec.method, path = spec.path }
  end
  self.confirmed = true
end

-- spec: {method, path, query, body, key, on_behalf_of, timeout_ms, banking,
--        raw (return the body text as is), read_only (a POST that moves nothing)}
-- Returns the decoded response and its raw text.
function Client:call(spec)
  local write = spec.method ~= "GET"
  local key = spec.key
  if write and not key then key = core.uuid() end
  local url = self.cfg.base_url .. spec.path .. Client.query_string(spec.query)
  local body = spec.body_text
  if body == "" then body = nil end
  if body == nil and spec.body ~= nil then body = json.encode(spec.body, { money = spec.banking and "string" or "number" }) end
  local obo = spec.on_behalf_of
  if obo == nil then obo = self.cfg.on_behalf_of end
  if obo == false then obo = nil end -- master-account operation
  self:confirm_production(spec, obo)
  local refreshed, uncertain = false, false
  local last_res, last_kind, last_msg
  local attempt = 0
  -- A write an earlier attempt may have applied: its outcome is unknown.
  local function unknown_outcome(why)
    E.raise {
      kind = "reconcile_required", method = spec.method, path = spec.path, idempotency_key = key, attempts = attempt,
      status = last_res and last_res.status or nil,
      message = "the outcome of this write is unknown after " .. attempt .. " attempts (" .. why ..
        "); check the resource before sending it again, or retry with the same idempotency key",
    }
  end
  while true do
    attempt = attempt + 1
    self:throttle()
    local got, token = pcall(self.token.get, self.token)
    if not got then
      if write and uncertain and not (E.is(token) and token.kind == "interrupted") then
        unknown_outcome("then no token: " .. tostring(token))
      end
      error(token, 0)
    end
    local headers = { "Accept: application/json", "x-auth-token: Bearer " .. token }
    if body then headers[#headers + 1] = "Content-Type: application/json" end
    if key then headers[#headers + 1] = "x-idempotency-key: " .. key end
    if obo then headers[#headers + 1] = "x-on-behalf-of: " .. obo end
    self:trace("> %s %s%s%s", spec.method, url, key and ("  key=" .. key) or "", body and ("\n  " .. body) or "")
    local res, kind, msg = self:send(spec.method, url, headers, body, spec.timeout_ms)
    last_res, last_kind, last_msg = res, kind, msg
    -- a write that may have been applied stays uncertain until a reply says otherwise
    if not res or res.status >= 500 or is_processing(res) then uncertain = true end
    local wait
    if not res then
      self:trace("< %s: %s", kind, msg)
      if kind == "interrupted" then
        E.raise { kind = "interrupted", message = "interrupted during " .. spec.method .. " " .. spec.path,
                  method = spec.method, path = spec.path, idempotency_key = key, attempts = attempt }
      end
      wait = backoff_ms(attempt)
    else
      self:trace("< %d %s %s (%.1f ms)\n  %s", res.status, spec.method, spec.path, res.time_ms, res.body)
      if res.status >= 200 and res.status < 300 then
        if spec.raw then return res.body, res.body end
        if res.body == "" then return {}, "" end
        local ok, decoded = pcall(json.decode, res.body)
        if not ok then
          E.raise { kind = "api", status = res.status, message = "response is not JSON: " .. tostring(decoded),
                    method = spec.method, path = spec.path, idempotency_key = key, body = R.text(res.body, self.secrets) }
        end
        return decoded, res.body
      end
      if token_expired(res) and not refreshed then
        -- a refresh is not a retry: new token, same key, right away
        refreshed = true
        self.token:invalidate()
        attempt = attempt - 1
        wait = 0
      elseif res.status == 408 or res.status == 429 or res.status >= 500 or is_processing(res) then
        wait = retry_after_ms(res) or backoff_ms(attempt)
      elseif write and uncertain and (res.status == 401 or res.status == 403) then
        -- refused before the idempotency store was consulted: says nothing
        -- about the earlier attempt
        unknown_outcome("then HTTP " .. res.status)
      else
        error(self:api_error(res, spec, key, attempt), 0)
      end
    end
    if attempt >= self.cfg.max_attempts then break end
    if wait > 0 then self:sleep(wait) end
  end
  -- Out of attempts.
  if write and uncertain then
    unknown_outcome(last_res and ("HTTP " .. last_res.status) or (last_kind .. ": " .. last_msg))
  end
  if last_res then error(self:api_error(last_res, spec, key, attempt), 0) end
  E.raise { kind = last_kind, message = last_msg, method = spec.method, path = spec.path, idempotency_key = key,
            attempts = attempt }
end

function Client:close()
  self.http:close()
end

return Client
