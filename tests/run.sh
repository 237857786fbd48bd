#!/bin/sh
# Runs every test suite against each uqlua binary given (the normal build,
# then the sanitizer build) and ends with one line "N passed, N failed" for
# all of them. Exits non-zero on any failure, or when a suite dies without
# reporting (a crash, a sanitizer report or a leak counts as a failure).
#   sh tests/run.sh ./uqlua build-asan/uqlua
[ $# -gt 0 ] || set -- ./uqlua
cd "$(dirname "$0")/.." || exit 2
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
passed=0
failed=0

# suite NAME COMMAND...: runs a TAP-producing suite and adds up its counts.
suite() {
  name=$1
  shift
  echo "== $name" >&2
  "$@" >"$log/$name.tap" 2>"$log/$name.err"
  rc=$?
  grep -v '^ok ' "$log/$name.tap" | grep -v '^1\.\.' >&2
  p=$(grep -c '^ok ' "$log/$name.tap")
  f=$(grep -c '^not ok ' "$log/$name.tap")
  planned=$(sed -n 's/^1\.\.\([0-9]*\)$/\1/p' "$log/$name.tap" | tail -n 1)
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "$name: exited $rc without a failing test; stderr follows" >&2
    f=$((f + 1))
  fi
  if [ -z "$planned" ] || [ "$planned" -ne $((p + f)) ] 2>/dev/null; then
    echo "$name: planned ${planned:-nothing}, ran $((p + f))" >&2
    [ "$rc" -eq 0 ] && f=$((f + 1))
  fi
  if [ "$f" -ne 0 ]; then tail -n 30 "$log/$name.err" >&2; fi
  echo "   $p passed, $f failed" >&2
  passed=$((passed + p))
  failed=$((failed + f))
}

# Tests never touch the real journal, cache or config directories.
export XDG_STATE_HOME="$log/state" XDG_CACHE_HOME="$log/cache" XDG_CONFIG_HOME="$log/config"

# luacheck over every Lua file of ours (.luacheckrc), once.
lint() {
  if luacheck -q --codes lua tests scripts >"$log/lint.out" 2>&1; then
    echo "ok 1 - luacheck lua tests scripts"
  else
    echo "not ok 1 - luacheck lua tests scripts"
    sed 's/^/# /' "$log/lint.out"
  fi
  echo "1..1"
}
suite luacheck lint

for UQLUA in "$@"; do
  export UQLUA
  echo "== with $UQLUA" >&2
  suite specs "$UQLUA" --sim /usr/bin/busted -o TAP tests/spec
  suite cli "$UQLUA" tests/cli.lua "$UQLUA"
  # the C-level tests built beside this uqlua (build/ for ./uqlua)
  bdir=$(dirname "$UQLUA")
  [ "$bdir" = . ] && bdir=build
  suite c_random "$bdir/test_random"
  for t in tests/integration/*.lua; do
    [ -e "$t" ] || continue
    suite "$(basename "$t" .lua)" "$UQLUA" "$t" "$UQLUA"
  done
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
