-- Command-line tests in the style of Lua's testes/main.lua: run the uqlua
-- binary through the shell and check exit codes, stdout and stderr.
-- Usage: uqlua tests/cli.lua ./uqlua      (prints TAP)
local UQ = assert(arg[1], "usage: cli.lua UQLUA")
local core = require "uqpay.core"

local T = require("tests.helpers.proc").new(UQ)
local dir, ENV = T.dir, T.env
local slurp = T.slurp
local function file(...) return T:file(...) end
local function run(...) return T:run(...) end
local function check(...) return T:check(...) end
local function expect(...) return T:expect(...) end

-- ---- the lua 5.4 contract ----
expect("-v prints the version", UQ .. " -v", 0, "^uqlua %d+%.%d+%.%d+ %(Lua 5%.4")
expect("--version", UQ .. " --version", 0, "^uqlua %d")
expect("--help lists options", UQ .. " --help", 0, "%-%-sim.*%-%-on%-behalf%-of.*%-e stat")
expect("-e runs a statement", UQ .. " -e 'print(1+1)'", 0, "^2\n$")
expect("-e without space", UQ .. " -e'print(10)'", 0, "^10\n$")
expect("stdin is run when not a terminal", UQ, 0, "^2\n$", nil, "print(1+1)")
expect("- runs stdin", UQ .. " - a b", 0, "^a\tb\n$", nil, "print(...)")
local script = file("args.lua", "print(#arg, arg[0], arg[1], arg[2], ...)\nprint(arg[-1], arg[-2])\n")
expect("arg table and ... for a script", UQ .. " -e 'x=1' " .. script .. " p q", 0,
  "^2\t" .. script:gsub("%p", "%%%0") .. "\tp\tq\tp\tq\nx=1\t%-e\n$")
expect("-- stops option handling", UQ .. " -- " .. script .. " -x", 0, "^1\t.-\t%-x\t")
file("mymod.lua", "return { answer = 42 }\n")
local ABS = UQ:sub(1, 1) == "/" and UQ or os.getenv("PWD") .. "/" .. UQ
expect("-l mod", "sh -c \"cd " .. dir .. " && " .. ABS .. " -l mymod -e 'print(mymod.answer)'\"", 0, "^42\n$")
expect("-l g=mod", "sh -c \"cd " .. dir .. " && " .. ABS .. " -l g=mymod -e 'print(g.answer)'\"", 0, "^42\n$")
expect("UQLUA_INIT runs first", "UQLUA_INIT='x=7' " .. UQ .. " -e 'print(x)'", 0, "^7\n$")
local init = file("init.lua", "y = 8\n")
expect("UQLUA_INIT=@file", "UQLUA_INIT=@" .. init .. " " .. UQ .. " -e 'print(y)'", 0, "^8\n$")
expect("-E ignores UQLUA_INIT", "UQLUA_INIT='x=7' " .. UQ .. " -E -e 'print(x)'", 0, "^nil\n$")
expect("-W turns warnings on", UQ .. " -W -e 'warn(\"hey\")'", 0, nil, "Lua warning: hey")
expect("a missing script exits 1 with one line", UQ .. " nosuch.lua", 1, "^$", "^uqlua: cannot open nosuch.lua[^\n]*\n$")
local syntax = file("syntax.lua", "x = = 1\n")
expect("a syntax error exits 1", UQ .. " " .. syntax, 1, nil, "^uqlua: .*syntax.lua:1:")
local boom = file("boom.lua", "local function inner() error('boom') end\nlocal function outer() inner() end\nouter()\n")
expect("a runtime error shows a traceback", UQ .. " " .. boom, 1, nil,
  "uqlua: .*boom.lua:1: boom\nstack traceback:.*in %a+ 'inner'.*in local 'outer'")
expect("an error object with __tostring prints readably",
  UQ .. " -e 'error(setmetatable({}, {__tostring=function() return \"custom!\" end}))'",
  1, nil, "uqlua: custom!")
expect("a non-string error object", UQ .. " -e 'error({})'", 1, nil, "error object is a table value")
expect("an unknown short option is a usage error", UQ .. " -z", 2, nil, "unrecognized option '%-z'")
expect("an unknown long option is a usage error", UQ .. " --frobnicate", 2, nil, "unrecognized option '%-%-frobnicate'")
expect("an option missing its value", UQ .. " --env", 2, nil, "needs a value")
expect("--env must be known", UQ .. " --env moon -e 1", 2, nil, "sandbox, production or sim")
expect("--json: an uncaught error is also one JSON line on stdout", UQ .. " --json --sim -e " ..
  "'uqpay.recharge(\"66666666-6666-4666-8666-666666666663\", \"1.00\")'", 1,
  '^{"error":{"attempts":1,"code":"card_not_active","idempotency_key":"%x+%-.-","kind":"api","message":"card is FROZEN, not ACTIVE",' ..
  '"method":"POST","path":"/v1/issuing/cards/66666666%-6666%-4666%-8666%-666666666663/recharge","status":400,' ..
  '"type":"card_error"}}\n$', "uqlua: uqpay api error")
