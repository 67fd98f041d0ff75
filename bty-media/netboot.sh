#!/bin/sh
# netboot.sh — builds the bty netboot kernel + initramfs and stages the iPXE boot loaders.
#
# Inputs:  BTY      absolute path of the static (musl) bty binary; becomes /init
#          OUT      output directory (default ../out/netboot)
#          CACHE    download/extract cache (default $BTY_MEDIA_CACHE/netboot, BTY_MEDIA_CACHE
#                   defaulting to /var/cache/bty-media); the kernel .deb is kept there so
#                   repeated builds do not download again
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
CACHE=${CACHE:-${BTY_MEDIA_CACHE:-/var/cache/bty-media}/netboot}
BUDGET_MIB=${BUDGET_MIB:-30}
[ -x "$BTY" ] || { echo "netboot: $BTY is not an executable" >&2; exit 1; }
file_type=$(od -An -c -N4 "$BTY" | tr -d ' ')
[ "$file_type" = '177ELF' ] || { echo "netboot: $BTY is not an ELF binary" >&2; exit 1; }

mkdir -p "$OUT" "$CACHE"
OUT=$(cd "$OUT" && pwd); CACHE=$(cd "$CACHE" && pwd)

# 1. The Debian kernel package, downloaded once and extracted once.
KPKG=${KPKG:-$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/{print $2; exit}')}
[ -n "$KPKG" ] || { echo "netboot: cannot resolve linux-image-amd64; run apt-get update" >&2; exit 1; }
KVER=${KPKG#linux-image-}
deb=$(ls "$CACHE"/"${KPKG}"_*.deb 2>/dev/null | head -n1 || true)
if [ -z "$deb" ]; then
    echo "netboot: downloading $KPKG"
    (cd "$CACHE" && apt-get download -q "$KPKG" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
    deb=$(ls "$CACHE"/"${KPKG}"_*.deb 2>/dev/null | head -n1 || true)
    [ -n "$deb" ] || { echo "netboot: apt-get download $KPKG failed" >&2; exit 1; }
fi
kx="$CACHE/$KPKG"
if [ ! -e "$kx/.extracted" ] || [ "$deb" -nt "$kx/.extracted" ]; then
    echo "netboot: extracting $(basename "$deb")"
    rm -rf "$kx"; mkdir -p "$kx"
    dpkg-deb -x "$deb" "$kx"
    depmod -b "$kx" "$KVER"   # the .deb ships no modules.dep; we need it to close over deps
    touch "$kx/.extracted"
fi
kmods="$kx/lib/modules/$KVER"

# 2. The module set: the wanted list closed over modules.dep.
stage=$(mktemp -d "${TMPDIR:-/tmp}/bty-netboot.XXXXXX")
trap 'rm -rf "$stage"' EXIT
wanted="$stage.wanted"; trap 'rm -rf "$stage" "$wanted"' EXIT
grep -v '^[[:space:]]*\(#\|$\)' "$here/netboot-modules.txt" > "$wanted"
missing=""
paths=""
while read -r name; do
    # modules.dep names files; module names use _ where file names may use -.
    pat=$(printf '%s' "$name" | sed 's/[-_]/[-_]/g')
    line=$(grep -m1 "/${pat}\.ko[^:]*:" "$kmods/modules.dep" || true)
    if [ -z "$line" ]; then missing="$missing $name"; continue; fi
    paths="$paths ${line%%:*} ${line#*:}"
done < "$wanted"
[ -z "$missing" ] || echo "netboot: not in $KVER, skipped:$missing"
mdir="$stage/lib/modules/$KVER"
mkdir -p "$mdir"
count=0
for p in $(printf '%s\n' $paths | sort -u); do
    mkdir -p "$mdir/$(dirname "$p")"
    cp "$kmods/$p" "$mdir/$p"
    count=$((count + 1))
done
# depmod over just the shipped modules writes a modules.alias/modules.dep that name nothing
# else; the agent reads only those two text files.
cp "$kmods/modules.order" "$kmods/modules.builtin" "$kmods/modules.builtin.modinfo" "$mdir/"
depmod -b "$stage" "$KVER"
find "$mdir" -maxdepth 1 -type f ! -name modules.alias ! -name modules.dep -delete

# 3. The rest of the root: /init, busybox (DHCP fallback and rescue shell), device nodes.
mkdir -p "$stage/bin" "$stage/dev" "$stage/proc" "$stage/sys" "$stage/run" "$stage/tmp" "$stage/usr/share/udhcpc"
cp "$BTY" "$stage/init"
cp /bin/busybox "$stage/bin/busybox"
ln -s busybox "$stage/bin/sh"
cp "$here/udhcpc.script" "$stage/usr/share/udhcpc/default.script"
mknod -m 600 "$stage/dev/console" c 5 1
mknod -m 666 "$stage/dev/null" c 1 3
chmod 755 "$stage/init" "$stage/usr/share/udhcpc/default.script"

initrd="$OUT/bty-netboot-x86_64.initrd"
(cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | zstd -19 -q -T0) > "$initrd.tmp"
mv "$initrd.tmp" "$initrd"
cp "$kx/boot/vmlinuz-$KVER" "$OUT/bty-netboot-x86_64.vmlinuz"

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
