-- Exactly once across crashes: a script making 200 recharges and transfers
-- runs against a simulator injecting faults, is killed with SIGKILL at
-- random points, and is re-run until it completes. The simulator's ledger
-- must then show every operation applied exactly once and the balances
-- equal to the expected totals. Once sequentially, once with the
-- recharges in uqpay.parallel (group commit).
--   uqlua tests/integration/crash.lua UQLUA
local UQ = assert(arg[1], "usage: crash.lua UQLUA")
local core = require "uqpay.core"
local json = require "uqpay.json"
local T = require("tests.helpers.proc").new(UQ)
local H = require "tests.helpers.sim"

local N = 100 -- recharges, and as many transfers
local FAULTS = "drop=0.04;fail_after=0.04;fail_before=0.04;latency=0.05:ms=80"
local sim = T:serve("--faults '" .. FAULTS .. "'")
local base = sim.base
local runs_dir = T.dir .. "/state/uqlua/runs"

-- Amounts differ per operation (i cents), so totals catch any double.
local HEADER = string.format('local CARD, MASTER, SUB, N = "%s", "%s", "%s", %d\n', H.SINGLE_CARD, H.MASTER, H.SUB1, N)
local SEQUENTIAL = HEADER .. [[
for i = 1, N do
  uqpay.recharge(CARD, uqpay.money("0.01") * i)
  uqpay.transfer { source_account_id = MASTER, destination_account_id = SUB, currency = "USD",
                   amount = uqpay.money("0.01") * i }
end
print("all done")
]]
local PARALLEL = HEADER .. [[
local items = {}
for i = 1, N do items[i] = i end
local _, errs = uqpay.parallel(items, function(i)
  uqpay.recharge(CARD, uqpay.money("0.01") * i)
  uqpay.transfer { source_account_id = MASTER, destination_account_id = SUB, currency = "USD",
                   amount = uqpay.money("0.01") * i }
end, { concurrency = 8 })
local first = select(2, next(errs))
if first then error(first, 0) end
print("all done")
]]

local expected_each = N * (N + 1) // 2 -- in cents
local function cents(s) local a, b = s:match("^(%d+)%.(%d%d)$"); return tonumber(a) * 100 + tonumber(b) end

local function scenario(name, text)
  H.reset(base)
  H.admin("POST", "faults", { spec = FAULTS }, base)
  os.execute("rm -rf " .. runs_dir)
  local script = T:file(name .. ".lua", text)
  math.randomseed(core.monotonic_ms())
  local kills, runs, code, err, _ = 0, 0, nil, nil
  local cmd = sim.env .. "UQLUA_MAX_ATTEMPTS=3 " .. UQ .. " " .. script
  -- kill at random points a few times...
  for _ = 1, 6 do
    local after = math.random(150, 900) / 1000
    code = T:run(string.format("sh -c '%s & p=$!; sleep %.3f; kill -KILL $p 2>/dev/null; wait $p'", cmd, after))
    runs = runs + 1
    if code == 137 then kills = kills + 1 end
    if code == 0 then break end
  end
  -- ...then run to completion; exit 3 (an outcome the faults left unknown)
  -- is settled by running again, which re-sends with the same keys
  while code ~= 0 and runs < 40 do
    code, _, err = T:run(cmd)
    runs = runs + 1
  end
  T:check(string.format("%s: completes after %d kills and %d runs", name, kills, runs), code == 0, err)
  T:check(name .. ": really killed mid-way at least twice", kills >= 2, "kills: " .. kills)
  local st = H.state(base)
  local dup = H.duplicate_key(st)
  T:check(name .. ": every recharge applied exactly once", H.applied(st, "recharge") == N,
    "recharges: " .. H.applied(st, "recharge"))
  T:check(name .. ": every transfer applied exactly once", H.applied(st, "issuing_transfer") == N,
    "transfers: " .. H.applied(st, "issuing_transfer"))
  T:check(name .. ": no idempotency key applied twice", dup == nil, dup)
  local card
  for _, c in ipairs(st.cards) do if c.card_id == H.SINGLE_CARD then card = c end end
  T:check(name .. ": final balances equal the expected totals",
    cents(st.issuing_balances[H.MASTER].USD) == 10000000 - 2 * expected_each
    and cents(st.issuing_balances[H.SUB1].USD) == 100000 + expected_each
    and cents(card.available_balance) == 50000 + expected_each,
    string.format("master %s sub %s card %s", st.issuing_balances[H.MASTER].USD, st.issuing_balances[H.SUB1].USD,
      card.available_balance))
  local out = select(2, T:run(UQ .. " --runs"))
  T:check(name .. ": the journal shows the run complete", out:find("complete") ~= nil, out)
