#!/usr/bin/env bash
# strata beside llama.cpp on the same weights, interleaved A B A B in one run
# (this machine's memory speed drifts between runs: only same-run ratios
# mean something). The models are strata's synthetic TinyLlama-shaped
# checkpoints (`strata synth --like tinyllama-1.1b`, bf16 and f32) and their
# GGUF conversions (../shared/tools/synth_to_gguf.py); ../shared/tools/
# setup_peers.sh builds llama.cpp and makes both into PEERS. llama.cpp is a
# measuring stick only: nothing of it is in this repository.
#
# Environment: LLAMA_BENCH (PEERS/llama.cpp/build/bin/llama-bench), PEERS
# (/work/peers), BUILD_DIR (build), THREADS (2), ROUNDS (2), PROMPTS ("64
# 512"), GEN (32), DTYPES ("bf16 f32"), COMPUTE (fast).
# Quantized pairs in DTYPES, "int8:q8_0 int4:q4_k_m": strata quantizes the
# bf16 checkpoint with --quantize int8 --quantize-all (once, into
# PEERS/offload-int8), llama.cpp runs its own quantization of the same
# weights (PEERS/gguf/tl-q8_0.gguf, made by setup_peers.sh).
# Prints one line per run, then per dtype the medians and strata / llama.cpp
# in tokens per second (above 1: strata is faster).
set -euo pipefail
cd "$(dirname "$0")/.."
peers=${PEERS:-/work/peers}
llama=${LLAMA_BENCH:-$peers/llama.cpp/build/bin/llama-bench}
strata=${BUILD_DIR:-build}/strata
threads=${THREADS:-2}
rounds=${ROUNDS:-2}
prompts=${PROMPTS:-64 512}
gen=${GEN:-32}
dtypes=${DTYPES:-bf16 f32}
compute=${COMPUTE:-fast}
[[ -x $strata ]] || { echo "build strata first (cmake, or scripts/test.sh)" >&2; exit 1; }
[[ -x $llama ]] || { echo "no llama-bench at $llama: run ../shared/tools/setup_peers.sh or set LLAMA_BENCH" >&2; exit 1; }
here=$(pwd)
# A DTYPES entry: strata's model and flags, llama.cpp's GGUF.
strata_model() { [[ $1 == *:* ]] && echo "$peers/models/tl-bf16" || echo "$peers/models/tl-$1"; }
strata_flags() { [[ $1 == *:* ]] && echo "--quantize ${1%%:*} --quantize-all --offload-folder $peers/offload-${1%%:*}" || true; }
gguf_of() { echo "$peers/gguf/tl-${1##*:}.gguf"; }
for dt in $dtypes; do
  [[ $dt == *:* ]] && { [[ -f $(gguf_of "$dt") ]] || { echo "no $(gguf_of "$dt"): run setup_peers.sh" >&2; exit 1; }; continue; }
  model=$peers/models/tl-$dt
  gguf=$peers/gguf/tl-$dt.gguf
  [[ -f $model/config.json ]] || "$strata" synth --like tinyllama-1.1b --dtype "$dt" -o "$model" --force
  [[ -f $gguf ]] || GGUF_PY="$peers/llama.cpp/gguf-py" /usr/bin/python3 "$here/../shared/tools/synth_to_gguf.py" "$model" "$gguf"
done
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# One line per measurement: engine dtype what tokens/s.
for round in $(seq "$rounds"); do
  for dt in $dtypes; do
    for p in $prompts; do
      # A: strata. Decode speed from the shortest prompt's run only.
      # shellcheck disable=SC2046
      "$strata" bench -m "$(strata_model "$dt")" $(strata_flags "$dt") -t "$threads" --compute "$compute" --prompt-tokens "$p" \
        --gen-tokens "$gen" --reps 1 --json --quiet-map 2>/dev/null |
        /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin); dt, p, first = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
print("strata", dt, "pp" + p, r["prompt_tok_per_s"]["mean"])
if first: print("strata", dt, "tg", 1000.0 / r["gen_ms_per_tok"]["mean"])' "$dt" "$p" "$([[ $p == ${prompts%% *} ]] && echo 1 || echo 0)" | tee -a "$log"
      # B: llama.cpp, weights read into memory (no mmap), as strata loads them.
      "$llama" -m "$(gguf_of "$dt")" -t "$threads" -lm none -p "$p" -n "$([[ $p == ${prompts%% *} ]] && echo "$gen" || echo 0)" \
        -r 1 -o json 2>/dev/null |
        /usr/bin/python3 -c '
import json, sys
dt = sys.argv[1]
for r in json.load(sys.stdin):
    what = "pp%d" % r["n_prompt"] if r["n_prompt"] > 0 else "tg"
    print("llama.cpp", dt, what, r["avg_ts"])' "$dt" | tee -a "$log"
    done
  done
done
echo
/usr/bin/python3 - "$log" "$compute" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    engine, dt, what, ts = line.split()
    runs.setdefault((dt, what), {}).setdefault(engine, []).append(float(ts))
print("%-11s %-7s %14s %14s %8s" % ("dtype", "test", "strata tok/s", "llama tok/s", "ratio"))
for (dt, what), by in sorted(runs.items()):
    s, l = statistics.median(by.get("strata", [0])), statistics.median(by.get("llama.cpp", [0]))
    print("%-11s %-7s %14.1f %14.1f %8.2f" % (dt, what, s, l, s / l if l else float("nan")))
print("(medians of %d interleaved rounds; strata --compute %s)" % (max(len(v) for b in runs.values() for v in b.values()), sys.argv[2]))
PY
