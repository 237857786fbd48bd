-- --dry-run: the script talks to an in-process twin of the real account,
-- built from the simulator's own business rules (lua/uqpay/sim/). The twin
-- starts empty and reads through: the first time a request needs an object
-- (a card, a balance, an account, a transfer, an order, a cardholder, a
-- product), it is fetched from the real API with a read (only endpoints
-- whose declared effect is read), kept, and answered from the copy; list
-- endpoints merge the real pages with what the twin created or changed.
-- Writes are applied by the twin with the simulator's rules, so the script
-- gets the answers and errors the real run would get, and later reads see
-- the planned state. Nothing that changes state is ever sent.
local core = require "uqpay.core"
local json = require "uqpay.json"
local E = require "uqpay.errors"
local R = require "uqpay.redact"

local Twin = {}
Twin.__index = Twin

local current
-- on_behalf_of for a read: none for the master account
local function obo_of(self, acct)
  if acct == nil or acct == self.master then return false end
  return acct
end

local function endpoint(name) return require("uqpay.api").endpoint(name) end

-- A read from the real API, through the endpoint table: nothing else is
-- ever sent from a dry run. Returns the result, or nil when the API says
-- the object is not there (a 4xx); other failures are raised.
function Twin:read(name, acct, ...)
  local ep = endpoint(name)
  assert(ep and ep.effect == "read", "the twin reads only through endpoints whose effect is read")
  local spec = require("uqpay.api").spec_for(ep, ...)
  spec.real = true
  spec.on_behalf_of = obo_of(self, acct)
  spec.body_text = spec.body ~= nil and json.encode(spec.body, { money = ep.banking and "string" or "number" }) or ""
  local ok, res = pcall(self.client.call, self.client, spec)
  if ok then return res end
  if E.is(res) and res.kind == "api" and type(res.status) == "number" and res.status < 500 then return nil end
  error(res, 0)
end

