#!/bin/sh
# usb.sh — builds the bty USB live stick: a raw disk image that boots under UEFI and legacy
# BIOS into the static bty (as /init, `bty.mode=usb`), which runs the wizard on tty1 and the
# serial console and flashes the images on the stick's own exFAT BTY_IMAGES partition.
#
# Layout (GPT, protective MBR carrying syslinux's gptmbr.bin):
#   1  ESP, FAT (label BTY_BOOT), "legacy BIOS bootable": /bty/vmlinuz, /bty/initrd,
#      /EFI/BOOT/BOOTX64.EFI (GRUB, standalone) + /boot/grub/grub.cfg (UEFI menu),
#      /syslinux/{ldlinux.sys,ldlinux.c32,syslinux.cfg} (BIOS menu)
#   2  BTY_IMAGES, exFAT (label BTY_IMAGES, GPT type Microsoft basic data), the last partition
#
# Inputs:  BTY              absolute path of the static (musl) bty binary (required)
#          OUT              output directory (default ../out/media)
#          BTY_MEDIA_CACHE  download cache for the kernel package (default /var/cache/bty-media)
#          IMAGES           files and/or directories to preload into BTY_IMAGES (a directory's
#                           regular files are copied, with a catalog.toml if it has one)
#          BTY_IMAGES_SIZE  size of BTY_IMAGES (MiB, or with a M/G suffix); default: what
#                           IMAGES need plus 16 MiB, or what keeps the stick at 64 MiB
#          CMDLINE_EXTRA    more kernel arguments for every menu entry (e.g. bty.auto=...)
#          BUDGET_MIB       size budget of the stick without images (default 64)
#          ZST              0 skips the .img.zst (tests; default 1)
# Outputs: $OUT/bty-usb-x86_64.img, $OUT/bty-usb-x86_64.img.zst, $OUT/SHA256SUMS (both)
# Host tools: the initramfs.sh tools, sgdisk (gdisk), mkfs.vfat (dosfstools), mtools, syslinux
#          (+ syslinux-common), grub-mkstandalone (grub-efi-amd64-bin), mkfs.exfat (exfatprogs),
#          mount.exfat-fuse (exfat-fuse) with /dev/fuse and losetup (only with IMAGES), zstd,
#          sha256sum.
#
# BTY_IMAGES is written without a kernel exFAT driver (build machines may have none): the
# empty filesystem is made by mkfs.exfat on a plain file, and the images are copied into it
# through exfat-fuse over /dev/fuse (on a loop device of that file), before the file is placed
# into the stick with dd.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
: "${BTY:?set BTY=/abs/path/to/static/bty}"
OUT=${OUT:-$here/../out/media}
CACHE=${BTY_MEDIA_CACHE:-/var/cache/bty-media}
IMAGES=${IMAGES:-}
BTY_IMAGES_SIZE=${BTY_IMAGES_SIZE:-}
CMDLINE_EXTRA=${CMDLINE_EXTRA:-}
BUDGET_MIB=${BUDGET_MIB:-64}
ZST=${ZST:-1}
mkdir -p "$OUT" "$CACHE"
OUT=$(cd "$OUT" && pwd); CACHE=$(cd "$CACHE" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/bty-usb.XXXXXX")
mnt=""; loopdev=""
cleanup() {
    if [ -n "$mnt" ]; then umount "$mnt" 2>/dev/null || true; fi
    if [ -n "$loopdev" ]; then losetup -d "$loopdev" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

mib() { # SIZE (bytes) → MiB, rounded up
    echo $((($1 + 1048575) / 1048576))
}
parse_size() { # 300, 300M, 2G → MiB
    case $1 in
        *[Gg]) echo $((${1%?} * 1024)) ;;
        *[Mm]) echo "${1%?}" ;;
        *[!0-9]*|'') echo "usb: BTY_IMAGES_SIZE=$1 is not a size (MiB, or with M/G)" >&2; exit 2 ;;
        *) echo "$1" ;;
    esac
}

