#!/usr/bin/env bash
# Quick start: install what is missing, build strata, run a small trained model
# (stories260k, from the test fixtures) with most of its layers left on disk,
# then make a TinyLlama-1.1B-shaped model with random weights (bf16, ~2.2 GB)
# and generate text with it.
# Environment: STRATA_DEMO_MODEL (default build/models/tinyllama-bf16), BUILD_DIR (default build).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build_dir" -j"$(nproc)" --target strata_cli

# Real text from an offloaded model: a RAM budget too small for the whole
# model keeps layer 0 in RAM and reads layers 1-4 from disk every token.
echo "strata quickstart: stories260k (a trained 260K-parameter model) with 2100 KiB of RAM, the rest on disk" >&2
"$build_dir"/strata generate -m tests/fixtures/models/stories260k -p "Once upon a time" -n 48 --temp 0 \
  --ctx 256 --max-memory cpu=2100KiB,disk

model=${STRATA_DEMO_MODEL:-$build_dir/models/tinyllama-bf16}
if [[ ! -f $model/config.json ]]; then
  "$build_dir"/strata synth --like tinyllama-1.1b --dtype bf16 -o "$model" --force
fi
"$build_dir"/strata generate -m "$model" -p "Once upon a time" -n 32 --temp 0.8 --seed 1
