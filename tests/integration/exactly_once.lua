-- Exactly once, without exceptions (#9): each way the promise broke, as a
-- test judged by the simulator's ledger. A standalone simulator keeps its
-- state across uqlua runs.
--   uqlua tests/integration/exactly_once.lua UQLUA
local UQ = assert(arg[1], "usage: exactly_once.lua UQLUA")
local core = require "uqpay.core"
local json = require "uqpay.json"
local T = require("tests.helpers.proc").new(UQ)
local H = require "tests.helpers.sim"

local sim = T:serve()
local base = sim.base
local runs = T.dir .. "/state/uqlua/runs"
local CARD = H.SINGLE_CARD

local function reset()
  H.reset(base)
  os.execute("rm -rf " .. runs .. " " .. T.dir .. "/cache")
end
local function applied(op) return H.applied(H.state(base), op) end
local function faults(spec) H.admin("POST", "faults", { spec = spec }, base) end
local function uq(extra) return sim.env .. UQ .. " " .. (extra or "") end

local function journal_text()
  local out = {}
  for _, name in ipairs(core.listdir(runs) or {}) do out[#out + 1] = T.slurp(runs .. "/" .. name) end
  return table.concat(out)
end

-- ---- 1: an in-doubt write stays in doubt, whatever meets its resend ----
reset()
local one = T:file("one.lua", 'print(uqpay.recharge("' .. CARD .. '", "3.00").order_status)\n')
faults("fail_after:next=1:path=/v1/issuing/cards/*/recharge")
local code, _, err = T:run("UQLUA_MAX_ATTEMPTS=1 " .. uq(one))
T:check("1: applied, reply lost: in doubt, exit 3", code == 3 and applied("recharge") == 1, err)
faults("burst429:path=/v1/issuing/cards/*/recharge")
code, _, err = T:run("UQLUA_MAX_ATTEMPTS=1 " .. uq(one))
T:check("1: its resend meets a 429: still in doubt, exit 3", code == 3 and err:find("reconcile_required") ~= nil, err)
faults("")
H.admin("POST", "tokens", {}, base) -- the cached token is revoked...
faults("fail_before:path=/v1/connect/token") -- ...and no new one can be had
code, _, err = T:run("UQLUA_MAX_ATTEMPTS=1 " .. uq(one))
T:check("1: its resend meets a 401 (revoked token) and a failing token endpoint: still in doubt",
  code == 3 and err:find("reconcile_required") ~= nil, err)
faults("burst429:path=/v1/connect/token")
code, _, err = T:run("UQLUA_MAX_ATTEMPTS=1 " .. uq(one))
T:check("1: ...and a token endpoint answering 429: still in doubt", code == 3, err)
faults("")
T:check("1: nothing of it was journaled as rejected", not journal_text():find('"state":"rejected"', 1, true))
code, _, err = T:run(uq(one))
T:check("1: a clean run settles it with the same key: applied once", code == 0 and applied("recharge") == 1, err)

-- ---- 2: two copies of a live run ----
reset()
local three = T:file("three.lua", 'for i = 1, 3 do uqpay.recharge("' .. CARD .. '", "1.00") end\nprint("done")\n')
faults("latency=1:ms=700:path=/v1/issuing/cards/*/recharge")
local pidf = T.dir .. "/a.pid"
os.execute(T.env .. uq(three) .. " >" .. T.dir .. "/a.out 2>" .. T.dir .. "/a.err & echo $! > " .. pidf)
-- until its first write is in the simulator: its journal is locked by then
H.wait_until(function() return H.state(base).in_flight == 1 end)
code, _, err = T:run(uq(three))
local pid = T.slurp(pidf):match("%d+")
T:check("2: a second copy of a live run exits 2 naming the run and its pid", code == 2
  and err:find("run %x+ is in progress %(pid " .. pid .. "%)") ~= nil, err)
for _ = 1, 100 do
  if not os.execute("kill -0 " .. pid .. " 2>/dev/null") then break end
  core.sleep_ms(100)
end
faults("")
T:check("2: the first copy alone applied its writes: 3 recharges", applied("recharge") == 3
  and T.slurp(T.dir .. "/a.out") == "done\n", T.slurp(T.dir .. "/a.err"))

-- ---- 3: --journal PATH belongs to one identity ----
reset()
local shared = T.dir .. "/shared.journal"
local fail = T:file("fail.lua", 'uqpay.recharge("' .. CARD .. '", "1.00")\nerror("stop here")\n')
T:run(uq("--journal " .. shared .. " " .. fail))
code, _, err = T:run("UQPAY_ENV=production " .. uq("--yes --journal " .. shared .. " " .. fail))
T:check("3: another identity (production on a sandbox run's journal) exits 2 naming both", code == 2
  and err:find("on sandbox", 1, true) ~= nil and err:find("on production", 1, true) ~= nil
  and applied("recharge") == 1, err)
local other = T:file("other.lua", 'uqpay.recharge("' .. CARD .. '", "1.00")\n')
code, _, err = T:run(uq("--journal " .. shared .. " " .. other))
T:check("3: another script on that journal exits 2 naming both scripts", code == 2
  and err:find("fail.lua", 1, true) ~= nil and err:find("other.lua", 1, true) ~= nil, err)
code, _, err = T:run(uq("--fresh --journal " .. shared .. " " .. other))
T:check("3: --fresh sets that run aside and starts this one", code == 0 and applied("recharge") == 2, err)

-- ---- 4: os.exit ----
reset()
local exit0 = T:file("exit0.lua", 'uqpay.recharge("' .. CARD .. '", "1.00")\nos.exit(0)\n')
T:run(uq(exit0))
code, _, err = T:run(uq(exit0))
T:check("4: os.exit(0) completes the run: next month's run sends again", code == 0 and applied("recharge") == 2
  and not err:find("resuming"), err)
local exit_true = T:file("exit_true.lua", 'uqpay.recharge("' .. CARD .. '", "1.00")\nos.exit(true)\n')
T:run(uq(exit_true))
code = T:run(uq(exit_true))
T:check("4: so does os.exit(true)", code == 0 and applied("recharge") == 4)
local exit1 = T:file("exit1.lua", 'uqpay.recharge("' .. CARD .. '", "1.00")\nos.exit(1)\n')
code, _, err = T:run(uq(exit1))
T:check("4: os.exit(1) leaves the run resumable and says so in one line", code == 1
  and select(2, err:gsub("run the same command again", "")) == 1, err)
code, _, err = T:run(uq(exit1))
T:check("4: ...and the next run resumes it", code == 1 and err:find("resuming") ~= nil and applied("recharge") == 5, err)

-- ---- 5: stdin is never journaled ----
reset()
local a = T:file("a.lua", 'uqpay.recharge("' .. CARD .. '", "1.00")\nerror("stop")\n')
local b = T:file("b.lua", 'uqpay.recharge("' .. CARD .. '", "1.00")\nprint("b done")\n')
T:run(uq("- < " .. a))
local out
code, out, err = T:run(uq("- < " .. b))
T:check("5: a later, different stdin script's write is sent", code == 0 and out == "b done\n"
  and applied("recharge") == 2, err)
T:check("5: no journal was written for stdin", #(core.listdir(runs) or {}) == 0)
code = T:run(uq("-e 'uqpay.recharge(\"" .. CARD .. "\", \"1.00\")'"))
T:check("5: nor for -e", code == 0 and #(core.listdir(runs) or {}) == 0 and applied("recharge") == 3)
T:expect("5: --journal with stdin is refused", uq("--journal " .. T.dir .. "/x.journal - < " .. b), 2, nil,
  "needs a script file")

-- ---- 6: an edited script: applied writes not repeated are named ----
reset()
local edit = T.dir .. "/edit.lua"
T:file("edit.lua", 'uqpay.recharge("' .. CARD .. '", "1.00")\nuqpay.recharge("' .. CARD .. '", "2.00")\nerror("stop")\n')
T:run(uq(edit))
T:file("edit.lua", 'uqpay.recharge("' .. CARD .. '", "2.00")\nuqpay.recharge("' .. CARD .. '", "4.00")\n')
code, _, err = T:run(uq(edit))
T:check("6: the resumed run names the write it did not repeat: method, path, amount, key",
  code == 0 and err:find("POST /v1/issuing/cards/" .. CARD:gsub("%-", "%%-") .. "/recharge, amount 1%.00, key %x+%-[%x%-]+: " ..
  "applied earlier, not repeated") ~= nil and applied("recharge") == 3, err)
local id = err:match("run (%x+) complete")
code, out = T:run(UQ .. " --run " .. tostring(id))
T:check("6: --run ID shows it too", code == 0 and out:find("applied earlier, not repeated", 1, true) ~= nil, out)

-- ---- 7: a read that is a POST is a read ----
reset()
faults("fail_before:path=/v1/issuing/balances:method=POST")
local bal = T:file("bal.lua", 'print(uqpay.balance("USD").available_balance)\n')
code, _, err = T:run("UQLUA_MAX_ATTEMPTS=2 " .. uq(bal))
faults("")
T:check("7: Retrieve Issuing Balance failing with 5xx is an api error (exit 1), not reconcile_required",
  code == 1 and err:find("uqpay api error") ~= nil and not err:find("reconcile"), err)
T:check("7: ...and it left no operation in the journal", not journal_text():find('"t":"intent"', 1, true))

-- ---- 8: a write refused by the production guard leaves no intent ----
reset()
local prod = "UQPAY_ENV=production " .. uq()
code, _, err = T:run(prod .. one)
T:check("8: without a terminal and --yes, a production write is refused (exit 2)", code == 2
  and err:find("refusing a production write") ~= nil and applied("recharge") == 0, err)
T:check("8: ...and nothing is journaled as in doubt", not journal_text():find('"t":"intent"', 1, true))
code, _, err = T:run(prod .. "--yes " .. one)
T:check("8: the next run has nothing in doubt and sends it once", code == 0 and applied("recharge") == 1
  and not err:find("[1-9] in doubt"), err)

-- ---- 9: a revoked token is recovered, and dropped from the shared cache ----
reset()
local list = T:file("list.lua", 'print(#uqpay.products.list())\n')
T:run(uq(list))
local cache = T.dir .. "/cache/uqlua"
local function cached_token()
  for _, name in ipairs(core.listdir(cache) or {}) do
    if name:match("%.json$") then return json.decode(T.slurp(cache .. "/" .. name)).auth_token end
  end
end
local old = cached_token()
H.admin("POST", "tokens", {}, base)
local issued = H.state(base).tokens_issued
code, out, err = T:run(uq(list))
T:check("9: a 401 'invalid token' refreshes once and the call succeeds", code == 0 and out:match("^%d+\n$")
  and H.state(base).tokens_issued == issued + 1, err)
T:check("9: the shared cache no longer holds the dead token", old ~= nil and cached_token() ~= old)
H.admin("POST", "tokens", {}, base)
faults("fail_before:next=1:path=/v1/issuing/cards/*/recharge")
code, _, err = T:run(uq(one))
T:check("9: ...also for a write, with its key kept across the refresh", code == 0 and applied("recharge") == 1, err)

-- ---- a write left unsettled keeps its run open, whatever the script did ----
reset()
local caught = T:file("caught.lua", 'print(pcall(uqpay.recharge, "' .. CARD .. '", "5.00"))\nprint("went on")\n')
faults("fail_after:next=1:path=/v1/issuing/cards/*/recharge")
code, _, err = T:run("UQLUA_MAX_ATTEMPTS=1 " .. uq(caught))
T:check("an in-doubt write whose error the script caught: the run does not complete (exit 3)", code == 3
  and err:find("not settled") ~= nil, err)
code, _, err = T:run(uq(caught))
T:check("...and the next run settles it with its key: applied once", code == 0 and applied("recharge") == 1, err)

reset()
local exits = T:file("exits.lua", [[
uqpay.parallel({ 1, 2, 3 }, function(i)
  if i == 3 then require("uqpay.parallel").sleep(150); os.exit(0) end
  uqpay.recharge("]] .. CARD .. [[", i .. ".00")
end)
]])
faults("latency=1:ms=600:path=/v1/issuing/cards/*/recharge")
code, _, err = T:run(uq(exits))
faults("")
core.sleep_ms(700)
T:check("os.exit(0) while writes are in flight does not complete the run (exit 3)", code == 3, err)
code, _, err = T:run(uq(exits))
T:check("...the next run settles them with their keys: each applied once", code == 0 and applied("recharge") == 2, err)

reset()
T:file("edit2.lua", 'uqpay.recharge("' .. CARD .. '", "5.00")\n')
faults("fail_after:next=1:path=/v1/issuing/cards/*/recharge")
T:run("UQLUA_MAX_ATTEMPTS=1 " .. uq(T.dir .. "/edit2.lua"))
T:file("edit2.lua", 'uqpay.recharge("' .. CARD .. '", "6.00")\n')
code, _, err = T:run(uq(T.dir .. "/edit2.lua"))
T:check("an edit that leaves an in-doubt write unreached keeps the run open (exit 3), naming it", code == 3
  and err:find("amount 5%.00") ~= nil, err)
T:file("edit2.lua", 'uqpay.recharge("' .. CARD .. '", "5.00")\n')
code, _, err = T:run(uq(T.dir .. "/edit2.lua"))
local st = H.state(base)
local fives = 0
for _, ap in ipairs(st.applied) do if ap.op == "recharge" and tostring(ap.amount) == "5.00" then fives = fives + 1 end end
T:check("...and reverting it settles the write with its key: 5.00 applied once", code == 0 and fives == 1,
  err .. json.encode(st.applied))

reset()
local retry = T:file("retry.lua", [[
local FROZEN = "66666666-6666-4666-8666-666666666663"
pcall(uqpay.recharge, FROZEN, "7.00")
uqpay.cards.unfreeze(FROZEN)
uqpay.recharge(FROZEN, "7.00")
if os.getenv("STOP") then error("stop") end
]])
T:run("STOP=1 " .. uq(retry))
code, _, err = T:run(uq(retry))
T:check("a rejection the script itself retried stays a rejection on resume: 7.00 applied once", code == 0
  and applied("recharge") == 1, err)

reset()
T:file("query.lua", 'uqpay.request("POST", "/v1/issuing/cards/' .. CARD .. '/recharge", { query = { note = "a" }, ' ..
  'body = { amount = "1.00" } })\nerror("stop")\n')
T:run(uq(T.dir .. "/query.lua"))
T:file("query.lua", 'uqpay.request("POST", "/v1/issuing/cards/' .. CARD .. '/recharge", { query = { note = "b" }, ' ..
  'body = { amount = "1.00" } })\n')
code, _, err = T:run(uq(T.dir .. "/query.lua"))
T:check("the query string is part of a write: another query is another write", code == 0
  and applied("recharge") == 2, err)

T:stop(sim)
T:finish()