# 1. Kernel + initramfs (the same parts as netboot, plus exFAT).
. "$here/initramfs.sh"
kernel_fetch
stage="$work/root"
stage_modules "$stage" "$here/netboot-modules.txt" "$here/usb-modules.txt"
stage_root "$stage" "$BTY"
pack_initrd "$stage" "$work/initrd"
cp "$KDIR/boot/vmlinuz-$KVER" "$work/vmlinuz"

# 2. The ESP: kernel, initrd, GRUB for UEFI, syslinux's files for BIOS (installed in step 5).
uuid=$(od -An -tx4 -N4 /dev/urandom | tr -d ' ')
fs_uuid=$(printf '%s' "$uuid" | tr a-f A-F | sed 's/^\(....\)/\1-/')
cmdline="console=tty0 console=ttyS0,115200 bty.mode=usb${CMDLINE_EXTRA:+ $CMDLINE_EXTRA}"
cat > "$work/embed.cfg" <<CFG
search --no-floppy --fs-uuid --set=root $fs_uuid
configfile (\$root)/boot/grub/grub.cfg
CFG
cat > "$work/grub.cfg" <<CFG
# bty USB stick, UEFI menu (BIOS: /syslinux/syslinux.cfg). Press e on an entry to edit it.
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=3
menuentry "bty: wizard on screen and serial console" {
    linux /bty/vmlinuz $cmdline
    initrd /bty/initrd
}
menuentry "bty: unattended flash (press e, set bty.auto=IMAGE or IMAGE@DISK-SERIAL)" {
    linux /bty/vmlinuz $cmdline bty.auto=IMAGE
    initrd /bty/initrd
}
CFG
cat > "$work/syslinux.cfg" <<CFG
# bty USB stick, legacy BIOS menu (UEFI: /boot/grub/grub.cfg). At the boot: prompt, type
#   bty bty.auto=IMAGE[@DISK-SERIAL]
# for an unattended flash.
SERIAL 0 115200
PROMPT 1
TIMEOUT 30
DEFAULT bty
SAY bty USB stick: Enter starts the wizard; "bty bty.auto=IMAGE[@SERIAL]" flashes unattended
LABEL bty
  LINUX /bty/vmlinuz
  INITRD /bty/initrd
  APPEND $cmdline
CFG
grub-mkstandalone -O x86_64-efi -o "$work/BOOTX64.EFI" --locales= --fonts= --themes= \
    --install-modules="part_gpt part_msdos fat search search_fs_uuid normal configfile linux serial terminal echo test" \
    --modules="part_gpt part_msdos fat search search_fs_uuid" "boot/grub/grub.cfg=$work/embed.cfg"

boot_bytes=$(cat "$work/vmlinuz" "$work/initrd" "$work/BOOTX64.EFI" | wc -c)
esp_mib=$(( $(mib "$boot_bytes") + 4 ))   # + room for syslinux and the FAT itself
truncate -s ${esp_mib}M "$work/esp.img"
mkfs.vfat -n BTY_BOOT -i "$uuid" -h 2048 "$work/esp.img" > /dev/null
mmd -i "$work/esp.img" ::/bty ::/EFI ::/EFI/BOOT ::/boot ::/boot/grub ::/syslinux
mcopy -i "$work/esp.img" "$work/vmlinuz" ::/bty/vmlinuz
mcopy -i "$work/esp.img" "$work/initrd" ::/bty/initrd
mcopy -i "$work/esp.img" "$work/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$work/esp.img" "$work/grub.cfg" ::/boot/grub/grub.cfg
mcopy -i "$work/esp.img" "$work/syslinux.cfg" ::/syslinux/syslinux.cfg

