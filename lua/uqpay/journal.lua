-- The run journal (SPEC §5): every write of a run is an operation
-- identified by (method, path, account, canonical body, occurrence number).
-- Before a request's first byte is sent, an intent (operation, key, time) is
-- appended and fdatasync'ed; after the response, an outcome. A run that
-- ends without error is marked complete. A run found incomplete resumes:
--   - operations with a success recorded return it without sending anything;
--   - open intents are sent again with the same idempotency key, unless
--     older than 24 hours: then reconcile_required names them;
--   - a definitive failure (4xx) applied nothing: it is sent as a new
--     operation with a new key (the old key would only replay the failure).
-- Lines are "<checksum> <json>\n"; a torn last line is ignored and cut off.
-- The journal never holds a token, an API key or a client id.
-- Reading run journals, for people: `uqlua --runs` and `uqlua --run ID`,
-- and J.parse for tests. Writing them is the C core's (src/journal.c,
-- src/operation.c) under uqpay.run. Record kinds, one checksummed JSON
-- line each: run (identity, salt), intent, outcome (applied | rejected |
-- in_doubt | unsent), resume, unrepeated, complete.
local core = require "uqpay.core"
local json = require "uqpay.json"
local E = require "uqpay.errors"
local Run = require "uqpay.run"
local R = require "uqpay.redact"

local J = {}

