#!/bin/bash
# server-x86.sh — boots the x86_64 server appliance image under QEMU (TCG) and checks what an
# operator relies on. Part of `make media-test`.
#
# The VMs (QEMU x86_64, TCG, 1 GiB, 2 vCPUs, the image copied onto a sparse 4 GiB virtio disk):
#   a1  SeaBIOS, user-net with hostfwd: first boot. /healthz, /ui/login, HEAD of the netboot
#       kernel and ipxe.efi, the serial banner with the UI URL; root grown to the 4 GiB disk.
#   b1  OVMF, a second copy: killed in the middle of first boot (after the root was grown).
#   b2  OVMF, the same copy again: first boot completes; the same HTTP checks. a and b differ
#       in SSH host key, machine-id and admin password (read from their disks afterwards).
#   a2  SeaBIOS, the appliance (its binary replaced offline first: the upgrade path) on a
#       bridge in a private network namespace with a plain DHCP server (dnsmasq, no PXE
#       options); through its HTTP API: proxy-DHCP switched on, a test image uploaded, a
#       blank machine assigned. Then x1, a blank BIOS VM on the same LAN, PXE-boots through
#       the proxy, is flashed, reports done; x2, its next power-on, boots the flashed disk.
#   a3  SeaBIOS, a reboot of a: the machines, images and events of a2 are still there.
# Inputs:  IMAGE (default out/media/bty-server-x86_64.img.zst), BTY (static bty, the
#          "upgrade" binary), BOOT_TIMEOUT (s, default 900), KEEP=1 keeps the work dir,
#          MODES (default "all"; "bench" boots a1 only and prints the power-on split; "fleet"
#          skips b1/b2).
# Outputs: PASS/FAIL lines, exit 0 when all passed; logs in the work dir on failure.
# Host tools: qemu-system-x86_64, ovmf, zstd, curl, python3, e2fsprogs (debugfs, dumpe2fs),
#          losetup, iproute2, dnsmasq-base, sgdisk, mtools, grub-efi-amd64-bin. Root.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/tests/e2e/lib.sh"
IMAGE=${IMAGE:-$root/out/media/bty-server-x86_64.img.zst}
BTY=${BTY:-$root/target/x86_64-unknown-linux-musl/release/bty}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-900}
KEEP=${KEEP:-0}
MODES=${MODES:-all}
NS=bty-media-$$
ROOT_START=$((133120 * 512))   # partition 3 (bty-root), see bty-media/server-x86.sh
work=$(mktemp -d /var/tmp/bty-media-test.XXXXXX)
pids=()
loops=()

