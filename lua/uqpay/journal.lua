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
local core = require "uqpay.core"
local json = require "uqpay.json"
local E = require "uqpay.errors"
local C = require "uqpay.config"
local Parallel = require "uqpay.parallel"

local J = {}
J.__index = J

local DAY_S = 24 * 3600

-- Tests move the clock with UQLUA_CLOCK_OFFSET_S (seconds added to now).
local function now()
  return core.now() + (tonumber(os.getenv("UQLUA_CLOCK_OFFSET_S") or "") or 0)
end

local function stamp(t) return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t)) end

function J.runs_dir(noenv) return C.state_dir(noenv) .. "/runs" end

-- Reads a journal file: records, the byte length of its good prefix, and
-- whether a torn tail was found. A bad line before good ones is corruption.
function J.parse(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  local records, good, pos, torn = {}, 0, 1, false
  local line_no = 0
  while pos <= #text do
    local nl = text:find("\n", pos, true)
    local line = text:sub(pos, (nl or #text + 1) - 1)
    line_no = line_no + 1
    local sum, body = line:match("^(%x+) (.*)$")
    local ok, rec = false, nil
    if nl and sum and core.checksum(body) == sum then ok, rec = pcall(json.decode, body, { money = false }) end
    if not ok or type(rec) ~= "table" then
      if nl and text:find("\n", nl + 1, true) then
        E.config(string.format("run journal %s is damaged at line %d; inspect it, or start over with --fresh",
          path, line_no))
      end
      torn = true
      break
    end
    records[#records + 1] = rec
    good = nl
    pos = nl + 1
  end
  return records, good, torn
end

-- The run's identity: script, arguments, environment, account and client,
-- hashed so that no client id lands on disk.
function J.identity(cfg, opts)
  local script = opts.bundled and ("ops:" .. opts.script) or (core.realpath(opts.script) or opts.script)
  local id = core.hmac_sha512_hex("uqlua-run", json.encode {
    script = script, args = json.array(opts.script_args or {}), env = cfg.env, base_url = cfg.base_url,
    account = cfg.on_behalf_of or "", client = cfg.client_id or "" })
  return id:sub(1, 16), script
end

local function op_line(op)
  return string.format("%s %s%s (occurrence %d, key %s)", op.method, op.path,
    op.obo ~= "" and (" on behalf of " .. op.obo) or "", op.occ, op.key)
end

-- Opens (or resumes) the journal of this invocation; nil when the run is
-- not journaled (no script and no --journal, or --no-journal).
function J.open(cfg)
  local opts = core.host_options()
  if opts.no_journal then
    if cfg.env == "production" then
      E.config("--no-journal is refused in production: the journal is what makes a re-run safe")
    end
    return nil
  end
  if not opts.journal and not opts.script then return nil end
  local self = setmetatable({ cfg = cfg, prior = {}, occ = {}, seen = {}, counts = { sent = 0, replayed = 0,
    resent = 0, failed = 0, syncs = 0 }, seq = 0 }, J)
  local run_id, script = "custom", "(command line)"
  if opts.script then run_id, script = J.identity(cfg, opts) end
  local dir = J.runs_dir(cfg.noenv)
  self.path = opts.journal or (dir .. "/" .. run_id .. ".journal")
  if not opts.journal then assert(core.mkdir_private(dir)) end
  self.run_id = run_id
  local ok, records, good, torn = pcall(J.parse, self.path)
  if not ok then
    if not opts.fresh then error(records, 0) end
    records = { {} } -- damaged: --fresh sets it aside all the same
  end
  local resuming = false
  if records and #records > 0 then
    local last = records[#records]
    local archive = self.path:gsub("%.journal$", "") .. "-" .. os.date("!%Y%m%dT%H%M%S", math.floor(now()))
    if last.t == "complete" then
      os.rename(self.path, archive .. ".done.journal")
    elseif opts.fresh then
      os.rename(self.path, archive .. ".abandoned.journal")
      io.stderr:write(string.format("uqlua: --fresh: set aside the interrupted run %s as %s\n", run_id,
        archive .. ".abandoned.journal"))
    else
      resuming = true
    end
  end
  self.file = assert(core.journal_open(self.path))
  if resuming then
    if torn then assert(self.file:truncate(good)) end
    self:load(records)
    local done, open = 0, 0
    for _, op in pairs(self.prior) do
      if op.outcome and op.outcome.status < 400 then done = done + 1 elseif not op.outcome then open = open + 1 end
    end
    io.stderr:write(string.format("uqlua: resuming run %s started %s: %d operations done (answered from the " ..
      "journal), %d in doubt (sent again with their keys)%s\n", run_id, records[1].started or "?", done, open,
      torn and "; a torn last line was ignored" or ""))
    self:append({ t = "resume", time = stamp(now()) }, "now")
  else
    if records and #records == 0 and good == 0 then assert(self.file:truncate(0)) end
    self:append({ t = "run", version = 1, run = run_id, script = script,
                  args = json.array(opts.script_args or {}), env = cfg.env,
                  account = cfg.on_behalf_of or "master", started = stamp(now()) }, "now")
  end
  self.resuming = resuming
  return self
end

-- Appends a record. sync: "now" (fdatasync before returning), "group"
-- (inside uqpay.parallel, the scheduler syncs once before the requests of
-- all items leave; outside it, now), or nil (no sync: an outcome lost in a
-- crash only means the operation is sent again with its key).
function J:append(rec, sync)
  local text = json.encode(rec)
  local grouped = sync == "group" and Parallel.active()
  local now_sync = sync ~= nil and not grouped
  if now_sync then self.counts.syncs = self.counts.syncs + 1 end
  local ok, err = self.file:append(core.checksum(text) .. " " .. text .. "\n", now_sync)
  if not ok then E.raise { kind = "config", message = "cannot write the run journal " .. self.path .. ": " .. tostring(err) } end
  if grouped then Parallel.dirty(self) end
end

function J:sync()
  self.counts.syncs = self.counts.syncs + 1
  local ok, err = self.file:sync()
  if not ok then E.raise { kind = "config", message = "cannot sync the run journal " .. self.path .. ": " .. tostring(err) } end
end

function J:load(records)
  local by_key = {}
  for _, r in ipairs(records) do
    if r.t == "intent" then
      local op = { method = r.method, path = r.path, obo = r.obo, body = r.body, occ = r.occ, key = r.key,
                   time = r.time, ts = r.ts, ident = r.ident }
      self.prior[r.ident .. "#" .. r.occ] = op
      by_key[r.key] = op
    elseif r.t == "outcome" and by_key[r.key] then
      by_key[r.key].outcome = { status = r.status, body = r.body }
    end
  end
end

-- Runs one write through the journal. spec as for Client:call; send(spec)
-- returns decoded, raw.
function J:perform(spec, send, body_text)
  local obo = spec.on_behalf_of
  if obo == nil then obo = self.cfg.on_behalf_of end
  obo = obo or ""
  local ident = spec.method .. " " .. spec.path .. " " .. obo .. " " .. body_text
  local occ = (self.occ[ident] or 0) + 1
  self.occ[ident] = occ
  local slot = ident .. "#" .. occ
  self.seen[slot] = true
  local op = self.prior[slot]
  if op and op.outcome and op.outcome.status < 400 then
    self.counts.replayed = self.counts.replayed + 1
    if spec.raw or op.outcome.body == "" then return spec.raw and op.outcome.body or {} end
    return json.decode(op.outcome.body)
  end
  local key
  if op and not op.outcome then
    local age = now() - (op.ts or 0)
    if age > DAY_S then
      E.raise { kind = "reconcile_required", method = spec.method, path = spec.path, idempotency_key = op.key,
        message = string.format("run %s: %s was sent at %s and its outcome is unknown; its key is older than " ..
          "24 hours, so sending it again could apply it twice. Check the resource, then start over with --fresh",
          self.run_id, op_line(op), op.time) }
    end
    key = op.key
    self.counts.resent = self.counts.resent + 1
  else
    key = spec.key or core.uuid()
    self:append({ t = "intent", ident = ident, occ = occ, method = spec.method, path = spec.path, obo = obo,
                  body = body_text, key = key, time = stamp(now()), ts = math.floor(now()) }, "group")
    self.counts.sent = self.counts.sent + 1
  end
  spec.key = key
  local ok, res, raw = pcall(send, spec)
  if ok then
    self:append { t = "outcome", key = key, status = 200, body = raw, time = stamp(now()) }
    return res
  end
  if E.is(res) and res.kind ~= "reconcile_required" and type(res.status) == "number"
      and res.status >= 400 and res.status < 500 then
    -- rejected: nothing was applied; a re-run tries again with a new key.
    -- (reconcile_required may carry a 409 "processing" status: it stays
    -- open, to be sent again with the same key.)
    self.counts.failed = self.counts.failed + 1
    self:append { t = "outcome", key = key, status = res.status, failed = true, time = stamp(now()) }
  end
  error(res, 0)
end

-- The script ended without error: mark the run complete, unless operations
-- of the interrupted run were never reached again (their outcome stays
-- unknown: reconcile_required).
function J:finish()
  local unresolved = {}
  for slot, op in pairs(self.prior) do
    if not op.outcome and not self.seen[slot] then unresolved[#unresolved + 1] = op end
  end
  table.sort(unresolved, function(a, b) return a.time < b.time end)
  self:append({ t = "complete", time = stamp(now()), sent = self.counts.sent, replayed = self.counts.replayed,
                resent = self.counts.resent, failed = self.counts.failed, syncs = self.counts.syncs,
                unresolved = #unresolved }, "now")
  self.file:close()
  if self.resuming then
    io.stderr:write(string.format("uqlua: run %s complete: %d sent, %d answered from the journal, %d sent again\n",
      self.run_id, self.counts.sent, self.counts.replayed, self.counts.resent))
  end
  if #unresolved > 0 then
    local lines = {}
    for i, op in ipairs(unresolved) do lines[i] = "  " .. op_line(op) .. " sent " .. op.time end
    E.raise { kind = "reconcile_required", message = string.format("run %s finished, but %d operation(s) of the " ..
      "interrupted run were not repeated this time and their outcome is unknown; check them:\n%s",
      self.run_id, #unresolved, table.concat(lines, "\n")) }
  end
end

-- ---------- --runs and --run ID ----------

local function summarize(path)
  local ok, records = pcall(J.parse, path)
  if not ok or not records or #records == 0 then return nil end
  local s = { path = path, head = records[1], state = "interrupted", ops = {}, keys = {} }
  for _, r in ipairs(records) do
    if r.t == "intent" then
      local op = { method = r.method, path = r.path, obo = r.obo, occ = r.occ, key = r.key, time = r.time }
      s.ops[#s.ops + 1] = op
      s.keys[r.key] = op
    elseif r.t == "outcome" and s.keys[r.key] then
      s.keys[r.key].status, s.keys[r.key].failed = r.status, r.failed
    elseif r.t == "complete" then
      s.state = "complete"
    end
  end
  s.done, s.failed, s.open = 0, 0, 0
  for _, op in ipairs(s.ops) do
    if op.failed then s.failed = s.failed + 1 elseif op.status then s.done = s.done + 1 else s.open = s.open + 1 end
  end
  return s
end

local function all_runs()
  local dir = J.runs_dir(core.host_options().noenv)
  local runs = {}
  for _, name in ipairs(core.listdir(dir) or {}) do
    if name:match("%.journal$") then
      local s = summarize(dir .. "/" .. name)
      if s then
        s.id = name:gsub("%.journal$", "")
        if s.id:match("%.abandoned$") then s.state = "abandoned" end
        s.id = s.id:gsub("%.done$", ""):gsub("%.abandoned$", "")
        runs[#runs + 1] = s
      end
    end
  end
  table.sort(runs, function(a, b) return (a.head.started or "") > (b.head.started or "") end)
  return runs, dir
end

function J.list_runs()
  local runs, dir = all_runs()
  if require("uqpay.jsonout").enabled() then
    for i = 1, math.min(#runs, 30) do
      local r = runs[i]
      require("uqpay.jsonout").emit { run = { id = r.id, state = r.state, started = r.head.started,
        script = r.head.script, args = r.head.args, env = r.head.env, account = r.head.account,
        done = r.done, failed = r.failed, open = r.open, journal = r.path } }
    end
    return
  end
  if #runs == 0 then print("no runs in " .. dir) return end
  print(string.format("%-34s %-12s %-20s %5s %5s %5s  %s", "RUN", "STATE", "STARTED", "DONE", "FAIL", "OPEN", "SCRIPT"))
  for i = 1, math.min(#runs, 30) do
    local r = runs[i]
    local args = table.concat(r.head.args or {}, " ")
    print(string.format("%-34s %-12s %-20s %5d %5d %5d  %s %s", r.id, r.state, r.head.started or "?", r.done, r.failed,
      r.open, r.head.script or "?", args))
  end
end

function J.show_run(id)
  if not id or id == "" then E.usage("--run", id, "needs a run id (see uqlua --runs)") end
  local found = {}
  for _, r in ipairs(all_runs()) do
    if r.id:sub(1, #id) == id then found[#found + 1] = r end
  end
  if #found == 0 then E.raise { kind = "usage", field = "--run", value = id, message = "no run " .. id .. " (see uqlua --runs)" } end
  local r = found[1]
  if require("uqpay.jsonout").enabled() then
    local ops = json.array {}
    for i, op in ipairs(r.ops) do
      ops[i] = { method = op.method, path = op.path, on_behalf_of = op.obo ~= "" and op.obo or nil,
                 idempotency_key = op.key, sent = op.time, status = op.status,
                 state = op.failed and "failed" or (op.status and "done" or "unknown") }
    end
    require("uqpay.jsonout").emit { run = { id = r.id, state = r.state, started = r.head.started,
      script = r.head.script, args = r.head.args, env = r.head.env, account = r.head.account, journal = r.path,
      operations = ops } }
    return
  end
  print(string.format("run %s  %s\nscript  %s %s\nenv     %s, account %s\nstarted %s\njournal %s",
    r.id, r.state, r.head.script or "?", table.concat(r.head.args or {}, " "), r.head.env or "?",
    r.head.account or "?", r.head.started or "?", r.path))
  print(string.format("%d operations: %d done, %d failed, %d outcome unknown", #r.ops, r.done, r.failed, r.open))
  for i, op in ipairs(r.ops) do
    local state = op.failed and ("failed " .. op.status) or (op.status and ("done " .. op.status) or "OUTCOME UNKNOWN")
    print(string.format("%4d  %-16s %s %s  key %s  %s", i, state, op.method, op.path, op.key, op.time))
  end
end

return J