end

scenario("sequential", SEQUENTIAL)
scenario("parallel", PARALLEL)

-- Group commit: the intents written in one scheduler round of
-- uqpay.parallel share one fdatasync. Eight new cards, so the first round
-- starts eight items with no card lock between them and writes eight
-- intents before its sync, however fast the disk and the simulator are.
-- Syncs: one per card created before the parallel part (8), at most one per
-- round that wrote an intent (1 + 32), the complete record's (1): at most
-- 42 = sent - 6, where a sync per intent makes 49. (The crash scenario's
-- items all recharge one card: they run one at a time, and share a sync
-- only when replies happen to arrive together, which a fast machine does
-- not guarantee.)
H.reset(base)
H.admin("POST", "faults", {}, base)
os.execute("rm -rf " .. runs_dir)
local GROUP = string.format('local HOLDER, PRODUCT = "%s", "%s"\n', H.HOLDER1, H.SINGLE_PRODUCT) .. [[
local cards = {}
for i = 1, 8 do
  cards[i] = uqpay.cards.create({ card_currency = "USD", cardholder_id = HOLDER, card_product_id = PRODUCT }).card_id
end
local items = {}
for i = 1, 40 do items[i] = cards[(i - 1) % 8 + 1] end
local _, errs = uqpay.parallel(items, function(card) uqpay.recharge(card, uqpay.money("0.01")) end, { concurrency = 8 })
local first = select(2, next(errs))
if first then error(first, 0) end
]]
local group_code, _, group_err = T:run(sim.env .. UQ .. " " .. T:file("group.lua", GROUP))
local complete
for _, name in ipairs(require("uqpay.core").listdir(runs_dir) or {}) do
  local records = require("uqpay.journal").parse(runs_dir .. "/" .. name)
  for _, r in ipairs(records or {}) do if r.t == "complete" then complete = r end end
end
T:check("parallel writes share fdatasyncs (group commit)", group_code == 0 and complete ~= nil and complete.sent == 48
  and complete.syncs <= complete.sent - 6, "want syncs <= sent - 6: " .. json.encode(complete or {}) .. " " .. tostring(group_err))

-- Control: the same crash without the journal applies operations twice,
-- so the checks above can fail. Every request is slowed (20 ms) and the kill
-- waits for the fifth recharge, so it lands mid-way on any machine.
H.reset(base)
H.admin("POST", "faults", { spec = "latency=1:ms=20" }, base)
local seq = T.dir .. "/sequential.lua"
local pidf = T.dir .. "/control.pid"
os.execute(string.format("%s%s --no-journal %s >/dev/null 2>&1 & echo $! > %s", T.env, sim.env .. UQ, seq, pidf))
H.wait_until(function() return H.applied(H.state(base), "recharge") >= 5 end)
local killed = T:run("kill -KILL " .. T.slurp(pidf):match("%d+"))
local at_kill = H.applied(H.state(base), "recharge")
H.admin("POST", "faults", {}, base)
T:run(sim.env .. UQ .. " --no-journal " .. seq)
local st = H.state(base)
T:check("control: without the journal, a re-run after a crash applies operations twice",
  killed == 0 and at_kill >= 5 and at_kill < N and H.applied(st, "recharge") > N,
  string.format("killed mid-way: %s (%d recharges then), recharges: %d", killed == 0, at_kill, H.applied(st, "recharge")))

T:stop(sim)
T:finish()