expect("--json: a plain script error too", UQ .. " --json -e 'error(\"boom\")'", 1,
  '^{"error":{"kind":"script","message":"%(command line%):1: boom"}}\n$')
expect("--json --dry-run: each would-be write and the plan as JSON lines", UQ .. " --json --sim --dry-run -e " ..
  "'uqpay.recharge(\"66666666-6666-4666-8666-666666666661\", \"2.50\")' " .. file("dummy.lua", ""), 0,
  '^{"dry_run":{"body":"{\\"amount\\":2.50}","idempotency_key":"%x+.-","method":"POST","n":1,' ..
  '"path":"/v1/issuing/cards/66666666%-6666%-4666%-8666%-666666666661/recharge","status":200}}\n' ..
  '{"plan":{"balances":%[{"account_id":"11111111%-1111%-4111%-8111%-111111111111","after":"99997%.50",' ..
  '"before":"100000%.00","currency":"USD","scope":"issuing"}%],"cards":%[{"after":"502%.50","before":"500%.00",' ..
  '"card_id":"66666666%-6666%-4666%-8666%-666666666661","currency":"USD","status":"ACTIVE"}%],' ..
  '"moved":{"USD":"2%.50"},"writes":1}}\n$')
expect("--json makes ops scripts default to JSON", UQ .. " --json --sim balance-report", 0,
  '^{"account_id":"11111111%-1111%-4111%-8111%-111111111111","account_name":"Demo Master Ltd",' ..
  '"available_balance":"50000%.00","currency":"SGD"')
expect("the API key is never taken from argv", UQ .. " --api-key=abc -e 1", 2, nil, "never taken from the command line")
expect("-e needs an argument", UQ .. " -e", 2, nil, "needs argument")

-- ---- uqpay in the host ----
expect("uqpay.uuid() is a lowercase v4 UUID", UQ .. " -e 'print(uqpay.uuid())'", 0,
  "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x\n$")
expect("require 'uqpay' is the global", UQ .. " -e 'print(require(\"uqpay\") == uqpay, require(\"cjson\").null ~= nil)'",
  0, "^true\ttrue\n$")
do
  local _, out = run("nm -D --defined-only uqpay.so | awk '$2 ~ /^[TDBR]$/ { print $3 }'")
  check("uqpay.so exports luaopen_uqpay and nothing else", out == "luaopen_uqpay\n", out)
end
expect("uqpay.so loads in plain lua5.4", "lua5.4 -e 'package.cpath=\"./?.so;\"..package.cpath; local u = require \"uqpay\";" ..
  " print(u.version, #u.uuid(), u.money(\"0.1\") + \"0.2\")'", 0, "^%d+%.%d+%.%d+\t36\t0.30\n$")
local dev = dir .. "/dev/uqpay"
os.execute("mkdir -p " .. dev)
file("dev/uqpay/json.lua", "return { null = false, overridden = true }\n")
expect("UQLUA_PATH overrides embedded modules", "UQLUA_PATH='" .. dir .. "/dev/?.lua' " .. UQ ..
  " -e 'print(uqpay.json.overridden)'", 0, "^true\n$")
expect("-E ignores UQLUA_PATH", "UQLUA_PATH='" .. dir .. "/dev/?.lua' " .. UQ ..
  " -E -e 'print(uqpay.json.overridden)'", 0, "^nil\n$")
-- files on package.path (./?.lua first) never stand in for embedded modules
os.execute("mkdir -p " .. dir .. "/cwd/uqpay")
file("cwd/uqpay/redact.lua", "print('HIJACKED redact') return {}\n")
file("cwd/uqpay/json.lua", "print('HIJACKED json') return {}\n")
file("cwd/uqpay/helpers.lua", "return { mine = true }\n")
local ABS_UQ = UQ:sub(1, 1) == "/" and UQ or os.getenv("PWD") .. "/" .. UQ
file("in-cwd.sh", 'cd "$(dirname "$0")/cwd" && exec "$@"\n')
local IN_CWD = "sh " .. dir .. "/in-cwd.sh "
expect("a uqpay/*.lua in the working directory does not replace an embedded module; a script's own does load",
  IN_CWD .. ABS_UQ .. " -e 'print(require(\"uqpay.helpers\").mine, uqpay.json.null ~= nil)'", 0,
  "^true\ttrue\n$")
