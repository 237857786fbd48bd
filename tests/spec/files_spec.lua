-- Private files (core.write_private: reports and the token cache): written
-- through a new file beside the target, never through a file or symbolic
-- link another user planted there.
local core = require "uqpay.core"

local function slurp(p)
  local f = io.open(p, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function put(p, s)
  local f = assert(io.open(p, "wb"))
  f:write(s)
  f:close()
end

local function pid() -- this process's, as the old temporary name had it
  local f = assert(io.open("/proc/self/stat"))
  local id = f:read("n")
  f:close()
  return math.tointeger(id)
end

describe("write_private", function()
  local dir
  before_each(function()
    dir = (os.getenv("TMPDIR") or "/tmp") .. "/uqlua-files-" .. core.uuid()
    assert(core.mkdir_private(dir))
  end)
  after_each(function() os.execute("rm -rf '" .. dir .. "'") end)

  local REPORT = "card_number,expire_date\n4111111111111111,12/29\n"

  it("never writes through a symbolic link planted at its old temporary name", function()
    local victim, report = dir .. "/victim", dir .. "/report.csv"
    put(victim, "precious\n")
    -- where <path>.<pid>.tmp was opened with O_CREAT|O_TRUNC, following links
    assert(os.execute(string.format("ln -s '%s' '%s.%d.tmp'", victim, report, pid())))
    assert.is_true(core.write_private(report, REPORT))
    assert.equals("precious\n", slurp(victim))
    assert.equals(REPORT, slurp(report))
    assert.equals(tonumber("600", 8), core.stat(report).mode)
    assert.equals(3, #core.listdir(dir)) -- victim, report, the planted link: nothing left behind
  end)

  it("replaces a symbolic link at the path itself, leaving its target alone", function()
    local victim, report = dir .. "/victim", dir .. "/report.csv"
    put(victim, "precious\n")
    assert(os.execute(string.format("ln -s '%s' '%s'", victim, report)))
    assert.is_true(core.write_private(report, REPORT))
    assert.equals("precious\n", slurp(victim))
    assert.equals(REPORT, slurp(report))
  end)

  it("fails with the reason when the directory is not there", function()
    local ok, err = core.write_private(dir .. "/no/report.csv", REPORT)
    assert.is_nil(ok)
    assert.matches("No such file or directory", err, 1, true)
  end)
end)
