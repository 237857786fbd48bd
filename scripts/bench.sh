#!/bin/sh
# make bench: the simulator runs standalone on loopback, pinned to CPU 0;
# the client runs once on the same CPU and once on the other, and the two
# figures are printed side by side. On this kind of 2-vCPU VM a wake-up
# across CPUs costs far more than the request itself, so the placement
# matters more than the code. Figures only; nothing asserts.
set -e
UQLUA=${1:-./uqlua}
SECS=${BENCH_SECONDS:-2}
tmp=$(mktemp -d)
: >"$tmp/env"
taskset -c 0 "$UQLUA" --serve-sim --listen 127.0.0.1:0 >"$tmp/env" 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT
i=0
while [ "$(wc -l <"$tmp/env")" -lt 3 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
eval "$(cat "$tmp/env")"
export UQPAY_BASE_URL UQPAY_CLIENT_ID UQPAY_API_KEY UQLUA_RATE_LIMIT=0 XDG_CACHE_HOME="$tmp" XDG_STATE_HOME="$tmp"

run_http() { # $1 = cpu
  taskset -c "$1" "$UQLUA" scripts/bench.lua http "$SECS"
  if command -v wrk >/dev/null; then
    tok=$(curl -s -X POST "$UQPAY_BASE_URL/v1/connect/token" -H "x-client-id: $UQPAY_CLIENT_ID" \
      -H "x-api-key: $UQPAY_API_KEY" | sed 's/.*"auth_token":"\([^"]*\)".*/\1/')
    rps=$(taskset -c "$1" wrk -t1 -c1 -d"${SECS}s" -H "x-auth-token: Bearer $tok" \
      "$UQPAY_BASE_URL/v1/issuing/products" | sed -n 's/^Requests\/sec: *\([0-9]*\).*/\1/p')
    printf 'GET /v1/issuing/products (wrk, 1 connection)\t%s\treq/s\n' "$rps"
  fi
}
run_http 0 >"$tmp/same"
run_http 1 >"$tmp/other"
echo "Simulator on loopback, one keep-alive client (simulator pinned to CPU 0):"
printf '  %-62s %14s %14s\n' "" "client CPU 0" "client CPU 1"
paste "$tmp/same" "$tmp/other" | awk -F'\t' '{ printf "  %-62s %8s %-5s %8s %-5s\n", $1, $2, $3, $5, $6 }'
echo
echo "In-process (JSON codec and money), one CPU:"
"$UQLUA" scripts/bench.lua local "$SECS" | awk -F'\t' '{ printf "  %-62s %12s %s\n", $1, $2, $3 }'
command -v wrk >/dev/null || echo "(install wrk for an independent HTTP client figure: sh scripts/deps.sh wrk)"