expect("... nor under plain lua5.4 with uqpay.so", IN_CWD .. "lua5.4 -e 'package.cpath=\"" ..
  os.getenv("PWD") .. "/?.so;\"..package.cpath; local u = require \"uqpay\"; print(u.json.null ~= nil)'", 0, "^true\n$")
-- bundled ops scripts are run by name, never by require: a script's own
-- ops/bulk-recharge.lua loads, and no recharge runs on the script's arguments
os.execute("mkdir -p " .. dir .. "/cwd/ops")
file("cwd/ops/bulk-recharge.lua", "return { mine = true }\n")
expect("require \"ops/NAME\" loads the script's own file, not the bundled ops script",
  IN_CWD .. ABS_UQ .. " -e 'print(require(\"ops/bulk-recharge\").mine)'", 0, "^true\n$")

expect("docs/api.md matches the endpoint table", UQ .. " scripts/gen-api-doc.lua --check", 0)
expect("the man page is valid roff", "man --warnings -l docs/uqlua.1 2>&1 >/dev/null | grep -v 'cannot adjust' | " ..
  "(! grep .) && MANWIDTH=80 man -l docs/uqlua.1 | grep -q 'UQPAY_API_KEY'", 0)

local inst = dir .. "/inst"
expect("make install honours PREFIX and DESTDIR", "make -s install DESTDIR=" .. inst .. " PREFIX=/opt/uq" ..
  " && test -x " .. inst .. "/opt/uq/bin/uqlua && test -f " .. inst .. "/opt/uq/lib/lua/5.4/uqpay.so && test -f " .. inst ..
  "/opt/uq/share/man/man1/uqlua.1 && " .. inst .. "/opt/uq/bin/uqlua -e 'print(uqpay.version)'", 0, "^%d+%.%d+%.%d+\n$")
do
  local _, out = run(inst .. "/opt/uq/bin/uqlua ops")
  check("the installed uqlua carries the seven ops scripts", select(2, out:gsub("\n  %S", "")) + (out:match("^  %S") and 1 or 0) == 7, out)
end

-- ---- configuration ----
os.execute("mkdir -p " .. dir .. "/cfg/uqlua && chmod 700 " .. dir .. "/cfg/uqlua")
local cfgfile = file("cfg/uqlua/config", "[default]\nclient_id = file-client\napi_key = file-key\n\n[ops]\nenv = production\n", "644")
expect("a config file readable by others is refused with the fix", UQ .. " -e 'uqpay.config()'", 2, nil,
  "readable by group or others.*chmod 600 " .. cfgfile:gsub("%p", "%%%0"))
os.execute("chmod 600 " .. cfgfile)
expect("the config file is read once private", UQ .. " -e 'print(uqpay.config().env, uqpay.config().profile)'", 0,
  "^sandbox\tdefault\n$")
expect("--profile picks a profile", UQ .. " --profile ops -e 'print(uqpay.config().env)'", 0, "^production\n$")
expect("env beats the config file", "UQPAY_ENV=production " .. UQ .. " -e 'print(uqpay.config().env)'", 0, "^production\n$")
expect("UQPAY's sandbox API spelled out keeps its files and iframe hosts",
  "UQPAY_BASE_URL=https://api-sandbox.uqpaytech.com/api " .. UQ ..
  " -e 'local c = uqpay.config(); print(c.files_url, c.iframe_url)'", 0,
  "^https://files%.uqpaytech%.com/api\thttps://embedded%-sandbox%.uqpaytech%.com\n$")
expect("a base URL of one's own serves files and the iframe itself",
  "UQPAY_BASE_URL=http://127.0.0.1:9/api " .. UQ .. " -e 'local c = uqpay.config(); print(c.files_url, c.iframe_url)'",
  0, "^http://127%.0%.0%.1:9/api\thttp://127%.0%.0%.1:9\n$")
expect("flags beat the environment", "UQPAY_ENV=production " .. UQ .. " --env sandbox -e 'print(uqpay.config().env)'",
  0, "^sandbox\n$")
expect("an unknown profile is a config error", UQ .. " --profile nope -e 'uqpay.config()'", 2, nil, "profile 'nope' not found")
expect("plain http is refused off loopback", "UQPAY_BASE_URL=http://example.com/api " .. UQ .. " -e 'uqpay.config()'",
  2, nil, "must use https")
expect("plain http on loopback is fine", "UQPAY_BASE_URL=http://127.0.0.1:1/api " .. UQ ..
  " -e 'print(uqpay.config().base_url)'", 0, "^http://127%.0%.0%.1:1/api\n$")
