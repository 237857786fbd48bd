#!/bin/sh
# make bench: every figure three times, printed as min / median / max, with
# the CPUs of client and server beside it. Servers (the simulator, and a
# constant-response server that costs nothing) are pinned to CPU 0 and
# clients to CPU 1: on a 2-vCPU VM the placement moves the figures more
# than the code does, so it is fixed and printed, never chosen per row.
# Figures only; nothing asserts. Tunables: BENCH_SECONDS (per figure, 2),
# BENCH_RSS_OPS (200000), BENCH_BULK (1000 recharges at the rate limit).
set -e
UQLUA=$(realpath "${1:-./uqlua}")
SECS=${BENCH_SECONDS:-2}
RSS_OPS=${BENCH_RSS_OPS:-200000}
BULK=${BENCH_BULK:-1000}
SRV=0 CLI=1
[ "$(nproc)" -ge 2 ] || CLI=0
here=$(dirname "$0")
tmp=$(mktemp -d)
pids=
trap 'for p in $pids; do kill $p 2>/dev/null; done; rm -rf "$tmp"' EXIT
export XDG_CACHE_HOME="$tmp/cache" XDG_STATE_HOME="$tmp/state" XDG_CONFIG_HOME="$tmp/config" UQLUA_RATE_LIMIT=0

for t in floor const_server fsync; do
  cc -O2 -o "$tmp/$t" "$here/bench/$t.c" -lcurl -lmicrohttpd -luuid
done

# three CMD...: CMD prints "figure[<TAB>cpu-us[<TAB>sync-us]]"; prints min,
# median and max of the figure, and the CPU time (and the journal's time
# per sync, inside the loop) of the median run, tab-separated
three() {
  : >"$tmp/runs"
  for _ in 1 2 3; do "$@" >>"$tmp/runs"; done
  summary "$tmp/runs"
}
summary() { # FILE of three runs' lines -> the line three() prints
  sort -n "$1" | awk -F'\t' '{ v[NR] = $1; c[NR] = $2; s[NR] = $3 } END {
    printf "%s\t%s\t%s\t%s\t%s\n", v[1], v[2], v[3], (c[2] == "" ? "-" : c[2]), (s[2] == "" ? "-" : s[2]) }'
}
row() { # LABEL UNIT "min med max cpu" CLIENT-CPU SERVER-CPU
  echo "$3" | awk -F'\t' -v l="$1" -v u="$2" -v c="$4" -v s="$5" \
    '{ printf "  %-58s %9s %9s %9s %-6s %8s  cpu %s/%s\n", l, $1, $2, $3, u, $4, c, s }'
}
header() {
  printf '  %-58s %9s %9s %9s %-6s %8s  %s\n' "" min median max unit "cpu-us/r" "placement client/server"
}