-- Every item of a real list endpoint (all pages).
function Twin:read_all(name, acct, filters)
  local items, page = {}, 0
  repeat
    page = page + 1
    local f = {}
    for k, v in pairs(filters or {}) do f[k] = v end
    local ep = endpoint(name)
    local spec = require("uqpay.api").spec_for(ep, f)
    spec.real, spec.on_behalf_of = true, obo_of(self, acct)
    spec.query = spec.query or {}
    spec.query.page_size, spec.query.page_number = "100", tostring(page)
    local ok, res = pcall(self.client.call, self.client, spec)
    if not ok then
      if E.is(res) and res.kind == "api" and type(res.status) == "number" and res.status < 500 then return items end
      error(res, 0)
    end
    local data = type(res.data) == "table" and res.data or {}
    for _, x in ipairs(data) do items[#items + 1] = x end
  until data[1] == nil or page >= (math.tointeger(res.total_pages) or 1)
  return items
end

function Twin.get()
  if not current then
    -- items of uqpay.parallel may ask at once: one builds it, the others wait
    require("uqpay.parallel").with_locks({ "twin:new" }, function()
      if not current then current = Twin.new() end
    end)
  end
  return current
end

function Twin.active() return current end

function Twin.new()
  local self = setmetatable({ client = require("uqpay.session").client(), done = {}, before = { bal = {}, cards = {} },
                              writes = {} }, Twin)
  local claims = require("uqpay.token").claims(self.client.token:get())
  local master = claims and claims.entity_id
  if type(master) ~= "string" or master == "" then
    E.raise { kind = "auth", message = "--dry-run: the access token names no account (no entity_id claim)" }
  end
  self.master = master
  local a = self:read("accounts.get", nil, master)
  self.sim = require "uqpay.sim"
  self.st = self.sim.twin_init({ client_id = "twin", api_key = "twin", webhook_secret = "twin",
    master = { account_id = master, account_name = a and a.account_name or "master",
               short_reference_id = a and a.short_reference_id or nil } })
  self.S = require "uqpay.sim.state"
  return self
end

-- Runs fn once per key. Inside uqpay.parallel another item may need the
-- same object while its fetch is under way: it waits on the scheduler's
-- lock for that key, then finds it done.
local function once(self, key, fn)
  if self.done[key] then return end
  require("uqpay.parallel").with_locks({ "twin:" .. key }, function()
    if self.done[key] then return end
    fn()
    self.done[key] = true
  end)
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- ---------- what the twin fetches ----------

function Twin:accounts()
  once(self, "accounts", function()
    for _, a in ipairs(self:read_all("accounts", nil)) do
      if not self.st.accounts[a.account_id] then
        local acc = copy(a)
        acc.master = false
        self.st.accounts[a.account_id] = acc
        self.st.account_order[#self.st.account_order + 1] = a.account_id
      end
    end
  end)
end

function Twin:account(id)
  if id and id ~= self.master and not self.st.accounts[id] then self:accounts() end
end

function Twin:issuing_balance(acct, cur)
  if type(acct) ~= "string" or type(cur) ~= "string" then return end
  cur = cur:upper()
  self:account(acct)
  once(self, "ibal " .. acct .. " " .. cur, function()
    local b = self:read("balance", acct, cur)
    if not b or self.S.balance(self.st, acct, cur) then return end
    local sb = self.S.balance(self.st, acct, cur, true)
    for k, v in pairs(b) do sb[k] = v end
    self.before.bal["issuing " .. acct .. " " .. cur] = b.available_balance
  end)
end

function Twin:issuing_balances(acct)
  self:account(acct)
  once(self, "ibals " .. acct, function()
    for _, b in ipairs(self:read_all("balances", acct)) do self:issuing_balance(acct, b.currency) end
  end)
end

function Twin:cardholder(id, acct, known)
  if type(id) ~= "string" or self.st.cardholders[id] then return end
  local function put(got)
    if self.st.cardholders[id] then return end
    local ch = copy(got)
    ch.account_id = acct
    ch.number_of_cards = ch.number_of_cards or 0
    self.st.cardholders[id] = ch
    self.st.cardholder_order[#self.st.cardholder_order + 1] = id
  end
  if known then return put(known) end
  once(self, "cardholder " .. id, function()
    local got = self:read("cardholders.get", acct, id)
    if got then put(got) end
  end)
end

function Twin:put_card(c, acct)
  local st = self.st
  if st.cards[c.card_id] then return end
  local card = copy(c)
  card.account_id = acct
  card.cardholder = nil
  card.consumed_amount = card.consumed_amount or core.money("0")
  card.metadata = card.metadata or {}
  st.cards[c.card_id] = card
  st.card_order[#st.card_order + 1] = c.card_id
  if type(c.cardholder) == "table" then self:cardholder(c.cardholder.cardholder_id, acct, c.cardholder) end
  self.before.cards[c.card_id] = card.available_balance
  self:issuing_balance(acct, card.card_currency)
end

function Twin:card(id, acct)
  if not core.uuid_lower(id) or self.st.cards[id] then return end
  once(self, "card " .. id, function()
    local c = self:read("cards.get", acct, id)
    if c then self:put_card(c, acct) end
  end)
end

function Twin:cards(acct, query)
  local f = {}
  for k, v in pairs(query or {}) do if k ~= "page_size" and k ~= "page_number" then f[k] = v end end
  once(self, "cards " .. acct .. " " .. json.encode(f), function()
    for _, c in ipairs(self:read_all("cards", acct, f)) do self:put_card(c, acct) end
  end)
end

function Twin:products()
  once(self, "products", function()
    for _, p in ipairs(self:read_all("products", nil)) do
      if not self.st.products[p.product_id] then
        self.st.products[p.product_id] = copy(p)
        self.st.product_order[#self.st.product_order + 1] = p.product_id
      end
    end
  end)
end

function Twin:arts()
  once(self, "arts", function()
    local got = self:read("cards.arts", nil)
    if type(got) ~= "table" then return end
    for _, a in ipairs(type(got.card_arts) == "table" and got.card_arts or {}) do
      self.st.card_arts[#self.st.card_arts + 1] = copy(a)
    end
    if got.default_card_art_id ~= "" then self.st.default_card_art_id = got.default_card_art_id end
  end)
end

function Twin:cardholders(acct)
  once(self, "cardholders " .. acct, function()
    for _, ch in ipairs(self:read_all("cardholders", acct)) do self:cardholder(ch.cardholder_id, acct, ch) end
  end)
end

function Twin:order(id, acct)
  if self.st.orders[id] then return end
  once(self, "order " .. id, function()
    local o = self:read("cards.order", acct, id)
    if not o then return end
    self:card(o.card_id, acct)
    require("uqpay.sim.state").put_order(self.st, o)
  end)
end

function Twin:transfer(id, acct)
  if self.st.transfers[id] then return end
  once(self, "transfer " .. id, function()
    local t = self:read("transfers.get", acct, id)
    if t then self.st.transfers[id] = copy(t) end
  end)
end

function Twin:itxns(acct)
  self:issuing_balances(acct)
  once(self, "itxns " .. acct, function()
    local real = {}
    for _, t in ipairs(self:read_all("balance_transactions", acct)) do
      local x = copy(t)
      x.account_id, x._real = acct, true
      real[#real + 1] = x
    end
    for i, t in ipairs(real) do table.insert(self.st.itxns, i, t) end
    self.st.real_itxns = (self.st.real_itxns or 0) + #real -- the ledger numbers its own rows after them
  end)
end

function Twin:banking_balances(acct)
  if type(acct) ~= "string" then return end
  self:account(acct)
  once(self, "bbals " .. acct, function()
    self.st.banking[acct] = self.st.banking[acct] or {}
    for _, b in ipairs(self:read_all("banking.balances", acct)) do
      if not self.st.banking[acct][b.currency] then
        self.st.banking[acct][b.currency] = copy(b)
        self.before.bal["banking " .. acct .. " " .. b.currency] = b.available_balance
      end
    end
  end)
end

function Twin:banking_transfer(id, acct)
  if self.st.banking_transfers[id] then return end
  once(self, "btransfer " .. id, function()
    local t = self:read("banking.transfers.get", acct, id)
    if t then self.st.banking_transfers[id] = copy(t) end
  end)
end

-- Before the twin's rules handle a request: fetch what it needs. Returns
-- true when the twin models what the request reads (it holds the family's
-- real objects, so its answer is the real one plus the plan); any other
-- read is answered by the real API (Twin:forward).
function Twin:hydrate(method, path, body_text, obo, query)
  local acct = obo or self.master
  self:account(obo)
  local body = {}
  if method ~= "GET" and body_text and body_text ~= "" then
    local ok, b = pcall(json.decode, body_text)
    if ok and type(b) == "table" then body = b end
  end
  if path == "/v1/issuing/balances" then
    if method == "POST" then self:issuing_balance(acct, body.currency) else self:issuing_balances(acct) end
  elseif path == "/v1/issuing/balances/transactions" then
    self:itxns(acct)
  elseif path == "/v1/issuing/transfers" then
    self:account(body.source_account_id)
    self:account(body.destination_account_id)
    self:issuing_balance(body.source_account_id, body.currency)
    self:issuing_balance(body.destination_account_id, body.currency)
  elseif path:match("^/v1/issuing/transfers/") then
    self:transfer(path:match("^/v1/issuing/transfers/([^/]+)"), acct)
  elseif path == "/v1/issuing/products" or path == "/v1/issuing/cards/bulk" then
    self:products()
  elseif path == "/v1/issuing/cardholders" then
    self:cardholders(acct)
  elseif path:match("^/v1/issuing/cardholders/") then
    self:cardholder(path:match("^/v1/issuing/cardholders/([^/]+)"), acct)
  elseif path == "/v1/issuing/cards" then
    if method == "GET" then
      self:cards(acct, query)
    else
      self:products()
      self:cardholder(body.cardholder_id, acct)
      self:issuing_balance(acct, body.card_currency)
    end
  elseif path == "/v1/issuing/cards/activate" or path == "/v1/issuing/cards/pin"
      or path == "/v1/issuing/cards/manage/pin" then
    self:card(body.card_id, acct)
  elseif path == "/v1/issuing/cards/assign" then
    self:cardholder(body.cardholder_id, acct)
  elseif path:match("^/v1/issuing/cards/arts") then
    self:arts()
  elseif path:match("^/v1/issuing/cards/[^/]+/order$") then
    self:order(path:match("^/v1/issuing/cards/([^/]+)/order$"), acct)
  elseif path:match("^/v1/issuing/cards/[^/]+/secure$") or path:match("^/v1/issuing/cards/[^/]+/token$") then
    return false -- secure data and PAN tokens are the real card's
  elseif path:match("^/v1/issuing/cards/") then
    self:card(path:match("^/v1/issuing/cards/([^/]+)"), acct)
  elseif path:match("^/v1/simulation/issuing/") then
    self:card(body.card_id, acct)
  elseif path == "/v1/accounts" or path:match("^/v1/accounts/") then
    self:accounts()
  elseif path == "/v1/balances" or path:match("^/v1/balances/") then
    self:banking_balances(acct)
  elseif path == "/v1/transfer" and method == "POST" then
    self:banking_balances(body.source_account_id)
    self:banking_balances(body.target_account_id)
  elseif path:match("^/v1/transfer/") then
    self:banking_transfer(path:match("^/v1/transfer/([^/]+)"), acct)
  elseif (path:match("^/v1/payouts") or path:match("^/v1/conversion")) and method ~= "GET" then
    self:banking_balances(acct)
  else
    return false
  end
  return true
end

-- A read the twin does not model, sent to the real API as it is (only
-- reads: the caller checks). A list gets the twin's own items (what the
-- script created in this dry run) after the real ones, on the last page;
-- a single object the twin created or changed is the twin's. Returns the
-- transport's answer, or nil to let the twin answer.
function Twin:forward(req, path, query, obo, mine)
  local spec = { method = req.method, path = path, query = query, body_text = req.body or "", raw = true,
                 real = true, on_behalf_of = obo or false }
  local ok, text = pcall(self.client.call, self.client, spec)
  if not ok then
    if E.is(text) and text.kind == "api" and type(text.status) == "number" and text.status < 500 then return nil end
    error(text, 0)
  end
  local out = { status = 200, body = text, headers = { ["content-type"] = "application/json" }, time_ms = 0 }
  if req.method ~= "GET" then return out end
  local okr, real = pcall(json.decode, text)
  local okm, own = pcall(json.decode, mine.body or "")
  if not (okr and type(real) == "table" and mine.status == 200 and okm and type(own) == "table") then return out end
  if type(real.data) == "table" and type(own.data) == "table" then
    local last = (math.tointeger(tonumber(query.page_number)) or 1) >= (math.tointeger(real.total_pages) or 1)
    if not last or own.data[1] == nil then return out end
    for _, x in ipairs(own.data) do real.data[#real.data + 1] = x end
    if math.type(real.total_items) == "integer" then real.total_items = real.total_items + #own.data end
    out.body = json.encode(real)
  elseif real.data == nil and own.data == nil then
    out.body = mine.body -- the twin's copy: it made or changed it
  end
  return out
end

-- ---------- answering ----------

-- The transport's answer for a request under --dry-run.
function Twin:handle(req, op)
  if op then op:dispatch() end -- the same check as a real send: intent durable
  local base = require("uqpay.config").active().base_url
  local url = req.url
  if url:sub(1, #base) ~= base then return nil, "network", "--dry-run: not this API: " .. url, false end
  local rest = url:sub(#base + 1)
  local path, qs = rest:match("^([^?]*)%??(.*)$")
  local query = {}
  for k, v in qs:gmatch("([^&=]+)=([^&]*)") do
    query[k:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)] =
      v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  end
  local headers = {}
  for _, h in ipairs(req.headers or {}) do
    local k, v = h:match("^([^:]+):%s*(.*)$")
    if k then headers[k:lower()] = v end
  end
  local key = op and op:key() or headers["x-idempotency-key"]
  headers["x-idempotency-key"] = key
  local body = req.body or ""
  if req.multipart then -- the twin reads the file as the server would receive it
    local f = io.open(req.multipart.path, "rb")
    local data = f and f:read("a") or ""
    if f then f:close() end
    body = "--twin\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" .. (req.multipart.filename or "file") ..
      "\"\r\n\r\n" .. data .. "\r\n--twin--\r\n"
  end
  local obo = headers["x-on-behalf-of"]
  local modelled = self:hydrate(req.method, path, body, obo ~= "" and obo or nil, query)
  local res = self.sim.handle { method = req.method, path = "/api" .. path, body = body, headers = headers,
                                query = query, loopback = false }
  local out = { status = res.status or 200, body = res.body or "", headers = {}, time_ms = 0 }
  for k, v in pairs(res.headers or {}) do out.headers[k:lower()] = v end
  out.retry_after = out.headers["retry-after"] -- what the transport passes on
  if not modelled and not req.write then
    out = self:forward(req, path, query, obo ~= "" and obo or nil, out) or out
  end
  if req.write then self:record(req, path, key, headers["x-on-behalf-of"], out) end
  return out
end

-- Each would-be write, printed as it happens and kept for the plan.
function Twin:record(req, path, key, obo, res)
  local w = { n = #self.writes + 1, method = req.method, path = path, key = key, on_behalf_of = obo,
              body = req.body and R.body(req.body) or "", status = res.status }
  if res.status >= 300 then
    local ok, b = pcall(json.decode, res.body, { money = false })
    w.error = ok and type(b) == "table" and (b.message or b.error) or ("HTTP " .. res.status)
    if not self.first_error then self.first_error = w end
  end
  self.writes[#self.writes + 1] = w
  local out = require "uqpay.jsonout"
  if out.enabled() then
    out.emit { dry_run = { n = w.n, method = w.method, path = w.path, idempotency_key = key, on_behalf_of = obo,
                           body = w.body, status = w.status, error = w.error } }
  else
    io.stderr:write(string.format("dry-run %d: %s %s  key=%s%s%s\n    %s\n", w.n, w.method, w.path, key,
      obo and (" on-behalf-of=" .. obo) or "", w.error and ("  -> " .. w.status .. " " .. w.error) or "",
      w.body ~= "" and w.body or "(no body)"))
  end
end

-- The plan: money moved per currency, balances and cards before -> after,
-- the first error the real run would hit.
function Twin:plan()
  local st = self.st
  local moved = {}
  local function add(cur, amount)
    moved[cur] = (moved[cur] or core.money("0")) + amount
  end
  for _, t in ipairs(self.S.itxn_rows(st)) do
    if not t._real and (t.transaction_type == "CARD_RECHARGE" or t.transaction_type == "CARD_WITHDRAW"
        or t.transaction_type == "TRANSFER_OUT") then
      add(t.currency, t.amount)
    end
  end
  for _, t in pairs(st.banking_transfers) do
    if t.create_time and not self.done["btransfer " .. tostring(t.transfer_id)] then
      add(t.transfer_currency, t.transfer_amount)
    end
  end
  local balances, cards = {}, {}
  local keys = {}
  for k in pairs(self.before.bal) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local scope, acct, cur = k:match("^(%S+) (%S+) (%S+)$")
    local now = scope == "issuing" and self.S.balance(st, acct, cur) or (st.banking[acct] or {})[cur]
    local after = now and now.available_balance
    if after and after ~= self.before.bal[k] then
      balances[#balances + 1] = { scope = scope, account_id = acct, currency = cur, before = self.before.bal[k],
                                  after = after }
    end
  end
  local ids = {}
  for id in pairs(self.before.cards) do ids[#ids + 1] = id end
  table.sort(ids)
  for _, id in ipairs(ids) do
    local c = st.cards[id]
    if c and c.available_balance ~= self.before.cards[id] then
      cards[#cards + 1] = { card_id = id, currency = c.card_currency, before = self.before.cards[id],
                            after = c.available_balance, status = c.card_status }
    end
  end
  for _, id in ipairs(st.card_order) do -- cards the dry run issued
    local c = st.cards[id]
    if self.before.cards[id] == nil and c then
      cards[#cards + 1] = { card_id = id, currency = c.card_currency, before = core.money("0"),
                            after = c.available_balance, status = c.card_status, new = true }
    end
  end
  return { writes = self.writes, moved = moved, balances = balances, cards = cards, first_error = self.first_error }
end

return Twin
