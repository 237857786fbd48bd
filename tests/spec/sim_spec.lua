-- The simulator, driven through real HTTP (raw requests, not the uqpay
-- client), with every state change checked in the ledger (/__sim/state).
local H = require "tests.helpers.sim"
local core = require "uqpay.core"
local money = uqpay.money

local function bal(state, acct, cur) return state.issuing_balances[acct][cur] end
local function card(state, id)
  for _, c in ipairs(state.cards) do if c.card_id == id then return c end end
end

describe("simulator", function()
  before_each(function() H.reset() end)

  describe("admin robustness", function()
    it("answers a seed that does not build with 400 and keeps the old one", function()
      local status, res = H.raw("POST", "/__sim/seed", { body = { client_id = "x", api_key = "y", master = "nope" } })
      assert.equals(400, status)
      assert.equals("invalid_seed", res.code)
      assert.equals(200, (H.raw("POST", "/__sim/reset")))
      assert.equals(200, (H.api("GET", "/v1/issuing/cards/" .. H.SINGLE_CARD)))
    end)

    it("reads the admin path before it decides whether the body is JSON", function()
      local status = H.raw("POST", "/__sim/webhook-sink", { body = "not json" })
      assert.equals(200, status)
    end)
  end)

  describe("auth", function()
    it("issues tokens with expired_at for the seed's credentials", function()
      local status, t = H.raw("POST", "/api/v1/connect/token",
        { headers = { ["x-client-id"] = H.CLIENT_ID, ["x-api-key"] = H.API_KEY } })
      assert.equals(200, status)
      assert.is_string(t.auth_token)
      assert.equals("integer", math.type(t.expired_at))
      assert.is_true(t.expired_at > os.time() + 1700)
    end)

    it("rejects a wrong client id (400) and a wrong key (401 {error})", function()
      local status, body = H.raw("POST", "/api/v1/connect/token",
        { headers = { ["x-client-id"] = "nope", ["x-api-key"] = H.API_KEY } })
      assert.equals(400, status)
      assert.equals("Invalid client id", body.message)
      status, body = H.raw("POST", "/api/v1/connect/token",
        { headers = { ["x-client-id"] = H.CLIENT_ID, ["x-api-key"] = "wrong" } })
      assert.equals(401, status)
      assert.is_string(body.error)
    end)

    it("requires x-auth-token: Bearer <token>", function()
      local status, body = H.raw("GET", "/api/v1/issuing/balances")
      assert.equals(401, status)
      assert.is_string(body.error)
      status = H.raw("GET", "/api/v1/issuing/balances", { headers = { ["x-auth-token"] = H.token() } })
      assert.equals(401, status)
      status = H.raw("GET", "/api/v1/issuing/balances", { headers = { ["x-auth-token"] = "Bearer nope" } })
      assert.equals(401, status)
    end)

    it("expires tokens by the (injectable) clock with a 'token expired' 401", function()
      H.config { token_ttl = 60 }
      local tok = H.token()
      local h = { ["x-auth-token"] = "Bearer " .. tok }
      assert.equals(200, (H.raw("GET", "/api/v1/issuing/balances", { headers = h })))
      H.advance(61)
      local status, body = H.raw("GET", "/api/v1/issuing/balances", { headers = h })
      assert.equals(401, status)
      assert.equals("token expired", body.error)
    end)
  end)

  describe("accounts and x-on-behalf-of", function()
    it("lists connected sub-accounts", function()
      local status, body = H.api("GET", "/v1/accounts")
      assert.equals(200, status)
      assert.equals(2, body.total_items)
      assert.equals(H.SUB1, body.data[1].account_id)
    end)

    it("scopes requests to a sub-account and refuses unknown or malformed ones", function()
      local _, body = H.api("POST", "/v1/issuing/balances", { currency = "USD" }, { ["x-on-behalf-of"] = H.SUB1 })
      assert.equals("1000.00", tostring(body.available_balance))
      for _, bad in ipairs { "not-a-uuid", "99999999-9999-4999-8999-999999999999", H.MASTER } do
        local status, err = H.api("GET", "/v1/issuing/balances", nil, { ["x-on-behalf-of"] = bad })
        assert.equals(400, status)
        assert.equals("account_error", err.type)
        assert.equals("sub_account_not_found", err.code)
      end
    end)
  end)

  describe("issuing balances", function()
    it("lists and retrieves balances as exact amounts", function()
      local status, list = H.api("GET", "/v1/issuing/balances?page_size=10&page_number=1")
      assert.equals(200, status)
      assert.equals(2, list.total_items)
      local _, usd = H.api("POST", "/v1/issuing/balances", { currency = "USD" })
      assert.equals("100000.00", tostring(usd.available_balance))
      assert.equals("ACTIVE", usd.balance_status)
    end)

    it("leaves a balance transaction with ending_balance for every movement", function()
      H.api("POST", "/v1/issuing/cards/" .. H.SINGLE_CARD .. "/recharge", { amount = money("10.00") })
      local _, txns = H.api("GET", "/v1/issuing/balances/transactions?currency=USD")
      assert.equals(1, txns.total_items)
      local t = txns.data[1]
      assert.equals("CARD_RECHARGE", t.transaction_type)
      assert.equals("10.00", tostring(t.amount))
      assert.equals("99990.00", tostring(t.ending_balance))
    end)
  end)

  describe("issuing transfers", function()
    it("moves funds between master and sub-account", function()
      local status, r = H.api("POST", "/v1/issuing/transfers", { source_account_id = H.MASTER,
        destination_account_id = H.SUB1, currency = "USD", amount = money("250.50"), remark = "top-up" })
      assert.equals(200, status)
      local _, t = H.api("GET", "/v1/issuing/transfers/" .. r.transfer_id)
      assert.equals("completed", t.transfer_status)
      assert.equals("250.50", tostring(t.amount))
      local st = H.state()
      assert.equals("99749.50", bal(st, H.MASTER, "USD"))
      assert.equals("1250.50", bal(st, H.SUB1, "USD"))
      assert.equals(1, H.applied(st, "issuing_transfer"))
    end)

    it("refuses insufficient funds, unknown transfers and bad amounts", function()
      local status, e = H.api("POST", "/v1/issuing/transfers", { source_account_id = H.SUB2,
        destination_account_id = H.MASTER, currency = "USD", amount = money("250.01") })
      assert.equals(400, status)
      assert.equals("insufficient_balance", e.code)
      status, e = H.api("GET", "/v1/issuing/transfers/" .. core.uuid())
      assert.equals(400, status)
      assert.equals("transfer_not_found", e.code)
      for _, amount in ipairs { "0", "-5", "1.005" } do
        status, e = H.api("POST", "/v1/issuing/transfers", { source_account_id = H.MASTER,
          destination_account_id = H.SUB1, currency = "USD", amount = money(amount, amount == "1.005" and "KWD" or nil) })
        assert.equals(400, status, amount)
        assert.equals("invalid_amount", e.code, amount)
      end
      status, e = H.api("POST", "/v1/issuing/transfers", { source_account_id = H.MASTER, currency = "USD", amount = 5 })
      assert.equals(400, status)
      assert.equals("invalid_request_error", e.type)
      assert.matches("destination_account_id", e.message)
      assert.equals(0, H.applied(H.state()))
    end)

    it("refuses malformed JSON bodies", function()
      local status, e = H.raw("POST", "/api/v1/issuing/transfers", { body = "{not json",
        headers = { ["x-auth-token"] = "Bearer " .. H.token(), ["x-idempotency-key"] = core.uuid() } })
      assert.equals(400, status)
      assert.equals("invalid_json", e.code)
    end)
  end)

  describe("cards: SINGLE and SHARE rules", function()
    it("funds a SINGLE card from the issuing balance at creation; a SHARE card not", function()
      local _, single = H.api("POST", "/v1/issuing/cards", { card_currency = "USD", cardholder_id = H.HOLDER1,
        card_product_id = H.SINGLE_PRODUCT, card_limit = money("300.00") })
      local _, share = H.api("POST", "/v1/issuing/cards", { card_currency = "USD", cardholder_id = H.HOLDER1,
        card_product_id = H.SHARE_PRODUCT, card_limit = money("5000.00") })
      assert.equals("ACTIVE", single.card_status)
      local st = H.state()
      assert.equals("99700.00", bal(st, H.MASTER, "USD"))
      assert.equals("300.00", card(st, single.card_id).available_balance)
      assert.equals("5000.00", card(st, share.card_id).available_balance)
    end)

    it("refuses a SINGLE card the balance cannot fund", function()
      local status, e = H.api("POST", "/v1/issuing/cards", { card_currency = "USD", cardholder_id = H.HOLDER1,
        card_product_id = H.SINGLE_PRODUCT, card_limit = money("100000.01") })
      assert.equals(400, status)
      assert.equals("insufficient_balance", e.code)
    end)

    it("recharge and withdraw move funds for SINGLE, only the card balance for SHARE", function()
      H.api("POST", "/v1/issuing/cards/" .. H.SINGLE_CARD .. "/recharge", { amount = money("100.02") })
      H.api("POST", "/v1/issuing/cards/" .. H.SHARE_CARD .. "/recharge", { amount = money("40.00") })
      local st = H.state()
      assert.equals("99899.98", bal(st, H.MASTER, "USD"))
      assert.equals("600.02", card(st, H.SINGLE_CARD).available_balance)
      assert.equals("1040.00", card(st, H.SHARE_CARD).available_balance)
      local _, o = H.api("POST", "/v1/issuing/cards/" .. H.SINGLE_CARD .. "/withdraw", { amount = money("0.02") })
      assert.equals("CARD_WITHDRAW", o.order_type)
      H.api("POST", "/v1/issuing/cards/" .. H.SHARE_CARD .. "/withdraw", { amount = money("40.00") })
      st = H.state()
      assert.equals("99900.00", bal(st, H.MASTER, "USD"))
      assert.equals("600.00", card(st, H.SINGLE_CARD).available_balance)
      assert.equals("1000.00", card(st, H.SHARE_CARD).available_balance)
      local _, order = H.api("GET", "/v1/issuing/cards/" .. o.card_order_id .. "/order")
      assert.equals("SUCCESS", order.order_status)
      assert.equals("0.02", tostring(order.amount))
    end)

    it("refuses recharges of unknown or frozen cards, bad amounts and over-withdrawals", function()
      local cases = {
        { H.FROZEN_CARD, "recharge", "5", "card_not_active" },
        { core.uuid(), "recharge", "5", "card_not_found" },
        { H.SINGLE_CARD, "recharge", "0", "invalid_amount" },
        { H.SINGLE_CARD, "withdraw", "500.01", "insufficient_balance" },
      }
      for _, c in ipairs(cases) do
        local status, e = H.api("POST", "/v1/issuing/cards/" .. c[1] .. "/" .. c[2], { amount = money(c[3]) })
        assert.equals(400, status)
        assert.equals(c[4], e.code)
      end
      local status, e = H.api("POST", "/v1/issuing/cards/" .. H.SINGLE_CARD .. "/recharge", { amount = "12.345" })
      assert.equals(400, status)
      assert.equals("invalid_amount", e.code)
      assert.equals(0, H.applied(H.state()))
    end)

    it("freezes, unfreezes and cancels; a cancelled SINGLE card refunds the balance", function()
      local path = "/v1/issuing/cards/" .. H.SINGLE_CARD .. "/status"
      assert.equals(200, (H.api("POST", path, { card_status = "FROZEN", update_reason = "test" })))
      local status, e = H.api("POST", path, { card_status = "FROZEN" })
      assert.equals(400, status)
      assert.equals("invalid_card_status", e.code)
      assert.equals(200, (H.api("POST", path, { card_status = "ACTIVE" })))
      assert.equals(200, (H.api("POST", path, { card_status = "CANCELLED" })))
      local st = H.state()
      assert.equals("CANCELLED", card(st, H.SINGLE_CARD).card_status)
      assert.equals("0.00", card(st, H.SINGLE_CARD).available_balance)
      assert.equals("100500.00", bal(st, H.MASTER, "USD"))
    end)

    it("lists with filters and pagination, retrieves and updates", function()
      local _, list = H.api("GET", "/v1/issuing/cards?card_status=ACTIVE&page_size=10")
      assert.equals(3, list.total_items)
      assert.is_table(list.data[1].cardholder)
      local _, c = H.api("GET", "/v1/issuing/cards/" .. H.SHARE_CARD)
      assert.equals("SHARE", c.mode_type)
      assert.equals(200, (H.api("POST", "/v1/issuing/cards/" .. H.SHARE_CARD, { card_limit = money("1500.00"),
        metadata = { team = "ops" } })))
      _, c = H.api("GET", "/v1/issuing/cards/" .. H.SHARE_CARD)
      assert.equals("1500.00", tostring(c.card_limit))
      assert.equals("ops", c.metadata.team)
      local status, e = H.api("POST", "/v1/issuing/cards/" .. H.SINGLE_CARD, { card_limit = money("1") })
      assert.equals(400, status)
      assert.equals("invalid_parameter", e.code)
    end)

    it("enforces page_size 10..100", function()
      for _, q in ipairs { "page_size=9", "page_size=101", "page_number=0", "page_size=abc" } do
        local status, e = H.api("GET", "/v1/issuing/cards?" .. q)
        assert.equals(400, status, q)
        assert.equals("invalid_request_error", e.type)
      end
      for i = 1, 12 do
        H.api("POST", "/v1/issuing/cards", { card_currency = "USD", cardholder_id = H.HOLDER2,
          card_product_id = H.SHARE_PRODUCT, card_limit = money(i) })
      end
      local _, p2 = H.api("GET", "/v1/issuing/cards?page_size=10&page_number=2")
      assert.equals(16, p2.total_items)
      assert.equals(2, p2.total_pages)
      assert.equals(6, #p2.data)
    end)
  end)

  describe("cardholders, products, transactions, reports", function()
    it("creates, lists, retrieves and updates cardholders; refuses duplicates", function()
      local body = { first_name = "Ann", last_name = "Lee", email = "ann@example.com", country_code = "SG",
                     phone_number = "90000001" }
      local status, ch = H.api("POST", "/v1/issuing/cardholders", body)
      assert.equals(200, status)
      assert.equals("SUCCESS", ch.cardholder_status)
      status = H.api("POST", "/v1/issuing/cardholders", body)
      assert.equals(400, status)
      local _, got = H.api("GET", "/v1/issuing/cardholders/" .. ch.cardholder_id)
      assert.equals("Ann", got.first_name)
      H.api("POST", "/v1/issuing/cardholders/" .. ch.cardholder_id, { email = "ann2@example.com" })
      _, got = H.api("GET", "/v1/issuing/cardholders/" .. ch.cardholder_id)
      assert.equals("ann2@example.com", got.email)
      local _, list = H.api("GET", "/v1/issuing/cardholders")
      assert.equals(3, list.total_items)
      status = H.api("POST", "/v1/issuing/cardholders", { first_name = "X" })
      assert.equals(400, status)
    end)

    it("lists products", function()
      local _, p = H.api("GET", "/v1/issuing/products")
      assert.equals(2, p.total_items)
      assert.equals("SINGLE", p.data[1].mode_type)
    end)

    it("simulates authorizations and reversals into card transactions", function()
      local _, auth = H.api("POST", "/v1/simulation/issuing/authorization",
        { card_id = H.SHARE_CARD, transaction_amount = money("70.25") })
      assert.equals("APPROVED", auth.transaction_status)
      local st = H.state()
      assert.equals("929.75", card(st, H.SHARE_CARD).available_balance)
      assert.equals("99929.75", bal(st, H.MASTER, "USD")) -- SHARE draws on the issuing balance
      local _, declined = H.api("POST", "/v1/simulation/issuing/authorization",
        { card_id = H.SINGLE_CARD, transaction_amount = money("9999") })
      assert.equals("DECLINED", declined.transaction_status)
      local _, rev = H.api("POST", "/v1/simulation/issuing/reversal", { original_transaction_id = auth.transaction_id })
      assert.equals("REVERSAL", rev.transaction_type)
      st = H.state()
      assert.equals("1000.00", card(st, H.SHARE_CARD).available_balance)
      assert.equals("100000.00", bal(st, H.MASTER, "USD"))
      local _, list = H.api("GET", "/v1/issuing/transactions?card_id=" .. H.SHARE_CARD)
      assert.equals(2, list.total_items)
      local _, one = H.api("GET", "/v1/issuing/transactions/" .. auth.transaction_id)
      assert.equals("70.25", tostring(one.billing_amount))
    end)

    it("creates reports and serves them as CSV", function()
      H.api("POST", "/v1/issuing/cards/" .. H.SINGLE_CARD .. "/recharge", { amount = money("1.00") })
      local _, r = H.api("POST", "/v1/issuing/reports", { report_type = "LEDGER",
        start_time = "2026-01-01T00:00:00+08:00", end_time = "2026-12-31T00:00:00+08:00" })
      local status, csv, headers = H.api("GET", "/v1/issuing/reports/" .. r.report_id)
      assert.equals(200, status)
      assert.equals("text/csv", headers["content-type"])
      assert.matches("^transaction_id,transaction_type", csv)
      assert.matches("CARD_RECHARGE,USD,1.00,99999.00", csv, 1, true)
      status = H.api("POST", "/v1/issuing/reports", { report_type = "NOPE", start_time = "a", end_time = "b" })
      assert.equals(400, status)
    end)
  end)

  describe("banking", function()
    it("lists balances and retrieves one, amounts as strings on the wire", function()
      local status, list = H.api("GET", "/v1/balances")
      assert.equals(200, status)
      assert.equals(3, list.total_items)
      local res = core.http_new():request { method = "GET", url = H.root() .. "/api/v1/balances/USD",
        headers = { "x-auth-token: Bearer " .. H.token() } }
      assert.equals(200, res.status)
      assert.matches('"available_balance":"250000.00"', res.body, 1, true)
    end)

    it("creates, lists and retrieves transfers", function()
      local status, r = H.api("POST", "/v1/transfer", { source_account_id = H.MASTER, target_account_id = H.SUB1,
        currency = "USD", amount = "100.50", reason = "funding" })
      assert.equals(200, status)
      assert.is_string(r.short_reference_id)
      local _, t = H.api("GET", "/v1/transfer/" .. r.transfer_id)
      assert.equals("100.50", tostring(t.transfer_amount))
      local _, list = H.api("GET", "/v1/transfer")
      assert.equals(1, list.total_items)
      local st = H.state()
      assert.equals("249899.50", st.banking_balances[H.MASTER].USD)
      assert.equals("600.50", st.banking_balances[H.SUB1].USD)
      status = H.api("POST", "/v1/transfer", { source_account_id = H.SUB1, target_account_id = H.MASTER,
        currency = "USD", amount = "100000", reason = "x" })
      assert.equals(400, status)
    end)
  end)

  describe("banking payouts and conversions", function()
    it("converts at the quoted rate and pays out, debiting exactly", function()
      local date = os.date("!%Y-%m-%d")
      local _, q = H.api("POST", "/v1/conversion/quote", { sell_currency = "SGD", buy_currency = "USD",
        buy_amount = "74.07", conversion_date = date })
      assert.equals("99.99", tostring(q.sell_amount)) -- 74.07 USD at 1.3500, half up
      local status = H.api("POST", "/v1/conversion", { quote_id = q.quote_price.quote_id, sell_currency = "SGD",
        buy_currency = "USD", buy_amount = "74.07", conversion_date = date })
      assert.equals(200, status)
      local st = H.state()
      assert.equals("79900.01", st.banking_balances[H.MASTER].SGD)
      assert.equals("250074.07", st.banking_balances[H.MASTER].USD)
      assert.equals(1, H.applied(st, "conversion"))
      _, q = H.api("POST", "/v1/conversion/quote", { sell_currency = "USD", buy_currency = "SGD",
        sell_amount = "1", conversion_date = date })
      H.advance(76)
      local c
      status, c = H.api("POST", "/v1/conversion", { quote_id = q.quote_price.quote_id, sell_currency = "USD",
        buy_currency = "SGD", sell_amount = "1", conversion_date = date })
      assert.equals(400, status)
      assert.equals("quote_expired", c.code)
      status = H.api("POST", "/v1/conversion/quote", { sell_currency = "USD", buy_currency = "SGD",
        sell_amount = "1", buy_amount = "1", conversion_date = date })
      assert.equals(400, status)
      status = H.api("POST", "/v1/payouts", { currency = "EUR", amount = "10000.01", purpose_code = "X",
        payout_reference = "r", fee_paid_by = "OURS", payout_date = date,
        beneficiary_id = "88888888-8888-4888-8888-888888888881" })
      assert.equals(400, status)
      local _, list = H.api("GET", "/v1/balances/transactions?currency=USD")
      assert.equals(1, list.total_items)
      assert.equals("C", list.data[1].credit_debit_type)
    end)
  end)

  describe("idempotency", function()
    local path = "/v1/issuing/cards/" .. H.SINGLE_CARD .. "/recharge"

    it("replays the original response for the same key and request", function()
      local key = core.uuid()
      local _, first = H.api("POST", path, { amount = money("5.00") }, { ["x-idempotency-key"] = key })
      local status, second, headers = H.api("POST", path, { amount = money("5.00") }, { ["x-idempotency-key"] = key })
      assert.equals(200, status)
      assert.equals(first.card_order_id, second.card_order_id)
      assert.equals("true", headers["x-idempotent-replayed"])
      assert.equals(1, H.applied(H.state(), "recharge"))
    end)

    it("replays failures too", function()
      local key = core.uuid()
      local s1, e1 = H.api("POST", path, { amount = money("99999999") }, { ["x-idempotency-key"] = key })
      assert.equals(400, s1)
      local s2, e2 = H.api("POST", path, { amount = money("99999999") }, { ["x-idempotency-key"] = key })
      assert.equals(400, s2)
      assert.equals(e1.code, e2.code)
    end)

    it("refuses the same key with a different request (400 idempotency_error)", function()
      local key = core.uuid()
      H.api("POST", path, { amount = money("5.00") }, { ["x-idempotency-key"] = key })
      local status, e = H.api("POST", path, { amount = money("6.00") }, { ["x-idempotency-key"] = key })
      assert.equals(400, status)
      assert.equals("idempotency_error", e.type)
      assert.equals(1, H.applied(H.state(), "recharge"))
    end)

    it("scopes keys per account", function()
      local key = core.uuid()
      local body = { currency = "USD" }
      local _, a = H.api("POST", "/v1/issuing/balances", body, { ["x-idempotency-key"] = key })
      local _, b = H.api("POST", "/v1/issuing/balances", body, { ["x-idempotency-key"] = key, ["x-on-behalf-of"] = H.SUB1 })
      assert.are_not.equal(tostring(a.available_balance), tostring(b.available_balance))
    end)

    it("forgets keys after 24 hours", function()
      local key = core.uuid()
      H.api("POST", path, { amount = money("5.00") }, { ["x-idempotency-key"] = key })
      H.advance(24 * 3600 + 1)
      H.api("POST", path, { amount = money("5.00") }, { ["x-idempotency-key"] = key })
      assert.equals(2, H.applied(H.state(), "recharge"))
    end)

    it("answers 'request is processing' while the first request is in flight", function()
      H.faults("latency=1:ms=1500:path=/v1/issuing/cards/*/recharge:next=1")
      local key = core.uuid()
      local tok = H.token()
      local cmd = string.format("curl -s -o /dev/null -X POST %s/api%s -H 'x-auth-token: Bearer %s' " ..
        "-H 'x-idempotency-key: %s' -H 'Content-Type: application/json' -d '{\"amount\":5}' &",
        H.root(), path, tok, key)
      os.execute(cmd)
      -- until the first request is held in the simulator
      assert.is_true(H.wait_until(function() return H.state().in_flight == 1 end))
      local status, e = H.raw("POST", "/api" .. path, { body = '{"amount":5}', headers = {
        ["x-auth-token"] = "Bearer " .. tok, ["x-idempotency-key"] = key } })
      assert.equals(409, status)
      assert.matches("Request is processing", e.message)
      -- the first request finishes (1.5 s held; longer under ASan): applied once
      assert.is_true(H.wait_until(function() return H.state().in_flight == 0 end))
      assert.equals(1, H.applied(H.state(), "recharge"))
    end)

    it("requires a key on writes", function()
      local status, e = H.raw("POST", "/api" .. path, { body = '{"amount":5}', headers = {
        ["x-auth-token"] = "Bearer " .. H.token() } })
      assert.equals(400, status)
      assert.equals("missing_idempotency_key", e.code)
    end)
  end)

  describe("faults", function()
    local path = "/v1/issuing/cards/" .. H.SINGLE_CARD .. "/recharge"

    it("fail_before answers 500 without applying", function()
      H.faults("fail_before:next=1:path=/v1/issuing/cards/*/recharge")
      local key = core.uuid()
      local status, e = H.api("POST", path, { amount = money("5") }, { ["x-idempotency-key"] = key })
      assert.equals(500, status)
      assert.equals("api_error", e.type)
      assert.equals(0, H.applied(H.state()))
      assert.equals(200, (H.api("POST", path, { amount = money("5") }, { ["x-idempotency-key"] = key })))
      assert.equals(1, H.applied(H.state()))
    end)

    it("fail_after applies, answers 500, and replays success for the same key", function()
      H.faults("fail_after:next=1")
      local key = core.uuid()
      local status = H.api("POST", path, { amount = money("5") }, { ["x-idempotency-key"] = key })
      assert.equals(500, status)
      assert.equals(1, H.applied(H.state()))
      local s2, _, h = H.api("POST", path, { amount = money("5") }, { ["x-idempotency-key"] = key })
      assert.equals(200, s2)
      assert.equals("true", h["x-idempotent-replayed"])
      assert.equals(1, H.applied(H.state()))
    end)

    it("drop applies and closes the connection without a response", function()
      H.faults("drop:next=1:method=POST")
      local status, kind = H.api("POST", path, { amount = money("5") }, nil, nil, true)
      assert.is_nil(status)
      assert.equals("network", kind)
      assert.equals(1, H.applied(H.state()))
    end)

    it("latency delays the answer", function()
      H.faults("latency=1:ms=300")
      local t0 = core.monotonic_ms()
      assert.equals(200, (H.api("GET", "/v1/issuing/products")))
      assert.is_true(core.monotonic_ms() - t0 >= 300)
    end)

    it("burst429 answers 429 with Retry-After", function()
      H.faults("burst429:next=2:path=/v1/issuing/products")
      local status, body, headers = H.api("GET", "/v1/issuing/products")
      assert.equals(429, status)
      assert.equals("too_many_requests", body.code)
      assert.is_string(headers["retry-after"])
    end)

    it("fires by probability", function()
      H.faults("fail_before=0.5:path=/v1/issuing/products")
      local failed = 0
      for _ = 1, 40 do
        if H.api("GET", "/v1/issuing/products") == 500 then failed = failed + 1 end
      end
      assert.is_true(failed > 5 and failed < 35, "failed " .. failed .. " of 40")
    end)

    it("rejects malformed fault specs", function()
      local status = H.raw("POST", "/__sim/faults", { body = { spec = "explode=2" } })
      assert.equals(400, status)
      status = H.raw("POST", "/__sim/faults", { body = { spec = "drop=1.5" } })
      assert.equals(400, status)
    end)
  end)

  describe("rate limiting", function()
    it("answers 429 with Retry-After once the client's bucket is empty", function()
      local tok = H.token()
      H.config { rate_limit = 3, rate_burst = 3 }
      local h = { ["x-auth-token"] = "Bearer " .. tok }
      local statuses = {}
      for i = 1, 4 do statuses[i] = (H.raw("GET", "/api/v1/issuing/products", { headers = h })) end
      assert.same({ 200, 200, 200, 429 }, statuses)
      local _, body, headers = H.raw("GET", "/api/v1/issuing/products", { headers = h })
      assert.equals("too_many_requests", body.code)
      assert.is_true(tonumber(headers["retry-after"]) >= 1)
    end)
  end)

  describe("webhooks", function()
    it("delivers signed events for recharges", function()
      local sink = core.sim_start {}
      local sink_base = "http://127.0.0.1:" .. sink:info().port .. "/api"
      local sim = core.sim_start { webhook_url = H.root(sink_base) .. "/__sim/webhook-sink" }
      local base = "http://127.0.0.1:" .. sim:info().port .. "/api"
      H.api("POST", "/v1/issuing/cards/" .. H.SINGLE_CARD .. "/recharge", { amount = money("7.00") }, nil, base)
      local deliveries
      for _ = 1, 50 do
        deliveries = H.admin("GET", "webhook-sink", nil, sink_base).deliveries
        if #deliveries > 0 then break end
        core.sleep_ms(50)
      end
      sim:stop()
      sink:stop()
      assert.equals(1, #deliveries)
      local d = deliveries[1]
      local event = uqpay.json.decode(d.body)
      assert.equals("card.recharge.succeeded", event.event_type)
      assert.equals("7.00", tostring(event.data.amount))
      assert.is_true(uqpay.webhook.verify { body = d.body, timestamp = d.timestamp, signature = d.signature,
                                           secret = H.WEBHOOK_SECRET })
    end)
  end)

  describe("admin", function()
    it("serves state, reset and seed", function()
      local st = H.state()
      assert.equals(H.MASTER, st.master_account_id)
      assert.equals(4, #st.cards)
      local status = H.raw("POST", "/__sim/seed", { body = { client_id = "c", api_key = "k",
        master = { account_id = H.MASTER, account_name = "Only" } } })
      assert.equals(200, status)
      assert.equals(0, #H.state().cards)
      H.raw("POST", "/__sim/seed", { body = require "uqpay.sim.seed" })
      assert.equals(4, #H.state().cards)
    end)
  end)

  -- The simulator's own module in this Lua state (the --sim server runs in
  -- a state of its own): what a write keeps, and state files of both shapes.
  describe("what a write keeps", function()
    local sim = require "uqpay.sim"
    local json = require "uqpay.json"
    local share_card = "66666666-6666-4666-8666-666666666662"
    local tok
    local function call(method, path, body, headers)
      headers = headers or {}
      headers["x-auth-token"] = headers["x-auth-token"] or ("Bearer " .. tok)
      return sim.handle { method = method, path = "/api" .. path, body = body or "", headers = headers, query = {},
                          loopback = true }
    end
    local function fresh()
      local creds = sim.init {}
      tok = json.decode(sim.handle { method = "POST", path = "/api/v1/connect/token", body = "{}", query = {},
        loopback = true, headers = { ["x-client-id"] = creds.client_id, ["x-api-key"] = creds.api_key } }.body).auth_token
    end

    it("answers a recharge with its order's own text, the same on a replay and on a lookup", function()
      fresh()
      local key = core.uuid()
      local res = call("POST", "/v1/issuing/cards/" .. share_card .. "/recharge", '{"amount":1.5}', { ["x-idempotency-key"] = key })
      assert.equals(200, res.status)
      local order = json.decode(res.body)
      assert.equals("CARD_RECHARGE", order.order_type)
      assert.equals("1.50", tostring(order.amount))
      local again = call("POST", "/v1/issuing/cards/" .. share_card .. "/recharge", '{"amount":1.5}', { ["x-idempotency-key"] = key })
      assert.equals(res.body, again.body)
      assert.equals("true", again.headers["x-idempotent-replayed"])
      local other = call("POST", "/v1/issuing/cards/" .. share_card .. "/recharge", '{"amount":2}', { ["x-idempotency-key"] = key })
      assert.equals(400, other.status) -- the key's fingerprint is a checksum now: still a mismatch
      assert.matches("idempotency_key_mismatch", other.body)
      assert.equals(res.body, call("GET", "/v1/issuing/cards/" .. order.card_order_id .. "/order").body)
      local applied = json.decode(sim.handle { method = "GET", path = "/__sim/state", body = "", headers = {}, query = {},
        loopback = true }.body, { money = false }).applied
      assert.equals(1, #applied)
      assert.same({ "recharge", key, "1.50", order.card_order_id },
        { applied[1].op, applied[1].idempotency_key, applied[1].amount, applied[1].card_order_id })
    end)

    local function dump()
      return json.decode(sim.handle { method = "GET", path = "/__sim/state", body = "", headers = {}, query = {},
        loopback = true }.body, { money = false })
    end

    it("loads a state file of any earlier shape: keys per account or 'account|key', tokens, orders, applied log", function()
      fresh()
      local key = core.uuid()
      local res = call("POST", "/v1/issuing/cards/" .. share_card .. "/recharge", '{"amount":1.5}', { ["x-idempotency-key"] = key })
      local order = json.decode(res.body)
      local saved, saved_tok = sim.save(), tok
      local now = json.decode(saved, { money = false })
      assert.equals(2, now.version)
      -- the same ledger as version 1 wrote it: keys as "account|key" with
      -- named entries, tokens without "Bearer ", and the applied log and
      -- orders as tables (first) or as named JSON text (second)
      local function v1(fp_as_text, as_text)
        local old = json.decode(saved, { money = false })
        old.version, old.idem, old.tokens = 1, {}, {}
        for acct, keys in pairs(now.idem) do
          for k, e in pairs(keys) do
            local as_sent = core.json_encode(core.json_decode('{"amount":1.5}', true))
            local text = "POST /v1/issuing/cards/" .. share_card .. "/recharge " .. as_sent
            old.idem[acct .. "|" .. k] = { scope = acct .. "|" .. k, state = "done", time = e[2], status = e[3],
              body = e[4], fp = fp_as_text and text or core.checksum(text) }
          end
        end
        for t, v in pairs(now.tokens) do old.tokens[t:sub(8)] = v end
        local records = dump().applied -- the named records version 1 kept
        old.st.applied, old.st.applied_tail = {}, nil
        for i, rec in ipairs(records) do old.st.applied[i] = as_text and json.encode(rec) or rec end
        for id, text in pairs(old.st.orders) do
          if not as_text then old.st.orders[id] = json.decode(text, { money = false }) end
        end
        return json.encode(old)
      end
      for _, text in ipairs { saved, v1(true, false), v1(false, true) } do
        fresh()
        sim.load(text)
        tok = saved_tok -- the file's tokens replace the new ones
        local again = call("POST", "/v1/issuing/cards/" .. share_card .. "/recharge", '{"amount":1.5}',
          { ["x-idempotency-key"] = key })
        assert.equals(200, again.status)
        assert.equals(res.body, again.body)
        assert.equals("true", again.headers["x-idempotent-replayed"])
        local other = call("POST", "/v1/issuing/cards/" .. share_card .. "/recharge", '{"amount":2}',
          { ["x-idempotency-key"] = key })
        assert.matches("idempotency_key_mismatch", other.body)
        local got = call("GET", "/v1/issuing/cards/" .. order.card_order_id .. "/order")
        assert.equals(200, got.status)
        assert.equals("1.50", tostring(json.decode(got.body).amount))
        local st = dump()
        assert.equals(1, #st.applied)
        assert.same({ 1, "recharge", key, "POST", "1.50" }, { st.applied[1].seq, st.applied[1].op,
          st.applied[1].idempotency_key, st.applied[1].method, st.applied[1].amount })
        assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%+00:00$", st.applied[1].time)
        -- and a file saved from the loaded state loads again
        local resaved = sim.save()
        fresh()
        sim.load(resaved)
        assert.equals(1, #dump().applied)
      end
    end)

    it("keeps every applied write in order across the log's blocks, and through a save", function()
      fresh()
      local keys = {}
      for i = 1, 130 do
        keys[i] = core.uuid()
        assert.equals(200, call("POST", "/v1/issuing/cards/" .. share_card .. "/recharge", '{"amount":0.01}',
          { ["x-idempotency-key"] = keys[i] }).status)
      end
      local function check()
        local applied = dump().applied
        assert.equals(130, #applied)
        for i = 1, 130 do
          assert.same({ i, keys[i], "0.01" }, { applied[i].seq, applied[i].idempotency_key, applied[i].amount })
        end
      end
      check()
      local saved, saved_tok = sim.save(), tok
      fresh()
      sim.load(saved)
      tok = saved_tok
      check()
      -- the log goes on from where the file left it
      assert.equals(200, call("POST", "/v1/issuing/cards/" .. share_card .. "/recharge", '{"amount":0.01}',
        { ["x-idempotency-key"] = core.uuid() }).status)
      assert.equals(131, dump().applied[131].seq)
    end)

    it("a SINGLE card's balance rows, kept as their orders' ids, read back whole, with every ending balance", function()
      fresh()
      local single = "66666666-6666-4666-8666-666666666661"
      local expected = {}
      local function balance()
        return json.decode(call("POST", "/v1/issuing/balances", '{"currency":"USD"}',
          { ["x-idempotency-key"] = core.uuid() }).body).available_balance
      end
      local function write(path, body)
        local res = call("POST", path, body, { ["x-idempotency-key"] = core.uuid() })
        assert.equals(200, res.status, res.body)
        expected[#expected + 1] = tostring(balance())
      end
      local usd = balance()
      write("/v1/issuing/cards/" .. single .. "/recharge", '{"amount":10.25}')
      write("/v1/issuing/cards/" .. single .. "/withdraw", '{"amount":3}')
      -- a movement with a row of its own, between rows kept as orders
      write("/v1/issuing/transfers", json.encode { source_account_id = "11111111-1111-4111-8111-111111111111",
        destination_account_id = "22222222-2222-4222-8222-222222222222", currency = "USD", amount = 1 })
      write("/v1/issuing/cards/" .. single .. "/recharge", '{"amount":0.5}')
      assert.equals("100000.00", tostring(usd))
      local function rows() return call("GET", "/v1/issuing/balances/transactions", nil).body end
      local function check(text)
        local list = json.decode(text).data
        for _, t in ipairs(list) do t.amount, t.ending_balance = tostring(t.amount), tostring(t.ending_balance) end
        assert.equals(4, #list)
        assert.same({ "CARD_RECHARGE", "CARD_WITHDRAW", "TRANSFER_OUT", "CARD_RECHARGE" },
          { list[1].transaction_type, list[2].transaction_type, list[3].transaction_type, list[4].transaction_type })
        assert.same({ "10.25", "3.00", "1.00", "0.50" }, { list[1].amount, list[2].amount, list[3].amount, list[4].amount })
        assert.same(expected, { list[1].ending_balance, list[2].ending_balance, list[3].ending_balance,
          list[4].ending_balance })
        assert.equals("Card withdraw " .. single, list[2].description)
        assert.equals("CT00000005", list[4].short_transaction_id) -- the sub-account's TRANSFER_IN was the 4th
        local ids = {}
        for _, t in ipairs(list) do
          assert.matches(require("uqpay.config").UUID, t.transaction_id)
          assert.is_nil(ids[t.transaction_id])
          ids[t.transaction_id] = true
          assert.equals("COMPLETED", t.transaction_status)
          assert.equals("11111111-1111-4111-8111-111111111111", t.account_id)
        end
      end
      local first = rows()
      check(first)
      assert.equals(first, rows()) -- the same ids on every read
      local saved, saved_tok = sim.save(), tok
      fresh()
      sim.load(saved)
      tok = saved_tok
      assert.equals(first, rows())
      -- the ledger report reads the same rows
      local report = json.decode(call("POST", "/v1/issuing/reports", json.encode { report_type = "LEDGER",
        start_time = "2020-01-01T00:00:00+00:00", end_time = "2100-01-01T00:00:00+00:00" }, { ["x-idempotency-key"] = core.uuid() }).body)
      local csv = call("GET", "/v1/issuing/reports/" .. report.report_id, nil).body
      local endings = {}
      for line in csv:gmatch("[^\n]+") do
        local ending = line:match("^[^,]*,[^,]*,[^,]*,[^,]*,([^,]*),")
        if ending and ending ~= "ending_balance" then endings[#endings + 1] = ending end
      end
      assert.same(expected, endings)
    end)

    it("balance rows after the twin's copies of real ones: numbered among their own, a real row missing fields is no error", function()
      local S = require "uqpay.sim.state"
      local acct, single = "11111111-1111-4111-8111-111111111111", "66666666-6666-4666-8666-666666666661"
      local st = { itxns = {}, orders = {}, now = function() return 1790000000 end,
        cards = { [single] = { card_id = single, account_id = acct, card_currency = "USD" } },
        issuing = { [acct] = { USD = { balance_id = "b1", currency = "USD", available_balance = money("100.00") } } } }
      local o = S.new_order(st, st.cards[single], "CARD_RECHARGE", money("5.00"))
      -- as the twin keeps them: the real API's rows first, then the ledger's own
      st.itxns = { { _real = true, account_id = acct, currency = "USD", transaction_type = "FEE" }, o.card_order_id }
      st.real_itxns = 1
      local rows = S.itxn_rows(st)
      assert.equals("100.00", tostring(rows[2].ending_balance))
      assert.equals("CT00000001", rows[2].short_transaction_id)
      local t = S.move(st, acct, "USD", money("-1.00"), "TRANSFER_OUT", "Transfer to someone")
      assert.equals("CT00000002", t.short_transaction_id)
      rows = S.itxn_rows(st) -- read again: the movement changed the balance the walk starts from
      assert.equals(3, #rows)
      assert.same({ "100.00", "99.00" }, { tostring(rows[2].ending_balance), tostring(rows[3].ending_balance) })
    end)

  end)
end)
