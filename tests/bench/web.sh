#!/usr/bin/env bash
# bty-web benchmark: bty against the Python bty-web it succeeds (and nginx for image bytes),
# side by side in one run, on loopback.
#
# Purpose: hold bty-web to its targets — GET /pxe/{mac} and /pxe/{mac}/plan at >= 10x the
#   Python server's requests/s, idle RSS <= 10 MiB, ready (exec to first good /healthz)
#   <= 50 ms, and GET /images/{ref}/{name} of a 1 GiB image to 8 clients at >= 0.8x nginx.
# Inputs (environment): BTY (default target/release/bty), PY_VENV (default
#   target/bench-py-bty, created with `pip install 'bty-lab[web]'` on first use), MACS (default
#   500), DURATION (wrk seconds, default 10), CONNS (wrk connection counts, default "8 64": the
#   Python server is at its best near 8 and times out requests at 64), THREADS (wrk
#   threads, default 2), IMAGE_MIB (default 1024), BENCH_DIR (scratch; default a new dir in
#   /var/tmp), PORT_BASE (default 18500: bty, +1 python, +2 nginx).
# Outputs: a table on stdout: requests/s and p99 per route and server with the bty/python
#   ratio; idle and loaded RSS (VmRSS, VmHWM); ready time; image MiB/s bty vs nginx with ratio.
# Tools: wrk (Lua scripting), curl, python3 + venv + pip (PyPI), nginx (nginx-light, foreground,
#   temporary config), awk, sha256sum.
set -eu
bty=$(readlink -f "${BTY:-target/release/bty}")
venv=$(readlink -f "${PY_VENV:-target/bench-py-bty}")
macs=${MACS:-500}
duration=${DURATION:-10}
conns=${CONNS:-8 64}
threads=${THREADS:-2}
image_mib=${IMAGE_MIB:-1024}
base=${PORT_BASE:-18500}
dir=${BENCH_DIR:-$(mktemp -d /var/tmp/bty-bench-web.XXXXXX)}
[ -x "$bty" ] || { echo "web bench: $bty is not built (make build)" >&2; exit 1; }
for t in wrk curl nginx python3; do
  command -v $t >/dev/null || { echo "web bench: $t is not installed (tests/deps.sh)" >&2; exit 1; }
done
pids=
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT INT TERM
mkdir -p "$dir/bty/etc" "$dir/py" "$dir/www/tmp"

for port in $base $((base + 1)) $((base + 2)); do
  ! curl -s -o /dev/null "http://127.0.0.1:$port/" \
    || { echo "web bench: port $port is in use (a leftover server?); set PORT_BASE" >&2; exit 1; }
done

if [ ! -x "$venv/bin/bty-web" ]; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q 'bty-lab[web]' >&2
fi

now_ms() { date +%s%3N; }
# ready URL PID: milliseconds from $start to the first 200 from URL.
ready() {
  until curl -fs -o /dev/null "$1"; do
    kill -0 "$2" 2>/dev/null || { echo "web bench: server $2 died" >&2; exit 1; }
  done
  echo $(( $(now_ms) - start ))
}
rss() { awk -v k="$2:" '$1 == k { print int($2 / 1024 + 0.5) }' "/proc/$1/status"; }

pw=bench-password
start=$(now_ms)
BTY_CONFIG_DIR="$dir/bty/etc" BTY_ADMIN_PASSWORD=$pw BTY_LOG=error \
  "$bty" web --listen "127.0.0.1:$base" --state-dir "$dir/bty/state" 2>"$dir/bty.log" &
bty_pid=$!; pids="$pids $bty_pid"
bty_ready=$(ready "http://127.0.0.1:$base/healthz" $bty_pid)

start=$(now_ms)
BTY_PATHS_STATE_DIR="$dir/py" BTY_SERVER_HOST=127.0.0.1 BTY_SERVER_PORT=$((base + 1)) \
  BTY_ADMIN_PASSWORD=$pw BTY_CONFIG_DIR="$dir/py" "$venv/bin/bty-web" >"$dir/py.log" 2>&1 &
py_pid=$!; pids="$pids $py_pid"
py_ready=$(ready "http://127.0.0.1:$((base + 1))/healthz" $py_pid)
sleep 1
bty_idle=$(rss $bty_pid VmRSS); py_idle=$(rss $py_pid VmRSS)

# Register the same MACs on both (logged in with the form, JSON PUTs).
mac_of() { printf '52:54:00:%02x:%02x:%02x' $(($1 >> 16 & 255)) $(($1 >> 8 & 255)) $(($1 & 255)); }
for port in $base $((base + 1)); do
  jar="$dir/jar.$port"
  curl -fs -o /dev/null -c "$jar" -d "password=$pw" "http://127.0.0.1:$port/ui/login" || true
  i=0
  while [ $i -lt "$macs" ]; do
    curl -fs -o /dev/null -b "$jar" -X PUT -H 'Content-Type: application/json' \
      -d '{"boot_mode":"ipxe-exit"}' "http://127.0.0.1:$port/machines/$(mac_of $i)"
    i=$((i + 1))
  done
