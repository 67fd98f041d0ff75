#!/bin/sh
# make-test-image.sh — builds the disk image the e2e test flashes: bootable under BIOS and UEFI,
# each printing a marker on COM1 so the test can see the machine boot the flashed disk.
#
# Usage:   make-test-image.sh OUT SIZE_MIB [RANDOM_MIB]
# Inputs:  OUT (image path), SIZE_MIB (whole image), RANDOM_MIB (random bytes after the ESP,
#          default 1, so the written-disk hash really depends on the data)
# Outputs: OUT, a raw disk image: GPT (protective MBR carrying BIOS boot code) with one ESP
#          (FAT) holding EFI/BOOT/BOOTX64.EFI
# Host tools: sgdisk (gdisk), mkfs.vfat (dosfstools), mmd/mcopy (mtools), grub-mkimage
#          (grub-efi-amd64-bin), dd, printf.
#
# BIOS: SeaBIOS (or iPXE's `sanboot 0x80`) runs the 440-byte boot code of sector 0. The code is
# written below as bytes; in 16-bit assembly it is:
#     cli; xor ax,ax; mov ds,ax          ; FA 31C0 8ED8
#     mov si,0x7c16                      ; BE 167C   (msg, 22 bytes into the sector)
#     mov dx,0x3f8                       ; BA F803   (COM1 data port)
#   l: lodsb; test al,al; jz h           ; AC 84C0 7403
#     out dx,al; jmp l                   ; EE EBF8
#   h: hlt; jmp h                        ; F4 EBFD
#   msg: "BTY-DISK-BOOTED\r\n\0"
# UEFI: OVMF boots the removable-media path EFI/BOOT/BOOTX64.EFI from the ESP: a GRUB core
# image (a few hundred KB) whose embedded config prints the same marker on the serial port
# and powers the machine off.
set -eu
out=$1; size_mib=$2; random_mib=${3:-1}
work=$(mktemp -d "${TMPDIR:-/tmp}/bty-testimg.XXXXXX")
trap 'rm -rf "$work"' EXIT

cat > "$work/embed.cfg" <<'CFG'
serial --unit=0 --speed=115200
terminal_output serial
echo BTY-DISK-BOOTED
halt
CFG
grub-mkimage -O x86_64-efi -o "$work/BOOTX64.EFI" -p /EFI/BOOT -c "$work/embed.cfg" echo serial terminal halt

esp_mib=8
truncate -s ${esp_mib}M "$work/esp.img"
mkfs.vfat -n BTYTEST "$work/esp.img" >/dev/null
mmd -i "$work/esp.img" ::/EFI ::/EFI/BOOT
mcopy -i "$work/esp.img" "$work/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI

rm -f "$out"
truncate -s ${size_mib}M "$out"
sgdisk -n 1:1M:+${esp_mib}M -t 1:ef00 -c 1:ESP "$out" >/dev/null
dd if="$work/esp.img" of="$out" bs=1M seek=1 conv=notrunc status=none
if [ "$random_mib" -gt 0 ]; then
    dd if=/dev/urandom of="$out" bs=1M seek=$((1 + esp_mib)) count="$random_mib" conv=notrunc status=none
fi
# The boot code goes into the first 440 bytes only: the partition table at 446 and the 0x55AA
# signature that sgdisk wrote stay as they are.
printf '\372\061\300\216\330\276\026\174\272\370\003\254\204\300\164\003\356\353\370\364\353\375BTY-DISK-BOOTED\r\n\000' \
    | dd of="$out" bs=1 conv=notrunc status=none
