local P = require "uqlua.printer"
local json = uqpay.json

describe("the REPL printer", function()
  it("prints scalars as Lua would, strings quoted", function()
    assert.equals("42", P.format(42))
    assert.equals("1.5", P.format(1.5))
    assert.equals('"hi\\n"', P.format("hi\n"))
    assert.equals("true", P.format(true))
    assert.equals("nil", P.format(nil))
  end)

  it("sorts keys and indents", function()
    assert.equals('{\n  a = 1,\n  b = {\n    c = "x",\n    d = true,\n  },\n  z = 3,\n}',
      P.format { z = 3, b = { d = true, c = "x" }, a = 1 })
  end)

  it("keeps arrays of scalars on one line, array parts before other keys", function()
    assert.equals("{ 1, 2, 3 }", P.format { 1, 2, 3 })
    assert.equals('{\n  "a",\n  "b",\n  n = 2,\n}', P.format { "a", "b", n = 2 })
  end)

  it("quotes keys that are not identifiers", function()
    assert.equals('{\n  [10] = 2,\n  ["x-y"] = 1,\n}', P.format { ["x-y"] = 1, [10] = 2 })
  end)

  it("shows money as its decimal and JSON null as null", function()
    local t = json.decode('{"amount": "100.02", "note": null}')
    assert.equals("{\n  amount = 100.02,\n  note = null,\n}", P.format(t))
  end)

  it("stops at the depth limit", function()
    assert.equals("{\n  a = {\n    b = {...},\n  },\n}", P.format({ a = { b = { c = { d = 1 } } } }, { max_depth = 2 }))
  end)

  it("marks cycles", function()
    local t = { name = "loop" }
    t.self = t
    assert.equals('{\n  name = "loop",\n  self = <cycle>,\n}', P.format(t))
  end)

  it("prints a shared (not cyclic) table twice", function()
    local shared = { 1 }
    assert.equals("{\n  a = { 1 },\n  b = { 1 },\n}", P.format { a = shared, b = shared })
  end)

  it("cuts long lists with a count", function()
    local long = {}
    for i = 1, 25 do long[i] = i end
    assert.matches("^{ 1, 2, .-, 20, %.%.%. %(5 more%) }$", P.format(long))
    local rows = {}
    for i = 1, 23 do rows[i] = { id = i } end
    assert.matches("%.%.%. %(3 more%)\n}$", P.format(rows))
  end)

  it("shows UUIDs whole (they are copied back into calls)", function()
    local s = P.format { card_id = "66666666-6666-4666-8666-666666666661" }
    assert.matches('card_id = "66666666-6666-4666-8666-666666666661"', s, 1, true)
  end)

  it("redacts secrets and masks card numbers", function()
    local s = P.format { auth_token = "abc.def", api_key = "k", cvv = "123", card_number = "4096360812345668",
                         nested = { client_id = "c" }, note = "card 4096360812345663 used" }
    assert.is_nil(s:find("abc.def", 1, true))
    assert.is_nil(s:find('"123"', 1, true))
    assert.is_nil(s:find("4096360812345668", 1, true))
    assert.is_nil(s:find("4096360812345663", 1, true))
    assert.matches('card_number = "************5668"', s, 1, true)
    assert.matches('client_id = "[REDACTED]"', s, 1, true)
    assert.matches('note = "card ************5663 used"', s, 1, true)
  end)

  it("shows functions, userdata and error objects by kind", function()
    assert.matches("^<function>$", P.format(print))
    assert.matches("^<uqpay.Http>$", P.format(require("uqpay.core").http_new()))
    local ok, e = pcall(uqpay.money, "x")
    assert.is_false(ok)
    assert.matches("^<uqpay usage error: amount", P.format(e))
    assert.equals("{}", P.format {})
  end)
end)

describe("documentation", function()
  local docs = require "uqpay.docs"

  -- every public function of uqpay, by dotted name
  local function functions(t, prefix, out, seen)
    seen[t] = true
    for k, v in pairs(t) do
      local name = prefix .. k
      if type(v) == "function" and type(k) == "string" then out[name] = true
      elseif type(v) == "table" and not seen[v] and k ~= "errors" and k ~= "json" and k ~= "money" then
        functions(v, name .. ".", out, seen)
      end
    end
    return out
  end

  it("has an entry for every public function, and every entry names one", function()
    local documented = {}
    for _, e in ipairs(docs.entries()) do
      documented[e.name] = true
      local v = uqpay
      for part in e.name:gmatch("[^%.]+") do v = v[part] end
      assert.is_not_nil(v, e.name)
    end
    for name in pairs(functions(uqpay, "", {}, {})) do
      assert.is_true(documented[name] == true, "uqpay." .. name .. " has no documentation entry")
    end
  end)

  it("help(f) prints the signature, endpoint, returns and example", function()
    local out = {}
    local real_print = print
    _G.print = function(...) out[#out + 1] = table.concat({ ... }, "\t") end
    require("uqlua.repl").help(uqpay.recharge)
    require("uqlua.repl").help("banking")
    require("uqlua.repl").help("utilities")
    _G.print = real_print
    local text = table.concat(out, "\n")
    assert.matches("uqpay.recharge(card_id, amount, [opts])", text, 1, true)
    assert.matches("endpoint: POST /v1/issuing/cards/{card_id}/recharge", text, 1, true)
    assert.matches("returns: card order", text, 1, true)
    assert.matches('uqpay.recharge(card_id, "100.00")', text, 1, true)
    assert.matches("uqpay.banking.transfer ", text, 1, true)
    assert.matches("uqpay.webhook.verify", text, 1, true)
  end)

  it("completes dotted paths", function()
    local R = require "uqlua.repl"
    assert.same({ "uqpay.cardholders", "uqpay.cards" }, R.complete("uqpay.card"))
    local c = R.complete("uqpay.cards.")
    assert.is_true(#c >= 10)
    assert.equals("uqpay.cards.activate", c[1])
    assert.same({ "string.format" }, R.complete("string.form"))
    assert.same({}, R.complete("nosuch.x"))
  end)
end)
