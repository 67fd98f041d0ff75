#!/bin/sh
# budget.sh — the appliance size budgets really fail a build: disk_publish (bty-media/lib/disk.sh)
# on a small incompressible image must refuse a compressed budget below its size and a virtual
# budget below its size, write nothing for it, and keep the other lines of SHA256SUMS.
# Host tools: zstd, coreutils. Part of `make media-test` (a second or two).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../bty-media/lib/disk.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/bty-budget.XXXXXX")
trap 'rm -rf "$work"' EXIT
head -c 3145728 /dev/urandom > "$work/x.img"            # 3 MiB that zstd cannot shrink
echo "0000  other.img.zst" > "$work/SHA256SUMS"
if disk_publish "$work/x.img" "$work" x.img.zst 4 2 2> "$work/err"; then
    echo "budget: FAIL: 3 MiB compressed passed a 2 MiB budget" >&2; exit 1
fi
grep -q "over its 2 MiB budget" "$work/err" || { cat "$work/err"; echo "budget: FAIL: no reason given" >&2; exit 1; }
[ ! -e "$work/x.img.zst" ] || { echo "budget: FAIL: the over-budget image was published" >&2; exit 1; }
if disk_publish "$work/x.img" "$work" x.img.zst 2 400 2> "$work/err"; then
    echo "budget: FAIL: 3 MiB virtual passed a 2 MiB budget" >&2; exit 1
fi
disk_publish "$work/x.img" "$work" x.img.zst 4 4 > /dev/null
grep -q "  other.img.zst$" "$work/SHA256SUMS" && grep -q "  x.img.zst$" "$work/SHA256SUMS" \
    || { cat "$work/SHA256SUMS"; echo "budget: FAIL: SHA256SUMS lost a line" >&2; exit 1; }
echo "media: PASS budget: over-budget images fail the build; SHA256SUMS keeps other artifacts' lines"
