-- A run (SPEC §5): one invocation of a script file, with its journal.
--   identity  the script's absolute path, its arguments, environment, base
--             URL and account (the client id only as part of a keyed hash)
--   journal   $XDG_STATE_HOME/uqlua/runs/<id>.journal, or --journal PATH;
--             locked by the live run from its start to its end
--   complete  when the script ends normally, or calls os.exit with success
-- Only script files are journaled: -e, stdin and the REPL never are (their
-- writes go through a memory journal: same lifecycle, nothing kept), and
-- neither is the in-process simulator, which is new every run.
-- The host calls Run.begin() before the script and Run.finish() after it.
local core = require "uqpay.core"
local json = require "uqpay.json"
local E = require "uqpay.errors"
local C = require "uqpay.config"
local R = require "uqpay.redact"

local Run = {}

-- UQPAY keeps a key's answer for 24 hours; an operation whose intent is
-- older than this is never sent again (an hour's margin for clock skew
-- and for retries that wait on Retry-After).
Run.KEY_LIFE_S = 23 * 3600

local state = { counts = { sent = 0, replayed = 0, resent = 0 } }

-- Tests move the clock with UQLUA_CLOCK_OFFSET_S (seconds added to now),
-- read once: a process cannot change its own environment.
local clock_offset = tonumber(os.getenv("UQLUA_CLOCK_OFFSET_S") or "") or 0
function Run.now()
  return core.now() + clock_offset
end

-- Seconds a write's key, first sent at ts, may still be sent again
-- (below 0: too old, UQPAY may have forgotten it). The one reading of
-- KEY_LIFE_S: the resume, the retry loop and reconcile ask it.
function Run.key_life_left(ts) return Run.KEY_LIFE_S - (Run.now() - ts) end

local function stamp(t) return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t)) end

function Run.runs_dir(noenv) return C.state_dir(noenv) .. "/runs" end

-- The run's identity: id (16 hex digits of a keyed hash) and what it is
-- made of, as shown to people (no client id).
function Run.identity(cfg, opts)
  local script = opts.bundled and ("ops:" .. opts.script) or (core.realpath(opts.script) or opts.script)
  local args = json.array(opts.script_args or {})
  -- what the journal keeps and --runs shows: arguments redacted as any text
  -- (a card number passed to a script); the id is made from them as given
  local shown_args = json.array {}
  for i, a in ipairs(args) do shown_args[i] = R.text(a) end
  local shown = { script = script, args = shown_args, env = cfg.env,
                  base_url = cfg.base_url, account = cfg.on_behalf_of or "master" }
  local id = core.hmac_sha512_hex("uqlua-run", json.encode {
    script = shown.script, args = args, env = shown.env, base_url = shown.base_url, account = shown.account,
    client = cfg.client_id or "" })
  return id:sub(1, 16), shown
end

local function describe(ident)
  if type(ident) ~= "table" then return "(unknown)" end
  local args = type(ident.args) == "table" and table.concat(ident.args, " ") or ""
  return string.format("%s%s on %s (%s), account %s", tostring(ident.script), args ~= "" and (" " .. args) or "",
    tostring(ident.env), tostring(ident.base_url), tostring(ident.account))
end

-- The journal every write goes through: the run's, or a memory journal.
function Run.journal()
  if state.journal then return state.journal end
  state.memory = state.memory or core.journal_open(nil)
  return state.memory
end

function Run.count(what) state.counts[what] = state.counts[what] + 1 end

function Run.id() return state.id end
-- Whether this invocation resumes an interrupted run (answers from its journal).
function Run.resumed() return state.resumed == true end

-- A name no other archive has (two in one second must not overwrite).
local function archive_name(path, what)
  return path:gsub("%.journal$", "") .. "-" .. os.date("!%Y%m%dT%H%M%S", math.floor(Run.now())) .. "-" ..
    core.uuid():sub(1, 8) .. "." .. what .. ".journal"
