#!/bin/sh
# server-x86.sh — the x86_64 server appliance: a GPT disk image that boots under UEFI and
# legacy BIOS into minimal Debian running bty-web (the static bty under systemd), with the
# netboot artifacts preinstalled. Root filesystem from lib/rootfs.sh (shared with the
# Raspberry Pi image), disk assembly from lib/disk.sh.
#
# Layout (GPT, 512-byte sectors):
#   1  BIOS boot  1 MiB at 1 MiB   GRUB i386-pc core image (legacy BIOS)
#   2  ESP       63 MiB at 2 MiB   FAT, EFI/BOOT/BOOTX64.EFI (GRUB x86_64-efi); authorized_keys
#   3  root      the rest          ext4 "bty-root": Debian, kernel, /boot/grub/grub.cfg,
#                                  /var/lib/bty; grown to the disk on first boot
# Both GRUBs carry every module they need and an early config that finds the root by its
# label and reads /boot/grub/grub.cfg from it, so replacing the root filesystem upgrades the
# kernel and its command line together.
#
# Inputs:  BTY (static x86_64 bty, required), NETBOOT (netboot artifacts dir, required),
#          OUT (default ../out/media), BTY_MEDIA_CACHE (default /var/cache/bty-media),
#          IMG_MIB (virtual size, default 1536), budgets MAX_VIRT_MIB (2048), MAX_ZST_MIB (400)
# Outputs: $OUT/bty-server-x86_64.img.zst, $OUT/SHA256SUMS
# Host tools: see lib/rootfs.sh and lib/disk.sh; grub-efi-amd64-bin, grub-pc-bin, gdisk, mtools.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/disk.sh"
: "${BTY:?set BTY=/abs/path/to/static/bty}" "${NETBOOT:?set NETBOOT=/abs/path/to/out/netboot}"
OUT=${OUT:-$here/../out/media}
IMG_MIB=${IMG_MIB:-1536}
MAX_VIRT_MIB=${MAX_VIRT_MIB:-2048}
MAX_ZST_MIB=${MAX_ZST_MIB:-400}
export BTY_MEDIA_CACHE=${BTY_MEDIA_CACHE:-/var/cache/bty-media}
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
work=$(mktemp -d "${TMPDIR:-/var/tmp}/bty-server-x86.XXXXXX")
trap 'rm -rf "$work"' EXIT

# 1. The root tree: Debian + kernel + bty + overlay.
ARCH=amd64 BTY="$BTY" NETBOOT="$NETBOOT" ROOTFS="$work/root" \
    PACKAGES="linux-image-amd64" sh "$here/lib/rootfs.sh"
r=$work/root
kver=$(ls "$r/boot" | sed -n 's/^vmlinuz-//p' | sort -V | tail -n 1)
[ -n "$kver" ] && [ -e "$r/boot/initrd.img-$kver" ] || { echo "server-x86: no kernel/initrd in the tree" >&2; exit 1; }
mkdir -p "$r/boot/grub" "$r/boot/efi"
# /vmlinuz and /initrd.img are Debian's links to the newest kernel (kept by kernel upgrades).
cat > "$r/boot/grub/grub.cfg" <<CFG
# bty appliance boot menu (read by both GRUBs, BIOS and UEFI). Consoles: screen and COM1.
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
set timeout=2
set default=0
menuentry "bty appliance" {
    linux /vmlinuz root=LABEL=bty-root ro rootwait console=tty0 console=ttyS0,115200 panic=10
    initrd /initrd.img
}
CFG
cat > "$r/etc/fstab" <<'FSTAB'
# <file system>  <mount point>  <type>  <options>                 <dump> <pass>
LABEL=bty-root   /              ext4    defaults,errors=remount-ro  0      1
LABEL=BTY-ESP    /boot/efi      vfat    umask=0077,nofail          0      2
FSTAB

# 2. Boot loaders: GRUB images with their modules built in (nothing of GRUB in the root).
cat > "$work/early.cfg" <<'CFG'
search --no-floppy --label bty-root --set=root
set prefix=($root)/boot/grub
CFG
mods="part_gpt part_msdos ext2 fat search search_label normal configfile linux echo serial terminal terminfo gzio test sleep"
grub-mkimage -O x86_64-efi -p /boot/grub -c "$work/early.cfg" -o "$work/BOOTX64.EFI" $mods efi_gop efi_uga all_video
grub-mkimage -O i386-pc -p /boot/grub -c "$work/early.cfg" -o "$work/core.img" $mods biosdisk

# 3. Filesystems, then the disk.
disk_vfat "$work/esp.img" 63 BTY-ESP
mmd -i "$work/esp.img" ::/EFI ::/EFI/BOOT
mcopy -i "$work/esp.img" "$work/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
printf '%s\n' "# Put SSH public keys here before the first boot: they become root's authorized_keys." \
    > "$work/README.txt"
mcopy -i "$work/esp.img" "$work/README.txt" ::/README.txt
root_mib=$((IMG_MIB - 65 - 1))   # 1 MiB gap, BIOS boot, ESP; 1 MiB for the backup GPT
disk_ext4 "$r" "$work/root.img" "$root_mib" bty-root
img=$work/disk.img
truncate -s "${IMG_MIB}M" "$img"
sgdisk -q -Z -n1:1M:+1M -t1:ef02 -c1:bios -n2:2M:+63M -t2:ef00 -c2:ESP \
    -n3:65M:0 -t3:8304 -c3:bty-root "$img"
disk_put "$img" "$work/esp.img" 2
disk_put "$img" "$work/root.img" 65

# Legacy BIOS: GRUB's boot.img in the MBR (keeping the protective partition table) points at
# the core image in partition 1; the core image's first sector (diskboot) lists where the
# rest of it is. This is what grub-bios-setup writes, done on a file without a device.
core_lba=2048
core_sectors=$(( ($(stat -c %s "$work/core.img") + 511) / 512 ))
[ "$core_sectors" -le 2048 ] || { echo "server-x86: core.img is larger than the BIOS boot partition" >&2; exit 1; }
dd if="$work/core.img" of="$img" bs=512 seek=$core_lba conv=notrunc status=none
le() { # VALUE BYTES → little-endian bytes as printf escapes
    v=$1 n=$2 s=""
    while [ "$n" -gt 0 ]; do s="$s\\$(printf '%03o' $((v & 255)))"; v=$((v >> 8)); n=$((n - 1)); done
    printf "$s"
}
le $((core_lba + 1)) 8 | dd of="$img" bs=1 seek=$((core_lba * 512 + 500)) conv=notrunc status=none
dd if=/usr/lib/grub/i386-pc/boot.img of="$img" bs=440 count=1 conv=notrunc status=none
le $core_lba 8 | dd of="$img" bs=1 seek=$((0x5c)) conv=notrunc status=none

# 4. Compress, check the budgets, record the digest.
disk_publish "$img" "$OUT" bty-server-x86_64.img.zst "$MAX_VIRT_MIB" "$MAX_ZST_MIB"
