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

-- The value is shown redacted by its field's name (the last part of a path
-- like spending_controls[1].cvv): a card number, CVV or PIN passed to the
-- wrong function is not echoed back.
function E.usage(field, value, why)
  local R = require "uqpay.redact"
  local name = tostring(field):match("([%w_%-]+)[%]]?$") or tostring(field)
  local red = R.field(name, value)
  if red then value = red end
  local shown = type(value) == "string" and string.format("%q", R.text(value)) or R.text(tostring(value))
  error(E.new { kind = "usage", field = field, value = shown, message = field .. " " .. shown .. " " .. why }, 3)
end

function E.config(message) error(E.new { kind = "config", message = message }, 2) end

return E