end

-- What an open journal holds for run id, and the scan's result:
--   "empty"        no file, or no record
--   "finished"     its last line says so (the file is not read whole), or
--                  a complete record before zeros a crash did not cut
--   "damaged"      the scan refused it (the second value is the error)
--   "other"        another invocation's run
--   "interrupted"  this run, to resume
local function examine(j, id)
  if not j:persistent() then return "empty" end
  if j:ends_complete() then return "finished" end
  local ok, info = pcall(j.scan, j)
  if not ok then return "damaged", info end
  if info.complete then return "finished", info end
  if info.records == 0 then return "empty", info end
  if info.header and info.header.run ~= id then return "other", info end
  return "interrupted", info
end

-- The run's journal file and how messages name the run.
local function journal_path(cfg, opts, id)
  local path = opts.journal or (Run.runs_dir(cfg.noenv) .. "/" .. id .. ".journal")
  return path, opts.journal and ("the run in " .. path) or ("run " .. id)
end

local function other_run(path, header, id, ident)
  E.config(string.format("journal %s holds run %s: %s; this invocation is run %s: %s. Use another " ..
    "--journal, or --fresh to set that run aside", path, tostring(header.run), describe(header.identity), id,
    describe(ident)))
end

-- Interrupted runs of the same script, environment and account (other
-- arguments, or another base URL) that hold writes not settled:
-- {id=, head=, open=}. Read-only looks; a run that is alive (its lock is
-- held) is not interrupted.
local function unsettled_runs(cfg, id, ident)
  local dir, found = Run.runs_dir(cfg.noenv), {}
  for _, name in ipairs(core.listdir(dir) or {}) do
    local other = name:match("^(%x+)%.journal$")
    if other and other ~= id then
      local ok, j = pcall(core.journal_open, dir .. "/" .. name, "run " .. other, true)
      if ok then
        local kind, info = "live", nil
        if not j:holder() then kind, info = examine(j, other) end
        local h = (kind == "interrupted" or kind == "other") and info.header
        if h and h.script == ident.script and h.env == ident.env and h.account == ident.account
            and info.in_doubt + info.unsent > 0 then
          found[#found + 1] = { id = other, head = h, open = info.in_doubt + info.unsent }
        end
        j:close()
      end
    end
  end
  return found
end

-- A new run of a script whose earlier run was interrupted with writes in
-- doubt would send those writes again with new keys when it repeats them
-- (the same CSV named ./a.csv, a simulator on another port): refused
-- until that run is resumed or settled, or --fresh says to start anyway.
local function refuse_beside_unsettled(cfg, id, ident)
  local runs = unsettled_runs(cfg, id, ident)
  if #runs == 0 then return end
  local lines = {}
  for i, r in ipairs(runs) do
    lines[i] = string.format("  run %s: %d write(s) not settled: %s", r.id, r.open, describe(r.head.identity or r.head))
  end
  E.config(string.format("an interrupted run of %s has writes that are not settled, and a new run would send any " ..
    "it repeats with new keys:\n%s\nRun that command again to resume it, or settle it with `uqlua reconcile " ..
    "%s --settle`; --fresh starts a new run anyway", tostring(ident.script), table.concat(lines, "\n"), runs[1].id))
end

-- Whether a journal holds nothing to resume: no file or no record, or a
-- finished run (the file is not read whole).
local function is_new(j) return not j:persistent() or j:stats().size == 0 or j:ends_complete() end

-- One run, one journal, wherever it is kept. The journal's own lock holds
-- one file; the run's id names one run whether it is journaled in the runs
-- directory or with --journal PATH. A run about to start in a new journal
-- looks where the same run may have been interrupted (the runs directory,
-- and the last --journal it used, kept in run-locks/ID.where): sent again
-- from an empty journal, its applied writes would go out with new keys.
local function locks_dir(cfg) return C.state_dir(cfg.noenv) .. "/run-locks" end

local function refuse_elsewhere(cfg, id, path)
  local here, dir = core.realpath(path) or path, Run.runs_dir(cfg.noenv)
  local f = io.open(locks_dir(cfg) .. "/" .. id .. ".where", "rb")
  local noted = f and f:read("a") or nil
  if f then f:close() end
  for _, other in ipairs { { dir .. "/" .. id .. ".journal", "without --journal" }, { noted } } do
    local p = other[1] and (core.realpath(other[1]) or other[1])
    local ok, o = false, nil
    if p and p ~= here then ok, o = pcall(core.journal_open, p, "run " .. id, true) end
    if ok then
      -- a live copy there is not interrupted: the run's lock refuses it next
      local kind, info = "live", nil
      if not o:holder() then kind, info = examine(o, id) end
      o:close()
      if kind == "interrupted" then
        E.config(string.format("run %s was interrupted in %s (%d done, %d in doubt, %d not sent): a new run " ..
          "in %s would send its writes again with new keys. Run it where it is (%s), or --fresh to start " ..
          "anew anyway", id, p, info.applied, info.in_doubt, info.unsent, path, other[2] or ("--journal " .. p)))
      end
    end
  end
end

-- Every run holds a lock by its id (run-locks/ID.lock), for the process's
-- life: a second copy with another journal exits 2. A --journal run notes
-- its file in run-locks/ID.where, for refuse_elsewhere.
local function hold_run(cfg, opts, id, path, j)
  local locks = locks_dir(cfg)
  assert(core.mkdir_private(locks))
  local lock, why = core.lock(locks .. "/" .. id .. ".lock", true)
  if not lock then
    j:close()
    if why == "busy" then E.config(string.format("run %s is in progress with another journal; this is %s", id, path)) end
    E.config(string.format("cannot lock run %s: %s", id, tostring(why)))
  end
  state.run_lock = lock
  if opts.journal then assert(core.write_private(locks .. "/" .. id .. ".where", core.realpath(path) or path)) end
end

-- Opens the run's journal before the script starts: locks it (a second
-- copy of a live run exits 2), checks its identity, and resumes or starts.
function Run.begin()
  local opts = core.host_options()
  local cfg = C.active()
  Run.install_exit()
  if opts.no_journal then
    if cfg.env == "production" then
      E.config("--no-journal is refused in production: the journal is what makes a re-run safe")
    end
    return
  end
  if not opts.script or opts.script == "-" then
    if opts.journal then E.config("--journal needs a script file: -e, stdin and the REPL are never journaled") end
    return
  end
  if cfg.inprocess_sim and not opts.journal then return end
  local id, ident = Run.identity(cfg, opts)
  if cfg.dry_run then return Run.begin_dry(cfg, opts, id, ident) end
  if not opts.journal then assert(core.mkdir_private(Run.runs_dir(cfg.noenv))) end
  local path, label = journal_path(cfg, opts, id)
  if not opts.fresh then
    -- a new run (no journal, or a finished one) first looks for unsettled
    -- runs beside it, and for this run interrupted in another journal
    local peek = core.journal_open(path, label, true) -- refuses what is not a regular file
    local new = is_new(peek)
    peek:close()
    if new then
      refuse_beside_unsettled(cfg, id, ident)
      refuse_elsewhere(cfg, id, path)
    end
  end
  local j = core.journal_open(path, label)
  hold_run(cfg, opts, id, path, j)
  -- Moves the journal's run aside under an archive name; returns the new,
  -- empty journal at path.
  local function set_aside(what)
    local to = archive_name(path, what)
    assert(os.rename(path, to))
    local fresh = core.journal_open(path, label)
    j:close()
    j = fresh
    return to
  end
  local kind, info = examine(j, id)
  local resuming = false
  if kind == "finished" then
    set_aside("done") -- a finished run is only set aside
  elseif kind == "damaged" then
    if not opts.fresh then
      j:close()
      error(info, 0)
    end
    io.stderr:write(string.format("uqlua: --fresh: set aside the damaged run %s as %s\n", id, set_aside("abandoned")))
  elseif kind ~= "empty" and opts.fresh then
    io.stderr:write(string.format("uqlua: --fresh: set aside the interrupted run %s as %s\n",
      info.header and info.header.run or id, set_aside("abandoned")))
  elseif kind == "other" then
    j:close()
    other_run(path, info.header, id, ident)
  elseif kind == "interrupted" then
    resuming = true
  end
  state.journal, state.id, state.path, state.resumed = j, id, path, resuming
  if resuming then
    local header = info.header or {}
    io.stderr:write(string.format("uqlua: resuming run %s started %s: %d operations done (answered from the " ..
      "journal), %d in doubt%s (sent again with their keys)%s\n", id, header.started or "?", info.applied,
      info.in_doubt, info.unsent > 0 and (", " .. info.unsent .. " not sent") or "",
      info.torn and "; a torn last line was ignored" or ""))
    j:record({ t = "resume", time = stamp(Run.now()) }, true)
  else
    j:reset()
    j:record({ t = "run", version = 2, run = id, identity = ident, script = ident.script, args = ident.args,
               env = ident.env, account = ident.account, started = stamp(Run.now()) }, true)
  end
