#!/bin/bash
# run.sh — the netboot end to end under QEMU (TCG): firmware PXE → bty-tftp → iPXE → bty-web
# → the bty netboot kernel + initramfs → the plan agent flashes the disk with the planned
# serial → done → the next power-on boots the flashed disk.
#
# The VM: QEMU x86_64, TCG (KVM here is PVM-backed and hangs guests), 512 MiB, one virtio-net
# NIC on a tap in a private network namespace, one blank raw virtio-blk disk with serial
# BTYTEST. Scenarios (MODES, default "bios uefi fail"):
#   bios  SeaBIOS + QEMU's iPXE ROM (which is iPXE already, so DHCP hands it the bootstrap URL
#         straight away; the TFTP leg is exercised by uefi), flash, then the disk's MBR boot
#         code prints BTY-DISK-BOOTED on the next power-on (iPXE `sanboot 0x80`).
#   uefi  OVMF's own PXE (no iPXE ROM): DHCP → TFTP snponly.efi from bty-tftp → iPXE → HTTP;
#         flash; next power-on: bty-web serves the disk boot, iPXE leaves with `exit 1` and
#         OVMF moves on to the disk, whose EFI/BOOT/BOOTX64.EFI prints BTY-DISK-BOOTED.
#   fail  the plan names a serial no disk has: the agent reports `failed` with that reason,
#         the disk stays blank, and the console falls back to a rescue shell.
#   stick the Netboot page's boot stick (bty-boot-stick.img), downloaded by its link and booted
#         under OVMF as a USB disk, NIC without PXE ROM: iPXE runs its autoexec.ipxe, DHCP,
#         chains /pxe-bootstrap.ipxe and reaches /pxe/{mac}. Needs NETBOOT/ipxe-stick.efi.
# Per-job reflash (under REFLASH_FW only, default bios; one extra boot): after the flashed disk
# booted, the machine is re-armed ("flash again") and boots the agent once more; the disk
# already holds the image, so the agent goes by the chunk index bty-web keeps. Asserted from
# the figures bty-web recorded for that flash: every chunk compared, none fetched, and image
# bytes fetched at most one chunk (1 MiB, the index's chunk size; the expected value is 0 and
# the index itself is not counted); and the disk still equals the image byte for byte.
# Asserted from the serial logs, bty-web's access log, its events API, and the disk files.
#
# Inputs:  BTY (static bty, default target/x86_64-unknown-linux-musl/release/bty), NETBOOT
#          (default out/netboot: kernel, initrd, iPXE loaders), MODES, KEEP=1 keeps the work dir,
#          E2E_WORK (work dir to use), IMAGE_MIB/RANDOM_MIB (test image size), BOOT_TIMEOUT (s),
#          REFLASH_FW (the firmware whose scenario adds the reflash by delta; "none" skips it).
# Outputs: PASS/FAIL lines; exit 0 when every scenario passed. Logs in the work dir (printed).
# Host tools: ip (iproute2), dnsmasq (dnsmasq-base), qemu-system-x86_64, ovmf, curl, python3,
#          sgdisk, mkfs.vfat, mtools, grub-mkimage (grub-efi-amd64-bin), sha256sum. Root.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BTY=${BTY:-$root/target/x86_64-unknown-linux-musl/release/bty}
NETBOOT=${NETBOOT:-$root/out/netboot}
MODES=${MODES:-bios uefi fail stick}
KEEP=${KEEP:-0}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-300}
IMAGE_MIB=${IMAGE_MIB:-32}     # test image size; tests/bench/netboot.sh uses 1024
RANDOM_MIB=${RANDOM_MIB:-4}    # random (incompressible, non-zero) bytes in it
REFLASH_FW=${REFLASH_FW:-bios}

NS=bty-e2e-$$
HOST=192.168.77.1
WEB=http://$HOST:8080
SERIAL=BTYTEST
PASSWORD=e2e-admin-password
work=${E2E_WORK:-$(mktemp -d /tmp/bty-e2e.XXXXXX)}; mkdir -p "$work"
pids=()