# ---- the simulator, with enough distinct cards for parallel and bulk runs
"$UQLUA" "$here/bench.lua" seed 1100 >"$tmp/seed.json"
: >"$tmp/env"
taskset -c $SRV "$UQLUA" --serve-sim --seed "$tmp/seed.json" --listen 127.0.0.1:0 >"$tmp/env" 2>/dev/null &
pids="$pids $!"
i=0
while [ "$(wc -l <"$tmp/env")" -lt 3 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
eval "$(cat "$tmp/env")"
export UQPAY_BASE_URL UQPAY_CLIENT_ID UQPAY_API_KEY
SIM=$UQPAY_BASE_URL ROOT=${UQPAY_BASE_URL%/api}
CARD=66666666-6666-4666-8666-666666666662
grep -o '99999999-9999-4999-8999-[0-9]*' "$tmp/seed.json" >"$tmp/cards"
tok() { curl -s -X POST "$1/v1/connect/token" -H "x-client-id: $UQPAY_CLIENT_ID" -H "x-api-key: $UQPAY_API_KEY" |
  sed 's/.*"auth_token":"\([^"]*\)".*/\1/'; }
TOK=$(tok "$SIM")

# ---- the constant-response server
port=$(( 20000 + $$ % 20000 ))
taskset -c $SRV "$tmp/const_server" $port >"$tmp/const.out" &
pids="$pids $!"
i=0
while ! grep -q ready "$tmp/const.out" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
CONST=http://127.0.0.1:$port

uq() { taskset -c $CLI "$UQLUA" "$@"; }
bash_loop() { # the seed guide's loop: a curl and a uuidgen process per request
  if command -v uuidgen >/dev/null; then gen=uuidgen; else gen="cat /proc/sys/kernel/random/uuid"; fi
  taskset -c $CLI bash -c '
    end=$(( $(date +%s%N) + '"$SECS"'000000000 )); n=0; t0=$(date +%s%N)
    while [ $(date +%s%N) -lt $end ]; do
      curl -s -o /dev/null -X POST "$0/v1/issuing/cards/$1/recharge" -H "x-auth-token: Bearer $2" \
        -H "Content-Type: application/json" -H "x-idempotency-key: $('"$gen"')" -d "{\"amount\":\"0.01\"}"
      n=$((n + 1))
    done
    echo $(( n * 1000000000 / ($(date +%s%N) - t0) ))' "$SIM" "$CARD" "$TOK"
}

echo "Machine: $(nproc) CPUs, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1), $(uname -sr)"
# which CPU takes the disk's completion interrupts (virtio-blk or NVMe
# queues): the most interrupts so far
awk 'NR == 1 { n = NF; next } /virtio[0-9]*-req|nvme[0-9]*q/ { for (i = 2; i <= n + 1; i++) if ($i + 0 > best) { best = $i + 0; cpu = i - 2; q = $NF } }
  END { if (q != "") printf "Disk interrupts (%s) on CPU %d; clients run on CPU %d\n", q, cpu, cli }' cli=$CLI /proc/interrupts
echo "Each figure: ${SECS} s, three runs. Recharges of 0.01 with a new key each."
echo
echo "Against the simulator (its Lua rules on every request):"
header
floor_sim=$(three sh -c "taskset -c $CLI $tmp/floor $SIM $TOK $CARD $SECS x | cut -f2-")
row "C libcurl keep-alive loop (the floor)" "req/s" "$floor_sim" $CLI $SRV
nj_sim=$(three uq --no-journal "$here/bench.lua" recharge "$SECS" $CARD)
row "uqpay.recharge, --no-journal" "req/s" "$nj_sim" $CLI $SRV
j_sim=$(three uq "$here/bench.lua" recharge "$SECS" $CARD)
row "uqpay.recharge, journaled (the default)" "req/s" "$j_sim" $CLI $SRV
bash_sim=$(three bash_loop)
row "bash loop: curl + $(command -v uuidgen >/dev/null && echo uuidgen || echo /proc uuid) per request" "req/s" "$bash_sim" $CLI $SRV
for n in 8 32 64; do
  r=$(three uq "$here/bench.lua" parallel "$SECS" $n "$tmp/cards")
  row "uqpay.parallel, $n at a time over $n cards, journaled" "req/s" "$r" $CLI $SRV
done
echo
echo "Against the constant-response server (the client's own cost):"
header
CTOK=bench
# In rounds: each round runs the four rows one after the other, so that a
# machine slowing down between rows moves all four alike. Each row is the
# min, median and max over the rounds; the ratios below are taken per round.
: >"$tmp/c_floor"; : >"$tmp/c_nj"; : >"$tmp/c_j"; : >"$tmp/c_fj"
mkdir -p "$XDG_STATE_HOME"
for _ in 1 2 3; do
  taskset -c $CLI "$tmp/floor" $CONST $CTOK $CARD $SECS x | cut -f2- >>"$tmp/c_floor"
  UQPAY_BASE_URL=$CONST uq --no-journal "$here/bench.lua" recharge "$SECS" $CARD >>"$tmp/c_nj"
  UQPAY_BASE_URL=$CONST uq "$here/bench.lua" recharge "$SECS" $CARD >>"$tmp/c_j"
  taskset -c $CLI "$tmp/floor" $CONST $CTOK $CARD $SECS x "$XDG_STATE_HOME" | cut -f2- >>"$tmp/c_fj"
done
floor_c=$(summary "$tmp/c_floor")
row "C libcurl keep-alive loop (the floor)" "req/s" "$floor_c" $CLI $SRV
nj_c=$(summary "$tmp/c_nj")
row "uqpay.recharge, --no-journal" "req/s" "$nj_c" $CLI $SRV
j_c=$(summary "$tmp/c_j")
row "uqpay.recharge, journaled" "req/s" "$j_c" $CLI $SRV
floor_cj=$(summary "$tmp/c_fj")
row "C loop + a 240-byte pwrite and fdatasync per request" "req/s" "$floor_cj" $CLI $SRV
# per round (fields: floor rps cpu, no-journal rps cpu, journaled rps cpu
# sync, floor with its sync rps cpu): uqlua's CPU / the floor's, the
# journal's extra time per write, its sync inside the loop, and the floor's
# extra time for its one sync
paste "$tmp/c_floor" "$tmp/c_nj" "$tmp/c_j" "$tmp/c_fj" | awk -F'\t' '{
  # a run that failed leaves a line short or a figure of 0: no ratio from it
  for (i = 1; i <= 9; i++) if (NF != 9 || $i + 0 <= 0) { print "bench: a constant-server run failed (round " NR ")" > "/dev/stderr"; exit 1 }
  printf "%.4f\t%.2f\t%.2f\t%.2f\n", $4 / $2, 1e6 / $5 - 1e6 / $3, $7, 1e6 / $8 - 1e6 / $1 }
  END { if (NR != 3) { print "bench: a constant-server round is missing" > "/dev/stderr"; exit 1 } }' >"$tmp/rounds"
