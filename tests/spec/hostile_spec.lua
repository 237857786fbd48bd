-- Hostile and careless input (#10): money that does not fit the request,
-- amounts that are no finite decimals, and every C error an error object.
local H = require "tests.helpers.sim"
local E = require "uqpay.errors"
local money = uqpay.money

local err_of = H.err_of

local function transfer(amount, currency)
  return uqpay.transfer { source_account_id = H.MASTER, destination_account_id = H.SUB1, currency = currency or "USD",
                          amount = amount }
end

describe("money into requests", function()
  it("refuses a money value of another currency than the request's, before sending", function()
    local before = H.requests()
    local e = err_of(transfer, money("5.00", "SGD"))
    assert.equals("usage", e.kind)
    assert.matches("is an amount in SGD; the request is in USD", e.message, 1, true)
    assert.equals(before, H.requests())
  end)

  it("refuses a value with more decimals than the currency allows, even read from a response", function()
    local read = uqpay.json.decode('{"amount":10.005}').amount
    local e = err_of(transfer, read)
    assert.equals("usage", e.kind)
    assert.matches("more decimals than the currency allows", e.message, 1, true)
    assert.equals("10.00", tostring(transfer(uqpay.json.decode('{"amount":10.000}').amount) and "10.00"))
  end)

  it("checks amount fields in uqpay.request bodies as the endpoint functions do", function()
    local before = H.requests()
    local body = { source_account_id = H.MASTER, destination_account_id = H.SUB1, currency = "USD" }
    for _, bad in ipairs { 0.1 + 0.2, "1e3", money("1.00", "SGD"), -1 } do
      body.amount = bad
      assert.equals("usage", err_of(uqpay.request, "POST", "/v1/issuing/transfers", { body = body }).kind)
    end
    assert.equals(before, H.requests())
  end)
end)

describe("amounts in responses", function()
  it("are an api error naming the field when they are no finite decimal", function()
    for _, text in ipairs { '{"amount":1e400}', '{"available_balance":"NaN"}', '{"fee_amount":"-Infinity"}' } do
      local e = err_of(uqpay.json.decode, text)
      assert.equals("api", e.kind)
      assert.matches("is not a finite decimal", e.message, 1, true)
    end
    assert.equals("2000USD", uqpay.json.decode('{"amount":"2000USD"}').amount) -- not a number: stays text
  end)
end)

describe("errors from C", function()
  it("are error objects with a kind, never bare strings", function()
    local cases = {
      function() return money("9223372036854775807") * 2 end,
      function() return money("1.00", "USD") + money("1.00", "SGD") end,
      function() return money("1.00") * 1.5 end,
      function() return uqpay.json.decode("{bad") end,
      function() return uqpay.json.encode { [true] = 1 } end,
      function() return uqpay.json.encode { x = 1 / 0 } end,
    }
    for i, f in ipairs(cases) do
      local e = err_of(f)
      assert.is_true(E.is(e), "case " .. i .. ": " .. tostring(e))
      assert.equals("usage", e.kind)
    end
  end)

  it("render with two numeric fields without reading freed memory", function()
    local e = E.new { kind = "api", status = 500, attempts = 3, code = 12, message = "x" }
    for _ = 1, 50 do collectgarbage() end
    assert.matches("HTTP 500", tostring(e), 1, true)
    assert.matches("3 attempts", tostring(e), 1, true)
  end)
end)
