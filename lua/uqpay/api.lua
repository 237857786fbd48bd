-- Turns the endpoint table (uqpay.endpoints) into functions. Each function
-- validates its arguments before anything is sent (a usage error names the
-- field and the value), then goes through the one request path,
-- Client:call. Lists fetch pages of 100 as they go.
local core = require "uqpay.core"
local E = require "uqpay.errors"
local C = require "uqpay.config"
local P = require "uqpay.parallel"

local A = {}
local money = core.money
local ISSUING_CURRENCIES = { USD = true, SGD = true }
local OPTS = { on_behalf_of = true, key = true, timeout_ms = true }
local PAGE_SIZE = 100

local function usage(field, value, why) E.usage(field, value, why) end

-- Coerces amounts nested in tables (spending_controls[i].amount, or a
-- uqpay.request body) so that no float reaches the request, each checked
-- against the currency its table names for it (core.currency_for: the
-- rule answers are read by), or the one around it.
local function coerce_nested(t, path, seen, currency)
  seen = seen or {}
  if seen[t] then return t end
  seen[t] = true
  if type(t.currency) == "string" then currency = t.currency end
  for k, v in pairs(t) do
    local here = path .. (type(k) == "number" and ("[" .. k .. "]") or ((path ~= "" and "." or "") .. tostring(k)))
    if type(v) == "table" and not money.is(v) then
      coerce_nested(v, here, seen, currency)
    elseif type(k) == "string" and core.is_amount_key(k) and v ~= nil then
      t[k] = money.check(v, here, true, core.currency_for(t, k) or currency)
    end
  end
  return t
end
A.coerce_amounts = coerce_nested

-- A number as text (a query value, a string field): every digit of an
-- integer, or of a float that holds one (2.0 -> "2", 2^53 ->
-- "9007199254740992", never "2.0" or "9.007199254741e+15"); any other
-- float is refused rather than sent rounded.
local function number_text(field, v)
  local i = math.tointeger(v)
  if i then return string.format("%d", i) end
  if v % 1 == 0 then usage(field, v, "is beyond the integers (give it as a string)") end
  usage(field, v, "is not a whole number (give other values as strings)")
end

-- A query parameter's text: strings as they are, numbers as number_text,
-- booleans and money values as tostring; nothing else has one.
function A.query_value(field, v)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then return number_text(field, v) end
  if t == "boolean" or money.is(v) then return tostring(v) end
  usage(field, v, "cannot be sent in a query (a string, a whole number, a boolean or a money value)")
end

local CHECKS = {}
local uuid_lower = core.uuid_lower
function CHECKS.uuid(field, v)
  return uuid_lower(v) or usage(field, v, "is not a UUID")
end
function CHECKS.string(field, v)
  if type(v) == "number" then return number_text(field, v) end
  if type(v) ~= "string" then usage(field, v, "is not a string") end
  return v
end
function CHECKS.amount(field, v) return money.check(v, field, false) end
function CHECKS.amount0(field, v) return money.check(v, field, true) end
function CHECKS.currency(field, v)
  if type(v) ~= "string" or not v:match("^%a%a%a$") then usage(field, v, "is not a currency code") end
  if not ISSUING_CURRENCIES[v:upper()] then usage(field, v, "is not an Issuing currency (USD or SGD)") end
  return v:upper()
end
function CHECKS.ccy(field, v)
  if type(v) ~= "string" or not v:match("^%a%a%a$") then usage(field, v, "is not a three-letter currency code") end
  return v:upper()
end
function CHECKS.digits(field, v)
  if type(v) ~= "string" or not v:match("^%d+$") then usage(field, v, "must be a string of digits") end
  return v
end
function CHECKS.pin6(field, v)
  if type(v) ~= "string" or not v:match("^%d%d%d%d%d%d$") then usage(field, v, "must be exactly 6 digits") end
  return v
end
function CHECKS.integer(field, v)
  if math.type(v) ~= "integer" then usage(field, v, "is not an integer") end
  return v
end
function CHECKS.count(field, v)
  if math.type(v) ~= "integer" or v < 1 then usage(field, v, "must be a whole number, 1 or more") end
  return v
end
function CHECKS.bin(field, v)
  if type(v) ~= "string" or not v:match("^%d+$") or #v < 6 or #v > 8 then usage(field, v, "must be a BIN of 6 to 8 digits") end
  return v
end
function CHECKS.table(field, v, banking)
  if type(v) ~= "table" then usage(field, v, "is not a table") end
  if field ~= "metadata" and not banking then coerce_nested(v, field) end
  return v
end

