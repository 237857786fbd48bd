-- luacheck configuration (make test runs it over lua/, tests/ and scripts/).
std = "lua54"
max_line_length = 140
-- uqlua sets the global uqpay in every script, the REPL and the tests
read_globals = { "uqpay" }
files["tests/spec"] = { std = "+busted" }
-- the host replaces os.exit so that a run completes on success (uqpay.run)
files["lua/uqpay/run.lua"] = { globals = { "os" } }
-- the bundled ops runner sets arg for the script it runs, as lua.c does
files["lua/uqlua/ops.lua"] = { globals = { "arg" } }
-- methods may leave self unused (they keep one calling convention)
self = false
-- the endpoint table's rows carry their doc examples on one line each
files["lua/uqpay/endpoints.lua"] = { max_line_length = false }
