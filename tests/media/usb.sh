#!/bin/bash
# usb.sh — `make media-usb-test`: builds a USB stick preloaded with the e2e test image and a
# truncated image, then boots it under QEMU (tests/media/usb_stick.py says what each boot checks).
#
# Inputs:  BTY (static bty, default target/x86_64-unknown-linux-musl/release/bty), KEEP=1 keeps
#          the work dir, STICK_MODES (default "uefi bios ambiguous"), BOOT_TIMEOUT (s).
# Outputs: PASS/FAIL lines and FIGURES (power-on to the wizard); exit 0 when all passed.
# Host tools: those of bty-media/usb.sh and tests/e2e/make-test-image.sh, qemu-system-x86_64,
#          ovmf, python3. Root (exfat-fuse, mknod).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BTY=${BTY:-$root/target/x86_64-unknown-linux-musl/release/bty}
KEEP=${KEEP:-0}
work=$(mktemp -d /tmp/bty-usb-test.XXXXXX)
cleanup() {
    local rc=$?
    if [ "$KEEP" = 1 ] || [ $rc -ne 0 ]; then
        echo "usb-test: logs kept in $work"; rm -f "$work"/*.img "$work"/images/*
    else
        rm -rf "$work"
    fi
    exit $rc
}
trap cleanup EXIT

mkdir -p "$work/images"
sh "$root/tests/e2e/make-test-image.sh" "$work/images/test-disk.img" 32 4
# A truncated zstd stream: the decoder must fail and the target must not be reported good.
zstd -q -1 "$work/images/test-disk.img" -o "$work/full.zst"
head -c $(( $(stat -c %s "$work/full.zst") / 2 )) "$work/full.zst" > "$work/images/broken.img.zst"
# A catalog on the stick: its entries are listed next to the local images.
cat > "$work/images/catalog.toml" <<'TOML'
version = 1
[[images]]
name = "from-catalog.img.zst"
src = "http://192.0.2.1/from-catalog.img.zst"
TOML
BTY="$BTY" OUT="$work/out" ZST=0 IMAGES="$work/images" sh "$root/bty-media/usb.sh"
python3 "$here/usb_stick.py" "$work/out/bty-usb-x86_64.img" "$work/images/test-disk.img" "$work"
