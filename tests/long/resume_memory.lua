-- Resume keeps only an index in memory (#9): a run of N journaled writes
-- (200,000 by default) stops at its end; the resumed run answers all of
-- them from the journal. Both report their peak RSS (VmHWM), which must
-- stay under 30 MB, and the fresh journaled run must stay within 5 MB of
-- an unjournaled run of the same writes. Part of `make chaos` (minutes).
--   uqlua tests/long/resume_memory.lua UQLUA [N]
local UQ = assert(arg[1], "usage: resume_memory.lua UQLUA [N]")
local N = math.tointeger(tonumber(arg[2] or "200000"))
local T = require("tests.helpers.proc").new(UQ)

local sim = T:serve()
local script = T:file("many.lua", string.format([[
for i = 1, %d do uqpay.recharge("66666666-6666-4666-8666-666666666662", "0.01") end
local f = io.open("/proc/self/status")
io.stderr:write("peak ", f:read("a"):match("VmHWM:%%s*(%%d+) kB"), " kB\n")
f:close()
if os.getenv("STOP") then error("stop") end
]], N))
local function peak(err) return tonumber(err:match("peak (%d+) kB")) or math.huge end

local _, _, plain = T:run(sim.env .. UQ .. " --no-journal " .. script)
local _, _, fresh = T:run("STOP=1 " .. sim.env .. UQ .. " " .. script)
local code, _, resumed = T:run(sim.env .. UQ .. " " .. script)
print(string.format("# %d writes: unjournaled %d kB, journaled %d kB, resumed %d kB", N, peak(plain), peak(fresh),
  peak(resumed)))
T:check("the resumed run answered every write from the journal", code == 0
  and resumed:find(N .. " operations done", 1, true) ~= nil, resumed)
T:check("a resumed run of " .. N .. " writes peaks under 30 MB", peak(resumed) < 30 * 1024, resumed)
T:check("a journaled run peaks within 5 MB of an unjournaled one", peak(fresh) - peak(plain) < 5 * 1024,
  plain .. fresh)
T:stop(sim)
T:finish()
