-- Exactly once across crashes: a script making 200 recharges and transfers
-- runs against a simulator injecting faults, is killed with SIGKILL at
-- random points, and is re-run until it completes. The simulator's ledger
-- must then show every operation applied exactly once and the balances
-- equal to the expected totals.
--   uqlua tests/integration/crash.lua UQLUA
local UQ = assert(arg[1], "usage: crash.lua UQLUA")
local core = require "uqpay.core"
local T = require("tests.helpers.proc").new(UQ)
local H = require "tests.helpers.sim"

local N = 100 -- recharges, and as many transfers
local sim = T:serve("--faults 'drop=0.04;fail_after=0.04;fail_before=0.04;latency=0.05:ms=80'")
local base = sim.base

-- Amounts differ per operation (i cents), so totals catch any double.
local script = T:file("bulk.lua", string.format([[
local CARD, MASTER, SUB = "%s", "%s", "%s"
for i = 1, %d do
  uqpay.recharge(CARD, uqpay.money("0.01") * i)
  uqpay.transfer { source_account_id = MASTER, destination_account_id = SUB, currency = "USD",
                   amount = string.format("%%d.%%02d", i // 100, i %% 100) }
end
print("all done")
]], H.SINGLE_CARD, H.MASTER, H.SUB1, N))

local expected_each = 0
for i = 1, N do expected_each = expected_each + i end -- in cents

math.randomseed(core.monotonic_ms())
local kills, runs, code = 0, 0, nil
local cmd = sim.env .. "UQLUA_MAX_ATTEMPTS=3 " .. UQ .. " " .. script
-- Kill at random points a few times...
for _ = 1, 6 do
  local after = math.random(150, 900) / 1000
  code = T:run(string.format("sh -c '%s & p=$!; sleep %.3f; kill -KILL $p 2>/dev/null; wait $p'", cmd, after))
  runs = runs + 1
  if code == 137 then kills = kills + 1 end
  if code == 0 then break end
end
-- ...then run to completion; exit 3 (an outcome left unknown by the faults)
-- is resolved by running again, which re-sends with the same keys.
local err
while code ~= 0 and runs < 40 do
  code, _, err = T:run(cmd)
  runs = runs + 1
end
T:check(string.format("the script completes after %d kills and %d runs", kills, runs), code == 0, err)
T:check("it was really killed mid-way at least twice", kills >= 2, "kills: " .. kills)

local st = H.state(base)
local keys, dup = {}, nil
for _, a in ipairs(st.applied) do
  if keys[a.idempotency_key] then dup = a.idempotency_key end
  keys[a.idempotency_key] = true
end
T:check("every recharge applied exactly once", H.applied(st, "recharge") == N, "recharges: " .. H.applied(st, "recharge"))
T:check("every transfer applied exactly once", H.applied(st, "issuing_transfer") == N,
  "transfers: " .. H.applied(st, "issuing_transfer"))
T:check("no idempotency key was applied twice", dup == nil, dup)
local function cents(s) local a, b = s:match("^(%d+)%.(%d%d)$"); return tonumber(a) * 100 + tonumber(b) end
local card
for _, c in ipairs(st.cards) do if c.card_id == H.SINGLE_CARD then card = c end end
T:check("final balances equal the expected totals",
  cents(st.issuing_balances[H.MASTER].USD) == 10000000 - 2 * expected_each
  and cents(st.issuing_balances[H.SUB1].USD) == 100000 + expected_each
  and cents(card.available_balance) == 50000 + expected_each,
  string.format("master %s sub %s card %s", st.issuing_balances[H.MASTER].USD, st.issuing_balances[H.SUB1].USD,
    card.available_balance))
local out = select(2, T:run(UQ .. " --runs"))
T:check("the journal shows the run complete", out:find("complete") ~= nil, out)

-- Control: the same crash without the journal applies operations twice,
-- so the checks above can fail.
H.reset(base)
H.admin("POST", "faults", {}, base)
T:run(string.format("sh -c '%s --no-journal %s & p=$!; sleep 0.4; kill -KILL $p; wait $p'",
  sim.env .. UQ, script))
T:run(sim.env .. UQ .. " --no-journal " .. script)
st = H.state(base)
T:check("control: without the journal, a re-run after a crash applies operations twice",
  H.applied(st, "recharge") > N, "recharges: " .. H.applied(st, "recharge"))

T:stop(sim)
T:finish()
