-- --json: machine output as JSON lines on stdout (logs stay on stderr).
local core = require "uqpay.core"
local json = require "uqpay.json"

local O = {}

function O.enabled() return core.host_options().json == true end

-- One JSON line on stdout; money as strings, so nothing is lost on the
-- way; secrets and card data redacted like everything uqlua prints, on the
-- data before it is encoded (R.shown: masking the encoded text could turn a
-- number into invalid JSON). An error's fields are strings in it, so a
-- message made in C passes through the same redactor.
function O.emit(t)
  local R = require "uqpay.redact"
  io.stdout:write(json.encode((R.shown(t)), { money = "string" }), "\n")
  io.stdout:flush()
end

-- What a chunk returned under --json: one JSON line per value.
function O.results(...)
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    if v == nil then v = json.null end
    O.emit(v)
  end
end

local FIELDS = { "kind", "status", "type", "code", "message", "method", "path", "idempotency_key", "attempts",
                 "field", "value" }

-- The uncaught error of a run: {"error": {...}}.
function O.error(e)
  local out = {}
  if type(e) == "table" and e.kind then
    for _, f in ipairs(FIELDS) do
      local v = rawget(e, f)
      if type(v) == "string" or type(v) == "number" then out[f] = v end
    end
  elseif e ~= nil then
    out.kind, out.message = "script", tostring(e)
  else
    out.kind, out.message = "script", "unknown error"
  end
  O.emit { error = out }
end

return O