cleanup() {
    local rc=$?
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
    if [ "$KEEP" = 1 ] || [ $rc -ne 0 ]; then
        rm -f "$work"/*.img
        echo "media: logs kept in $work"
    else
        rm -rf "$work"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "media: FAIL: $*" >&2; exit 1; }
pass() { echo "media: PASS $*"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

[ -e "$IMAGE" ] || die "$IMAGE is missing; run 'make media-server-x86'"

# copy NAME: a fresh copy of the image on a sparse 4 GiB disk
copy() {
    [ -e "$work/base.img" ] || zstd -q -d -f "$IMAGE" -o "$work/base.img"
    cp --sparse=always "$work/base.img" "$work/$1.img"
    truncate -s 4G "$work/$1.img"
}

# vm NAME FIRMWARE DISK QEMU_NIC_ARGS... : starts QEMU (in namespace $VM_NS when set), sets
# $vm_pid; its serial console is $work/NAME.serial, its monitor $work/NAME.mon
VM_NS=""
vm() {
    local name=$1 fw=$2 disk=$3; shift 3
    local args=(-accel tcg -m 1024 -smp 2 -display none -vga none -no-reboot
        -serial "file:$work/$name.serial" -monitor "unix:$work/$name.mon,server,nowait"
        -drive "file=$work/$disk.img,format=raw,if=none,id=d0" -device virtio-blk-pci,drive=d0,bootindex=0)
    if [ "$fw" = uefi ]; then
        [ -e "$work/$disk.vars.fd" ] || cp /usr/share/OVMF/OVMF_VARS_4M.fd "$work/$disk.vars.fd"
        args+=(-machine q35,graphics=off -drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd
            -drive "if=pflash,format=raw,unit=1,file=$work/$disk.vars.fd")
    else
        args+=(-machine pc,graphics=off)
    fi
    : > "$work/$name.serial"
    date +%s.%N > "$work/$name.t0"
    if [ -n "$VM_NS" ]; then
        ip netns exec "$VM_NS" qemu-system-x86_64 "${args[@]}" "$@" < /dev/null > "$work/$name.qemu.log" 2>&1 &
    else
        qemu-system-x86_64 "${args[@]}" "$@" < /dev/null > "$work/$name.qemu.log" 2>&1 &
    fi
    vm_pid=$!
    pids+=("$vm_pid")
}

# wait_serial PID NAME PATTERN: 0 when PATTERN is on NAME's serial, 1 if QEMU exited, 2 timeout
wait_serial() {
    local pid=$1 f="$work/$2.serial" pattern=$3 t=0
    while [ $t -lt $((BOOT_TIMEOUT * 5)) ]; do
        grep -aq -- "$pattern" "$f" && return 0
        kill -0 "$pid" 2>/dev/null || { grep -aq -- "$pattern" "$f" && return 0; return 1; }
        sleep 0.2; t=$((t + 1))
    done
    return 2
}

show() { echo "---- $1 serial (tail)"; tr -d '\033' < "$work/$1.serial" | tail -40 || true; }

# poweroff NAME PID: ACPI power button (pressed again every 20 s: a press while the guest is
# still starting logind is lost), wait for QEMU to exit (clean shutdown)
poweroff() {
    local t=0
    while kill -0 "$2" 2>/dev/null && [ $t -lt $((BOOT_TIMEOUT * 5)) ]; do
        if [ $((t % 100)) = 0 ]; then
            python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(5)
s.recv(4096)                      # the monitor greeting
s.sendall(b"system_powerdown\n"); time.sleep(0.5); s.recv(4096)' "$work/$1.mon" 2>/dev/null || true
        fi
        sleep 0.2; t=$((t + 1))
    done
    kill -0 "$2" 2>/dev/null && { kill "$2"; die "$1: did not power off"; }
    wait "$2" 2>/dev/null || true
}

# wait_http URL [CMD_PREFIX...]: until URL answers 200 or the boot timeout
wait_http() {
    local url=$1; shift
    local t=0
    while [ $t -lt $((BOOT_TIMEOUT * 2)) ]; do
        "$@" curl -sf -m 5 -o /dev/null "$url" && return 0
        sleep 0.5; t=$((t + 1))
    done
    return 1
}

# rootfs DISK: attaches DISK's root partition read-only, prints the loop device
rootfs() {
    local l
    l=$(losetup -r -f --show -o "$ROOT_START" "$work/$1.img")
    loops+=("$l")
    echo "$l"
}
# cat_in DISK PATH: a file from DISK's root filesystem
cat_in() { local l; l=$(rootfs "$1"); debugfs -R "cat $2" "$l" 2>/dev/null; losetup -d "$l"; }
# fs_bytes DISK: size of DISK's root filesystem
fs_bytes() {
    local l; l=$(rootfs "$1")
    dumpe2fs -h "$l" 2>/dev/null | awk -F: '/^Block count/ { c = $2 } /^Block size/ { s = $2 } END { printf "%.0f", c * s }'
    losetup -d "$l"
}
ssh_key() { grep -a -o 'SSH host keys: 256 SHA256:[^ ]*' "$work/$1.serial" | tail -n 1 | sed 's/.*SHA256://'; }

# http_checks NAME BASE: what every boot of the appliance must serve
http_checks() {
    local name=$1 base=$2
    curl -sf -m 10 "$base/healthz" | grep -q '"ok"' || die "$name: /healthz"
    curl -sf -m 10 "$base/ui/login" | grep -qi 'password' || die "$name: /ui/login does not render a login form"
    for f in bty-netboot-x86_64.vmlinuz bty-netboot-x86_64.initrd ipxe.efi undionly.kpxe snponly.efi; do
        [ "$(curl -s -m 10 -o /dev/null -w '%{http_code}' -I "$base/boot/$f")" = 200 ] || die "$name: HEAD /boot/$f is not 200"
    done
}

# appliance_boot NAME FIRMWARE DISK: boots with user-net + hostfwd to bty-web, waits for it
# and checks it, prints the power-on split; sets $app_pid
appliance_boot() {
    local name=$1 fw=$2 disk=$3 port t0 t_linux t_init t_web
    port=$(free_port)
    vm "$name" "$fw" "$disk" -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:8080" -device virtio-net-pci,netdev=n0,romfile=
    app_pid=$vm_pid
    t0=$(cat "$work/$name.t0")
    wait_serial "$app_pid" "$name" "Linux version" || { show "$name"; die "$name: no kernel (firmware or GRUB failed)"; }
    t_linux=$(now)
    wait_serial "$app_pid" "$name" "running in system mode" || { show "$name"; die "$name: systemd did not start"; }
    t_init=$(now)
    wait_http "http://127.0.0.1:$port/healthz" || { show "$name"; die "$name: /healthz did not answer within ${BOOT_TIMEOUT}s"; }
    t_web=$(now)
    echo "media: $name ($fw): power-on to /healthz $(secs "$t0" "$t_web") s: firmware+GRUB $(secs "$t0" "$t_linux") s, kernel+initramfs $(secs "$t_linux" "$t_init") s, systemd to bty-web ready $(secs "$t_init" "$t_web") s"
    http_checks "$name" "http://127.0.0.1:$port"
    wait_serial "$app_pid" "$name" "bty: web UI at http://10.0.2.15:8080/ui/" || { show "$name"; die "$name: no banner with the UI URL on the serial console"; }
    grep -aq "admin password in /var/lib/bty/admin-password" "$work/$name.serial" || die "$name: the banner does not say where the password is"
    wait_serial "$app_pid" "$name" "Password: /var/lib/bty/admin-password" || die "$name: /etc/issue on the serial getty lacks the password location"
}

# --- a1: first boot under SeaBIOS --------------------------------------------------------------
copy a
appliance_boot a1 bios a
grep -aq "bty-firstboot: done" "$work/a1.serial" || die "a1: first boot did not finish"
poweroff a1 "$app_pid"
[ "$MODES" = bench ] && exit 0
size_a=$(fs_bytes a)
[ "$size_a" -gt $((3900 * 1024 * 1024)) ] || die "a: the root filesystem is $size_a bytes, not grown to the 4 GiB disk"
pass "a1 (SeaBIOS): /healthz, /ui/login, netboot artifacts, serial banner; root filesystem grown to $size_a bytes"

# --- b1, b2: OVMF; first boot interrupted, then completed ----------------------------------------
if [ "$MODES" != fleet ]; then
copy b
vm b1 uefi b -netdev user,id=n0 -device virtio-net-pci,netdev=n0,romfile=
wait_serial "$vm_pid" b1 "bty-firstboot: root partition" || { show b1; die "b1: first boot never grew the root"; }
kill -9 "$vm_pid"; wait "$vm_pid" 2>/dev/null || true
! grep -aq "bty-firstboot: done" "$work/b1.serial" || die "b1: first boot finished before it was interrupted; nothing tested"
appliance_boot b2 uefi b
grep -aq "bty-firstboot: done" "$work/b2.serial" || die "b2: the interrupted first boot was not completed"
poweroff b2 "$app_pid"
size_b=$(fs_bytes b)
[ "$size_b" -gt $((3900 * 1024 * 1024)) ] || die "b: the root filesystem is $size_b bytes after the interrupted first boot"
pass "b1/b2 (OVMF): first boot killed half way, completed on the next boot; /healthz, /ui/login, artifacts, banner"

key_a=$(ssh_key a1); key_b=$(ssh_key b2)
mid_a=$(cat_in a /etc/machine-id); mid_b=$(cat_in b /etc/machine-id)
pw_a=$(cat_in a /var/lib/bty/admin-password); pw_b=$(cat_in b /var/lib/bty/admin-password)
for v in key_a key_b mid_a mid_b pw_a pw_b; do [ -n "${!v}" ] || die "could not read $v"; done
[ "$key_a" != "$key_b" ] || die "two copies share the SSH host key $key_a"
[ "$mid_a" != "$mid_b" ] || die "two copies share the machine-id $mid_a"
[ "$pw_a" != "$pw_b" ] || die "two copies share the admin password"
pass "two copies: different SSH host keys ($key_a / $key_b), machine-ids, admin passwords"
else
    pw_a=$(cat_in a /var/lib/bty/admin-password)
fi

# --- the upgrade path: the binary replaced offline, state kept -----------------------------------
l=$(losetup -f --show -o "$ROOT_START" "$work/a.img"); loops+=("$l")
printf 'rm /usr/local/bin/bty\nwrite %s /usr/local/bin/bty\nsif /usr/local/bin/bty mode 0100755\n' "$BTY" > "$work/upgrade.debugfs"
debugfs -w -f "$work/upgrade.debugfs" "$l" > "$work/upgrade.log" 2>&1 || { cat "$work/upgrade.log"; die "replacing the binary"; }
losetup -d "$l"

# --- a2: the appliance serves a fleet ------------------------------------------------------------
HOST=192.168.77.1
APP_MAC=52:54:00:b7:00:01
X_MAC=52:54:00:b7:00:02
ip netns add "$NS"
nsx() { ip netns exec "$NS" "$@"; }
nsx ip link set lo up
nsx ip link add br0 type bridge
for t in tap0 tap1; do nsx ip tuntap add dev $t mode tap; nsx ip link set $t master br0; nsx ip link set $t up; done
nsx ip addr add $HOST/24 dev br0
nsx ip -6 addr add fd00:77::1/64 dev br0
nsx ip link set br0 up
# The LAN's own DHCP server: addresses only, no PXE options at all.
ip netns exec "$NS" dnsmasq --no-daemon --conf-file=/dev/null --port=0 --interface=br0 --bind-interfaces \
    --except-interface=lo --dhcp-leasefile="$work/dnsmasq.leases" --pid-file="$work/dnsmasq.pid" \
    --dhcp-range=192.168.77.50,192.168.77.99,255.255.255.0,1h --dhcp-option=option:router,$HOST \
    --enable-ra --dhcp-range=::,constructor:br0,ra-only --log-dhcp > "$work/dnsmasq.log" 2>&1 &
pids+=($!)

VM_NS=$NS
vm a2 bios a -netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device "virtio-net-pci,netdev=n0,mac=$APP_MAC,romfile="
app_pid=$vm_pid
wait_serial "$app_pid" a2 "bty: web UI at http://192.168.77." || { show a2; die "a2: no address on the LAN"; }
app_ip=$(grep -a -o 'bty: web UI at http://192\.168\.77\.[0-9]*' "$work/a2.serial" | head -n 1 | sed 's|.*http://||')
WEB=http://$app_ip:8080
wait_http "$WEB/healthz" ip netns exec "$NS" || { show a2; die "a2: /healthz on the LAN"; }
# Signs in; a cookie-authenticated state change needs the session's CSRF token as a header.
login() {
    nsx curl -sS -o /dev/null -c "$work/cookies" -d "password=$pw_a" "$WEB/ui/login"
    csrf=$(nsx curl -sS -b "$work/cookies" "$WEB/ui/account" | sed -n 's/.*name="csrf_token" value="\([0-9a-f]*\)".*/\1/p' | head -n 1)
}
api() { local m=$1 p=$2; shift 2; nsx curl -sS -f -b "$work/cookies" -H "X-CSRF-Token: $csrf" -X "$m" "$@" "$WEB$p"; }
login
api GET /machines > /dev/null || die "a2: logging in with the password from a's disk failed"

