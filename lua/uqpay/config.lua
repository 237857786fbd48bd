-- Configuration: command-line options > environment > config file >
-- defaults (SPEC §2). The config file is refused when group or others can
-- read it, or when another user owns it. The API key never comes from argv.
local core = require "uqpay.core"
local E = require "uqpay.errors"

local C = {}

C.BASE_URLS = {
  sandbox = "https://api-sandbox.uqpaytech.com/api",
  production = "https://api.uqpay.com/api",
}
-- The file service has hosts of its own (uqpay-api-more.md §5.1).
C.FILES_URLS = {
  sandbox = "https://files.uqpaytech.com/api",
  production = "https://files.uqpay.com/api",
}
-- The secure card iframe (uqpay-api-more.md §1.2).
C.IFRAME_URLS = {
  sandbox = "https://embedded-sandbox.uqpaytech.com",
  production = "https://embedded.uqpay.com",
}
-- Client-side limits, just under UQPAY's documented per-minute limits
-- (the lower figure where the docs disagree): sandbox 500, production 200.
-- None by default against a loopback address (a simulator).
C.RATE_LIMITS = { sandbox = 450, production = 180, sim = 0 }

-- An idempotency key: what the header may carry, nothing that could end it.
function C.check_key(key)
  if type(key) ~= "string" or not key:match("^[%w_%-]+$") or #key > 64 then
    E.usage("key", key, "must be 1 to 64 characters from A-Z, a-z, 0-9, '_' and '-'")
  end
  return key
end

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
C.UUID = UUID

local function getenv(name, noenv)
  if noenv then return nil end
  local v = os.getenv(name)
  if v == "" then return nil end
  return v
end

function C.config_path(noenv)
  local xdg = getenv("XDG_CONFIG_HOME", noenv)
  local home = os.getenv("HOME") or "."
  return (xdg or (home .. "/.config")) .. "/uqlua/config"
end

function C.state_dir(noenv)
  local xdg = getenv("XDG_STATE_HOME", noenv)
  return (xdg or ((os.getenv("HOME") or ".") .. "/.local/state")) .. "/uqlua"
end

function C.cache_dir(noenv)
  local xdg = getenv("XDG_CACHE_HOME", noenv)
  return (xdg or ((os.getenv("HOME") or ".") .. "/.cache")) .. "/uqlua"
end

