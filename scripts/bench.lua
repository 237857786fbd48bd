-- Benchmarks. Run by `make bench` (scripts/bench.sh), which starts a
-- standalone simulator, exports its address, and puts the figures of
-- several runs side by side. Prints "label<TAB>figure<TAB>unit" lines.
--   uqlua scripts/bench.lua http|local [seconds-per-figure]
local core = require "uqpay.core"
local json = require "uqpay.json"
local cjson = require "cjson"

local PART = arg[1] or "http"
local SECONDS = tonumber(arg[2]) or 2

local function rate(label, f, unit)
  local n, t0 = 0, core.monotonic_ms()
  local deadline = t0 + SECONDS * 1000
  repeat
    for _ = 1, 50 do f() end
    n = n + 50
  until core.monotonic_ms() >= deadline
  local per_s = n * 1000 / (core.monotonic_ms() - t0)
  io.write(string.format("%s\t%.0f\t%s/s\n", label, per_s, unit or "req"))
  return per_s
end

if PART == "http" then
local base = assert(os.getenv("UQPAY_BASE_URL"), "run through scripts/bench.sh")
local http = core.http_new()
local tok = json.decode(http:request { method = "POST", url = base .. "/v1/connect/token",
  headers = { "x-client-id: " .. os.getenv("UQPAY_CLIENT_ID"), "x-api-key: " .. os.getenv("UQPAY_API_KEY") } }.body).auth_token
local auth = { "x-auth-token: Bearer " .. tok }
rate("GET /v1/issuing/products (raw transport)", function()
  assert(http:request { method = "GET", url = base .. "/v1/issuing/products", headers = auth }.status == 200)
end)
local card = "66666666-6666-4666-8666-666666666662"
rate("POST recharge, SHARE card, new key each (raw transport)", function()
  local h = { auth[1], "Content-Type: application/json", "x-idempotency-key: " .. core.uuid() }
  assert(http:request { method = "POST", url = base .. "/v1/issuing/cards/" .. card .. "/recharge", headers = h,
    body = '{"amount":0.01}' }.status == 200)
end)
rate("uqpay.products.list() (full client: validation, retries, decode)", function() uqpay.products.list() end)
rate("uqpay.recharge(card, \"0.01\") (full client, journaled: a sync per write)",
  function() uqpay.recharge(card, "0.01") end)
local cards = {}
for c in uqpay.cards.each { card_status = "ACTIVE" } do cards[#cards + 1] = c.card_id end
local batch = {}
for i = 1, 48 do batch[i] = cards[i % #cards + 1] end
local ops, t0p = 0, core.monotonic_ms()
while core.monotonic_ms() - t0p < SECONDS * 1000 do
  uqpay.parallel(batch, function(c) return uqpay.recharge(c, "0.01") end, { concurrency = 8 })
  ops = ops + #batch
end
io.write(string.format("%s\t%.0f\treq/s\n", "uqpay.recharge in uqpay.parallel, 8 at a time (group commit)",
  ops * 1000 / (core.monotonic_ms() - t0p)))
local curl_n, t0 = 0, core.monotonic_ms()
while core.monotonic_ms() - t0 < SECONDS * 1000 do
  os.execute("curl -s -o /dev/null " .. base .. "/v1/issuing/products -H 'x-auth-token: Bearer " .. tok .. "'")
  curl_n = curl_n + 1
end
io.write(string.format("%s\t%.0f\treq/s\n", "a curl process per request (the shell-loop baseline)",
  curl_n * 1000 / (core.monotonic_ms() - t0)))
return
end

-- local: JSON on a card list page of 100 items, and money
local page = { total_pages = 1, total_items = 100, data = {} }
for i = 1, 100 do
  page.data[i] = { card_id = core.uuid(), card_status = "ACTIVE", mode_type = "SINGLE", card_currency = "USD",
                   available_balance = "1234.56", card_limit = 2100.02, card_number = "************5668",
                   metadata = { team = "ops", n = i } }
end
local text = cjson.encode(page)
rate("uqpay.json.decode, 100-card page (exact money, integers)", function() json.decode(text) end, "doc")
rate("cjson.decode, same page (doubles)", function() cjson.decode(text) end, "doc")
local decoded = json.decode(text)
rate("uqpay.json.encode, same page (sorted keys)", function() json.encode(decoded) end, "doc")
rate("cjson.encode, same page", function() cjson.encode(page) end, "doc")

local a, b = uqpay.money("1234.56"), uqpay.money("0.01")
rate("uqpay.money add", function() local _ = a + b end, "op")
rate("uqpay.money parse \"1234.56\"", function() local _ = uqpay.money("1234.56") end, "op")
