-- uqpay.parallel(items, fn, {concurrency=, stop_on_error=}) (SPEC §7):
-- runs fn(item, i) for each item in a coroutine; their requests overlap on
-- one libcurl multi handle in this Lua state. Code running inside fn does
-- not change: the request path asks P.http / P.sleep, which yield to the
-- scheduler here instead of blocking.
--
-- Writes to the same card or account go one at a time, in the order the
-- items reach them (items start in input order). Journal intents written
-- by concurrent items are made durable together: one fdatasync before the
-- scheduler lets their requests out (group commit).
local core = require "uqpay.core"
local E = require "uqpay.errors"

local P = {}
local current -- the running scheduler; parallel does not nest

local MAX_CONCURRENCY = 64

function P.active()
  return current ~= nil and not current.blocking and current.items[coroutine.running()] ~= nil
end

-- fn(...) without yielding to the scheduler: its requests and sleeps block
-- the whole batch (transfers already out keep going; their answers wait
-- for the next round). For work every item would wait on anyway, such as
-- fetching the token: no other item runs in between, so none can find it
-- half done.
function P.blocking(fn, ...)
  if not current or current.blocking then return fn(...) end
  current.blocking = true
  local results = table.pack(pcall(fn, ...))
  current.blocking = false
  if not results[1] then error(results[2], 0) end
  return table.unpack(results, 2, results.n)
end

-- HTTP through the scheduler: same results as transport.request, or nil,
-- "recalled" when req.recall(req) said at the round's end that it must not
-- leave after all (it was never sent; the caller decides again).
function P.http(req, op)
  local r = coroutine.yield { op = "http", req = req, jop = op }
  return r.res, r.kind, r.message, r.sent
end

local RECALLED = { kind = "recalled", message = "held back before it was sent", sent = false }

-- Sleeps ms, letting other items run; false when interrupted.
function P.sleep(ms)
  if not P.active() then return core.sleep_ms(ms) end
  coroutine.yield { op = "sleep", ms = ms }
  return not core.interrupted()
end

-- A durable-before-dispatch hook: a journal that took an intent without
-- syncing registers itself; the scheduler syncs it before any request
-- leaves (the transport refuses a write whose intent is not durable).
function P.dirty(journal)
  current.dirty[journal] = true
end