api PUT /settings/proxy-dhcp -H 'Content-Type: application/json' -d '{"enabled":true,"subnet":"192.168.77.0/24"}' > "$work/proxy.json" \
    || die "a2: switching proxy-DHCP on"
st=""
for _ in $(seq 120); do
    st=$(api GET /settings/proxy-dhcp | python3 -c 'import json,sys; print(json.load(sys.stdin)["dnsmasq_status"] or "")')
    case $st in *running*) break ;; esac
    sleep 1
done
case $st in *running*) ;; *) show a2; die "a2: dnsmasq did not start after the switch (status: $st)" ;; esac
api GET /ui/settings | grep -q "running" || die "a2: the Settings page does not show dnsmasq's status"

sh "$root/tests/e2e/make-test-image.sh" "$work/test-disk.img" 32 4
image_sha=$(sha256sum < "$work/test-disk.img" | cut -d' ' -f1)
image_size=$(stat -c %s "$work/test-disk.img")
image_ref=$(api PUT /images/test-disk.img -T "$work/test-disk.img" -H 'Content-Type: application/octet-stream' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["ref"])')
api PUT "/machines/$X_MAC" -H 'Content-Type: application/json' \
    -d "{\"bty_image_ref\":\"$image_ref\",\"boot_mode\":\"bty-flash-once\",\"target_disk_serial\":\"BTYTEST\"}" > /dev/null

