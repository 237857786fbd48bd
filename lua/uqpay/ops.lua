-- The ops scripts' shared helpers, also for users' own scripts
-- (require "uqpay.ops"):
--   ops.csv_read(path, spec)     an RFC 4180 CSV checked whole before anything is sent
--   ops.csv_write(out, rows, columns)
--   ops.table(rows, columns)     aligned text table
--   ops.progress(total, label)   a progress bar on a terminal's stderr
--   ops.apply(items, fn, opts)   writes through uqpay.parallel, with progress and tallies
--   ops.finish(summary)          prints the summary and exits 0, 1 or 3
--   ops.check_cards(rows, path, check)  each row's card, read and checked before anything is sent
-- Output follows uqlua --json: JSON lines on stdout, logs on stderr.
local core = require "uqpay.core"
local json = require "uqpay.json"
local E = require "uqpay.errors"
local CSV = require "uqpay.csv"
local out = require "uqpay.jsonout"

local ops = {}

-- ---------- arguments ----------

-- An argparse parser for a bundled script: `uqlua NAME --help` exits 0,
-- and a bad argument is a usage error (exit 2) naming it, like every other
-- bad input; uqlua's own options (--dry-run, --json, --on-behalf-of,
-- --env, --yes) go before NAME.
function ops.parser(name, description, epilog)
  local argparse = require "argparse"
  local p = argparse("uqlua " .. name, description, epilog)
  p:help_max_width(100)
  function p:error(msg) -- luacheck: ignore 212
    io.stderr:write(self:get_usage(), "\n")
    E.raise { kind = "usage", message = "uqlua " .. name .. ": " .. msg }
  end
  return p
end