echo
echo "The journal's disk (the same file system as the journal):"
# pinned where the journal's writer runs: a disk's completion interrupt is
# taken on one CPU (the machine line names it), and a sync waited for on the
# other CPU pays a cross-CPU wake (30-50 us on this VM)
fs=$(three sh -c "taskset -c $CLI $tmp/fsync $XDG_STATE_HOME $SECS | head -1 | cut -f2")
row "fdatasync of a 240-byte overwrite, preallocated file" "us" "$fs" $CLI -
fa=$(three sh -c "taskset -c $CLI $tmp/fsync $XDG_STATE_HOME $SECS | tail -1 | cut -f2")
row "fdatasync of a 240-byte append (for comparison)" "us" "$fa" $CLI -
echo
echo "Startup (mean of 200 runs):"
startup() { # CMD...
  t0=$(date +%s%N); i=0
  while [ $i -lt 200 ]; do "$@" >/dev/null; i=$((i + 1)); done
  echo $(( ($(date +%s%N) - t0) / 200000 ))
}
taskset -pc $CLI $$ >/dev/null # the rows say cpu $CLI: this shell and what it starts
s_uq=$(three startup "$UQLUA" -e '')
row "uqlua -e ''" "us" "$s_uq" $CLI -
if command -v lua5.4 >/dev/null; then
  s_lua=$(three startup lua5.4 -e '')
  row "lua5.4 -e ''" "us" "$s_lua" $CLI -
fi
taskset -pc 0-$(($(nproc) - 1)) $$ >/dev/null
echo
echo "Peak RSS after $RSS_OPS recharges against the constant server (one run each):"
rss_nj=$(UQPAY_BASE_URL=$CONST uq --no-journal "$here/bench.lua" rss "$RSS_OPS" $CARD)
rss_j=$(UQPAY_BASE_URL=$CONST uq "$here/bench.lua" rss "$RSS_OPS" $CARD)
printf '  %-58s %9s KB\n  %-58s %9s KB\n' "--no-journal" "$rss_nj" "journaled" "$rss_j"
echo
echo "At the rate limit: $BULK recharges, 64 at a time, simulator at 3000 requests/min, bursts of 300 (one run each):"
curl -s -X POST "$ROOT/__sim/reset" >/dev/null
curl -s -X POST "$ROOT/__sim/config" -d '{"rate_limit": 3000}' >/dev/null
known=$(UQLUA_RATE_LIMIT=3000 uq "$here/bench.lua" bulk "$BULK" "$tmp/cards")
sent_known=$(curl -s "$ROOT/__sim/state" | sed -n 's/.*"request_count":\([0-9]*\).*/\1/p')
curl -s -X POST "$ROOT/__sim/reset" >/dev/null
curl -s -X POST "$ROOT/__sim/config" -d '{"rate_limit": 3000}' >/dev/null
unknown=$(UQLUA_RATE_LIMIT=0 uq "$here/bench.lua" bulk "$BULK" "$tmp/cards")
sent_unknown=$(curl -s "$ROOT/__sim/state" | sed -n 's/.*"request_count":\([0-9]*\).*/\1/p')
# the server's bucket starts full: 300 at once, then 50 a second
ideal=$(awk -v n="$BULK" 'BEGIN { x = (n - 300) / 50; if (x < 0) x = 0; printf "%.2f", x }')
for pair in "limit known to the client (UQLUA_RATE_LIMIT=3000)|$known|$sent_known" \
            "limit unknown to the client, learned from 429 + Retry-After|$unknown|$sent_unknown"; do
  echo "$pair" | awk -F'|' -v ideal="$ideal" -v n="$BULK" '{ split($2, r, "\t")
    printf "  %-58s %9s s  %.2fx ideal (%s s)  %d failed  %d requests (%d refused with 429)\n", $1, r[1],
      (ideal > 0 ? r[1] / ideal : 0), ideal, r[2], $3, $3 - n - 1 }'
