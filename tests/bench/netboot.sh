#!/bin/bash
# netboot.sh — how long a UEFI machine takes from power-on to `done` over bty's netboot chain,
# split into phases, and how bty's netboot download compares with the Python bty's.
#
# Runs the e2e UEFI scenario (tests/e2e/run.sh, MODES=uefi) with a 1 GiB test image (64 MiB
# of it random, the rest zeros as in a real, mostly empty disk image) and reads the host-clock
# timestamps run.sh puts on bty-web's access log (lines are logged when a response ends):
#   firmware+iPXE      QEMU start → iPXE fetched /pxe/{mac}
#   kernel+initrd      → the initrd download finished
#   kernel boot+init   → the agent posted its inventory (modules loaded, network up)
#   agent to 1st byte  → the agent opened the image (its Range probe; writing starts next)
#   write              → `done` posted (POST /pxe/{mac}/status)
# Compared: the initrd + kernel bytes every machine downloads, against the Python bty's netboot
# trio (kernel + initrd + squashfs; "~300+ MiB" per reference §13), and the download time that
# size would take at the throughput measured here.
#
# Inputs:  BTY, NETBOOT as for run.sh (make e2e builds them), IMAGE_MIB (default 1024),
#          RANDOM_MIB (64), PY_TRIO_MIB (300: the Python trio's size).
# Outputs: a table on stdout; the work dir with every log is removed unless KEEP=1.
# Host tools: as tests/e2e/run.sh, plus awk.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
IMAGE_MIB=${IMAGE_MIB:-1024}
RANDOM_MIB=${RANDOM_MIB:-64}
PY_TRIO_MIB=${PY_TRIO_MIB:-300}
NETBOOT=${NETBOOT:-$root/out/netboot}
work=$(mktemp -d /tmp/bty-bench-netboot.XXXXXX)
trap '[ "${KEEP:-0}" = 1 ] && echo "bench: logs in $work" || rm -rf "$work"' EXIT

E2E_WORK=$work KEEP=1 MODES=uefi IMAGE_MIB=$IMAGE_MIB RANDOM_MIB=$RANDOM_MIB BOOT_TIMEOUT=900 \
    bash "$root/tests/e2e/run.sh" | sed 's/^/  /'

mac=52:54:00:e2:e0:02
hyph=${mac//:/-}
t0=$(cat "$work/uefi.t0")
first() { # FILE PATTERN → timestamp of the first line containing PATTERN
    grep -a -F -- "$2" "$1" | head -n1 | cut -d' ' -f1
}
t_pxe=$(first "$work/web.log" "GET /pxe/$hyph")
t_initrd=$(first "$work/web.log" "GET /boot/bty-netboot-x86_64.initrd")
t_agent=$(first "$work/web.log" "POST /pxe/$mac/inventory")
t_write=$(first "$work/web.log" "GET /images/")
t_done=$(first "$work/web.log" "POST /pxe/$mac/status")
ms_of() { grep -a -F -- "$1" "$work/web.log" | head -n1 | grep -o '[0-9]*ms' | tr -d ms; }
kernel_ms=$(ms_of "GET /boot/bty-netboot-x86_64.vmlinuz")
initrd_ms=$(ms_of "GET /boot/bty-netboot-x86_64.initrd")
kernel_b=$(stat -c %s "$NETBOOT/bty-netboot-x86_64.vmlinuz")
initrd_b=$(stat -c %s "$NETBOOT/bty-netboot-x86_64.initrd")

awk -v t0="$t0" -v pxe="$t_pxe" -v ird="$t_initrd" -v ag="$t_agent" -v wr="$t_write" -v done="$t_done" \
    -v kms="$kernel_ms" -v ims="$initrd_ms" -v kb="$kernel_b" -v ib="$initrd_b" \
    -v img="$IMAGE_MIB" -v py="$PY_TRIO_MIB" 'BEGIN {
    printf "\nnetboot bench (UEFI, TCG, %d MiB image)\n", img
    printf "  %-38s %8.1f s\n", "firmware + iPXE (to /pxe/{mac})", pxe - t0
    printf "  %-38s %8.1f s\n", "kernel + initrd download", ird - pxe
    printf "  %-38s %8.1f s\n", "kernel boot + modules + network", ag - ird
    printf "  %-38s %8.1f s\n", "agent: inventory + plan to first byte", wr - ag
    printf "  %-38s %8.1f s  (%.0f MiB/s of image)\n", "write + verify to done", done - wr, img / (done - wr)
    printf "  %-38s %8.1f s\n", "total: power-on to done", done - t0
    ours = (kb + ib) / 1048576
    secs = (kms + ims) / 1000
    rate = (secs > 0) ? ours / secs : 0
    printf "\n  download per boot: bty %.1f MiB (kernel %.1f + initrd %.1f) in %.2f s (%.0f MiB/s)\n", ours, kb/1048576, ib/1048576, secs, rate
    printf "  Python bty netboot trio: ~%d MiB", py
    if (rate > 0) printf " -> ~%.1f s at the same rate", py / rate
    printf "\n  ratio (Python trio / bty): %.1fx the bytes\n", py / ours
}'
