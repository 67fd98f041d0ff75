#!/usr/bin/env bash
# Runs every side-by-side benchmark under tests/bench/ in turn (make bench).
# Inputs: a release build (make bench builds it). Outputs: each script's table on stdout.
# Benchmarks measure speed; tests never do. Each script prints its own ratios.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
status=0
for script in "$here"/*.sh; do
  [ "$(basename "$script")" = run-all.sh ] && continue
  echo "=== $(basename "$script" .sh)"
  bash "$script" || { echo "bench $(basename "$script") failed"; status=1; }
done
exit $status
