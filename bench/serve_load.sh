#!/usr/bin/env bash
# Throughput and time to first token of `strata serve` for 1, 4 and 16
# concurrent streaming clients (bench/serve_load.mjs, Node's fetch on
# loopback), on the TinyLlama-shaped synthetic model with part of it on disk.
# The server runs with --parallel 16, so every client of a round decodes in
# the same steps; each round is run ROUNDS times, rounds interleaved.
# Environment: BUILD_DIR (build), MODEL (BUILD_DIR/models/synth-tl-bf16, made
# with `strata synth --like tinyllama-1.1b` when missing), MAX_MEMORY
# (cpu=1GiB,disk: about half the 2.2 GB of weights stream from disk),
# CLIENTS ("1 4 16"), TOKENS (32 per client), ROUNDS (2), PORT (18080),
# THREADS (2), EXTRA (more strata serve flags).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
model=${MODEL:-$build/models/synth-tl-bf16}
max_memory=${MAX_MEMORY:-cpu=1GiB,disk}
clients=${CLIENTS:-1 4 16}
tokens=${TOKENS:-32}
rounds=${ROUNDS:-2}
port=${PORT:-18080}
threads=${THREADS:-2}
[[ -x $build/strata ]] || { echo "build strata first (cmake, or scripts/test.sh)" >&2; exit 1; }
command -v node >/dev/null || { echo "serve_load needs node" >&2; exit 1; }
[[ -f $model/config.json ]] || "$build/strata" synth --like tinyllama-1.1b --dtype bf16 -o "$model"

log=$(mktemp)
# shellcheck disable=SC2086
"$build/strata" serve -m "$model" --port "$port" --parallel 16 --ctx 256 -t "$threads" \
  --max-memory "$max_memory" --log-interval 2 ${EXTRA:-} 2> "$log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -f "$log"' EXIT
url=http://127.0.0.1:$port
for _ in $(seq 600); do
  curl -sf "$url/health" >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 1
done
curl -sf "$url/health" >/dev/null || { echo "the server did not come up" >&2; cat "$log" >&2; exit 1; }
echo "plan: $(curl -sf "$url/v1/strata/plan" | /usr/bin/python3 -c 'import json,sys; p=json.load(sys.stdin); print({k: p[k] for k in p if k != "device_map"})')"
node bench/serve_load.mjs "$url" 1 4 >/dev/null  # warm-up: first touches of the weights

results=$(mktemp)
for round in $(seq "$rounds"); do
  for n in $clients; do
    node bench/serve_load.mjs "$url" "$n" "$tokens" | tee -a "$results"
  done
done
echo
/usr/bin/python3 - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print(f"{'clients':>8} {'tok/s (all clients)':>20} {'first token median s':>21} {'first token max s':>18}")
for n in sorted({r["clients"] for r in rows}):
    runs = [r for r in rows if r["clients"] == n]
    med = lambda key: statistics.median(r[key] for r in runs)
    print(f"{n:>8} {med('tokens_per_second'):>20.2f} {med('first_token_median_s'):>21.2f} {med('first_token_max_s'):>18.2f}")
print(f"(medians of {len(runs)} rounds)")
PY
rm -f "$results"
echo "server log (batch lines):"
grep -i 'tok/s' "$log" | tail -5 || true
