-- The bundled ops scripts end to end against a standalone simulator, judged
-- by its ledger: success, bad input (nothing sent), dry runs, --json, and
-- resuming after SIGKILL.
--   uqlua tests/integration/ops.lua UQLUA
local UQ = assert(arg[1], "usage: ops.lua UQLUA")
local json = require "uqpay.json"
local T = require("tests.helpers.proc").new(UQ)
local H = require "tests.helpers.sim"

local sim = T:serve()
local base = sim.base
local function uq(rest) return sim.env .. "UQLUA_NO_PROGRESS=1 " .. UQ .. " " .. rest end
local function reset()
  H.reset(base)
  os.execute("rm -rf " .. T.dir .. "/state")
end
local function state() return H.state(base) end
local function applied(op) return H.applied(state(), op) end
local function card(st, id)
  for _, c in ipairs(st.cards) do if c.card_id == id then return c end end
end

-- ---- uqlua ops ----
local code, out = T:run(UQ .. " ops")
local names = {}
for name in out:gmatch("  ([%w%-]+)  ") do names[#names + 1] = name end
T:check("uqlua ops lists the seven scripts", code == 0 and #names == 7 and out:find("reconcile") ~= nil, out)
for _, name in ipairs { "balance-report", "fund-subaccounts", "bulk-recharge", "sweep-cards", "freeze-cards",
                        "card-report", "reconcile" } do
  T:expect(name .. " --help exits 0", UQ .. " " .. name .. " --help", 0, "Usage: uqlua " .. name:gsub("%-", "%%-"))
end

-- ---- balance-report ----
reset()
local err, _
code, out, err = T:run(uq("balance-report --sub-accounts --format csv"))
T:check("balance-report: every account by name, with totals per currency", code == 0
  and out:find("issuing,Ops Team SG,22222222%-2222%-4222%-8222%-222222222222,USD,1000%.00") ~= nil
  and out:find("issuing,TOTAL,,USD,101250%.00") ~= nil, out .. err)

-- ---- fund-subaccounts ----
reset()
T:expect("fund-subaccounts: a master balance that cannot cover the total sends nothing (exit 2)",
  uq("fund-subaccounts --target 99999999 --currency USD"), 2, nil, "cannot cover")
T:check("...nothing was applied", applied() == 0)
local targets = T:file("targets.csv", "account_id,currency,target\n" ..
  H.SUB1 .. ",USD,1500.00\n" .. H.SUB2 .. ",USD,100.00\nnot-a-uuid,USD,1\n")
code, _, err = T:run(uq("fund-subaccounts --targets " .. targets))
T:check("fund-subaccounts: a bad line lists its line number, nothing is sent (exit 2)", code == 2
  and err:find("targets.csv:4: account_id") ~= nil and applied() == 0, err)
targets = T:file("targets.csv", "account_id,currency,target\n" .. H.SUB1 .. ",USD,1500.00\n" .. H.SUB2 .. ",USD,100.00\n")
code, _, err = T:run(uq("fund-subaccounts --target 1500 --currency USD --account " .. H.MASTER .. " --account " .. H.SUB1))
T:check("fund-subaccounts: the master account as a target is named as such, nothing is sent (exit 2)", code == 2
  and err:find(H.MASTER:gsub("%-", "%%-") .. " is the master account") ~= nil and applied() == 0, err)
local with_master = T:file("with-master.csv", "account_id,currency,target\n" .. H.SUB1 .. ",USD,1500.00\n" .. H.MASTER ..
  ",USD,1.00\n")
code, _, err = T:run(uq("fund-subaccounts --targets " .. with_master))
T:check("...and in a --targets file", code == 2 and err:find("is the master account") ~= nil
  and err:find("cannot read") == nil and applied() == 0, err)
code, _, err = T:run(uq("--dry-run fund-subaccounts --targets " .. targets))
T:check("fund-subaccounts --dry-run sends nothing", code == 0 and applied() == 0 and err:find("dry%-run 1") ~= nil, err)
code, _, err = T:run(uq("fund-subaccounts --targets " .. targets))
local st = state()
T:check("fund-subaccounts: tops up to the target, leaves an account above it alone", code == 0
  and H.applied(st, "issuing_transfer") == 1 and st.issuing_balances[H.SUB1].USD == "1500.00"
  and st.issuing_balances[H.SUB2].USD == "250.00" and err:find("left alone " .. H.SUB2:gsub("%-", "%%-")) ~= nil, err)
code = T:run(uq("fund-subaccounts --target 1500 --currency USD"))
st = state()
T:check("fund-subaccounts --target: every sub-account up to it", code == 0
  and st.issuing_balances[H.SUB2].USD == "1500.00" and H.applied(st, "issuing_transfer") == 2)

-- ---- bulk-recharge ----
reset()
local bad = T:file("bad.csv", "card_id,amount,colour\n" .. H.SINGLE_CARD .. ",1.00,red\n")
T:expect("bulk-recharge: an unknown column is refused (exit 2)", uq("bulk-recharge " .. bad), 2, nil, 'unknown column "colour"')
bad = T:file("bad.csv", "\239\187\191card_id,amount\n" .. H.SINGLE_CARD .. ",1.00\n\n\"" .. H.SHARE_CARD ..
  "\",0.1234\nxyz,1\n" .. H.SINGLE_CARD .. ",2.00\n")
code, _, err = T:run(uq("bulk-recharge " .. bad))
T:check("bulk-recharge: every bad line listed (amount, UUID, duplicate), nothing sent", code == 2
  and err:find("bad.csv:4: amount") ~= nil and err:find("bad.csv:5: card_id") ~= nil
  and err:find("bad.csv:6: card_id .- repeats line 2") ~= nil and applied() == 0, err)
code, _, err = T:run(uq("bulk-recharge " .. T.dir))
T:check("bulk-recharge: a directory for the CSV is a one-line usage error naming it (exit 2)", code == 2
  and err:find("cannot read " .. T.dir:gsub("%p", "%%%0") .. ": Is a directory\n$") ~= nil
  and select(2, err:gsub("\n", "")) == 1, err)
bad = T:file("bad.csv", "card_id,amount\n" .. H.SINGLE_CARD .. ",1.00\n" .. H.FROZEN_CARD .. ",1.00\n" ..
  "77777777-6666-4666-8666-666666666669,1.00\n")
code, _, err = T:run(uq("bulk-recharge " .. bad))
T:check("bulk-recharge without a currency column: every card checked before any write (unknown, not ACTIVE)",
  code == 2 and err:find("bad.csv:3: card " .. H.FROZEN_CARD:gsub("%-", "%%-") .. ": it is FROZEN, not ACTIVE") ~= nil
  and err:find("bad.csv:4: card 77777777%-6666%-4666%-8666%-666666666669: card not found") ~= nil
  and err:find("2 problem") ~= nil and applied() == 0, err)
bad = T:file("bad.csv", "card_id,amount,currency\n" .. H.SGD_CARD .. ",1.00,USD\n")
code, _, err = T:run(uq("bulk-recharge " .. bad))
T:check("bulk-recharge: a currency that is not the card's is refused before any write", code == 2
  and err:find("is a SGD card, the line says USD") ~= nil and applied() == 0, err)
local good = T:file("good.csv", "card_id,amount,currency\n" .. H.SINGLE_CARD .. ",10.00,USD\n" .. H.SGD_CARD ..
  ",2.50,\n" .. H.SHARE_CARD .. ',"1,000.00",\n')
T:expect("bulk-recharge: a quoted field is one field", uq("bulk-recharge " .. good), 2, nil, "good.csv:4: amount")
good = T:file("good.csv", "card_id,amount,currency\r\n" .. H.SINGLE_CARD .. ",10.00,USD\r\n" .. H.SGD_CARD ..
  ",2.50,\r\n" .. H.SHARE_CARD .. ',"7.00",\r\n')
code, _, err = T:run(uq("--dry-run bulk-recharge " .. good))
T:check("bulk-recharge --dry-run sends nothing", code == 0 and applied() == 0, err)
code, out, err = T:run(uq("--json bulk-recharge " .. good))
local text_summary = err
st = state()
local lines = {}
for l in out:gmatch("[^\n]+") do lines[#lines + 1] = json.decode(l, { money = false }) end
T:check("bulk-recharge: CRLF, BOM-less CSV, three recharges applied", code == 0 and H.applied(st, "recharge") == 3
  and card(st, H.SINGLE_CARD).available_balance == "510.00" and card(st, H.SGD_CARD).available_balance == "202.50", err)
T:check("bulk-recharge --json: one object per operation and a summary; the SHARE card's 7.00 moved no funds",
  #lines == 4 and lines[1].operation and lines[4].summary and lines[4].summary.done == 3
  and lines[4].summary.totals.USD == "10.00" and lines[4].summary.totals.SGD == "2.50"
  and lines[4].summary.unfunded.USD == "7.00", out)
T:check("...and the summary line says so", text_summary:find("moved SGD 2.50, USD 10.00; no funds moved for USD 7.00",
  1, true) ~= nil and H.applied(st, "issuing_transfer") == 0, text_summary)

-- resume after SIGKILL: 40 recharges on three cards, killed midway
reset()
local many = { "card_id,amount" }
for i = 1, 40 do many[#many + 1] = ({ H.SINGLE_CARD, H.SHARE_CARD, H.SGD_CARD })[i % 3 + 1] .. "," .. string.format("0.%02d", i) end
local manyf = T:file("many.csv", table.concat(many, "\n") .. "\n")
H.faults("latency=1:ms=60:path=/v1/issuing/cards/*/recharge", base)
local kills = 0
for _ = 1, 3 do
  code = T:run(string.format("sh -c '%s & p=$!; sleep 0.4; kill -KILL $p 2>/dev/null; wait $p'",
    uq("bulk-recharge --allow-duplicates --concurrency 4 " .. manyf)))
  if code == 137 then kills = kills + 1 end
  -- done: the same command again would be a new run. A kill can also land
  -- after the run completed, before the process exited (a wide window
  -- under ASan's exit-time leak check): the journal says so.
  local complete = os.execute("grep -qs '\"t\":\"complete\"' " .. T.dir .. "/state/uqlua/runs/*.journal")
  if code == 0 or complete then code = 0; break end
end
H.faults("", base)
if code ~= 0 then code, _, err = T:run(uq("bulk-recharge --allow-duplicates --concurrency 4 " .. manyf)) end
st = state()
local total = 0
for _, a in ipairs(st.applied) do if a.op == "recharge" then total = total + math.floor(tonumber(a.amount) * 100 + 0.5) end end
T:check("bulk-recharge after SIGKILL: killed, resumed, each line applied exactly once", kills >= 1 and code == 0
  and H.applied(st, "recharge") == 40 and total == 820 and H.duplicate_key(st) == nil,
  string.format("kills %d exit %d recharges %d cents %d\n%s", kills, code, H.applied(st, "recharge"), total, err))

-- a progress bar on a terminal's stderr (script(1) gives the run a pty), none otherwise
reset()
code, out = T:run("script -qec '" .. sim.env .. UQ .. " bulk-recharge --allow-duplicates " .. manyf .. "' /dev/null")
T:check("on a terminal, a progress bar with count, rate and ETA", code == 0 and out:find("40/40") ~= nil
  and out:find("/s") ~= nil and out:find("ETA") ~= nil, out)
code, _, err = T:run(sim.env .. UQ .. " bulk-recharge --allow-duplicates " .. manyf)
T:check("...and none when stderr is not a terminal", code == 0 and not err:find("ETA"), err)

-- ---- sweep-cards ----
reset()
code, _, err = T:run(uq("--dry-run sweep-cards --all --keep 10"))
T:check("sweep-cards --dry-run sends nothing", code == 0 and applied() == 0, err)
code, _, err = T:run(uq("sweep-cards --all --keep 10"))
st = state()
T:check("sweep-cards: ACTIVE SINGLE cards down to --keep, SHARE skipped with a note", code == 0
  and H.applied(st, "withdraw") == 2 and card(st, H.SINGLE_CARD).available_balance == "10.00"
  and card(st, H.SHARE_CARD).available_balance == "1000.00" and err:find("SHARE card") ~= nil, err)
T:expect("sweep-cards needs a selection (exit 2)", uq("sweep-cards"), 2, nil, "choose the cards")

-- ---- freeze-cards ----
reset()
local list = T:file("cards.csv", "card_id\n" .. H.SINGLE_CARD .. "\n" .. H.SGD_CARD .. "\n")
code, _, err = T:run(uq("freeze-cards cancel --cards " .. list))
T:check("freeze-cards cancel without a terminal or --yes is refused (exit 2)", code == 2 and applied() == 0, err)
local unknown = T:file("unknown.csv", "card_id\n" .. H.SINGLE_CARD .. "\n77777777-6666-4666-8666-666666666669\n")
code, _, err = T:run(uq("freeze-cards freeze --cards " .. unknown))
T:check("freeze-cards --cards with an unknown card: a usage error naming it, no traceback, nothing sent (exit 2)",
  code == 2 and err:find("unknown.csv:3: card 77777777%-6666%-4666%-8666%-666666666669: card not found") ~= nil
  and err:find("traceback") == nil and applied() == 0, err)
code, _, err = T:run(uq("freeze-cards freeze --status ACTIVE --reason " .. string.rep("r", 101)))
T:check("freeze-cards --reason over 100 characters: refused before anything is sent (exit 2)", code == 2
  and err:find("--reason \"" .. string.rep("r", 101) .. "\" is 101 characters long; at most 100", 1, true) ~= nil
  and applied() == 0, err)
code, _, err = T:run(uq("freeze-cards freeze --status ACTIVE --reason audit"))
st = state()
T:check("freeze-cards freeze --status ACTIVE: every active card frozen", code == 0
  and card(st, H.SINGLE_CARD).card_status == "FROZEN" and card(st, H.SHARE_CARD).card_status == "FROZEN", err)
code, _, err = T:run(uq("freeze-cards cancel --yes --cards " .. list))
st = state()
T:check("freeze-cards cancel --yes --cards FILE", code == 0 and card(st, H.SINGLE_CARD).card_status == "CANCELLED"
  and card(st, H.SGD_CARD).card_status == "CANCELLED" and card(st, H.SHARE_CARD).card_status == "FROZEN", err)

-- ---- card-report ----
reset()
local report = T.dir .. "/cards-out.csv"
code, _, err = T:run(uq("card-report --format csv --output " .. report .. " --status ACTIVE"))
local text = T.slurp(report)
T:check("card-report --format csv --output FILE --status ACTIVE", code == 0
  and text:find("^card_id,status,mode,currency,available_balance,card_limit,cardholder,account\n") ~= nil
  and select(2, text:gsub("\n", "")) == 4 and text:find("FROZEN") == nil, text .. err)

-- ---- reconcile ----
reset()
local two = T:file("two.csv", "card_id,amount\n" .. H.SINGLE_CARD .. ",3.00\n" .. H.SGD_CARD .. ",4.00\n")
H.faults("fail_after:next=1:path=/v1/issuing/cards/" .. H.SGD_CARD .. "/recharge", base)
code = T:run("UQLUA_MAX_ATTEMPTS=1 " .. uq("bulk-recharge " .. two))
T:check("reconcile setup: one recharge in doubt (exit 3)", code == 3 and applied("recharge") == 2)
code, out, err = T:run(uq("reconcile"))
T:check("reconcile: the in-doubt write beside the server's evidence (exit 3)", code == 3
  and out:find("in doubt") ~= nil and out:find("possibly applied") ~= nil and out:find("matched") ~= nil, out .. err)
local before = state().request_count
code, out, err = T:run(sim.env:gsub("UQPAY_BASE_URL=%S+", "UQPAY_BASE_URL=http://127.0.0.1:9/api") ..
  UQ .. " reconcile --settle")
T:check("reconcile --settle against another server than the run's is refused (exit 2), nothing sent", code == 2
  and err:find("only where they were made", 1, true) ~= nil and state().request_count == before, out .. err)
code, out, err = T:run(uq("reconcile --settle"))
T:check("reconcile --settle: sent again with its own key, settled (exit 0), applied once", code == 0
  and applied("recharge") == 2 and H.duplicate_key(state()) == nil, out .. err)
code, _, err = T:run(uq("bulk-recharge " .. two))
T:check("...and the original run then completes from its journal, sending nothing", code == 0
  and applied("recharge") == 2 and err:find("2 answered from the journal") ~= nil, err)

-- A card frozen after its recharge was applied does not stop the resume
-- of the run from settling the write in doubt.
reset()
H.faults("fail_after:next=1:path=/v1/issuing/cards/" .. H.SGD_CARD .. "/recharge", base)
local c_first = T:run("UQLUA_MAX_ATTEMPTS=1 " .. uq("bulk-recharge " .. two))
local freeze = T:file("freeze-one.lua", "uqpay.cards.freeze('" .. H.SINGLE_CARD .. "')\n")
local c_freeze = T:run(uq(freeze))
code, _, err = T:run(uq("bulk-recharge " .. two))
T:check("bulk-recharge resumes past a card frozen since its recharge was applied (exit 0, applied once each)",
  c_first == 3 and c_freeze == 0 and code == 0 and applied("recharge") == 2, err)

-- A write that failed before it was applied is not credited with the
-- same recharge another run made right after it.
reset()
local lone = T:file("lone.csv", "card_id,amount\n" .. H.SINGLE_CARD .. ",6.00\n")
H.faults("fail_before:next=1:path=/v1/issuing/cards/*/recharge", base)
local code1 = T:run("UQLUA_MAX_ATTEMPTS=1 " .. uq("bulk-recharge " .. lone))
local other = T:file("other-run.lua", "uqpay.recharge('" .. H.SINGLE_CARD .. "', '6.00')\n")
local code2 = T:run(uq(other))
code, out, err = T:run(uq("reconcile"))
T:check("reconcile does not credit a write in doubt with another run's matching transaction", code == 3
  and code1 == 3 and code2 == 0 and applied("recharge") == 1 and out:find("no trace found", 1, true) ~= nil
  and out:find("possibly applied", 1, true) == nil, out .. err)

-- A write never sent (every attempt refused before reaching the server)
-- stays not sent when --settle meets the same: not "rejected", and the
-- exit says it is open.
reset()
local one = T:file("one.csv", "card_id,amount\n" .. H.SINGLE_CARD .. ",5.00\n")
H.faults("burst429:path=/v1/issuing/cards/*/recharge", base)
local unsent = T:run("UQLUA_MAX_ATTEMPTS=1 " .. uq("bulk-recharge " .. one))
code, out, err = T:run("UQLUA_MAX_ATTEMPTS=1 " .. uq("reconcile --settle"))
T:check("reconcile --settle refused before reaching the server: the write is still open (exit 3), not shown as rejected",
  unsent ~= 0 and code == 3 and out:find("rejected", 1, true) == nil and applied("recharge") == 0, out .. err)
H.faults("", base)
code, out, err = T:run(uq("reconcile --settle"))
T:check("...and once a token can be had, --settle sends it (exit 0), applied once", code == 0
  and applied("recharge") == 1, out .. err)

T:stop(sim)
T:finish()
