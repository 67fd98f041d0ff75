#!/bin/sh
# customize.sh — mmdebstrap customize hook of rootfs.sh: puts bty, rootfs-overlay/ and the
# first-boot state into the root tree. Runs on the build host with the tree as $1.
#
# Inputs:  $1 root tree; BTY (static bty for the tree's arch), OVERLAY (rootfs-overlay/),
#          NETBOOT (optional dir of netboot artifacts to preinstall into bty-web's boot dir)
# Host tools: chroot (the tree's own useradd, passwd, systemctl; qemu-user for a foreign arch).
set -eu
r=$1
: "${BTY:?}" "${OVERLAY:?}"

install -D -m 0755 "$BTY" "$r/usr/local/bin/bty"
chroot "$r" /usr/local/bin/bty --install /usr/local/bin > /dev/null

# The overlay: systemd units, first-boot, bty.toml, banner, network, sshd policy.
(cd "$OVERLAY" && find . -mindepth 1 ! -name README.md | LC_ALL=C sort | cpio -pdm --quiet "$r")

# bty-web runs as its own system user, never root (the unit says User=bty).
chroot "$r" useradd --system --home-dir /var/lib/bty --no-create-home --shell /usr/sbin/nologin bty
install -d -m 0700 "$r/var/lib/bty"
install -d -m 0755 "$r/var/lib/bty/boot" "$r/var/lib/bty/proxy-dhcp"
if [ -n "${NETBOOT:-}" ]; then
    # Netboot ready out of the box: the first PXE client needs no upload, and the Netboot
    # page offers the boot stick (ipxe-stick.efi).
    for f in "$NETBOOT"/bty-netboot-* "$NETBOOT"/undionly.kpxe "$NETBOOT"/ipxe.efi "$NETBOOT"/snponly.efi \
             "$NETBOOT"/ipxe-stick.efi; do
        [ -e "$f" ] || { echo "customize: $f is missing; run 'make netboot' first" >&2; exit 1; }
        install -m 0644 "$f" "$r/var/lib/bty/boot/"
    done
fi
chroot "$r" chown -R bty:bty /var/lib/bty

# Nothing unique may ship: no SSH host keys (first-boot makes them), an empty machine-id
# (systemd makes one on first boot), a placeholder hostname (first-boot: bty-XXXX from the MAC).
rm -f "$r"/etc/ssh/ssh_host_*
: > "$r/etc/machine-id"
rm -f "$r/var/lib/dbus/machine-id"
echo bty > "$r/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$r/etc/hosts"

# root: no password and forced to choose one at the first console login; sshd refuses
# passwords altogether (etc/ssh/sshd_config.d/bty.conf), so the console is the only way in
# without a key. first-boot installs authorized_keys from the boot partition if present.
chroot "$r" passwd -d root > /dev/null
chroot "$r" chage -d 0 root

ln -sf ../run/systemd/resolve/stub-resolv.conf "$r/etc/resolv.conf"
chroot "$r" systemctl enable --quiet systemd-networkd systemd-resolved bty-firstboot.service \
    bty-web.service bty-banner.service bty-proxy-dhcp.path bty-proxy-dhcp.service
