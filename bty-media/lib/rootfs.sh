#!/bin/sh
# rootfs.sh — the appliance root filesystem, shared by every bty server image (x86_64 GPT disk,
# Raspberry Pi SD card): minimal Debian (mmdebstrap) + rootfs-overlay/ + the static bty under
# systemd + first-boot, as a directory tree ready for `mke2fs -d`. Architecture is a parameter.
#
# Inputs (environment):
#   ARCH       Debian architecture: amd64 | arm64 (required)
#   BTY        absolute path of the static bty for ARCH (required); /usr/local/bin/bty
#   ROOTFS     output directory (required; replaced)
#   PACKAGES   extra packages for this board (kernel, boot loader bits), space separated
#   NETBOOT    directory with bty-netboot-*.vmlinuz/.initrd + iPXE loaders to preinstall into
#              bty-web's boot dir (optional; the netboot artifacts are x86_64 only today)
#   COMPONENTS archive components (default main; the Pi image adds non-free-firmware)
#   BACKPORTS  packages taken from SUITE-backports (e.g. a newer kernel), space separated;
#              the image keeps the apt pin, so upgrades follow backports for those packages
#   SUITE      Debian suite (default bookworm)
#   MIRROR     Debian mirror (default http://deb.debian.org/debian)
#   BTY_MEDIA_CACHE  download cache (default /var/cache/bty-media): .debs and apt lists per
#              ARCH+SUITE are kept there, so a rebuild downloads nothing (REFRESH=1 re-fetches
#              the package lists, e.g. for security updates)
# Outputs: $ROOTFS (owned by root, uid/gid as in the image)
# Host tools: mmdebstrap, root (mmdebstrap's root mode; no loop devices, no mounts of ours),
#          qemu-user-static + binfmt for a foreign ARCH.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
: "${ARCH:?set ARCH=amd64|arm64}" "${BTY:?set BTY=/abs/path/to/static/bty}" "${ROOTFS:?set ROOTFS=/abs/dir}"
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
BTY_MEDIA_CACHE=${BTY_MEDIA_CACHE:-/var/cache/bty-media}
PACKAGES=${PACKAGES:-}
NETBOOT=${NETBOOT:-}
REFRESH=${REFRESH:-0}
COMPONENTS=${COMPONENTS:-main}
BACKPORTS=${BACKPORTS:-}
[ -x "$BTY" ] || { echo "rootfs: $BTY is not an executable" >&2; exit 1; }

# What every appliance runs. Nothing of Python: bty-web is the one static binary; growing the
# root partition uses sfdisk + resize2fs from first-boot (cloud-guest-utils would pull python3).
BASE="systemd-sysv udev dbus kmod iproute2 systemd-resolved systemd-timesyncd
  openssh-server dnsmasq-base fdisk e2fsprogs dosfstools zstd initramfs-tools
  ca-certificates less procps"

cache="$BTY_MEDIA_CACHE/debian-$SUITE-$ARCH"
mkdir -p "$cache/archives" "$cache/lists"
# Package lists from a previous build let us skip `apt-get update` (no download at all); the
# .debs are copied in before apt looks for them and copied back out afterwards.
skip_update=""
if [ "$REFRESH" != 1 ] && ls "$cache/lists/"*_Packages >/dev/null 2>&1; then
    skip_update="--skip=update"
else
    rm -f "$cache/lists/"*_* 2>/dev/null || true
fi

rm -rf "$ROOTFS"
mkdir -p "$(dirname "$ROOTFS")"
# Backports: their source and an apt pin for just those packages, both kept in the image.
set --
if [ -n "$BACKPORTS" ]; then
    extra=$(mktemp -d)
    trap 'rm -rf "$extra"' EXIT
    echo "deb $MIRROR $SUITE-backports $COMPONENTS" > "$extra/backports.list"
    printf 'Package: %s\nPin: release n=%s-backports\nPin-Priority: 990\n' "$BACKPORTS" "$SUITE" > "$extra/pin"
    set -- --setup-hook='mkdir -p "$1/etc/apt/preferences.d" "$1/etc/apt/sources.list.d"' \
        --setup-hook="upload '$extra/backports.list' /etc/apt/sources.list.d/backports.list" \
        --setup-hook="upload '$extra/pin' /etc/apt/preferences.d/bty-backports"
fi
echo "rootfs: mmdebstrap $SUITE $ARCH into $ROOTFS (cache $cache${skip_update:+, lists cached})"
# path-exclude keeps documentation, translations and kernel drivers no server needs (sound,
# graphics, wireless, media) out of the image; the packages stay installed and intact.
# shellcheck disable=SC2086
mmdebstrap --variant=minbase --skip=essential/unlink --architectures="$ARCH" --mode=root --format=directory \
    --include="$(echo $BASE $PACKAGES | tr ' ' ',')" \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/lib/modules/*/kernel/sound/*' \
    --dpkgopt='path-exclude=/lib/modules/*/kernel/drivers/gpu/*' \
    --dpkgopt='path-exclude=/lib/modules/*/kernel/drivers/media/*' \
    --dpkgopt='path-exclude=/lib/modules/*/kernel/drivers/net/wireless/*' \
    --dpkgopt='path-exclude=/lib/modules/*/kernel/drivers/infiniband/*' \
    --dpkgopt='path-exclude=/lib/modules/*/kernel/drivers/bluetooth/*' \
    --dpkgopt='path-exclude=/lib/modules/*/kernel/net/wireless/*' \
    --dpkgopt='path-exclude=/lib/modules/*/kernel/net/mac80211/*' \
    --dpkgopt='path-exclude=/lib/modules/*/kernel/drivers/staging/*' \
    --dpkgopt='path-exclude=/lib/modules/*/kernel/drivers/isdn/*' \
    $skip_update \
    --dpkgopt='force-unsafe-io' \
    --setup-hook='mkdir -p "$1/var/cache/apt/archives" "$1/var/lib/apt/lists"' \
    "$@" \
    --essential-hook="sh '$here/initrd.sh' defer \"\$1\"" \
    --setup-hook="sync-in '$cache/archives' /var/cache/apt/archives" \
    --setup-hook="sync-in '$cache/lists' /var/lib/apt/lists" \
    --customize-hook="sync-out /var/cache/apt/archives '$cache/archives'" \
    --customize-hook="sync-out /var/lib/apt/lists '$cache/lists'" \
    --customize-hook="BTY='$BTY' NETBOOT='$NETBOOT' OVERLAY='$top/rootfs-overlay' sh '$here/customize.sh' \"\$1\"" \
    --customize-hook="sh '$here/initrd.sh' make \"\$1\"" \
    "$SUITE" "$ROOTFS" "deb $MIRROR $SUITE $COMPONENTS" "deb $MIRROR $SUITE-updates $COMPONENTS" \
    "deb ${MIRROR%/debian}/debian-security $SUITE-security $COMPONENTS"
rm -f "$cache/archives/lock" "$cache/lists/lock"
rm -rf "$cache/archives/partial" "$cache/lists/partial"
echo "rootfs: $(du -sm "$ROOTFS" | cut -f1) MiB in $ROOTFS"
