#!/usr/bin/env bash
# HTTP flash benchmark: `bty flash URL FILE` side by side with `curl | zstd -dc | dd`, one run.
#
# Purpose: hold streaming over HTTP to its budget — flashing a .zst image served by nginx on
#   loopback onto a file takes bty at most 1.0x the time of the pipeline a user would
#   otherwise type (`curl -s URL | zstd -dc | dd of=FILE bs=4M conv=fsync`).
# Inputs (environment): BTY (default target/release/bty), SIZE_MIB (decoded image size,
#   default 2048), PORT (nginx port, default a free one), BENCH_DIR (scratch; default a new dir in
#   /var/tmp, which must be on a real disk, not tmpfs).
# Outputs: one line per tool (median seconds of RUNS alternating runs, default 3; MiB/s of
#   decoded bytes), bty flashing the same file locally (the engine's share), and the ratio
#   bty/reference on stdout; the targets are checked byte-identical to the image. Exits
#   non-zero only when a tool fails or a target differs (a benchmark reports; it never gates
#   `make test`).
# Tools: nginx (nginx-light, run in the foreground with a temporary config), curl, zstd, dd,
#   python3 (builds the image), cmp, sync.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bty=$(readlink -f "${BTY:-target/release/bty}")
size_mib=${SIZE_MIB:-2048}
port=${PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
dir=${BENCH_DIR:-$(mktemp -d /var/tmp/bty-bench-http.XXXXXX)}
[ -x "$bty" ] || { echo "http bench: $bty is not built (make build)" >&2; exit 1; }
command -v nginx >/dev/null || { echo "http bench: nginx is not installed (tests/deps.sh)" >&2; exit 1; }
nginx_pid=
cleanup() { [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
mkdir -p "$dir/www" "$dir/tmp"
cd "$dir"

# A disk-like image: ~30% random data in scattered chunks, zeros elsewhere, as the flash
# benchmark uses; compressed with zstd's default level as image builders do.
python3 "$here/disk-image.py" "$size_mib" disk.img
zstd -q -T2 -3 disk.img -o www/disk.img.zst

cat > nginx.conf <<EOF
daemon off;
user root;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log;
events { worker_connections 64; }
http {
  access_log off;
  sendfile on;
  client_body_temp_path $dir/tmp;
  proxy_temp_path $dir/tmp;
  fastcgi_temp_path $dir/tmp;
  uwsgi_temp_path $dir/tmp;
  scgi_temp_path $dir/tmp;
  server { listen 127.0.0.1:$port; root $dir/www; }
}
EOF
nginx -c "$dir/nginx.conf" -p "$dir" &
nginx_pid=$!
url=http://127.0.0.1:$port/disk.img.zst
for _ in $(seq 100); do curl -sfI "$url" >/dev/null && break; sleep 0.1; done
curl -sfI "$url" >/dev/null || { echo "http bench: nginx did not start" >&2; cat nginx-error.log >&2; exit 1; }

seconds() { local t0 t1; sync; t0=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "FAILED: $*" >&2; return 1; }; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'; }
reference() { curl -s "$url" | zstd -dc | dd of="$dir/ref-target" bs=4M conv=fsync status=none; }
flash() { "$bty" flash "$url" "$dir/bty-target" --yes; }
# The same flash from the local file: how much of bty's time is the engine, not HTTP.
flash_local() { "$bty" flash "$dir/www/disk.img.zst" "$dir/local-target" --yes; }

: > ref-target
: > bty-target
: > local-target
# Alternate the two tools, RUNS times each, and compare medians: on a shared machine a single
# pair of runs mostly measures the neighbours.
runs=${RUNS:-3}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ref_all=() bty_all=() local_all=()
for _ in $(seq "$runs"); do
  ref_all+=("$(seconds reference)")
  bty_all+=("$(seconds flash)")
  local_all+=("$(seconds flash_local)")
done
local_s=$(printf '%s\n' "${local_all[@]}" | median)
ref_s=$(printf '%s\n' "${ref_all[@]}" | median)
bty_s=$(printf '%s\n' "${bty_all[@]}" | median)
cmp -s disk.img ref-target || { echo "http bench: the reference target differs from the image" >&2; exit 1; }
cmp -s disk.img <(head -c $((size_mib << 20)) bty-target) || { echo "http bench: bty's target differs from the image" >&2; exit 1; }
printf '%-40s %8s %9s  %s\n' tool median_s MiB/s runs
awk -v s="$ref_s" -v m="$size_mib" -v all="${ref_all[*]}" 'BEGIN { printf "%-40s %8.2f %9.0f  %s\n", "curl | zstd -dc | dd bs=4M conv=fsync", s, m / s, all }'
awk -v s="$bty_s" -v m="$size_mib" -v all="${bty_all[*]}" 'BEGIN { printf "%-40s %8.2f %9.0f  %s\n", "bty flash URL FILE", s, m / s, all }'
awk -v s="$local_s" -v m="$size_mib" -v all="${local_all[*]}" 'BEGIN { printf "%-40s %8.2f %9.0f  %s\n", "(bty flash FILE.zst FILE, no HTTP)", s, m / s, all }'
awk -v b="$bty_s" -v r="$ref_s" 'BEGIN { printf "ratio bty/reference: %.2f (budget <= 1.00)\n", b / r }'
