-- The REPL's Lua side, called from src/repl.c: the banner and prompt, how
-- results are shown, tab completion along dotted paths, and help().
local core = require "uqpay.core"
local printer = require "uqlua.printer"
local docs = require "uqpay.docs"

local M = {}

local function environment()
  local ok, cfg = pcall(uqpay and uqpay.config or error)
  if not ok then return nil, tostring(cfg) end
  return cfg
end

-- The banner (after the version line the interpreter prints): environment
-- and account, and where help is.
function M.banner()
  local cfg, err = environment()
  local lines = {}
  if cfg then
    lines[#lines + 1] = string.format("environment %s%s, account %s", cfg.env == "production" and "PRODUCTION" or cfg.env,
      cfg.env == "production" and " (writes are real money)" or "", cfg.on_behalf_of or "master")
  else
    lines[#lines + 1] = "configuration: " .. err
  end
  lines[#lines + 1] = "help() lists the uqpay functions, help(f) explains one; Tab completes; Ctrl-D exits."
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
function M.start()
  if rawget(_G, "help") == nil then _G.help = M.help end
  return M.banner()
end

-- $XDG_STATE_HOME/uqlua/history (the directory made 0700), or nil.
function M.history_path()
  local dir = require("uqpay.config").state_dir(core.host_options().noenv)
  if not core.mkdir_private(dir) then return nil end
  return dir .. "/history"
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
