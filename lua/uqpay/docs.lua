-- The one documentation table: every public uqpay function with its
-- signature, summary, what it returns and an example. Endpoint functions
-- take theirs from uqpay.endpoints; the utilities are described here.
-- help() in the REPL prints from it, and docs/api.md is generated from it
-- (scripts/gen-api-doc.lua; a test fails when they disagree).
local endpoints = require "uqpay.endpoints"

local D = {}

D.utilities = {
  { name = "money", signature = "uqpay.money(x [, currency])",
    summary = "An exact decimal amount from a string, an integer, a float with at most two decimals, or " ..
      "another money value. `currency` (ISO 4217) sets the decimals allowed (2 for most, 0 for JPY, 3 for KWD; " ..
      "2 without one). Too many decimals is an error, never a rounding. Supports `+ - unary- == < <=`, `*` by " ..
      "an integer, comparisons with numbers and strings (`m < \"10\"`; Lua only calls `==` between two money " ..
      "values), `tostring(m)`, `m:minor()` (integer minor units), `m:currency()`, `m:sign()`, " ..
      "`uqpay.money.is(v)`. Amounts of two currencies never combine: adding them is an error.",
    returns = "a uqpay.Money value",
    example = 'local total = uqpay.money("0")\nfor _, a in ipairs { "0.10", "0.20" } do total = total + a end\n' ..
      'assert(total == uqpay.money("0.30"))\nprint(total:minor())   --> 30' },
  { name = "uuid", signature = "uqpay.uuid()",
    summary = "A lowercase UUID v4, for example to give an operation a key you record first.",
    returns = "string",
    example = 'local key = uqpay.uuid()\nuqpay.recharge(card_id, "10.00", { key = key })' },
  { name = "json.encode", signature = "uqpay.json.encode(value [, {money = \"string\"}])",
    summary = "JSON text with sorted keys; money as bare numbers unless `money = \"string\"`.",
    returns = "string",
    example = 'print(uqpay.json.encode { amount = uqpay.money("1.50"), ids = uqpay.json.array {} })\n' ..
      '--> {"amount":1.50,"ids":[]}' },
  { name = "json.decode", signature = "uqpay.json.decode(text [, {money = false}])",
    summary = "A Lua value from JSON: integers stay integers, amount fields become money (unless " ..
      "`money = false`), null is `uqpay.json.null` (the same value as `cjson.null`). An amount takes the " ..
      "currency its object names for it: `X_currency` for `X`, else the currency of its prefix " ..
      "(`billing_amount`: `billing_currency`), else `currency`, else `card_currency`; so every answer's " ..
      "amounts know their currency. Requests are checked by the same rule before they are sent.",
    returns = "the decoded value",
    example = 'local t = uqpay.json.decode(\'{"amount": "5.10", "n": 12345678901234567}\')\n' ..
      'print(t.amount, math.type(t.n))   --> 5.10 integer' },
  { name = "json.array", signature = "uqpay.json.array([t])",
    summary = "Marks a table as a JSON array, so that an empty one encodes as `[]`.",
    returns = "t", example = 'uqpay.json.encode(uqpay.json.array {})   --> []' },
  { name = "config", signature = "uqpay.config()",
    summary = "The active configuration, secrets redacted: env, base_url, profile, on_behalf_of, " ..
      "client_id and api_key as \"[REDACTED]\", rate limit, timeouts, attempts.",
    returns = "table", example = 'print(uqpay.config().env)   --> sandbox' },
  { name = "request",
    signature = "uqpay.request(method, path [, {query=, body=, key=, on_behalf_of=, timeout_ms=, banking=, raw=, effect=}])",
    summary = "Any endpoint not in the table, through the same request path (token, idempotency, retries, " ..
      "errors, journal). `banking = true` sends amounts as strings; `raw = true` returns the response text. " ..
      "`effect` is \"read\" for GET and \"write\" otherwise; say `effect = \"read\"` for a POST that only reads " ..
      "(writes are journaled and guarded in production, reads are not).",
    returns = "the decoded response",
    example = 'local page = uqpay.request("GET", "/v1/issuing/cards", { query = { page_size = 10, page_number = 1 } })\n' ..
      'print(page.total_items)' },
  { name = "account", signature = "uqpay.account()",
    summary = "The account the credentials belong to: its id (the access token's entity_id claim), name and " ..
      "short id, so that scripts need not copy the master account's id.",
    returns = "{account_id, account_name, short_account_id}",
    example = 'local master = uqpay.account()\nprint(master.account_id, master.account_name)' },
  { name = "table", signature = "uqpay.table(list [, columns])",
    summary = "Prints a list of records as an aligned table (amounts right-aligned, secrets redacted) and " ..
      "returns the text; columns default to the sorted keys of the first record.",
    returns = "string",
    example = 'uqpay.table(uqpay.balances(), { "currency", "available_balance" })' },
  { name = "cards.secure_iframe_url", signature = "uqpay.cards.secure_iframe_url(card_id [, {lang =, styles =, on_behalf_of =}])",
    summary = "The secure card iframe's URL (shows the card's number to the cardholder without it reaching you), " ..
      "built from a fresh single-use PAN token (uqpay.cards.pan_token) on the environment's iframe host; " ..
      "`styles` is a table of CSS by selector. The token is never printed.",
    returns = "{iframe_url, expires_in, expires_at}",
    example = 'local u = uqpay.cards.secure_iframe_url(card_id, { lang = "en" })\nprint(u.expires_in)   --> 60' },
  { name = "files.upload", signature = "uqpay.files.upload(path [, {notes =, key =, on_behalf_of =}])",
    summary = "Uploads a jpeg, jpg, png, pdf, doc or docx file (at most 20 MB) to the file service's host as " ..
      "multipart/form-data; the file_id goes into sub-account documents, payouts and RFI answers. A write " ..
      "(journaled), known by the file's name, size and content hash.",
    returns = "{file_id, file_name, file_type, size, create_time, notes}",
    example = 'local f = uqpay.files.upload("passport.png", { notes = "passport front" })\nprint(f.file_id)' },
  { name = "wait", signature = "uqpay.wait(result [, {timeout_ms = 60000, on_behalf_of =}])",
    summary = "Polls a card order (anything with card_order_id) or a transfer (transfer_id) until a terminal " ..
      "status (SUCCESS, FAILED, completed, failed, ...) and returns the final object; a timeout error after " ..
      "timeout_ms. Pass the same on_behalf_of as the operation.",
    returns = "the final card order or transfer",
    example = 'local t = uqpay.transfer { source_account_id = MASTER, destination_account_id = SUB,\n' ..
      '                           currency = "USD", amount = "500.00" }\nprint(uqpay.wait(t).transfer_status)   --> completed' },
  { name = "parallel", signature = "uqpay.parallel(items, fn [, {concurrency = 8, stop_on_error = false}])",
    summary = "Runs fn(item, i) for each item in coroutines whose requests overlap on one libcurl multi " ..
      "handle. Results and errors come back in input order; a failing item does not stop the others unless " ..
      "stop_on_error. Writes to the same card or account are never reordered; journal intents of concurrent " ..
      "items share one fdatasync.",
    returns = "results, errors (both indexed like items; errors[i] for the items that failed)",
    example = 'local results, errors = uqpay.parallel(rows, function(row)\n' ..
      '  return uqpay.recharge(row.card_id, row.amount)\nend, { concurrency = 8 })\n' ..
      'for i, err in pairs(errors) do print("row " .. i, err) end' },
  { name = "version", signature = "uqpay.version",
    summary = "The uqlua version string.", returns = "string", example = 'print(uqpay.version)   --> 0.1.0' },
  { name = "webhook.verify", signature = "uqpay.webhook.verify{body=, timestamp=, signature=, secret=, tolerance_s=300}",
    summary = "Checks a webhook delivery: HMAC-SHA512 of the raw body followed by the x-wk-timestamp header " ..
      "text, hex, compared in constant time; timestamps in seconds or milliseconds, within tolerance_s of now.",
    returns = "true, or false and the reason",
    example = 'local ok, why = uqpay.webhook.verify { body = raw_body, timestamp = headers["x-wk-timestamp"],\n' ..
      '  signature = headers["x-wk-signature"], secret = WEBHOOK_SECRET }' },
}

