-- docs/cookbook.md runs as shown: every console command (in order, in one
-- shell, so that the simulator's exports carry over) exits as documented
-- (0, or the status its "# exits N" comment names), and every Lua block
-- runs with uqlua --sim.
--   uqlua tests/integration/cookbook.lua UQLUA
local UQ = assert(arg[1], "usage: cookbook.lua UQLUA")
local core = require "uqpay.core"
local T = require("tests.helpers.proc").new(UQ)

local doc = T.slurp("docs/cookbook.md")
local commands, blocks = {}, {}
for lang, body in doc:gmatch("```(%w+)\n(.-)```") do
  if lang == "console" then
    for line in body:gmatch("[^\n]+") do
      local cmd = line:match("^%$ (.*)$")
      if cmd then
        commands[#commands + 1] = { text = cmd, want = tonumber(cmd:match("#%s*exits (%d+)")) or 0 }
      end
    end
  elseif lang == "lua" then
    blocks[#blocks + 1] = body
  end
end
T:check("the cookbook has a walkthrough and recipes", #commands >= 10 and #blocks >= 5,
  #commands .. " commands, " .. #blocks .. " blocks")

-- `uqlua` on PATH is the binary under test; /tmp/uqsim.* stay in the scratch dir
local bin = T.dir .. "/bin"
os.execute("mkdir -p " .. bin .. " && ln -sf " .. (core.realpath(UQ) or UQ) .. " " .. bin .. "/uqlua")
local script = { "export PATH=" .. bin .. ":$PATH UQLUA_NO_PROGRESS=1" }
for i, c in ipairs(commands) do
  script[#script + 1] = c.text:gsub("/tmp/uqsim", T.dir .. "/uqsim") .. " >" .. T.dir .. "/out" .. i .. " 2>&1"
  script[#script + 1] = "echo \"rc " .. i .. " $?\""
end
local sh = T:file("walk.sh", table.concat(script, "\n") .. "\n")
local _, out = T:run("sh " .. sh)
for i, c in ipairs(commands) do
  local rc = tonumber(out:match("rc " .. i .. " (%d+)"))
  T:check(string.format("$ %s  (exit %d)", c.text:sub(1, 70), c.want), rc == c.want,
    "exit " .. tostring(rc) .. ": " .. T.slurp(T.dir .. "/out" .. i))
end
os.execute("test -f " .. T.dir .. "/uqsim.pid && kill $(cat " .. T.dir .. "/uqsim.pid) 2>/dev/null")

for i, body in ipairs(blocks) do
  local f = T:file("block" .. i .. ".lua", body)
  local code, _, err = T:run(UQ .. " --sim " .. f)
  T:check("Lua block " .. i .. " runs with uqlua --sim: " .. (body:match("[^\n]+") or ""):sub(1, 60), code == 0, err)
end

T:finish()