do
  local code, _, err = run(UQ .. " --sim=/nonexistent.json -e ''")
  check("a missing --sim seed is a usage error: exit 2, one line", code == 2 and not err:find("traceback")
    and select(2, err:gsub("\n", "")) == 1, err)
  code, _, err = run(UQ .. " --sim -e 'uqpay.recharge(\"x\", \"1\")'")
  check("a usage error prints one line, no traceback", code == 2 and not err:find("traceback")
    and select(2, err:gsub("\n", "")) == 1, err)
  code, _, err = run("UQPAY_BASE_URL=http://example.com " .. UQ .. " -e 'uqpay.config()'")
  check("a config error prints one line, no traceback", code == 2 and not err:find("traceback"), err)
end
do
  local code, _, err = run(UQ .. " --sim --trace -e 'uqpay.cards.get(\"66666666-6666-4666-8666-666666666661\")'")
  check("--trace shows IDs whole and never the token or a card number", code == 0
    and err:find("66666666-6666-4666-8666-666666666661", 1, true) ~= nil and not err:find("eyJhbGci", 1, true)
    and err:find('"card_number":"%*+%d%d%d%d"') ~= nil, err)
end
do
  local fifo = dir .. "/fifo.journal"
  os.execute("mkfifo " .. fifo)
  local wscript = dir .. "/w.lua"
  local f = io.open(wscript, "w")
  f:write('uqpay.recharge("66666666-6666-4666-8666-666666666661", "1.00")\n')
  f:close()
  for _, p in ipairs { "/dev/full", "/dev/zero", fifo, dir } do
    expect("--journal " .. (p == fifo and "FIFO" or p) .. " is refused before anything is sent",
      UQ .. " --sim --journal " .. p .. " " .. wscript, 2, nil, "not a regular file")
  end
  local _, out = run(UQ .. " --json --sim -e 'require(\"uqpay.jsonout\").emit{card_number = \"4111111111111111\"," ..
    " cvv = 737, note = \"card 4111 1111 1111 1111\"}'")
  check("--json output is redacted like everything else", not out:find("4111111111111111", 1, true)
    and not out:find("4111 1111", 1, true) and not out:find("737", 1, true) and out:find("1111", 1, true) ~= nil, out)
end
do
  -- a script's own error("..."), before any client was made, and a chunk
  -- name that is source text: the message and its traceback are redacted
  local code, _, err = run("UQPAY_API_KEY=kk-secret-key-77 " .. UQ .. " -e 'error(\"card 4111 1111 1111 1111 key \" .. " ..
    "os.getenv(\"UQPAY_API_KEY\"))'")
  check("a script's error(\"...\") is redacted", code == 1 and not err:find("kk-secret-key-77", 1, true)
    and not err:find("4111 1111", 1, true) and err:find("[REDACTED]", 1, true) ~= nil
    and err:find("stack traceback", 1, true) ~= nil, err)
  local _, out = run("UQPAY_API_KEY=kk-secret-key-77 " .. UQ .. " -e 'print(require(\"uqlua.repl\")" ..
    ".history_keeps(\"k = [[kk-secret-key-77]]\"))'")
  check("the REPL keeps the API key out of its history before any request", out:find("^false\t") ~= nil, out)
  code, _, err = run(UQ .. " -e 'load(\"local x = 4111111111111111 + {}\")()'")
  check("a traceback's chunk names are redacted", code == 1 and not err:find("4111111111111111", 1, true)
    and err:find("************1111", 1, true) ~= nil, err)
end
do
  local _, out = run(UQ .. " -e 'require(\"uqlua.repl\").help()'")
  check("help() fits a screen (24 lines)", select(2, out:gsub("\n", "")) <= 24, out)
end
expect("--json prints what -e returns, one JSON line per value", UQ .. " --json --sim -e " ..
  "'return uqpay.money(\"1.50\"), {a = 1}'", 0, '^"1%.50"\n{"a":1}\n$')