# x1: a blank BIOS machine (SeaBIOS + QEMU's iPXE ROM) PXE-boots from the appliance.
truncate -s 64M "$work/x.img"
xvm() { # NAME: two UARTs as in tests/e2e/run.sh (the netboot kernel prints on COM2)
    : > "$work/$1.serial"; : > "$work/$1.com2"
    ip netns exec "$NS" qemu-system-x86_64 -accel tcg -m 512 -smp 1 -display none -no-reboot \
        -serial "file:$work/$1.serial" -serial "file:$work/$1.com2" \
        -drive "file=$work/x.img,format=raw,if=none,id=d0" -device virtio-blk-pci,drive=d0,serial=BTYTEST,bootindex=2 \
        -netdev tap,id=n0,ifname=tap1,script=no,downscript=no -device "virtio-net-pci,netdev=n0,mac=$X_MAC,bootindex=1" \
        < /dev/null > "$work/$1.qemu.log" 2>&1 &
    vm_pid=$!; pids+=("$vm_pid")
}
xvm x1
x_pid=$vm_pid
t=0
until grep -aq "bty: flash complete; rebooting" "$work/x1.com2"; do
    kill -0 "$x_pid" 2>/dev/null || break
    [ $t -lt $((BOOT_TIMEOUT * 5)) ] || break
    sleep 0.2; t=$((t + 1))
