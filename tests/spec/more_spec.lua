-- The rest of the reference (#13): every function through the client against
-- the simulator, with its business rules and documented errors.
local H = require "tests.helpers.sim"
local money = uqpay.money

local err_of = H.err_of

local CARD = H.SINGLE_CARD

describe("more of the reference", function()
  before_each(function() H.reset() end)

  describe("cards", function()
    it("secure: the full number, CVV and expiry, redacted wherever uqlua prints", function()
      local s = uqpay.cards.secure(CARD)
      assert.matches("^%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d$", s.card_number)
      assert.is_true(require("uqpay.redact").luhn(s.card_number))
      assert.matches("^%d%d%d$", s.cvv)
      local printed = require("uqlua.printer").format(s)
      assert.is_nil(printed:find(s.card_number, 1, true))
      assert.is_nil(printed:find('"' .. s.cvv .. '"', 1, true))
    end)

    it("secure: the number is the card's (its last four digits), one per card", function()
      local seen = {}
      for _, id in ipairs { H.SINGLE_CARD, H.SHARE_CARD, H.FROZEN_CARD, H.SGD_CARD } do
        local n = uqpay.cards.secure(id).card_number
        assert.equals(uqpay.cards.get(id).card_number:sub(-4), n:sub(-4))
        assert.is_true(require("uqpay.redact").luhn(n))
        assert.is_nil(seen[n])
        seen[n] = true
      end
    end)

    it("a card number, CVV or PIN given to the wrong function is not echoed in the error", function()
      local s = uqpay.cards.secure(CARD)
      for field, value in pairs { card_number = s.card_number, cvv = s.cvv, expire_date = s.expire_date } do
        local e = err_of(uqpay.cards.update, CARD, { [field] = value })
        assert.equals("usage", e.kind)
        assert.is_nil(e.message:find(value, 1, true), e.message)
        assert.is_nil(tostring(e.value):find(value, 1, true))
      end
      local e = err_of(uqpay.cards.manage_pin, { card_id = CARD, type = "SET", pin = "12a4" })
      assert.is_nil(e.message:find("12a4", 1, true), e.message)
      assert.matches("pin", e.message)
    end)

    it("pan_token and secure_iframe_url: a single-use token, an iframe URL with cardId", function()
      local t = uqpay.cards.pan_token(CARD)
      assert.matches("^pan_", t.token)
      assert.equals(60, t.expires_in)
      local u = uqpay.cards.secure_iframe_url(CARD, { lang = "en", styles = { [".card"] = { color = "red" } } })
      assert.matches("/iframe/card%?token=pan_", u.iframe_url)
      assert.matches("cardId=" .. CARD:gsub("%-", "%%-"), u.iframe_url)
      assert.matches("&lang=en&styles=%%7B", u.iframe_url)
      assert.is_nil(require("uqpay.redact").text(u.iframe_url):find("pan_", 1, true))
    end)

    it("assign a physical card, then activate it with its code and a 6-digit PIN; reset_pin", function()
      local a = uqpay.cards.assign { cardholder_id = H.HOLDER1, card_number = "4096360800001234", card_currency = "USD",
                                     card_mode = "SHARE" }
      assert.equals("PENDING", a.card_status)
      assert.equals("usage", err_of(uqpay.cards.activate, { card_id = a.card_id, activation_code = "ACT123", pin = "12345" }).kind)
      local e = err_of(uqpay.cards.activate, { card_id = a.card_id, activation_code = "WRONG", pin = "123456" })
      assert.equals("invalid_activation_code", e.code)
      assert.equals("SUCCESS", uqpay.cards.activate { card_id = a.card_id, activation_code = "ACT123", pin = "123456" }.request_status)
      assert.equals("ACTIVE", uqpay.cards.get(a.card_id).card_status)
      assert.equals("SUCCESS", uqpay.cards.reset_pin { card_id = a.card_id, pin = "654321" }.request_status)
      assert.equals("not_physical", err_of(uqpay.cards.reset_pin, { card_id = CARD, pin = "654321" }).code)
      assert.equals("card_not_found", err_of(uqpay.cards.assign, { cardholder_id = H.HOLDER1,
        card_number = "4096360800001234", card_currency = "USD", card_mode = "SHARE" }).code) -- assigned already
    end)

    it("bulk_create: numbered virtual cards on a product's BIN, listed in a report, handed out with assign", function()
      assert.equals("usage", err_of(uqpay.cards.bulk_create, { card_bin = "4096", numbers = 2 }).kind)
      assert.equals("usage", err_of(uqpay.cards.bulk_create, { card_bin = "40963609", numbers = 0 }).kind)
      assert.equals("usage", err_of(uqpay.cards.bulk_create, { card_bin = "40963609", numbers = 2.5 }).kind)
      assert.equals("invalid_parameter", err_of(uqpay.cards.bulk_create, { card_bin = "40963609", numbers = 1001 }).code)
      assert.equals("product_not_found", err_of(uqpay.cards.bulk_create, { card_bin = "12345678", numbers = 1 }).code)
      local b = uqpay.cards.bulk_create { card_bin = "40963609", numbers = 3 }
      assert.matches("^%d%d/%d%d$", b.expire_date)
      local csv = uqpay.reports.download(b.report_id)
      local numbers = {}
      for n in csv:gmatch("\n(%d+),") do numbers[#numbers + 1] = n end
      assert.equals(3, #numbers)
      for _, n in ipairs(numbers) do
        assert.equals("40963609", n:sub(1, 8))
        assert.is_true(require("uqpay.redact").luhn(n))
      end
      -- another account cannot hand out these cards
      local other = uqpay.cardholders.create({ first_name = "Sub", last_name = "Holder", email = "sub@example.com",
        country_code = "SG", phone_number = "+6580000000" }, { on_behalf_of = H.SUB1 })
      assert.equals("card_not_found", err_of(uqpay.cards.assign, { cardholder_id = other.cardholder_id,
        card_number = numbers[1], card_currency = "USD", card_mode = "SHARE" }, { on_behalf_of = H.SUB1 }).code)
      local a = uqpay.cards.assign { cardholder_id = H.HOLDER1, card_number = numbers[1], card_currency = "USD", card_mode = "SHARE" }
      assert.equals("ACTIVE", a.card_status) -- virtual: no activation
      assert.equals("SUCCESS", uqpay.wait(a).order_status)
      local c = uqpay.cards.get(a.card_id)
      assert.equals("VIRTUAL", c.form_factor)
      assert.is_nil(c.activation_code)
      assert.is_nil(c.secure)
      assert.equals(numbers[1], uqpay.cards.secure(a.card_id).card_number)
      assert.matches("\n" .. numbers[1] .. ",[^\n]*,ASSIGNED\n", uqpay.reports.download(b.report_id))
      -- written 0600; printed and traced with the numbers and expiry redacted by column
      local path = os.tmpname()
      uqpay.reports.download(b.report_id, path)
      local f = io.popen("stat -c %a " .. path)
      assert.equals("600", f:read("l"))
      f:close()
      os.remove(path)
      local red = require("uqpay.redact").body(csv)
      assert.is_nil(red:find(numbers[2], 1, true))
      assert.is_nil(red:find(b.expire_date, 1, true))
      assert.matches("\n%*+" .. numbers[2]:sub(-4) .. ",%[REDACTED%],UNASSIGNED\n", red)
    end)

    it("a physical card's assign order completes when the card is activated", function()
      local a = uqpay.cards.assign { cardholder_id = H.HOLDER1, card_number = "4096360800001234", card_currency = "USD",
                                     card_mode = "SHARE" }
      assert.equals("PROCESSING", uqpay.cards.order(a.card_order_id).order_status)
      assert.is_nil(uqpay.cards.get(a.card_id).activation_code)
      uqpay.cards.activate { card_id = a.card_id, activation_code = "ACT123", pin = "123456" }
      assert.equals("SUCCESS", uqpay.cards.order(a.card_order_id).order_status)
    end)

    it("manage_pin: SET before RESET, as a card order", function()
      assert.equals("pin_not_set", err_of(uqpay.cards.manage_pin, { card_id = CARD, type = "RESET", pin = "1234" }).code)
      local r = uqpay.cards.manage_pin { card_id = CARD, type = "SET", pin = "1234" }
      assert.equals("SUCCESS", uqpay.wait(r).order_status)
      assert.equals("invalid_old_pin", err_of(uqpay.cards.manage_pin,
        { card_id = CARD, type = "RESET", pin = "4321", old_pin = "9999" }).code)
      uqpay.cards.manage_pin { card_id = CARD, type = "RESET", pin = "4321", old_pin = "1234" }
      assert.is_nil(uqpay.cards.get(CARD).pin_hash)
    end)

    it("elevate_limit within the currency's cap; network protection on and off; arts", function()
      assert.equals("SUCCESS", uqpay.cards.elevate_limit(CARD, { limit_amount = "5000.00", duration_in_days = 7 }).order_status)
      assert.equals("limit_too_high", err_of(uqpay.cards.elevate_limit, CARD, { limit_amount = "20000.01" }).code)
      local on = uqpay.cards.enroll_network_protection(CARD, { action_code = "41" })
      assert.is_true(on.enabled)
      assert.equals("41", on.action_code)
      assert.is_false(uqpay.cards.remove_network_protection(CARD).enabled)
      assert.equals("not_enrolled", err_of(uqpay.cards.remove_network_protection, CARD).code)
      assert.equals("card_not_active", err_of(uqpay.cards.elevate_limit, H.FROZEN_CARD, { limit_amount = "10.00" }).code)
      local arts = uqpay.cards.arts()
      assert.equals("art-0001", arts.default_card_art_id)
      assert.equals(1, #uqpay.cards.arts { card_product_id = H.SHARE_PRODUCT }.card_arts)
      assert.equals("art-0002", uqpay.cards.set_default_art { card_art_id = "art-0002" }.default_card_art_id)
      assert.equals("card_art_not_found", err_of(uqpay.cards.set_default_art, { card_art_id = "nope" }).code)
    end)

    it("card_limit is optional, except for the BINs the reference names", function()
      local c = uqpay.cards.create { card_currency = "USD", cardholder_id = H.HOLDER1, card_product_id = H.SHARE_PRODUCT }
      assert.equals("0.00", tostring(uqpay.cards.get(c.card_id).card_limit))
    end)
  end)

  describe("issuing, other", function()
    it("merchant brands: prefix and exact filters", function()
      assert.equals(3, #uqpay.merchant_brands.list())
      assert.equals(2, #uqpay.merchant_brands.list { display_name = "Grab" })
      assert.equals("Shopee", uqpay.merchant_brands.list { merchant_code = "M000200" }[1].display_name)
    end)

    it("release an unsolicited refund onto the card, once", function()
      local id = "99999999-9999-4999-8999-999999999991"
      local before = uqpay.cards.get(CARD).available_balance
      assert.equals("SUCCESS", uqpay.transactions.release_unsolicited_refund { related_transaction_id = id }.request_status)
      assert.equals(before + money("12.34"), uqpay.cards.get(CARD).available_balance)
      assert.equals("already_released", err_of(uqpay.transactions.release_unsolicited_refund,
        { related_transaction_id = id, remark = "again" }).code)
    end)

    it("authorization and reversal take the reference's field names", function()
      local a = uqpay.simulate.authorization { card_id = CARD, transaction_amount = "10.00", transaction_currency = "USD",
        merchant_name = "Test Shop", merchant_category_code = "5812" }
      assert.equals("5812", a.merchant_data.category_code)
      assert.equals("APPROVED", a.transaction_status)
      local r = uqpay.simulate.reversal { transaction_id = a.transaction_id }
      assert.equals("REVERSAL", r.transaction_type)
      local d = uqpay.simulate.authorization { card_id = CARD, transaction_amount = "1.00", transaction_status = "DECLINED" }
      assert.equals("DECLINED", d.transaction_status)
    end)
  end)

  describe("banking", function()
    local bank = { bank_name = "Example Bank", bank_address = "1 Quay", bank_country_code = "SG",
                   account_holder = "Harbour Supplies", account_currency_code = "USD", account_number = "0123456789",
                   swift_code = "EXMPSGSG", clearing_system = "SWIFT" }
    local addr = { street_address = "1 Quay", city = "Singapore", state = "Singapore", postal_code = "049315", country = "SG" }

    it("beneficiaries: create, list, update, check, delete", function()
      local n = #uqpay.banking.beneficiaries.list()
      local b = uqpay.banking.beneficiaries.create { entity_type = "COMPANY", company_name = "Harbour Supplies",
        payment_method = "SWIFT", bank_details = bank, address = addr }
      assert.matches("^B%d+$", b.short_reference_id)
      assert.equals(n + 1, #uqpay.banking.beneficiaries.list())
      uqpay.banking.beneficiaries.update(b.beneficiary_id, { nickname = "Harbour" })
      assert.equals("Harbour", uqpay.banking.beneficiaries.get(b.beneficiary_id).nickname)
      local bad = {}
      for k, v in pairs(bank) do bad[k] = v end
      bad.swift_code = nil
      assert.equals("missing_parameter", err_of(uqpay.banking.beneficiaries.create, { entity_type = "COMPANY",
        company_name = "X", payment_method = "SWIFT", bank_details = bad, address = addr }).code)
      local c = uqpay.banking.beneficiaries.check { entity_type = "COMPANY", account_number = "0123456789",
        payment_method = "LOCAL", currency = "SGD", bank_country_code = "SG" }
      assert.equals("account format valid", c.summary)
      uqpay.banking.beneficiaries.delete(b.beneficiary_id)
      assert.equals("beneficiary_not_found", err_of(uqpay.banking.beneficiaries.get, b.beneficiary_id).code)
    end)

    it("payment methods, conversion dates, rates; conversions listed after a convert", function()
      assert.equals("FAST", uqpay.banking.payment_methods { country = "SG", currency = "SGD" }.data[1].clearing_systems)
      local dates = uqpay.banking.conversion_dates { currency_from = "USD", currency_to = "SGD" }
      local date
      for _, d in ipairs(dates) do if d.valid then date = d.date break end end
      assert.is_string(date)
      local rates = uqpay.banking.rates { currency_pairs = "USDSGD,USDXYZ" }.data
      assert.equals("USDSGD", rates.rates[1].currency_pair)
      assert.equals("USDXYZ", rates.unavailable_currency_pairs[1])
      local q = uqpay.banking.quote { sell_currency = "USD", buy_currency = "SGD", sell_amount = "100.00", conversion_date = date }
      local conv = uqpay.banking.convert { quote_id = q.quote_price.quote_id, sell_currency = "USD", buy_currency = "SGD",
        sell_amount = "100.00", conversion_date = date }
      assert.equals(2, #uqpay.banking.conversions.list()) -- the seeded one and this one
      assert.equals("TRADE_SETTLED", uqpay.banking.conversions.get(conv.conversion_id).conversion_status)
      local e = err_of(uqpay.banking.quote, { sell_currency = "USD", buy_currency = "SGD", sell_amount = "1.00",
        conversion_date = "1999-01-01" })
      assert.equals("invalid_conversion_date", e.code)
    end)

    it("virtual accounts: apply, the application, the issued accounts", function()
      local app = uqpay.banking.virtual_accounts.create { country = "SG", currency = "SGD", payment_method = "LOCAL" }.data
      assert.equals("COMPLETED", app.status)
      assert.equals(app.application_id, uqpay.banking.virtual_account_applications.get(app.application_id).data.application_id)
      assert.equals(app.application_id, uqpay.banking.virtual_account_applications.list()[1].application_id) -- newest first
      assert.equals(2, #uqpay.banking.virtual_accounts.list())
      assert.equals(1, #uqpay.banking.virtual_accounts.list { currency = "SGD" })
      local e = err_of(uqpay.banking.virtual_account_applications.get, "app-nope")
      assert.equals("virtual_account_application_not_found", e.code)
    end)

    it("simulate a deposit: a Banking balance grows, the deposit is listed", function()
      local before = uqpay.banking.balance("USD").available_balance
      local d = uqpay.simulate.deposit { amount = "500.00", currency = "USD", sender_swift_code = "EXMPUS33",
                                         receiver_account_number = "8812345678" }
      assert.equals("COMPLETED", d.deposit_status)
      assert.equals(before + money("500.00"), uqpay.banking.balance("USD").available_balance)
      assert.equals("500.00", tostring(uqpay.banking.deposits.get(d.deposit_id).amount))
      assert.equals("virtual_account_not_found", err_of(uqpay.simulate.deposit, { amount = "1.00", currency = "USD",
        sender_swift_code = "EXMPUS33", receiver_account_number = "nope" }).code)
      assert.equals("currency_mismatch", err_of(uqpay.simulate.deposit, { amount = "1.00", currency = "EUR",
        sender_swift_code = "EXMPUS33", receiver_account_number = "8812345678" }).code)
    end)

    it("a deposit into a sub-account's virtual account credits that sub-account", function()
      local va = uqpay.banking.virtual_accounts.create({ currency = "USD", payment_method = "LOCAL", country = "SG" },
        { on_behalf_of = H.SUB1 })
      local number
      for v in uqpay.banking.virtual_accounts.each({}, { on_behalf_of = H.SUB1 }) do number = v.account_number end
      assert.is_not_nil(number, require("uqpay.json").encode(va))
      local function usd(acct)
        for _, b in ipairs(uqpay.banking.balances({}, { on_behalf_of = acct })) do
          if b.currency == "USD" then return b.available_balance end
        end
        return money("0")
      end
      local master, sub = uqpay.banking.balance("USD").available_balance, usd(H.SUB1)
      uqpay.simulate.deposit { amount = "300.00", currency = "USD", sender_swift_code = "EXMPUS33",
                               receiver_account_number = number }
      assert.equals(master, uqpay.banking.balance("USD").available_balance)
      assert.equals(sub + money("300.00"), usd(H.SUB1))
      -- another sub-account cannot pay into it as its own
      assert.equals("virtual_account_not_found", err_of(uqpay.simulate.deposit, { amount = "1.00", currency = "USD",
        sender_swift_code = "EXMPUS33", receiver_account_number = number }, { on_behalf_of = H.SUB2 }).code)
    end)
  end)

  describe("connect", function()
    local tos = { ip = "203.0.113.1", date = "2026-11-24T00:00:00Z", user_agent = "uqlua", tos_agreement = 1 }
    it("the master account by id; a sub-account created, funded and used on behalf of", function()
      local me = uqpay.account()
      assert.equals(H.MASTER, uqpay.accounts.get(me.account_id).account_id)
      local a = uqpay.accounts.create_sub { entity_type = "COMPANY", nickname = "Ops EU", inherit = 1,
                                            business_type = "ISSUING", tos_acceptance = tos }
      assert.equals("ACTIVE", a.status)
      uqpay.transfer { source_account_id = H.MASTER, destination_account_id = a.account_id, currency = "USD", amount = "50.00" }
      assert.equals("50.00", tostring(uqpay.balance("USD", { on_behalf_of = a.account_id }).available_balance))
      assert.equals("missing_parameter", err_of(uqpay.accounts.create_sub, { entity_type = "INDIVIDUAL",
        nickname = "Jo", tos_acceptance = tos, individual_info = { first_name_english = "Jo" } }).code)
      local l = uqpay.accounts.create { entity_type = "COMPANY", name = "Legacy Ltd", country = "SG",
        contact_details = { email = "ops@example.com", phone = "+6591234567" }, tos_acceptance = tos }
      assert.equals("PROCESSING", l.status)
    end)

    it("additional documents; RFIs listed, read and answered with an uploaded file", function()
      assert.equals(1, uqpay.accounts.additional_docs { country = "SG", business_code = "BANKING" }[1].profile_option)
      local rfis = uqpay.rfis.list { status = "ACTION_REQUIRED" }
      assert.equals(1, #rfis)
      local path = os.tmpname() .. ".pdf"
      local f = io.open(path, "wb")
      f:write("%PDF-1.4 proof")
      f:close()
      local up = uqpay.files.upload(path, { notes = "utility bill" })
      os.remove(path)
      local r = uqpay.rfis.answer { rfi_id = rfis[1].rfi_id,
        answer = { { key = "proof_of_address", type = "ATTACHMENT", attachments = { up.file_id } } } }
      assert.equals("SUBMITTED_PENDING", r.status)
      assert.equals("SUBMITTED_PENDING", uqpay.rfis.get(rfis[1].rfi_id).status)
      assert.equals("rfi_not_open", err_of(uqpay.rfis.answer, { rfi_id = rfis[1].rfi_id,
        answer = { { key = "proof_of_address", type = "ATTACHMENT", attachments = {} } } }).code)
    end)
  end)

  describe("files", function()
    it("upload (multipart, refused types before sending) and download links", function()
      local path = os.tmpname() .. ".png"
      local f = io.open(path, "wb")
      f:write("\137PNG fake")
      f:close()
      local up = uqpay.files.upload(path)
      assert.equals("png", up.file_type)
      assert.equals(9, up.size)
      local links = uqpay.files.download_links { file_ids = { up.file_id, "00000000-0000-4000-8000-000000000000" } }
      assert.equals(up.file_id, links.files[1].file_id)
      assert.equals(1, #links.absent_files)
      local before = H.requests()
      assert.equals("usage", err_of(uqpay.files.upload, "/etc/hostname").kind)
      assert.equals(before, H.requests())
      os.remove(path)
    end)
  end)

  describe("the simulator's routes", function()
    it("an unknown route is 404 not_found, never another route's error", function()
      local status, body = H.api("GET", "/v1/no/such/thing")
      assert.equals(404, status)
      assert.equals("not_found", body.code)
      status = H.api("GET", "/v1/beneficiaries/paymentmethods?country=SG&currency=SGD")
      assert.equals(200, status)
      -- a path some route names literally is never taken for an id, whatever the method
      for _, r in ipairs { { "POST", "/v1/beneficiaries/paymentmethods" }, { "GET", "/v1/beneficiaries/check" },
                           { "GET", "/v1/conversion/quote" }, { "GET", "/v1/issuing/cards/activate" },
                           { "GET", "/v1/accounts/create_accounts" }, { "GET", "/v1/rfis/answer" } } do
        status, body = H.api(r[1], r[2], r[1] == "POST" and {} or nil)
        assert.equals(405, status, r[1] .. " " .. r[2])
        assert.equals("method_not_allowed", body.code, r[1] .. " " .. r[2])
        assert.equals("invalid_request_error", body.type)
      end
    end)

    it("card_limit is required for the listed BINs in their 8-digit form too", function()
      local json = require "uqpay.json"
      local seed = json.decode(json.encode(require "uqpay.sim.seed"))
      -- the simulator keeps a posted seed for its resets: the default one goes back after
      finally(function() H.admin("POST", "seed", json.decode(json.encode(require "uqpay.sim.seed"))) end)
      seed.products[#seed.products + 1] = { product_id = "44444444-4444-4444-8444-444444444449", card_bin = "52773512",
        mode_type = "SHARE", card_scheme = "MASTERCARD", card_currency = { "USD" }, product_status = "ENABLED" }
      H.admin("POST", "seed", seed)
      local e = err_of(uqpay.cards.create, { card_currency = "USD", cardholder_id = H.HOLDER1,
        card_product_id = "44444444-4444-4444-8444-444444444449" })
      assert.equals("invalid_amount", e.code)
      assert.equals("ACTIVE", uqpay.cards.create { card_currency = "USD", cardholder_id = H.HOLDER1,
        card_product_id = "44444444-4444-4444-8444-444444444449", card_limit = "10.00" }.card_status)
      -- a reseeded simulator keeps the rest of the reference's data
      assert.is_true(#uqpay.merchant_brands.list() > 0)
    end)
  end)
end)
