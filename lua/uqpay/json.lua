-- uqpay.json: exact JSON (integers stay integers, amounts become money).
-- null is the same value as cjson.null, so data moves freely between them.
local core = require "uqpay.core"

local json = {}

json.null = core.json_decode("null")

-- json.encode(value [, {money = "number"|"string"}]) -> text with sorted keys
function json.encode(value, opts)
  return core.json_encode(value, opts ~= nil and opts.money == "string")
end

-- json.decode(text [, {money = false}]) -> value; amount fields become money
-- unless money = false.
function json.decode(text, opts)
  return core.json_decode(text, not (opts and opts.money == false))
end

-- json.array(t): mark t as a JSON array, so that {} encodes as [].
function json.array(t)
  return setmetatable(t or {}, core.json_array_mt())
end

return json
