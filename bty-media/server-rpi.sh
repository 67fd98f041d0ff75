#!/bin/sh
# server-rpi.sh — the Raspberry Pi server appliance: an SD-card image (MBR) that the Pi 4 / Pi 5
# firmware boots into minimal Debian arm64 running bty-web (the aarch64 static bty under
# systemd), with the x86_64 netboot artifacts preinstalled (the fleet it serves is x86). The
# root filesystem, first boot, proxy-DHCP switch and upgrades are the x86 server's
# (lib/rootfs.sh with ARCH=arm64, rootfs-overlay/); disk assembly is lib/disk.sh.
#
# Layout (MBR, disk identifier random per build):
#   1  RASPIFIRM  256 MiB at 4 MiB   FAT32, type 0c, bootable: the Pi firmware (raspi-firmware:
#                                    bootcode.bin, start4.elf, fixup4.dat, ...), the kernel,
#                                    initrd, device trees (bcm2711-rpi-4-b.dtb,
#                                    bcm2712-rpi-5-b.dtb, ...), config.txt (arm_64bit=1),
#                                    cmdline.txt (root=PARTUUID=<id>-02); authorized_keys
#   2  bty-root   the rest           ext4: Debian, /var/lib/bty; grown to the card on first boot
# Debian's raspi-firmware kernel hooks wrote partition 1's files in the build and rewrite them
# on every kernel upgrade on the Pi (partition 1 is mounted at /boot/firmware), with the root
# given by PARTUUID from /etc/default/raspi-firmware. The kernel comes from bookworm-backports
# (6.12): bookworm's 6.1 has no device tree for the Pi 5.
#
# Inputs:  BTY (static aarch64 bty, required), NETBOOT (x86_64 netboot artifacts dir, required),
#          OUT (default ../out/media), BTY_MEDIA_CACHE (default /var/cache/bty-media),
#          IMG_MIB (virtual size, default 1792), budgets MAX_VIRT_MIB (2048), MAX_ZST_MIB (400)
# Outputs: $OUT/bty-server-rpi-arm64.img.zst, $OUT/SHA256SUMS
# Host tools: see lib/rootfs.sh and lib/disk.sh; qemu-user-static (binfmt, lib/binfmt.sh),
#          fdisk (sfdisk), mtools, util-linux (unshare), root.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/disk.sh"
. "$here/lib/binfmt.sh"
: "${BTY:?set BTY=/abs/path/to/aarch64/static/bty}" "${NETBOOT:?set NETBOOT=/abs/path/to/out/netboot}"
OUT=${OUT:-$here/../out/media}
IMG_MIB=${IMG_MIB:-1792}
MAX_VIRT_MIB=${MAX_VIRT_MIB:-2048}
MAX_ZST_MIB=${MAX_ZST_MIB:-400}
export BTY_MEDIA_CACHE=${BTY_MEDIA_CACHE:-/var/cache/bty-media}
machine=$(od -An -j18 -N2 -tu2 "$BTY" | tr -d ' ')
[ "$machine" = 183 ] || { echo "server-rpi: $BTY is not an aarch64 binary (make static-arm64)" >&2; exit 1; }
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
work=$(mktemp -d "${TMPDIR:-/var/tmp}/bty-server-rpi.XXXXXX")
trap 'rm -rf "$work"' EXIT
binfmt_enable aarch64

# 1. The root tree: Debian arm64 + the backports kernel + raspi-firmware + bty + overlay.
ARCH=arm64 BTY="$BTY" NETBOOT="$NETBOOT" ROOTFS="$work/root" \
    COMPONENTS="main non-free-firmware" BACKPORTS="linux-image-arm64 linux-image-*-arm64" \
    PACKAGES="linux-image-arm64 raspi-firmware" sh "$here/lib/rootfs.sh"
r=$work/root

# 2. The boot partition's files, by Debian's own hook, with this image's root and consoles
#    (serial on the GPIO header, then the screen) recorded for later kernel upgrades.
diskid=$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')
cat >> "$r/etc/default/raspi-firmware" <<CONF

# bty appliance: the root by partition UUID (the SD card or a USB disk alike), and consoles.
ROOTPART="PARTUUID=$diskid-02"
CONSOLES="ttyS1,115200 tty0"
CONF
unshare --mount --propagation private sh -c \
    "mount -t proc proc '$r/proc' && chroot '$r' env DEB_MAINT_PARAMS=configure /etc/kernel/postinst.d/z50-raspi-firmware"
fw=$r/boot/firmware
grep -qx 'arm_64bit=1' "$fw/config.txt" || { echo "server-rpi: config.txt lacks arm_64bit=1" >&2; exit 1; }
grep -q "root=PARTUUID=$diskid-02 " "$fw/cmdline.txt" || { echo "server-rpi: cmdline.txt lacks the root" >&2; exit 1; }
[ -e "$fw/bcm2711-rpi-4-b.dtb" ] || { echo "server-rpi: the kernel has no Pi 4 device tree" >&2; exit 1; }
cat > "$r/etc/fstab" <<'FSTAB'
# <file system>  <mount point>   <type>  <options>                   <dump> <pass>
LABEL=bty-root   /               ext4    defaults,errors=remount-ro  0      1
LABEL=RASPIFIRM  /boot/firmware  vfat    umask=0077,nofail           0      2
FSTAB

# 3. Filesystems, then the card: partition 1 takes /boot/firmware's files (its mount point
#    stays empty in the root).
disk_vfat "$work/boot.img" 256 RASPIFIRM 32
mcopy -i "$work/boot.img" "$fw"/* ::/
printf '%s\n' "# Put SSH public keys here before the first boot: they become root's authorized_keys." \
    > "$work/README.txt"
mcopy -i "$work/boot.img" "$work/README.txt" ::/README.txt
find "$fw" -mindepth 1 -delete
root_mib=$((IMG_MIB - 260))
disk_ext4 "$r" "$work/root.img" "$root_mib" bty-root
img=$work/disk.img
truncate -s "${IMG_MIB}M" "$img"
printf 'label: dos\nlabel-id: 0x%s\nstart=4MiB, size=256MiB, type=c, bootable\nstart=260MiB, type=83\n' "$diskid" |
    sfdisk --quiet "$img"
disk_put "$img" "$work/boot.img" 4
disk_put "$img" "$work/root.img" 260

# 4. Compress, check the budgets, record the digest.
disk_publish "$img" "$OUT" bty-server-rpi-arm64.img.zst "$MAX_VIRT_MIB" "$MAX_ZST_MIB"
