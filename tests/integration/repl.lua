-- The REPL through a pseudo-terminal: tmux runs uqlua, send-keys types,
-- capture-pane reads the screen.
--   uqlua tests/integration/repl.lua UQLUA
local UQ = assert(arg[1], "usage: repl.lua UQLUA")
local core = require "uqpay.core"
local T = require("tests.helpers.proc").new(UQ)

local ABS = UQ:sub(1, 1) == "/" and UQ or os.getenv("PWD") .. "/" .. UQ
local SOCK = "uqlua-test-" .. math.random(1, 1 << 30)
local TMUX = "tmux -L " .. SOCK .. " -f /dev/null "

local function tmux(args)
  return os.execute(TMUX .. args .. " >/dev/null 2>&1")
end

-- One idle session keeps the tmux server alive for the whole test, and
-- remain-on-exit is set for every pane before any REPL starts. Killing the
-- only session stops the server, and a new-session racing that exit fails;
-- a pane whose program exits before a per-session option is set vanishes.
-- Either way the screen read back empty (seen once in CI).
assert(tmux("new-session -d -s keep -x 20 -y 5 'sleep 3600' \\; set-option -g remain-on-exit on"),
  "tmux did not start")
local session = "repl0"

local function screen()
  local p = io.popen(TMUX .. "capture-pane -p -J -t " .. session .. " -S -300 2>/dev/null")
  local s = p:read("a")
  p:close()
  return s
end

-- Types keys: literal text, or tmux key names when given as a table.
local function type_text(text) tmux("send-keys -t " .. session .. " -l " .. string.format("%q", text)) end
local function key(name) tmux("send-keys -t " .. session .. " " .. name) end
local function line(text) type_text(text); key("Enter") end

local function wait_for(pattern, ms)
  local deadline = core.monotonic_ms() + (ms or 8000)
  repeat
    local s = screen()
    if s:find(pattern) then return true, s end
    core.sleep_ms(50)
  until core.monotonic_ms() > deadline
  return false, screen()
end

local function start(envs)
  -- a fresh name each time: the last session's pane stays until kill-server
  session = "repl" .. (tonumber(session:match("%d+")) + 1)
  -- cwd is the repository, so the REPL can require the test helpers
  local cmd = string.format("cd %s && %s %s %s; echo UQLUA-EXIT=$?", os.getenv("PWD"), T.env .. (envs or ""), ABS,
    envs and "" or "--sim")
  assert(tmux(string.format("new-session -d -s %s -x 150 -y 50 %q", session, cmd)), "tmux new-session failed")
end

-- ---- session 1 ----
start()
local ok, s = wait_for("uqlua%[sim%]> ")
T:check("banner with version and environment, prompt shows the environment", ok
  and s:find("uqlua %d+%.%d+%.%d+") and s:find("environment sim, account master")
  and s:find("Tab completes; Ctrl%-D exits"), s)

line("1 + 1")
ok, s = wait_for("\n2\n")
T:check("an expression prints without '='", ok, s)

line("uqpay.cards.get('66666666-6666-4666-8666-666666666661')")
ok, s = wait_for("available_balance = 500%.00")
T:check("results are pretty-printed: money as 500.00, card numbers masked", ok
  and s:find('card_number = "%*+5668"') and s:find("mode_type = \"SINGLE\""), s)

line("for i = 1, 3 do")
local cont = wait_for("uqlua%[sim%]>> ")
line("io.write(i, ';')")
line("end")
ok, s = wait_for("1;2;3;")
T:check("multi-line input continues incomplete chunks", cont and ok, s)

type_text("uqpay.ca")
key("Tab")
ok, s = wait_for("> uqpay%.card")
key("C-c")
T:check("Tab completes along dotted paths", ok, s)

type_text("uqpay.cards.")
key("Tab")
key("Tab")
ok, s = wait_for("set_status")
T:check("Tab Tab lists a table's fields", ok and s:find("freeze") and s:find("unfreeze"), s)
key("C-c")

type_text("this is not lua at all")
key("C-c")
line("4 * 4")
ok, s = wait_for("\n16\n")
T:check("Ctrl-C clears the current line and stays in the REPL", ok and not s:find("syntax error"), s)

line("error('boom')")
local boom = wait_for("boom")
line("3 * 3")
ok, s = wait_for("\n9\n")
T:check("an error prints and the REPL continues", boom and ok, s)

line("uqpay.recharge('66666666-6666-4666-8666-666666666663', '1.00')")
ok, s = wait_for("uqpay api error: card is FROZEN")
T:check("uqpay errors print in their readable one-line form", ok and not s:find("card_not_active%)\nstack traceback"), s)

line("help()")
ok, s = wait_for("for one function")
T:check("help() fits a screen and points at help(topic)", ok and s:find("Issuing:") and s:find("recharge")
  and s:find('help%("issuing"%)'), s)
