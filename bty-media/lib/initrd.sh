#!/bin/sh
# initrd.sh — the root tree's initrd, made once (mmdebstrap hooks of rootfs.sh). While packages
# install, update-initramfs is diverted to a no-op: otherwise the kernel's postinst (-c) and
# initramfs-tools' trigger (-u, fired by udev, kmod, ...) each run mkinitramfs, and under
# qemu-user (a foreign ARCH) every run costs many minutes of emulated shell. At the end the
# real update-initramfs makes the initrd once, for the finished tree: its installed kernels,
# the overlay's initramfs-tools config, the board's post-update hooks (raspi-firmware).
#
# Usage:   initrd.sh defer ROOT   (--essential-hook: before the kernel and initramfs-tools)
#          initrd.sh make ROOT    (--customize-hook: after customize.sh)
# Host tools: chroot (the tree's own dpkg-divert and update-initramfs; qemu-user if foreign).
set -eu
real=/usr/sbin/update-initramfs
kept=/usr/sbin/update-initramfs.bty-deferred
r=${2:?usage: initrd.sh defer|make ROOT}
case "$1" in
defer)
    # The package unpacks the real program under the diverted name; the stub stays ours.
    chroot "$r" dpkg-divert --quiet --local --rename --divert "$kept" --add "$real"
    printf '#!/bin/sh\n# bty rootfs.sh: the initrd is made once, at the end of the build (lib/initrd.sh)\nexit 0\n' \
        > "$r$real"
    chmod 0755 "$r$real"
    ;;
make)
    rm -f "$r$real"
    chroot "$r" dpkg-divert --quiet --local --rename --remove "$real"
    [ -x "$r$real" ] || { echo "initrd: $real is missing after the build (initramfs-tools not installed?)" >&2; exit 1; }
    chroot "$r" update-initramfs -c -k all
    ;;
*)
    echo "initrd: unknown step '$1' (defer or make)" >&2
    exit 2
    ;;
esac