-- Resource locks: fn runs while holding every key (sorted, so two items
-- locking the same pair cannot deadlock). They are let go by a
-- to-be-closed value: when fn returns, raises, or its coroutine is closed.
function P.with_locks(keys, fn, ...)
  if not P.active() or #keys == 0 then return fn(...) end
  table.sort(keys)
  local s, me = current, coroutine.running()
  local locks = s.locks
  local held = {}
  for _, k in ipairs(keys) do
    if not held[k] then
      local l = locks[k]
      if l then
        l.queue[#l.queue + 1] = me
        coroutine.yield { op = "lock" } -- resumed by the holder's release
      else
        locks[k] = { owner = me, queue = {} }
      end
      held[k] = true
    end
  end
  local release = setmetatable({}, { __close = function()
    for k in pairs(held) do
      local l = locks[k]
      local nxt = table.remove(l.queue, 1)
      if nxt then
        l.owner = nxt
        s.ready[#s.ready + 1] = { co = nxt }
      else
        locks[k] = nil
      end
    end
  end })
  local _ <close> = release
  return fn(...)
end

local function check_args(items, fn, opts)
  if type(items) ~= "table" then E.usage("items", items, "must be an array") end
  if type(fn) ~= "function" then E.usage("fn", fn, "must be a function") end
  opts = opts or {}
  if type(opts) ~= "table" then E.usage("opts", opts, "must be a table {concurrency=, stop_on_error=}") end
  for k in pairs(opts) do
    if k ~= "concurrency" and k ~= "stop_on_error" then
      E.usage("opts." .. tostring(k), opts[k], "is not an option of uqpay.parallel (concurrency, stop_on_error)")
    end
  end
  local c = opts.concurrency or 8
  if math.type(c) ~= "integer" or c < 1 or c > MAX_CONCURRENCY then
    E.usage("concurrency", c, "must be an integer from 1 to " .. MAX_CONCURRENCY)
  end
  return c, opts.stop_on_error == true
end

-- Returns results, errors: both indexed like items (errors[i] for the
-- items that failed; empty when none did).
function P.run(items, fn, opts)
  local concurrency, stop_on_error = check_args(items, fn, opts)
  if current then E.usage("uqpay.parallel", "(nested)", "cannot run inside another uqpay.parallel") end
  local s = { multi = require("uqpay.transport").multi(), items = {}, waiting = {}, timers = {}, ready = {}, locks = {},
              dirty = {}, outgoing = {} }
  local results, errors = {}, {}
  local n, next_item, running, failed = #items, 1, 0, false
  current = s

  local function step(co, value)
    local i = s.items[co]
    local ok, y = coroutine.resume(co, value)
    if not ok then
      -- a coroutine that raised has not unwound its stack (Lua 5.4 closes
      -- nothing then): closing it releases its locks, or every later item
      -- on the same card or account waits for ever
      coroutine.close(co)
      errors[i], failed = y, true
    elseif coroutine.status(co) == "dead" then
      results[i] = y
    else
      local what = type(y) == "table" and y.op
      if what == "http" then
        s.outgoing[#s.outgoing + 1] = { co = co, req = y.req, jop = y.jop }
        return
      elseif what == "sleep" then
        s.timers[#s.timers + 1] = { at = core.monotonic_ms() + y.ms, co = co }
        return
      elseif what == "lock" then
        return -- the holder puts it back on the ready list
      end
      -- the item's own coroutine.yield came through to here, and nothing
      -- would ever resume it: it fails, and closing it lets go of its locks
      coroutine.close(co)
      errors[i], failed = E.new { kind = "usage", message = string.format("uqpay.parallel: item %d yielded a %s of " ..
        "its own (coroutine.yield outside a coroutine it made); nothing would resume it", i, type(y)) }, true
    end
    s.items[co] = nil
    running = running - 1
  end

  local ok, err = pcall(function()
    while true do
      if core.interrupted() then
        E.raise { kind = "interrupted", message = "interrupted during uqpay.parallel" }
      end
      while running < concurrency and next_item <= n and not (failed and stop_on_error) do
        local i = next_item
        next_item = next_item + 1
        local co = coroutine.create(function() return fn(items[i], i) end)
        s.items[co] = i
        running = running + 1
        step(co)
      end
      -- everything ready runs until it waits again
      while #s.ready > 0 do
        local r = table.remove(s.ready, 1)
        step(r.co, r.value)
      end
      -- group commit: intents on disk before their requests leave
      for j in pairs(s.dirty) do j:sync() end
      s.dirty = {}
      -- requests wait for the round's end: one whose caller's reason to send
      -- went away meanwhile (a 429 handled later in the round opened a
      -- pause) goes back to its item instead of out
      for _, o in ipairs(s.outgoing) do
        if o.req.recall and o.req:recall() then
          s.ready[#s.ready + 1] = { co = o.co, value = RECALLED }
        else
          s.waiting[s.multi:add(o.req, o.jop)] = o.co
        end
      end
      s.outgoing = {}
      if running == 0 and (next_item > n or (failed and stop_on_error)) then break end
      -- wait for a transfer or the next timer, unless there is work now
      local now = core.monotonic_ms()
      local wait = 100
      for _, t in ipairs(s.timers) do wait = math.min(wait, math.max(0, t.at - now)) end
      if #s.ready > 0 or (running < concurrency and next_item <= n and not (failed and stop_on_error)) then
        wait = 0
      end
      if s.multi:count() > 0 then
        for _, d in ipairs(s.multi:run(wait)) do
          local co = s.waiting[d.id]
          s.waiting[d.id] = nil
          s.ready[#s.ready + 1] = { co = co, value = d }
        end
      elseif #s.ready == 0 and wait > 0 then
        core.sleep_ms(wait)
      end
      now = core.monotonic_ms()
      local keep = {}
      for _, t in ipairs(s.timers) do
        if t.at <= now then s.ready[#s.ready + 1] = { co = t.co } else keep[#keep + 1] = t end
      end
      s.timers = keep
    end
  end)
  current = nil
  if not ok then
    -- transfers of items that will never be resumed: stop them
    for id in pairs(s.waiting) do s.multi:remove(id) end
    error(err, 0)
  end
  return results, errors
end

return P
