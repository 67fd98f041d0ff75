#!/usr/bin/env bash
# server-rpi.sh — make media-test for the Raspberry Pi SD image (make media-server-rpi).
#
# 1. Static checks from the host, no mounts (sfdisk, mtools, debugfs): MBR with a bootable
#    FAT32 partition and an ext4 root; the Pi 4/5 firmware files, kernel, initrd and device
#    trees present; config.txt and cmdline.txt right, the root by this card's PARTUUID; the
#    aarch64 bty in the root with its applet links, the units enabled, the x86_64 netboot
#    artifacts preinstalled, nothing unique shipped; the initrd holds the root's drivers for
#    the Pi 4 (SD card, USB disk) and for -M virt (virtio), unless the kernel has them built in.
# 2. The root filesystem boots under qemu-system-aarch64 -M virt (TCG) with the image's own
#    kernel, initrd and cmdline.txt root (real Pi firmware cannot be emulated): first boot grows
#    the root to a bigger disk, systemd starts bty-web, /healthz answers through hostfwd.
#    Prints the boot-to-healthz time (recorded, never asserted).
#
# Input: $1 or out/media/bty-server-rpi-arm64.img.zst. Tools: zstd, fdisk, mtools, e2fsprogs,
# cpio, qemu-system-arm, curl.
set -euo pipefail
zst=${1:-out/media/bty-server-rpi-arm64.img.zst}
[ -f "$zst" ] || { echo "server-rpi test: $zst is missing (make media-server-rpi)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/var/tmp}/bty-test-rpi.XXXXXX")
qemu_pid=""
cleanup() { [ -z "$qemu_pid" ] || kill "$qemu_pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "server-rpi test: FAIL: $*" >&2; exit 1; }
ok() { echo "server-rpi test: ok: $*"; }

img=$work/sd.img
zstd -d -q "$zst" -o "$img"

# --- 1. Partition table -------------------------------------------------------------------
dump=$(sfdisk --dump "$img")
grep -qx 'label: dos' <<<"$dump" || fail "not an MBR disk: $dump"
diskid=$(sed -n 's/^label-id: 0x//p' <<<"$dump")
[ ${#diskid} = 8 ] || fail "no disk identifier: $dump"
p1=$(grep '^[^ ]*1 :' <<<"$dump") || fail "no partition 1"
p2=$(grep '^[^ ]*2 :' <<<"$dump") || fail "no partition 2"
field() { sed -n "s/.*$1= *\([^,]*\).*/\1/p" <<<"$2"; }
[ "$(field type "$p1")" = c ] && grep -q bootable <<<"$p1" || fail "partition 1 is not a bootable type 0c: $p1"
[ "$(field type "$p2")" = 83 ] || fail "partition 2 is not type 83: $p2"
boot_off=$(($(field start "$p1") * 512))
root_off=$(($(field start "$p2") * 512)); root_len=$(($(field size "$p2") * 512))
ok "MBR, disk id $diskid: bootable FAT (0c) and Linux (83) partitions"

# --- 2. Boot partition (mtools reads it in place) ------------------------------------------
fat="$img@@$boot_off"
dd if="$img" bs=1 skip=$((boot_off + 82)) count=5 status=none | grep -q FAT32 || fail "partition 1 is not FAT32"
files=$(mdir -b -i "$fat" ::/ | sed 's|^::/||')
for f in bootcode.bin start4.elf fixup4.dat config.txt cmdline.txt bcm2711-rpi-4-b.dtb bcm2712-rpi-5-b.dtb; do
    grep -qx "$f" <<<"$files" || fail "boot partition lacks $f"
done
config=$(mtype -i "$fat" ::/config.txt)
cmdline=$(mtype -i "$fat" ::/cmdline.txt)
grep -qx 'arm_64bit=1' <<<"$config" || fail "config.txt lacks arm_64bit=1"
kernel=$(sed -n 's/^kernel=//p' <<<"$config"); initrd=$(sed -n 's/^initramfs \([^ ]*\).*/\1/p' <<<"$config")
grep -qx "$kernel" <<<"$files" || fail "config.txt names kernel $kernel, which is not there"
grep -qx "$initrd" <<<"$files" || fail "config.txt names initramfs $initrd, which is not there"
grep -q "root=PARTUUID=$diskid-02 " <<<"$cmdline " || fail "cmdline.txt has not root=PARTUUID=$diskid-02: $cmdline"
ok "FAT32 boot: firmware, $kernel, $initrd, Pi 4 and Pi 5 device trees; config.txt, cmdline.txt root=PARTUUID=$diskid-02"

# --- 3. Root filesystem (debugfs reads a copy of the partition) ---------------------------
root=$work/root.ext4
dd if="$img" of="$root" bs=1M iflag=skip_bytes,count_bytes skip=$root_off count=$root_len conv=sparse status=none
dbg() { debugfs -R "$1" "$root" 2>/dev/null; }
[ "$(dumpe2fs -h "$root" 2>/dev/null | sed -n 's/^Filesystem volume name: *//p')" = bty-root ] || fail "root is not ext4 labelled bty-root"
dbg "dump /usr/local/bin/bty $work/bty" >/dev/null
[ -s "$work/bty" ] || fail "no /usr/local/bin/bty in the root"
[ "$(od -An -j18 -N2 -tu2 "$work/bty" | tr -d ' ')" = 183 ] || fail "/usr/local/bin/bty is not an aarch64 ELF"
for link in bty-web bty-flash bty-tftp; do
    dbg "stat /usr/local/bin/$link" | grep -Eq 'Fast link dest: "(/usr/local/bin/)?bty"' || fail "/usr/local/bin/$link is not a link to bty"
done
for u in multi-user.target.wants/bty-web.service sysinit.target.wants/bty-firstboot.service \
    multi-user.target.wants/bty-proxy-dhcp.path; do
    dbg "stat /etc/systemd/system/$u" | grep -q 'Type: symlink' || fail "$u is not enabled"
done
dbg "ls /var/lib/bty/boot" | grep -q 'bty-netboot-x86_64.vmlinuz' || fail "no x86_64 netboot kernel in /var/lib/bty/boot"
dbg "cat /etc/default/raspi-firmware" | grep -qx "ROOTPART=\"PARTUUID=$diskid-02\"" || fail "raspi-firmware hook config lacks the root"
dbg "cat /etc/apt/preferences.d/bty-backports" | grep -q 'bookworm-backports' || fail "no backports pin for kernel upgrades"
[ -z "$(dbg "ls /etc/ssh" | grep -o 'ssh_host_[a-z0-9_]*key')" ] || fail "SSH host keys shipped in the image"
[ "$(dbg "stat /etc/machine-id" | sed -n 's/.*Size: \([0-9]*\).*/\1/p' | head -n1)" = 0 ] || fail "machine-id is not empty"
ok "ext4 root: aarch64 bty and links, units enabled, x86_64 netboot artifacts, no host keys"

# --- 4. The initrd: made once by the build, it must carry the root's drivers for the Pi (SD
#        card) and for -M virt (virtio), each as a module in it or built into the kernel --------
mcopy -i "$fat" "::/$kernel" "$work/vmlinuz"
mcopy -i "$fat" "::/$initrd" "$work/initrd"
kver=${kernel#vmlinuz-}
dbg "dump /boot/config-$kver $work/config" >/dev/null
[ -s "$work/config" ] || fail "no /boot/config-$kver in the root for kernel $kernel"
inside=$(zstd -dcq "$work/initrd" | cpio -it --quiet) || fail "$initrd is not a zstd-compressed cpio archive"
for m in virtio_blk:VIRTIO_BLK virtio_pci:VIRTIO_PCI mmc_block:MMC_BLOCK sdhci-iproc:MMC_SDHCI_IPROC \
    xhci-pci:USB_XHCI_PCI usb-storage:USB_STORAGE uas:USB_UAS ext4:EXT4_FS; do
    grep -qx "CONFIG_${m#*:}=y" "$work/config" || grep -Eq "/${m%%:*}\.ko(\.[gx]z|\.zst)?\$" <<<"$inside" ||
        fail "$initrd has no ${m%%:*} and the kernel has it not built in (CONFIG_${m#*:})"
done
ok "initrd $initrd: virtio (-M virt), Pi 4 SD card and USB disks, ext4"

# --- 5. Boot under QEMU (TCG) -------------------------------------------------------------
truncate -s +512M "$img"   # first boot grows the root into this
port=""
for _ in $(seq 50); do
    p=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { port=$p; break; }
done
[ -n "$port" ] || fail "no free port"
append="$(sed 's/console=[^ ]*//g' <<<"$cmdline") console=ttyAMA0 panic=10"
start=$(date +%s)
qemu-system-aarch64 -M virt -accel tcg -cpu cortex-a72 -smp 2 -m 1024 -nographic -no-reboot \
    -kernel "$work/vmlinuz" -initrd "$work/initrd" -append "$append" \
    -drive if=none,id=sd,format=raw,file="$img" -device virtio-blk-pci,drive=sd \
    -netdev user,id=n0,hostfwd=tcp:127.0.0.1:$port-:8080 -device virtio-net-pci,netdev=n0 \
    </dev/null >"$work/console.log" 2>&1 &
qemu_pid=$!
healthy=""
for _ in $(seq 900); do
    kill -0 "$qemu_pid" 2>/dev/null || break
    if curl -fsS -m 5 "http://127.0.0.1:$port/healthz" >"$work/healthz" 2>/dev/null; then healthy=1; break; fi
    sleep 1
done
took=$(($(date +%s) - start))
if [ -z "$healthy" ]; then
    tail -n 40 "$work/console.log" >&2
    fail "/healthz did not answer within 15 minutes"
fi
grep -q '"ok"' "$work/healthz" || fail "/healthz answered $(cat "$work/healthz")"
grep -q 'bty-firstboot: root partition .* grown' "$work/console.log" || {
    tail -n 40 "$work/console.log" >&2; fail "first boot did not grow the root partition"; }
ok "arm64 root booted under qemu-system-aarch64 -M virt (TCG), first boot grew the root, /healthz answered"
echo "server-rpi test: arm64 TCG boot to /healthz: ${took} s"
