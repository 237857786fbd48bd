-- A seeded, model-based chaos test of exactly-once (#9). Generated scripts
-- of 100-300 writes (recharges, withdrawals, Issuing transfers both ways,
-- Banking transfers; some stretches inside uqpay.parallel) run against the
-- simulator while the conditions change between runs (fault mixes, 429
-- bursts, revoked tokens, a failing token endpoint) and runs are killed
-- with SIGKILL, SIGTERM or SIGINT at random points; each is re-run until it
-- exits 0. The ledger must then show every logical operation applied
-- exactly once and the final balances the model predicts.
--   uqlua tests/integration/chaos.lua UQLUA [short|long]
--   CHAOS_SEED=N reproduces a run; a failure prints its seed.
local UQ = assert(arg[1], "usage: chaos.lua UQLUA [short|long]")
local MODE = arg[2] or "short"
local core = require "uqpay.core"
local json = require "uqpay.json"
local T = require("tests.helpers.proc").new(UQ)
local H = require "tests.helpers.sim"

local SEED = tonumber(os.getenv("CHAOS_SEED") or "") or (core.monotonic_ms() * 7919 + os.time()) % 2147483647
local SCENARIOS = MODE == "long" and 10 or 1
print("# chaos seed " .. SEED .. " (" .. MODE .. "): CHAOS_SEED=" .. SEED .. " reproduces it")
math.randomseed(SEED)

local sim = T:serve()
local base = sim.base
local runs_dir = T.dir .. "/state/uqlua/runs"
local CARD, MASTER, SUB = H.SINGLE_CARD, H.MASTER, H.SUB1

local function cents(s)
  local neg, a, b = tostring(s):match("^(%-?)(%d+)%.(%d%d)$")
  return (tonumber(a) * 100 + tonumber(b)) * (neg == "-" and -1 or 1)
end

-- The model: a list of operations with unique amounts (op i moves i cents
-- plus a random number of dollars), and the balances they lead to.
local function generate(n)
  local ops, bal = {}, { master = 10000000, sub = 100000, card = 50000, bmaster = 25000000, bsub = 50000 }
  local counts = { recharge = 0, withdraw = 0, issuing_transfer = 0, banking_transfer = 0 }
  for i = 1, n do
    local amount = math.random(0, 3) * 100 + i
    local kind
    repeat
      kind = ({ "recharge", "withdraw", "to_sub", "to_master", "banking" })[math.random(1, 5)]
    until (kind ~= "withdraw" or bal.card - amount > 0) and (kind ~= "to_master" or bal.sub - amount > 0)
    if kind == "recharge" then bal.card, bal.master = bal.card + amount, bal.master - amount
    elseif kind == "withdraw" then bal.card, bal.master = bal.card - amount, bal.master + amount
    elseif kind == "to_sub" then bal.sub, bal.master = bal.sub + amount, bal.master - amount
    elseif kind == "to_master" then bal.sub, bal.master = bal.sub - amount, bal.master + amount
    else bal.bmaster, bal.bsub = bal.bmaster - amount, bal.bsub + amount end
    local op = ({ recharge = "recharge", withdraw = "withdraw", to_sub = "issuing_transfer",
                  to_master = "issuing_transfer", banking = "banking_transfer" })[kind]
    counts[op] = counts[op] + 1
    ops[i] = string.format('{"%s",%d}', kind, amount)
  end
  -- stretches: sequential or parallel
  local segs, i = {}, 1
  while i <= n do
    local len = math.random(10, 60)
    local to = math.min(n, i + len - 1)
    segs[#segs + 1] = string.format('{%d,%d,%s}', i, to, math.random() < 0.4 and "true" or "false")
    i = to + 1
  end
  local script = string.format([[
local CARD, MASTER, SUB = %q, %q, %q
local OPS = {%s}
local SEGS = {%s}
local function money(c) return uqpay.money(string.format("%%d.%%02d", c // 100, c %% 100)) end
local function run(op)
  local kind, a = op[1], money(op[2])
  if kind == "recharge" then return uqpay.recharge(CARD, a)
  elseif kind == "withdraw" then return uqpay.withdraw(CARD, a)
  elseif kind == "to_sub" then
    return uqpay.transfer { source_account_id = MASTER, destination_account_id = SUB, currency = "USD", amount = a }
  elseif kind == "to_master" then
    return uqpay.transfer { source_account_id = SUB, destination_account_id = MASTER, currency = "USD", amount = a }
  else
    return uqpay.banking.transfer { source_account_id = MASTER, target_account_id = SUB, currency = "USD",
                                    amount = a, reason = "chaos" }
  end
end
for _, s in ipairs(SEGS) do
  local from, to, par = s[1], s[2], s[3]
  if par then
    local items = {}
    for i = from, to do items[#items + 1] = OPS[i] end
    local _, errs = uqpay.parallel(items, run, { concurrency = 8 })
    local first = select(2, next(errs))
    if first then error(first, 0) end
  else
    for i = from, to do run(OPS[i]) end
  end
end
print("all done")
]], CARD, MASTER, SUB, table.concat(ops, ","), table.concat(segs, ","))
  return script, bal, counts
end

local MIX = "drop=0.02;fail_after=0.02;fail_before=0.02;burst429=0.01;latency=0.03:ms=60"
-- What meets the run: the first conditions after the first (killed) run
-- put its in-doubt writes against a 429, a revoked token, a failing and a
-- rate-limited token endpoint, before the rest is left to chance.
local CONDITIONS = {
  mix = function() H.faults(MIX, base) end,
  burst429 = function() H.faults("burst429=1:path=/v1/**", base) end,
  revoke = function() H.faults(MIX, base); H.admin("POST", "tokens", {}, base) end,
  token_down = function() H.faults("fail_before=1:path=/v1/connect/token", base); H.admin("POST", "tokens", {}, base) end,
  token429 = function() H.faults("burst429=1:path=/v1/connect/token", base); H.admin("POST", "tokens", {}, base) end,
  clean = function() H.faults("", base) end,
}
local FIRST = { "mix", "burst429", "revoke", "token_down", "token429" }
local RANDOM = { "mix", "mix", "mix", "revoke", "burst429", "token_down", "clean" }
local SIGNALS = { "KILL", "TERM", "INT" }

local function scenario(k)
  H.reset(base)
  os.execute("rm -rf " .. runs_dir)
  local n = math.random(100, MODE == "long" and 300 or 140)
  local text, want, counts = generate(n)
  local script = T:file("chaos" .. k .. ".lua", text)
  local cmd = sim.env .. "UQLUA_MAX_ATTEMPTS=2 " .. UQ .. " " .. script
  local codes, code, err, _ = {}, nil, ""
  local runs = 0
  while code ~= 0 and runs < 40 do
    runs = runs + 1
    local name = FIRST[runs] or (runs > 25 and "clean" or RANDOM[math.random(1, #RANDOM)])
    CONDITIONS[name]()
    if runs <= #FIRST or (runs < 25 and math.random() < 0.5) then
      local after = math.random(50, 900) / 1000
      local sig = SIGNALS[math.random(1, #SIGNALS)]
      code, _, err = T:run(string.format("sh -c '%s & p=$!; sleep %.3f; kill -%s $p 2>/dev/null; wait $p'", cmd, after,
        sig))
    else
      code, _, err = T:run(cmd)
    end
    codes[#codes + 1] = name .. ":" .. tostring(code)
  end
  H.faults("", base)
  local label = string.format("seed %d, scenario %d (%d writes)", SEED, k, n)
  T:check(label .. ": completes (" .. table.concat(codes, " ") .. ")", code == 0, err)
  local bad = {}
  for _, c in ipairs(codes) do if c:match(":2$") then bad[#bad + 1] = c end end
  T:check(label .. ": no run ended in a usage or configuration error", #bad == 0, table.concat(bad, " ") .. "\n" .. err)
  local st = H.state(base)
  local dup = H.duplicate_key(st)
  T:check(label .. ": no idempotency key applied twice", dup == nil, dup)
  local got = {}
  for op in pairs(counts) do got[op] = H.applied(st, op) end
  local same = true
  for op, c in pairs(counts) do same = same and got[op] == c end
  T:check(label .. ": each logical operation applied exactly once", same,
    "want " .. json.encode(counts) .. " got " .. json.encode(got))
  local card
  for _, c in ipairs(st.cards) do if c.card_id == CARD then card = c end end
  local have = { master = cents(st.issuing_balances[MASTER].USD), sub = cents(st.issuing_balances[SUB].USD),
                 card = cents(card.available_balance), bmaster = cents(st.banking_balances[MASTER].USD),
                 bsub = cents(st.banking_balances[SUB].USD) }
  local exact = true
  for k2, v in pairs(want) do exact = exact and have[k2] == v end
  T:check(label .. ": final balances are exactly the model's", exact,
    "want " .. json.encode(want) .. " got " .. json.encode(have))
end

for k = 1, SCENARIOS do scenario(k) end
T:stop(sim)
T:finish()
