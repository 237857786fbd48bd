-- Dry runs that tell the truth (#12): with a standalone simulator standing
-- in for the real API, the examples and every bundled ops script run under
-- --dry-run exactly as they do for real (same exit code, same output apart
-- from the plan and the marks), the stand-in's ledger shows no write and
-- its request log only reads, and a script that would overdraw an account
-- fails under --dry-run at the same operation with the same error.
--   uqlua tests/integration/dryrun.lua UQLUA
local UQ = assert(arg[1], "usage: dryrun.lua UQLUA")
local T = require("tests.helpers.proc").new(UQ)
local H = require "tests.helpers.sim"

local sim = T:serve()
local base = sim.base
local function uq(rest) return sim.env .. "UQLUA_NO_PROGRESS=1 " .. UQ .. " " .. rest end

-- What may differ between two runs: generated ids and keys, times, run ids.
local function normal(s)
  s = s:gsub("%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x", "<id>")
  s = s:gsub("%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d[%+Z][%d:]*", "<time>")
  s = s:gsub("run %x+", "run <run>")
  return s
end

-- The stand-in was only read from: GETs, the token, Retrieve Issuing Balance.
local function only_reads(st)
  for _, r in ipairs(st.requests or {}) do
    if not (r:match("^GET ") or r == "POST /v1/connect/token" or r == "POST /v1/issuing/balances") then return false, r end
  end
  return true
end

local function compare(name, args)
  H.reset(base)
  os.execute("rm -rf " .. T.dir .. "/state")
  local dcode, dout, derr = T:run(uq("--dry-run " .. args))
  local st = H.state(base)
  local reads, bad = only_reads(st)
  T:check(name .. ": --dry-run applies nothing and only reads", #st.applied == 0 and reads,
    tostring(bad) .. "\n" .. derr)
  H.reset(base)
  os.execute("rm -rf " .. T.dir .. "/state")
  local rcode, rout, rerr = T:run(uq(args))
  T:check(string.format("%s: --dry-run exits as the real run (%d) with the same output", name, rcode),
    dcode == rcode and normal(dout) == normal(rout),
    string.format("dry run exit %d:\n%s\n%s\nreal run exit %d:\n%s\n%s", dcode, dout, derr, rcode, rout, rerr))
  return derr, rerr
end

-- the three examples
compare("examples/fund-and-recharge.lua", "examples/fund-and-recharge.lua")
compare("examples/bulk-recharge.lua", "examples/bulk-recharge.lua examples/cards.csv")
local derr = compare("examples/sweep-cards.lua", "examples/sweep-cards.lua 5")
T:check("sweep-cards.lua: under --dry-run the balances move as the plan says", derr:find("money moved: SGD 195%.00, USD 495%.00") ~= nil,
  derr)

-- every bundled ops script
compare("balance-report", "balance-report --sub-accounts --banking --format csv")
compare("fund-subaccounts", "fund-subaccounts --target 1500 --currency USD")
compare("bulk-recharge", "bulk-recharge examples/recharges.csv")
compare("sweep-cards", "sweep-cards --all --keep 10")
compare("freeze-cards", "freeze-cards freeze --status ACTIVE --reason audit")
compare("card-report", "card-report --format csv")
compare("reconcile", "reconcile")

-- an overdraw fails at the same operation with the same error
local over = T:file("over.lua", string.format([[
local MASTER, SUB = "%s", "%s"
for i = 1, 3 do
  local t = uqpay.transfer { source_account_id = SUB, destination_account_id = MASTER, currency = "USD", amount = "100.00" }
  print("transfer " .. i .. " " .. uqpay.wait(t, { on_behalf_of = SUB }).transfer_status)
end
]], H.MASTER, H.SUB2))
local d, r = compare("an overdraw of a sub-account", over)
local function failure(s) return s:match("uqpay api error: [^\n]*") end
T:check("...fails under --dry-run at the same operation with the same error", failure(d) ~= nil
  and normal(failure(d)) == normal(failure(r)) and d:find("the real run would fail at write 3: POST /v1/issuing/transfers") ~= nil,
  d .. "\n---\n" .. r)

-- Reads the twin does not model come from the real API (#13 added families
-- the twin knows nothing about: it answered them from the simulator's demo
-- data), with what the dry run created added to lists.
local families = T:file("families.lua", [[
local function names(list, field)
  local out = {}
  for _, x in ipairs(list) do out[#out + 1] = tostring(x[field]) end
  table.sort(out)
  return table.concat(out, " ")
end
print("beneficiaries " .. names(uqpay.banking.beneficiaries.list(), "short_reference_id"))
local addr = { street_address = "1 Quay", city = "Singapore", state = "Singapore", postal_code = "049315", country = "SG" }
local bank = { bank_name = "Example Bank", bank_address = "1 Quay", bank_country_code = "SG",
  account_holder = "Harbour Supplies", account_currency_code = "USD", account_number = "0123456789",
  swift_code = "EXMPSGSG", clearing_system = "SWIFT" }
local b = uqpay.banking.beneficiaries.create { entity_type = "COMPANY", company_name = "Harbour Supplies",
  payment_method = "SWIFT", bank_details = bank, address = addr }
print("after create " .. #uqpay.banking.beneficiaries.list())
print("get " .. uqpay.banking.beneficiaries.get(b.beneficiary_id).company_name)
print("brands " .. names(uqpay.merchant_brands.list(), "display_name"))
local bulk = uqpay.cards.bulk_create { card_bin = "40963609", numbers = 2 }
local csv = uqpay.reports.download(bulk.report_id)
local a = uqpay.cards.assign { cardholder_id = "]] .. H.HOLDER1 .. [[", card_number = csv:match("\n(%d+),"),
  card_currency = "USD", card_mode = "SHARE" }
print("bulk card " .. a.card_status .. " " .. a.order_status .. " " .. select(2, csv:gsub("\n", "")) .. " lines")
]])
compare("beneficiaries, merchant brands, bulk cards and assign", families)

local _, seed_text = H.sh(UQ .. [[ -e 'local s = require "uqpay.sim.seed"; local c = {}; for k, v in pairs(s) do c[k] = v end
  c.merchant_brands = { { merchant_code = "X1", display_name = "OnlyTheRealOne" } }; io.write(uqpay.json.encode(c))']])
local seeded = T:serve("--seed " .. T:file("brands-seed.json", seed_text))
local brands = T:file("brands.lua", 'for _, b in ipairs(uqpay.merchant_brands.list()) do print(b.display_name) end\n')
local bcode, bout, berr = T:run(seeded.env .. "UQLUA_NO_PROGRESS=1 " .. UQ .. " --dry-run " .. brands)
T:check("--dry-run lists the real account's merchant brands, never the simulator's demo ones",
  bcode == 0 and bout == "OnlyTheRealOne\n", bout .. berr)
T:stop(seeded)

-- --sim --dry-run is a dry run against the in-process simulator
local code, out, err = T:run(UQ .. " --sim --dry-run examples/fund-and-recharge.lua")
T:check("--sim --dry-run runs the demo against a twin of the in-process simulator", code == 0
  and out:find("card balance 420%.30 USD %(expected 420%.30%)") ~= nil and err:find("dry run: 5 write") ~= nil, out .. err)

-- A dry run of an interrupted command plans what running it again would do,
-- and never writes the run's journal: not the plan of a fresh run (it would
-- recharge again what the run applied), and not a settle's answers (the
-- twin's 200 recorded as the real write's outcome, so that the real resume
-- skipped a recharge that was never applied).
H.reset(base)
os.execute("rm -rf " .. T.dir .. "/state")
-- the first card's recharge, whichever of the parallel writes leaves first
H.faults("fail_before:next=1:path=/v1/issuing/cards/66666666-6666-4666-8666-666666666661/recharge", base)
local icode = T:run("UQLUA_MAX_ATTEMPTS=1 " .. uq("bulk-recharge examples/recharges.csv"))
local function journal_bytes()
  local _, list = H.sh("cat " .. T.dir .. "/state/uqlua/runs/*.journal 2>/dev/null | cksum")
  return list
end
local before = journal_bytes()
local code1, out1, err1 = T:run(uq("--dry-run bulk-recharge examples/recharges.csv"))
T:check("a dry run of an interrupted run plans only its write in doubt, with its key, and writes nothing",
  icode == 3 and code1 == 0 and err1:find("dry run: 1 write%(s%) would be sent") ~= nil
    and err1:find("card 66666666%-6666%-4666%-8666%-666666666661 USD: 500%.00 %-> 600%.00") ~= nil
    and err1:find("1 in doubt %(planned with their keys%)") ~= nil and journal_bytes() == before
    and #H.state(base).applied == 2, out1 .. err1)
local code2, out2, err2 = T:run(uq("--dry-run reconcile --settle"))
local _, runs = T:run(uq("--runs"))
T:check("--dry-run reconcile --settle leaves the run's journal as it was",
  code2 == 0 and journal_bytes() == before and runs:find("interrupted +%S+ +2 +0 +1 ") ~= nil, out2 .. err2 .. runs)
local code3, _, err3 = T:run(uq("bulk-recharge examples/recharges.csv"))
local st = H.state(base)
T:check("...and the real resume then sends the write in doubt once", code3 == 0 and #st.applied == 3
  and err3:find("1 sent again") ~= nil, err3)

T:stop(sim)
T:finish()