cleanup() {
    local rc=$?
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
    if [ "$KEEP" = 1 ] || [ $rc -ne 0 ]; then
        echo "e2e: logs kept in $work"
        [ "$KEEP" = 1 ] || rm -rf "$work/state/images" "$work"/*.img   # keep logs, drop the bytes
    else
        rm -rf "$work"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "e2e: FAIL: $*" >&2; exit 1; }
# stamp, expect_in_order
. "$here/lib.sh"
# Runs a command in the namespace. Background processes are started with `ip netns exec`
# directly instead (it execs, so $! is the process itself and cleanup can kill it).
nsx() { ip netns exec "$NS" "$@"; }
ts() { date +%s.%N; }

for f in "$BTY" "$NETBOOT/bty-netboot-x86_64.vmlinuz" "$NETBOOT/bty-netboot-x86_64.initrd" \
         "$NETBOOT/undionly.kpxe" "$NETBOOT/snponly.efi"; do
    [ -e "$f" ] || die "$f is missing; run 'make netboot' first"
done

# --- network: a namespace with a bridge, a tap for QEMU, IPv4 + an IPv6 ULA (for RA) ---------
ip netns add "$NS"
nsx ip link set lo up
nsx ip link add br0 type bridge
nsx ip tuntap add dev tap0 mode tap
nsx ip link set tap0 master br0
nsx ip addr add $HOST/24 dev br0
nsx ip -6 addr add fd00:77::1/64 dev br0
nsx ip link set br0 up
nsx ip link set tap0 up

# --- DHCP only (no DNS, no TFTP): PXE ROMs get a loader from bty-tftp, iPXE gets the URL ------
ip netns exec "$NS" dnsmasq --no-daemon --conf-file=/dev/null --port=0 --interface=br0 --bind-interfaces \
    --except-interface=lo --dhcp-leasefile="$work/dnsmasq.leases" --pid-file="$work/dnsmasq.pid" \
    --dhcp-range=192.168.77.50,192.168.77.99,255.255.255.0,1h --dhcp-option=option:router,$HOST \
    --dhcp-match=set:ipxe,175 --dhcp-match=set:efi64,option:client-arch,7 \
    --dhcp-match=set:efi64,option:client-arch,9 \
    --dhcp-boot=tag:ipxe,$WEB/pxe-bootstrap.ipxe \
    --dhcp-boot=tag:!ipxe,tag:efi64,snponly.efi,,$HOST \
    --dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe,,$HOST \
    --enable-ra --dhcp-range=::,constructor:br0,ra-only --log-dhcp \
    > "$work/dnsmasq.log" 2>&1 &
pids+=($!)

# --- bty-web and bty-tftp (the static binary, as on the appliance) --------------------------
mkdir -p "$work/state/boot"
mkdir -p "$work/etc"   # an empty config dir: the host's /etc/bty must not leak in
ip netns exec "$NS" env BTY_CONFIG_DIR="$work/etc" BTY_ADMIN_PASSWORD=$PASSWORD BTY_LOG=info "$BTY" web --listen $HOST:8080 --state-dir "$work/state" \
    > >(stamp > "$work/web.log") 2>&1 &
pids+=($!)
ip netns exec "$NS" env BTY_LOG=info "$BTY" tftp --root "$work/state/boot" --listen $HOST:69 > >(stamp > "$work/tftp.log") 2>&1 &
pids+=($!)

for _ in $(seq 100); do
    nsx curl -sf -o /dev/null $WEB/healthz && break
    sleep 0.1
done
nsx curl -sf -o /dev/null $WEB/healthz || { tail -20 "$work/web.log"; die "bty-web did not come up"; }

# Log in once; the session cookie and its CSRF token (needed by every state change) authorise
# the API calls below.
nsx curl -sS -o /dev/null -c "$work/cookies" -d "password=$PASSWORD" $WEB/ui/login
csrf=$(nsx curl -sS -b "$work/cookies" $WEB/ui/account | sed -n 's/.*name="csrf_token" value="\([0-9a-f]*\)".*/\1/p' | head -n 1)
[ -n "$csrf" ] || die "no CSRF token on the account page"
api() { # METHOD PATH [curl args...]
    local m=$1 p=$2; shift 2
    nsx curl -sS -f -b "$work/cookies" -H "X-CSRF-Token: $csrf" -X "$m" "$@" "$WEB$p"
}

for f in bty-netboot-x86_64.vmlinuz bty-netboot-x86_64.initrd undionly.kpxe snponly.efi ipxe.efi ipxe-stick.efi; do
    [ -e "$NETBOOT/$f" ] || continue
    api PUT "/boot/$f" -T "$NETBOOT/$f" -H 'Content-Type: application/octet-stream' > /dev/null
done

# --- the test image: GPT + ESP, BIOS boot code, random data ---------------------------------
sh "$here/make-test-image.sh" "$work/test-disk.img" "$IMAGE_MIB" "$RANDOM_MIB"
image_sha=$(sha256sum < "$work/test-disk.img" | cut -d' ' -f1)
image_size=$(stat -c %s "$work/test-disk.img")
upload=$(api PUT /images/test-disk.img -T "$work/test-disk.img" -H 'Content-Type: application/octet-stream')
image_ref=$(printf '%s' "$upload" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ref"])')
echo "e2e: image test-disk.img sha256 $image_sha ref $image_ref"

assign() { # MAC SERIAL
    api PUT "/machines/$1" -H 'Content-Type: application/json' \
        -d "{\"bty_image_ref\":\"$image_ref\",\"boot_mode\":\"bty-flash-once\",\"target_disk_serial\":\"$2\"}" > /dev/null
}

# events MAC → the machine's event kinds, oldest first, one per line
events() {
    api GET "/events?subject_id=$1&limit=500" | python3 -c '
import json, sys
for e in reversed(json.load(sys.stdin)["events"]):
    print(e["kind"], json.dumps(e.get("details") or {}, sort_keys=True))'
}

# boot NAME FIRMWARE MAC DISK: starts QEMU in the namespace, prints its PID
boot() {
    local name=$1 fw=$2 mac=$3 disk=$4 log="$work/$1.serial.log"
    # Two UARTs: bty-web's kernel line names ttyS1 (SoL) and then ttyS0, and Debian's 6.1
    # kernel binds its one 8250 console to the first of them, so the kernel and the agent print
    # on COM2 while firmware, iPXE and the flashed disk's boot code print on COM1.
    local args=(-accel tcg -m 512 -smp 1 -display none -no-reboot -serial "file:$log.com1"
        -serial "file:$log.com2"
        -drive "file=$disk,format=raw,if=none,id=d0"
        -device "virtio-blk-pci,drive=d0,serial=$SERIAL,bootindex=2"
        -netdev tap,id=n0,ifname=tap0,script=no,downscript=no)
    if [ "$fw" = uefi ]; then
        cp /usr/share/OVMF/OVMF_VARS_4M.fd "$work/$name.vars.fd"
        args+=(-M q35 -drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd
            -drive "if=pflash,format=raw,unit=1,file=$work/$name.vars.fd"
            -device "virtio-net-pci,netdev=n0,mac=$mac,bootindex=1,romfile=")
    else
        args+=(-device "virtio-net-pci,netdev=n0,mac=$mac,bootindex=1")
    fi
    : > "$log.com1"; : > "$log.com2"
    date +%s.%N > "$work/$name.t0"
    ip netns exec "$NS" qemu-system-x86_64 "${args[@]}" < /dev/null > "$work/$name.qemu.log" 2>&1 &
    echo $!
}

# serial_log NAME: both UARTs' output as one file ($work/NAME.serial.log), COM1 first
serial_log() { cat "$work/$1.serial.log.com1" "$work/$1.serial.log.com2" > "$work/$1.serial.log"; }

# wait_for PID NAME PATTERN: waits until PATTERN is on a serial port of NAME (0), QEMU exits
# (1) or the timeout (2)
wait_for() {
    local pid=$1 name=$2 pattern=$3 t=0
    local logs=("$work/$name.serial.log.com1" "$work/$name.serial.log.com2")
    while [ $t -lt $((BOOT_TIMEOUT * 5)) ]; do
        grep -aq -- "$pattern" "${logs[@]}" && return 0
        kill -0 "$pid" 2>/dev/null || { grep -aq -- "$pattern" "${logs[@]}" && return 0; return 1; }
        sleep 0.2; t=$((t + 1))
    done
    return 2
}

stop_qemu() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

show_logs() {
    local name=$1
    serial_log "$name"
    echo "---- $name serial (tail)"; tr -d '\033' < "$work/$name.serial.log" | tail -40 || true
    echo "---- bty-web (tail)"; tail -25 "$work/web.log" || true
    echo "---- bty-tftp (tail)"; tail -5 "$work/tftp.log" || true
}

# flash_scenario NAME FIRMWARE MAC
flash_scenario() {
    local name=$1 fw=$2 mac=$3 disk="$work/$1.disk.img" t0 t1 pid rc
    local hyph=${mac//:/-}
    truncate -s $((IMAGE_MIB + 32))M "$disk"
    assign "$mac" "$SERIAL"
    t0=$(ts)
    pid=$(boot "$name" "$fw" "$mac" "$disk")
    pids+=("$pid")
    # The agent posts done, prints the marker and reboots; -no-reboot turns that into an exit.
    rc=0; wait_for "$pid" "$name" "bty: flash complete; rebooting" || rc=$?
    [ $rc -eq 0 ] || { show_logs "$name"; die "$name: no completion marker (rc $rc)"; }
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    stop_qemu "$pid"
    t1=$(ts)
    serial_log "$name"
    local serial="$work/$name.serial.log"
    # iPXE prints on the screen, not on a UART; its part of the chain is checked from the
    # server's side below.
    expect_in_order "$serial" "plan agent" "loaded" "network: eth0 ($mac)" "from iPXE (bty.ip=)" "posted inventory" \
        "bty: auto-flash starting" "bty: write 100%" \
        "bty: flash complete; rebooting" || { show_logs "$name"; die "$name: serial log out of order"; }
    grep -aq "plan: flash test-disk.img" "$serial" || { show_logs "$name"; die "$name: the agent never saw the plan"; }
    # The same chain from the server's side, in order.
    if [ "$fw" = uefi ]; then
        grep -q "snponly.efi" "$work/tftp.log" || { show_logs "$name"; die "$name: bty-tftp never served snponly.efi"; }
    fi
    expect_in_order "$work/web.log" "GET /pxe-bootstrap.ipxe" "GET /pxe/$hyph" \
        "GET /boot/bty-netboot-x86_64.vmlinuz?mac=" "GET /boot/bty-netboot-x86_64.initrd?mac=" \
        "POST /pxe/$mac/inventory" "GET /pxe/$mac/plan" "GET /images/" "POST /pxe/$mac/progress" \
        "POST /pxe/$mac/status" || { show_logs "$name"; die "$name: bty-web access log out of order"; }
    local disk_sha
    disk_sha=$(head -c "$image_size" "$disk" | sha256sum | cut -d' ' -f1)
    [ "$disk_sha" = "$image_sha" ] || die "$name: disk sha256 $disk_sha != image $image_sha"
    events "$mac" > "$work/$name.events"
    expect_in_order "$work/$name.events" "netboot.pxe.offered" "netboot.flasher.armed" "machine.inventory" \
        "netboot.pxe.plan" "machine.flashed" || { cat "$work/$name.events"; die "$name: events out of order"; }
    awk -v a="$t0" -v b="$t1" -v n="$name" 'BEGIN { printf "e2e: %s: flashed and verified in %.1f s\n", n, b - a }'

    # Next power-on: bty-web now serves the disk boot; the flashed disk prints its marker.
    pid=$(boot "$name-disk" "$fw" "$mac" "$disk")
    pids+=("$pid")
    # UEFI: iPXE runs the disk-boot script and leaves with a failure status, so OVMF tries
    # the next boot option (the disk) instead of stopping at its boot menu.
    local want="BTY-DISK-BOOTED"
    rc=0; wait_for "$pid" "$name-disk" "$want" || rc=$?
    stop_qemu "$pid"
    [ $rc -eq 0 ] || { show_logs "$name-disk"; die "$name: the flashed disk did not boot (rc $rc)"; }
    events "$mac" > "$work/$name.events"
    tail -n 1 "$work/$name.events" | grep -q '^netboot.pxe.offered' \
        || { cat "$work/$name.events"; die "$name: the second boot was not offered the disk"; }
    echo "e2e: PASS $name: chain, digest, events, and the next power-on booted the flashed disk"
    [ "$fw" = "$REFLASH_FW" ] && reflash_scenario "$name" "$fw" "$mac"
    return 0
}

# reflash_scenario NAME FIRMWARE MAC: flash again onto the disk that already holds the image
# (see the header); reuses the namespace, servers and disk of NAME's flash.
reflash_scenario() {
    local name=$1-reflash fw=$2 mac=$3 disk="$work/$1.disk.img" pid rc
    for _ in $(seq 300); do
        api GET /images | python3 -c 'import json,sys; sys.exit(0 if all(i["delta_ready"] for i in json.load(sys.stdin)) else 1)' && break
        sleep 0.2
    done
    api GET /images | python3 -c 'import json,sys; sys.exit(0 if all(i["delta_ready"] for i in json.load(sys.stdin)) else 1)' \
        || die "$name: the image never became delta-ready"
    api POST "/machines/$mac/reflash" > /dev/null
    pid=$(boot "$name" "$fw" "$mac" "$disk")
    pids+=("$pid")
    rc=0; wait_for "$pid" "$name" "bty: flash complete; rebooting" || rc=$?
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    stop_qemu "$pid"
    [ $rc -eq 0 ] || { show_logs "$name"; die "$name: no completion marker (rc $rc)"; }
    serial_log "$name"
    grep -a "bty: delta:" "$work/$name.serial.log" || { show_logs "$name"; die "$name: the agent did not go by delta"; }
    api GET "/machines/$mac" | python3 -c '
import json, sys
f = json.load(sys.stdin).get("last_flash_figures") or {}
print("e2e: reflash figures:", json.dumps(f, sort_keys=True))
chunk = 1 << 20
ok = (f.get("chunks_compared") or 0) > 0 and f.get("chunks_fetched") == 0 \
    and f.get("bytes_fetched") is not None and f["bytes_fetched"] <= chunk
sys.exit(0 if ok else "reflash by delta fetched more than one chunk, or reported no delta figures")' \
        || { show_logs "$name"; die "$name: figures"; }
    local disk_sha
    disk_sha=$(head -c "$image_size" "$disk" | sha256sum | cut -d' ' -f1)
    [ "$disk_sha" = "$image_sha" ] || die "$name: disk sha256 $disk_sha != image $image_sha"
    echo "e2e: PASS $name: reflash by delta fetched no image bytes and the disk equals the image"
}

fail_scenario() {
    local name=fail mac=52:54:00:e2:e0:03 disk="$work/fail.disk.img" pid rc
    truncate -s 64M "$disk"
    assign "$mac" "NO-SUCH-SERIAL"
    pid=$(boot "$name" bios "$mac" "$disk")
    pids+=("$pid")
    rc=0; wait_for "$pid" "$name" "falling back to the console" || rc=$?
    stop_qemu "$pid"
    [ $rc -eq 0 ] || { show_logs "$name"; die "$name: the agent did not fall back (rc $rc)"; }
    events "$mac" > "$work/$name.events"
    grep '^machine.flash_failed' "$work/$name.events" | grep -q 'NO-SUCH-SERIAL' \
        || { cat "$work/$name.events"; die "$name: no machine.flash_failed naming the serial"; }
    ! grep -q '^machine.flashed' "$work/$name.events" || die "$name: a failed flash was recorded as flashed"
    cmp -s -n 67108864 "$disk" /dev/zero || die "$name: the disk was written"
    echo "e2e: PASS fail: absent serial reported as failed with the reason; disk untouched"
}

# The boot stick from the Netboot page: downloaded by its link, booted under OVMF as a USB disk
# with no PXE ROM and no network boot option; it must reach /pxe/{mac} on its own.
stick_scenario() {
    local name=stick mac=52:54:00:e2:e0:04 pid t=0 href log="$work/stick.serial.log.com1"
    [ -e "$NETBOOT/ipxe-stick.efi" ] || die "stick: $NETBOOT/ipxe-stick.efi is missing; run 'make netboot'"
    href=$(nsx curl -sS -f -b "$work/cookies" "$WEB/ui/netboot?host=$HOST" \
        | sed -n 's/.*id="boot-stick-download" href="\([^"]*\)".*/\1/p' | sed 's/&amp;/\&/g')
    [ -n "$href" ] || die "stick: the Netboot page offers no boot stick download"
    nsx curl -sS -f -b "$work/cookies" -o "$work/stick.img" "$WEB$href"
    cp /usr/share/OVMF/OVMF_VARS_4M.fd "$work/stick.vars.fd"
    : > "$log"
    ip netns exec "$NS" qemu-system-x86_64 -accel tcg -m 512 -smp 1 -display none -no-reboot -M q35 \
        -serial "file:$log" -drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
        -drive "if=pflash,format=raw,unit=1,file=$work/stick.vars.fd" \
        -device qemu-xhci -drive "file=$work/stick.img,format=raw,if=none,id=s0" -device usb-storage,drive=s0,bootindex=1 \
        -netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device "virtio-net-pci,netdev=n0,mac=$mac,romfile=" \
        < /dev/null > "$work/stick.qemu.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    while [ $t -lt $((BOOT_TIMEOUT * 5)) ] && ! grep -q "GET /pxe/${mac//:/-}\"" "$work/web.log"; do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2; t=$((t + 1))
    done
    stop_qemu "$pid"
    grep -q "GET /pxe/${mac//:/-}\"" "$work/web.log" \
        || { tr -d '\033' < "$log" | tail -20; tail -10 "$work/web.log"; die "stick: bty-web never saw /pxe/$mac"; }
    expect_in_order "$log" "autoexec.ipxe... ok" "bty boot stick: dhcp, then chain $WEB/pxe-bootstrap.ipxe" \
        || die "stick: the stick's script did not run"
    expect_in_order "$work/web.log" "GET /pxe-bootstrap.ipxe" "GET /pxe/${mac//:/-}\"" \
        || die "stick: bty-web access log out of order"
    echo "e2e: PASS stick: the downloaded boot stick chained bty-web's bootstrap and reached /pxe/$mac (no PXE ROM)"
}

for mode in $MODES; do
    case $mode in
        bios) flash_scenario bios bios 52:54:00:e2:e0:01 ;;
        uefi) flash_scenario uefi uefi 52:54:00:e2:e0:02 ;;
        fail) fail_scenario ;;
        stick) stick_scenario ;;
        *) die "unknown mode $mode" ;;
    esac
done
echo "e2e: all scenarios passed ($MODES)"