-- Reads a journal file: records, the byte length of its good prefix, and
-- whether a torn tail was found. A bad line before good ones is corruption.
function J.parse(path)
  -- not io.open: closing a descriptor of this process's own open journal
  -- would drop its lock (core.journal_read reads through the journal's)
  local text = core.journal_read(path)
  if not text then return nil end
  local records, good, pos, torn = {}, 0, 1, false
  local line_no = 0
  while pos <= #text do
    if text:byte(pos) == 0 then break end -- the zero-filled room written ahead
    local nl = text:find("\n", pos, true)
    local line = text:sub(pos, (nl or #text + 1) - 1)
    line_no = line_no + 1
    local sum, body = line:match("^(%x+) (.*)$")
    local ok, rec = false, nil
    if nl and sum and core.checksum(body) == sum then ok, rec = pcall(json.decode, body, { money = false }) end
    if not ok or type(rec) ~= "table" then
      -- a line holding a zero byte was never completely written (a crash)
      if nl and text:find("\n", nl + 1, true) and not line:find("\0", 1, true) then
        E.config(string.format("run journal %s is damaged at line %d", path, line_no))
      end
      torn = true
      break
    end
    -- numbered from the header on (journals from before numbering are
    -- not): a gap is a line deleted or moved by hand
    if records[1] and records[1].n == 1 and rec.n ~= #records + 1 then
      E.config(string.format("run journal %s is damaged at line %d: it is record %s where record %d belongs " ..
        "(a line was deleted or moved)", path, line_no, tostring(rec.n), #records + 1))
    end
    records[#records + 1] = rec
    good = nl
    pos = nl + 1
  end
  return records, good, torn
end

-- ---------- --runs and --run ID ----------

-- A journal that cannot be read is listed all the same ("damaged", with
-- why and its header when the first line is good): a resume refuses it, and
-- the operator looks here next.
local function damaged(path, e)
  local head = {}
  local first = (core.journal_read(path) or ""):match("^[^\n]*")
  local sum, body = first:match("^(%x+) (.*)$")
  if sum and core.checksum(body) == sum then
    local ok, rec = pcall(json.decode, body, { money = false })
    if ok and type(rec) == "table" then head = rec end
  end
  return { path = path, head = head, state = "damaged", error = type(e) == "table" and e.message or tostring(e),
           ops = {}, slots = {}, done = 0, failed = 0, open = 0 }
end

-- The pid of the process running the run in path (holding its journal's
-- lock), or nil.
local function running(path)
  local ok, j = pcall(core.journal_open, path, "", true)
  if not ok then return nil end
  local pid = j:holder()
  j:close()
  return pid
end

local function summarize(path)
  local ok, records = pcall(J.parse, path)
  if not ok then return damaged(path, records) end
  if not records or #records == 0 then return nil end
  local s = { path = path, head = records[1], state = "interrupted", ops = {}, slots = {} }
  for _, r in ipairs(records) do
    local slot = r.op and (r.op .. "#" .. tostring(r.occ))
    if r.t == "intent" then
      local op = s.slots[slot]
      if not op then
        op = {}
        s.slots[slot] = op
        s.ops[#s.ops + 1] = op
      end
      op.method, op.path, op.obo, op.occ, op.key, op.ts, op.body = r.method, r.path, r.obo, r.occ, r.key, r.ts, r.body
      op.id = r.op
      op.state, op.status = "in_doubt", nil
    elseif r.t == "outcome" and s.slots[slot] then
      s.slots[slot].state, s.slots[slot].status = r.state, r.status
    elseif r.t == "unrepeated" and s.slots[slot] then
      s.slots[slot].unrepeated = true
    elseif r.t == "complete" then
      s.state = "complete"
    elseif r.t == "resume" then
      s.state = "interrupted"
    end
  end
  s.done, s.failed, s.open = 0, 0, 0
  for _, op in ipairs(s.ops) do
    if op.state == "rejected" then s.failed = s.failed + 1
    elseif op.state == "applied" then s.done = s.done + 1
    else s.open = s.open + 1 end
  end
  if s.state == "interrupted" then
    s.pid = running(path)
    if s.pid then s.state = "running" end
  end
  return s
end

local SHOWN = { applied = "done", rejected = "failed", in_doubt = "OUTCOME UNKNOWN", unsent = "not sent" }

local function op_state(op)
  if op.unrepeated then return "applied earlier, not repeated" end
  local st = SHOWN[op.state] or op.state
  if op.status and op.status > 0 then st = st .. " " .. op.status end
  return st
end

local function amount(op)
  local a = Run.amount_of(op)
  return a ~= nil and tostring(a) or nil
end

J.summary = summarize

local function all_runs()
  local dir = Run.runs_dir(core.host_options().noenv)
  local runs = {}
  for _, name in ipairs(core.listdir(dir) or {}) do
    if name:match("%.journal$") then
      local s = summarize(dir .. "/" .. name)
      if s then
        s.id = name:gsub("%.journal$", "")
        if s.id:match("%.abandoned$") then s.state = "abandoned" end
        s.archived = s.id:match("%.done$") ~= nil or s.id:match("%.abandoned$") ~= nil
        s.id = s.id:gsub("%.done$", ""):gsub("%.abandoned$", "")
        runs[#runs + 1] = s
      end
    end
  end
  table.sort(runs, function(a, b) return (a.head.started or "") > (b.head.started or "") end)
  return runs, dir
end

-- Every run in the runs directory, newest first: {id, state, path, head, ops, ...}.
function J.runs() return (all_runs()) end

-- The run an id (or a prefix of one) names, for --run and reconcile. An
-- archive's id is its run's id with a time and a suffix, so a run's id is
-- also a prefix of its archives': the exact id wins, then the one run not
-- archived, then the one run at all; several is a usage error naming them.
-- skip(r) leaves a run out (reconcile's own runs); runs is J.runs() when
-- the caller has it already.
function J.find_run(id, field, skip, runs)
  local all = {}
  for _, r in ipairs(runs or all_runs()) do
    if r.id:sub(1, #id) == id and not (skip and skip(r)) then all[#all + 1] = r end
  end
  local live = {}
  for _, r in ipairs(all) do
    if r.id == id then return r end
    if not r.archived then live[#live + 1] = r end
  end
  if #live == 1 then return live[1] end
  if #all == 1 then return all[1] end
  if #all == 0 then
    E.raise { kind = "usage", field = field, value = id, message = "no run " .. id .. " (see uqlua --runs)" }
  end
  local ids = {}
  for i = 1, math.min(#all, 5) do ids[i] = all[i].id end
  E.raise { kind = "usage", field = field, value = id, message = "run " .. id .. " is ambiguous: it starts " ..
    table.concat(ids, ", ") .. (#all > 5 and ", ..." or "") .. " (see uqlua --runs)" }
end

-- A run's arguments as text, redacted (journals written before they were
-- kept redacted hold them as given).
local function shown_args(head) return R.text(table.concat(head.args or {}, " ")) end

function J.list_runs()
  local runs, dir = all_runs()
  if require("uqpay.jsonout").enabled() then
    for i = 1, math.min(#runs, 30) do
      local r = runs[i]
      require("uqpay.jsonout").emit { run = { id = r.id, state = r.state, started = r.head.started,
        script = r.head.script, args = r.head.args, env = r.head.env, account = r.head.account,
        done = r.done, failed = r.failed, open = r.open, journal = r.path, pid = r.pid, error = r.error } }
    end
    return
  end
  if #runs == 0 then print("no runs in " .. dir) return end
  print(string.format("%-34s %-12s %-20s %5s %5s %5s  %s", "RUN", "STATE", "STARTED", "DONE", "FAIL", "OPEN", "SCRIPT"))
  for i = 1, math.min(#runs, 30) do
    local r = runs[i]
    print(string.format("%-34s %-12s %-20s %5d %5d %5d  %s %s", r.id, r.state, r.head.started or "?", r.done, r.failed,
      r.open, r.head.script or "?", shown_args(r.head)))
  end
end

function J.show_run(id)
  if not id or id == "" then E.usage("--run", id, "needs a run id (see uqlua --runs)") end
  local r = J.find_run(id, "--run")
  if require("uqpay.jsonout").enabled() then
    local ops = json.array {}
    for i, op in ipairs(r.ops) do
      ops[i] = { method = op.method, path = op.path, on_behalf_of = op.obo ~= "" and op.obo or nil,
                 idempotency_key = op.key, sent = op.ts and os.date("!%Y-%m-%dT%H:%M:%SZ", op.ts) or nil,
                 status = op.status ~= 0 and op.status or nil, amount = amount(op),
                 state = op.unrepeated and "applied_not_repeated" or op.state }
    end
    require("uqpay.jsonout").emit { run = { id = r.id, state = r.state, started = r.head.started,
      script = r.head.script, args = r.head.args, env = r.head.env, account = r.head.account, journal = r.path,
      pid = r.pid, error = r.error, operations = ops } }
    return
  end
  print(string.format("run %s  %s\nscript  %s %s\nenv     %s, account %s\nstarted %s\njournal %s",
    r.id, r.state .. (r.pid and (" (pid " .. r.pid .. ")") or ""), r.head.script or "?", shown_args(r.head),
    r.head.env or "?", r.head.account or "?", r.head.started or "?", r.path))
  if r.error then
    print(r.error .. " (a run of the same command with --fresh sets it aside)")
    return
  end
  print(string.format("%d operations: %d done, %d failed, %d outcome unknown", #r.ops, r.done, r.failed, r.open))
  for i, op in ipairs(r.ops) do
    local a = amount(op)
    print(string.format("%4d  %-16s %s %s%s  key %s  %s", i, op_state(op), op.method, op.path,
      a and ("  amount " .. tostring(a)) or "", op.key, op.ts and os.date("!%Y-%m-%dT%H:%M:%SZ", op.ts) or "?"))
  end
end

return J