done

# wrk script: rotate through the MACs; SUFFIX is "" or "/plan".
lua() {
  cat <<LUA
local n, i = $macs, 0
request = function()
  i = (i + 1) % n
  -- wrk runs LuaJIT (Lua 5.1): no bit operators.
  local path = string.format("/pxe/52:54:00:%02x:%02x:%02x$1", math.floor(i / 65536) % 256, math.floor(i / 256) % 256, i % 256)
  return wrk.format("GET", path)
end
done = function(summary, latency, requests)
  local e = summary.errors
  local ok = summary.requests - e.status
  io.write(string.format("RESULT %.1f %.2f %d %d\n", ok / (summary.duration / 1e6), latency:percentile(99) / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
LUA
}
lua "" >"$dir/pxe.lua"; lua "/plan" >"$dir/plan.lua"
# bench PORT ROUTE CONNS: "requests/s p99-ms" counting only 2xx answers; non-2xx answers and socket
# errors (timeouts under load) are reported on stderr, so a server that fails requests is not
# mistaken for a fast one.
bench() {
  local rps p99 non2xx sockerr
  read -r rps p99 non2xx sockerr < <(wrk -t"$threads" -c"$3" -d"${duration}s" -s "$dir/$2.lua" "http://127.0.0.1:$1" | awk '/^RESULT/ { print $2, $3, $4, $5 }')
  [ "${non2xx:-0}${sockerr:-0}" = 00 ] || echo "web bench: port $1 ($2): ${non2xx:-?} non-2xx answers, ${sockerr:-?} socket errors or timeouts" >&2
  echo "${rps:-0} ${p99:-0}"
}

printf '%-32s %14s %14s %8s\n' "measure" "bty" "python" "ratio"
row() { printf '%-32s %14s %14s %8s\n' "$1" "$2" "$3" "$(awk -v a="$2" -v b="$3" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')"; }
for route in pxe plan; do
  for c in $conns; do
    read -r b_rps b_p99 <<<"$(bench $base $route "$c")"
    read -r p_rps p_p99 <<<"$(bench $((base + 1)) $route "$c")"
    row "/pxe/{mac}$([ $route = plan ] && echo /plan) $c conns req/s" "$b_rps" "$p_rps"
    row "  p99 latency ms" "$b_p99" "$p_p99"
  done
done
row "ready ms" "$bty_ready" "$py_ready"
row "idle VmRSS MiB" "$bty_idle" "$py_idle"
row "loaded VmHWM MiB" "$(rss $bty_pid VmHWM)" "$(rss $py_pid VmHWM)"

# Image bytes: the same 1 GiB file from bty's store and from nginx, 8 clients at once.
kill $py_pid; wait $py_pid 2>/dev/null || true
head -c "$((image_mib << 20))" /dev/urandom >"$dir/www/disk.img"
curl -fs -o /dev/null -b "$dir/jar.$base" -T "$dir/www/disk.img" "http://127.0.0.1:$base/images/disk.img"
ref=$(sha256sum "$dir/www/disk.img" | cut -d' ' -f1)   # an upload's ref is its content sha256
cat >"$dir/nginx.conf" <<NGINX
daemon off; user root; worker_processes 2; pid $dir/nginx.pid; error_log $dir/nginx.err;
events { worker_connections 256; }
http { access_log off; sendfile on; client_body_temp_path $dir/www/tmp; proxy_temp_path $dir/www/tmp;
  fastcgi_temp_path $dir/www/tmp; uwsgi_temp_path $dir/www/tmp; scgi_temp_path $dir/www/tmp;
  server { listen 127.0.0.1:$((base + 2)); root $dir/www; } }
NGINX
nginx -c "$dir/nginx.conf" -p "$dir" &
pids="$pids $!"
for _ in $(seq 100); do curl -fs -o /dev/null -r 0-0 "http://127.0.0.1:$((base + 2))/disk.img" && break; sleep 0.1; done
curl -fs -o /dev/null -r 0-0 "http://127.0.0.1:$((base + 2))/disk.img" \
  || { echo "web bench: nginx does not serve the image" >&2; cat "$dir/nginx.err" >&2; exit 1; }
fetch8() {
  local t0 ps=""; t0=$(now_ms)
  for _ in 1 2 3 4 5 6 7 8; do curl -fs -o /dev/null "$1" & ps="$ps $!"; done
  wait $ps
  echo $(( 8 * image_mib * 1000 / ($(now_ms) - t0 + 1) ))
}
b_mibs=$(fetch8 "http://127.0.0.1:$base/images/$ref/disk.img")
n_mibs=$(fetch8 "http://127.0.0.1:$((base + 2))/disk.img")
printf '%-32s %14s %14s %8s\n' "measure" "bty" "nginx" "ratio"
row "image 8 clients MiB/s" "$b_mibs" "$n_mibs"