end

-- A dry run of a command whose run was interrupted plans what running it
-- again would do: the run's journal is read (never created, locked, cut or
-- written), its applied writes are answered from it and the others are
-- planned with their own keys. Any other dry run has a memory journal.
function Run.begin_dry(cfg, opts, id, ident)
  local path, label = journal_path(cfg, opts, id)
  local j = core.journal_open(path, label, true)
  local kind, info = "fresh", nil
  if not opts.fresh then kind, info = examine(j, id) end
  if kind ~= "interrupted" then
    j:close()
    if kind == "damaged" then error(info, 0) end
    if kind == "other" then other_run(path, info.header, id, ident) end
    return
  end
  state.journal, state.id, state.path, state.resumed, state.dry = j, id, path, true, true
  io.stderr:write(string.format("uqlua: dry run: run %s was interrupted: %d operations done (answered from its " ..
    "journal), %d in doubt%s (planned with their keys); the journal is only read\n", id, info.applied,
    info.in_doubt, info.unsent > 0 and (", " .. info.unsent .. " not sent") or ""))
end

-- The amount a journaled write's body (as kept) names, or nil: for
-- --run, reconcile and the unrepeated-writes notice.
function Run.amount_of(op)
  local ok, body = pcall(json.decode, op.body or "")
  return ok and type(body) == "table" and (body.amount or body.card_limit or body.sell_amount) or nil
