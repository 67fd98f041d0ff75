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
#          $OUT/undionly.kpxe, $OUT/ipxe.efi, $OUT/snponly.efi, $OUT/ipxe-stick.efi (Debian
#          trixie's iPXE, for bty-web's boot stick), $OUT/SHA256SUMS
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

# 4b. The boot stick's iPXE (bty-web's Netboot page puts it on bty-boot-stick.img): it must
# run autoexec.ipxe from the stick, which bookworm's 2019 iPXE cannot; Debian trixie's
# (1.21.1+git2025) can. Fetched once with a private apt state in the cache (the host's apt
# sources stay as they are).
stick_ipxe() {
    apt_dir="$CACHE/apt-trixie"
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs"
    touch "$apt_dir/status"
    printf '%s\n' "Dir::Etc::sourcelist \"$apt_dir/sources.list\";" 'Dir::Etc::sourceparts "-";' \
        "Dir::State::Lists \"$apt_dir/lists\";" "Dir::Cache \"$apt_dir/cache\";" \
        "Dir::State::status \"$apt_dir/status\";" 'APT::Architecture "amd64";' \
        'APT::Sandbox::User "root";' > "$apt_dir/apt.conf"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" > "$apt_dir/sources.list"
    if ! ls "$apt_dir"/debs/ipxe_*.deb > /dev/null 2>&1; then
        APT_CONFIG="$apt_dir/apt.conf" apt-get update -q > /dev/null
        (cd "$apt_dir/debs" && APT_CONFIG="$apt_dir/apt.conf" apt-get download -q ipxe > /dev/null)
    fi
    deb=$(ls "$apt_dir"/debs/ipxe_*.deb | tail -n 1)
    x=$(mktemp -d "${TMPDIR:-/tmp}/bty-ipxe.XXXXXX")
    dpkg-deb -x "$deb" "$x"
    cp -L "$x/usr/lib/ipxe/ipxe.efi" "$OUT/ipxe-stick.efi"
    rm -rf "$x"
    grep -aq 'autoexec.ipxe' "$OUT/ipxe-stick.efi" || { echo "netboot: $deb's ipxe.efi has no autoexec.ipxe support" >&2; exit 1; }
}
stick_ipxe

(cd "$OUT" && sha256sum bty-netboot-x86_64.vmlinuz bty-netboot-x86_64.initrd undionly.kpxe ipxe.efi snponly.efi ipxe-stick.efi > SHA256SUMS)

# 5. The size budget (bty-media/README.md).
size=$(stat -c %s "$initrd")
budget=$((BUDGET_MIB * 1024 * 1024))
echo "netboot: $KVER, $count modules, initrd $size bytes (budget $budget), kernel $(stat -c %s "$OUT/bty-netboot-x86_64.vmlinuz") bytes"
if [ "$size" -gt "$budget" ]; then
    echo "netboot: initrd is over its ${BUDGET_MIB} MiB budget" >&2
    exit 1
fi
