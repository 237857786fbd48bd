-- uqpay.parallel against the in-process simulator.
local H = require "tests.helpers.sim"

local err_of = H.err_of

describe("uqpay.parallel", function()
  before_each(function() H.reset() end)

  it("returns results and errors in input order; a failure does not stop the others", function()
    local res, errs = uqpay.parallel({ 1, 2, 3, 4 }, function(x, i)
      if x == 3 then error("no three") end
      return x * 10 + i
    end, { concurrency = 2 })
    assert.same({ [1] = 11, [2] = 22, [4] = 44 }, res)
    assert.matches("no three", errs[3])
    assert.is_nil(errs[1])
  end)

  it("overlaps requests on one multi handle", function()
    uqpay.balance("USD") -- token first
    H.faults("latency=1:ms=300:path=/v1/issuing/products")
    local res = uqpay.parallel({ 1, 2, 3, 4, 5, 6 }, function() return #uqpay.products.list() end,
      { concurrency = 4 })
    assert.same({ 2, 2, 2, 2, 2, 2 }, res)
    assert.equals(4, H.state().max_in_flight)
  end)

  it("applies every write once, and never reorders writes to one card", function()
    local cards = { H.SINGLE_CARD, H.SHARE_CARD, H.SGD_CARD }
    local items = {}
    for i = 1, 24 do items[i] = { card = cards[(i - 1) % 3 + 1], amount = string.format("0.%02d", i) } end
    H.faults("latency=0.5:ms=30;drop=0.1:path=/v1/issuing/cards/*/recharge")
    local _, errs = uqpay.parallel(items, function(it) return uqpay.recharge(it.card, it.amount) end,
      { concurrency = 8 })
    assert.is_nil(next(errs))
    local st = H.state()
    assert.equals(24, H.applied(st, "recharge"))
    local last = {}
    for _, a in ipairs(st.applied) do
      if a.op == "recharge" then
        local cents = tonumber(a.amount:match("%.(%d+)$"))
        assert.is_true((last[a.card_id] or 0) < cents, "writes to " .. a.card_id .. " were reordered")
        last[a.card_id] = cents
      end
    end
  end)

  it("fetches one token for all items, not one each", function()
    local cfg = {}
    for k, v in pairs(require("uqpay.config").resolve()) do cfg[k] = v end
    local c = require("uqpay.client").new(cfg) -- no token yet
    local before = H.state().tokens_issued
    local res = uqpay.parallel({ 1, 2, 3, 4, 5 }, function()
      return c:call { method = "GET", path = "/v1/issuing/products" }.total_items
    end, { concurrency = 5 })
    assert.same({ 2, 2, 2, 2, 2 }, res)
    assert.equals(before + 1, H.state().tokens_issued)
  end)

  it("a token revoked under eight requests in flight is fetched again once, not once per request", function()
    uqpay.balance("USD") -- the token the eight requests carry
    H.faults("latency=1:ms=50:path=/v1/issuing/products") -- all eight out before the first answer
    H.admin("POST", "tokens", {}) -- revoked: each gets 401 invalid token
    local before = H.state().tokens_issued
    local res, errs = uqpay.parallel({ 1, 2, 3, 4, 5, 6, 7, 8 }, function() return #uqpay.products.list() end,
      { concurrency = 8 })
    assert.is_nil(next(errs))
    assert.same({ 2, 2, 2, 2, 2, 2, 2, 2 }, res)
    assert.equals(before + 1, H.state().tokens_issued)
  end)

  it("a coroutine of the script's own inside an item gets the token another item is fetching", function()
    local cfg = {}
    for k, v in pairs(require("uqpay.config").resolve()) do cfg[k] = v end
    local c = require("uqpay.client").new(cfg) -- no token yet
    local function products() return c:call { method = "GET", path = "/v1/issuing/products" }.total_items end
    local res, errs = uqpay.parallel({ "item", "nested" }, function(how)
      if how == "item" then return products() end
      return coroutine.wrap(products)() -- cannot yield to the scheduler: it blocks
    end, { concurrency = 2 })
    assert.is_nil(next(errs))
    assert.same({ 2, 2 }, res)
  end)

  it("an item that fails holding a card's lock lets the next item on that card run", function()
    -- a coroutine that raised keeps its to-be-closed values until it is
    -- closed: the lock's release never ran, and the second item waited for ever
    local rows = { { H.SINGLE_CARD, "99999999.00" }, { H.SINGLE_CARD, "1.00" }, { H.SHARE_CARD, "1.00" } }
    local core = require "uqpay.core"
    local deadline = core.monotonic_ms() + 20000 -- a hang fails the test instead of the suite
    debug.sethook(function()
      if core.monotonic_ms() > deadline then
        debug.sethook()
        error("uqpay.parallel waits for ever")
      end
    end, "", 1000)
    local ok, res, errs = pcall(uqpay.parallel, rows, function(r) return uqpay.recharge(r[1], r[2]).order_status end,
      { concurrency = 8 })
    debug.sethook()
    assert(ok, res)
    assert.equals("api", errs[1].kind)
    assert.same({ [2] = "SUCCESS", [3] = "SUCCESS" }, res)
  end)

  it("stops starting items after the first error when asked", function()
    local started = {}
    local _, errs = uqpay.parallel({ 1, 2, 3, 4, 5 }, function(x)
      started[#started + 1] = x
      if x == 2 then error("stop here") end
      uqpay.products.list()
    end, { concurrency = 1, stop_on_error = true })
    assert.same({ 1, 2 }, started)
    assert.matches("stop here", errs[2])
  end)

  it("lets uqpay.wait and retries sleep without blocking the other items", function()
    H.faults("burst429:next=1:path=/v1/issuing/products")
    local res = uqpay.parallel({ "a", "b" }, function(x)
      if x == "a" then return #uqpay.products.list() end
      return uqpay.wait(uqpay.recharge(H.SINGLE_CARD, "1.00")).order_status
    end)
    assert.same({ 2, "SUCCESS" }, res)
  end)

  it("checks its arguments", function()
    assert.equals("usage", err_of(uqpay.parallel, "x", print).kind)
    assert.equals("usage", err_of(uqpay.parallel, {}, "f").kind)
    assert.equals("usage", err_of(uqpay.parallel, {}, print, { concurrency = 0 }).kind)
    assert.equals("usage", err_of(uqpay.parallel, {}, print, { workers = 2 }).kind)
    local _, errs = uqpay.parallel({ 1 }, function() return uqpay.parallel({ 2 }, print) end)
    assert.matches("cannot run inside another", tostring(errs[1]))
    local res = uqpay.parallel({}, print)
    assert.same({}, res)
  end)
end)