expect("an unknown NAME that is no file points at uqlua ops", UQ .. " no-such-script", 2, nil, "uqlua ops lists them")
do -- a rehearsal that spans several commands: --detach, --pidfile, --state
  local pidf, ledger = dir .. "/sim.pid", dir .. "/ledger.json"
  local serve = UQ .. " --serve-sim --listen 127.0.0.1:0 --detach --pidfile " .. pidf .. " --state " .. ledger
  local function stop()
    run("kill $(cat " .. pidf .. ")")
    for _ = 1, 50 do
      if not io.open(pidf) then break end
      require("uqpay.core").sleep_ms(100)
    end
  end
  local code, out = run(serve)
  local env = out:gsub("export ", ""):gsub("\n", " ")
  check("--serve-sim --detach prints the export lines and returns; the pid file names the server",
    code == 0 and out:find("UQPAY_BASE_URL=http://127%.0%.0%.1:%d+/api") ~= nil and io.open(pidf) ~= nil, out)
  local card = "66666666-6666-4666-8666-666666666661"
  code = run(env .. UQ .. " -e 'uqpay.recharge(\"" .. card .. "\", \"7.00\")'")
  stop()
  check("stopping it saves the ledger (0600) and removes the pid file", code == 0 and io.open(pidf) == nil
    and io.open(ledger) ~= nil and io.popen("stat -c %a " .. ledger):read("a"):match("^600") ~= nil)
  code, out = run(serve)
  env = out:gsub("export ", ""):gsub("\n", " ")
  local _, bal = run(env .. UQ .. " -e 'print(uqpay.cards.get(\"" .. card .. "\").available_balance)'")
  stop()
  check("--state FILE: the next server starts from that ledger", code == 0 and bal == "507.00\n", bal)
end
expect("--yes=no is a usage error, not --yes", UQ .. " --yes=no -e ''", 2, nil, "takes no value")
-- the twin's cards come from reads, whose balances know their currency:
-- a payment in another currency is billed in the card's (no exchange)
expect("--dry-run: an authorization in another currency than the card's is approved, as in the real run",
  UQ .. " --sim --dry-run -e 'print(uqpay.simulate.authorization{card_id = " ..
  "\"66666666-6666-4666-8666-666666666664\", transaction_amount = \"12.00\", transaction_currency = \"USD\"}" ..
  ".transaction_status)'", 0, "^APPROVED\n")
expect("--dry-run=false is a usage error", UQ .. " --dry-run=false -e ''", 2, nil, "takes no value")
expect("max_response_bytes is configurable", "UQLUA_MAX_RESPONSE_BYTES=100 " .. UQ ..
  " --sim -e 'uqpay.products.list()'", 1, nil, "larger than 100 bytes")
-- the host checked is the host libcurl connects to (CURLU), never userinfo
expect("userinfo that hides another host is refused", "UQPAY_BASE_URL='http://127.0.0.1:80@otherhost:9/api' " .. UQ ..
  " -e 'uqpay.config()'", 2, nil, "must not carry a user name or password")
expect("credentials in an https URL are refused", "UQPAY_BASE_URL='https://u:p@api.uqpay.com/api' " .. UQ ..
  " -e 'uqpay.config()'", 2, nil, "must not carry a user name or password")
expect("a query in the base URL is refused", "UQPAY_BASE_URL='https://api.uqpay.com/api?x=1' " .. UQ ..
  " -e 'uqpay.config()'", 2, nil, "query or a fragment")
expect("IPv6 loopback is loopback", "UQPAY_BASE_URL='http://[::1]:8/api/' " .. UQ ..
  " -e 'print(uqpay.config().base_url)'", 0, "^http://%[::1%]:8/api\n$")
expect("config() never shows secrets", UQ .. " -e 'print(uqpay.json.encode(uqpay.config()))'", 0, "REDACTED")
os.remove(cfgfile)
expect("no credentials is a config error", UQ .. " -e 'uqpay.balance(\"USD\")'", 2, nil, "no credentials")

-- ---- against the simulator ----
expect("--sim runs a script against the built-in simulator",
  UQ .. " --sim -e 'print(uqpay.balance(\"USD\").available_balance)'", 0, "^100000%.00\n$")
-- libcurl's proxy variables still count (a handle is told "no proxy" only
-- when none is set): a proxy that is not there fails the call, no_proxy
-- lets it go straight to the simulator
expect("http_proxy is honoured", "UQLUA_MAX_ATTEMPTS=1 http_proxy=http://127.0.0.1:9 " .. UQ ..
  " --sim -e 'print(uqpay.balance(\"USD\").available_balance)'", 1, nil, "network error: Couldn't connect")
expect("no_proxy is honoured", "http_proxy=http://127.0.0.1:9 no_proxy=127.0.0.1 " .. UQ ..
  " --sim -e 'print(uqpay.balance(\"USD\").available_balance)'", 0, "^100000%.00\n$")
local code, _, err = run(UQ .. " --sim --trace -e 'uqpay.recharge(\"66666666-6666-4666-8666-666666666661\", \"1.00\")" ..
  " pcall(uqpay.recharge, \"66666666-6666-4666-8666-666666666663\", \"1.00\")'")
check("--trace logs exchanges", code == 0 and err:find("> POST http://127%.0%.0%.1:%d+/api/v1/issuing/cards/") ~= nil
  and err:find("< 200 POST") ~= nil, err)
check("--trace never shows the API key, client id or token",
  not err:find("sim%-secret%-key%-0001") and not err:find("sim%-client%-0001") and not err:find("eyJhbGci"), err)
