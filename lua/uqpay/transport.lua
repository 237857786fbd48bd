-- The one transport (SPEC §4): a process-wide libcurl multi handle. A plain
-- call drives it until its own transfer ends; inside uqpay.parallel the
-- scheduler drives it for every item. Its connection cache lives as long
-- as the process, so keep-alive survives between calls and batches.
local core = require "uqpay.core"
local C = require "uqpay.config"
local P = require "uqpay.parallel"

local T = {}
local multi

function T.multi()
  multi = multi or core.multi_new()
  return multi
end

-- request(req [, op]) -> res | nil, kind, message, sent. A write passes its
-- operation: the C side refuses it unless its intent is durable.
function T.request(req, op)
  -- --dry-run: everything but the twin's own reads goes to the twin
  if not req.real and C.active().dry_run then
    return require("uqpay.twin").get():handle(req, op)
  end
  if P.active() then return P.http(req, op) end
  return T.multi():request(req, op)
end

return T
