-- Benchmarks, one figure per invocation. Run by `make bench`
-- (scripts/bench.sh), which starts the servers, exports the address and
-- credentials, repeats each figure and prints min, median and max.
-- Prints "label<TAB>figure[<TAB>cpu-us-per-request]".
--   uqlua [--no-journal] scripts/bench.lua recharge SECONDS CARD  (journaled: also us per sync, in the loop)
--   uqlua scripts/bench.lua parallel SECONDS N CARDS_FILE
--   uqlua scripts/bench.lua bulk N CARDS_FILE           (seconds for N recharges, 64 at a time, and how many failed)
--   uqlua [--no-journal] scripts/bench.lua rss OPS CARD  (peak RSS in KB after OPS recharges)
--   uqlua scripts/bench.lua seed N                       (a seed with N extra SHARE cards)
--   uqlua scripts/bench.lua local SECONDS                (JSON and money, in process)
--   uqlua scripts/bench.lua simcost N [CARD]             (the simulator's rules in process: us per
--                                                         recharge and per read, bytes kept per write and per read)
local core = require "uqpay.core"
local json = require "uqpay.json"

local PART = arg[1]

local function lines(path)
  local t = {}
  for l in io.lines(path) do t[#t + 1] = l end
  return t
end

local function peak_rss_kb()
  for l in io.lines("/proc/self/status") do
    local kb = l:match("^VmHWM:%s*(%d+)")
    if kb then return tonumber(kb) end
  end
end

-- Runs f (which does `per` requests) until SECONDS have passed; returns
-- requests per second and CPU microseconds (user + system) per request.
local function rate(seconds, f, per)
  local n, t0, c0 = 0, core.monotonic_ms(), os.clock()
  repeat
    f()
    n = n + (per or 1)
  until core.monotonic_ms() - t0 >= seconds * 1000
  return n * 1000 / (core.monotonic_ms() - t0), (os.clock() - c0) * 1e6 / n
end

if PART == "seed" then
  local seed = require "uqpay.sim.seed"
  seed = type(seed) == "function" and seed() or seed
  seed.issuing_balances.master.USD = "100000000.00"
  for i = 1, tonumber(arg[2]) do
    seed.cards[#seed.cards + 1] = { card_id = string.format("99999999-9999-4999-8999-%012d", i),
      cardholder_id = "55555555-5555-4555-8555-555555555551", card_product_id = "44444444-4444-4444-8444-444444444442",
      card_currency = "USD", card_limit = "1000.00", card_status = "ACTIVE", last4 = string.format("%04d", i % 10000) }
  end
  io.write(json.encode(seed), "\n")
elseif PART == "recharge" then
  local seconds, card = tonumber(arg[2]), arg[3]
  uqpay.recharge(card, "0.01") -- the token and the card's currency, outside the measurement
  local j = require("uqpay.run").journal()
  local s0 = j:stats()
  local rps, cpu = rate(seconds, function() uqpay.recharge(card, "0.01") end)
  local s1 = j:stats()
  -- a journaled run also says what its syncs took, inside the loop
  local syncs = s1.syncs - s0.syncs
  io.write(string.format("%.0f\t%.1f%s\n", rps, cpu,
    syncs > 0 and string.format("\t%.1f", (s1.sync_ns - s0.sync_ns) / 1000 / syncs) or ""))
elseif PART == "parallel" then
  local seconds, n, cards = tonumber(arg[2]), tonumber(arg[3]), lines(arg[4])
  local batch = {}
  for i = 1, n * 4 do batch[i] = cards[(i - 1) % n + 1] end -- n distinct cards, 4 writes each
  uqpay.parallel(batch, function(c) return uqpay.recharge(c, "0.01") end, { concurrency = n })
  local rps, cpu = rate(seconds, function()
    uqpay.parallel(batch, function(c) return uqpay.recharge(c, "0.01") end, { concurrency = n })
  end, #batch)
  io.write(string.format("%.0f\t%.1f\n", rps, cpu))
elseif PART == "bulk" then
  local n, cards = tonumber(arg[2]), lines(arg[3])
  local batch = {}
  for i = 1, n do batch[i] = cards[(i - 1) % #cards + 1] end
  local t0 = core.monotonic_ms()
  local _, errs = uqpay.parallel(batch, function(c) return uqpay.recharge(c, "0.01") end, { concurrency = 64 })
  local failed = 0
  for _ in pairs(errs) do failed = failed + 1 end
  io.write(string.format("%.2f\t%d\n", (core.monotonic_ms() - t0) / 1000, failed))
elseif PART == "rss" then
  local ops, card = tonumber(arg[2]), arg[3]
  for _ = 1, ops do uqpay.recharge(card, "0.01") end
  io.write(string.format("%d\n", peak_rss_kb()))
elseif PART == "local" then
  local cjson = require "cjson"
  local seconds = tonumber(arg[2])
  local page = { total_pages = 1, total_items = 100, data = {} }
  for i = 1, 100 do
    page.data[i] = { card_id = core.uuid(), card_status = "ACTIVE", mode_type = "SINGLE", card_currency = "USD",
                     available_balance = "1234.56", card_limit = 2100.02, card_number = "************5668",
                     metadata = { team = "ops", n = i } }
  end
  local text = cjson.encode(page)
  local decoded = json.decode(text)
  local a, b = uqpay.money("1234.56"), uqpay.money("0.01")
  local figures = {
    { "uqpay.json.decode, 100-card page (exact money, integers)", function() json.decode(text) end, "doc/s" },
    { "cjson.decode, same page (doubles)", function() cjson.decode(text) end, "doc/s" },
    { "uqpay.json.encode, same page (sorted keys)", function() json.encode(decoded) end, "doc/s" },
    { "cjson.encode, same page", function() cjson.encode(page) end, "doc/s" },
    { "uqpay.money add", function() local _ = a + b end, "op/s" },
    { "uqpay.money parse \"1234.56\"", function() local _ = uqpay.money("1234.56") end, "op/s" },
  }
  for _, f in ipairs(figures) do
    local fn = f[2]
    local r = rate(seconds, function() for _ = 1, 50 do fn() end end, 50)
    io.write(string.format("%s\t%.0f\t%s\n", f[1], r, f[3]))
  end
elseif PART == "simcost" then
  -- the simulator's pipeline without HTTP: what its Lua rules cost
  local n = tonumber(arg[2])
  local sim = require "uqpay.sim"
  local creds = sim.init {}
  local function call(method, path, body, headers)
    local h = headers or {}
    return sim.handle { method = method, path = "/api" .. path, body = body or "", headers = h, query = {},
                        loopback = true }
  end
  local tok = json.decode(call("POST", "/v1/connect/token", "{}",
    { ["x-client-id"] = creds.client_id, ["x-api-key"] = creds.api_key }).body).auth_token
  -- the seed's SHARE card (a recharge changes the card) or another one: a
  -- SINGLE card's recharge also moves the issuing balance and keeps its row
  local card = arg[3] or "66666666-6666-4666-8666-666666666662"
  local keys = {}
  for i = 1, n do keys[i] = core.uuid() end
  local function kept() collectgarbage("collect"); collectgarbage("collect"); return collectgarbage("count") * 1024 end
  local m0, c0 = kept(), os.clock()
  for i = 1, n do
    call("POST", "/v1/issuing/cards/" .. card .. "/recharge", '{"amount":0.01}',
      { ["x-auth-token"] = "Bearer " .. tok, ["x-idempotency-key"] = keys[i] })
  end
  local c1 = os.clock()
  local m1 = kept()
  local c2 = os.clock()
  for _ = 1, n do call("GET", "/v1/issuing/cards/" .. card, nil, { ["x-auth-token"] = "Bearer " .. tok }) end
  local c3 = os.clock()
  local m2 = kept()
  io.write(string.format("%.1f\t%.1f\t%.0f\t%.0f\n", (c1 - c0) * 1e6 / n, (c3 - c2) * 1e6 / n, (m1 - m0) / n,
    (m2 - m1) / n))
else
  io.stderr:write("usage: see the top of scripts/bench.lua\n")
  os.exit(2)
end
