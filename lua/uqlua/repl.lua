-- The REPL's Lua side, called from src/repl.c: the banner and prompt, how
-- results are shown, tab completion along dotted paths, and help().
local core = require "uqpay.core"
local printer = require "uqlua.printer"
local docs = require "uqpay.docs"
local R = require "uqpay.redact"

local M = {}

local function environment()
  local ok, cfg = pcall(uqpay and uqpay.config or error)
  if not ok then return nil, tostring(cfg) end
  return cfg
end

-- The banner (after the version line the interpreter prints): environment
-- and account, and where help is; Tab only when libedit was opened (editing).
function M.banner(editing)
  local cfg, err = environment()
  local lines = {}
  if cfg then
    lines[#lines + 1] = string.format("environment %s%s, account %s", cfg.env == "production" and "PRODUCTION" or cfg.env,
      cfg.env == "production" and " (writes are real money)" or "", cfg.on_behalf_of or "master")
  else
    lines[#lines + 1] = "configuration: " .. err
  end
  lines[#lines + 1] = "help() lists the uqpay functions, help(f) explains one; " ..
    (editing and "Tab completes; " or "") .. "Ctrl-D exits."
  return table.concat(lines, "\n")
end

-- The prompt: the environment, unmistakable in production (white on red).
-- \1 and \2 mark the escape codes as taking no room on the line.
function M.prompt(first)
  local cfg = environment()
  local env = cfg and cfg.env or "unconfigured"
  local tail = first and "> " or ">> "
  if env == "production" then
    return "\1\27[1;37;41m\2uqlua[PRODUCTION]\1\27[0m\2" .. tail
  end
  return "uqlua[" .. env .. "]" .. tail
end

-- Called once when the REPL starts: defines help() and returns the banner.
function M.start(editing)
  if rawget(_G, "help") == nil then _G.help = M.help end
  return M.banner(editing)
end

-- $XDG_STATE_HOME/uqlua/history (the directory made 0700), or nil.
function M.history_path()
  local dir = require("uqpay.config").state_dir(core.host_options().noenv)
  if not core.mkdir_private(dir) then return nil end
  return dir .. "/history"
end

-- ---- what history keeps ----
-- A line is kept in history (the file and Up alike) unless it holds card
-- data or a secret: a literal (string or number) given to a field the
-- redactor names (pin = "123456", ["cvv"] = 123, s.cvv == "123"), or a
-- literal or comment that the redactor changes (a Luhn-valid card number, a
-- known API key or token, JSON naming such a field). Decided on the line's
-- Lua tokens when it is entered, not on what it sent: a line that fails
-- before sending (a typo, a bad PIN) or only assigns a variable holds the
-- PIN all the same. A line starting with a space is not kept either (as
-- bash's ignorespace): the way to keep out what this cannot see.

-- The Lua tokens of s: {kind, text[, value]}, kind "name", "string",
-- "number", "comment" or "op". Forgiving: an unfinished string or comment
-- runs to the end.
local function tokens(s)
  local out, i, n = {}, 1, #s
  local function long_bracket(at) -- [[...]], [==[...]==]: the end, or nil
    local eq = s:match("^%[(=*)%[", at)
    if not eq then return nil end
    local _, e = s:find("]" .. eq .. "]", at + #eq + 2, true)
    return e or n
  end
  while i <= n do
    local c = s:sub(i, i)
    local kind, j
    if c:find("%s") then
      j = i
    elseif s:find("^%-%-", i) then
      kind, j = "comment", long_bracket(i + 2) or (s:find("\n", i, true) or n + 1) - 1
    elseif c == '"' or c == "'" then
      kind, j = "string", i + 1
      while j <= n and s:sub(j, j) ~= c and s:sub(j, j) ~= "\n" do j = j + (s:sub(j, j) == "\\" and 2 or 1) end
    elseif c == "[" and long_bracket(i) then
      kind, j = "string", long_bracket(i)
    elseif c:find("%d") or (c == "." and s:find("^%.%d", i)) then
      -- as Lua's lexer: digits, letters and dots, and a sign after an exponent
      kind, j = "number", i
      while j < n do
        local nx = s:sub(j + 1, j + 1)
        if nx:find("[+-]") and s:sub(j, j):find("[eEpP]") or nx:find("[%w%.]") then j = j + 1 else break end
      end
    elseif c:find("[%a_]") then
      kind, j = "name", select(2, s:find("^[%a_][%w_]*", i))
    else
      kind, j = "op", select(2, s:find("^[=~<>]=", i)) or select(2, s:find("^%.%.%.?", i)) or i
    end
    if kind then
      local t = { kind = kind, text = s:sub(i, j) }
      if kind == "string" then -- a literal's value: side-effect free to evaluate
        local f = load("return " .. t.text, "=literal", "t", {})
        local ok, v = pcall(f or error)
        t.value = ok and type(v) == "string" and v or t.text
      end
      out[#out + 1] = t
    end
    i = j + 1
  end
  return out
end

local function sensitive_name(k) -- a field the redactor hides (the value is any long enough one)
  return type(k) == "string" and R.field(k, "00000000") ~= nil
end

local BIND = { ["="] = true, ["=="] = true, ["~="] = true }
local OPEN, CLOSE = { ["("] = true, ["{"] = true, ["["] = true }, { [")"] = true, ["}"] = true, ["]"] = true }

-- Whether the expression after toks[at] (up to a ',' or ';' or the bracket
-- that closes it) holds a literal.
local function literal_after(toks, at)
  local depth = 0
  for i = at + 1, #toks do
    local t = toks[i]
    if t.kind == "string" or t.kind == "number" then return true end
    if t.kind == "op" then
      if OPEN[t.text] then depth = depth + 1
      elseif CLOSE[t.text] then
        depth = depth - 1
        if depth < 0 then return false end
      elseif depth == 0 and (t.text == "," or t.text == ";") then return false end
    end
  end
  return false
end

-- history_keeps(line) -> true, or false and why (nil: say nothing).
function M.history_keeps(line)
  if line:find("^%s") then return false end
  local toks = tokens(line)
  for i, t in ipairs(toks) do
    if t.kind == "string" and R.body(t.value) ~= t.value or (t.kind == "number" or t.kind == "comment")
        and R.text(t.text) ~= t.text then
      return false, "it holds a card number or a secret"
    end
    -- a field: name = ..., or ["name"] = ...
    local key, op = nil, nil
    if t.kind == "name" then
      key, op = t.text, toks[i + 1]
    elseif t.kind == "string" and toks[i - 1] and toks[i - 1].text == "[" and toks[i + 1] and toks[i + 1].text == "]" then
      key, op = t.value, toks[i + 2]
    end
    if op and BIND[op.text] and sensitive_name(key) and literal_after(toks, i + (t.kind == "name" and 1 or 2)) then
      return false, "it holds a value for " .. key
    end
  end
  return true
end

function M.show(...)
  printer.print(...)
end

-- Completion of "a.b.c" prefixes: globals, then fields of tables (and of
-- string/money methods through __index tables) along the path.
function M.complete(text)
  local path, last = text:match("^(.-)([%w_]*)$")
  local obj = _G
  if path ~= "" then
    local head = path:sub(1, -2)
    local sep = path:sub(-1)
    if sep ~= "." and sep ~= ":" then return {} end
    for part in head:gmatch("[^%.:]+") do
      if type(obj) ~= "table" then return {} end
      obj = rawget(obj, part)
    end
    if type(obj) ~= "table" then
      local mt = getmetatable(obj)
      obj = mt and type(mt.__index) == "table" and mt.__index or nil
      if not obj then return {} end
    end
  end
  local out, seen = {}, {}
  local function add(t)
    for k in pairs(t) do
      if type(k) == "string" and k:match("^[%a_][%w_]*$") and k:sub(1, #last) == last and not seen[k] then
        seen[k] = true
        out[#out + 1] = path .. k
      end
    end
  end
  add(obj)
  local mt = getmetatable(obj)
  if mt and type(mt.__index) == "table" and obj ~= _G then add(mt.__index) end
  table.sort(out)
  return out
end

-- help(): the list; help(f) or help("uqpay.name"): one function in full.
local function find(x)
  local entries = docs.entries()
  for _, e in ipairs(entries) do
    local v = uqpay
    for part in e.name:gmatch("[^%.]+") do v = type(v) == "table" and v[part] or nil end
    if (type(x) == "string" and (x == e.name or x == "uqpay." .. e.name)) or (x ~= nil and rawequal(v, x) and
        type(x) ~= "string") then
      return e
    end
  end
end

local GROUPS = { "Issuing", "Banking", "Connect", "Simulation", "Files", "Utilities" }

local function grouped()
  local groups = {}
  for _, e in ipairs(docs.entries()) do
    groups[e.group] = groups[e.group] or {}
    table.insert(groups[e.group], e)
  end
  return groups
end

-- Names wrapped to the screen's width, after a label.
local function wrapped(label, names, width)
  local lines, line = {}, label
  for _, n in ipairs(names) do
    if #line + #n + 1 > width and line ~= label then
      lines[#lines + 1] = line
      line = string.rep(" ", #label)
    end
    line = line .. " " .. n
  end
  lines[#lines + 1] = line
  return table.concat(lines, "\n")
end

-- help(): one screen, the functions by group; help("issuing") one line on
-- each function of a group; help(f) or help("uqpay.cards.list") one.
function M.help(x)
  local groups = grouped()
  if x == nil then
    print("uqpay functions (uqpay.NAME):")
    for _, g in ipairs(GROUPS) do
      -- families folded: cards.* stands for every uqpay.cards function
      local names, seen = {}, {}
      for _, e in ipairs(groups[g] or {}) do
        local fam = e.name:match("^(banking%.[^%.]+)%.") or e.name:match("^([^%.]+)%.")
        local shown = fam and (fam .. ".*") or e.name
        if not seen[shown] then
          seen[shown] = true
          names[#names + 1] = shown
        end
      end
      print(wrapped(string.format("  %-11s", g .. ":"), names, 96))
    end
    print('help("issuing"), help("banking"), help("connect"), ... for one line on each;')
    print('help(uqpay.recharge) or help("uqpay.cards.list") for one function; docs/api.md for everything.')
    return
  end
  for _, g in ipairs(GROUPS) do
    if type(x) == "string" and x:lower() == g:lower() then
      for _, e in ipairs(groups[g] or {}) do
        local first = e.summary:match("^(.-%.)%s") or e.summary
        print(string.format("  %-34s %s", "uqpay." .. e.name, first))
      end
      return
    end
  end
  local e = find(x)
  if not e then
    print("no documentation for " .. tostring(x) .. "; help() lists what there is")
    return
  end
  print(e.signature)
  print("  " .. e.summary)
  if e.endpoint then print("  endpoint: " .. e.endpoint .. (e.banking and "  (Banking: amounts as strings)" or "")) end
  if e.fields and #e.fields > 0 then
    local f = {}
    for i, x2 in ipairs(e.fields) do f[i] = x2.name .. (x2.required and "*" or "") end
    print("  fields: " .. table.concat(f, ", ") .. "   (* required)")
  end
  print("  returns: " .. e.returns)
  print("  example:")
  for line in (e.example .. "\n"):gmatch("(.-)\n") do print("    " .. line) end
end

return M
