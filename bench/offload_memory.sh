#!/usr/bin/env bash
# A model bigger than the memory the process may use, run with its disk tier
# streamed: the process's anonymous memory stays under the cpu budget plus a
# fixed overhead, and the run survives a memory cgroup of that size.
#
# Issue 3's run (the defaults): a ~4 GB bf16 model (strata synth,
# TinyLlama-shaped with 44 layers) generates with --max-memory cpu=1GiB,disk
# inside 1 GiB + 64 MiB.
# Issue 4's run: the TinyLlama-shaped f32 model (4.4 GB) benchmarked inside a
# 2 GiB cgroup with cold caches:
#   DTYPE=f32 LAYERS=22 BUDGET_MIB=1792 OVERHEAD_MIB=256 COMMAND=bench bench/offload_memory.sh
#
# Issue 12's runs: the Qwen3-30B-A3B cut (strata synth --like qwen3-30b-a3b
# --layers 8) on the CPU, and with its non-experts on a simulated
# accelerator of 1 GiB (SIM_MIB: its memory is the host's, so the cgroup
# holds it too):
#   MODEL=DIR BUDGET_MIB=2048 OVERHEAD_MIB=256 COMMAND=bench bench/offload_memory.sh
#   MODEL=DIR BUDGET_MIB=2048 SIM_MIB=1024 OVERHEAD_MIB=256 COMMAND=bench bench/offload_memory.sh
#
# Measured two ways:
#  1. strata's own figure: peak RssAnon, sampled every 10 ms from
#     /proc/self/status (anonymous memory only: what strata allocates),
#     printed on the "peak allocated" line;
#  2. as root, where a memory cgroup can be made (v1 under
#     /sys/fs/cgroup/memory, or v2), the run is repeated inside a cgroup
#     limited to BUDGET_MIB + OVERHEAD_MIB with no swap: anonymous memory
#     cannot be reclaimed, so exceeding the limit would OOM-kill the run.
#     Page cache is charged too, and reclaimed under the limit.
# Caches are dropped before each run (as root), so the disk tier starts cold.
# Issue 14's run: the same bf16 model quantized at load (once, into the
# offload folder), streaming a quarter of the bytes:
#   EXTRA="--quantize int4" COMMAND=bench bench/offload_memory.sh
# Environment: BUILD_DIR (build), DTYPE (bf16), LAYERS (44),
# MODEL (BUILD_DIR/models/synth-LAYERSl-DTYPE), BUDGET_MIB (1024),
# OVERHEAD_MIB (64), COMMAND (generate, or bench), TOKENS (16 for generate),
# SIM_MIB (none: no simulated accelerator), EXTRA (more strata flags).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
dtype=${DTYPE:-bf16}
layers=${LAYERS:-44}
model=${MODEL:-$build/models/synth-${layers}l-$dtype}
budget_mib=${BUDGET_MIB:-1024}
overhead_mib=${OVERHEAD_MIB:-64}
command=${COMMAND:-generate}
tokens=${TOKENS:-16}
sim_mib=${SIM_MIB:-0}
limit=$(( (budget_mib + sim_mib + overhead_mib) << 20 ))

[[ -x $build/strata ]] || { echo "build strata first (scripts/test.sh or cmake)" >&2; exit 1; }
[[ -f $model/config.json ]] ||
  "$build"/strata synth --like tinyllama-1.1b --layers "$layers" --dtype "$dtype" -o "$model" --force
read -r -a extra <<<"${EXTRA:-}"
folder=$build/offload/$(basename "$model")${EXTRA:+-$(echo "$EXTRA" | tr -c 'a-z0-9' '-')}
map_args=(--max-memory "cpu=${budget_mib}MiB,disk" --offload-folder "$folder" "${extra[@]}")
if (( sim_mib > 0 )); then
  map_args=(--sim-devices "1x${sim_mib}MiB" --max-memory "0=${sim_mib}MiB,cpu=${budget_mib}MiB,disk"
            --offload-folder "$folder" "${extra[@]}")
fi
case $command in
  generate) cmd=("$build"/strata generate -m "$model" -p "Once upon a time" -n "$tokens" --temp 0 "${map_args[@]}")
            shown='^strata: \(map\|load\|peak\|error\)' ;;
  # The reference read-rate buffer is kept small: it is allocated beside the
  # model after the run, inside the same limit.
  bench)    cmd=("$build"/strata bench -m "$model" --reps 2 --gen-tokens 4 --prompt-tokens 8
                 --bandwidth-buffer-mib 64 "${map_args[@]}")
            shown='^strata: \(map (auto) \(cpu\|sim\)\|peak\|error\)\|^  rep\|^generation\|^weights\|^experts\|^disk\|^bound' ;;
  *) echo "COMMAND must be generate or bench" >&2; exit 2 ;;
esac

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || echo "(could not drop caches: not root)"; }

echo "== 1. free run, peak RssAnon sampled by strata"
drop_caches
"${cmd[@]}" 2>&1 | grep "$shown"

echo "== 2. inside a memory cgroup of $(( limit >> 20 )) MiB (budgets ${budget_mib} + ${sim_mib} MiB + ${overhead_mib} MiB), no swap"
v1_parent=/sys/fs/cgroup/memory$(awk -F: '$2=="memory"{print $3}' /proc/self/cgroup)
if [[ -w $v1_parent ]]; then
  cg=$v1_parent/strata-offload-$$
  mkdir "$cg"
  trap 'rmdir "$cg" 2>/dev/null || true' EXIT
  echo "$limit" >"$cg/memory.limit_in_bytes"
  [[ -e $cg/memory.memsw.limit_in_bytes ]] && echo "$limit" >"$cg/memory.memsw.limit_in_bytes"
  drop_caches
  status=0
  sh -c 'echo $$ >"$0/cgroup.procs"; exec "$@"' "$cg" "${cmd[@]}" 2>&1 | grep "$shown" || status=$?
  echo "cgroup v1: limit $(( $(cat "$cg/memory.limit_in_bytes") >> 20 )) MiB, max usage (anon + page cache)" \
       "$(( $(cat "$cg/memory.max_usage_in_bytes") >> 20 )) MiB, OOM kills: $(awk '$1=="oom_kill"{print $2}' "$cg/memory.oom_control")"
  exit "$status"
elif [[ -w /sys/fs/cgroup/cgroup.subtree_control ]] && grep -qw memory /sys/fs/cgroup/cgroup.controllers; then
  cg=/sys/fs/cgroup/strata-offload-$$
  mkdir "$cg"
  trap 'rmdir "$cg" 2>/dev/null || true' EXIT
  echo "$limit" >"$cg/memory.max"
  echo 0 >"$cg/memory.swap.max" 2>/dev/null || true
  drop_caches
  sh -c 'echo $$ >"$0/cgroup.procs"; exec "$@"' "$cg" "${cmd[@]}" 2>&1 | grep "$shown"
  echo "cgroup v2: memory.max $(( limit >> 20 )) MiB, memory.peak $(( $(cat "$cg/memory.peak") >> 20 )) MiB," \
       "oom_kill $(awk '$1=="oom_kill"{print $2}' "$cg/memory.events")"
else
  echo "no writable memory cgroup here (needs root); only the sampled figure above"
fi
