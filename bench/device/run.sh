#!/bin/sh
# The benchmark on a machine with a real GPU and no Rust toolchain: runs the bundle that
# `cargo xtask device-bundle` leaves in target/device-bench (the bench binary, the softmoe CLI and
# the Vulkan loader) and writes docs/benchmarks-<adapter>.md and .svg, or into the folder given as $1.
# The quick suite first (seconds on a GPU), then `softmoe explore` at the ViT-S layer's shape into
# explore-gpu/ there (experts × slots, seconds on a GPU; docs/explore/ keeps lavapipe's), then the full suite, which replaces the quick
# one if it ends in time: under 5 minutes in all. `--quick` as $2 stops after explore.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
bundle="$root/target/device-bench"
out="${1:-$root/docs}"
[ -x "$bundle/softmoe-bench" ] || { echo "run.sh: no bundle in $bundle (cargo xtask device-bundle)" >&2; exit 2; }
cd "$root" # the shipped models are read from weights/
export LD_LIBRARY_PATH="$bundle${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
timeout 90 "$bundle/softmoe-bench" --quick --per-adapter --out "$out" > /dev/null
if [ -x "$bundle/softmoe" ]; then
    timeout 40 "$bundle/softmoe" explore --d 384 --tokens 196 --hidden 1536 --budget-ms 200 --out "$out/explore-gpu" > /dev/null ||
        echo "run.sh: softmoe explore did not finish in 40 s; explore-gpu/ holds the configurations it timed" >&2
else
    echo "run.sh: no softmoe binary in $bundle (an older bundle): explore skipped" >&2
fi
[ "${2:-}" = "--quick" ] && exit 0
tmp=$(mktemp -d)
if timeout 160 "$bundle/softmoe-bench" --per-adapter --out "$tmp" > /dev/null; then
    cp "$tmp"/benchmarks-* "$out"/
else
    echo "run.sh: the full suite did not finish in time; $out keeps the quick one" >&2
fi
