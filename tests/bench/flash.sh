#!/usr/bin/env bash
# Flash benchmark: `bty flash` side by side with what a user would otherwise run, in one run.
#
# Purpose: measure the flash engine's budgets — on a sparse disk-like image bty takes at most
#   0.5x the reference's time for raw and .zst; on a dense (all-random) image it is never slower
#   than the reference; `--delta` onto an unchanged target takes at most 0.5x a full flash.
# Inputs (environment): BTY (default target/release/bty), SIZE_MIB (sparse image, default 2048),
#   DENSE_MIB (dense image, default 1024), BENCH_DIR (scratch; default a new dir in /var/tmp,
#   which must be on a real disk, not tmpfs).
# Outputs: one line per pair on stdout: case, target, bty seconds, reference seconds, ratio
#   (bty/reference) and the budget it is held to. The "data read" row is no bty run: it reads
#   the target's data once (read-data.py), the least any delta must do, beside a full flash.
#   Exits 0 even when a budget is missed (a benchmark reports; `make test` never times
#   anything).
# Tools: root (losetup), dd, zstd, gzip, xz, qemu-img, python3 (builds the image), sync.
set -eu
bty=$(readlink -f "${BTY:-target/release/bty}")
here=$(dirname "$(readlink -f "$0")")
size_mib=${SIZE_MIB:-2048}
dense_mib=${DENSE_MIB:-1024}
dir=${BENCH_DIR:-$(mktemp -d /var/tmp/bty-bench-flash.XXXXXX)}
[ -x "$bty" ] || { echo "flash bench: $bty is not built (make build)" >&2; exit 1; }
loop=
cleanup() { [ -n "$loop" ] && losetup -d "$loop" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
cd "$dir"

# A disk-like image: ~30% random data in scattered chunks (16 KiB to 4 MiB, like files and
# metadata spread over a filesystem), zeros elsewhere.
python3 - "$size_mib" sparse.img <<'PY'
import os, random, sys
size = int(sys.argv[1]) << 20
random.seed(42)
with open(sys.argv[2], "wb") as f:
    f.truncate(size)
    data, at = 0, 0
    while data < size * 0.3 and at < size:
        at = random.randrange(0, size - (4 << 20)) // 4096 * 4096
        n = random.choice([16 << 10, 256 << 10, 1 << 20, 4 << 20])
        f.seek(at)
        f.write(os.urandom(n))
        data += n
PY
head -c $((dense_mib << 20)) /dev/urandom > dense.img
zstd -q -T2 -3 sparse.img -o sparse.img.zst
zstd -q -T2 -3 dense.img -o dense.img.zst
gzip -1 -c sparse.img > sparse.img.gz
xz -T2 -0 -c sparse.img > sparse.img.xz
qemu-img convert -f raw -O qcow2 sparse.img sparse.qcow2
truncate -s $(( (size_mib + 64) << 20 )) loop-backing
loop=$(losetup --find --show loop-backing)
touch file-target

seconds() { local t0 t1; sync; t0=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "FAILED: $*" >&2; return 1; }; t1=$(date +%s.%N); echo "$t1 - $t0" | awk '{ split($0, a, " - "); printf "%.2f", a[1] - a[2] }'; }
dd_to() { dd of="$1" bs=4M iflag=fullblock oflag=direct conv=fsync status=none; }
ref_raw() { dd if="$1" of="$2" bs=4M oflag=direct conv=fsync status=none; }
ref_pipe() { "$1" -dc "$2" | dd_to "$3"; }
ref_qemu() { qemu-img convert -f qcow2 -O raw "$1" "$2" && sync "$2"; }
flash() { "$bty" flash "$@" --yes; }

printf '%-26s %-6s %9s %9s %7s  %s\n' case target bty_s ref_s ratio budget
row() { # case target budget bty-command... -- reference-command...
  local name=$1 target=$2 budget=$3; shift 3
  local bty_cmd=() ref_cmd=()
  while [ "$1" != -- ]; do bty_cmd+=("$1"); shift; done; shift
  ref_cmd=("$@")
  local r b
  r=$(seconds "${ref_cmd[@]}") || r=nan
  b=$(seconds "${bty_cmd[@]}") || b=nan
  awk -v n="$name" -v t="$target" -v b="$b" -v r="$r" -v g="$budget" 'BEGIN {
    ratio = (r > 0) ? b / r : 0; printf "%-26s %-6s %9s %9s %7.2f  %s\n", n, t, b, r, ratio, g }'
}

for t in loop file; do
  dst=$loop; [ $t = file ] && dst=$dir/file-target
  row "sparse raw vs dd" $t "<=0.50" flash sparse.img "$dst" -- ref_raw sparse.img "$dst"
  row "sparse zst vs zstd|dd" $t "<=0.50" flash sparse.img.zst "$dst" -- ref_pipe zstd sparse.img.zst "$dst"
  row "sparse gz vs gzip|dd" $t "report" flash sparse.img.gz "$dst" -- ref_pipe gzip sparse.img.gz "$dst"
  row "sparse xz vs xz|dd" $t "report" flash sparse.img.xz "$dst" -- ref_pipe xz sparse.img.xz "$dst"
  row "sparse qcow2 vs qemu-img" $t "report" flash sparse.qcow2 "$dst" -- ref_qemu sparse.qcow2 "$dst"
  row "dense raw vs dd" $t "<=1.00" flash dense.img "$dst" -- ref_raw dense.img "$dst"
  row "dense zst vs zstd|dd" $t "<=1.00" flash dense.img.zst "$dst" -- ref_pipe zstd dense.img.zst "$dst"
  flash sparse.img "$dst" >/dev/null 2>&1
  row "sparse delta vs full" $t "<=0.50" flash --delta sparse.img "$dst" -- flash sparse.img "$dst"
  # Delta's floor: reading the target's data once, without comparing or writing anything.
  row "sparse data read vs full" $t "report" python3 "$here/read-data.py" sparse.img "$dst" -- flash sparse.img "$dst"
  # The per-job reflash delta is built for: an image that is mostly data, where a full flash
  # must write every byte and delta only reads.
  flash dense.img "$dst" >/dev/null 2>&1
  row "dense delta vs full" $t "report" flash --delta dense.img "$dst" -- flash dense.img "$dst"
done