local function signature(ep, name)
  local args = {}
  for _, a in ipairs(ep.args) do
    if a == "{}" then args[#args + 1] = "{fields}"
    elseif a == "{}?" then args[#args + 1] = "[{filters}]"
    else args[#args + 1] = a end
  end
  args[#args + 1] = "[opts]"
  return "uqpay." .. name .. "(" .. table.concat(args, ", ") .. ")"
end

local function fields(ep)
  local names = {}
  for k in pairs(ep.fields) do names[#names + 1] = k end
  table.sort(names)
  local out = {}
  for _, k in ipairs(names) do
    local t = ep.fields[k]
    local req = t:sub(-1) == "!"
    if req then t = t:sub(1, -2) end
    t = t:gsub("^enum:", ""):gsub("^(%a+)<=(%d+)$", "%1, at most %2 characters")
    out[#out + 1] = { name = k, required = req, type = t }
  end
  return out
end

-- The family an endpoint belongs to, for help() and the coverage table.
function D.group(ep)
  if ep.files then return "Files" end
  if ep.banking then return "Banking" end
  if ep.name:match("^accounts") or ep.name:match("^rfis") then return "Connect" end
  if ep.name:match("^simulate") then return "Simulation" end
  return "Issuing"
end

-- Every endpoint function as a doc entry; list endpoints give two.
function D.endpoint_entries()
  local out = {}
  for _, ep in ipairs(endpoints) do
    local names = ep.kind == "list" and { ep.name .. ".list", ep.name .. ".each" } or { ep.name }
    for _, name in ipairs(names) do
      out[#out + 1] = { name = name, signature = signature(ep, name), summary = ep.doc.summary,
        endpoint = ep.method .. " " .. ep.path, banking = ep.banking, fields = fields(ep), fixed = ep.fixed,
        effect = ep.effect,
        returns = ep.doc.returns, example = ep.doc.example, group = D.group(ep) }
    end
  end
  return out
end

-- Utilities, then endpoints: every entry.
function D.entries()
  local out = {}
  for _, u in ipairs(D.utilities) do
    local e = { group = "Utilities" }
    for k, v in pairs(u) do e[k] = v end
    out[#out + 1] = e
  end
  for _, e in ipairs(D.endpoint_entries()) do out[#out + 1] = e end
  return out
end

return D
