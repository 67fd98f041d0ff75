#!/usr/bin/env bash
# Network delta benchmark: a full `bty flash URL FILE` against `bty flash --delta URL FILE` with
# the image's chunk index, over a rate-limited link, for each stored form (seekable zstd, whose
# chunks are frames fetched by byte range, and compressed qcow2, whose chunks are found through
# its cluster tables).
#
# Purpose: show what per-job reflash costs on the wire and in time — onto a target that equals
#   the image, differs in 1% of its chunks, or in 10% — against the full network flash, at
#   1 Gbit/s and 100 Mbit/s. Targets: (a) fetches nothing but the index and the probes;
#   (b) <= 3% of the full transfer and <= 0.3x its time at 100 Mbit/s.
# Inputs (environment): BTY (default target/release/bty), SIZE_MIB (decoded size, default
#   2048), RATES (default "1gbit 100mbit"), FORMS (default "zst qcow2"), BENCH_DIR (scratch on a
#   real disk; default a new dir in /var/tmp).
# Outputs: per rate, one line per case: bytes fetched, wall seconds, and both as a ratio to the
#   full flash; every target is checked byte-identical to the image.
# Network: nginx runs inside a network namespace (bty-delta-$$) joined to the host by a veth
#   pair; tc tbf on the namespace side limits what nginx sends. Needs root, iproute2, nginx.
# Tools: nginx (nginx-light), ip, tc, python3 (builds the image and targets), cmp, qemu-img.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bty=$(readlink -f "${BTY:-target/release/bty}")
size_mib=${SIZE_MIB:-2048}
rates=${RATES:-"1gbit 100mbit"}
forms=${FORMS:-"zst qcow2"}
dir=${BENCH_DIR:-$(mktemp -d /var/tmp/bty-bench-delta.XXXXXX)}
ns=bty-delta-$$
host_if=btyd$$h
ns_if=btyd$$n
[ -x "$bty" ] || { echo "delta bench: $bty is not built (make build)" >&2; exit 1; }
command -v nginx >/dev/null || { echo "delta bench: nginx is not installed (tests/deps.sh)" >&2; exit 1; }
nginx_pid=
cleanup() {
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
  ip link del "$host_if" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
mkdir -p "$dir/www" "$dir/tmp"
cd "$dir"

# The same disk-like image as the other benchmarks: ~30% random data in scattered runs.
python3 "$here/disk-image.py" "$size_mib" disk.img
for form in $forms; do
  case $form in
    zst) "$bty" index disk.img --zstd-seekable www/disk.img.zst >/dev/null ;;
    qcow2)
      qemu-img convert -q -c -f raw -O qcow2 disk.img www/disk.img.qcow2
      "$bty" index www/disk.img.qcow2 -o www/disk.img.qcow2.index >/dev/null ;;
    *) echo "delta bench: unknown form $form (zst, qcow2)" >&2; exit 1 ;;
  esac
done

ip netns add "$ns"
ip link add "$host_if" type veth peer name "$ns_if"
ip link set "$ns_if" netns "$ns"
ip addr add 10.231.0.1/30 dev "$host_if"
ip link set "$host_if" up
ip netns exec "$ns" ip addr add 10.231.0.2/30 dev "$ns_if"
ip netns exec "$ns" ip link set "$ns_if" up
ip netns exec "$ns" ip link set lo up
cat > nginx.conf <<NGINX
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
  server { listen 10.231.0.2:8080; root $dir/www; }
}
NGINX
ip netns exec "$ns" nginx -c "$dir/nginx.conf" -p "$dir" &
nginx_pid=$!
base=http://10.231.0.2:8080
for _ in $(seq 100); do curl -sfI "$base/disk.img.${forms%% *}" >/dev/null && break; sleep 0.1; done

# Targets: the image with N% of its 1 MiB chunks changed (one 4 KiB block each).
make_target() {
  python3 - "$1" disk.img "$2" <<'PY'
import random, shutil, sys
pct, image, out = float(sys.argv[1]), sys.argv[2], sys.argv[3]
shutil.copyfile(image, out)
size = __import__("os").path.getsize(image)
chunks = size >> 20
random.seed(11)
with open(out, "r+b") as f:
    for c in random.sample(range(chunks), int(chunks * pct / 100)):
        f.seek((c << 20) + 8192)
        f.write(random.randbytes(4096))
PY
}
now() { date +%s.%N; }
run() { # label, then the flash arguments; prints "seconds fetched"
  local t0 t1 out
  sync
  t0=$(now)
  out=$("$bty" flash --yes --json "$@" | tail -1)
  t1=$(now)
  fetched=$(printf '%s' "$out" | python3 -c 'import json,sys; v=json.load(sys.stdin); print(v.get("network_delta",{}).get("bytes_fetched", -1))')
  awk -v a="$t0" -v b="$t1" -v f="$fetched" 'BEGIN { printf "%.2f %s\n", b - a, f }'
}
for form in $forms; do
  url=$base/disk.img.$form
  stored=$(stat -c %s "www/disk.img.$form")
  index_bytes=$(stat -c %s "www/disk.img.$form.index")
  printf 'image %s MiB as %s: %s bytes, index %s bytes\n' "$size_mib" "$form" "$stored" "$index_bytes"
  for rate in $rates; do
    ip netns exec "$ns" tc qdisc replace dev "$ns_if" root tbf rate "$rate" burst 256kb latency 50ms
    : > full-target
    read -r full_s _ < <(run "$url" full-target)
    cmp -s disk.img full-target || { echo "delta bench: full flash target differs ($form)" >&2; exit 1; }
    printf '%-6s %-8s %-24s %14s %9s %9s %9s\n' form rate case bytes_fetched seconds bytes/full time/full
    printf '%-6s %-8s %-24s %14s %9.2f %9s %9s\n' "$form" "$rate" "full flash" "$stored" "$full_s" 1.00 1.00
    for pct in 0 1 10; do
      make_target "$pct" target.img
      read -r s fetched < <(run --delta "$url" target.img)
      cmp -s disk.img target.img || { echo "delta bench: delta target ($form, $pct%) differs" >&2; exit 1; }
      awk -v fm="$form" -v r="$rate" -v p="$pct" -v s="$s" -v f="$fetched" -v full="$stored" -v fs="$full_s" \
        'BEGIN { printf "%-6s %-8s %-24s %14d %9.2f %9.4f %9.2f\n", fm, r, "delta, " p "% chunks differ", f, s, f / full, s / fs }'
    done
  done
done
echo "(bytes_fetched: image bytes by Range, a qcow2 image's header and tables included; the index and two 1-byte probes come on top)"
