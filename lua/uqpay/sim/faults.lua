-- Fault injection rules for the simulator.
--
-- SPEC  := RULE { ";" RULE }           (a "," also separates rules)
-- Rules are tried in order: a request gets at most one failure (the first
-- rule that fires) and at most one latency.
-- RULE  := KIND [ "=" PROBABILITY ] { ":" OPTION }
-- KIND  := fail_before | fail_after | conflict | drop | latency | burst429 | hollow_pages | oversize | redirect
-- OPTION:= next=N | path=GLOB | method=METHOD | ms=N | bytes=N
--
-- conflict applies the request, records its answer for the key, then
-- answers 409 without saying "processing": a status the API does not
-- document for Issuing, so a client must not take it as a rejection.
-- hollow_pages and oversize are hostile answers, for testing clients: a
-- list page claiming 1,000,000,000 pages with no items; a 200 whose body
-- is bytes=N long (default 33 MiB); a 302 to another host (redirect).
--
-- "drop=0.1" drops 10% of requests after applying them; "fail_before:next=2:
-- path=/v1/issuing/cards/*/recharge" fails the next two recharges before
-- applying; "latency=1:ms=300" delays every request by 300 ms. In a GLOB,
-- "*" is one path segment and "**" any run of characters. Without a path,
-- a rule matches every API path except the token endpoint.
local F = {}

local KINDS = { fail_before = true, fail_after = true, conflict = true, drop = true, latency = true, burst429 = true,
                hollow_pages = true, oversize = true, redirect = true }

local function glob_pattern(g)
  local p = g:gsub("[%^%$%(%)%%%.%[%]%+%-%?]", "%%%0")
  p = p:gsub("%*%*", "\1"):gsub("%*", "[^/]*"):gsub("\1", ".*")
  return "^" .. p .. "$"
end

-- Validates and normalises one rule table; returns rule or nil, message.
function F.rule(t)
  if not KINDS[t.kind] then return nil, "unknown fault kind '" .. tostring(t.kind) .. "'" end
  local r = { kind = t.kind, path = t.path, method = t.method and t.method:upper() }
  r.p = tonumber(t.p or (t.next and 1) or 1)
  if not r.p or r.p < 0 or r.p > 1 then return nil, "fault probability must be between 0 and 1" end
  if t.next ~= nil then
    r.next = math.tointeger(tonumber(t.next))
    if not r.next or r.next < 1 then return nil, "fault next= must be a positive integer" end
  end
  r.ms = math.tointeger(tonumber(t.ms or (t.kind == "latency" and 200) or 0))
  if not r.ms or r.ms < 0 then return nil, "fault ms= must be a non-negative integer" end
  r.bytes = math.tointeger(tonumber(t.bytes or 33 * 1024 * 1024))
  if not r.bytes or r.bytes < 2 or r.bytes > 256 * 1024 * 1024 then
    return nil, "fault bytes= must be an integer from 2 to 268435456"
  end
  if r.path then r.pattern = glob_pattern(r.path) end
  return r
end

function F.parse(spec)
  local rules = {}
  for part in spec:gmatch("[^;,]+") do
    part = part:match("^%s*(.-)%s*$")
    if part ~= "" then
      local head, opts = part:match("^([^:]+)(.*)$")
      local kind, p = head:match("^([%w_]+)=(.+)$")
      local t = { kind = kind or head, p = p }
      for k, v in opts:gmatch(":([%w_]+)=([^:]+)") do t[k] = v end
      local r, err = F.rule(t)
      if not r then return nil, err .. " in '" .. part .. "'" end
      rules[#rules + 1] = r
    end
  end
  return rules
end

local function matches(r, method, path)
  if r.method and r.method ~= method then return false end
  if r.pattern then return path:match(r.pattern) ~= nil end
  return path ~= "/v1/connect/token"
end

-- The rules firing for this request: the first failure rule that fires (in
-- the order given), plus a latency rule; "next" counts are consumed only by
-- rules that fire, exhausted rules removed.
local NONE = setmetatable({}, { __newindex = function() error("no rule fired", 2) end })
function F.pick(rules, method, path, random)
  if #rules == 0 then return NONE end -- the common case, with no table per request
  local fired = {}
  local failure = false
  local i = 1
  while i <= #rules do
    local r = rules[i]
    local removed = false
    local free = r.kind == "latency" and not fired.latency or r.kind ~= "latency" and not failure
    if free and matches(r, method, path) and (r.p >= 1 or random() < r.p) then
      failure = failure or r.kind ~= "latency"
      fired[r.kind] = r
      if r.next then
        r.next = r.next - 1
        if r.next == 0 then table.remove(rules, i); removed = true end
      end
    end
    if not removed then i = i + 1 end
  end
  return fired
end

function F.describe(rules)
  local out = {}
  for _, r in ipairs(rules) do
    out[#out + 1] = { kind = r.kind, p = r.p, next = r.next, path = r.path, method = r.method, ms = r.ms,
                      bytes = r.kind == "oversize" and r.bytes or nil }
  end
  return out
end

return F
