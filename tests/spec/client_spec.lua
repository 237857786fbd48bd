-- The uqpay module against the in-process simulator (busted runs under
-- `uqlua --sim`): every public function, the error kinds, retries with one
-- idempotency key, Retry-After, token expiry, validation before sending.
local H = require "tests.helpers.sim"
local core = require "uqpay.core"
local Client = require "uqpay.client"
local money = uqpay.money

local function card(state, id)
  for _, c in ipairs(state.cards) do if c.card_id == id then return c end end
end

local err_of = H.err_of

-- Runs fn(at) with core.monotonic_ms reading the time last given to at(ms).
local function on_fake_clock(fn)
  local real, t = core.monotonic_ms, 0
  core.monotonic_ms = function() return t end
  local ok, err = pcall(fn, function(ms) t = ms end)
  core.monotonic_ms = real
  assert(ok, err)
end

local client_with = H.client_with

describe("uqpay", function()
  before_each(function() H.reset() end)

  describe("utilities", function()
    it("has a version, uuid v4 and config without secrets", function()
      assert.matches("^%d+%.%d+%.%d+$", uqpay.version)
      assert.matches("^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$", uqpay.uuid())
      local c = uqpay.config()
      assert.equals("sim", c.env)
      assert.equals("[REDACTED]", c.api_key)
      assert.equals("[REDACTED]", c.client_id)
      assert.is_nil(uqpay.json.encode(c):find(H.API_KEY, 1, true))
    end)

    it("is require-able and the same module as the global", function()
      assert.equals(uqpay, require "uqpay")
    end)
  end)

  describe("issuing", function()
    it("balance and balances return exact money and integers", function()
      local b = uqpay.balance("USD")
      assert.is_true(money.is(b.available_balance))
      assert.equals("100000.00", tostring(b.available_balance))
      local all = uqpay.balances()
      assert.equals(2, #all)
      assert.equals(1, #uqpay.balances { currency = "SGD" })
      local page = uqpay.request("GET", "/v1/issuing/balances", { query = { page_size = 10, page_number = 1 } })
      assert.equals("integer", math.type(page.total_items))
    end)

    it("recharge and withdraw: SINGLE moves the issuing balance, SHARE does not", function()
      uqpay.recharge(H.SINGLE_CARD, "100.02")
      uqpay.recharge(H.SHARE_CARD, money("50"))
      assert.equals("99899.98", tostring(uqpay.balance("USD").available_balance))
      assert.equals("600.02", tostring(uqpay.cards.get(H.SINGLE_CARD).available_balance))
      assert.equals("1050.00", tostring(uqpay.cards.get(H.SHARE_CARD).available_balance))
      local o = uqpay.withdraw(H.SINGLE_CARD, 12.5)
      uqpay.withdraw(H.SHARE_CARD, 50)
      assert.equals("99912.48", tostring(uqpay.balance("USD").available_balance))
      assert.equals("1000.00", tostring(uqpay.cards.get(H.SHARE_CARD).available_balance))
      assert.equals("SUCCESS", uqpay.cards.order(o.card_order_id).order_status)
      assert.equals("SUCCESS", uqpay.wait(o).order_status)
    end)

    it("transfers between master and sub-account, waits, and reads balance transactions", function()
      local t = uqpay.transfer { source_account_id = H.MASTER, destination_account_id = H.SUB1,
                                 currency = "USD", amount = "250.00", remark = "top-up" }
      assert.equals("completed", uqpay.wait(t).transfer_status)
      assert.equals("250.00", tostring(uqpay.transfers.get(t.transfer_id).amount))
      assert.equals("1250.00", tostring(uqpay.balance("USD", { on_behalf_of = H.SUB1 }).available_balance))
      local types = {}
      for tx in uqpay.balance_transactions { currency = "USD" } do types[#types + 1] = tx.transaction_type end
      assert.same({ "TRANSFER_OUT" }, types)
    end)

    it("cards: create, get, list, each, update, status changes, order", function()
      local c = uqpay.cards.create { card_currency = "USD", cardholder_id = H.HOLDER1,
                                     card_product_id = H.SHARE_PRODUCT, card_limit = "300.00",
                                     spending_controls = { { amount = "50.00", interval = "PER_TRANSACTION" } } }
      assert.equals("ACTIVE", c.card_status)
      assert.equals("SHARE", uqpay.cards.get(c.card_id).mode_type)
      assert.equals(5, #uqpay.cards.list())
      local n = 0
      for _ in uqpay.cards.each { card_status = "ACTIVE" } do n = n + 1 end
      assert.equals(4, n)
      uqpay.cards.update(c.card_id, { card_limit = "400.00" })
      assert.equals("400.00", tostring(uqpay.cards.get(c.card_id).card_limit))
      uqpay.cards.freeze(c.card_id)
      assert.equals("FROZEN", uqpay.cards.get(c.card_id).card_status)
      uqpay.cards.unfreeze(c.card_id, "found it")
      uqpay.cards.set_status(c.card_id, "FROZEN", "again")
      uqpay.cards.set_status(c.card_id, "ACTIVE")
      uqpay.cards.cancel(c.card_id, "done")
      assert.equals("CANCELLED", uqpay.cards.get(c.card_id).card_status)
      assert.equals("SUCCESS", uqpay.cards.order(c.card_order_id).order_status)
    end)

    it("a cancelled SINGLE card returns its balance to the issuing balance", function()
      uqpay.cards.cancel(H.SINGLE_CARD, "test")
      assert.equals("100500.00", tostring(uqpay.balance("USD").available_balance))
    end)

    it("cardholders, products, accounts", function()
      local ch = uqpay.cardholders.create { first_name = "Ann", last_name = "Lee", email = "a@example.com",
                                            country_code = "SG", phone_number = "90000002" }
      assert.equals("Ann", uqpay.cardholders.get(ch.cardholder_id).first_name)
      uqpay.cardholders.update(ch.cardholder_id, { email = "b@example.com" })
      assert.equals("b@example.com", uqpay.cardholders.get(ch.cardholder_id).email)
      assert.equals(3, #uqpay.cardholders.list())
      local n = 0
      for _ in uqpay.cardholders.each { cardholder_status = "SUCCESS" } do n = n + 1 end
      assert.equals(3, n)
      assert.equals(2, #uqpay.products.list())
      for p in uqpay.products.each() do assert.is_string(p.product_id) end
      local accts = uqpay.accounts.list()
      assert.equals(2, #accts)
      local ids = {}
      for a in uqpay.accounts.each() do ids[#ids + 1] = a.account_id end
      assert.same({ H.SUB1, H.SUB2 }, ids)
    end)

    it("simulate, transactions and reports", function()
      local auth = uqpay.simulate.authorization { card_id = H.SHARE_CARD, transaction_amount = "20.00" }
      assert.equals("APPROVED", auth.transaction_status)
      uqpay.simulate.reversal { original_transaction_id = auth.transaction_id }
      assert.equals(2, #uqpay.transactions.list { card_id = H.SHARE_CARD })
      local n = 0
      for _ in uqpay.transactions.each() do n = n + 1 end
      assert.equals(3, n) -- and the seed's unsolicited refund
      assert.equals("20.00", tostring(uqpay.transactions.get(auth.transaction_id).billing_amount))
      local r = uqpay.reports.create { report_type = "SETTLEMENT", start_time = "2026-01-01T00:00:00+08:00",
                                       end_time = "2026-12-31T00:00:00+08:00" }
      local csv = uqpay.reports.download(r.report_id)
      assert.matches("AUTHORIZATION,APPROVED,20.00", csv, 1, true)
      local path = os.tmpname()
      assert.equals(path, uqpay.reports.download(r.report_id, path))
      local f = io.open(path)
      assert.equals(csv, f:read("a"))
      f:close()
      os.remove(path)
    end)

    it("pages through long lists 100 at a time", function()
      for i = 1, 105 do
        H.api("POST", "/v1/issuing/cards", { card_currency = "USD", cardholder_id = H.HOLDER2,
          card_product_id = H.SHARE_PRODUCT, card_limit = money(i) })
      end
      local before = H.requests()
      assert.equals(109, #uqpay.cards.list())
      assert.equals(2, H.requests() - before)
    end)
  end)

  describe("banking", function()
    it("balances, balance, transfer, transfers", function()
      assert.equals(3, #uqpay.banking.balances())
      assert.equals("10000.00", tostring(uqpay.banking.balance("EUR").available_balance))
      local t = uqpay.banking.transfer { source_account_id = H.MASTER, target_account_id = H.SUB1,
                                         currency = "USD", amount = "100.00", reason = "funding" }
      assert.equals("completed", uqpay.wait(t).transfer_status)
      assert.equals("100.00", tostring(uqpay.banking.transfers.get(t.transfer_id).transfer_amount))
      assert.equals(1, #uqpay.banking.transfers.list())
      for x in uqpay.banking.transfers.each { transfer_status = "completed" } do assert.equals(t.transfer_id, x.transfer_id) end
    end)

    it("balance transactions, payouts, quotes, conversions, deposits, beneficiaries", function()
      local date = os.date("!%Y-%m-%d")
      local q = uqpay.banking.quote { sell_currency = "USD", buy_currency = "SGD", sell_amount = "100.00",
                                      conversion_date = date }
      assert.equals("135.00", tostring(q.buy_amount))
      local c = uqpay.banking.convert { quote_id = q.quote_price.quote_id, sell_currency = "USD", buy_currency = "SGD",
                                        sell_amount = "100.00", conversion_date = date }
      assert.equals("COMPLETED", c.conversion_status)
      assert.equals("80135.00", tostring(uqpay.banking.balance("SGD").available_balance))
      local e = err_of(uqpay.banking.convert, { quote_id = q.quote_price.quote_id, sell_currency = "USD",
        buy_currency = "SGD", sell_amount = "100.00", conversion_date = date })
      assert.equals("quote_not_found", e.code)
      local p = uqpay.banking.payouts.create { currency = "USD", amount = "10.00", purpose_code = "AUDIO_VISUAL_SERVICES",
        payout_reference = "r1", fee_paid_by = "OURS", payout_date = date,
        beneficiary_id = "88888888-8888-4888-8888-888888888881" }
      assert.equals("READY_TO_SEND", p.payout_status)
      assert.equals("10.00", tostring(uqpay.banking.payouts.get(p.payout_id).payout_amount))
      assert.equals(1, #uqpay.banking.payouts.list())
      for x in uqpay.banking.payouts.each { payout_status = "READY_TO_SEND" } do assert.equals(p.payout_id, x.payout_id) end
      local kinds = {}
      for t in uqpay.banking.transactions { currency = "USD" } do kinds[#kinds + 1] = t.transaction_type .. t.credit_debit_type end
      assert.same({ "CONVERSIOND", "PAYOUTD" }, kinds)
      assert.equals(2, #uqpay.banking.deposits.list())
      local n = 0
      for _ in uqpay.banking.deposits.each { status = "COMPLETED" } do n = n + 1 end
      assert.equals(1, n)
      assert.equals("10000.00", tostring(uqpay.banking.deposits.get("77777777-7777-4777-8777-777777777771").amount))
      assert.equals(1, #uqpay.banking.beneficiaries.list())
      for b in uqpay.banking.beneficiaries.each() do assert.equals("Supplier Co", b.company_name) end
      assert.equals("Supplier Co", uqpay.banking.beneficiaries.get("88888888-8888-4888-8888-888888888881").company_name)
    end)

    it("sends Banking amounts as strings and Issuing amounts as numbers", function()
      local sent = {}
      local T = require "uqpay.transport"
      local request = T.request
      T.request = function(req, op) sent[#sent + 1] = req.body; return request(req, op) end
      uqpay.banking.transfer { source_account_id = H.MASTER, target_account_id = H.SUB1, currency = "USD",
        amount = money("1.50"), reason = "x" }
      uqpay.recharge(H.SINGLE_CARD, money("1.50"))
      T.request = request
      assert.matches('"amount":"1.50"', sent[#sent - 1], 1, true)
      assert.matches('"amount":1.50', sent[#sent], 1, true)
    end)
  end)

  describe("validation happens before any request", function()
    it("raises usage errors naming field and value, and sends nothing", function()
      uqpay.balance("USD") -- token and connection warm
      local before = H.requests()
      local cases = {
        { "amount", function() return uqpay.recharge(H.SINGLE_CARD, 0.1 + 0.2) end, "0.30000000000000004" },
        { "amount", function() return uqpay.recharge(H.SINGLE_CARD, "12.345") end, "12.345" },
        { "amount", function() return uqpay.recharge(H.SINGLE_CARD, "0") end, "0.00" },
        { "amount", function() return uqpay.withdraw(H.SINGLE_CARD, "-5") end, "-5.00" },
        { "amount", function() return uqpay.recharge(H.SINGLE_CARD, "ten") end, "ten" },
        -- one digit past what a server reading JSON numbers as doubles keeps exact
        { "amount", function() return uqpay.recharge(H.SINGLE_CARD, "10000000000000.00") end, "10000000000000.00" },
        { "amount", function() return uqpay.recharge(H.SINGLE_CARD, 10000000000000) end, "more than 15 digits" },
        { "spending_controls[1].amount", function() return uqpay.cards.create { card_currency = "USD",
            card_product_id = H.SINGLE_PRODUCT, spending_controls = { { amount = "92233720368547758.07" } } } end,
          "92233720368547758.07" },
        { "card_id", function() return uqpay.recharge("not-a-card", "5") end, "not-a-card" },
        { "card_id", function() return uqpay.recharge(H.SINGLE_CARD .. "0", "5") end, H.SINGLE_CARD .. "0" },
        { "card_id", function() return uqpay.recharge(H.SINGLE_CARD:gsub("%-", "_"), "5") end,
          (H.SINGLE_CARD:gsub("%-", "_")) },
        { "card_id", function() return uqpay.recharge(H.SINGLE_CARD:sub(1, -2) .. "g", "5") end,
          H.SINGLE_CARD:sub(1, -2) .. "g" },
        { "card_id", function() return uqpay.recharge(42, "5") end, "42" },
        { "on_behalf_of", function() return uqpay.request("GET", "/v1/x", { on_behalf_of = H.SINGLE_CARD .. " " }) end,
          H.SINGLE_CARD .. " " },
        { "amount", function() return uqpay.recharge(H.SINGLE_CARD) end, "nil" },
        { "currency", function() return uqpay.balance("EUR") end, "EUR" },
        { "destination_account_id", function()
            return uqpay.transfer { source_account_id = H.MASTER, currency = "USD", amount = "1" } end, "nil" },
        { "colour", function() return uqpay.cards.create { card_currency = "USD", card_product_id = H.SINGLE_PRODUCT,
            colour = "red" } end, "red" },
        { "card_status", function() return uqpay.cards.set_status(H.SINGLE_CARD, "GONE") end, "GONE" },
        { "opts.retries", function() return uqpay.balance("USD", { retries = 3 }) end, "3" },
        { "on_behalf_of", function() return uqpay.balance("USD", { on_behalf_of = "x" }) end, "x" },
        { "spending_controls[1].amount", function() return uqpay.cards.create { card_currency = "USD",
            card_product_id = H.SINGLE_PRODUCT, spending_controls = { { amount = 0.1 + 0.7 } } } end, "0.7999999999999999" },
        { "path", function() return uqpay.request("GET", "v1/x") end, "v1/x" },
        { "update_reason", function() return uqpay.cards.freeze(H.SINGLE_CARD, string.rep("x", 101)) end,
          "is 101 characters long; at most 100" },
        { "update_reason", function() return uqpay.cards.set_status(H.SINGLE_CARD, "FROZEN", string.rep("y", 140)) end,
          "is 140 characters long; at most 100" },
        { "query.page_size", function() return uqpay.request("GET", "/v1/issuing/cards", { query = { page_size = 2.5 } }) end,
          "2.5 is not a whole number" },
        { "card_number", function() return uqpay.cards.list { card_number = 0.5 } end, "0.5 is not a whole number" },
        { "query.x", function() return uqpay.request("GET", "/v1/issuing/cards", { query = { x = {} } }) end,
          "cannot be sent in a query" },
      }
      for _, c in ipairs(cases) do
        local e = err_of(c[2])
        assert.equals("usage", e.kind, c[1])
        assert.equals(c[1], e.field)
        assert.matches(c[3], e.message, 1, true)
      end
      assert.equals(before, H.requests())
      -- a UUID in capitals is the same id, sent in lower case
      assert.equals(H.SINGLE_CARD, uqpay.cards.get(H.SINGLE_CARD:upper()).card_id)
      -- 100 characters is the limit, not over it
      assert.equals("SUCCESS", uqpay.cards.freeze(H.SINGLE_CARD, string.rep("x", 100)).order_status)
    end)

    it("refuses an amount in another currency than its card's, for recharge and withdraw", function()
      -- a balance read from an answer knows its currency
      local sgd = uqpay.balance("SGD").available_balance
      assert.equals("SGD", sgd:currency())
      local before = H.requests()
      for _, f in ipairs { uqpay.recharge, uqpay.withdraw } do
        for _, amount in ipairs { money("1.00", "SGD"), money("100", "JPY"), sgd - money("49999") } do
          local e = err_of(f, H.SINGLE_CARD, amount)
          assert.equals("usage", e.kind)
          assert.equals("amount", e.field)
          assert.matches("is an amount in " .. amount:currency() .. "; card " .. H.SINGLE_CARD .. " is in USD",
            e.message, 1, true)
        end
      end
      -- the card's currency was read at most once, and nothing was written
      assert.is_true(H.requests() - before <= 1)
      assert.equals(0, H.applied(H.state(), "recharge") + H.applied(H.state(), "withdraw"))
      -- the card's own currency goes through, and so does an amount without one
      assert.equals("SUCCESS", uqpay.recharge(H.SINGLE_CARD, money("1.00", "USD")).order_status)
      assert.equals("SUCCESS", uqpay.recharge(H.SINGLE_CARD, "1.00").order_status)
      assert.equals("SUCCESS", uqpay.withdraw(H.SINGLE_CARD, uqpay.cards.get(H.SINGLE_CARD).available_balance -
        money("1")).order_status)
    end)

    it("checks each amount against its own currency: Banking's two, a card's limits, uqpay.request", function()
      local date = os.date("!%Y-%m-%d")
      -- a quote's buy_amount is in the buy currency, and goes back as one
      local q = uqpay.banking.quote { sell_currency = "USD", buy_currency = "SGD", buy_amount = "135.00",
                                      conversion_date = date }
      assert.equals("SGD", q.buy_amount:currency())
      assert.equals("COMPLETED", uqpay.banking.convert { quote_id = q.quote_price.quote_id, sell_currency = "USD",
        buy_currency = "SGD", buy_amount = q.buy_amount, conversion_date = date }.conversion_status)
      local cases = {
        { "buy_amount", "the request is in SGD", function() return uqpay.banking.convert { quote_id = H.SINGLE_CARD,
            sell_currency = "USD", buy_currency = "SGD", buy_amount = money("100.00", "USD"), conversion_date = date } end },
        { "payout_amount", "the request is in SGD", function() return uqpay.banking.payouts.create { currency = "USD",
            amount = "10.00", payout_currency = "SGD", payout_amount = money("10.00", "USD"),
            purpose_code = "AUDIO_VISUAL_SERVICES", payout_reference = "r", fee_paid_by = "OURS", payout_date = date,
            beneficiary_id = "88888888-8888-4888-8888-888888888881" } end },
        { "card_limit", "is in USD", function() return uqpay.cards.update(H.SINGLE_CARD, { card_limit = money("9", "SGD") }) end },
        { "limit_amount", "is in USD", function()
            return uqpay.cards.elevate_limit(H.SINGLE_CARD, { limit_amount = money("9", "SGD") }) end },
        { "amount", "is in USD", function() return uqpay.request("POST", "/v1/issuing/cards/" .. H.SINGLE_CARD ..
            "/recharge", { body = { amount = money("10", "SGD") } }) end },
        { "no_pin_payment_amount", "is in USD", function() return uqpay.request("POST", "/v1/issuing/cards/activate",
            { body = { card_id = H.SINGLE_CARD, activation_code = "x", pin = "123456",
                       no_pin_payment_amount = money("5", "SGD") } }) end },
      }
      uqpay.cards.get(H.SINGLE_CARD) -- its currency known: nothing below is sent
      local before = H.requests()
      for _, c in ipairs(cases) do
        local e = err_of(c[3])
        assert.equals("usage", e.kind, c[1])
        assert.equals(c[1], e.field)
        assert.matches(c[2], e.message, 1, true)
      end
      assert.equals(before, H.requests())
      -- the card's own currency, through uqpay.request too
      assert.equals("SUCCESS", uqpay.request("POST", "/v1/issuing/cards/" .. H.SINGLE_CARD .. "/recharge",
        { body = { amount = money("1.00", "USD") } }).order_status)
    end)

    it("reads a card it has not seen for the currency check, once, and sends no write on a mismatch", function()
      uqpay.balance("USD") -- token and connection warm
      -- made behind the client's back: no answer has shown its currency
      local status, c = H.api("POST", "/v1/issuing/cards", { card_currency = "SGD", cardholder_id = H.HOLDER1,
        card_product_id = H.SINGLE_PRODUCT })
      assert.equals(200, status)
      local before = H.requests()
      local e = err_of(uqpay.recharge, c.card_id, money("5", "USD"))
      assert.equals("amount", e.field)
      assert.matches("card " .. c.card_id .. " is in SGD", e.message, 1, true)
      assert.equals(1, H.requests() - before) -- the card's read, no write
      assert.equals("SUCCESS", uqpay.recharge(c.card_id, money("5", "SGD")).order_status)
      assert.equals(2, H.requests() - before) -- the write alone: the currency was known
    end)

    it("sends whole numbers in a query as integers, whatever their Lua type", function()
      local sent = {}
      local real = Client.query_string
      Client.query_string = function(q) sent[#sent + 1] = q; return real(q) end
      local ok, err = pcall(function()
        uqpay.request("GET", "/v1/issuing/cards", { query = { page_size = 10.0, page_number = 1 } })
        uqpay.cards.list { card_number = 2.0 ^ 53 }
        uqpay.cards.list { card_number = 4096360800001234 }
      end)
      Client.query_string = real
      assert(ok, err)
      assert.equals("10", sent[1].page_size)
      assert.equals("1", sent[1].page_number)
      assert.equals("9007199254740992", sent[2].card_number)
      assert.equals("4096360800001234", sent[3].card_number)
      assert.equals("?card_number=9007199254740992&page_number=1&page_size=100", real(sent[2]))
    end)
  end)

  describe("errors", function()
    it("api errors carry status, type, code, method, path, key and the raw body", function()
      local e = err_of(uqpay.recharge, H.FROZEN_CARD, "5")
      assert.equals("api", e.kind)
      assert.equals(400, e.status)
      assert.equals("card_error", e.type)
      assert.equals("card_not_active", e.code)
      assert.equals("POST", e.method)
      assert.equals("/v1/issuing/cards/" .. H.FROZEN_CARD .. "/recharge", e.path)
      assert.matches("^%x+%-", e.idempotency_key)
      assert.matches("card_not_active", e.body)
      assert.matches("uqpay api error: card is FROZEN", tostring(e))
    end)

    it("reusing a key for a different request is an idempotency error", function()
      local key = uqpay.uuid()
      uqpay.recharge(H.SINGLE_CARD, "5", { key = key })
      local e = err_of(uqpay.recharge, H.SINGLE_CARD, "6", { key = key })
      assert.equals("idempotency", e.kind)
      assert.equals(1, H.applied(H.state(), "recharge"))
    end)

    it("refuses idempotency keys that could end a header line, before sending", function()
      local before = H.requests()
      for _, k in ipairs { "a\r\nx-on-behalf-of: " .. H.SUB1, "", string.rep("k", 65), "a b", "a\0b" } do
        assert.equals("usage", err_of(uqpay.recharge, H.SINGLE_CARD, "1.00", { key = k }).kind)
        assert.equals("usage", err_of(uqpay.balance, "USD", { key = k }).kind)
        assert.equals("usage", err_of(uqpay.request, "POST", "/v1/issuing/balances", { key = k }).kind)
      end
      assert.equals(before, H.requests())
    end)

    it("stops paging at the first empty page, whatever total_pages claims", function()
      H.faults("hollow_pages:path=/v1/issuing/cards")
      local before = H.requests()
      assert.same({}, uqpay.cards.list())
      local n = 0
      for _ in uqpay.cards.each() do n = n + 1 end
      assert.equals(0, n)
      assert.is_true(H.requests() - before <= 3)
      H.faults("")
    end)

    it("never follows a redirect (the auth headers would go with it)", function()
      H.faults("redirect:next=1:path=/v1/issuing/products")
      local before = H.requests()
      local e = err_of(uqpay.products.list)
      assert.equals(302, e.status)
      assert.is_true(H.requests() - before <= 2) -- the token and the one request, nothing followed
    end)

    it("refuses a response body past max_response_bytes", function()
      H.faults("oversize:next=1:path=/v1/issuing/products:bytes=34000000")
      local e = err_of(uqpay.products.list)
      assert.equals("api", e.kind)
      assert.matches("larger than 33554432 bytes", e.message)
    end)

    it("a wrong API key is an auth error", function()
      local e = err_of(function() return client_with({ api_key = "wrong" }):call { method = "GET", path = "/v1/issuing/products" } end)
      assert.equals("auth", e.kind)
      assert.equals(401, e.status)
    end)

    it("an unreachable server is a network error after the retries", function()
      local c = client_with { base_url = "http://127.0.0.1:9/api", max_attempts = 2 }
      c.token.token = { auth_token = "x", expired_at = os.time() + 3600 }
      local e = err_of(function() return c:call { method = "GET", path = "/v1/issuing/products" } end)
      assert.equals("network", e.kind)
      assert.equals(2, e.attempts)
    end)

    it("a slow server is a timeout", function()
      H.faults("latency=1:ms=600:path=/v1/issuing/products")
      local e = err_of(uqpay.products.list, nil, { timeout_ms = 150 })
      assert.equals("timeout", e.kind)
    end)

    it("429s beyond the attempts are a rate_limit error", function()
      H.faults("burst429:next=10:path=/v1/issuing/products")
      local c = client_with { max_attempts = 2 }
      local e = err_of(function() return c:call { method = "GET", path = "/v1/issuing/products" } end)
      assert.equals("rate_limit", e.kind)
      assert.equals(429, e.status)
    end)
  end)

  describe("retries keep one idempotency key", function()
    it("across 500s before applying", function()
      H.faults("fail_before:next=2:path=/v1/issuing/cards/*/recharge")
      uqpay.recharge(H.SINGLE_CARD, "10.00")
      local st = H.state()
      assert.equals(1, H.applied(st, "recharge"))
      assert.equals("510.00", card(st, H.SINGLE_CARD).available_balance)
    end)

    it("across 500s after applying and dropped connections: applied once", function()
      H.faults("fail_after:next=1:path=/v1/issuing/transfers;drop:next=1:path=/v1/issuing/cards/*/recharge")
      uqpay.transfer { source_account_id = H.MASTER, destination_account_id = H.SUB1, currency = "USD", amount = "1.00" }
      uqpay.recharge(H.SINGLE_CARD, "10.00")
      local st = H.state()
      assert.equals(1, H.applied(st, "issuing_transfer"))
      assert.equals(1, H.applied(st, "recharge"))
      assert.equals("99989.00", st.issuing_balances[H.MASTER].USD)
    end)

    it("a 409 that does not say 'processing' is not a rejection: same key, applied once", function()
      H.faults("conflict:next=1:path=/v1/issuing/cards/*/recharge")
      local r = uqpay.recharge(H.SINGLE_CARD, "3.00")
      assert.equals("SUCCESS", r.order_status)
      assert.equals(1, H.applied(H.state(), "recharge"))
    end)

    it("gives up on a write with reconcile_required, naming method, path and key", function()
      H.faults("fail_after:next=1:path=/v1/issuing/cards/*/recharge;fail_before:next=10:path=/v1/issuing/cards/*/recharge")
      local key = uqpay.uuid()
      local e = err_of(uqpay.recharge, H.SINGLE_CARD, "10.00", { key = key })
      assert.equals("reconcile_required", e.kind)
      assert.equals("POST", e.method)
      assert.equals(key, e.idempotency_key)
      assert.equals(4, e.attempts)
      assert.equals(1, H.applied(H.state(), "recharge")) -- applied once, however often it was sent
    end)

    it("a revoked token after an attempt that may have applied: refreshed once, the same key settles it", function()
      H.faults("fail_after:next=1:path=/v1/issuing/cards/*/recharge")
      local before = H.state().tokens_issued
      local results, errs = uqpay.parallel({ "write", "revoke" }, function(what)
        if what == "write" then return uqpay.recharge(H.SINGLE_CARD, "2.00") end
        require("uqpay.parallel").sleep(100) -- while the write waits to retry
        H.admin("POST", "tokens", {})
      end, { concurrency = 2 })
      assert.is_nil(errs[1])
      assert.equals("SUCCESS", results[1].order_status)
      assert.equals(1, H.applied(H.state(), "recharge"))
      assert.equals(before + 1, H.state().tokens_issued)
    end)

    it("honours Retry-After on 429", function()
      H.faults("burst429:next=1:path=/v1/issuing/products")
      local t0 = core.monotonic_ms()
      uqpay.products.list()
      assert.is_true(core.monotonic_ms() - t0 >= 1000)
    end)

    it("waits for 'request is processing' and gets the original result", function()
      H.faults("latency=1:ms=800:next=1:path=/v1/issuing/cards/*/recharge")
      local key = uqpay.uuid()
      local tok = H.token()
      os.execute(string.format("curl -s -o /dev/null -X POST %s/api/v1/issuing/cards/%s/recharge " ..
        "-H 'x-auth-token: Bearer %s' -H 'x-idempotency-key: %s' -H 'Content-Type: application/json' " ..
        "-d '{\"amount\":7.00}' &", H.root(), H.SINGLE_CARD, tok, key))
      core.sleep_ms(300)
      local o = uqpay.recharge(H.SINGLE_CARD, "7.00", { key = key })
      assert.equals("7.00", tostring(o.amount))
      assert.equals(1, H.applied(H.state(), "recharge"))
    end)

    it("refreshes an expired token once mid-run and keeps the key", function()
      uqpay.balance("USD")
      H.advance(1801)
      uqpay.recharge(H.SINGLE_CARD, "1.00")
      assert.equals(1, H.applied(H.state(), "recharge"))
    end)
  end)

  describe("pacing and tokens", function()
    it("throttles to the client-side rate limit", function()
      local c = client_with { rate_limit = 60 } -- 1 per second, bursts of 6
      c.token:get()
      local t0 = core.monotonic_ms()
      for _ = 1, 8 do c:call { method = "GET", path = "/v1/issuing/products" } end
      -- six from the full bucket, then one per second
      assert.is_true(core.monotonic_ms() - t0 >= 1800)
    end)

    it("paces concurrent callers in uqpay.parallel as one budget (each waits its own turn)", function()
      local c = client_with { rate_limit = 60 }
      c.token:get()
      local t0 = core.monotonic_ms()
      local _, errs = uqpay.parallel({ 1, 2, 3, 4, 5, 6, 7, 8 }, function()
        c:call { method = "GET", path = "/v1/issuing/products" }
      end, { concurrency = 8 })
      assert.is_nil(next(errs))
      -- six at once, then the 7th after a second and the 8th after two
      -- (waiting together, they used to leave together)
      assert.is_true(core.monotonic_ms() - t0 >= 1800)
    end)

    it("learns an unknown limit from 429 + Retry-After: every caller pauses, then paces at the server's rate", function()
      H.config { rate_limit = 1200, rate_burst = 20 } -- 20 a second, 20 at once
      local c = client_with { rate_limit = 0, max_attempts = 3 }
      c.token:get()
      local before, items = H.requests(), {}
      for i = 1, 80 do items[i] = i end
      local _, errs = uqpay.parallel(items, function()
        c:call { method = "GET", path = "/v1/issuing/products" }
      end, { concurrency = 16 })
      assert.is_nil(next(errs))
      -- each request sent once, plus the 429s of two pauses at most
      local sent = H.requests() - before
      assert.is_true(sent <= 80 + 2 * 16, "requests sent: " .. sent)
      -- each success counts in the window it was sent in: the server's 1200
      -- (a late start after the pause only lowers it: the bucket holds 20)
      assert.is_true(c.learned.per_min > 1000 and c.learned.per_min <= 1260, "learned " .. tostring(c.learned.per_min))
    end)

    it("counts a success in the window it was sent in, whenever its answer arrives", function()
      local c = client_with { rate_limit = 0 }
      on_fake_clock(function(at)
        at(5000)
        c:succeeded(0) -- before any 429: no window to measure
        c:rate_limited(1000, 0) -- the first 429 opens window 1 at 5000
        c:succeeded(0) -- sent before it: let in from the previous bucket
        at(6001)
        for _ = 1, 16 do c:succeeded(1) end
        -- 16 more leave at 6003, four of them before the 429 among them
        -- is handled, in the same millisecond; the 429 is handled before
        -- the four that succeeded with it (answers that finish together)
        at(6003)
        c:rate_limited(1000, 1)
        assert.are.equal(16, c.learned.closed.ok)
        for _ = 1, 4 do c:succeeded(1) end
        c:succeeded(2) -- sent in the new window: counts there
      end)
      assert.are.equal(20, c.learned.closed.ok)
      assert.are.equal(1, c.learned.ok)
      assert.are.equal(20 * 60000 / 1003, c.learned.per_min)
    end)

    it("a late 429 for a request sent before the pause does not end the window being measured", function()
      local c = client_with { rate_limit = 0 }
      on_fake_clock(function(at)
        at(5000)
        c:rate_limited(1000, 0) -- pause until 6000, then measure window 1 from 5000
        at(6001)
        for _ = 1, 16 do c:succeeded(1) end
        at(6500)
        c:rate_limited(1000, 0) -- sent before the pause, answered after it
        assert.are.equal(6000, c.learned.pause_until)
        assert.is_nil(c.learned.closed)
        c:succeeded(1)
        at(7000)
        c:rate_limited(1000, 1) -- the window's own end
      end)
      assert.are.equal(17, c.learned.closed.ok)
      assert.are.equal(17 * 60000 / 2000, c.learned.per_min)
    end)

    it("a request that passed the throttle is not sent into a pause a 429 opened before its round ended", function()
      for _, limit in ipairs { 0, 19 } do -- unknown; known, a turn every 3.2 s
        local c = client_with { rate_limit = limit }
        c.token:get()
        local before, a0, t0, in_pause = H.requests(), c.attempts_total, core.monotonic_ms(), nil
        local _, errs = uqpay.parallel({ "call", "429" }, function(what)
          if what == "call" then
            -- passes the throttle, then waits for the round's end to leave
            return c:call { method = "GET", path = "/v1/issuing/products" }
          end
          -- another item's 429, handled later in the same round
          c:rate_limited(400, c.learned.window)
          require("uqpay.parallel").sleep(200)
          in_pause = H.requests() - before
        end, { concurrency = 2 })
        assert.is_nil(next(errs))
        assert.equals(0, in_pause) -- it used to leave at once, into the pause
        assert.equals(1, H.requests() - before) -- once, after the pause
        assert.equals(1, c.attempts_total - a0) -- held back is no attempt
        assert.is_true(core.monotonic_ms() - t0 >= 400)
        -- its turn went back: it left without waiting for a second one
        if limit > 0 then assert.is_true(c.bucket.tokens > -0.5, "bucket " .. c.bucket.tokens) end
      end
    end)

    it("a 429 from the token endpoint (a limit of its own) pauses no one and measures nothing", function()
      H.faults("burst429:next=1:path=/v1/connect/token")
      local c = client_with { rate_limit = 0 }
      c:call { method = "GET", path = "/v1/issuing/products" }
      assert.equals(1, H.state().tokens_issued) -- the fetch was retried
      assert.equals(0, c.learned.window)
      assert.equals(0, c.learned.pause_until)
      assert.equals(1, c.learned.ok) -- the products call; the token fetch is no API success
    end)

    it("a 429 at a known limit pauses every caller until Retry-After", function()
      H.faults("burst429:next=1:path=/v1/issuing/products")
      local c = client_with {}
      c.token:get()
      local before = H.requests()
      local _, errs = uqpay.parallel({ 1, 2, 3, 4 }, function()
        c:call { method = "GET", path = "/v1/issuing/products" }
      end, { concurrency = 4 })
      assert.is_nil(next(errs))
      assert.is_true(c.learned.pause_until > 0)
      assert.is_true(H.requests() - before <= 8)
    end)

    it("reuses one token, and refreshes it before it expires", function()
      local c = client_with {}
      for _ = 1, 3 do c:call { method = "GET", path = "/v1/issuing/products" } end
      assert.equals(1, H.state().tokens_issued)
      H.config { token_ttl = 200 } -- under the 5-minute margin: kept a minute, never fetched per request
      local c2 = client_with {}
      for _ = 1, 3 do c2:call { method = "GET", path = "/v1/issuing/products" } end
      assert.equals(2, H.state().tokens_issued)
    end)

    it("a 401 for a token already replaced does not drop the new one", function()
      local n = 0
      local tok = require("uqpay.token").new({ inprocess_sim = true }, function()
        n = n + 1
        return { auth_token = "t" .. n, expired_at = os.time() + 1800 }
      end)
      assert.equals("t1", tok:get())
      tok:invalidate("t1") -- the first 401: fetched anew
      assert.equals("t2", tok:get())
      tok:invalidate("t1") -- another request sent with t1 answers late
      assert.equals("t2", tok:get())
      assert.equals(2, n)
      tok:invalidate("t2")
      assert.equals("t3", tok:get())
    end)
  end)

  describe("uqpay.request", function()
    it("reaches any endpoint with query, body, key and on_behalf_of", function()
      local b = uqpay.request("POST", "/v1/issuing/balances", { body = { currency = "USD" }, on_behalf_of = H.SUB1 })
      assert.equals("1000.00", tostring(b.available_balance))
      local e = err_of(uqpay.request, "GET", "/v1/nope")
      assert.equals(404, e.status)
      e = err_of(uqpay.request, "GET", "/v1/issuing/balances", { bogus = 1 })
      assert.equals("usage", e.kind)
    end)
  end)

  describe("uqpay.webhook.verify", function()
    local body, secret = '{"event_type":"card.recharge.succeeded"}', "whsec"
    it("accepts a good signature with seconds or milliseconds timestamps", function()
      local now = os.time()
      for _, ts in ipairs { tostring(now), tostring(now * 1000) } do
        local sig = core.hmac_sha512_hex(secret, body .. ts)
        assert.is_true(uqpay.webhook.verify { body = body, timestamp = ts, signature = sig, secret = secret })
      end
    end)
    it("refuses bad signatures and stale timestamps", function()
      local ts = tostring(os.time())
      local sig = core.hmac_sha512_hex(secret, body .. ts)
      local ok, why = uqpay.webhook.verify { body = body .. " ", timestamp = ts, signature = sig, secret = secret }
      assert.is_false(ok)
      assert.equals("signature mismatch", why)
      local old = tostring(os.time() - 301)
      ok, why = uqpay.webhook.verify { body = body, timestamp = old, secret = secret,
                                      signature = core.hmac_sha512_hex(secret, body .. old) }
      assert.is_false(ok)
      assert.matches("tolerance", why)
      assert.equals("usage", err_of(uqpay.webhook.verify, { body = body }).kind)
    end)
  end)

  describe("redaction", function()
    local R = require "uqpay.redact"
    it("redacts bodies by structure: card numbers keep four digits, CVVs of any type go", function()
      local s = R.body('{"card_number":"4096360812345668","cvv":123,"pin":"123456","auth_token":"abc",' ..
                       '"no_pin_payment_amount":200,"expire_date":"09/29"}')
      assert.is_nil(s:find("4096360812345668", 1, true))
      assert.matches("************5668", s, 1, true)
      assert.is_nil(s:find("123", 1, true))
      assert.is_nil(s:find("abc", 1, true))
      assert.is_nil(s:find("09/29", 1, true))
      assert.matches('"no_pin_payment_amount":200', s, 1, true)
    end)

    it("leaves UUIDs, timestamps and phone numbers alone, masks Luhn-valid card numbers in free text", function()
      local text = "card 66666666-6666-4666-8666-666666666661 at 2026-11-24T10:56:41+00:00, call +65 9123 4567"
      assert.equals(text, R.text(text))
      assert.equals("card ************5663 used", R.text("card 4096 3608 1234 5663 used"))
      assert.equals("card ************5663 used", R.text("card 4096-3608-1234-5663 used"))
      assert.equals("id 4096360812345669", R.text("id 4096360812345669")) -- fails Luhn: not a card
      assert.equals("cards ************1111 ************5663", R.text("cards 4111111111111111 4096360812345663"))
    end)

    it("redacts by name however many names came before (the cache of names is bounded), nested and in cycles", function()
      for i = 1, 5000 do
        local t = { ["field_" .. i] = i }
        assert.are.equal(t, (R.value(t)))
      end
      local cyclic = { CVV = "123", inner = { Card_Number = "4096360812345668", pin = "1234" } }
      cyclic.inner.up = cyclic
      local red, changed = R.value(cyclic)
      assert.is_true(changed)
      assert.are.equal("[REDACTED]", red.CVV)
      assert.are.equal("************5668", red.inner.Card_Number)
      assert.are.equal("[REDACTED]", red.inner.pin)
      assert.are.equal("123", cyclic.CVV) -- the original is left as it was
      assert.are.equal(red, red.inner.up) -- the cycle leads to the copy, not back to the original
      -- a table reached twice is redacted wherever it is reached
      local shared = { cvv = "123", last4 = "5668" }
      local twice = R.value { a = shared, b = { c = shared }, d = { shared } }
      assert.are.equal("[REDACTED]", twice.a.cvv)
      assert.are.equal("[REDACTED]", twice.b.c.cvv)
      assert.are.equal("[REDACTED]", twice.d[1].cvv)
      assert.is_nil(uqpay.json.encode(twice):find("123", 1, true))
      local e = require("uqpay.errors").new { kind = "api", message = "m", body = { cvv = "1" } } -- typed tables are left
      assert.are.equal(e, (R.value { err = e }).err)
      local flat = { amount = "1.00", card_id = "x" }
      assert.are.equal(flat, (R.value(flat)))
    end)

    it("removes every literal secret value, with or without a Bearer prefix", function()
      R.secret("tok-0123456789abcdef")
      local s = R.text("the server says tok-0123456789abcdef and Bearer tok-0123456789abcdef")
      assert.is_nil(s:find("tok-0123456789abcdef", 1, true))
    end)

    it("redacts an echoed secret or card number in an error's type and code, as in its message", function()
      R.secret("tok-typecode-0123456789")
      local e = require("uqpay.client").api_error(nil, { status = 400,
        body = '{"type":"bad tok-typecode-0123456789","code":"4111111111111111","message":"x"}' },
        { method = "GET", path = "/v1/issuing/cards" })
      assert.is_nil(tostring(e):find("tok-typecode-0123456789", 1, true))
      assert.is_nil(tostring(e):find("4111111111111111", 1, true))
      assert.is_nil(e.type:find("tok-typecode-0123456789", 1, true))
      assert.are.equal("************1111", e.code)
    end)

    it("never shows the access token, even when the server echoes it", function()
      local token = H.token()
      local e = err_of(uqpay.request, "POST", "/v1/issuing/cards/" .. H.FROZEN_CARD .. "/recharge",
        { body = { amount = money("1.00") } })
      assert.is_nil(tostring(e):find(token, 1, true))
      R.secret(token)
      assert.is_nil(R.text("echo " .. token):find(token, 1, true))
    end)
  end)
end)
