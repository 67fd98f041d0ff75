#!/bin/sh
# netboot.sh — builds the bty netboot kernel + initramfs and stages the iPXE boot loaders.
#
# Inputs:  BTY      absolute path of the static (musl) bty binary; becomes /init
#          OUT      output directory (default ../out/netboot)
#          CACHE    download/extract cache (default $BTY_MEDIA_CACHE, itself defaulting to
#                   /var/cache/bty-media); the kernel .deb is kept there so repeated builds
#                   do not download again
#          KPKG     Debian kernel package (default: what linux-image-amd64 depends on)
#          BUDGET_MIB  initrd size budget in MiB (default 30; the build fails above it)
# Outputs: $OUT/bty-netboot-x86_64.vmlinuz, $OUT/bty-netboot-x86_64.initrd (cpio newc, zstd),
#          $OUT/undionly.kpxe, $OUT/ipxe.efi, $OUT/snponly.efi, $OUT/SHA256SUMS
# Host tools: apt-get, apt-cache, dpkg-deb, depmod (kmod), cpio, zstd, busybox-static, ipxe,
#          sha256sum; root (for the /dev/console node in the archive).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
: "${BTY:?set BTY=/abs/path/to/static/bty}"
OUT=${OUT:-$here/../out/netboot}
CACHE=${CACHE:-${BTY_MEDIA_CACHE:-/var/cache/bty-media}}
BUDGET_MIB=${BUDGET_MIB:-30}

mkdir -p "$OUT" "$CACHE"
OUT=$(cd "$OUT" && pwd); CACHE=$(cd "$CACHE" && pwd)

# 1–3. The Debian kernel, the module set, the root (initramfs.sh, shared with usb.sh).
. "$here/initramfs.sh"
kernel_fetch
stage=$(mktemp -d "${TMPDIR:-/tmp}/bty-netboot.XXXXXX")
trap 'rm -rf "$stage"' EXIT
stage_modules "$stage" "$here/netboot-modules.txt"
count=$MOD_COUNT
stage_root "$stage" "$BTY"
initrd="$OUT/bty-netboot-x86_64.initrd"
pack_initrd "$stage" "$initrd"
cp "$KDIR/boot/vmlinuz-$KVER" "$OUT/bty-netboot-x86_64.vmlinuz"

# 4. iPXE boot loaders from Debian's ipxe package.
for f in undionly.kpxe ipxe.efi snponly.efi; do
    cp -L "/usr/lib/ipxe/$f" "$OUT/$f"
done

(cd "$OUT" && sha256sum bty-netboot-x86_64.vmlinuz bty-netboot-x86_64.initrd undionly.kpxe ipxe.efi snponly.efi > SHA256SUMS)

# 5. The size budget (bty-media/README.md).
size=$(stat -c %s "$initrd")
budget=$((BUDGET_MIB * 1024 * 1024))
echo "netboot: $KVER, $count modules, initrd $size bytes (budget $budget), kernel $(stat -c %s "$OUT/bty-netboot-x86_64.vmlinuz") bytes"
if [ "$size" -gt "$budget" ]; then
    echo "netboot: initrd is over its ${BUDGET_MIB} MiB budget" >&2
    exit 1
fi
