#!/bin/bash
# appliance.sh — the x86_64 server appliance: power-on to /healthz under QEMU TCG (first boot,
# SeaBIOS, with the split firmware+GRUB / kernel+initramfs / systemd to bty-web ready), and the
# image's sizes. Needs out/media/bty-server-x86_64.img.zst (make media-server-x86); skipped
# without it. The boot is tests/media/server-x86.sh in MODES=bench (one boot, nothing else).
#
# For comparison, the Python bty (reference: shared/reference/upstream-bty.md) ships no server
# disk image: its server is a set of containers (bty-web, withcache, nbdmux, a bty-tftp sidecar
# on debian:bookworm-slim) deployed by `bty-lab deploy` with podman/docker on a host the operator
# installs first. The reference gives neither their sizes nor their start-up time, so no ratio
# is printed; the appliance's figure includes the whole OS boot.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
img=${IMAGE:-$root/out/media/bty-server-x86_64.img.zst}
if [ ! -e "$img" ]; then
    echo "appliance: $img missing (make media-server-x86); skipped"
    exit 0
fi
virt=$(zstd -l -v "$img" 2>/dev/null | awk -F: '/Decompressed Size/ { print $2 }' | sed 's/^ *//')
printf '%-40s %s\n' "image, compressed" "$(stat -c %s "$img") bytes"
printf '%-40s %s\n' "image, virtual" "${virt:-?}"
IMAGE=$img MODES=bench bash "$root/tests/media/server-x86.sh" | grep -E 'power-on to /healthz'