done
kill "$x_pid" 2>/dev/null || true; wait "$x_pid" 2>/dev/null || true
cat "$work/x1.serial" "$work/x1.com2" > "$work/x1.all"
grep -aq "bty: flash complete; rebooting" "$work/x1.all" || { tail -30 "$work/x1.all"; tail -20 "$work/dnsmasq.log"; die "x1: the blank machine was not flashed"; }
expect_in_order "$work/x1.all" "plan agent" "posted inventory" "bty: auto-flash starting" "bty: write 100%" \
    "bty: flash complete; rebooting" || die "x1: serial log out of order"
disk_sha=$(head -c "$image_size" "$work/x.img" | sha256sum | cut -d' ' -f1)
[ "$disk_sha" = "$image_sha" ] || die "x1: disk sha256 $disk_sha != image $image_sha"
api GET "/events?subject_id=$X_MAC&limit=500" | python3 -c '
import json, sys
for e in reversed(json.load(sys.stdin)["events"]): print(e["kind"])' > "$work/x.events"
expect_in_order "$work/x.events" "netboot.pxe.offered" "netboot.flasher.armed" "machine.inventory" \
    "netboot.pxe.plan" "machine.flashed" || { cat "$work/x.events"; die "x1: events out of order"; }
# Nothing but the proxy told it where to boot: the LAN's DHCP server has no PXE options.
! grep -Eq "sent size: *[0-9]+ option: 6[67] |bootfile name:" "$work/dnsmasq.log" || die "the LAN's DHCP server sent boot options"
xvm x2
wait_serial "$vm_pid" x2 "BTY-DISK-BOOTED" || { show x2; die "x2: the flashed disk did not boot"; }
kill "$vm_pid" 2>/dev/null || true; wait "$vm_pid" 2>/dev/null || true
pass "fleet: proxy-DHCP switched on over the API, the blank BIOS machine PXE-booted from the appliance, was flashed (sha256 ok), reported done, booted its disk"

machines_before=$(api GET /machines | python3 -c 'import json,sys; print(sorted(m["mac"] for m in json.load(sys.stdin)))')
images_before=$(api GET /images | python3 -c 'import json,sys; print(sorted(i["name"] for i in json.load(sys.stdin)))')
events_before=$(api GET "/events?limit=500" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["events"]))')
poweroff a2 "$app_pid"

# --- a3: reboot keeps machines, images and events ------------------------------------------------
vm a3 bios a -netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device "virtio-net-pci,netdev=n0,mac=$APP_MAC,romfile="
app_pid=$vm_pid
wait_http "$WEB/healthz" ip netns exec "$NS" || { show a3; die "a3: /healthz after the reboot"; }
login
machines_after=$(api GET /machines | python3 -c 'import json,sys; print(sorted(m["mac"] for m in json.load(sys.stdin)))')
images_after=$(api GET /images | python3 -c 'import json,sys; print(sorted(i["name"] for i in json.load(sys.stdin)))')
events_after=$(api GET "/events?limit=500" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["events"]))')
[ "$machines_after" = "$machines_before" ] || die "a3: machines $machines_after != $machines_before"
[ "$images_after" = "$images_before" ] || die "a3: images $images_after != $images_before"
[ "$events_after" -ge "$events_before" ] || die "a3: $events_after events after the reboot, $events_before before"
api GET "/machines/$X_MAC" | grep -q "$image_ref" || die "a3: the machine lost its assignment"
poweroff a3 "$app_pid"
pass "a3: binary replaced offline and rebooted: machines $machines_after, images $images_after, $events_after events kept"
echo "media: server-x86: all passed"
