#!/usr/bin/env bash
# Issue 3's memory acceptance run: a ~4 GB bf16 model (strata synth,
# TinyLlama-shaped with 44 layers) generates with --max-memory cpu=1GiB,disk,
# and the process's anonymous memory stays under 1 GiB plus a fixed overhead.
#
# Measured two ways:
#  1. strata's own figure: peak RssAnon, sampled every 10 ms from
#     /proc/self/status (anonymous memory only: the memory-mapped checkpoint
#     is file-backed and not counted), printed on the "peak allocated" line;
#  2. as root, where a memory cgroup can be made (v1 under
#     /sys/fs/cgroup/memory, or v2), the run is repeated inside a cgroup
#     limited to 1 GiB + OVERHEAD_MIB with no swap: anonymous memory cannot
#     be reclaimed, so exceeding the limit would OOM-kill the run. Page cache
#     is charged too, and reclaimed under the limit.
# Environment: BUILD_DIR (build), MODEL (BUILD_DIR/models/synth-4g-bf16),
# OVERHEAD_MIB (64), TOKENS (16).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
model=${MODEL:-$build/models/synth-4g-bf16}
overhead_mib=${OVERHEAD_MIB:-64}
tokens=${TOKENS:-16}
limit=$(( (1024 + overhead_mib) << 20 ))

[[ -x $build/strata ]] || { echo "build strata first (scripts/test.sh or cmake)" >&2; exit 1; }
[[ -f $model/config.json ]] || "$build"/strata synth --like tinyllama-1.1b --layers 44 --dtype bf16 -o "$model" --force
cmd=("$build"/strata generate -m "$model" -p "Once upon a time" -n "$tokens" --temp 0
     --max-memory cpu=1GiB,disk --offload-folder "$build/offload/$(basename "$model")")

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || echo "(could not drop caches: not root)"; }

echo "== 1. free run, peak RssAnon sampled by strata"
drop_caches
"${cmd[@]}" 2>&1 | grep '^strata: \(map\|load\|peak\)'

echo "== 2. inside a memory cgroup of $(( limit >> 20 )) MiB (1 GiB + ${overhead_mib} MiB), no swap"
v1_parent=/sys/fs/cgroup/memory$(awk -F: '$2=="memory"{print $3}' /proc/self/cgroup)
if [[ -w $v1_parent ]]; then
  cg=$v1_parent/strata-offload-$$
  mkdir "$cg"
  trap 'rmdir "$cg" 2>/dev/null || true' EXIT
  echo "$limit" >"$cg/memory.limit_in_bytes"
  [[ -e $cg/memory.memsw.limit_in_bytes ]] && echo "$limit" >"$cg/memory.memsw.limit_in_bytes"
  drop_caches
  status=0
  sh -c 'echo $$ >"$0/cgroup.procs"; exec "$@"' "$cg" "${cmd[@]}" 2>&1 | grep '^strata: \(load\|peak\|error\)' || status=$?
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
  sh -c 'echo $$ >"$0/cgroup.procs"; exec "$@"' "$cg" "${cmd[@]}" 2>&1 | grep '^strata: \(load\|peak\|error\)'
  echo "cgroup v2: memory.max $(( limit >> 20 )) MiB, memory.peak $(( $(cat "$cg/memory.peak") >> 20 )) MiB," \
       "oom_kill $(awk '$1=="oom_kill"{print $2}' "$cg/memory.events")"
else
  echo "no writable memory cgroup here (needs root); only the sampled figure above"
fi