line("help('issuing')")
ok, s = wait_for("uqpay%.recharge%s+Add funds")
T:check("help('issuing') gives one line on each function", ok, s)
line("help(uqpay.recharge)")
-- wait for the last part: the screen may be read while the text is still arriving
ok, s = wait_for("example:")
T:check("help(f) prints signature, endpoint, returns and example", ok and s:find("uqpay%.recharge%(card_id, amount")
  and s:find("endpoint: POST /v1/issuing/cards/{card_id}/recharge", 1, true), s)

-- Ctrl-C during a slow request returns to the prompt
line("require('tests.helpers.sim').faults('latency=1:ms=8000:path=/v1/issuing/products')")
wait_for("rules = ")
local t0 = core.monotonic_ms()
line("uqpay.products.list()")
core.sleep_ms(800)
key("C-c")
local irq = wait_for("interrupted", 5000)
line("5 * 5")
local ok2, s2 = wait_for("\n25\n", 5000)
T:check("Ctrl-C interrupts a running request without leaving the REPL", irq and ok2
  and core.monotonic_ms() - t0 < 6000, s2)

key("C-d")
ok, s = wait_for("UQLUA%-EXIT=%d+", 5000)
T:check("Ctrl-D exits cleanly (status 0)", ok and s:find("UQLUA%-EXIT=0") ~= nil, s)

-- ---- session 2: history ----
start()
wait_for("uqlua%[sim%]> ")
key("Up")
ok, s = wait_for("> 5 %* 5", 3000)
T:check("history persists across sessions", ok, s)
local hist = T.slurp(T.dir .. "/state/uqlua/history")
T:check("history lives in $XDG_STATE_HOME/uqlua/history", hist:find("4\\040*\\0404", 1, true) ~= nil, hist)
key("C-d")

-- ---- production prompt ----
start("UQPAY_ENV=production UQPAY_CLIENT_ID=x UQPAY_API_KEY=y ")
ok, s = wait_for("uqlua%[PRODUCTION%]> ")
T:check("the production prompt is unmistakable", ok and s:find("environment PRODUCTION %(writes are real money%)"), s)
key("C-d")

-- ---- card data and secrets are kept out of history ----
-- an entry from before: a PIN, as an older uqlua kept it
local HIST = T.dir .. "/state/uqlua/history"
local f = assert(io.open(HIST, "a"))
f:write('uqpay.cards.reset_pin{card_id=x,pin="654321"}\n')
f:close()
start()
wait_for("uqlua%[sim%]> ")
line("6 * 6")
wait_for("\n36\n")
line('uqpay.cards.activate("66666666-6666-4666-8666-666666666661", {activation_code="A1B2C3", pin="123456"})')
line('uqpay.cards.list{card_number="4111111111111111"}')
line("n = 4242424242424242")
line("7 * 7")
ok, s = wait_for("\n49\n")
local says = select(2, s:gsub("not kept in history", ""))
key("Up")
local up1 = wait_for("> 7 %* 7%s*$", 3000)
key("Up")
local up2, s_up = wait_for("> 6 %* 6%s*$", 3000)
key("C-c")
key("C-d")
wait_for("UQLUA%-EXIT=%d+", 5000)
hist = T.slurp(HIST)
T:check("lines holding a PIN, activation code or card number are not kept, and the REPL says so", ok and says == 3, s)
T:check("Up skips them", up1 and up2, s_up)
T:check("the history file holds none of them, nor an older entry's PIN; other lines stay",
  hist:find("7\\040*\\0407", 1, true) and hist:find("6\\040*\\0406", 1, true) and not hist:find("123456", 1, true)
  and not hist:find("A1B2C3", 1, true) and not hist:find("4111111111111111", 1, true)
  and not hist:find("4242424242424242", 1, true) and not hist:find("654321", 1, true), hist)
T:check("the history file is 0600", (core.stat(HIST) or {}).mode == tonumber("600", 8))

-- ---- without libedit (opened when the REPL starts, src/lazy_edit.c) ----
-- a file that is no library, found first: dlopen fails as if libedit were missing
local NOEDIT = T.dir .. "/noedit"
os.execute("mkdir -p " .. NOEDIT .. " && echo not-a-library > " .. NOEDIT .. "/libedit.so.2")
start("LD_LIBRARY_PATH=" .. NOEDIT .. " ")
ok, s = wait_for("uqlua%[sandbox%]> ")
line("2 + 3")
ok2, s2 = wait_for("\n5\n")
T:check("without libedit the REPL says why and still reads lines", ok and ok2
  and s:find("no line editing or history: cannot load " .. NOEDIT .. "/libedit.so.2", 1, true) ~= nil
  and s:find("Ctrl-D exits", 1, true) ~= nil and not s:find("Tab completes", 1, true), s2)
type_text("x = ")
key("C-c")
line("7 * 6")
ok, s = wait_for("\n42\n")
T:check("... and Ctrl-C at its prompt gives a fresh line, as with libedit", ok and not s:find("UQLUA%-EXIT"), s)
key("C-d")
ok, s = wait_for("UQLUA%-EXIT=%d+", 5000)
T:check("... and ends on Ctrl-D (status 0)", ok and s:find("UQLUA%-EXIT=0") ~= nil, s)

tmux("kill-server")
T:finish()
