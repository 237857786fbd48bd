-- Access-token lifecycle (SPEC §2): fetched lazily, one token per
-- (environment, client id, base URL) shared between processes through a
-- 0600 cache file, minted under an exclusive lock so that concurrent
-- processes do not stampede the token endpoint, refreshed 5 minutes
-- before expired_at, and dropped (from memory and from the cache file)
-- after a 401 that says it is invalid or expired. A reply without a usable
-- future expired_at is kept by this process for 60 s, never cached.
local core = require "uqpay.core"
local json = require "uqpay.json"
local Parallel = require "uqpay.parallel"

local T = {}
T.__index = T

local REFRESH_BEFORE_S = 300
local UNDATED_TTL_S = 60

function T.new(cfg, fetch)
  local self = setmetatable({ cfg = cfg, fetch = fetch }, T)
  -- The in-process simulator is new every run: its tokens are not worth a file.
  if not cfg.inprocess_sim then
    local tag = core.hmac_sha512_hex("uqlua-token-cache", cfg.env .. "\0" .. (cfg.client_id or "") .. "\0" .. cfg.base_url)
    self.path = cfg.cache_dir .. "/token-" .. cfg.env .. "-" .. tag:sub(1, 16) .. ".json"
  end
  return self
end

-- expired_at in seconds (milliseconds are accepted too), or nil
local function expiry(tok)
  local e = tonumber(tok.expired_at)
  if e and e > 1e12 then e = e / 1000 end
  return e
end

local function fresh(tok)
  if not (tok and tok.auth_token) then return false end
  if tok.keep_until then return core.now() < tok.keep_until end
  local e = expiry(tok)
  return e ~= nil and e - core.now() > REFRESH_BEFORE_S
end

-- A freshly fetched token: one without a usable future expiry (none, in
-- the past, or inside the refresh margin) is kept by this process for a
-- minute, or half of what is left of it, never fetched per request.
local function adopt(tok)
  require("uqpay.redact").secret(tok.auth_token)
  local e, now = expiry(tok), core.now()
  if not e or e - now <= REFRESH_BEFORE_S then
    local left = e and e > now and (e - now) / 2 or UNDATED_TTL_S
    tok.keep_until = now + math.min(UNDATED_TTL_S, left)
  end
  return tok
end

function T:read_cache()
  if not self.path then return nil end
  local f = io.open(self.path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  local ok, tok = pcall(json.decode, text, { money = false })
  if ok and type(tok) == "table" then return tok end
end

-- Returns a valid token, fetching one if needed. Inside uqpay.parallel the
-- fetch does not yield: every item needs the token, and an item that
-- yielded mid-fetch would leave the others to wait on it, which a
-- coroutine of the script's own cannot do (it can only block), and a second
-- flock from this process would wait forever on the first.
function T:get()
  if fresh(self.token) then return self.token.auth_token end
  return Parallel.blocking(self.obtain, self)
end

-- The request header line for a valid token, made once per token (the
-- line is 400 bytes, and a request used to build it anew), and the token.
function T:header()
  local tok = self:get()
  if self.header_for ~= tok then self.header_for, self.header_line = tok, "x-auth-token: Bearer " .. tok end
  return self.header_line, tok
end

function T:obtain()
  if not self.path then
    self.token = adopt(self.fetch())
    return self.token.auth_token
  end
  local cached = self:read_cache()
  if fresh(cached) and cached.auth_token ~= self.rejected then
    require("uqpay.redact").secret(cached.auth_token)
    self.token = cached
    return cached.auth_token
  end
  assert(core.mkdir_private(self.cfg.cache_dir))
  -- Under the lock, look again: another process may have refreshed it.
  local lock <close> = assert(core.lock(self.path .. ".lock")) -- luacheck: ignore 211 (held until return)
  cached = self:read_cache()
  if fresh(cached) and cached.auth_token ~= self.rejected then
    require("uqpay.redact").secret(cached.auth_token)
    self.token = cached
  else
    self.token = adopt(self.fetch())
    if not self.token.keep_until then
      assert(core.write_private(self.path, json.encode { auth_token = self.token.auth_token,
                                                       expired_at = self.token.expired_at }))
    end
  end
  return self.token.auth_token
end

-- After a 401 that says the token is invalid or expired. dead: the token
-- that request carried. It is dropped from memory and from the shared
-- cache (unless another process has already put a newer one there), so
-- that no later run starts with it. A token already replaced stays: inside
-- uqpay.parallel the other items' requests sent with the dead one come back
-- after the first has fetched anew, and fetching again for each would cost
-- a token request apiece, and on the business lines where a new token
-- revokes the old ones, fail the requests just re-sent.
function T:invalidate(dead)
  if not (self.token and self.token.auth_token == dead) then return end
  self.token = nil
  self.rejected = dead
  if not self.path then return end
  local lock <close> = core.lock(self.path .. ".lock") -- luacheck: ignore 211 (held until return)
  local cached = self:read_cache()
  if cached and cached.auth_token == dead then os.remove(self.path) end
end

-- The claims of a JWT access token (payload decoded, signature not
-- checked, as the official SDKs do), or nil.
function T.claims(token)
  local payload = type(token) == "string" and token:match("^[%w_%-]+%.([%w_%-]+)%.[%w_%-]+$")
  if not payload then return nil end
  local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
  local bits, n, out = 0, 0, {}
  for ch in payload:gmatch(".") do
    local v = B64:find(ch, 1, true)
    if not v then return nil end
    bits, n = (bits << 6) | (v - 1), n + 6
    if n >= 8 then
      n = n - 8
      out[#out + 1] = string.char((bits >> n) & 255)
    end
  end
  local ok, t = pcall(json.decode, table.concat(out), { money = false })
  return ok and type(t) == "table" and t or nil
end

return T
