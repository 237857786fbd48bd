-- Redaction, by structure (SPEC §4): one redactor for everything uqlua
-- prints or keeps (trace, errors, --json, ops output, the REPL printer, the
-- journal).
--   R.value(v)       decoded data: fields named like card data or secrets
--                    are replaced (card numbers keep their last four digits)
--   R.text(s)        free text: every literal secret value this process
--                    knows (API key, client id, tokens) is removed, and digit
--                    runs that pass the Luhn check (card numbers, spaced or
--                    not) are masked; UUIDs, dates and other numbers stay
--   R.shown(v)       decoded data about to be printed (--json, ops output):
--                    R.value, then every string in it as free text, before
--                    it is encoded (masking encoded JSON broke it)
--   R.body(s)        a body as sent or received: JSON redacted by structure,
--                    anything else as free text
--   R.url(u)         a URL for trace: query parameters redacted by name
--   R.kept(v, text)  what the journal keeps of decoded data
--   R.learn(v)       registers the values of credential-named fields as
--                    secrets (the token endpoint's reply, before it is traced)
local R = {}
local ARRAY_MT = require("uqpay.core").json_array_mt()

-- A field name in one spelling: camelCase, PascalCase, kebab-case and
-- spaced names as lowercase snake_case (securityCode, Security-Code,
-- SECURITY_CODE and "security code" are all security_code).
local function normal(k)
  k = k:match("^%s*(.-)%s*$"):gsub("(%l)(%u)", "%1_%2"):gsub("(%u)(%u%l)", "%1_%2")
  return (k:gsub("[%-%s]+", "_"):lower())
end

-- Field names whose value is never shown, in their normal spelling, compared
-- exactly (no_pin_payment_amount is not a PIN): card data, and credentials
-- (whose values R.learn also registers as literal secrets).
local FIELDS, CREDENTIALS = {}, {}
for _, k in ipairs { "cvv", "cvc", "cvv2", "cvc2", "security_code", "card_security_code", "pin", "new_pin", "old_pin",
                     "pin_code", "activation_code", "expire_date", "expiry_date", "expiration_date", "exp_date",
                     "expiry", "expire_month", "expire_year", "expiry_month", "expiry_year", "exp_month",
                     "exp_year" } do
  FIELDS[normal(k)] = "[REDACTED]"
end
for _, k in ipairs { "auth_token", "token", "access_token", "refresh_token", "id_token", "session_token",
                     "bearer_token", "authorization", "proxy_authorization", "api_key", "x_api_key", "x_auth_token",
                     "x_client_id", "client_id", "client_secret", "api_secret", "secret", "secret_key",
                     "private_key", "webhook_secret", "password", "passcode", "otp" } do
  FIELDS[normal(k)], CREDENTIALS[normal(k)] = "[REDACTED]", true
end
-- Card numbers keep their last four digits, so that people can tell cards apart.
local PAN_FIELDS = { card_number = true, pan = true, card_pan = true, primary_account_number = true }
R.FIELDS, R.PAN_FIELDS = FIELDS, PAN_FIELDS

local secrets = {} -- literal values: text -> true

-- Registers a literal secret (API key, client id, token) to remove from
-- any text uqlua prints. Short values are not registered (they would
-- match ordinary text).
function R.secret(v)
  if type(v) == "string" and #v >= 6 then secrets[v] = true end
end

local function mask_digits(digits)
  return string.rep("*", #digits - 4) .. digits:sub(-4)
end

function R.luhn(digits)
  local sum, alt = 0, false
  for i = #digits, 1, -1 do
    local d = digits:byte(i) - 48
    if alt then
      d = d * 2
      if d > 9 then d = d - 9 end
    end
    sum = sum + d
    alt = not alt
  end
  return sum % 10 == 0
end

-- Masks card-like digit runs in a piece of text without UUIDs. A run is
-- digit groups joined by single spaces or dashes; any stretch of whole
-- groups holding 12 to 19 digits that pass the Luhn check is a card number
-- (the longest such stretch from each group on).
local function mask_groups(run)
  local groups, seps = {}, {}
  for g, sep in run:gmatch("(%d+)([ %-]?)") do
    groups[#groups + 1], seps[#seps + 1] = g, sep
  end
  local out, i = {}, 1
  while i <= #groups do
    local best, digits = nil, ""
    for j = i, #groups do
      digits = digits .. groups[j]
      if #digits > 19 then break end
      if #digits >= 12 and R.luhn(digits) then best = j end
    end
    if best then
      out[#out + 1] = mask_digits(table.concat(groups, "", i, best)) .. seps[best]
      i = best + 1
    else
      out[#out + 1] = groups[i] .. seps[i]
      i = i + 1
    end
  end
  return table.concat(out)
end

local function mask_runs(s)
  return (s:gsub("%f[%w]%d[%d %-]*%d%f[%W]", mask_groups))
end

local UUID = "%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x"

-- Card-like runs masked everywhere but inside UUIDs.
function R.mask_pans(s)
  local out, pos = {}, 1
  while true do
    local a, b = s:find(UUID, pos)
    if not a then break end
    out[#out + 1] = mask_runs(s:sub(pos, a - 1))
    out[#out + 1] = s:sub(a, b)
    pos = b + 1
  end
  out[#out + 1] = mask_runs(s:sub(pos))
  return table.concat(out)
end

local function plain(p) return (p:gsub("[%%%^%$%(%)%.%[%]%*%+%-%?]", "%%%0")) end

-- The configured credentials are secrets from the first text redacted on,
-- whether a client was made yet or not: a script's error("..." .. key)
-- before its first call, a REPL line typed before the first request.
local configured = false
local function know_configured()
  configured = true
  local ok, cfg = pcall(function() return require("uqpay.config").active() end)
  if ok then
    R.secret(cfg.api_key)
    R.secret(cfg.client_id)
  end
end

function R.text(s)
  if type(s) ~= "string" then return s end
  if not configured then know_configured() end
  for v in pairs(secrets) do
    if s:find(v, 1, true) then s = s:gsub(plain(v), "[REDACTED]") end
  end
  return R.mask_pans(s)
end

-- What a field name is ("pan", the text that replaces its value, or false),
-- worked out once per name: a reply's dozen names are the same every time.
-- Bounded, so that a server sending endless new names cannot grow it.
local KIND, nkinds = {}, 0
local function kind_of(k)
  local kind = KIND[k]
  if kind == nil then
    local lk = k:find("[%u%-%s]") and normal(k) or k
    kind = PAN_FIELDS[lk] and "pan" or FIELDS[lk] or false
    if nkinds >= 4096 then KIND, nkinds = {}, 0 end
    KIND[k], nkinds = kind, nkinds + 1
  end
  return kind
end

-- The redacted form of one field's value, or nil when the field is not
-- sensitive.
function R.field(k, v)
  if type(k) ~= "string" or v == nil then return nil end
  local kind = kind_of(k)
  if kind == "pan" then
    local digits = tostring(v):gsub("%D", "")
    if #digits <= 4 then return nil end -- masked already (************1234)
    return mask_digits(digits)
  end
  return kind or nil
end

-- Whether a table is plain data to look into (error objects and other
-- typed tables are left as they are).
local function plain_table(x)
  if type(x) ~= "table" then return false end
  local mt = getmetatable(x)
  return not mt or mt == ARRAY_MT
end

-- Whether v holds a field to redact, at any depth, and the memo of that
-- answer per table (made on the first nested table: a flat reply needs
-- none). A table met again while it is still being looked at (a cycle)
-- answers yes, so that the copy follows the cycle into copies, never back
-- to an original that holds a secret.
local function needs(v, memo)
  if memo then
    local known = memo[v]
    if known ~= nil then return known, memo end
    memo[v] = true
  end
  local found = false
  for k, x in pairs(v) do
    -- R.field's question, asked inline: every write's reply comes through
    -- here for the journal, and most of its names are known and harmless
    local kind = type(k) == "string" and KIND[k]
    if kind == nil then kind = kind_of(k) end
    if kind and R.field(k, x) ~= nil then
      found = true
      break
    end
    if type(x) == "table" and plain_table(x) then
      memo = memo or { [v] = true }
      if needs(x, memo) then
        found = true
        break
      end
    end
  end
  if memo then memo[v] = found end
  return found, memo
end

-- The redacted copy of v (which needs one). A table reached twice (shared,
-- or in a cycle) has one copy, redacted wherever it is reached.
local function copy(v, memo, copies)
  local c = copies[v]
  if c then return c end
  c = setmetatable({}, getmetatable(v))
  copies[v] = c
  for k, x in pairs(v) do
    local nx = R.field(k, x)
    if nx == nil then
      nx = x
      if plain_table(x) and needs(x, memo) then nx = copy(x, memo, copies) end
    end
    c[k] = nx
  end
  return c
end

-- A copy of decoded data in which every sensitive field is redacted; the
-- value itself when nothing needed it. Returns the value and whether
-- anything was redacted. Error objects and other typed tables are left.
function R.value(v)
  if not plain_table(v) then return v, false end
  local found, memo = needs(v)
  if not found then return v, false end
  return copy(v, memo or {}, {}), true
end

-- A number that would print as a card number or a known secret: the
-- text it shows as, redacted, or nil.
local function number_text(n)
  local s
  if math.type(n) == "integer" then
    s = tostring(n)
  elseif n > -1e20 and n < 1e20 then -- its whole part, as it would print
    s = string.format("%.0f", n >= 0 and math.floor(n) or math.ceil(n))
  else
    return nil
  end
  local red = R.text(s)
  if red ~= s then return red end
  return nil
end

-- Every string (keys too) of decoded data as free text, in a copy; the
-- value itself and false when nothing changed. A table reached twice has
-- one copy.
local function texts(v, copies)
  local t = type(v)
  if t == "string" then
    local red = R.text(v)
    return red, red ~= v
  elseif t == "number" then
    local red = number_text(v)
    if red then return red, true end
    return v, false
  elseif not plain_table(v) then
    return v, false
  end
  local known = copies[v]
  if known then return known, known ~= v end
  local c = setmetatable({}, getmetatable(v))
  copies[v] = c
  local changed = false
  for k, x in pairs(v) do
    local nk, ck = k, false
    if type(k) == "string" then nk, ck = texts(k, copies) end
    local nx, cx = texts(x, copies)
    c[nk] = nx
    changed = changed or ck or cx
  end
  if not changed then copies[v] = v end
  return changed and c or v, changed
end

-- Decoded data about to be printed or encoded (--json, ops output, bodies):
-- by structure (R.value), then every string in it, and every number that
-- reads as a card number or a secret, as free text (R.text). Done on the
-- data, never on the encoded text: masking a number inside JSON text made
-- invalid JSON. Returns the value (a copy when anything changed) and
-- whether anything did.
function R.shown(v)
  local red, changed = R.value(v)
  local out, changed_text = texts(red, {})
  return out, changed or changed_text
end

-- What the journal keeps of decoded data v whose encoding is text (opts:
-- the encoder's): v by structure (R.value) on the hot path; the whole of
-- R.shown only when the text holds a literal secret this process knows (a
-- token a server echoed under a name of its own) or a run of twelve digits
-- or more, spaced or not, that is not a UUID (a card number typed into
-- free text such as update_reason, and echoed in the answer). R.shown
-- costs twenty times R.value, so it is kept for the texts that may need it.
local card_like = require("uqpay.core").card_like
function R.kept(v, text, opts)
  local suspect = card_like(text)
  if not suspect then
    for secret in pairs(secrets) do
      if text:find(secret, 1, true) then suspect = true break end
    end
  end
  local red, changed = (suspect and R.shown or R.value)(v)
  return changed and require("uqpay.json").encode(red, opts) or text
end

-- Registers, as literal secrets, the string values of every field named
-- like a credential (tokens, keys, client id) in decoded data, at any
-- depth. For the token endpoint's reply, before anything is traced: a
-- token repeated under another name or in a message is removed wherever
-- it appears.
function R.learn(v, seen)
  if not plain_table(v) then return end
  seen = seen or {}
  if seen[v] then return end
  seen[v] = true
  for k, x in pairs(v) do
    if type(x) == "string" and type(k) == "string" then
      if CREDENTIALS[normal(k)] then R.secret(x) end
    elseif type(x) == "table" then
      R.learn(x, seen)
    end
  end
end

local function unescape(s)
  return (s:gsub("%+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- A URL for trace: the value of each query parameter named like card data
-- or a secret (by R.field: card numbers keep their last four digits) is
-- replaced; the rest of the URL is left for R.text. A parameter named
-- a[b] is known by b.
function R.url(u)
  if type(u) ~= "string" then return u end
  local base, query, fragment = u:match("^([^?#]*)%?([^#]*)(.*)$")
  if not base then return u end
  local parts = {}
  for pair in query:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=(.*)$")
    if k then
      local name = unescape(k)
      name = name:match("%[([^%]]+)%]$") or name:match("^[^%[]*")
      local red = R.field(name, unescape(v))
      if red then pair = k .. "=" .. red end
    end
    parts[#parts + 1] = pair
  end
  return base .. "?" .. table.concat(parts, "&") .. fragment
end

local BOM = "\239\187\191"

-- CSV (reports) by structure: the header names the columns, and a column
-- named like card data or a secret is redacted in every row. The header
-- may be quoted and may follow a UTF-8 BOM. Text whose first line is not a
-- header of names is returned as it is.
function R.csv(s)
  local bom = s:sub(1, 3) == BOM and BOM or ""
  local header = s:match("^([^\r\n]+)\r?\n", #bom + 1)
  if not header then return s end
  local CSV = require "uqpay.csv"
  local ok, names = pcall(CSV.parse, header)
  names = ok and names[1]
  if not names then return s end
  local sensitive = false
  for _, name in ipairs(names) do
    if not name:match("^%s*[%w_%- ]+%s*$") then return s end -- not a header of names
    -- a value long enough to mask: any sensitive column name answers
    if R.field(name, "00000000") then sensitive = true end
  end
  if not sensitive then return s end
  local records
  ok, records = pcall(CSV.parse, s)
  if not ok then return s end
  local out = { bom .. header }
  for i = 2, #records do
    local row = {}
    for c, v in ipairs(records[i]) do row[c] = R.field(names[c] or "", v) or v end
    out[#out + 1] = CSV.line(row)
  end
  return table.concat(out, "\n") .. "\n"
end

-- A body as sent or received, for trace, errors and the journal: JSON by
-- structure and its strings as free text (R.shown), re-encoded only when
-- something changed (amounts re-encode as sent); CSV by its header; then
-- all of it as free text.
function R.body(s)
  if type(s) ~= "string" or s == "" then return s end
  local json = require "uqpay.json"
  local ok, v = pcall(json.decode, s) -- amounts as money: they re-encode as sent
  if ok and type(v) == "table" then
    local red, changed = R.shown(v)
    local t = R.text(s)
    -- the text can hold what the data does not show (a repeated key's first
    -- value): then it is the redacted data, encoded, that is shown
    if changed or t ~= s then t = R.text(json.encode(red)) end
    return t
  elseif not ok then
    s = R.csv(s)
  end
  return R.text(s)
end

return R
