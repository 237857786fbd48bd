-- The one request path (SPEC §4): one classification of every HTTP outcome
-- and one retry loop, shared by the token request and every call:
--   rate limit -> headers (token) -> the one transport -> classify ->
--   done | retry(after) | refresh_token | rejected | unknown
-- A write is sent only through its operation (uqpay.core Op, see
-- src/operation.c): the operation's state machine, not this loop, decides
-- what an outcome means for it; this loop only reports each attempt.
local core = require "uqpay.core"
local json = require "uqpay.json"
local E = require "uqpay.errors"
local C = require "uqpay.config"
local R = require "uqpay.redact"
local Token = require "uqpay.token"
local Parallel = require "uqpay.parallel"
local Transport = require "uqpay.transport"
local Run = require "uqpay.run"

local Client = {}
Client.__index = Client

local RETRY_AFTER_CAP_MS = 60000

function Client.new(cfg)
  local self = setmetatable({ cfg = cfg, attempts_total = 0 }, Client)
  self.token = Token.new(cfg, function() return self:fetch_token() end)
  -- starts full: a script's first burst (a tenth of a minute's quota) does not wait
  self.bucket = { tokens = math.max(1, (cfg.rate_limit or 0) // 10), last = core.monotonic_ms() }
  -- what 429s taught: a pause for every caller, and the rate when unknown
  self.learned = { pause_until = 0, ok = 0, window = 0 }
  R.secret(cfg.api_key)
  R.secret(cfg.client_id)
  return self
end

function Client:trace(fmt, ...)
  if self.cfg.trace then
    io.stderr:write(R.text(string.format(fmt, ...)), "\n")
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

-- A 429 pauses every caller of this client until its Retry-After, not
-- only the one that got it (the others would spend attempts on 429s). When
-- the limit is not known (rate_limit 0), the client learns it: after a
-- pause the server's bucket starts empty, so the requests that succeed,
-- sent from the pause's start to the next 429, came at the server's rate,
-- and the client paces at that rate from then on (a new 429 measures
-- again). A request counts in the window it was sent in, even when its
-- answer comes after the 429 that closed the window: answers that finish
-- together are handled in no particular order, so counting by arrival
-- moved them into the next window (a rate measured up to half too high).
-- Windows are numbered, and a request carries the number current when it
-- left: a clock reading put requests that left in the same millisecond as
-- a 429, before it was handled, into the window it opened (a fast machine
-- learned rates up to a tenth too high).
function Client:learn(w, now)
  if w.ok == 0 then return end
  local l = self.learned
  if not l.per_min then self.bucket = { tokens = 0, last = now } end
  l.per_min = w.ok * 60000 / math.max(1, w.till - w.since)
end

-- A 429 for a request sent in window. One sent before the current window
-- opened was refused by the bucket the last pause waited out: its answer,
-- however late, neither pauses anyone again nor ends the window being
-- measured (a slow request that straddled a pause used to cut the next
-- measurement short, and the client learned a rate far too low).
function Client:rate_limited(wait_ms, window)
  local now = core.monotonic_ms()
  local l = self.learned
  if now < l.pause_until then return l.pause_until - now end -- the same pause
  if window < l.window then return 0 end
  if (self.cfg.rate_limit or 0) <= 0 and l.since then
    l.closed = { window = l.window, since = l.since, till = now, ok = l.ok }
    self:learn(l.closed, now)
  end
  l.window, l.pause_until, l.since, l.ok = l.window + 1, now + wait_ms, now, 0
  return wait_ms
end

-- A request sent in window succeeded: it counts there.
function Client:succeeded(window)
  local l = self.learned
  if window == l.window then
    l.ok = l.ok + 1
  elseif l.closed and window == l.closed.window then
    l.closed.ok = l.closed.ok + 1
    self:learn(l.closed, core.monotonic_ms())
  end
end

-- Token bucket: rate_limit requests per minute (or the learned rate),
-- bursts up to a tenth of a known limit (none at a learned one). A caller
-- takes its token first and then waits out the debt, so callers waiting
-- together in uqpay.parallel queue one behind the other instead of all
-- leaving when the first wait ends. Returns the bucket a turn was taken
-- from (nil when nothing is paced).
function Client:throttle()
  local l = self.learned
  local pause = l.pause_until - core.monotonic_ms()
  if pause > 0 then self:sleep(pause) end
  local known = self.cfg.rate_limit or 0
  local per_min = known > 0 and known or l.per_min
  if not per_min then return nil end
  local b = self.bucket
  local cap = known > 0 and math.max(1, per_min // 10) or 1
  local now = core.monotonic_ms()
  b.tokens = math.min(cap, b.tokens + (now - b.last) * per_min / 60000) - 1
  b.last = now
  if b.tokens < 0 then
    local ok, err = pcall(self.sleep, self, math.ceil(-b.tokens * 60000 / per_min))
    if not ok then -- interrupted: the turn was not used, so later callers do not wait for it
      self:unthrottle(b)
      error(err, 0)
    end
  end
  return b
end

-- A turn taken from bucket b that was not used: the request did not leave.
function Client:unthrottle(b)
  if b and b == self.bucket then b.tokens = b.tokens + 1 end
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
  -- type and code are the server's text too: an echoed token or card number is redacted there as in message
  local code = body.code
  if code ~= nil then code = R.text(tostring(code)) end
  return E.new {
    kind = kind, status = s, type = type(body.type) == "string" and R.text(body.type) or nil, code = code,
    message = R.text(message), method = spec.method, path = spec.path,
    idempotency_key = key, attempts = attempts, body = R.body(res.body),
  }
end

local function lower_body(res) return (res.body or ""):lower() end

local function retry_after_ms(res)
  local v = res.retry_after -- the one response header the transport passes on
  local n = v and tonumber(v)
  if n then return math.min(RETRY_AFTER_CAP_MS, math.max(0, math.floor(n * 1000))) end
  return nil
end

local function backoff_ms(attempt)
  return math.min(10000, 200 * 2 ^ (attempt - 1)) // 1 + math.random(0, 250)
end

-- The one classification of an HTTP outcome: class, reached, wait_ms.
--   class    done | retry | refresh_token | rejected | unknown
--   reached  whether this attempt may have reached the server's
--            idempotency store (what makes a write IN_DOUBT)
-- res is the reply, or nil with the transport's kind and sent flag.
function Client.classify(res, kind, sent)
  if not res then
    -- interrupted, or a reply past max_response_bytes: no point in retrying
    if kind == "interrupted" or kind == "api" then return "unknown", sent == true end
    return "retry", sent == true
  end
  local s = res.status
  if s >= 200 and s < 300 then return "done", true end
  local b = lower_body(res)
  if s == 401 and (b:find("expired", 1, true) or (b:find("invalid", 1, true) and b:find("token", 1, true))) then
    return "refresh_token", false
  end
  -- refused before the idempotency store was consulted
  if s == 401 or s == 403 then return "unknown", false end
  if s == 408 or s == 429 then return "retry", false, retry_after_ms(res) end
  if b:find("request is processing", 1, true) or b:find("request_processing", 1, true) then
    return "retry", true, retry_after_ms(res)
  end
  if s >= 500 then return "retry", true, retry_after_ms(res) end
  -- 409 is not documented for Issuing; where APIs use it, it means a request
  -- with this key is still being handled or conflicted with one: this one
  -- may be applied, so it is retried with the same key and stays in doubt
  -- (a rejection would let the next run send it again under a new key)
  if s == 409 then return "retry", true, retry_after_ms(res) end
  if s >= 400 then
    -- the key is taken by another request: this one was not applied under
    -- it now, but a server that says so to a replay would hide an earlier
    -- success, so it settles nothing
    if b:find("idempotency_error", 1, true) then return "unknown", false end
    return "rejected", true
  end
  return "unknown", true -- 1xx, 3xx (redirects are never followed)
end

-- The call is over without a definitive answer: the operation decides.
local function give_up(x, attempt, last_res, err)
  local op, spec = x.op, x.spec
  if op and op:settle() == "in_doubt" then
    E.raise {
      kind = "reconcile_required", method = spec.method, path = spec.path, idempotency_key = x.key,
      attempts = attempt, status = last_res and last_res.status or nil,
      message = "the outcome of this write is unknown (" .. (E.is(err) and err.message or tostring(err)) ..
        "); it may have been applied. Run the same command again to send it with the same key, or check " ..
        "the resource first",
    }
  end
  error(err, 0)
end

-- An API call's headers, made for each attempt (a refresh changes the
-- token; getting one may raise). A write's key is added by the transport
-- from its operation; a read POST carries x.key.
function Client:api_headers(x)
  local auth
  auth, x.sent_token = self.token:header()
  if x.body and not x.obo and (x.op or not x.key) then
    -- the common shape, made once per token (a write's key is the transport's)
    if self.json_headers_for ~= auth then
      self.json_headers_for = auth
      self.json_headers = { "Accept: application/json", auth, "Content-Type: application/json" }
    end
    return self.json_headers
  end
  local headers = { "Accept: application/json", auth }
  if x.body then headers[#headers + 1] = "Content-Type: application/json" end
  if x.key and not x.op then headers[#headers + 1] = "x-idempotency-key: " .. x.key end
  if x.obo then headers[#headers + 1] = "x-on-behalf-of: " .. x.obo end
  return headers
end

-- Inside uqpay.parallel a request that passed throttle() leaves at the
-- scheduler round's end. A 429 handled in between (another item's, later
-- in the same round) opened a pause: sent anyway, it would only be refused
-- again, and count against the measurement. The scheduler asks this first.
local function sent_into_pause(x)
  return x.client.learned.window ~= x.window
end

-- The one retry loop. x = {method, path, url, body, timeout_ms, obo,
-- fixed_headers (the token request's; otherwise api_headers), op (a
-- write's operation), key (a read POST's), token (the token request
-- itself), spec (for errors)}. x is also the transport's request: its
-- headers and limits are set here.
-- Returns the reply of a "done" attempt; raises otherwise.
function Client:exchange(x)
  local op, spec, cfg = x.op, x.spec, self.cfg
  local refreshed, attempt = false, 0
  local last_res, last_kind, last_msg, last_err
  if op then x.key = op:key() end
  x.write = op ~= nil
  x.timeout_ms = x.timeout_ms or cfg.timeout_ms
  x.connect_timeout_ms, x.max_response_bytes = cfg.connect_timeout_ms, cfg.max_response_bytes
  local key = x.key
  while true do
    attempt = attempt + 1
    -- the token endpoint has a limit of its own: its requests neither wait
    -- on the API's budget nor count in it, and its 429s pause nobody else
    -- (one used to end the window being measured after a few successes,
    -- and the client learned a rate a tenth of the server's)
    if not x.token then
      x.turn = self:throttle()
      x.client, x.window = self, self.learned.window
      x.recall = Parallel.active() and sent_into_pause or nil
    end
    -- a key about to leave UQPAY's 24-hour memory is not sent again
    if op and x.intent_ts and Run.key_life_left(x.intent_ts) < 0 then
      last_err = E.new { kind = "reconcile_required", message = "its key is too old to be sent again",
                         method = x.method, path = x.path, idempotency_key = key }
      break
    end
    local ok, headers = true, x.fixed_headers
    if not headers then ok, headers = pcall(self.api_headers, self, x) end
    if not ok then last_err = headers; break end
    x.headers = headers
    if cfg.trace then
      self:trace("> %s %s%s%s", x.method, R.url(x.url), key and ("  key=" .. key) or "",
        x.body and ("\n  " .. R.body(x.body)) or "")
    end
    local res, kind, msg, sent = Transport.request(x, op)
    if kind == "recalled" then
      -- it never left: not an attempt, and its turn goes back; throttle()
      -- again, which waits out the pause
      attempt = attempt - 1
      self:unthrottle(x.turn)
      if cfg.trace then self:trace("~ %s %s held back: a rate-limit pause began before it left", x.method, x.path) end
      goto again
    end
    self.attempts_total = self.attempts_total + 1
    -- the token endpoint's reply holds secrets under names of its own
    -- choosing (auth_token, refresh_token, id_token, ...): each is known as a
    -- secret before anything is traced or made into an error, so that a
    -- repeat of it under any other name or in a message is removed too
    if x.token and res then
      local decoded, t = pcall(json.decode, res.body, { money = false })
      if decoded then R.learn(t) end
    end
    last_res, last_kind, last_msg = res, kind, msg
    local class, reached, wait = Client.classify(res, kind, sent)
    if res and cfg.trace then
      self:trace("< %d %s %s (%.1f ms)\n  %s", res.status, x.method, x.path, res.time_ms, R.body(res.body))
    elseif not res then
      self:trace("< %s: %s", kind, msg)
    end
    if class == "done" then
      if not x.token then self:succeeded(x.window) end
      return res
    end
    if op then op:observe(class, reached, res and res.status or 0, class == "rejected" and R.body(res.body) or nil) end
    if kind == "interrupted" then
      last_err = E.new { kind = "interrupted", message = "interrupted during " .. x.method .. " " .. x.path,
                         method = x.method, path = x.path, idempotency_key = key, attempts = attempt }
      if op then op:settle() end
      error(last_err, 0)
    end
    if x.token and class ~= "retry" and not res then
      error(E.new { kind = kind, message = "token request failed: " .. msg, method = x.method, path = x.path,
                    attempts = attempt }, 0)
    end
    if class == "rejected" or (x.token and class ~= "retry") then
      local err = self:api_error(res, spec, key, attempt)
      if x.token and err.kind == "api" and res.status < 500 then err.kind = "auth" end
      error(err, 0)
    end
    if class == "refresh_token" and not refreshed then
      -- a refresh is not a retry: new token, same key, right away
      refreshed = true
      self.token:invalidate(x.sent_token)
      attempt = attempt - 1
    elseif class == "retry" and attempt < cfg.max_attempts then
      if res and res.status == 429 and not x.token then
        self:rate_limited(wait or backoff_ms(attempt), x.window) -- the next throttle() waits it out, with every caller
      else
        self:sleep(wait or backoff_ms(attempt))
      end
    else
      break
    end
    ::again::
  end
  if last_err then give_up(x, attempt, last_res, last_err) end
  if last_res then give_up(x, attempt, last_res, self:api_error(last_res, spec, key, attempt)) end
  give_up(x, attempt, last_res, E.new { kind = last_kind, message = last_msg, method = x.method, path = x.path,
                                       idempotency_key = key, attempts = attempt })
end

function Client:fetch_token()
  if not self.cfg.client_id or not self.cfg.api_key then
    E.config("no credentials: set UQPAY_CLIENT_ID and UQPAY_API_KEY, or a profile in " ..
      C.config_path(self.cfg.noenv) .. " (or use --sim)")
  end
  local spec = { method = "POST", path = "/v1/connect/token" }
  local headers = { "Content-Type: application/json", "x-client-id: " .. self.cfg.client_id,
                    "x-api-key: " .. self.cfg.api_key }
  local res = self:exchange { method = "POST", path = spec.path, url = self.cfg.base_url .. spec.path, body = "{}",
                              fixed_headers = headers, token = true, spec = spec, real = true }
  local ok, t = pcall(json.decode, res.body, { money = false })
  if ok and type(t) == "table" and type(t.auth_token) == "string" then return t end
  E.raise { kind = "auth", status = res.status, message = "token endpoint returned no auth_token",
            method = "POST", path = spec.path }
end

-- Production guard (SPEC §9): before the first write in production, show
-- where it goes and ask on the terminal, unless --yes. Without a terminal
-- and without --yes, production writes are refused. Called before the
-- operation's intent: a refused write leaves nothing in the journal.
function Client:confirm_production(spec, obo)
  if self.cfg.env ~= "production" or self.confirmed or spec.effect ~= "write" then return end
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

function Client:account(spec)
  local obo = spec.on_behalf_of
  if obo == nil then obo = self.cfg.on_behalf_of end
  if obo == false then obo = nil end -- master-account operation
  return obo
end

-- spec: {method, path, query, body_text, effect, on_behalf_of, timeout_ms,
--        raw (return the body text as is)}; op: the write's operation.
-- The error for a 2xx whose body is not JSON (a write's applied all the
-- same): raised when it arrives, and again when the journal answers it.
function Client.not_json(spec, body, err, key, status, replayed)
  return E.new { kind = "api", status = status, method = spec.method, path = spec.path, body = R.body(body),
    message = "response is not JSON" .. (replayed and " (answered from the journal)" or "") .. ": " ..
      R.text(tostring(err)), idempotency_key = key }
end

-- Returns the decoded response and its raw text.
function Client:call(spec, op, intent_ts)
  local url = (spec.files and self.cfg.files_url or self.cfg.base_url) .. spec.path .. Client.query_string(spec.query)
  local body = spec.body_text
  if body == "" or spec.multipart then body = nil end
  -- a read that is a POST (Retrieve Issuing Balance) carries a fresh key
  local read_key = not op and spec.method ~= "GET" and (spec.key or core.uuid()) or nil
  local res = self:exchange { method = spec.method, path = spec.path, url = url, body = body, op = op, spec = spec,
    key = read_key, timeout_ms = spec.timeout_ms, intent_ts = intent_ts, real = spec.real, multipart = spec.multipart,
    obo = self:account(spec) }
  local decoded
  if spec.raw then
    decoded = res.body
  elseif res.body == "" then
    decoded = {}
  else
    local ok, d = pcall(json.decode, res.body)
    if not ok then
      if op then op:observe("done", true, res.status, R.text(res.body)) end
      error(Client.not_json(spec, res.body, d, op and op:key() or nil, res.status), 0)
    end
    decoded = d
  end
  if op then
    -- the journal keeps the answer, with secrets redacted by structure
    local kept = res.body
    if not op:persistent() then
      kept = nil -- a memory journal keeps nothing
    elseif type(decoded) == "table" then
      kept = R.kept(decoded, res.body)
    elseif spec.raw then
      kept = R.body(res.body)
    end
    op:observe("done", true, res.status, kept)
  end
  return decoded, res.body
end

function Client:close() end

return Client
