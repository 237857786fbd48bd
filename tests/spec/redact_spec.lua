-- The one redactor (lua/uqpay/redact.lua) where uqlua prints: --trace,
-- errors made in C, --json lines and the ops scripts' output. Each check
-- is a leak an outside attack found.
local H = require "tests.helpers.sim"
local json = require "uqpay.json"
local R = require "uqpay.redact"
local Transport = require "uqpay.transport"

local client_with = H.client_with

-- What fn writes to io[name] (stderr or stdout), restored however fn ends.
local function captured(name, fn)
  local real, out = io[name], {}
  rawset(io, name, { write = function(self, ...)
    for i = 1, select("#", ...) do out[#out + 1] = tostring(select(i, ...)) end
    return self
  end, flush = function() end })
  local ok, err = pcall(fn)
  rawset(io, name, real)
  assert(ok, err)
  return table.concat(out)
end

describe("redaction where uqlua prints", function()
  before_each(function() H.reset() end)

  it("--trace never shows a token the token endpoint repeats under another name or in its text", function()
    local tok, refresh, other = "tok-A-7f3c9e21b04d5a68", "rt-B-9d0e4c7a2f1b3e56", "at-C-1a2b3c4d5e6f7a8b"
    local reply = json.encode { auth_token = tok, expired_at = os.time() + 3600, id_token = tok,
      refresh_token = refresh, token_type = "Bearer", message = "issued " .. tok .. " (refresh with " .. refresh .. ")",
      data = { accessToken = other, note = "also " .. other } }
    local real = Transport.request
    Transport.request = function(x)
      assert(x.token, "only the token request is expected")
      return { status = 200, body = reply, time_ms = 1.0 }
    end
    local c = client_with { trace = true }
    local err = captured("stderr", function()
      local ok, e = pcall(c.token.get, c.token)
      Transport.request = real
      assert(ok, e)
    end)
    Transport.request = real
    assert.matches("< 200 POST /v1/connect/token", err, 1, true)
    assert.is_nil(err:find(tok, 1, true), err)
    assert.is_nil(err:find(refresh, 1, true), err)
    assert.is_nil(err:find(other, 1, true), err)
  end)

  it("knows a field in camelCase, PascalCase, kebab-case or spaced as its snake_case name", function()
    local red = R.value { securityCode = "123", activationCode = "ACT-99887766", expiryDate = "12/29",
      cardNumber = "4096360812345668", accessToken = "t", apiKey = "k", clientId = "c", ["Card-Number"] = "4111111111111111",
      ["x-api-key"] = "k", ["X-Auth-Token"] = "t", ["refresh-token"] = "r", IdToken = "i", Authorization = "Bearer x",
      ["card number"] = "4111111111111111", APIKey = "k", newPIN = "1234", CVV = 123,
      noPinPaymentAmount = 200, no_pin_payment_amount = 300, card_id = "66666666-6666-4666-8666-666666666661" }
    for _, k in ipairs { "securityCode", "activationCode", "expiryDate", "accessToken", "apiKey", "clientId",
                         "x-api-key", "X-Auth-Token", "refresh-token", "IdToken", "Authorization", "APIKey", "newPIN",
                         "CVV" } do
      assert.are.equal("[REDACTED]", red[k], k)
    end
    assert.are.equal("************5668", red.cardNumber)
    assert.are.equal("************1111", red["Card-Number"])
    assert.are.equal("************1111", red["card number"])
    assert.are.equal(200, red.noPinPaymentAmount) -- no_pin_payment_amount is not a PIN, in any spelling
    assert.are.equal(300, red.no_pin_payment_amount)
    assert.are.equal("66666666-6666-4666-8666-666666666661", red.card_id)
    local body = R.body('{"card":{"securityCode":"987","expiryDate":"2029-12","activationCode":"ACT-55443322"}}')
    assert.is_nil(body:find("987", 1, true), body)
    assert.is_nil(body:find("2029-12", 1, true), body)
    assert.is_nil(body:find("ACT-55443322", 1, true), body)
  end)

  it("--trace redacts query parameters by name", function()
    local c = client_with { trace = true }
    local err = captured("stderr", function()
      c:call { method = "GET", path = "/v1/issuing/cards",
               query = { card_number = "4111 1111 1111 1111", accessToken = "qtok-5e6f7a8b9c0d1e2f", page_size = 10,
                         ["filter[cvv]"] = "918" } }
    end)
    assert.matches("> GET http", err, 1, true)
    assert.matches("page_size=10", err, 1, true)
    assert.matches("card_number=************1111", err, 1, true)
    assert.is_nil(err:find("qtok-5e6f7a8b9c0d1e2f", 1, true), err)
    assert.is_nil(err:find("4111%201111", 1, true), err)
    assert.is_nil(err:find("=918", 1, true), err)
  end)

  it("an error raised in C is redacted where it is made into text, as one raised in Lua", function()
    local e = H.err_of(uqpay.money, "4111 1111 1111 1111", "USD")
    assert.are.equal("usage", e.kind)
    assert.is_nil(tostring(e):find("4111 1111 1111 1111", 1, true), tostring(e))
    local secret = "c-secret-3e4f5a6b7c8d"
    R.secret(secret)
    local c_made = require("uqpay.core").error { kind = "api", message = "the server said " .. secret }
    assert.is_nil(tostring(c_made):find(secret, 1, true), tostring(c_made))
    -- --json: the error's fields as they are in the object, through the same redactor
    local line = captured("stdout", function() require("uqpay.jsonout").error(e) end)
    assert.is_nil(line:find("4111 1111 1111 1111", 1, true), line)
    assert.is_table(json.decode(line).error)
  end)

  it("--json lines stay valid JSON when a number is a card number or a secret", function()
    R.secret("7766554433")
    local line = captured("stdout", function()
      require("uqpay.jsonout").emit { reference = 4111111111111111, account = 7766554433, note = "see 4111111111111111",
        quoted = 'say "7766554433"', list = json.array { 4096360812345663, "ok" }, card_id = "c1" }
    end)
    local ok, v = pcall(json.decode, line)
    assert(ok, "not JSON: " .. line)
    assert.are.equal("************1111", v.reference)
    assert.are.equal("[REDACTED]", v.account)
    assert.are.equal("see ************1111", v.note)
    assert.are.equal('say "[REDACTED]"', v.quoted)
    assert.are.equal("************5663", v.list[1])
    assert.are.equal("c1", v.card_id)
  end)

  it("ops CSV output is redacted by column name and as free text", function()
    local ops = require "uqpay.ops"
    local rows = { { card_id = "66666666-6666-4666-8666-666666666661", cardNumber = "4096360812345668", cvv = "123",
                     note = "old card 4111 1111 1111 1111" } }
    local out = {}
    local fh = { write = function(self, ...) for i = 1, select("#", ...) do out[#out + 1] = select(i, ...) end return self end }
    ops.output(rows, { "card_id", "cardNumber", "cvv", "note" }, "csv", fh)
    local text = table.concat(out)
    assert.matches("66666666-6666-4666-8666-666666666661", text, 1, true)
    assert.matches("************5668", text, 1, true)
    assert.is_nil(text:find("4096360812345668", 1, true), text)
    assert.is_nil(text:find("4111 1111", 1, true), text)
    assert.is_nil(text:find(",123,", 1, true), text)
  end)

  it("a CSV body is redacted by its header when the header is quoted or starts with a BOM", function()
    local quoted = R.csv('"card_id","card_number","expire_date"\nc1,4096360812345669,2029-12\n')
    assert.is_nil(quoted:find("4096360812345669", 1, true), quoted)
    assert.is_nil(quoted:find("2029-12", 1, true), quoted)
    assert.matches("************5669", quoted, 1, true)
    local bom = R.body("\239\187\191card_id,cvv,pin\r\nc1,918,4321\r\n")
    assert.are.equal("\239\187\191", bom:sub(1, 3))
    assert.is_nil(bom:find("918", 1, true), bom)
    assert.is_nil(bom:find("4321", 1, true), bom)
    local plain = "card_id,status\nc1,ACTIVE\n"
    assert.are.equal(plain, R.csv(plain))
  end)

  it("the journal's copy of a body: structure on the hot path, and text where a secret or card number may be", function()
    R.secret("tok-echoed-0123456789")
    local answer = '{"card_id":"66666666-6666-4666-8666-666666666661","session":"tok-echoed-0123456789"}'
    local kept = R.kept(json.decode(answer), answer)
    assert.is_nil(kept:find("tok-echoed-0123456789", 1, true))
    assert.truthy(kept:find("66666666-6666-4666-8666-666666666661", 1, true)) -- ids stay
    local body = '{"update_reason":"lost 3782 822463 10005 at the airport"}'
    kept = R.kept(json.decode(body), body)
    assert.is_nil(kept:find("822463", 1, true))
    local plain = '{"amount":100.00,"card_id":"66666666-6666-4666-8666-666666666661"}'
    assert.equals(plain, R.kept(json.decode(plain), plain)) -- nothing to redact: the text as it was
  end)
end)