end

local function op_line(r)
  local amount = Run.amount_of(r)
  return string.format("%s %s%s%s, key %s", r.method, r.path, r.obo ~= "" and (" on behalf of " .. r.obo) or "",
    amount and (", amount " .. tostring(amount)) or "", r.key)
end

-- Opens another run's journal to settle its writes (the reconcile script):
-- locked like a live run (exit 2 when that run is alive), read back, and
-- ready for j:op_at() (reconcile gives each write its journal id).
function Run.open_existing(path)
  -- a dry run reads the run and writes nothing into it
  local j = core.journal_open(path, "the run in " .. path, C.active().dry_run)
  local ok, err = pcall(j.scan, j)
  if not ok then
    j:close()
    error(err, 0)
  end
  return j
end

-- The script ended. success: normally, or through os.exit with success.
-- Marks the run complete and names what the interrupted run applied that
-- this one did not repeat, unless a write is still unsettled: one of this
-- run's whose error the script caught (in doubt, or never sent), or one
-- of the interrupted run's that was not reached again. Then the run stays
-- resumable (a later run sends them with their keys, never new ones) and
-- reconcile_required names them.
function Run.finish(success, code)
  -- a dry run's plan, also (above all) when the script failed
  require("uqpay.dryrun").finish_active()
  local j = state.journal
  if not j then return end
  if state.dry then -- nothing to complete, remove or report: the journal was only read
    state.journal = nil
    j:close()
    return
  end
  local c = state.counts
  if not success then
    state.journal = nil
    if c.sent + c.resent + c.replayed == 0 and not state.resumed then
      os.remove(state.path) -- it wrote nothing: nothing to resume
    end
    j:close()
    if c.sent + c.resent + c.replayed > 0 or state.resumed then
      io.stderr:write(string.format("uqlua: run %s stopped%s before its end; run the same command again to " ..
        "resume it (uqlua --run %s shows where it stands)\n", state.id,
        code ~= nil and (" with exit code " .. tostring(code)) or "", state.id))
    end
    return
  end
  local unrepeated, unresolved = {}, {}
  for _, u in ipairs(j:unseen()) do
    if u.state == "applied" then
      unrepeated[#unrepeated + 1] = u.record
    else
      unresolved[#unresolved + 1] = u.record
    end
  end
  local by_time = function(a, b) return (a.ts or 0) < (b.ts or 0) end
  table.sort(unrepeated, by_time)
  table.sort(unresolved, by_time)
  local open = j:stats().open
  local id = state.id
  if open > 0 or #unresolved > 0 then
    state.journal = nil
    j:close()
    local lines = {}
    for i, r in ipairs(unresolved) do lines[i] = "  " .. op_line(r) .. ", sent " .. stamp(r.ts or 0) end
    E.raise { kind = "reconcile_required", message = string.format("run %s ended, but %d write(s) are not " ..
      "settled: %s%s. The run stays open: run the same command again to settle them with their own keys " ..
      "(uqlua --run %s lists them)%s%s", id, open + #unresolved,
      open > 0 and (open .. " of this run failed without a definitive answer and the script went on") or "",
      #unresolved > 0 and ((open > 0 and "; " or "") .. #unresolved .. " of the interrupted run were not reached " ..
        "again") or "", id, #unresolved > 0 and ":\n" or "", table.concat(lines, "\n")) }
  end
  state.journal = nil
  for _, r in ipairs(unrepeated) do
    j:record { t = "unrepeated", op = r.op, occ = r.occ, key = r.key }
  end
  j:record({ t = "complete", time = stamp(Run.now()), sent = c.sent, replayed = c.replayed, resent = c.resent,
             unrepeated = #unrepeated, syncs = j:stats().syncs + 1 }, true)
  local path, resumed = state.path, state.resumed
  if not resumed and c.sent == 0 then
    os.remove(path) -- a run that wrote nothing leaves nothing behind
  end
  j:close()
  if resumed then
    io.stderr:write(string.format("uqlua: run %s complete: %d sent, %d answered from the journal, %d sent again\n",
      id, c.sent, c.replayed, c.resent))
  end
  for _, r in ipairs(unrepeated) do
    io.stderr:write(string.format("uqlua: run %s: %s: applied earlier, not repeated\n", id, op_line(r)))
  end
end

-- os.exit ends a run too: with success (os.exit(), os.exit(0),
-- os.exit(true)) it completes it; with failure it stays resumable.
function Run.install_exit()
  if state.exit_installed then return end
  state.exit_installed = true
  local real_exit = os.exit
  -- os.exit always exits: if the run cannot complete, it says why and
  -- exits as that error would (3 for writes left unsettled)
  os.exit = function(code, close) -- luacheck: ignore 122
    local ok, err = pcall(Run.finish, code == nil or code == true or code == 0, code)
    if not ok then
      io.stderr:write("uqlua: ", tostring(err), "\n")
      io.stderr:flush()
      return real_exit(E.is(err) and err.kind == "reconcile_required" and 3 or 1, close)
    end
    return real_exit(code, close)
  end
end

return Run
