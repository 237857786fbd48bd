-- The operation lifecycle of src/operation.c: the transition function over
-- every (state, outcome) pair, and the transport's refusal to send a write
-- whose intent is not durable.
local core = require "uqpay.core"
local H = require "tests.helpers.sim"

local STATES = { "new", "intent", "in_flight", "applied", "rejected", "in_doubt" }
local CLASSES = { "done", "retry", "refresh_token", "rejected", "unknown" }

-- expected[state][class] = {reached = state, not reached = state}; nil: the
-- state cannot have been sent, so no outcome applies to it.
local function sent_from(s)
  return {
    done = { "applied", "applied" },
    rejected = { "rejected", "rejected" },
    retry = { "in_doubt", s },
    refresh_token = { "in_doubt", s },
    unknown = { "in_doubt", s },
  }
end
local EXPECTED = {
  intent = sent_from("intent"),
  in_doubt = sent_from("in_doubt"),
}
for _, terminal in ipairs { "applied", "rejected" } do
  EXPECTED[terminal] = {}
  for _, c in ipairs(CLASSES) do EXPECTED[terminal][c] = { terminal, terminal } end
end

describe("operation lifecycle", function()
  it("has the documented transition for every (state, outcome) pair", function()
    local n = 0
    for _, s in ipairs(STATES) do
      for _, c in ipairs(CLASSES) do
        for i, reached in ipairs { true, false } do
          local want = EXPECTED[s] and EXPECTED[s][c][i] or nil
          local got = core.op_transition(s, c, reached)
          assert.equals(want, got, string.format("%s + %s (reached=%s)", s, c, tostring(reached)))
          n = n + 1
        end
      end
    end
    assert.equals(#STATES * #CLASSES * 2, n)
  end)

  it("never gives an in-doubt operation a way back to 'not sent'", function()
    for _, c in ipairs(CLASSES) do
      for _, reached in ipairs { true, false } do
        local got = core.op_transition("in_doubt", c, reached)
        assert.is_true(got == "in_doubt" or got == "applied" or got == "rejected")
      end
    end
  end)

  describe("the transport", function()
    local dir, url
    before_each(function()
      dir = os.tmpname()
      os.remove(dir)
      assert(core.mkdir_private(dir))
      url = uqpay.config().base_url .. "/v1/issuing/cards/" .. H.SINGLE_CARD .. "/recharge"
    end)
    after_each(function() os.execute("rm -rf " .. dir) end)

    local function req()
      return { method = "POST", url = url, write = true, body = '{"amount":1}',
               headers = { "Content-Type: application/json", "x-auth-token: Bearer " .. H.token() } }
    end

    it("refuses a write without its operation", function()
      local m = core.multi_new()
      local ok, e = pcall(m.add, m, req())
      assert.is_false(ok)
      assert.equals("config", e.kind)
      assert.matches("through its operation", e.message)
      m:close()
    end)

    it("a journal reopened with zeros ahead takes records only after a scan, and they land before the zeros", function()
      local path = dir .. "/z.journal"
      local j = core.journal_open(path, "test")
      j:scan()
      j:record({ t = "run", run = "test" }, true)
      local f = assert(io.open(path, "rb"))
      local written = f:read("a")
      f:close()
      assert.is_true(#written >= 65536 and written:find("\0", 1, true) ~= nil) -- written ahead while open
      j:close()
      -- a copy stands in for the file a SIGKILL leaves: records, then zeros
      local killed = dir .. "/killed.journal"
      f = assert(io.open(killed, "wb"))
      f:write(written)
      f:close()
      local j2 = core.journal_open(killed, "test")
      local ok, e = pcall(j2.record, j2, { t = "resume" }, true)
      assert.is_false(ok) -- not scanned: it would have gone after the zeros, unseen by every reader
      assert.equals("config", e.kind)
      local info = j2:scan()
      assert.equals(1, info.records)
      j2:record({ t = "resume" }, true)
      j2:close()
      f = assert(io.open(killed, "rb"))
      local text = f:read("a")
      f:close()
      assert.is_nil(text:find("\0", 1, true)) -- cut back on close

      -- as a power loss may leave it: a record half on disk, a hole of zeros, a
      -- later (never synced) record, more zeros. The records end at the hole;
      -- it is a crash's mark, not damage, and what follows is cut.
      local header = written:sub(1, written:find("\n", 1, true))
      local lost = dir .. "/power.journal"
      f = assert(io.open(lost, "wb"))
      f:write(header, '{"t":"outc', ("\0"):rep(300), header, ("\0"):rep(4096))
      f:close()
      local j3 = core.journal_open(lost, "test")
      assert.equals(1, j3:scan().records)
      j3:close()
      f = assert(io.open(lost, "rb"))
      assert.equals(header, f:read("a"))
      f:close()
      local lines = select(2, text:gsub("\n", ""))
      assert.equals(2, lines)
    end)

    it("refuses a write whose intent is not durable, sends it once it is", function()
      local j = core.journal_open(dir .. "/t.journal", "test")
      j:scan()
      j:record({ t = "run", run = "test" }, true)
      local op = j:op("POST", "/x", "", '{"amount":1}', '{"amount":1}')
      local m = core.multi_new()
      local ok, e = pcall(m.add, m, req(), op)
      assert.is_false(ok) -- NEW: no intent at all
      assert.matches("state new", e.message)
      op:intent(true) -- group commit: appended, not yet synced
      ok, e = pcall(m.add, m, req(), op)
      assert.is_false(ok)
      assert.matches("not durable", e.message)
      j:sync()
      local id = m:add(req(), op)
      assert.equals("in_flight", op:info().state)
      local done
      repeat for _, d in ipairs(m:run(100)) do if d.id == id then done = d end end until done
      assert.equals(200, done.res.status)
      assert.equals("applied", op:observe("done", true, 200, done.res.body))
      m:close()
      j:close()
    end)

    it("puts the operation's key on the request, and refuses any other", function()
      local j = core.journal_open(nil)
      local op = j:op("POST", "/x", "", "{}", "{}", "my-own-key-1")
      op:intent()
      local r = req()
      r.headers[#r.headers + 1] = "x-idempotency-key: another"
      local m = core.multi_new()
      local ok, e = pcall(m.add, m, r, op)
      assert.is_false(ok)
      assert.matches("comes from its operation", tostring(e))
      m:close()
    end)

    -- A pooled handle is not reset between requests (src/http.c sets the
    -- shared options once): every request must set its own method and body.
    it("sends each request as asked on a reused handle: GET after POST, JSON after multipart", function()
      local m = core.multi_new()
      local function send(r)
        local id = m:add(r)
        while true do
          for _, d in ipairs(m:run(100)) do
            if d.id == id then return assert(d.res, d.message) end
          end
        end
      end
      H.reset()
      local auth = "x-auth-token: Bearer " .. H.token()
      local card = uqpay.config().base_url .. "/v1/issuing/cards/" .. H.SINGLE_CARD
      local png = dir .. "/a.png"
      local f = assert(io.open(png, "wb"))
      f:write("\137PNG reuse")
      f:close()
      local before = #H.state().requests
      local function balance()
        for _, c in ipairs(H.state().cards) do
          if c.card_id == H.SINGLE_CARD then return core.money(tostring(c.available_balance)) end
        end
      end
      local start = balance()
      local function recharge(amount)
        return send { method = "POST", url = card .. "/recharge", body = '{"amount":' .. amount .. '}',
                      headers = { auth, "Content-Type: application/json", "x-idempotency-key: " .. core.uuid() } }
      end
      local r = recharge("1.25")
      assert(r.status == 200, r.body)
      local got = send { method = "GET", url = card, headers = { auth } }
      assert.equals(200, got.status) -- a leftover POST would be an update of the card
      assert.equals(H.SINGLE_CARD, require("uqpay.json").decode(got.body).card_id)
      local up = send { method = "POST", url = uqpay.config().files_url .. "/v1/files/upload",
                        headers = { auth, "x-idempotency-key: " .. core.uuid() },
                        multipart = { name = "file", path = png, filename = "a.png", content_type = "image/png" } }
      assert(up.status == 200, up.body)
      assert.equals(10, require("uqpay.json").decode(up.body).size) -- the file, not the last POST's body
      assert.equals(200, recharge("2.50").status) -- JSON again, not the multipart body
      assert.equals(200, send { method = "GET", url = card, headers = { auth } }.status)
      local seen = H.state().requests
      assert.same({ "POST", "GET", "POST", "POST", "GET" }, {
        seen[before + 1]:match("^%u+"), seen[before + 2]:match("^%u+"), seen[before + 3]:match("^%u+"),
        seen[before + 4]:match("^%u+"), seen[before + 5]:match("^%u+") })
      assert.equals(start + core.money("3.75"), balance()) -- both recharges, each once
      m:close()
    end)

    -- m:request drives one transfer to its end (a plain call's); answers to
    -- others on the same handle (uqpay.parallel's) that come meanwhile are
    -- kept for m:run, never dropped.
    it("m:request returns its own answer and leaves the others' for m:run", function()
      local m = core.multi_new()
      local auth = "x-auth-token: Bearer " .. H.token()
      local card = uqpay.config().base_url .. "/v1/issuing/cards/" .. H.SINGLE_CARD
      local get = { method = "GET", url = card, headers = { auth } }
      local a, b = m:add(get), m:add(get)
      local until_ms = core.monotonic_ms() + 300 -- the simulator answers both well within this
      repeat
        local res = m:request { method = "GET", url = card, headers = { auth } }
        assert.equals(200, res.status)
      until core.monotonic_ms() > until_ms
      assert.equals(2, m:count()) -- finished, not yet handed over
      local got = {}
      for _, d in ipairs(m:run(0)) do got[d.id] = d.res.status end
      assert.same({ [a] = 200, [b] = 200 }, got)
      assert.equals(0, m:count())
      local bad, kind = m:request { method = "GET", url = "http://127.0.0.1:9/", headers = {} }
      assert.is_nil(bad)
      assert.equals("network", kind)
      m:close()
    end)
  end)

  describe("a memory journal", function()
    it("keeps the lifecycle and no record: no identity hash, no body copy", function()
      local j = core.journal_open(nil)
      assert.is_false(j:persistent())
      local op = j:op("POST", "/x", "", '{"amount":1}') -- no redacted body: nothing shows it
      assert.is_false(op:persistent())
      assert.equals("new", op:state())
      assert.matches("^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$", op:key())
      assert.equals(op:key(), op:info().key)
      op:intent()
      assert.equals("intent", op:state())
      assert.equals(1, j:stats().open)
      assert.equals(0, j:stats().syncs)
      j:close()
    end)

    it("a file journal times its syncs and gives each identity its own hash", function()
      local path = os.tmpname()
      local j = core.journal_open(path, "test")
      j:scan()
      assert.is_true(j:persistent())
      j:record({ t = "run", run = "test" }, true)
      local a = j:op("POST", "/x", "", '{"amount":1}', '{"amount":1}')
      local b = j:op("POST", "/x", "", '{"amount":2}', '{"amount":2}')
      local a2 = j:op("POST", "/x", "", '{"amount":1}', '{"amount":1}')
      assert.are_not.equal(a:info().id, b:info().id)
      assert.equals(a:info().id, a2:info().id) -- the same identity, its second occurrence
      assert.equals(2, a2:info().occ)
      a:intent()
      local st = j:stats()
      assert.equals(2, st.syncs)
      assert.is_true(math.type(st.sync_ns) == "integer" and st.sync_ns > 0) -- > 0 on tmpfs too
      j:close()
      os.remove(path)
    end)
  end)

  it("a record keeps any text exactly: each escaped byte at every position of an 8-byte word", function()
    local path = os.tmpname()
    local j = core.journal_open(path, "test")
    j:scan()
    j:record({ t = "run", run = "test" }, true)
    local texts = {}
    for _, c in ipairs { '"', "\\", "\n", "\t", "\1", "\31", "\127", "\195\169", " ", "~" } do
      for at = 0, 17 do texts[#texts + 1] = ("a"):rep(at) .. c .. ("b"):rep(17 - at) .. c end
    end
    -- long texts are escaped a piece at a time: escapes on the pieces' edges
    texts[#texts + 1] = ('"a'):rep(5000)
    texts[#texts + 1] = ("x"):rep(4093) .. '"\\\n\1' .. ("y"):rep(4100) .. "\31"
    math.randomseed(7)
    for _ = 1, 200 do
      local t = {}
      -- (no NUL: what an intent shows is JSON text, which never holds one)
      for i = 1, math.random(0, 40) do t[i] = string.char(math.random(1, 127)) end
      texts[#texts + 1] = table.concat(t)
    end
    for i, text in ipairs(texts) do j:op("POST", "/x/" .. i, "", "{}", text):intent() end
    j:close()
    local records = require("uqpay.journal").parse(path)
    os.remove(path)
    assert.equals(#texts + 1, #records)
    for i, text in ipairs(texts) do assert.equals(text, records[i + 1].body, "text " .. i) end
  end)

  it("idempotency keys are random version-4 UUIDs", function()
    local seen = {}
    for _ = 1, 2000 do
      local k = core.uuid()
      assert.matches("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$", k)
      assert.is_nil(seen[k])
      seen[k] = true
    end
  end)
end)
