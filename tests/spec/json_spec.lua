local json = uqpay.json

describe("uqpay.json", function()
  it("keeps integers as integers, even past 2^53", function()
    local t = json.decode('{"n": 12345678901234567, "small": 3, "f": 1.5}')
    assert.equals("integer", math.type(t.n))
    assert.equals(12345678901234567, t.n)
    assert.equals("integer", math.type(t.small))
    assert.equals("float", math.type(t.f))
  end)

  it("decodes amount fields as money from numbers or strings", function()
    local t = json.decode('{"amount": 100.02, "available_balance": "5000.25", "card_limit": 10,' ..
      '"fee_amount": 0.25, "ending_balance": 1, "consumed_amount": "51.00", "no_pin_payment_amount": "2000USD"}')
    for _, k in ipairs { "amount", "available_balance", "card_limit", "fee_amount", "ending_balance", "consumed_amount" } do
      assert.is_true(uqpay.money.is(t[k]), k)
    end
    assert.equals("100.02", tostring(t.amount))
    assert.equals("5000.25", tostring(t.available_balance))
    assert.equals("2000USD", t.no_pin_payment_amount)
  end)

  it("gives each decoded amount the currency its object names for it", function()
    local card = json.decode('{"card_id":"c","card_currency":"usd","available_balance":"10.50","card_limit":100}')
    assert.equals("USD", card.available_balance:currency())
    assert.equals("USD", card.card_limit:currency())
    local txn = json.decode('{"billing_amount":"1.00","billing_currency":"SGD","transaction_amount":"2",' ..
      '"transaction_currency":"USD","transaction_fee":"0.10","transaction_fee_currency":"EUR","amount":"3",' ..
      '"currency":"GBP"}')
    assert.equals("SGD", txn.billing_amount:currency())
    assert.equals("USD", txn.transaction_amount:currency())
    assert.equals("EUR", txn.transaction_fee:currency()) -- its own, not its prefix's
    assert.equals("GBP", txn.amount:currency())
    -- two currencies never add up silently
    local page = json.decode('{"data":[{"currency":"USD","available_balance":"5"},{"currency":"SGD",' ..
      '"available_balance":"7"}]}')
    local ok, e = pcall(function() return page.data[1].available_balance + page.data[2].available_balance end)
    assert.is_false(ok)
    assert.matches("cannot combine USD and SGD", tostring(e), 1, true)
    -- no currency, or none that is a code: the amount has none
    for _, text in ipairs { '{"amount":"1"}', '{"amount":"1","currency":"US1"}', '{"amount":"1","currency":12}',
                            '{"amount":"1","currency":"USDX"}', '{"amount":"1","currency":null}' } do
      assert.is_nil(json.decode(text).amount:currency(), text)
    end
    -- a repeated key: the later wins, for the tag as in the table
    local twice = json.decode('{"amount":"1","currency":"USD","currency":"SGD"}')
    assert.equals("SGD", twice.currency)
    assert.equals("SGD", twice.amount:currency())
    -- more amounts and currencies than an object keeps as it is read
    local many = {}
    for i = 1, 12 do many[#many + 1] = string.format('"a%d_amount":"%d","a%d_currency":"JPY"', i, i, i) end
    local big = json.decode("{" .. table.concat(many, ",") .. ',"currency":"GBP","amount":"5"}')
    assert.equals("JPY", big.a12_amount:currency())
    assert.equals("GBP", big.amount:currency())
    -- what is encoded again is the amount alone
    assert.equals('{"amount":1.00,"currency":"GBP"}', json.encode(json.decode('{"amount":"1","currency":"GBP"}')))
  end)

  it("encodes money as a bare number by default and as a string on request", function()
    local body = { amount = uqpay.money("100.02") }
    assert.equals('{"amount":100.02}', json.encode(body))
    assert.equals('{"amount":"100.02"}', json.encode(body, { money = "string" }))
  end)

  it("sorts object keys, so one body has one text", function()
    assert.equals('{"a":1,"b":2,"c":{"x":true,"y":false}}', json.encode { c = { y = false, x = true }, b = 2, a = 1 })
  end)

  it("encodes objects with many keys, sorted", function()
    local t, names = {}, {}
    for i = 1, 150 do t[string.format("k%03d", i)] = i; names[i] = string.format('"k%03d":%d', i, i) end
    assert.equals("{" .. table.concat(names, ",") .. "}", json.encode(t))
  end)

  it("sorts by bytes, a prefix first, and keeps each key's own value at every object size", function()
    assert.equals('{"a":1,"a\\u0000b":4,"ab":2,"b":3}', json.encode { b = 3, ab = 2, a = 1, ["a\0b"] = 4 })
    -- 31 to 34 keys: objects of up to 32 keys keep their values on the stack,
    -- bigger ones look them up; nested objects and arrays in both
    for n = 31, 34 do
      local t, parts = {}, {}
      for i = 1, n do
        local k = string.format("key%02d", i)
        local v = i % 3 == 0 and { inner = i, list = json.array { i, "x" } } or (i % 3 == 1 and i or "s" .. i)
        t[k] = v
        parts[i] = string.format('"%s":%s', k, i % 3 == 0 and string.format('{"inner":%d,"list":[%d,"x"]}', i, i)
          or (i % 3 == 1 and tostring(i) or '"s' .. i .. '"'))
      end
      assert.equals("{" .. table.concat(parts, ",") .. "}", json.encode(t), n)
    end
    local big = {}
    for i = 1, 40 do big["k" .. i] = i end
    big[true] = 1
    assert.has_error(function() json.encode(big) end)
  end)

  it("writes integers and amounts exactly", function()
    assert.equals("[-9223372036854775808,9223372036854775807,0,-7]",
      json.encode(json.array { math.mininteger, math.maxinteger, 0, -7 }))
    local m = uqpay.money
    assert.equals('[0.01,-0.05,0.00,1500,0,1.005,-92233720368547758.07]', json.encode(json.array {
      m("0.01"), m("-0.05"), m("0"), m("1500", "JPY"), m("0", "JPY"), m("1.005", "KWD"), m("-92233720368547758.07") }))
  end)

  it("shares null with cjson and round-trips empty arrays", function()
    assert.equals(require("cjson").null, json.null)
    local t = json.decode('{"x": null, "list": []}')
    assert.equals(json.null, t.x)
    assert.equals('{"list":[],"x":null}', json.encode(t))
    assert.equals("[]", json.encode(json.array {}))
  end)

  -- The decoder holds up to 32 values on the stack before they go into
  -- their table (made at their count): sizes around that, nested, in order.
  it("decodes objects and arrays of any size, nested, a later duplicate key winning", function()
    for _, n in ipairs { 0, 1, 31, 32, 33, 64, 65, 200 } do
      local items, pairs_ = {}, {}
      for i = 1, n do
        items[i] = tostring(i * 7)
        pairs_[i] = string.format('"k%d":{"v":[%d,"s%d"],"amount":"%d.01"}', i, i, i, i)
      end
      local a = json.decode("[" .. table.concat(items, ",") .. "]")
      assert.equals(n, #a)
      for i = 1, n do assert.equals(i * 7, a[i]) end
      assert.equals("[" .. table.concat(items, ",") .. "]", json.encode(a))
      local o = json.decode("{" .. table.concat(pairs_, ",") .. "}")
      local count = 0
      for _ in pairs(o) do count = count + 1 end
      assert.equals(n, count)
      for i = 1, n do
        local v = o["k" .. i]
        assert.same({ i, "s" .. i }, { v.v[1], v.v[2] })
        assert.equals(uqpay.money(i .. ".01"), v.amount)
      end
    end
    local dup = {}
    for i = 1, 40 do dup[i] = '"a":' .. i end
    assert.equals(40, json.decode("{" .. table.concat(dup, ",") .. "}").a)
    assert.equals(2, json.decode('{"a":1,"b":[{"a":5}],"a":2}').a)
    assert.equals('plain "and" escaped', json.decode('"plain \\"and\\" escaped"'))
    assert.has_error(function() json.decode('"control \1 char"') end)
    assert.has_error(function() json.decode('"unterminated') end)
  end)

  it("handles escapes and unicode", function()
    local s = json.decode('"a\\"b\\\\c\\n\\u00e9\\ud83d\\ude00"')
    assert.equals('a"b\\c\n\u{e9}\u{1F600}', s)
    assert.equals('"tab\\there\\u0001"', json.encode("tab\there\1"))
  end)

  it("rejects malformed JSON with a position", function()
    for _, bad in ipairs { "{", '{"a":}', "[1,]", "tru", '"\\x"', "1 2", '{"a" 1}' } do
      local ok, err = pcall(json.decode, bad)
      assert.is_false(ok, bad)
      assert.matches("json:", err)
    end
  end)

  it("refuses what JSON cannot hold", function()
    assert.has_error(function() json.encode { [true] = 1 } end)
    assert.has_error(function() json.encode(0 / 0) end)
    local t = {}
    t.self = t
    assert.has_error(function() json.encode(t) end)
  end)
end)
