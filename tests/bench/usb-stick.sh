#!/bin/bash
# usb-stick.sh — the USB live stick's budget row: its size without images (out/media, from
# `make media-usb`; skipped without it) next to the Python bty's live ISO, and power-on to the
# wizard's prompt under OVMF (QEMU TCG) split into firmware + boot menu / kernel / init to tui.
# The boot is tests/media/usb.sh with STICK_MODES=uefi (one boot; it builds its own stick with
# the test image, which does not change the boot path); it needs the static bty.
#
# Reference: the Python bty's stick is `bty-usbboot-pc-x86_64-v<ver>.iso`, "uncompressed
# (~200 MiB)" (shared/reference/upstream-bty.md, a Debian live-build ISO with a squashfs root);
# it is not built here, so the ratio is against that figure.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
img=${IMAGE:-$root/out/media/bty-usb-x86_64.img}
if [ ! -e "$img" ]; then
    echo "usb-stick: $img missing (make media-usb); skipped"
    exit 0
fi
ref=$((200 * 1024 * 1024))
size=$(stat -c %s "$img")
printf '%-44s %s\n' "bty stick, no images (.img)" "$size bytes"
[ -e "$img.zst" ] && printf '%-44s %s\n' "bty stick, no images (.img.zst)" "$(stat -c %s "$img.zst") bytes"
printf '%-44s %s\n' "Python bty live ISO (reference, ~200 MiB)" "$ref bytes"
awk -v a="$size" -v b="$ref" 'BEGIN { printf "%-44s %.2f (bty / Python)\n", "size ratio", a / b }'
bty=${BTY:-$root/target/x86_64-unknown-linux-musl/release/bty}
[ -x "$bty" ] || { echo "usb-stick: $bty missing (make static); boot skipped"; exit 0; }
BTY=$bty STICK_MODES=uefi bash "$root/tests/media/usb.sh" | grep -E '^FIGURES' || echo "usb-stick: the boot gave no figures"
