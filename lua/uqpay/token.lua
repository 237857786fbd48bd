-- Access-token lifecycle (SPEC §2): fetched lazily, one token per
-- (environment, client id, base URL) shared between processes through a
-- 0600 cache file, minted under an exclusive lock so that concurrent
-- processes do not stampede the token endpoint, refreshed 5 minutes
-- before expired_at, and invalidated once after a "token expired" 401.
local core = require "uqpay.core"
local json = require "uqpay.json"
local Parallel = require "uqpay.parallel"

local T = {}
T.__index = T

local REFRESH_BEFORE_S = 300

function T.new(cfg, fetch)
  local self = setmetatable({ cfg = cfg, fetch = fetch }, T)
  -- The in-process simulator is new every run: its tokens are not worth a file.
  if not cfg.inprocess_sim then
    local tag = core.hmac_sha512_hex("uqlua-token-cache", cfg.env .. "\0" .. (cfg.client_id or "") .. "\0" .. cfg.base_url)
    self.path = cfg.cache_dir .. "/token-" .. cfg.env .. "-" .. tag:sub(1, 16) .. ".json"
  end
  return self
end

local function fresh(tok)
  return tok and tok.auth_token and tonumber(tok.expired_at)
    and tok.expired_at - core.now() > REFRESH_BEFORE_S
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

-- Returns a valid token, fetching one if needed.
function T:get()
  -- inside uqpay.parallel: one fetch at a time (a second flock from this
  -- process would wait forever on the first)
  while self.fetching do Parallel.sleep(10) end
  if fresh(self.token) then return self.token.auth_token end
  self.fetching = true
  local ok, tok = pcall(self.obtain, self)
  self.fetching = false
  if not ok then error(tok, 0) end
  return tok
end

function T:obtain()
  if not self.path then
    self.token = self.fetch()
    return self.token.auth_token
  end
  local cached = self:read_cache()
  if fresh(cached) and cached.auth_token ~= self.rejected then
    self.token = cached
    return cached.auth_token
  end
  assert(core.mkdir_private(self.cfg.cache_dir))
  -- Under the lock, look again: another process may have refreshed it.
  local lock <close> = assert(core.lock(self.path .. ".lock"))
  cached = self:read_cache()
  if fresh(cached) and cached.auth_token ~= self.rejected then
    self.token = cached
  else
    self.token = self.fetch()
    assert(core.write_private(self.path, json.encode { auth_token = self.token.auth_token,
                                                     expired_at = self.token.expired_at }))
  end
  return self.token.auth_token
end

-- After a token-expired 401: drop this token everywhere.
function T:invalidate()
  if self.token then self.rejected = self.token.auth_token end
  self.token = nil
end

return T