done
echo
echo "The simulator's rules in process, no HTTP (20000 recharges, then 20000 reads of a card; three runs):"
# simrows LABEL CARD: each column sorted on its own (min, median, max of each)
simrows() {
  for i in 1 2 3; do uq "$here/bench.lua" simcost 20000 "$2"; done | awk -F'\t' -v label="$1" '{ w[NR] = $1; r[NR] = $2; mw[NR] = $3; mr[NR] = $4 }
    function sort3(a,  t) { if (a[1] + 0 > a[2] + 0) { t = a[1]; a[1] = a[2]; a[2] = t }
      if (a[2] + 0 > a[3] + 0) { t = a[2]; a[2] = a[3]; a[3] = t }
      if (a[1] + 0 > a[2] + 0) { t = a[1]; a[1] = a[2]; a[2] = t } }
    END { sort3(w); sort3(r); sort3(mw); sort3(mr)
          printf "  %-58s %9s %9s %9s us\n  %-58s %9s %9s %9s us\n", "per recharge, " label " (min median max)", w[1], w[2], w[3],
            "per read of that card", r[1], r[2], r[3]
          printf "  %-58s %9s B\n  %-58s %9s B\n", "memory kept per recharge, " label, mw[2], "memory kept per read", mr[2] }'
}
simrows "SHARE card" 66666666-6666-4666-8666-666666666662
simrows "SINGLE card (and its balance row)" 66666666-6666-4666-8666-666666666661
echo
echo "In process, one CPU (figures of the median run):"
uq "$here/bench.lua" local "$SECS" | awk -F'\t' '{ printf "  %-58s %12s %s\n", $1, $2, $3 }'
echo
# med FILE COLUMN -> "median<TAB>min<TAB>max" of that column over the rounds
med() { cut -f"$2" "$1" | sort -g | awk '{ v[NR] = $1 } END { printf "%s\t%s\t%s\n", v[int((NR + 1) / 2)], v[1], v[NR] }'; }
awk -v fs="$fs" -v su="$s_uq" -v sl="${s_lua:-}" -v cpu="$(med "$tmp/rounds" 1)" -v jx="$(med "$tmp/rounds" 2)" \
    -v js="$(med "$tmp/rounds" 3)" -v fx="$(med "$tmp/rounds" 4)" -v nj="$nj_c" -v fc="$floor_c" 'BEGIN {
  split(fs, S, "\t"); split(su, U, "\t"); split(sl, L, "\t"); split(cpu, C, "\t"); split(jx, J, "\t")
  split(js, Y, "\t"); split(fx, X, "\t"); split(nj, N, "\t"); split(fc, F, "\t")
  print "Ratios (constant server; each the median over the rounds, min and max after it):"
  printf "  uqlua --no-journal / C floor, throughput                      %.2f\n", N[2] / F[2]
  printf "  uqlua --no-journal / C floor, CPU per request                 %.2f  (%.2f-%.2f)  (target <= 1.5)\n", C[1], C[2], C[3]
  printf "  journal cost per write: %.0f us = %.2f x one preallocated fdatasync (%.2f-%.2f)  (target <= 1.25)\n",
    J[1], J[1] / S[2], J[2] / S[2], J[3] / S[2]
  printf "    of which the sync inside the loop: %.0f us (the rest, its own work: %.0f us)\n", Y[1], J[1] - Y[1]
  printf "  the C loop, one sync per request: %.0f us = %.2f x the same fdatasync (%.2f-%.2f)  (no journal costs less here)\n",
    X[1], X[1] / S[2], X[2] / S[2], X[3] / S[2]
  printf "  uqlua journal over that: %.0f us per write\n", J[1] - X[1]
  if (sl != "") printf "  startup: uqlua %.1f ms, lua5.4 %.1f ms, difference %.1f ms  (target <= 2)\n", U[2] / 1000, L[2] / 1000, (U[2] - L[2]) / 1000
}'
