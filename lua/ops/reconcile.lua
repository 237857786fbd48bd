-- Compare a run's journal with the server's evidence; --settle resends in-doubt writes with their own keys.
local ops = require "uqpay.ops"
local json = require "uqpay.json"
local J = require "uqpay.journal"
local Run = require "uqpay.run"
local E = uqpay.errors

local p = ops.parser("reconcile", "For a run (default: the latest that did not complete), each write's journal " ..
  "state beside the server's evidence: the card order or transfer it produced, or the balance transactions " ..
  "that match it. Lists matched, missing and unexpected. --settle resends in-doubt writes with their own keys " ..
  "(inside UQPAY's 24-hour replay window) and records the answers in the run's journal.",
  "Exit 0 when everything is settled, 3 when anything is still in doubt.")
p:argument("run", "Run id (or a prefix of one); see uqlua --runs."):args("?")
p:flag("--settle", "Resend in-doubt writes with their own keys and record the answers.")
p:option("--mark", "KEY=applied or KEY=not-applied: what you found when you checked a write in doubt by hand, " ..
  "recorded in the run's journal. A resume then answers it from the journal (applied) or sends it anew with a " ..
  "new key (not-applied). The way on for a write whose key is too old to be sent again."):count("*")
p:option("--despite", "TRANSACTION_ID: a balance transaction you checked is another write's, so a --mark " ..
  "not-applied it matches is recorded all the same."):count("*")
p:option("--format", "table or json (json under uqlua --json).", ops.default_format()):choices { "table", "json" }
local args = p:parse(arg)

local function mine(r) -- reconcile's own runs
  return r.id == Run.id() or (r.head.script or ""):match("^ops:reconcile") ~= nil
end
local runs = J.runs() -- every journal read once: to find the run, and for the evidence of the others
local run
if args.run then
  run = J.find_run(args.run, "run", mine, runs)
else
  for _, r in ipairs(runs) do
    if not mine(r) and r.state == "interrupted" and not r.archived then
      run = r
      break
    end
  end
  if not run then
    E.raise { kind = "usage", field = "run", message = "no run that did not complete (see uqlua --runs)" }
  end
end
if run.state == "damaged" then -- nothing in it can be trusted to compare, nor recorded after it
  E.raise { kind = "config", field = "run", value = run.id, message = run.error .. ": it cannot be reconciled " ..
    "(the same command with --fresh sets it aside; uqlua --run " .. run.id .. " shows its header)" }
end

local amount_of = Run.amount_of
local function opts_of(op) return op.obo ~= "" and { on_behalf_of = op.obo } or nil end

-- A write whose body held card data: the journal keeps it redacted, so it
-- cannot be sent again from there.
local function held_card_data(op) return (op.body or ""):find("[REDACTED]", 1, true) ~= nil end