# 3. BTY_IMAGES: exFAT on a plain file; images copied in through exfat-fuse.
need=0
files=""
for src in $IMAGES; do
    if [ -d "$src" ]; then
        for f in "$src"/*; do [ -f "$f" ] && files="$files $f"; done
    elif [ -f "$src" ]; then
        files="$files $src"
    else
        echo "usb: IMAGES names $src, which is neither a file nor a directory" >&2; exit 2
    fi
done
for f in $files; do need=$((need + $(stat -L -c %s "$f"))); done
if [ -n "$BTY_IMAGES_SIZE" ]; then
    images_mib=$(parse_size "$BTY_IMAGES_SIZE")
elif [ -n "$files" ]; then
    images_mib=$(( $(mib "$need") + 16 ))
else
    images_mib=$((BUDGET_MIB - 1 - esp_mib - 1))   # 1 MiB before the ESP, 1 for the backup GPT
fi
[ "$images_mib" -ge 8 ] || { echo "usb: BTY_IMAGES would be ${images_mib} MiB; it needs at least 8" >&2; exit 2; }
truncate -s ${images_mib}M "$work/images.img"
mkfs.exfat -L BTY_IMAGES "$work/images.img" > /dev/null
if [ -n "$files" ]; then
    [ -c /dev/fuse ] || { echo "usb: IMAGES needs /dev/fuse (exfat-fuse writes BTY_IMAGES)" >&2; exit 1; }
    # exfat-fuse run as root asks FUSE for a block device ("blkdev"), so the file goes through a
    # loop device (no partition scanning needed: the file is the filesystem).
    loopdev=$(losetup -f --show "$work/images.img")
    mnt="$work/mnt"; mkdir -p "$mnt"
    mount.exfat-fuse -o rw "$loopdev" "$mnt" > /dev/null
    for f in $files; do
        echo "usb: preloading $(basename "$f") ($(stat -L -c %s "$f") bytes)"
        cp -L "$f" "$mnt/" || { echo "usb: BTY_IMAGES (${images_mib} MiB) is too small for IMAGES; set BTY_IMAGES_SIZE" >&2; exit 1; }
    done
    umount "$mnt"; mnt=""
    losetup -d "$loopdev"; loopdev=""
fi

# 4. The disk: GPT, ESP "legacy BIOS bootable" (gptmbr.bin boots it), BTY_IMAGES last.
img="$work/stick.img"
total_mib=$((1 + esp_mib + images_mib + 1))
truncate -s ${total_mib}M "$img"
sgdisk -Z -n 1:1M:+${esp_mib}M -t 1:ef00 -c 1:BTY_BOOT -A 1:set:2 \
    -n 2:0:+${images_mib}M -t 2:0700 -c 2:BTY_IMAGES "$img" > /dev/null
dd if="$work/esp.img" of="$img" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$work/images.img" of="$img" bs=1M seek=$((1 + esp_mib)) conv=notrunc,sparse status=none

# 5. Legacy BIOS: syslinux into the ESP in place (its boot sector learns the partition offset),
# gptmbr.bin into the MBR's 440 bytes of boot code (the partition table after it stays).
syslinux --install --offset 1048576 --directory /syslinux "$img"
dd if=/usr/lib/syslinux/mbr/gptmbr.bin of="$img" bs=440 count=1 conv=notrunc status=none

mv "$img" "$OUT/bty-usb-x86_64.img"
if [ "$ZST" = 1 ]; then
    zstd -q -f -T0 -19 "$OUT/bty-usb-x86_64.img" -o "$OUT/bty-usb-x86_64.img.zst"
    (cd "$OUT" && sha256sum bty-usb-x86_64.img bty-usb-x86_64.img.zst > SHA256SUMS)
else
    (cd "$OUT" && sha256sum bty-usb-x86_64.img > SHA256SUMS)
fi

size=$(stat -c %s "$OUT/bty-usb-x86_64.img")
echo "usb: $KVER, $MOD_COUNT modules, initrd $(stat -c %s "$work/initrd") bytes, ESP ${esp_mib} MiB, BTY_IMAGES ${images_mib} MiB, stick $size bytes"
if [ -z "$files" ] && [ "$size" -gt $((BUDGET_MIB * 1048576)) ]; then
    echo "usb: the stick without images is over its ${BUDGET_MIB} MiB budget" >&2
    exit 1
fi