code, _, err = run(UQ .. " --sim -e 'uqpay.recharge(\"66666666-6666-4666-8666-666666666663\", \"1.00\")'")
check("an uncaught API error prints one readable line and a traceback, no secret", code == 1
  and err:find("uqlua: uqpay api error: card is FROZEN") and err:find("stack traceback") and not err:find("sim%-secret"), err)
expect("an uncaught usage error exits 2", UQ .. " --sim -e 'uqpay.recharge(\"x\", 1)'", 2, nil, "card_id \"x\" is not a UUID")
expect("--sim=SEED loads a seed file", UQ .. " --sim=" .. file("seed.json",
  '{"client_id":"c1","api_key":"k1","master":{"account_id":"11111111-1111-4111-8111-111111111111","account_name":"M"},' ..
  '"issuing_balances":{"master":{"USD":"7.77"}}}') .. " -e 'print(uqpay.balance(\"USD\").available_balance)'", 0, "^7%.77\n$")

expect("uqlua ops lists the bundled scripts", UQ .. " ops", 0, "balance%-report%s+Issuing")
expect("uqlua NAME runs a bundled script", UQ .. " --sim balance-report --format csv --banking", 0,
  "^scope,account_name,account_id,currency,available_balance,frozen_balance\n" ..
  "issuing,Demo Master Ltd,11111111%-1111%-4111%-8111%-111111111111,SGD,50000%.00,0%.00\n")
expect("a bundled script's bad argument is a usage error (exit 2)", UQ .. " --sim balance-report --format xml", 2, nil,
  "format")
expect("a bundled script's --help exits 0", UQ .. " --sim balance-report --help", 0, "Usage: uqlua balance%-report")
expect("the README's demo runs against --sim", UQ .. " --sim examples/fund-and-recharge.lua", 0,
  "card balance 420%.30 USD %(expected 420%.30%)")
expect("examples/bulk-recharge.lua recharges a CSV in parallel", UQ .. " --sim examples/bulk-recharge.lua examples/cards.csv",
  0, "recharged USD 125%.55\n.*4 recharged, 0 failed")
expect("examples/bulk-recharge.lua refuses a bad CSV before sending anything", UQ .. " --sim examples/bulk-recharge.lua " ..
  file("bad.csv", "card_id,amount\nnot-a-card,1.00\n66666666-6666-4666-8666-666666666661,1.005\n"), 2, nil,
  "line 2: card_id \"not%-a%-card\" is not a UUID.*line 3: amount \"1%.005\".*nothing was sent")
expect("examples/sweep-cards.lua sweeps SINGLE cards back", UQ .. " --sim examples/sweep-cards.lua 10", 0,
  "USD issuing balance 100000%.00 %-> 100490%.00 %(%+490%.00%)")

-- ---- standalone simulator, token cache, signals ----
local sim = T:serve()
local pid, exports = sim.pid, sim.exports
check("--serve-sim prints three export lines", exports:match("^export UQPAY_BASE_URL=http://127%.0%.0%.1:%d+/api\n" ..
  "export UQPAY_CLIENT_ID=sim%-client%-0001\nexport UQPAY_API_KEY=sim%-secret%-key%-0001\n$") ~= nil, exports)
local envs = exports:gsub("export ", ""):gsub("\n", " ")
local base = exports:match("UQPAY_BASE_URL=(%S+)")
local admin = base:gsub("/api$", "")
local cache = dir .. "/cache/uqlua"
-- five processes at once, one token: the lock stops the stampede
local cmds = {}
for i = 1, 5 do
  cmds[i] = "(" .. ENV .. envs .. UQ .. " -e 'uqpay.balance(\"USD\")' >/dev/null 2>" .. dir .. "/par" .. i .. ") &"
end
os.execute(table.concat(cmds, " ") .. " wait")
local st_code, st_out = run("curl -s " .. admin .. "/__sim/state")
local issued = tonumber(st_out:match('"tokens_issued":(%d+)'))
check("concurrent processes share one token (no stampede)", st_code == 0 and issued == 1, "tokens issued: " .. tostring(issued))
local cache_files = io.popen("ls " .. cache .. "/token-*.json 2>/dev/null"):read("a")
local cache_path = cache_files:match("[^\n]+")
local mode = cache_path and io.popen("stat -c %a " .. cache_path):read("a") or ""
check("the token cache file is 0600", mode:match("^600") ~= nil, cache_files .. " " .. mode)
local secret_hits = io.popen("grep -rl sim-secret-key-0001 " .. dir .. "/cache 2>/dev/null"):read("a")
check("the token cache never holds the API key", secret_hits == "", secret_hits)