-- Evidence: the object an applied write produced, or balance transactions that match one in doubt.
local txns, txn_used = {}, {}
local unread = {} -- account -> why its balance transactions could not be read
local function balance_txns(obo)
  local k = obo or ""
  if not txns[k] then
    txns[k] = {}
    local ok, e = pcall(function()
      for t in uqpay.balance_transactions({}, obo and { on_behalf_of = obo } or nil) do txns[k][#txns[k] + 1] = t end
    end)
    if not ok then txns[k], unread[k] = {}, e end
  end
  return txns[k], unread[k]
end
local function iso_ts(s)
  local y, mo, d, h, mi, se = tostring(s):match("^(%d+)%-(%d+)%-(%d+)T(%d+):(%d+):(%d+)")
  if not y then return 0 end
  return os.time { year = y, month = mo, day = d, hour = h, min = mi, sec = se }
end
local WANT = { recharge = "CARD_RECHARGE", withdraw = "CARD_WITHDRAW", transfers = "TRANSFER_OUT" }
-- The unclaimed balance transaction nearest in time (from 120 s before the
-- write on) of the write's kind, amount and card; it is claimed. nil and
-- why when the account's transactions could not be read.
local function match_txn(op)
  local kind = op.path:match("^/v1/issuing/cards/[^/]+/(%a+)$") or op.path:match("^/v1/issuing/(transfers)$")
  local want, amount = WANT[kind or ""], amount_of(op)
  if not want or not amount then return nil end
  local card = op.path:match("^/v1/issuing/cards/([^/]+)/")
  local ts, best, best_key, best_d = op.ts or 0, nil, nil, math.huge
  local list, why = balance_txns(op.obo ~= "" and op.obo or nil)
  if why then return nil, why end
  for i, t in ipairs(list) do
    local key, at = (op.obo or "") .. "#" .. i, iso_ts(t.create_time)
    if not txn_used[key] and t.transaction_type == want and tostring(t.amount) == tostring(amount)
        and (not card or tostring(t.description):find(card, 1, true)) and at >= ts - 120 and math.abs(at - ts) < best_d then
      best, best_key, best_d = t, key, math.abs(at - ts)
    end
  end
  if best then txn_used[best_key] = true end
  return best
end

-- --mark: every KEY=applied|not-applied names a write of the run not
-- settled, once, checked before anything is recorded
local MARKS = { applied = "applied", ["not-applied"] = "rejected" }
local marks, open_ops = {}, {}
for _, op in ipairs(run.ops) do
  if op.state == "in_doubt" or op.state == "unsent" then open_ops[op.key] = op end
end
for _, m in ipairs(args.mark) do
  local key, what = m:match("^([^=]+)=(.*)$")
  if not key or not MARKS[what] then E.usage("--mark", m, "is not KEY=applied or KEY=not-applied") end
  local op = open_ops[key]
  if not op then
    E.usage("--mark", m, "names no write of run " .. run.id .. " that is in doubt or not sent (see uqlua --run " ..
      run.id .. ")")
  end
  if marks[key] then E.usage("--mark", m, "marks " .. key .. " a second time") end
  -- while UQPAY still keeps the key, the server can say: marked not applied
  -- and sent anew under a new key, a write that was applied would apply twice
  local left = Run.key_life_left(op.ts or 0)
  if what == "not-applied" and left >= 0 and not held_card_data(op) then
    E.usage("--mark", m, "is early: its key is still good for " .. math.ceil(left / 3600) .. " hour(s), so " ..
      "--settle can ask the server with it; not applied is for a write whose key is too old")
  end
  marks[key] = what
end

-- Applied writes claim their balance transactions first, oldest first,
-- so that one in doubt is never matched with a movement another write
-- explains: this run's, and those of every other run in the runs
-- directory on the same server, on the accounts this run used. state_of
-- says what a write of this run is now (after --settle and --mark).
local function claim_applied(state_of)
  local accounts, applied = {}, {}
  for _, op in ipairs(run.ops) do
    accounts[op.obo or ""] = true
    if state_of(op) == "applied" then applied[#applied + 1] = op end
  end
  local this = run.head.identity or run.head
  for _, r in ipairs(runs) do
    local made = r.head.identity or r.head
    if r.path ~= run.path and made.env == this.env and made.base_url == this.base_url then
      for _, op in ipairs(r.ops) do
        if op.state == "applied" and accounts[op.obo or ""] then applied[#applied + 1] = op end
      end
    end
  end
  table.sort(applied, function(a, b) return (a.ts or 0) < (b.ts or 0) end)
  local claimed = {}
  for _, op in ipairs(applied) do claimed[op] = match_txn(op) or false end
  return claimed
end

-- Not applied, said of a write a balance transaction matches, would send
-- it anew and apply it twice: refused unless the person names that
-- transaction as another's (--despite). Nothing is claimed for good here.
local despite = {}
for _, t in ipairs(args.despite) do despite[t] = true end
if next(marks) then
  claim_applied(function(op) return op.state end)
  for _, op in ipairs(run.ops) do
    local t, why
    if marks[op.key] == "not-applied" then t, why = match_txn(op) end
    if why then
      E.raise { kind = "api", message = "--mark " .. op.key .. "=not-applied: the balance transactions that would " ..
        "show whether it was applied cannot be read, so nothing was recorded: " .. tostring(why) }
    end
    if t and not despite[tostring(t.transaction_id)] then
      E.usage("--mark", op.key .. "=not-applied", string.format("is refused: balance transaction %s (%s %s at %s) " ..
        "matches this write, so it was probably applied. Check it: --mark %s=applied if it is this write's, or add " ..
        "--despite %s if it is another's", tostring(t.transaction_id), tostring(t.transaction_type),
        tostring(t.amount), tostring(t.create_time), op.key, tostring(t.transaction_id)))
    end
  end
  txn_used = {}
end
local dry = require("uqpay.config").active().dry_run
if (args.settle or next(marks)) and run.archived then
  E.config("run " .. run.id .. " is an archive (" .. run.state .. "): its writes were finished or set aside, " ..
    "and a --fresh run may have sent them anew; --settle and --mark act on a live run only")
end

-- --mark and --settle first: what they record is the best evidence there is
local settled = {}
if args.settle or next(marks) then
  local client = args.settle and require("uqpay.session").client()
  -- a run's keys are only good where they were used: sent to another
  -- environment or server, the same key applies the write again there
  local made, here = run.head.identity or run.head, client and client.cfg
  if here and (made.env ~= here.env or made.base_url ~= here.base_url) then
    E.config(string.format("run %s was made on %s (%s); this is %s (%s): --settle sends its writes only where " ..
      "they were made", run.id, tostring(made.env), tostring(made.base_url), tostring(here.env), tostring(here.base_url)))
  end
  local j = Run.open_existing(run.path)
  -- each write as the journal knows it (its id and occurrence): its body
  -- there is redacted, so its identity cannot be made again from it
  for _, r in ipairs(run.ops) do
    if open_ops[r.key] == r then
      local op = j:op_at(r.method, r.path, r.obo or "", r.body or "", r.id, r.occ)
      local info = op:info()
      local mark = marks[r.key]
      local open = info.state == "in_doubt" or info.state == "intent"
      if not open or info.key ~= r.key then
        settled[r.key] = { state = r.state, note = "the journal's records of it disagree: check it by hand" }
      elseif mark then
        if dry then
          settled[r.key] = { state = r.state, note = "--dry-run: would be marked " .. mark }
        else
          op:mark(MARKS[mark])
          settled[r.key] = { state = op:info().state, note = "marked " .. mark .. " by hand" }
        end
      elseif args.settle then
        local why
        if held_card_data(r) then
          why = "its body held card data the journal does not keep: check it by hand, then --mark " .. r.key ..
            "=applied or =not-applied"
        elseif Run.key_life_left(info.ts) < 0 then
          why = "its key is too old to be sent again: check it by hand, then --mark " .. r.key ..
            "=applied or =not-applied"
        end
        if why then
          settled[r.key] = { state = r.state, note = why }
        else
          local spec = { method = r.method, path = r.path, body_text = r.body, effect = "write",
                         on_behalf_of = r.obo ~= "" and r.obo or false }
          client:confirm_production(spec, r.obo ~= "" and r.obo or nil)
          local ok, e = pcall(client.call, client, spec, op, info.ts)
          -- the operation says where it stands now: an error that never
          -- reached the server (no token, say) leaves it as it was
          settled[r.key] = { state = op:info().state, note = ok and "settled: applied" or ("settle: " .. tostring(e)) }
        end
      end
    end
  end
  j:close()
  local id = run.id
  run = J.summary(run.path)
  run.id = id
end

local function evidence(op, response)
  local ok, res = pcall(json.decode, response or "")
  res = ok and type(res) == "table" and res or {}
  local o = opts_of(op)
  if res.card_order_id then
    local got, order = pcall(uqpay.cards.order, res.card_order_id, o)
    return got and ("card order " .. res.card_order_id .. " " .. tostring(order.order_status)) or nil
  elseif res.transfer_id then
    local get = op.path:find("^/v1/transfer") and uqpay.banking.transfers.get or uqpay.transfers.get
    local got, t = pcall(get, res.transfer_id, o)
    return got and ("transfer " .. res.transfer_id .. " " .. tostring(t.transfer_status)) or nil
  end
  return nil
end

local records = J.parse(run.path)
local responses = {}
for _, r in ipairs(records) do if r.t == "outcome" and r.state == "applied" then responses[r.key] = r.body end end

local function state_of(op) return (settled[op.key] or {}).state or op.state end
local claimed = claim_applied(state_of)
local order = {}
for i, op in ipairs(run.ops) do
  if state_of(op) == "applied" then order[#order + 1] = i end
end
for i, op in ipairs(run.ops) do
  if state_of(op) ~= "applied" then order[#order + 1] = i end
end

local rows, in_doubt, counts = {}, 0, { matched = 0, missing = 0, unexpected = 0 }
local touched = {}
for _, i in ipairs(order) do
  local op = run.ops[i]
  touched[op.path:match("^/v1/issuing/cards/([^/]+)/") or ""] = true
  local state = state_of(op)
  local check, note
  if state == "applied" then
    local ev = evidence(op, responses[op.key])
    local t = claimed[op]
    if op.status == 0 then -- a person's mark, not a server's answer
      check, note = "marked", "marked applied by hand" .. (t and ("; balance transaction " .. t.transaction_id ..
        " matches") or "; no trace found on the server")
    elseif ev or t then
      check, note = "matched", ev or ("balance transaction " .. t.transaction_id)
    elseif responses[op.key] and (responses[op.key]:find("card_order_id", 1, true) or responses[op.key]:find("transfer_id", 1, true)) then
      check, note = "missing", "the server does not show what the journal recorded"
    else
      check, note = "matched", "recorded answer " .. (op.status and ("HTTP " .. op.status) or "")
    end
  elseif state == "in_doubt" or state == "unsent" or state == "intent" then
    in_doubt = in_doubt + 1
    local t = match_txn(op)
    check = "in doubt"
    note = t and ("possibly applied: balance transaction " .. t.transaction_id .. " matches") or
      "no trace found on the server"
    if settled[op.key] then note = settled[op.key].note .. "; " .. note end
  elseif op.status == 0 then
    check, note = "marked", "marked not applied by hand: the next run sends it anew with a new key"
  else
    check, note = "rejected", "applied nothing"
  end
  if check == "matched" or check == "missing" then counts[check] = counts[check] + 1 end
  rows[i] = { n = i, journal = state, check = check, method = op.method, path = op.path,
              amount = amount_of(op), key = op.key, note = note }
end

-- Card movements on the run's cards, in the run's window, that no write of
-- its journal explains.
local started = iso_ts(run.head.started)
local unexpected = {}
for k, list in pairs(txns) do
  for i, t in ipairs(list) do
    local on_card = tostring(t.description):match("^Card %a+ ([%x%-]+)$")
    if not txn_used[k .. "#" .. i] and iso_ts(t.create_time) >= started and on_card and touched[on_card]
        and WANT[t.transaction_type:lower():match("card_(%a+)") or ""] then
      unexpected[#unexpected + 1] = { transaction_id = t.transaction_id, type = t.transaction_type, amount = t.amount,
                                      time = t.create_time, note = t.description }
    end
  end
end
counts.unexpected = #unexpected

if args.format == "json" then
  for _, r in ipairs(rows) do require("uqpay.jsonout").emit { operation = r } end
  for _, u in ipairs(unexpected) do require("uqpay.jsonout").emit { unexpected = u } end
  require("uqpay.jsonout").emit { summary = { run = run.id, operations = #rows, matched = counts.matched,
    missing = counts.missing, in_doubt = in_doubt, unexpected = counts.unexpected } }
else
  print(string.format("run %s  %s  %s", run.id, run.state, run.head.script or "?"))
  if #rows > 0 then
    print(ops.table(rows, { "n", "journal", "check", "method", "path", "amount", "key", "note" }))
  end
  if #unexpected > 0 then
    print("\nnot in this run's journal:")
    print(ops.table(unexpected, { "transaction_id", "type", "amount", "time", "note" }))
  end
end
io.stderr:write(string.format("reconcile %s: %d operations, %d matched, %d missing, %d in doubt, %d unexpected\n",
  run.id, #rows, counts.matched, counts.missing, in_doubt, counts.unexpected))
os.exit(in_doubt > 0 and 3 or 0)
