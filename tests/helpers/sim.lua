-- Test helpers: talk to the simulator's admin API (the one started by
-- `uqlua --sim`, or any other base URL), and the seed's fixed IDs.
local core = require "uqpay.core"
local json = require "uqpay.json"

local H = {
  MASTER = "11111111-1111-4111-8111-111111111111",
  SUB1 = "22222222-2222-4222-8222-222222222222",
  SUB2 = "33333333-3333-4333-8333-333333333333",
  SINGLE_PRODUCT = "44444444-4444-4444-8444-444444444441",
  SHARE_PRODUCT = "44444444-4444-4444-8444-444444444442",
  HOLDER1 = "55555555-5555-4555-8555-555555555551",
  HOLDER2 = "55555555-5555-4555-8555-555555555552",
  SINGLE_CARD = "66666666-6666-4666-8666-666666666661",
  SHARE_CARD = "66666666-6666-4666-8666-666666666662",
  FROZEN_CARD = "66666666-6666-4666-8666-666666666663",
  SGD_CARD = "66666666-6666-4666-8666-666666666664",
  CLIENT_ID = "sim-client-0001",
  API_KEY = "sim-secret-key-0001",
  WEBHOOK_SECRET = "sim-webhook-secret",
}

local http = core.http_new()

function H.root(base)
  base = base or uqpay.config().base_url
  return (base:gsub("/api$", ""))
end

-- Raw HTTP against the simulator: returns status, decoded body (or text), headers.
function H.raw(method, path, opts)
  opts = opts or {}
  local headers = {}
  for k, v in pairs(opts.headers or {}) do headers[#headers + 1] = k .. ": " .. v end
  local body = opts.body
  if type(body) == "table" then body = json.encode(body, { money = opts.money_as }) end
  if body then headers[#headers + 1] = "Content-Type: application/json" end
  local res, kind, msg = http:request { method = method, url = H.root(opts.base) .. path, headers = headers,
    body = body, fresh = opts.fresh }
  if not res then return nil, kind, msg end
  local ok, decoded = pcall(json.decode, res.body, { money = opts.money })
  return res.status, ok and decoded or res.body, res.headers
end

-- Admin answers keep amounts as the strings the ledger dump sends.
function H.admin(method, what, body, base)
  local status, res = H.raw(method, "/__sim/" .. what, { body = body, base = base, money = false })
  assert(status == 200, "admin " .. what .. " failed: " .. tostring(status) .. " " .. tostring(res))
  return res
end

function H.reset(base) return H.admin("POST", "reset", nil, base) end
function H.state(base) return H.admin("GET", "state", nil, base) end
function H.faults(spec, base) return H.admin("POST", "faults", { spec = spec }, base) end
function H.config(t, base) return H.admin("POST", "config", t, base) end
function H.advance(seconds, base) return H.admin("POST", "clock", { advance_s = seconds }, base) end
function H.requests(base) return H.state(base).request_count end

-- Asks f every 20 ms until it answers true, for up to ms (10 s); returns
-- whether it did. Tests wait for the event they need, never a guessed time.
function H.wait_until(f, ms)
  local deadline = core.monotonic_ms() + (ms or 10000)
  repeat
    if f() then return true end
    core.sleep_ms(20)
  until core.monotonic_ms() > deadline
  return f() and true or false
end

-- A fresh token straight from the token endpoint.
function H.token(base)
  local status, t = H.raw("POST", "/api/v1/connect/token",
    { base = base, headers = { ["x-client-id"] = H.CLIENT_ID, ["x-api-key"] = H.API_KEY } })
  assert(status == 200, "token: " .. tostring(status))
  return t.auth_token
end

-- An authenticated API call with raw HTTP (bypassing uqpay's client).
function H.api(method, path, body, headers, base, fresh)
  local h = { ["x-auth-token"] = "Bearer " .. H.token(base) }
  for k, v in pairs(headers or {}) do h[k] = v end
  if method ~= "GET" and h["x-idempotency-key"] == nil then h["x-idempotency-key"] = core.uuid() end
  return H.raw(method, "/api" .. path, { body = body, headers = h, base = base, fresh = fresh })
end

function H.applied(state, op)
  local n = 0
  for _, a in ipairs(state.applied) do if not op or a.op == op then n = n + 1 end end
  return n
end

-- The first idempotency key the ledger shows applied twice, or nil.
function H.duplicate_key(state)
  local keys = {}
  for _, a in ipairs(state.applied) do
    if keys[a.idempotency_key] then return a.idempotency_key end
    keys[a.idempotency_key] = true
  end
end

-- Runs a shell command, returns exit code, stdout, stderr.
function H.sh(cmd)
  local out, err = os.tmpname(), os.tmpname()
  local _, how, code = os.execute(cmd .. " >" .. out .. " 2>" .. err)
  local function slurp(p) local f = io.open(p); local s = f:read("a"); f:close(); os.remove(p); return s end
  return how == "exit" and code or 128 + code, slurp(out), slurp(err)
end

H.UQLUA = os.getenv("UQLUA") or "./uqlua"

-- err_of(f, ...) -> the error object f raised (a spec fails if f returns,
-- or raises anything but a table)
function H.err_of(f, ...)
  local check = require "luassert"
  local ok, e = pcall(f, ...)
  check.is_false(ok, "expected an error")
  check.is_table(e, "errors are tables")
  return e
end

-- A client of our own over the in-process simulator, with settings changed.
function H.client_with(changes)
  local cfg = {}
  for k, v in pairs(require("uqpay.config").resolve()) do cfg[k] = v end
  cfg.inprocess_sim = true
  for k, v in pairs(changes) do cfg[k] = v end
  return require("uqpay.client").new(cfg)
end

return H