-- inside uqpay.parallel, a coroutine of the script's own needs the token
-- while an item is fetching it (through the cache file and its lock); it
-- used to wait forever
local nested = file("nested.lua", [[
local res = uqpay.parallel({ "item", "nested" }, function(how)
  if how == "item" then return #uqpay.products.list() end
  return coroutine.wrap(function() return #uqpay.products.list() end)()
end)
print(res[1], res[2])
]])
expect("a script's own coroutine inside uqpay.parallel gets the token another item is fetching",
  "timeout 30 env XDG_CACHE_HOME=" .. dir .. "/cache-nested " .. envs .. UQ .. " " .. nested, 0, "^2\t2\n$")

-- an item's own coroutine.yield reaches the scheduler: the item fails
-- (it used to hang the batch for ever) and its locks go to the next item
local stray = file("stray.lua", [[
local P = require "uqpay.parallel"
local res, errs = uqpay.parallel({ 1, 2 }, function(i)
  return P.with_locks({ "card:x" }, function()
    if i == 1 then coroutine.yield("mine") end
    return "item " .. i .. " had the lock"
  end)
end)
print(res[2], errs[1].kind, errs[1].message)
]])
expect("an item yielding a value of its own fails, and lets go of its locks",
  "timeout 30 " .. UQ .. " --sim " .. stray, 0, "^item 2 had the lock\tusage\tuqpay.parallel: item 1 yielded a string")

-- production guard: no terminal and no --yes -> refused before any request
local function requests()
  local _, o = run("curl -s " .. admin .. "/__sim/state")
  return tonumber(o:match('"request_count":(%d+)'))
end
local prod = ENV .. envs .. "UQPAY_ENV=production "
local before = requests()
code, _, err = run(prod .. UQ .. " -e 'uqpay.recharge(\"66666666-6666-4666-8666-666666666661\", \"1.00\")'")
check("a production write without a terminal or --yes is refused, nothing sent",
  code == 2 and err:find("refusing a production write") ~= nil and requests() == before, err)
expect("production reads need no confirmation", prod .. UQ .. " -e 'print(uqpay.balance(\"USD\").available_balance)'",
  0, "^%d+%.%d%d\n$")
expect("--yes confirms production writes", prod .. UQ .. " --yes -e " ..
  "'print(uqpay.recharge(\"66666666-6666-4666-8666-666666666661\", \"1.00\").order_status)'", 0, "^SUCCESS\n$")

-- Ctrl-C during a slow request: exit 130, promptly. The signal is sent
-- once the request is in the simulator (or the script says it is running),
-- not after a guess at start-up time: a background job starts with SIGINT
-- ignored until uqlua installs its handler, so an early signal is lost.
local H = require "tests.helpers.sim"
local function until_true(what, f) assert(H.wait_until(f), "waited 10 s for " .. what) end
-- Runs cmd (with the environment assignments vars) in the background, as
-- an interactive shell's Ctrl-C would find it: interrupt() sends SIGINT,
-- code() waits up to 10 s for its exit code (nil, and the job killed, if
-- it ignored the signal).
local function background(vars, cmd)
  local id = dir .. "/bg-" .. core.uuid():sub(1, 8)
  os.execute("(" .. ENV .. vars .. cmd .. " >" .. id .. ".out 2>" .. id .. ".err & echo $! >" .. id ..
    ".pid; wait $!; echo $? >" .. id .. ".rc) &")
  local job = { out = id .. ".out" }
  local function job_pid()
    until_true("a pid", function() return slurp(id .. ".pid"):match("%d+") end)
    return slurp(id .. ".pid"):match("%d+")
  end
  function job.interrupt() os.execute("kill -INT " .. job_pid()) end
  function job.code()
    local function rc() return tonumber(slurp(id .. ".rc"):match("%d+")) end
    if H.wait_until(rc) then return rc() end
    os.execute("kill -KILL " .. job_pid())
  end
  return job
end
run("curl -s -X POST " .. admin .. "/__sim/faults -d '{\"spec\":\"latency=1:ms=5000:path=/v1/issuing/products\"}'")
local job = background(envs, UQ .. " -e 'uqpay.products.list()'")
until_true("the request in the simulator", function()
  return select(2, run("curl -s " .. admin .. "/__sim/state")):find('"in_flight":1', 1, true) ~= nil
end)
local t0 = core.monotonic_ms()
job.interrupt()
code = job.code()
check("kill -INT during a request exits 130 at once", code == 130 and core.monotonic_ms() - t0 < 3000,
  "exit " .. tostring(code) .. " after " .. (core.monotonic_ms() - t0) .. " ms")
job = background("", UQ .. " -e 'print(\"running\"); io.stdout:flush(); while true do end'")
until_true("the script to run", function() return slurp(job.out):find("running") ~= nil end)
job.interrupt()
code = job.code()
check("kill -INT on a running script exits 130", code == 130, "exit " .. tostring(code))
os.execute("kill -TERM " .. pid .. " ; sleep 0.3")
check("--serve-sim stops on SIGTERM", run("curl -s -m 2 " .. admin .. "/__sim/state") ~= 0
  and slurp(dir .. "/sim.err"):find("simulator stopped") ~= nil, slurp(dir .. "/sim.err"))

expect("--serve-sim refuses a bad --listen", UQ .. " --serve-sim --listen nowhere", 2, nil, "HOST:PORT")
expect("--serve-sim refuses bad faults", UQ .. " --serve-sim --listen 127.0.0.1:0 --faults explode", 2, nil, "unknown fault kind")
-- libcurl and libmicrohttpd are opened on first use (src/lazy.c): a start
-- that sends nothing maps neither
local maps = [[local m = io.open("/proc/self/maps"):read("a"); return m:find("libcurl") ~= nil, m:find("libmicrohttpd") ~= nil]]
expect("a start that sends nothing loads neither libcurl nor libmicrohttpd",
  UQ .. " --json -e '" .. maps .. "'", 0, "^false\nfalse\n")
expect("the first HTTP handle loads libcurl (and not the server's library)",
  UQ .. " --json -e 'require(\"uqpay.core\").http_new(); " .. maps .. "'", 0, "^true\nfalse\n")
expect("--sim loads both", UQ .. " --sim --json -e 'uqpay.products.list(); " .. maps .. "'", 0, "^true\ntrue\n")
-- libcrypto (src/lazy_crypto.c) is opened by the first HMAC, libedit
-- (src/lazy_edit.c) by a REPL on a terminal (tests/integration/repl.lua)
local maps2 = [[local m = io.open("/proc/self/maps"):read("a"); return m:find("libcrypto") ~= nil, m:find("libedit") ~= nil]]
expect("a start that sends nothing loads neither libcrypto nor libedit", UQ .. " --json -e '" .. maps2 .. "'", 0,
  "^false\nfalse\n")
-- RFC 4231 test case 2
expect("the first HMAC loads libcrypto, and computes as it did linked",
  UQ .. " --json -e 'local h = require(\"uqpay.core\").hmac_sha512_hex(\"Jefe\", \"what do ya want for nothing?\"); " ..
  "print(h); " .. maps2 .. "'", 0, "^164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554" ..
  "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737\ntrue\nfalse\n")
expect("constant-time comparison, without libcrypto",
  UQ .. " --json -e 'local eq = require(\"uqpay.core\").consttime_eq; " ..
  "print(eq(\"abc\", \"abc\"), eq(\"abc\", \"abd\"), eq(\"abc\", \"ab\"), eq(\"\", \"\"), eq(\"xbc\", \"abc\")); " ..
  maps2 .. "'", 0, "^true\tfalse\tfalse\ttrue\tfalse\nfalse\nfalse\n")
-- each library keeps its own reason: libmicrohttpd opening after a failed
-- libcrypto does not turn the next HMAC's error into "out of memory"
os.execute("mkdir -p " .. dir .. "/nocrypto && echo not-a-library > " .. dir .. "/nocrypto/libcrypto.so.3")
expect("an HMAC without libcrypto says why, after another library opened too",
  "LD_LIBRARY_PATH=" .. dir .. "/nocrypto " .. UQ .. " -e 'local c = require(\"uqpay.core\"); " ..
  "print(pcall(c.hmac_sha512_hex, \"k\", \"m\")); c.sim_start({}); print(pcall(c.hmac_sha512_hex, \"k\", \"m\"))'", 0,
  "^false\t[^\n]*HMAC failed: cannot load [^\n]*libcrypto[^\n]*\nfalse\t[^\n]*HMAC failed: cannot load [^\n]*libcrypto")
expect("modules are embedded as bytecode that keeps file and line (for tracebacks)",
  UQ .. " -e 'local i = debug.getinfo(uqpay.recharge, \"S\"); local src = require(\"uqpay.core\").embedded_source(\"uqpay.api\"); " ..
  "print(i.short_src, i.linedefined > 0, src == nil)'", 0, "^lua/uqpay/api%.lua\ttrue\ttrue\n")
expect("bundled ops scripts stay source (uqlua ops reads their headers)", UQ .. " ops", 0, "bulk%-recharge%s+Recharge")
expect("--listen needs --serve-sim", UQ .. " --listen 127.0.0.1:1 -e 1", 2, nil, "go with %-%-serve%-sim")

T:finish()