-- The master account, then (with_subs) every connected sub-account, as
-- {id, name, obo}: obo is the x-on-behalf-of value (false for the master).
function ops.accounts(with_subs)
  local master = uqpay.account()
  local list = { { id = master.account_id, name = master.account_name or "master", obo = false } }
  if with_subs then
    for a in uqpay.accounts.each() do list[#list + 1] = { id = a.account_id, name = a.account_name, obo = a.account_id } end
  end
  return list
end

-- ---------- CSV ----------

-- Splits CSV text into records of fields (uqpay.csv).
ops.csv_parse = CSV.parse

local A -- uqpay.api, for the field checks the endpoint functions use
local function check(field, typ, v)
  A = A or require "uqpay.api"
  return A.check(field, typ, v)
end

-- The problems found in an input file, one line each, as one usage error
-- (exit 2): raised before anything is sent.
local function refuse_problems(problems, path)
  if #problems > 0 then
    E.raise { kind = "usage", message = string.format("%d problem(s) in %s, nothing was sent:\n  %s", #problems, path,
      table.concat(problems, "\n  ")) }
  end
end

-- Reads and checks a CSV file whole. spec = {columns = {name = "type" or
-- "type!" (required column)}, unique = "column" (no repeats unless
-- allow_duplicates), allow_duplicates = bool}. Types are the endpoint
-- table's (uuid, amount, amount0, currency, ccy, string, enum:A|B).
-- Returns rows {line = n, column = value, ...}; raises one usage error
-- listing every bad line (exit 2, nothing sent).
function ops.csv_read(path, spec)
  local f, err = io.open(path, "rb")
  if not f then E.raise { kind = "usage", field = "file", value = path, message = "cannot read " .. tostring(err) } end
  local text, rerr = f:read("a")
  f:close()
  -- a directory opens, then cannot be read
  if not text then
    E.raise { kind = "usage", field = "file", value = path, message = "cannot read " .. path .. ": " .. tostring(rerr) }
  end
  local ok, records = pcall(ops.csv_parse, text)
  if not ok then E.raise { kind = "usage", message = path .. ": " .. (E.is(records) and records.message or tostring(records)) } end
  local problems = {}
  local function problem(line, msg) problems[#problems + 1] = string.format("%s:%d: %s", path, line, msg) end
  local header = table.remove(records, 1)
  if not header then E.raise { kind = "usage", message = path .. ": empty file: expected a header row" } end
  local index = {}
  for i, name in ipairs(header) do
    name = name:match("^%s*(.-)%s*$")
    if not spec.columns[name] then
      problem(header.line, string.format("unknown column %q (expected %s)", name, ops.columns_text(spec)))
    elseif index[name] then
      problem(header.line, string.format("column %q appears twice", name))
    end
    index[name] = i
  end
  for name, typ in pairs(spec.columns) do
    if typ:sub(-1) == "!" and not index[name] then problem(header.line, string.format("missing column %q", name)) end
  end
  local rows, seen = {}, {}
  if #problems == 0 then
    for _, rec in ipairs(records) do
      local row = { line = rec.line }
      if #rec ~= #header then
        problem(rec.line, string.format("%d fields, the header has %d", #rec, #header))
      else
        for name, i in pairs(index) do
          local v = rec[i]:match("^%s*(.-)%s*$")
          local typ = spec.columns[name]:gsub("!$", "")
          if v == "" then
            if spec.columns[name]:sub(-1) == "!" then problem(rec.line, name .. " is empty") end
          else
            local good, val = pcall(check, name, typ, v)
            if good then row[name] = val else problem(rec.line, E.is(val) and val.message or tostring(val)) end
          end
        end
        local key, what
        if type(spec.unique) == "table" then
          local parts = {}
          for i, c in ipairs(spec.unique) do parts[i] = tostring(row[c]) end
          key, what = table.concat(parts, " "), table.concat(spec.unique, ",")
        elseif spec.unique then
          key, what = row[spec.unique], spec.unique
        end
        if key ~= nil and not spec.allow_duplicates then
          if seen[key] then
            problem(rec.line, string.format("%s %s repeats line %d%s", what, key, seen[key],
              spec.duplicates_hint or ""))
          else
            seen[key] = rec.line
          end
        end
        rows[#rows + 1] = row
      end
    end
  end
  refuse_problems(problems, path)
  return rows
end

function ops.columns_text(spec)
  local names = {}
  for name, typ in pairs(spec.columns) do names[#names + 1] = name .. (typ:sub(-1) == "!" and "" or " (optional)") end
  table.sort(names)
  return table.concat(names, ", ")
end

local function cell(v)
  if v == nil or v == json.null then return "" end
  return tostring(v)
end

local function csv_cell(v) return CSV.cell(cell(v)) end

-- Writes rows as CSV (header first) to a file handle, each row redacted
-- like everything uqlua prints (R.shown: card data and secrets by column
-- name, card numbers and known secrets in any other cell).
function ops.csv_write(fh, rows, columns)
  local R = require "uqpay.redact"
  fh:write(table.concat(columns, ","), "\n")
  for _, r in ipairs(rows) do
    r = R.shown(r)
    local line = {}
    for i, c in ipairs(columns) do line[i] = csv_cell(r[c]) end
    fh:write(table.concat(line, ","), "\n")
  end
end

-- ---------- tables ----------

-- An aligned text table of rows (amounts right-aligned); columns default
-- to the sorted keys of the first row.
function ops.table(rows, columns)
  if not columns then
    columns = {}
    for k in pairs(rows[1] or {}) do if type(k) == "string" then columns[#columns + 1] = k end end
    table.sort(columns)
  end
  local R = require "uqpay.redact"
  local width, text = {}, {}
  for i, c in ipairs(columns) do width[i] = #c end
  for r, row in ipairs(rows) do
    text[r] = {}
    row = R.shown(row)
    for i, c in ipairs(columns) do
      local s = cell(row[c])
      text[r][i] = s
      width[i] = math.max(width[i], #s)
    end
  end
  local right = {}
  for i, c in ipairs(columns) do
    right[i] = core.is_amount_key(c) or (rows[1] and (core.money.is(rows[1][c]) or type(rows[1][c]) == "number"))
  end
  local function line(cells)
    local parts = {}
    for i, s in ipairs(cells) do
      parts[i] = right[i] and string.rep(" ", width[i] - #s) .. s or s .. string.rep(" ", width[i] - #s)
    end
    return (table.concat(parts, "  "):gsub("%s+$", ""))
  end
  local head = {}
  for i, c in ipairs(columns) do head[i] = c:upper() end
  local lines = { line(head) }
  for r = 1, #rows do lines[#lines + 1] = line(text[r]) end
  return table.concat(lines, "\n")
end

-- ---------- progress ----------

-- A progress bar on stderr when it is a terminal and there is more than a
-- handful to do: count, rate, ETA. Silent otherwise.
function ops.progress(total, label)
  local p = { total = total, done = 0, t0 = core.monotonic_ms(), last = 0 }
  p.on = total > 5 and core.isatty(2) and not os.getenv("UQLUA_NO_PROGRESS")
  function p.step(n)
    p.done = p.done + (n or 1)
    if not p.on then return end
    local now = core.monotonic_ms()
    if now - p.last < 100 and p.done < p.total then return end
    p.last = now
    local secs = math.max(0.001, (now - p.t0) / 1000)
    local rate = p.done / secs
    local eta = rate > 0 and (p.total - p.done) / rate or 0
    local w = 30
    local fill = math.floor(w * p.done / math.max(1, p.total))
    io.stderr:write(string.format("\r%s [%s%s] %d/%d  %.1f/s  ETA %ds ", label or "", string.rep("#", fill),
      string.rep(" ", w - fill), p.done, p.total, rate, math.ceil(eta)))
    io.stderr:flush()
  end
  function p.finish()
    if p.on then io.stderr:write("\n") end
  end
  return p
end

-- ---------- cards ----------

-- Reads the card of every row (its card_id) before anything is sent and
-- checks it: a card the API refuses to show, or one judge(row, card)
-- finds wrong (it returns why), is a problem of its line; any problem is
-- one usage error listing them all (exit 2, nothing sent). Other failures
-- (network, auth, ...) are raised as they are. Returns card_id -> card.
function ops.check_cards(rows, path, judge, concurrency)
  local ids, seen = {}, {}
  for _, r in ipairs(rows) do
    if not seen[r.card_id] then seen[r.card_id] = true; ids[#ids + 1] = r.card_id end
  end
  local got, errs = uqpay.parallel(ids, function(id) return uqpay.cards.get(id) end, { concurrency = concurrency })
  local cards, bad, problems = {}, {}, {}
  for i, id in ipairs(ids) do
    local e = errs[i]
    if e and not (E.is(e) and e.kind == "api" and (e.status or 0) < 500) then error(e, 0) end
    cards[id], bad[id] = got[i], e
  end
  for _, r in ipairs(rows) do
    local why = bad[r.card_id] and bad[r.card_id].message or (judge and judge(r, cards[r.card_id]))
    if why then problems[#problems + 1] = string.format("%s:%d: card %s: %s", path, r.line, r.card_id, why) end
  end
  refuse_problems(problems, path)
  return cards
end

-- ---------- writes and their summary ----------

-- Runs fn(item) for each item through uqpay.parallel (journaled, resumable)
-- with a progress bar. fn returns the result and, optionally, the money it
-- moved ({currency=, amount=}; with funds = false, an amount that moved no
-- funds, such as a SHARE card's recharge, totalled apart) or false to count
-- the item as skipped.
-- opts: concurrency (8), label, describe(item) -> text for failures and
-- JSON lines. Returns a summary.
function ops.apply(items, fn, opts)
  opts = opts or {}
  local describe = opts.describe or function(item) return tostring(item) end
  local bar = ops.progress(#items, opts.label)
  local s = { label = opts.label or "operations", done = 0, failed = 0, in_doubt = 0, skipped = 0, totals = {},
              unfunded = {}, failures = {} }
  local results, errors = uqpay.parallel(items, function(item)
    local ok, res, moved = pcall(fn, item)
    bar.step()
    if not ok then error(res, 0) end
    return { res = res, moved = moved }
  end, { concurrency = opts.concurrency or 8 })
  bar.finish()
  for i, item in ipairs(items) do
    local e, r = errors[i], results[i]
    local state, line
    if e then
      local doubt = E.is(e) and e.kind == "reconcile_required"
      state = doubt and "in_doubt" or "failed"
      s[state] = s[state] + 1
      line = describe(item) .. ": " .. tostring(e)
      s.failures[#s.failures + 1] = line
    elseif r.moved == false then
      state = "skipped"
      s.skipped = s.skipped + 1
    else
      state = "done"
      s.done = s.done + 1
      if r.moved and r.moved.currency then
        local cur, t = r.moved.currency, r.moved.funds == false and s.unfunded or s.totals
        t[cur] = (t[cur] or core.money("0")) + r.moved.amount
      end
    end
    if out.enabled() then
      out.emit { operation = { item = describe(item), state = state, error = e and tostring(e) or nil,
                               result = r and type(r.res) == "table" and r.res or nil } }
    end
  end
  return s
end

-- "SGD 10.00, USD 125.50": money per currency, in currency order.
local function money_text(t)
  local curs, parts = {}, {}
  for cur in pairs(t or {}) do curs[#curs + 1] = cur end
  table.sort(curs)
  for _, cur in ipairs(curs) do parts[#parts + 1] = cur .. " " .. tostring(t[cur]) end
  return table.concat(parts, ", ")
end

-- Prints the summary (stderr, or a JSON line on stdout) and exits: 0 when
-- everything succeeded, 1 when anything failed, 3 when anything is in doubt.
-- Money that moved no funds (a SHARE card's recharge) is not in "moved".
function ops.finish(s)
  local totals, unfunded = money_text(s.totals), money_text(s.unfunded)
  if out.enabled() then
    out.emit { summary = { label = s.label, done = s.done, failed = s.failed, in_doubt = s.in_doubt, skipped = s.skipped,
                           totals = s.totals, unfunded = s.unfunded, failures = json.array(s.failures) } }
  end
  for _, f in ipairs(s.failures) do io.stderr:write("failed: ", f, "\n") end
  io.stderr:write(string.format("%s: %d done, %d failed, %d in doubt%s%s%s\n", s.label, s.done, s.failed, s.in_doubt,
    s.skipped > 0 and (", " .. s.skipped .. " skipped") or "", totals ~= "" and ("; moved " .. totals) or "",
    unfunded ~= "" and ("; no funds moved for " .. unfunded) or ""))
  os.exit(s.in_doubt > 0 and 3 or (s.failed > 0 and 1 or 0))
end

-- Prints records as a table, CSV or JSON lines (format "table"|"csv"|"json").
function ops.output(rows, columns, format, fh)
  fh = fh or io.stdout
  if format == "json" then
    local R = require "uqpay.redact"
    for _, r in ipairs(rows) do fh:write(json.encode((R.shown(r)), { money = "string" }), "\n") end
  elseif format == "csv" then
    ops.csv_write(fh, rows, columns)
  elseif #rows > 0 then
    fh:write(ops.table(rows, columns), "\n")
  end
end

-- The default output format: json under uqlua --json, else table.
function ops.default_format() return out.enabled() and "json" or "table" end

return ops
