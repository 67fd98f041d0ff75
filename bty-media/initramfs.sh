#!/bin/sh
# initramfs.sh — the parts every bty initramfs shares, sourced by netboot.sh and usb.sh:
# the Debian kernel (downloaded and extracted once), the module set closed over modules.dep,
# and the root (static bty as /init, busybox, device nodes) packed as cpio newc + zstd.
#
# Functions (POSIX sh; the caller has `set -eu`, $here = bty-media/, and a writable $CACHE):
#   kernel_fetch                  sets KPKG, KVER, KDIR (extracted package), KMODS (its modules)
#   stage_modules STAGE LIST...   copies the modules named in the LIST files (plus their
#                                 dependencies) into STAGE/lib/modules/$KVER; sets MOD_COUNT
#   stage_root STAGE BTY          /init, busybox + sh, the udhcpc script, /dev nodes
#   pack_initrd STAGE OUT         writes the compressed archive to OUT
# Host tools: apt-get, apt-cache, dpkg-deb, depmod (kmod), cpio, zstd, busybox-static; root
# (for the /dev/console node in the archive).

kernel_fetch() {
    KPKG=${KPKG:-$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/{print $2; exit}')}
    [ -n "$KPKG" ] || { echo "initramfs: cannot resolve linux-image-amd64; run apt-get update" >&2; exit 1; }
    KVER=${KPKG#linux-image-}
    deb=$(ls "$CACHE"/"${KPKG}"_*.deb 2>/dev/null | head -n1 || true)
    if [ -z "$deb" ]; then
        echo "initramfs: downloading $KPKG"
        (cd "$CACHE" && apt-get download -q "$KPKG" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
        deb=$(ls "$CACHE"/"${KPKG}"_*.deb 2>/dev/null | head -n1 || true)
        [ -n "$deb" ] || { echo "initramfs: apt-get download $KPKG failed" >&2; exit 1; }
    fi
    KDIR="$CACHE/$KPKG"
    if [ ! -e "$KDIR/.extracted" ] || [ "$deb" -nt "$KDIR/.extracted" ]; then
        echo "initramfs: extracting $(basename "$deb")"
        rm -rf "$KDIR"; mkdir -p "$KDIR"
        dpkg-deb -x "$deb" "$KDIR"
        depmod -b "$KDIR" "$KVER"   # the .deb ships no modules.dep; we need it to close over deps
        touch "$KDIR/.extracted"
    fi
    KMODS="$KDIR/lib/modules/$KVER"
}

stage_modules() {
    _stage=$1; shift
    _paths=""; _missing=""
    for _name in $(cat "$@" | grep -v '^[[:space:]]*\(#\|$\)'); do
        # modules.dep names files; module names use _ where file names may use -.
        _pat=$(printf '%s' "$_name" | sed 's/[-_]/[-_]/g')
        _line=$(grep -m1 "/${_pat}\.ko[^:]*:" "$KMODS/modules.dep" || true)
        if [ -z "$_line" ]; then _missing="$_missing $_name"; continue; fi
        _paths="$_paths ${_line%%:*} ${_line#*:}"
    done
    [ -z "$_missing" ] || echo "initramfs: not in $KVER, skipped:$_missing"
    _mdir="$_stage/lib/modules/$KVER"
    mkdir -p "$_mdir"
    MOD_COUNT=0
    for _p in $(printf '%s\n' $_paths | sort -u); do
        mkdir -p "$_mdir/$(dirname "$_p")"
        cp "$KMODS/$_p" "$_mdir/$_p"
        MOD_COUNT=$((MOD_COUNT + 1))
    done
    # depmod over just the shipped modules writes a modules.alias/modules.dep that name nothing
    # else; the agent reads only those two text files.
    cp "$KMODS/modules.order" "$KMODS/modules.builtin" "$KMODS/modules.builtin.modinfo" "$_mdir/"
    depmod -b "$_stage" "$KVER"
    find "$_mdir" -maxdepth 1 -type f ! -name modules.alias ! -name modules.dep -delete
}

stage_root() {
    _stage=$1; _bty=$2
    [ -x "$_bty" ] || { echo "initramfs: $_bty is not an executable" >&2; exit 1; }
    [ "$(od -An -c -N4 "$_bty" | tr -d ' ')" = '177ELF' ] || { echo "initramfs: $_bty is not an ELF binary" >&2; exit 1; }
    mkdir -p "$_stage/bin" "$_stage/dev" "$_stage/proc" "$_stage/sys" "$_stage/run" "$_stage/tmp" \
        "$_stage/usr/share/udhcpc"
    cp "$_bty" "$_stage/init"
    cp /bin/busybox "$_stage/bin/busybox"
    ln -s busybox "$_stage/bin/sh"
    cp "$here/udhcpc.script" "$_stage/usr/share/udhcpc/default.script"
    mknod -m 600 "$_stage/dev/console" c 5 1
    mknod -m 666 "$_stage/dev/null" c 1 3
    chmod 755 "$_stage/init" "$_stage/usr/share/udhcpc/default.script"
}

pack_initrd() {
    (cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | zstd -19 -q -T0) > "$2.tmp"
    mv "$2.tmp" "$2"
}
