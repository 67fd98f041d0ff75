#!/usr/bin/env bash
# bty-tftp vs tftpd-hpa (in.tftpd), side by side in one run on loopback.
#
# Purpose: show that bty-tftp is at least as fast as tftpd-hpa at every setting both support,
#   and how much RFC 7440 windowsize (which tftpd-hpa lacks) buys on top.
# Inputs: BTY (default target/release/bty; `make bench` builds it), SIZE_MB (default 64).
# Outputs: a table on stdout: median seconds of RUNS (default 3) fetches of one SIZE_MB file, MB/s, and the ratio
#   tftpd-hpa time / bty-tftp time (> 1 means bty-tftp is faster); then windowsize on
#   bty-tftp alone, each ratio against its windowsize 1; then 8 concurrent clients.
# Tools: in.tftpd (tftpd-hpa), atftp (the one client that speaks windowsize), sha256sum.
#   Every fetch is checked against the original's sha256.
set -eu
shopt -s inherit_errexit
cd "$(dirname "$0")/../.."
BTY=${BTY:-target/release/bty}
SIZE_MB=${SIZE_MB:-64}
[ -x "$BTY" ] || { echo "tftp bench: $BTY missing; run make build (or make bench)" >&2; exit 1; }
command -v in.tftpd >/dev/null || { echo "tftp bench: in.tftpd missing; run make deps" >&2; exit 1; }
command -v atftp >/dev/null || { echo "tftp bench: atftp missing; run make deps" >&2; exit 1; }

work=$(mktemp -d /tmp/bty-bench-tftp.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# tftpd-hpa drops to user nobody, so the tree must be world-readable.
chmod 755 "$work"
mkdir -m 755 "$work/root" "$work/out"
head -c "$((SIZE_MB * 1024 * 1024))" /dev/urandom > "$work/root/payload.img"
chmod 644 "$work/root/payload.img"
want=$(sha256sum < "$work/root/payload.img" | cut -d' ' -f1)

# Free ports: ask the kernel by binding port 0.
free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
hpa_port=$(free_port)
bty_port=$(free_port)

in.tftpd -L -u nobody -B 65464 -s "$work/root" -a "127.0.0.1:$hpa_port" &
pids+=($!)
BTY_LOG=warn "$BTY" tftp --root "$work/root" --listen "127.0.0.1:$bty_port" &
pids+=($!)
sleep 0.5
for p in "${pids[@]}"; do
  kill -0 "$p" 2>/dev/null || { echo "tftp bench: a server failed to start" >&2; exit 1; }
done

# fetch PORT OUT OPTIONS... : one atftp fetch; prints nothing, fails on a wrong digest.
fetch() {
  local port=$1 out=$2
  shift 2
  local opts=()
  for o in "$@"; do opts+=(--option "$o"); done
  atftp "${opts[@]}" -g -r payload.img -l "$out" 127.0.0.1 "$port" >/dev/null 2>&1
  local got
  got=$(sha256sum < "$out" | cut -d' ' -f1)
  rm -f "$out"
  [ "$got" = "$want" ] || { echo "tftp bench: wrong bytes from port $port ($*)" >&2; exit 1; }
}

# once PORT OPTIONS... : seconds for one fetch.
once() {
  local start end
  start=$(date +%s.%N)
  fetch "$1" "$work/out/one" "${@:2}"
  end=$(date +%s.%N)
  echo "$start $end" | awk '{printf "%.3f", $2 - $1}'
}

median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# timed PORT OPTIONS... : median seconds of RUNS fetches (default 3).
timed() {
  local i all=()
  for i in $(seq "${RUNS:-3}"); do all+=("$(once "$@")"); done
  median "${all[@]}"
}

# side_by_side OPTIONS... : "hpa-seconds bty-seconds", each the median of RUNS fetches taken in
# turns (hpa, bty, hpa, bty, ...) so that drift on a shared machine hits both servers alike.
side_by_side() {
  local i h=() b=()
  for i in $(seq "${RUNS:-3}"); do
    h+=("$(once "$hpa_port" "$@")")
    b+=("$(once "$bty_port" "$@")")
  done
  echo "$(median "${h[@]}") $(median "${b[@]}")"
}

# concurrent PORT N OPTIONS... : seconds until N parallel fetches are all done.
concurrent() {
  local port=$1 n=$2 start end i
  shift 2
  start=$(date +%s.%N)
  local jobs=()
  for i in $(seq 1 "$n"); do
    fetch "$port" "$work/out/c$i" "$@" &
    jobs+=($!)
  done
  for j in "${jobs[@]}"; do wait "$j"; done
  end=$(date +%s.%N)
  echo "$start $end" | awk '{printf "%.3f", $2 - $1}'
}

mbps() { awk -v s="$1" -v m="$2" 'BEGIN { printf "%.1f", m / s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "TFTP: one ${SIZE_MB} MiB file over loopback, client atftp; ratio = tftpd-hpa s / bty-tftp s"
printf '%-34s %12s %12s %10s %10s %7s\n' setting "tftpd-hpa s" "bty-tftp s" "hpa MB/s" "bty MB/s" ratio
for blk in 512 1468 8192; do
  read -r hpa bty <<<"$(side_by_side "blksize $blk")"
  printf '%-34s %12s %12s %10s %10s %7s\n' "blksize $blk (windowsize 1)" "$hpa" "$bty" \
    "$(mbps "$hpa" "$SIZE_MB")" "$(mbps "$bty" "$SIZE_MB")" "$(ratio "$hpa" "$bty")"
done
hpa=$(concurrent "$hpa_port" 8 "blksize 1468")
bty=$(concurrent "$bty_port" 8 "blksize 1468")
printf '%-34s %12s %12s %10s %10s %7s\n' "8 concurrent clients, blksize 1468" "$hpa" "$bty" \
  "$(mbps "$hpa" "$((8 * SIZE_MB))")" "$(mbps "$bty" "$((8 * SIZE_MB))")" "$(ratio "$hpa" "$bty")"

echo
echo "bty-tftp windowsize (RFC 7440; tftpd-hpa has none); ratio = windowsize 1 s / this s"
printf '%-34s %12s %10s %7s\n' setting "bty-tftp s" "MB/s" ratio
for blk in 512 1468 8192; do
  base=""
  for win in 1 8 16 64; do
    s=$(timed "$bty_port" "blksize $blk" "windowsize $win")
    [ -n "$base" ] || base=$s
    printf '%-34s %12s %10s %7s\n' "blksize $blk windowsize $win" "$s" "$(mbps "$s" "$SIZE_MB")" "$(ratio "$base" "$s")"
  done
done
bty=$(concurrent "$bty_port" 8 "blksize 1468" "windowsize 16")
printf '%-34s %12s %10s\n' "8 concurrent, blksize 1468 win 16" "$bty" "$(mbps "$bty" "$((8 * SIZE_MB))")"