-- A field's check, parsed once from its declared type ("uuid!",
-- "enum:A|B", "string<=100", ...): {name, typ, required, options (an
-- enum's set), max (at most this many characters)}.
local function field_check(name, typ)
  local f = { name = name, required = typ:sub(-1) == "!" }
  f.typ = f.required and typ:sub(1, -2) or typ
  local base, max = f.typ:match("^(%a+)<=(%d+)$")
  if base then f.typ, f.max = base, math.tointeger(max) end
  local enum = f.typ:match("^enum:(.*)$")
  if enum then
    f.enum, f.options = enum, {}
    for option in enum:gmatch("[^|]+") do f.options[option] = true end
  else
    assert(CHECKS[f.typ], "unknown field type " .. f.typ)
  end
  return f
end

local function check(ep, f, v)
  if v == nil then
    if f.required then usage(f.name, v, "is required by uqpay." .. ep.name) end
    return nil
  end
  if f.enum then
    if f.options[v] then return v end
    usage(f.name, v, "must be one of " .. f.enum:gsub("|", ", "))
  end
  v = CHECKS[f.typ](f.name, v, ep.banking)
  if f.max then
    local n = utf8.len(v) or #v -- characters; bytes when it is not UTF-8
    if n > f.max then usage(f.name, v, "is " .. n .. " characters long; at most " .. f.max) end
  end
  return v
end

-- The endpoint functions' check of one value, for other inputs (CSV files).
local csv_ep = { name = "csv" }
function A.check(field, typ, v)
  return check(csv_ep, field_check(field, typ), v)
end

-- A value for one field of an endpoint, checked as the endpoint's entry
-- declares that field, and named as the caller's input (a script's
-- option): freeze-cards checks --reason as cards.freeze's update_reason
-- before it reads or sends anything.
function A.check_field(ep_name, field, v, shown)
  local ep = assert(A.endpoint(ep_name), "no such endpoint")
  return check(ep, field_check(shown or field, assert(ep.fields[field], "no such field")), v)
end

-- The endpoint table's entry of that name ("cards.get"), or nil.
local by_name
function A.endpoint(name)
  if not by_name then
    by_name = {}
    for _, ep in ipairs(require "uqpay.endpoints") do by_name[ep.name] = ep end
  end
  return by_name[name]
end

-- The endpoint a method and path are (path placeholders matched), and the
-- values of its placeholders; nil for a path the table does not know.
local matchers
function A.match(method, path)
  if not matchers then
    matchers = {}
    for _, ep in ipairs(require "uqpay.endpoints") do
      local names = {}
      local pat = ep.path:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"):gsub("{([%w_]+)}", function(name)
        names[#names + 1] = name
        return "([^/]+)"
      end)
      matchers[#matchers + 1] = { ep = ep, pat = "^" .. pat .. "$", names = names, at = #matchers + 1 }
    end
    -- a literal path before a placeholder that would take it (cards/activate, cards/{card_id})
    table.sort(matchers, function(a, b)
      if #a.names ~= #b.names then return #a.names < #b.names end
      return a.at < b.at
    end)
  end
  for _, m in ipairs(matchers) do
    if m.ep.method == method then
      local got = { path:match(m.pat) } -- the whole path when it has no placeholder
      if got[1] then
        local values = {}
        for i, name in ipairs(m.names) do values[name] = got[i] end
        return m.ep, values
      end
    end
  end
end

-- For a uqpay.request body sent to an endpoint whose amounts are in its
-- card's currency (recharge, a card limit), the money values that know a
-- currency and whose body names none: what the request path compares with
-- the card's, as for the endpoint's own function.
function A.raw_card_money(method, path, body)
  local ep, at = A.match(method, path)
  local of_card = ep and ep.money and ep.money.currency_of_card
  if not of_card or type(body) ~= "table" then return nil end
  local card_id, tagged = core.uuid_lower(tostring(at[of_card] or body[of_card])), nil
  if not card_id then return nil end -- the server refuses what names no card
  for k, v in pairs(body) do
    if type(k) == "string" and core.is_amount_key(k) and money.is(v) and v:currency()
        and not core.currency_for(body, k) then
      tagged = tagged or { card_id = card_id }
      tagged[#tagged + 1] = { field = k, amount = v }
    end
  end
  return tagged
end

local NO_OPTS = setmetatable({}, { __newindex = function() error("internal: NO_OPTS is shared", 2) end })

local function check_opts(ep, opts)
  if opts == nil then return NO_OPTS end
  if type(opts) ~= "table" then usage("opts", opts, "must be a table {on_behalf_of=, key=, timeout_ms=}") end
  for k in pairs(opts) do
    if not OPTS[k] then usage("opts." .. tostring(k), opts[k], "is not an option of uqpay." .. ep.name ..
      " (on_behalf_of, key, timeout_ms)") end
  end
  if opts.on_behalf_of ~= nil then CHECKS.uuid("on_behalf_of", opts.on_behalf_of) end
  if opts.key ~= nil then C.check_key(opts.key) end
  if opts.timeout_ms ~= nil and (math.type(opts.timeout_ms) ~= "integer" or opts.timeout_ms <= 0) then
    usage("timeout_ms", opts.timeout_ms, "must be a positive integer")
  end
  return opts
end

-- Collects the call's arguments into fields and opts, as ep.args says.
local function gather(ep, argv, n)
  local fields, np = {}, #ep.args
  for i, p in ipairs(ep.args) do
    local v = argv[i]
    if p == "{}" or p == "{}?" then
      if v == nil and p == "{}" then usage("uqpay." .. ep.name, v, "needs a table of fields") end
      if v ~= nil then
        if type(v) ~= "table" then usage("uqpay." .. ep.name, v, "takes a table of fields") end
        for k, x in pairs(v) do fields[k] = x end
      end
    else
      fields[p] = v
    end
  end
  if n > np + 1 then usage("uqpay." .. ep.name, n, "arguments given; it takes at most " .. (np + 1)) end
  return fields, argv[np + 1]
end

-- What A.spec needs of an endpoint's declaration, parsed on its first
-- call rather than on every call: the field checks (in name order, so
-- that the first bad field named is always the same one), the money
-- fields, the ordering locks and the path's pieces.
local compiled = setmetatable({}, { __mode = "k" })
local function compile(ep)
  local c = { fields = {}, money = {}, locks = {}, path = {} }
  local names = {}
  for name in pairs(ep.fields) do names[#names + 1] = name end
  table.sort(names)
  for i, name in ipairs(names) do
    local f = field_check(name, ep.fields[name])
    c.fields[i] = f
    if f.typ == "amount" or f.typ == "amount0" then c.money[#c.money + 1] = f end
  end
  for i, l in ipairs(ep.locks or {}) do
    local what, field = l:match("^(%w+):(.+)$")
    c.locks[i] = { what = what, field = field }
  end
  local at = 1
  for s, name, e in ep.path:gmatch("(){([%w_]+)}()") do
    if s > at then c.path[#c.path + 1] = ep.path:sub(at, s - 1) end
    c.path[#c.path + 1] = { field = name }
    at = e
  end
  if at <= #ep.path then c.path[#c.path + 1] = ep.path:sub(at) end
  -- the common path, one placeholder between two literal pieces, is joined
  -- without a table
  local p = c.path
  if #p == 3 and type(p[1]) == "string" and type(p[2]) == "table" and type(p[3]) == "string" then
    c.one = { head = p[1], field = p[2].field, tail = p[3] }
  end
  -- what every call's spec shares: its own table holds only the call's values
  c.spec_mt = { __index = { op = ep.name, ep = ep, effect = ep.effect, method = ep.method, banking = ep.banking,
                            files = ep.files, raw = ep.raw, master = ep.master } }
  compiled[ep] = c
  return c
end

-- A path placeholder's text, taken out of the values (it is not sent again
-- in the body or query); a missing one stays "{name}".
local function take(values, name)
  local v = values[name]
  values[name] = nil
  return v ~= nil and tostring(v) or ("{" .. name .. "}")
end

-- Validates fields (a table of the call's own, which becomes the body or
-- the query) and builds the request spec.
function A.spec(ep, fields, opts)
  local c = compiled[ep] or compile(ep)
  opts = check_opts(ep, opts)
  for k in pairs(fields) do
    if type(k) ~= "string" or not ep.fields[k] then
      usage(tostring(k), fields[k], "is not a field of uqpay." .. ep.name)
    end
  end
  -- fields is this call's own table (gather made it): checked in place
  local values = fields
  for _, f in ipairs(c.fields) do values[f.name] = check(ep, f, values[f.name]) end
  if ep.fixed then
    for k, v in pairs(ep.fixed) do values[k] = v end
  end
  -- a money value must be in its field's currency, at its decimals: the
  -- one the body names for it as answers name theirs (buy_amount:
  -- buy_currency; core.currency_for), else the endpoint's; for a card's
  -- amounts whose body names none (recharge, a card limit) the card's,
  -- compared on the request path, which may read the card
  local declared = ep.money and ep.money.currency and values[ep.money.currency]
  local of_card, tagged = ep.money and ep.money.currency_of_card, nil
  for _, f in ipairs(c.money) do
    local v = values[f.name]
    if v ~= nil then
      local cur = core.currency_for(values, f.name) or declared
      if cur then
        values[f.name] = money.check(v, f.name, f.typ == "amount0", cur)
      elseif of_card and money.is(v) and v:currency() then
        tagged = tagged or { card_id = values[of_card] }
        tagged[#tagged + 1] = { field = f.name, amount = v }
      end
    end
  end
  -- ordering locks, from the fields before the path takes its own; only
  -- uqpay.parallel takes them
  local locks
  if P.active() then
    for _, l in ipairs(c.locks) do
      local v = l.field == "@" and "@" or values[l.field]
      if v ~= nil then locks = locks or {}; locks[#locks + 1] = l.what .. ":" .. tostring(v) end
    end
  end
  local path = ep.path
  local one = c.one
  if one then
    path = one.head .. take(values, one.field) .. one.tail
  elseif c.path[2] or type(c.path[1]) == "table" then
    local parts = {}
    for i, piece in ipairs(c.path) do parts[i] = type(piece) == "table" and take(values, piece.field) or piece end
    path = table.concat(parts)
  end
  local locals = NO_OPTS
  if ep.local_fields then
    locals = {}
    for name in pairs(ep.local_fields) do locals[name], values[name] = values[name], nil end
  end
  -- the endpoint's own values (method, effect, ...) come from c.spec_mt
  local spec = setmetatable({ path = path, key = opts.key, on_behalf_of = opts.on_behalf_of,
                              timeout_ms = opts.timeout_ms, locks = locks, card_money = tagged }, c.spec_mt)
  if ep.method == "GET" then
    local q
    for k, v in pairs(values) do q = q or {}; q[k] = A.query_value(k, v) end
    spec.query = q
  else
    spec.body = values
  end
  return spec, locals
end

-- The request spec an endpoint function would make from these arguments
-- (validated), for callers that send it themselves (the dry run's twin).
function A.spec_for(ep, ...)
  local fields, opts = gather(ep, { ... }, select("#", ...))
  return A.spec(ep, fields, opts)
end

-- Pages through a list endpoint lazily.
local function pages(call, ep, fields, opts)
  local spec = A.spec(ep, fields, opts)
  spec.query = spec.query or {}
  spec.query.page_size = tostring(PAGE_SIZE)
  local page, i, total_pages, items = 0, 0, 1, {}
  return function()
    while true do
      i = i + 1
      if items[i] ~= nil then return items[i] end
      if page >= total_pages then return nil end
      page = page + 1
      spec.query.page_number = tostring(page)
      local res = call(spec)
      items, i = type(res.data) == "table" and res.data or {}, 0
      total_pages = math.tointeger(res.total_pages) or 1
      -- a server claiming more pages than it gives items ends at the first empty one
      if items[1] == nil then return nil end
    end
  end
end

local function put(root, dotted, value)
  local t = root
  local parts = {}
  for p in dotted:gmatch("[^%.]+") do parts[#parts + 1] = p end
  for j = 1, #parts - 1 do
    t[parts[j]] = t[parts[j]] or {}
    t = t[parts[j]]
  end
  t[parts[#parts]] = value
end

-- Installs every endpoint of the table into root, calling through call(spec).
function A.install(root, endpoints, call)
  for _, ep in ipairs(endpoints) do
    assert(ep.effect == "read" or ep.effect == "write", "endpoint " .. ep.name .. " declares no effect")
    if ep.kind == "list" then
      put(root, ep.name .. ".each", function(filters, opts, extra)
        if extra ~= nil then usage("uqpay." .. ep.name .. ".each", extra, "takes (filters, opts)") end
        return pages(call, ep, gather(ep, { filters }, 1), opts)
      end)
      put(root, ep.name .. ".list", function(filters, opts, extra)
        if extra ~= nil then usage("uqpay." .. ep.name .. ".list", extra, "takes (filters, opts)") end
        local out = {}
        for item in pages(call, ep, gather(ep, { filters }, 1), opts) do out[#out + 1] = item end
        return out
      end)
    elseif ep.kind == "all" or ep.kind == "iter" then
      put(root, ep.name, function(...)
        local fields, opts = gather(ep, { ... }, select("#", ...))
        local it = pages(call, ep, fields, opts)
        if ep.kind == "iter" then return it end
        local out = {}
        for item in it do out[#out + 1] = item end
        return out
      end)
    else
      put(root, ep.name, function(...)
        local fields, opts = gather(ep, { ... }, select("#", ...))
        local spec, locals = A.spec(ep, fields, opts)
        local res = call(spec)
        if ep.raw and locals.path then
          -- 0600, replaced atomically: a report can hold card numbers
          local ok, err = core.write_private(locals.path, res)
          if not ok then E.raise { kind = "usage", field = "path", value = locals.path, message = "cannot write " .. err } end
          return locals.path
        end
        return res
      end)
    end
  end
end

return A
