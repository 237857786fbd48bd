-- Helpers for tests that drive the uqlua binary as a process: a scratch
-- directory, a scrubbed environment, running commands, a standalone
-- simulator, and TAP output.
local core = require "uqpay.core"

local P = {}

function P.new(uq)
  local self = setmetatable({ uq = uq, n = 0, failed = 0 }, { __index = P })
  local tmp = os.getenv("TMPDIR") or "/tmp"
  math.randomseed(core.monotonic_ms())
  -- a letter between the numbers: "123456-135448764" is a digit run that
  -- passes the card-number check one time in ten, and messages mask it
  self.dir = string.format("%s/uqlua-test-%d-r%d", tmp, core.monotonic_ms() % 1000000, math.random(1, 1 << 30))
  assert(os.execute("mkdir -p " .. self.dir .. " && chmod 700 " .. self.dir))
  -- no UQPAY_*/UQLUA_* from the caller; XDG dirs inside the scratch directory
  self.env = string.format("env -u UQPAY_CLIENT_ID -u UQPAY_API_KEY -u UQPAY_ENV -u UQPAY_BASE_URL " ..
    "-u UQPAY_ON_BEHALF_OF -u UQLUA_PROFILE -u UQLUA_INIT -u UQLUA_PATH -u UQLUA_CLOCK_OFFSET_S " ..
    "XDG_CONFIG_HOME=%s/cfg XDG_STATE_HOME=%s/state XDG_CACHE_HOME=%s/cache ", self.dir, self.dir, self.dir)
  return self
end

function P:file(name, text, mode)
  local p = self.dir .. "/" .. name
  local f = assert(io.open(p, "w"))
  f:write(text)
  f:close()
  if mode then os.execute("chmod " .. mode .. " " .. p) end
  return p
end

function P.slurp(p)
  local f = io.open(p, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

-- run(cmd [, input]) -> exit code (128+signal when killed), stdout, stderr
function P:run(cmd, input)
  local out, err = self.dir .. "/out", self.dir .. "/err"
  local full = self.env .. cmd .. " >" .. out .. " 2>" .. err
  if input then full = "printf '%s' " .. string.format("%q", input):gsub("\\\n", "\\n") .. " | " .. full end
  local _, how, code = os.execute(full)
  if how == "signal" then code = 128 + code end
  return code, P.slurp(out), P.slurp(err)
end

function P:check(name, ok, detail)
  self.n = self.n + 1
  if ok then
    print("ok " .. self.n .. " - " .. name)
  else
    self.failed = self.failed + 1
    print("not ok " .. self.n .. " - " .. name)
    if detail then print("# " .. tostring(detail):gsub("\n", "\n# ")) end
  end
end

function P:expect(name, cmd, want_code, out_pat, err_pat, input)
  local code, out, err = self:run(cmd, input)
  local ok = code == want_code and (not out_pat or out:find(out_pat) ~= nil) and (not err_pat or err:find(err_pat) ~= nil)
  self:check(name, ok, string.format("exit %s (want %s)\nstdout: %s\nstderr: %s", code, want_code, out, err))
  return code, out, err
end

-- A standalone simulator on a free port. Returns {pid, base, admin, env}
-- where env is "UQPAY_BASE_URL=... UQPAY_CLIENT_ID=... UQPAY_API_KEY=... ".
function P:serve(extra)
  local outf, pidf = self.dir .. "/sim.out", self.dir .. "/sim.pid"
  os.remove(outf)
  os.execute(self.env .. self.uq .. " --serve-sim --listen 127.0.0.1:0 " .. (extra or "") .. " >" .. outf ..
    " 2>" .. self.dir .. "/sim.err & echo $! > " .. pidf)
  local exports
  for _ = 1, 100 do
    exports = P.slurp(outf)
    if select(2, exports:gsub("\n", "")) >= 3 then break end
    core.sleep_ms(50)
  end
  local base = exports:match("UQPAY_BASE_URL=(%S+)")
  assert(base, "simulator did not start: " .. P.slurp(self.dir .. "/sim.err"))
  return { pid = P.slurp(pidf):match("%d+"), base = base, admin = base:gsub("/api$", ""), exports = exports,
           env = exports:gsub("export ", ""):gsub("\n", " ") }
end

function P:stop(sim)
  os.execute("kill -TERM " .. sim.pid .. " 2>/dev/null; sleep 0.2")
end

function P:finish()
  os.execute("rm -rf " .. self.dir)
  print("1.." .. self.n)
  os.exit(self.failed == 0 and 0 or 1)
end

return P
