-- The run journal end to end: a standalone simulator keeps its ledger
-- across uqlua runs, so re-runs can be checked against what was applied.
--   uqlua tests/integration/journal.lua UQLUA
local UQ = assert(arg[1], "usage: journal.lua UQLUA")
local json = require "uqpay.json"
local T = require("tests.helpers.proc").new(UQ)
local H = require "tests.helpers.sim"

local sim = T:serve()
local base = sim.base
local function state() return H.state(base) end
local function reset() H.reset(base) end
local function applied(op) return H.applied(state(), op) end
local runs = T.dir .. "/state/uqlua/runs"

local function journal_files()
  local list = io.popen("ls " .. runs .. " 2>/dev/null"):read("a")
  local out = {}
  for name in list:gmatch("[^\n]+") do out[#out + 1] = name end
  return out
end

-- A script of five writes; FAIL_AFTER=n raises after the n-th.
local script = T:file("five.lua", [[
local card = "66666666-6666-4666-8666-666666666661"
local stop = tonumber(os.getenv("FAIL_AFTER") or "")
for i = 1, 5 do
  uqpay.recharge(card, "1.00")
  if stop == i then error("stopping after write " .. i) end
end
uqpay.transfer { source_account_id = "11111111-1111-4111-8111-111111111111",
                 destination_account_id = "22222222-2222-4222-8222-222222222222", currency = "USD", amount = "7.00" }
print("finished")
]])
local run5 = sim.env .. UQ .. " " .. script

-- ---- resume: recorded outcomes are answered locally ----
reset()
local out
local code, _, err = T:run("FAIL_AFTER=3 " .. run5)
T:check("a failing script leaves an incomplete run", code == 1 and applied("recharge") == 3, err)
local files = journal_files()
T:check("one journal file, 0600 in a 0700 directory", #files == 1
  and io.popen("stat -c %a " .. runs .. "/" .. files[1]):read("a"):match("^600")
  and io.popen("stat -c %a " .. runs):read("a"):match("^700"), table.concat(files, " "))
local text = T.slurp(runs .. "/" .. files[1])
T:check("the journal holds no token, API key or client id", not text:find("eyJhbGci", 1, true)
  and not text:find("sim%-secret%-key") and not text:find("sim%-client%-0001"), text:sub(1, 300))
local before = H.requests(base)
code, _, err = T:run(run5)
T:check("the re-run resumes and says so", code == 0 and err:find("resuming run %x+") ~= nil
  and err:find("3 operations done") ~= nil, err)
local st = state()
T:check("nothing is applied twice: 5 recharges, 1 transfer", H.applied(st, "recharge") == 5
  and H.applied(st, "issuing_transfer") == 1, json.encode(st.applied))
T:check("the three recorded operations sent no request", st.request_count - before <= 1 + 3, -- token + 2 recharges + transfer
  "requests: " .. (st.request_count - before))
code, _, err = T:run(run5)
T:check("after completion, the next invocation is a new run", code == 0 and not err:find("resuming")
  and applied("recharge") == 10, err)

-- ---- a finished run is set aside without being read whole ----
-- Its last line says it is complete. A damaged line before that one, which
-- a full read refuses, shows that nothing else was read.
reset()
os.execute("rm -rf " .. runs)
T:run(run5)
local done_file = runs .. "/" .. journal_files()[1]
local done_text = T.slurp(done_file)
local damaged = done_text:gsub('"t":"intent"', '"t":"intenX"', 1)
local fh = io.open(done_file, "wb")
fh:write(damaged)
fh:close()
code, _, err = T:run(run5)
local names = table.concat(journal_files(), " ")
T:check("a finished run is set aside unread: the next invocation starts a new run", code == 0
  and not err:find("resuming") and not err:find("damaged") and applied("recharge") == 10
  and names:find("%.done%.journal") ~= nil, err .. " " .. names)

-- A finished run killed (or powered off) while closing keeps the zeros
-- written ahead after its complete record: it is still finished, and the
-- next invocation is a new run, not a resume that sends nothing.
reset()
os.execute("rm -rf " .. runs)
T:run(run5)
done_file = runs .. "/" .. journal_files()[1]
fh = io.open(done_file, "ab")
fh:write(string.rep("\0", 65536))
fh:close()
code, _, err = T:run(run5)
names = table.concat(journal_files(), " ")
T:check("a finished run with zeros after its last line is set aside: the next invocation is a new run",
  code == 0 and not err:find("resuming") and applied("recharge") == 10 and names:find("%.done%.journal") ~= nil,
  err .. " " .. names)

-- An applied write whose answer was not JSON is answered from the journal
-- with the error it raised when it was sent (kind api, with its key), not
-- with a decoder's usage error.
reset()
os.execute("rm -rf " .. runs)
T:run("FAIL_AFTER=2 " .. run5)
done_file = runs .. "/" .. journal_files()[1]
local jtext = T.slurp(done_file)
local at, to, rec = jtext:find("%x+ ({[^\n]-\"t\":\"outcome\"[^\n]*)")
local r = json.decode(rec)
r.body = "<html>oops</html>"
local line = json.encode(r)
fh = io.open(done_file, "wb")
fh:write(jtext:sub(1, at - 1), require("uqpay.core").checksum(line), " ", line, jtext:sub(to + 1))
fh:close()
code, _, err = T:run(run5)
T:check("a replayed answer that is not JSON raises the api error it raised when sent, with its key",
  code == 1 and err:find("api error: response is not JSON (answered from the journal)", 1, true) ~= nil
    and err:find("idempotency key", 1, true) ~= nil and applied("recharge") == 2, err)

-- ---- a torn last line is ignored, cut off, and does not stop a resume ----
reset()
os.execute("rm -rf " .. runs)
T:run("FAIL_AFTER=2 " .. run5)
local jf = runs .. "/" .. journal_files()[1]
local f = io.open(jf, "ab")
f:write('0123456789abcdef {"t":"intent","key":"torn')
f:close()
code, _, err = T:run(run5)
T:check("a torn line does not stop the resume", code == 0 and err:find("torn last line was ignored") ~= nil
  and applied("recharge") == 5, err)
T:check("the torn line is gone from the journal", not T.slurp(jf):find('"torn', 1, true))

-- ---- a damaged line in the middle is refused, not misread ----
reset()
os.execute("rm -rf " .. runs)
T:run("FAIL_AFTER=2 " .. run5)
jf = runs .. "/" .. journal_files()[1]
text = T.slurp(jf)
local broken = text:gsub('"occ":1', '"occ":9', 1)
f = io.open(jf, "wb")
f:write(broken)
f:close()
code, _, err = T:run(run5)
T:check("a damaged line is a configuration error naming the journal", code == 2 and err:find("damaged at line") ~= nil
  and applied("recharge") == 2, err)
local damaged_id = journal_files()[1]:match("^(%x+)%.journal$")
local lcode, dlisted = T:run(UQ .. " --runs")
local scode, dshown = T:run(UQ .. " --run " .. damaged_id)
local rcode, _, rerr = T:run(sim.env .. UQ .. " reconcile " .. damaged_id .. " --settle")
T:check("a damaged run is listed as damaged, --run says where and why, reconcile refuses it (exit 2), nothing sent",
  lcode == 0 and dlisted:find(damaged_id .. "%s+damaged%s+%d%d%d%d%-") ~= nil and dlisted:find("five.lua", 1, true) ~= nil
  and scode == 0 and dshown:find("is damaged at line %d") ~= nil and rcode == 2
  and rerr:find("cannot be reconciled", 1, true) ~= nil and applied("recharge") == 2, dlisted .. dshown .. rerr)

-- ---- --fresh sets the interrupted run aside ----
code, _, err = T:run(sim.env .. UQ .. " --fresh " .. script)
T:check("--fresh starts a new run and says where the damaged one went", code == 0 and err:find("set aside the damaged run") ~= nil
  and applied("recharge") == 7, err)
T:check("the abandoned run is kept", #journal_files() == 2 and table.concat(journal_files(), " "):find("abandoned"))

-- ---- lines deleted by hand are refused, not read as writes never sent ----
-- (the first write's intent and outcome gone, its resume would send it
-- again with a new key: applied twice)
local function rewrite(path, edit)
  local lines = {}
  for l in T.slurp(path):gsub("%z+$", ""):gmatch("[^\n]+") do lines[#lines + 1] = l end
  lines = edit(lines)
  local fw = io.open(path, "wb")
  fw:write(table.concat(lines, "\n"), "\n")
  fw:close()
end
reset()
os.execute("rm -rf " .. runs)
T:run("FAIL_AFTER=2 " .. run5)
jf = runs .. "/" .. journal_files()[1]
rewrite(jf, function(l) table.remove(l, 2); table.remove(l, 2); return l end)
code, _, err = T:run(run5)
T:check("deleted lines are a configuration error naming the line, and nothing is sent", code == 2
  and err:find("damaged at line 2: it is record 4 where record 2 belongs", 1, true) ~= nil
  and applied("recharge") == 2, err)
-- a journal from before records were numbered resumes as it did
reset()
os.execute("rm -rf " .. runs)
T:run("FAIL_AFTER=2 " .. run5)
jf = runs .. "/" .. journal_files()[1]
rewrite(jf, function(l)
  for i, text_i in ipairs(l) do
    local body = text_i:sub(18):gsub('^{"n":%d+,', "{")
    l[i] = require("uqpay.core").checksum(body) .. " " .. body
  end
  return l
end)
code, _, err = T:run(run5)
T:check("a journal whose records have no numbers (an older uqlua's) still resumes", code == 0
  and applied("recharge") == 5 and not T.slurp(jf):find('"n":', 1, true), err)

-- ---- one run, one journal: the same run with --journal elsewhere ----
-- (sent from an empty journal, its applied writes would go out again)
reset()
os.execute("rm -rf " .. runs)
T:run("FAIL_AFTER=2 " .. run5)
local elsewhere = T.dir .. "/elsewhere.journal"
code, _, err = T:run(sim.env .. UQ .. " --journal " .. elsewhere .. " " .. script)
T:check("a run interrupted in the runs directory is not started anew with --journal elsewhere (exit 2, nothing " ..
  "sent)", code == 2 and err:find("was interrupted in", 1, true) ~= nil and err:find("without --journal", 1, true) ~= nil
  and applied("recharge") == 2, err)
code = T:run(run5)
T:check("...it resumes where it is", code == 0 and applied("recharge") == 5)
reset()
os.remove(elsewhere)
T:run("FAIL_AFTER=2 " .. sim.env .. UQ .. " --journal " .. elsewhere .. " " .. script)
code, _, err = T:run(run5)
T:check("...and one interrupted in a --journal file is not started anew in the runs directory", code == 2
  and err:find("--journal " .. elsewhere, 1, true) ~= nil and applied("recharge") == 2, err)
-- two copies at once, each with its own journal
reset()
os.execute("rm -rf " .. runs)
local waits = T:file("waits.lua", 'uqpay.recharge("66666666-6666-4666-8666-666666666661", "1.00")\n' ..
  'for _ = 1, 200 do if io.open(os.getenv("GO"), "r") then break end os.execute("sleep 0.05") end\n')
local go = T.dir .. "/go"
os.remove(go)
os.execute(T.env .. "GO=" .. go .. " " .. sim.env .. UQ .. " " .. waits .. " >/dev/null 2>&1 &")
H.wait_until(function() return applied("recharge") == 1 end)
code, _, err = T:run("GO=" .. go .. " " .. sim.env .. UQ .. " --journal " .. T.dir .. "/second.journal " .. waits)
T:file("go", "")
T:check("a second copy of a live run with another --journal is refused (exit 2), nothing sent", code == 2
  and err:find("in progress with another journal", 1, true) ~= nil and applied("recharge") == 1, err)
H.wait_until(function() return select(2, T:run(UQ .. " --runs")):find("complete", 1, true) ~= nil end)

-- ---- a rejected (4xx) operation is tried again with a new key ----
reset()
os.execute("rm -rf " .. runs)
local frozen = T:file("frozen.lua", [[
print(uqpay.recharge("66666666-6666-4666-8666-666666666663", "2.00").order_status)
]])
code = T:run(sim.env .. UQ .. " " .. frozen)
H.api("POST", "/v1/issuing/cards/66666666-6666-4666-8666-666666666663/status", { card_status = "ACTIVE" }, nil, base)
local code2, out2, err2 = T:run(sim.env .. UQ .. " " .. frozen)
T:check("after fixing the cause, the re-run applies the rejected operation once", code == 1 and code2 == 0
  and out2 == "SUCCESS\n" and applied("recharge") == 1, err2)

-- ---- an outcome left unknown stays open, even when the last reply was a 409 ----
reset()
os.execute("rm -rf " .. runs)
H.admin("POST", "faults", { spec = "latency=1:ms=2500:next=1:path=/v1/issuing/cards/*/recharge" }, base)
local slow = T:file("slow.lua", 'uqpay.recharge("66666666-6666-4666-8666-666666666661", "4.00")\n')
-- the first attempt times out while the server still works on it; the
-- retries hear "request is processing" until the attempts run out
code, _, err = T:run("UQLUA_TIMEOUT_MS=400 UQLUA_MAX_ATTEMPTS=3 " .. sim.env .. UQ .. " " .. slow)
T:check("a write that ends on 'request is processing' is reconcile_required (exit 3)", code == 3
  and err:find("reconcile_required") ~= nil, err)
require("uqpay.core").sleep_ms(2500)
code, _, err = T:run(sim.env .. UQ .. " " .. slow)
T:check("...and the re-run sends it with the same key: applied once", code == 0 and applied("recharge") == 1
  and err:find("1 in doubt") ~= nil, err .. " applied: " .. applied("recharge"))

-- ---- the 24-hour rule ----
reset()
os.execute("rm -rf " .. runs)
H.admin("POST", "faults", { spec = "latency=1:ms=4000:path=/v1/issuing/cards/*/recharge" }, base)
local one = T:file("one.lua", 'uqpay.recharge("66666666-6666-4666-8666-666666666661", "3.00")\n')
T:run("sh -c '" .. sim.env .. UQ .. " " .. one .. " & p=$!; sleep 1; kill -KILL $p; wait $p'")
H.admin("POST", "faults", {}, base)
code, _, err = T:run("UQLUA_CLOCK_OFFSET_S=90000 " .. sim.env .. UQ .. " " .. one)
T:check("an intent older than 24 hours is not re-sent: exit 3 naming it", code == 3
  and err:find("reconcile_required") ~= nil and err:find("POST /v1/issuing/cards/66666666%-6666%-4666%-8666%-666666666661/recharge")
  and err:find("too old to be sent again") ~= nil, err)
require("uqpay.core").sleep_ms(3500) -- the killed request finishes on the server
code, _, err = T:run(sim.env .. UQ .. " " .. one)
T:check("within 24 hours the open intent is sent again with its key: applied once", code == 0
  and applied("recharge") == 1 and err:find("1 in doubt") ~= nil, err)

-- Past the key's life, a person checks the resource and records what they
-- found with reconcile --mark, as the refusal says; the run goes on.
-- (The runs before are kept aside: the --runs checks below list them.)
do
os.execute(string.format("rm -rf %s.keep && mv %s %s.keep", runs, runs, runs))
local function past_key_life(fault, tag)
  reset()
  os.execute("rm -rf " .. runs)
  local old_script = T:file("old-" .. tag .. ".lua", 'uqpay.recharge("66666666-6666-4666-8666-666666666661", "3.00")\n')
  H.admin("POST", "faults", { spec = fault }, base)
  T:run("UQLUA_MAX_ATTEMPTS=1 " .. sim.env .. UQ .. " " .. old_script)
  H.admin("POST", "faults", {}, base)
  local late = "UQLUA_CLOCK_OFFSET_S=90000 " .. sim.env .. UQ .. " "
  local c1, _, e1 = T:run(late .. old_script)
  local cmd = e1:match("`uqlua (reconcile %x+ %-%-mark [%x%-]+=)applied`")
  return old_script, late, c1, cmd, e1
end
local old, late, c1, cmd, e1 = past_key_life("fail_after:next=1:path=/v1/issuing/cards/*/recharge", "a")
local c2 = cmd and T:run(late .. cmd .. "applied")
local c3, _, e3 = T:run(late .. old)
T:check("past the key's life, reconcile --mark KEY=applied (the refusal's command) lets the run finish, sending " ..
  "nothing", c1 == 3 and c2 == 0 and c3 == 0 and applied("recharge") == 1, e1 .. e3)
old, late, c1, cmd, e1 = past_key_life("fail_before:next=1:path=/v1/issuing/cards/*/recharge", "b")
c2 = cmd and T:run(late .. cmd .. "not-applied")
c3, _, e3 = T:run(late .. old)
T:check("...and --mark KEY=not-applied sends it anew with a new key: applied once", c1 == 3 and c2 == 0 and c3 == 0
  and applied("recharge") == 1 and H.duplicate_key(state()) == nil, e1 .. e3)
local c4, _, e4 = T:run(late .. "reconcile " .. tostring(cmd and cmd:match("reconcile (%x+)")) ..
  " --mark 00000000-0000-4000-8000-000000000000=applied")
T:check("--mark with a key the run does not hold open is a usage error naming it (exit 2)", c4 == 2
  and e4:find("names no write of run", 1, true) ~= nil, e4)
-- applied, its answer lost: a balance transaction matches it, and not
-- applied (which would send it anew) is refused unless the person names
-- that transaction as another write's
local _, _, ca, cmd_a = past_key_life("fail_after:next=1:path=/v1/issuing/cards/*/recharge", "c")
local cr, _, er = T:run(late .. tostring(cmd_a) .. "not-applied")
local txn = er:match("balance transaction (%S+) %(CARD_RECHARGE 3%.00")
local rid_a = tostring(cmd_a and cmd_a:match("reconcile (%x+)"))
local recorded = T.slurp(runs .. "/" .. rid_a .. ".journal"):find("marked", 1, true)
local cd = T:run(late .. tostring(cmd_a) .. "not-applied --despite " .. tostring(txn))
T:check("--mark not-applied for a write a balance transaction matches is refused, nothing recorded, unless " ..
  "--despite names that transaction", ca == 3 and cr == 2 and txn ~= nil and not recorded and cd == 0
  and er:find("was probably applied", 1, true) ~= nil and applied("recharge") == 1, er)

-- Marks are checked: twice for one key, or not applied while the key is
-- still good (the server can answer it: --settle), is a usage error.
reset()
os.execute("rm -rf " .. runs)
local early = T:file("early.lua", 'uqpay.recharge("66666666-6666-4666-8666-666666666661", "2.00")\n')
H.admin("POST", "faults", { spec = "fail_before:next=1:path=/v1/issuing/cards/*/recharge" }, base)
local _, _, ee = T:run("UQLUA_MAX_ATTEMPTS=1 " .. sim.env .. UQ .. " " .. early)
local ekey = ee:match("idempotency key ([%x%-]+)")
local rid = (T.slurp(runs .. "/" .. (require("uqpay.core").listdir(runs) or {})[1]):match('"run":"(%x+)"'))
local c5, _, e5 = T:run(sim.env .. UQ .. " reconcile " .. tostring(rid) .. " --mark " .. tostring(ekey) .. "=not-applied")
local c6, _, e6 = T:run("UQLUA_CLOCK_OFFSET_S=90000 " .. sim.env .. UQ .. " reconcile " .. tostring(rid) .. " --mark " ..
  tostring(ekey) .. "=applied --mark " .. tostring(ekey) .. "=not-applied")
T:check("--mark not-applied while the key is still good, or two marks for one key: exit 2, nothing recorded",
  c5 == 2 and e5:find("is early", 1, true) ~= nil and c6 == 2 and e6:find("a second time", 1, true) ~= nil
    and not T.slurp(runs .. "/" .. rid .. ".journal"):find('"state":"rejected"', 1, true), e5 .. e6)

-- A write whose body held card data (the journal keeps it redacted, so its
-- identity cannot be made again from the journal) is marked all the same.
reset()
os.execute("rm -rf " .. runs)
local carddata = T:file("carddata.lua", 'uqpay.request("POST", "/v1/issuing/cards/pin", { body = { card_id = ' ..
  '"66666666-6666-4666-8666-666666666661", card_number = "4111111111111111" } })\n')
H.admin("POST", "faults", { spec = "fail_before:next=1:path=/v1/issuing/cards/pin" }, base)
local _, _, ec = T:run("UQLUA_MAX_ATTEMPTS=1 " .. sim.env .. UQ .. " " .. carddata)
local ckey = ec:match("idempotency key ([%x%-]+)")
local crid = (T.slurp(runs .. "/" .. (require("uqpay.core").listdir(runs) or {})[1]):match('"run":"(%x+)"'))
local c7, o7 = T:run(sim.env .. UQ .. " reconcile " .. tostring(crid) .. " --mark " .. tostring(ckey) .. "=applied")
local c8, _, e8 = T:run(sim.env .. UQ .. " " .. carddata)
T:check("--mark a write whose body held card data: recorded, and the run finishes from the journal", c7 == 0
  and o7:find("marked applied by hand", 1, true) ~= nil and c8 == 0 and e8:find("1 answered from the journal", 1, true)
    ~= nil, tostring(c7) .. o7 .. tostring(c8) .. e8)

-- Archives are not settled or marked: a --fresh run may have sent their
-- writes anew.
reset()
os.execute("rm -rf " .. runs)
H.admin("POST", "faults", { spec = "fail_before:next=1:path=/v1/issuing/cards/*/recharge" }, base)
T:run("UQLUA_MAX_ATTEMPTS=1 " .. sim.env .. UQ .. " " .. early)
T:run(sim.env .. UQ .. " --fresh " .. early)
local archive
for _, name in ipairs(require("uqpay.core").listdir(runs) or {}) do
  archive = name:match("^(.*)%.abandoned%.journal$") or archive
end
local c9, _, e9 = T:run(sim.env .. UQ .. " reconcile " .. tostring(archive) .. " --settle")
T:check("reconcile ARCHIVE --settle is refused (exit 2): the --fresh run sent its write anew, applied once",
  archive ~= nil and c9 == 2 and e9:find("is an archive", 1, true) ~= nil and applied("recharge") == 1, e9)
-- Marked not applied, then the same write again later in the run (two
-- identical lines): the marked one is sent anew on resume, not replayed as
-- a rejection, and the run completes.
reset()
os.execute("rm -rf " .. runs)
local twice = T:file("twice.csv", "card_id,amount\n66666666-6666-4666-8666-666666666661,4.00\n" ..
  "66666666-6666-4666-8666-666666666661,4.00\n")
local bulk = " bulk-recharge --allow-duplicates --concurrency 1 " .. twice
H.admin("POST", "faults", { spec = "fail_before:next=1:path=/v1/issuing/cards/*/recharge" }, base)
local d1, _, de = T:run("UQLUA_MAX_ATTEMPTS=1 UQLUA_NO_PROGRESS=1 " .. sim.env .. UQ .. bulk)
local dkey = de:match("line 2 .-idempotency key ([%x%-]+)")
local drid = de:match("run (%x+) stopped")
local d2, _, de2 = T:run(late .. "reconcile " .. tostring(drid) .. " --mark " .. tostring(dkey) .. "=not-applied")
local d3, _, de3 = T:run("UQLUA_NO_PROGRESS=1 " .. late .. bulk)
T:check("--mark not-applied on the first of two identical writes: the resume sends it anew, the run completes",
  d1 == 3 and d2 == 0 and d3 == 0 and applied("recharge") == 2 and H.duplicate_key(state()) == nil,
  de .. de2 .. de3)
os.execute(string.format("rm -rf %s && mv %s.keep %s", runs, runs, runs))
end

-- ---- --runs and --run ----
code, out = T:run(UQ .. " --runs")
T:check("--runs lists runs with their state", code == 0 and out:find("RUN%s+STATE") and out:find("complete"), out)
local id = out:match("\n(%x+)%s")
code, out = T:run(UQ .. " --run " .. (id or "x"):sub(1, 6))
T:check("--run ID shows each operation and its outcome", code == 0 and out:find("done 200") ~= nil
  and out:find("POST /v1/issuing/cards/") ~= nil, out)
T:expect("--run with an unknown id", UQ .. " --run 0000000000", 2, nil, "no run")
code, out = T:run(UQ .. " --json --runs")
local first = out:match("^[^\n]+")
local ok_json, row = pcall(json.decode, first or "")
T:check("--json --runs: one JSON line per run", code == 0 and ok_json and row.run and row.run.state == "complete", out)
code, out = T:run(UQ .. " --json --run " .. (id or "x"):sub(1, 6))
ok_json, row = pcall(json.decode, out)
T:check("--json --run ID: the operations with keys and states", code == 0 and ok_json
  and row.run.operations[1].state == "applied" and row.run.operations[1].idempotency_key ~= nil, out)

-- ---- --dry-run sends no write ----
reset()
code, out, err = T:run(sim.env .. UQ .. " --dry-run " .. T:file("dry.lua", [[
local o = uqpay.recharge("66666666-6666-4666-8666-666666666661", "2.50")
assert(o.dry_run == true, "results are marked dry_run")
uqpay.recharge("66666666-6666-4666-8666-666666666664", "1.25")
uqpay.transfer { source_account_id = "11111111-1111-4111-8111-111111111111",
                 destination_account_id = "22222222-2222-4222-8222-222222222222", currency = "USD", amount = "7.00" }
print(uqpay.wait(o).order_status, uqpay.balance("USD").available_balance)
]]))
st = state()
T:check("--dry-run: later reads see the planned state, nothing is applied, results are marked", code == 0
  and out == "SUCCESS\t99990.50\n" and #st.applied == 0 and st.issuing_balances[H.MASTER].USD == "100000.00", out .. err)
T:check("--dry-run prints each write with its key, and a plan: money moved, balances and cards before -> after",
  err:find("dry%-run 1: POST /v1/issuing/cards/.-key=%x+") and err:find("money moved: SGD 1%.25, USD 9%.50")
  and err:find("issuing 11111111%-1111%-4111%-8111%-111111111111 USD: 100000%.00 %-> 99990%.50")
  and err:find("card 66666666%-6666%-4666%-8666%-666666666661 USD: 500%.00 %-> 502%.50"), err)

-- ---- production: --no-journal refused ----
T:expect("--no-journal is refused in production", "UQPAY_ENV=production " .. sim.env .. UQ ..
  " --no-journal --yes " .. one, 2, nil, "refused in production")

-- ---- a file that is not a journal is refused, and left as it was ----
for name, content in pairs { zeros_then_text = "\0\0\0\0PRECIOUS line 1\nline 2\nline 3\n", one_line = "hello" } do
  local path = T:file(name .. ".bin", content)
  code, _, err = T:run(sim.env .. UQ .. " --journal " .. path .. " " .. script)
  T:check("--journal on a file that is not a journal (" .. name .. ") exits 2 and leaves it untouched",
    code == 2 and err:find("damaged at line 1", 1, true) and T.slurp(path) == content, err)
end

-- ---- --journal holding another run: refused, kept, or set aside with --fresh ----
reset()
local shared = T.dir .. "/shared.journal"
T:run("FAIL_AFTER=2 " .. sim.env .. UQ .. " --journal " .. shared .. " " .. script)
local held = T.slurp(shared)
local other = T:file("other.lua", 'uqpay.recharge("66666666-6666-4666-8666-666666666661", "3.00")\n')
code, _, err = T:run(sim.env .. UQ .. " --journal " .. shared .. " " .. other)
T:check("a --journal holding another script's unfinished run is refused with exit 2, and kept", code == 2
  and err:find("holds run %x+") ~= nil and err:find("%-%-fresh") ~= nil and T.slurp(shared) == held
  and applied("recharge") == 2, err)
code, _, err = T:run(sim.env .. UQ .. " --fresh --journal " .. shared .. " " .. other)
T:check("--fresh sets that interrupted run aside and says where", code == 0
  and err:find("set aside the interrupted run %x+ as .-shared%-.-%.abandoned%.journal") ~= nil
  and applied("recharge") == 3, err)

-- ---- reading the journals mid-run keeps this run's lock ----
reset()
os.execute("rm -rf " .. runs)
local reader = T:file("reader.lua", [[
if os.getenv("INNER") then print("inner ran"); return end
uqpay.recharge("66666666-6666-4666-8666-666666666661", "1.00")
assert(#require("uqpay.journal").runs() >= 1) -- reads this run's own journal too
local p = io.popen("INNER=1 " .. os.getenv("SELF") .. " 2>&1; echo rc=$?")
io.write(p:read("a"))
p:close()
p = io.popen(os.getenv("LIST"))
io.write(p:read("a"))
p:close()
]])
code, out = T:run("SELF='" .. sim.env .. UQ .. " " .. reader .. "' LIST='" .. UQ .. " --runs' " .. sim.env .. UQ .. " " ..
  reader)
T:check("after uqpay.journal.runs() a second copy of the run is still refused (in progress)", code == 0
  and out:find("in progress", 1, true) and out:find("rc=2", 1, true) and not out:find("inner ran", 1, true), out)
T:check("...and its journal's lock is still held: --runs shows it running", out:find("%x+%s+running%s") ~= nil, out)

-- ---- a live run is "running", and reconcile leaves it alone ----
reset()
os.execute("rm -rf " .. runs)
os.remove(go)
os.execute(T.env .. "GO=" .. go .. " " .. sim.env .. UQ .. " " .. waits .. " >/dev/null 2>&1 &")
H.wait_until(function() return applied("recharge") == 1 end)
local lcode2, listed2 = T:run(UQ .. " --runs")
local _, jlisted = T:run(UQ .. " --json --runs")
local rcode2, _, rerr2 = T:run(sim.env .. UQ .. " reconcile")
T:file("go", "")
T:check("a live run is 'running' in --runs (its pid in --json), and reconcile does not take it for an interrupted one",
  lcode2 == 0 and listed2:find("%x+%s+running%s") ~= nil and jlisted:find('"pid":%d+') ~= nil and rcode2 == 2
  and rerr2:find("no run that did not complete", 1, true) ~= nil, listed2 .. jlisted .. rerr2)
H.wait_until(function() return select(2, T:run(UQ .. " --runs")):find("complete", 1, true) ~= nil end)

-- ---- preallocation: the file is zero-filled ahead, cut back on close ----
reset()
os.execute("rm -rf " .. runs)
local hang = T:file("slow.lua", [[
for _ = 1, 3 do uqpay.recharge("66666666-6666-4666-8666-666666666661", "1.00") end
if os.getenv("HANG") then
  io.stdout:write("three done\n"); io.stdout:flush()
  while true do end
end
uqpay.recharge("66666666-6666-4666-8666-666666666661", "2.00")
]])
code = T:run(string.format("sh -c 'HANG=1 %s%s %s > %s/slow.out & p=$!; i=0; " ..
  "while ! grep -q done %s/slow.out 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; " ..
  "kill -KILL $p; wait $p'", sim.env, UQ, hang, T.dir, T.dir))
files = journal_files()
local raw = files[1] and T.slurp(runs .. "/" .. files[1]) or ""
local records_end = raw:find("\0", 1, true)
T:check("a killed run leaves its journal zero-filled ahead of the last record", code == 137 and #files == 1
  and records_end and records_end > 1 and raw:sub(records_end - 1, records_end - 1) == "\n"
  and not raw:sub(records_end):find("[^%z]"), #raw .. " bytes, zeros from " .. tostring(records_end))
code, out = T:run(UQ .. " --runs")
T:check("--runs reads a journal with zeros ahead (not torn, not damaged)", code == 0 and out:find("interrupted")
  and not out:find("damaged"), out)
code, _, err = T:run(sim.env .. UQ .. " " .. hang)
T:check("the re-run resumes from the zero-filled journal: 3 answered from it, 1 sent", code == 0
  and applied("recharge") == 4 and err:find("3 answered from the journal", 1, true), err)
local archived = ""
for _, name in ipairs(journal_files()) do archived = archived .. T.slurp(runs .. "/" .. name) end
T:check("a closed journal is cut back to its records (ends with a newline, no zeros)", #archived > 0
  and not archived:find("\0", 1, true) and archived:sub(-1) == "\n", #archived .. " bytes")

-- ---- card data never reaches the journal ----
reset()
os.execute("rm -rf " .. runs)
local pin = T:file("pin.lua", [[
pcall(uqpay.request, "POST", "/v1/issuing/cards/pin", { body = { card_id = "66666666-6666-4666-8666-666666666661",
  pin = "918273", card_number = "4111111111111111", cvv = "Z9Z", activation_code = "ACT-55512" } })
-- a card number typed into free text, under a name that says nothing
uqpay.cards.freeze("66666666-6666-4666-8666-666666666661", "customer lost 4000 0566 5566 5556 at the airport")
]])
T:run(sim.env .. UQ .. " " .. pin)
text = ""
for _, name in ipairs(require("uqpay.core").listdir(runs) or {}) do text = text .. T.slurp(runs .. "/" .. name) end
-- a card number given to a script as an argument (an assign by card
-- number): the run's header and --runs show it masked
local argscript = T:file("argpan.lua", [[uqpay.recharge("66666666-6666-4666-8666-666666666661", "1.00")
error("stop: " .. #arg .. " arguments")
]])
T:run(sim.env .. UQ .. " " .. argscript .. " 4111111111111111")
local listed = select(2, T:run(sim.env .. UQ .. " --runs"))
local kept = ""
for _, name in ipairs(require("uqpay.core").listdir(runs) or {}) do kept = kept .. T.slurp(runs .. "/" .. name) end
T:check("a card number among a script's arguments is masked in its journal and in --runs",
  kept:find("************1111", 1, true) ~= nil and not kept:find("4111111111111111", 1, true)
    and listed:find("************1111", 1, true) ~= nil and not listed:find("4111111111111111", 1, true), listed .. kept)
T:check("the journal holds no PIN, card number, CVV or activation code", text:find('"t":"intent"', 1, true) ~= nil
  and not text:find("918273", 1, true) and not text:find("4111111111111111", 1, true)
  and not text:find("Z9Z", 1, true) and not text:find("ACT%-55512")
  and text:find("update_reason", 1, true) ~= nil and not text:find("4000 0566 5566 5556", 1, true), text)

-- The same command spelt differently (./one.csv) is another run. When the
-- first was interrupted with a write in doubt, the second would send that
-- write again with a new key: it is refused, names the run, and starts
-- only after the first is settled or with --fresh.
reset()
os.execute("rm -rf " .. runs)
local onecsv = T:file("onecsv.csv", "card_id,amount\n66666666-6666-4666-8666-666666666661,100.00\n")
H.faults("fail_after:next=1:path=/v1/issuing/cards/*/recharge", base)
local env = sim.env .. "UQLUA_NO_PROGRESS=1 "
local c1 = T:run(env .. "UQLUA_MAX_ATTEMPTS=1 " .. UQ .. " bulk-recharge " .. onecsv)
local dotted = onecsv:gsub("/onecsv%.csv$", "/./onecsv.csv")
local c2, _, e2 = T:run(env .. UQ .. " bulk-recharge " .. dotted)
T:check("a new run beside an interrupted run of the same script with a write in doubt is refused (exit 2)",
  c1 == 3 and c2 == 2 and #state().applied == 1 and e2:find("not settled", 1, true) ~= nil
    and e2:find("1 write(s) not settled: ops:bulk-recharge " .. onecsv, 1, true) ~= nil, e2)
local c3 = T:run(env .. UQ .. " bulk-recharge " .. onecsv)
T:check("...the same command resumes it and sends the write with its own key (applied once)",
  c3 == 0 and #state().applied == 1, tostring(c3))
local c4 = T:run(env .. UQ .. " bulk-recharge " .. dotted)
T:check("...and once it is settled, the other spelling is a new run", c4 == 0 and #state().applied == 2, tostring(c4))
H.faults("fail_after:next=1:path=/v1/issuing/cards/*/recharge", base)
T:run(env .. "UQLUA_MAX_ATTEMPTS=1 " .. UQ .. " bulk-recharge " .. onecsv)
local c5 = T:run(env .. UQ .. " --fresh bulk-recharge " .. dotted)
T:check("--fresh starts the new run anyway", c5 == 0 and #state().applied == 4, tostring(c5))
local c6, _, e6 = T:run(env .. UQ .. " bulk-recharge " .. dotted)
local settle = e6:match("`uqlua (reconcile %x+ %-%-settle)`")
local rid = e6:match("run (%x+): 1 write")
local _, shown = T:run(env .. UQ .. " --run " .. tostring(rid))
T:check("--run ID shows that run, not an archive whose name starts with its id",
  rid and shown:find("run " .. rid .. "  interrupted", 1, true) ~= nil, shown)
local c7 = settle and T:run(env .. UQ .. " " .. settle)
local c8, _, e8 = T:run(env .. UQ .. " bulk-recharge " .. dotted)
T:check("...the refusal's own reconcile command settles that run (same key, applied once), and the next run starts",
  c6 == 2 and c7 == 0 and c8 == 0 and #state().applied == 5, table.concat({ c6, tostring(c7), c8, #state().applied }, " ") .. e6 .. e8)

T:stop(sim)
T:finish()
