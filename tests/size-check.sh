#!/usr/bin/env bash
# The size budget of the shipped binary (make size).
# Input: the path of the static binary (make size passes target/x86_64-unknown-linux-musl/release/bty).
# Output: its stripped size in bytes against the budget; exits 1 when over budget.
# Tools: strip (binutils; $STRIP names another, e.g. aarch64-linux-gnu-strip for the arm64
# build, which has the same budget), stat, awk.
# The budget is the first static build's stripped size plus about 25% headroom; raise it only
# with a commit that says what the new bytes buy.
set -eu
budget=10400000
bin=${1:?usage: tests/size-check.sh BIN}
[ -f "$bin" ] || { echo "size-check: $bin does not exist (run make static)" >&2; exit 1; }
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
"${STRIP:-strip}" -o "$tmp" "$bin"
size=$(stat -c %s "$tmp")
awk -v b="$bin" -v s="$size" -v t="$budget" 'BEGIN {
  printf "size-check: %s stripped: %d bytes (%.2f MiB), budget %d bytes (%.2f MiB), %d%% used\n", b, s, s / 1048576, t, t / 1048576, s * 100 / t }'
if [ "$size" -gt "$budget" ]; then
  echo "size-check: over budget by $((size - budget)) bytes" >&2
  exit 1
fi
