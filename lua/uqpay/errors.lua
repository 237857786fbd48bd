-- uqpay error objects: tables with kind, status, type, code, message,
-- method, path, idempotency_key, attempts (and body, the raw response,
-- redacted), sharing the C metatable "uqpay.Error" whose __tostring gives
-- one readable line.
local core = require "uqpay.core"

local E = {}

E.KINDS = { usage = true, config = true, auth = true, api = true, rate_limit = true, network = true,
            timeout = true, idempotency = true, reconcile_required = true, interrupted = true }

function E.new(t)
  assert(E.KINDS[t.kind], "unknown error kind")
  return core.error(t)
end

function E.raise(t) error(E.new(t), 2) end

function E.is(v) return type(v) == "table" and getmetatable(v) == core.error_mt end

function E.usage(field, value, why)
  local shown = type(value) == "string" and string.format("%q", value) or tostring(value)
  error(E.new { kind = "usage", field = field, value = shown, message = field .. " " .. shown .. " " .. why }, 3)
end

function E.config(message) error(E.new { kind = "config", message = message }, 2) end

return E
