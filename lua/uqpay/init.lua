-- The uqpay module: the public Lua API over uqpay.core (C).
local core = require "uqpay.core"

local uqpay = {
  version = core.version,
  money = core.money,
  uuid = core.uuid,
}

uqpay.json = require "uqpay.json"

return uqpay