-- INI-style profiles:  [name]  key = value  (# comments)
local function parse_file(path, text)
  local profiles, current = {}, nil
  local n = 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    line = line:gsub("^%s+", ""):gsub("%s+$", "")
    if line ~= "" and not line:match("^[#;]") then
      local section = line:match("^%[([%w_%-%.]+)%]$")
      if section then
        current = profiles[section] or {}
        profiles[section] = current
      else
        local k, v = line:match("^([%w_]+)%s*=%s*(.-)$")
        if not k then E.config(string.format("%s:%d: expected 'key = value' or '[profile]'", path, n)) end
        if not current then E.config(string.format("%s:%d: '%s' is outside any [profile] section", path, n, k)) end
        current[k] = v:match('^"(.*)"$') or v
      end
    end
  end
  return profiles
end

local function read_file(path)
  local st = core.stat(path)
  if not st then return nil end
  if st.uid ~= core.getuid() then
    E.config(string.format("refusing to read %s: it is owned by another user (uid %d); " ..
      "it must belong to you (chown $(id -u) %s)", path, st.uid, path))
  end
  if st.mode & 0x3f ~= 0 then -- 077: group or other bits
    E.config(string.format("refusing to read %s: it is readable by group or others (mode %o); " ..
      "run: chmod 600 %s", path, st.mode, path))
  end
  local f, err = io.open(path, "rb")
  if not f then E.config("cannot read " .. path .. ": " .. err) end
  local text = f:read("a")
  f:close()
  return parse_file(path, text)
end

-- Validates a base URL with libcurl's own parser: https anywhere, plain
-- http only on loopback, no userinfo. Returns the URL and whether its host
-- is a loopback address.
function C.check_base_url(url)
  return core.url_check(url)
end

-- Resolves the active configuration. Secrets stay in the returned table;
-- C.redacted() is what scripts see.
function C.resolve()
  local opts = core.host_options()
  local noenv = opts.noenv
  local cfg = { noenv = noenv, trace = opts.trace or false, yes = opts.yes or false, dry_run = opts.dry_run or false,
                json = opts.json or false }
  local profile_name = opts.profile or getenv("UQLUA_PROFILE", noenv)
  local file_profile = {}
  local path = C.config_path(noenv)
  local profiles = read_file(path)
  if profiles then
    file_profile = profiles[profile_name or "default"] or {}
    if profile_name and not profiles[profile_name] then
      E.config("profile '" .. profile_name .. "' not found in " .. path)
    end
  elseif profile_name then
    E.config("profile '" .. profile_name .. "' requested but " .. path .. " does not exist")
  end
  cfg.profile = profile_name or (profiles and "default") or nil
  local function pick(optval, envname, filekey)
    return optval or getenv(envname, noenv) or file_profile[filekey]
  end
  cfg.env = pick(opts.env, "UQPAY_ENV", "env") or "sandbox"
  if not (C.BASE_URLS[cfg.env] or cfg.env == "sim") then
    E.config("environment '" .. cfg.env .. "' is not sandbox, production or sim")
  end
  cfg.base_url = pick(opts.base_url, "UQPAY_BASE_URL", "base_url") or C.BASE_URLS[cfg.env]
  if not cfg.base_url then E.config("--env sim needs the simulator: use --sim, or set UQPAY_BASE_URL") end
  local is_loopback
  cfg.base_url, is_loopback = C.check_base_url(cfg.base_url)
  -- UQPAY's own API host (named by env or spelled out) has its files and
  -- iframe hosts; a base URL of one's own (a simulator) serves them too
  local uqpay_env
  for env, url in pairs(C.BASE_URLS) do
    if C.check_base_url(url) == cfg.base_url then uqpay_env = env end
  end
  cfg.files_url = pick(nil, "UQPAY_FILES_URL", "files_url") or C.FILES_URLS[uqpay_env] or cfg.base_url
  cfg.files_url = C.check_base_url(cfg.files_url)
  cfg.iframe_url = C.IFRAME_URLS[uqpay_env] or cfg.base_url:gsub("/api$", "")
  cfg.client_id = pick(opts.client_id, "UQPAY_CLIENT_ID", "client_id")
  cfg.api_key = pick(opts.api_key, "UQPAY_API_KEY", "api_key")
  cfg.on_behalf_of = pick(opts.on_behalf_of, "UQPAY_ON_BEHALF_OF", "on_behalf_of")
  if cfg.on_behalf_of and not cfg.on_behalf_of:match(UUID) then
    E.config("on-behalf-of '" .. cfg.on_behalf_of .. "' is not an account UUID")
  end
  cfg.inprocess_sim = opts.base_url ~= nil
  local rl = getenv("UQLUA_RATE_LIMIT", noenv) or file_profile.rate_limit
  -- UQPAY's limits are UQPAY's: a loopback base URL (a simulator) has none
  local default_rl = is_loopback and 0 or C.RATE_LIMITS[cfg.env]
  cfg.rate_limit = rl and math.tointeger(tonumber(rl)) or default_rl or 0
  if not cfg.rate_limit or cfg.rate_limit < 0 then E.config("rate_limit must be a non-negative integer, not '" .. rl .. "'") end
  cfg.connect_timeout_ms = math.tointeger(tonumber(getenv("UQLUA_CONNECT_TIMEOUT_MS", noenv) or file_profile.connect_timeout_ms or 10000))
  cfg.timeout_ms = math.tointeger(tonumber(getenv("UQLUA_TIMEOUT_MS", noenv) or file_profile.timeout_ms or 30000))
  cfg.max_attempts = math.tointeger(tonumber(getenv("UQLUA_MAX_ATTEMPTS", noenv) or file_profile.max_attempts or 4))
  cfg.max_response_bytes = math.tointeger(tonumber(getenv("UQLUA_MAX_RESPONSE_BYTES", noenv)
    or file_profile.max_response_bytes or 32 * 1024 * 1024))
  if not (cfg.connect_timeout_ms and cfg.timeout_ms and cfg.max_attempts and cfg.max_attempts >= 1
          and cfg.max_response_bytes and cfg.max_response_bytes >= 1) then
    E.config("timeouts, max_attempts and max_response_bytes must be positive integers")
  end
  cfg.cache_dir = C.cache_dir(noenv)
  cfg.state_dir = C.state_dir(noenv)
  return cfg
end

-- The configuration of this process, resolved once.
local active
function C.active()
  active = active or C.resolve()
  return active
end

-- What uqpay.config() shows: no secret, ever.
function C.redacted(cfg)
  return {
    env = cfg.env, base_url = cfg.base_url, files_url = cfg.files_url, iframe_url = cfg.iframe_url,
    profile = cfg.profile, on_behalf_of = cfg.on_behalf_of,
    client_id = cfg.client_id and "[REDACTED]" or nil, api_key = cfg.api_key and "[REDACTED]" or nil,
    rate_limit_per_minute = cfg.rate_limit, timeout_ms = cfg.timeout_ms, connect_timeout_ms = cfg.connect_timeout_ms,
    max_attempts = cfg.max_attempts, max_response_bytes = cfg.max_response_bytes, trace = cfg.trace, yes = cfg.yes,
    json = cfg.json, dry_run = cfg.dry_run,
  }
end

return C
