#!/usr/bin/env bash
# Installs the host packages and Rust targets the test suite and the media builds need.
# Idempotent and quiet when everything is present. Needs root (apt-get) on a fresh machine.
set -eu
packages=(
  musl-tools
  qemu-system-x86 ipxe ovmf
  dnsmasq-base iproute2 kmod cpio busybox-static
  tftp-hpa atftp tftpd-hpa
  nginx-light wrk docker-registry apache2-utils
  chromium chromium-driver
  mtools dosfstools gdisk e2fsprogs grub-efi-amd64-bin grub-pc-bin mmdebstrap
  syslinux syslinux-common exfatprogs exfat-fuse seabios
  zstd xz-utils bzip2 gzip qemu-utils curl
  tmux openssl
  binutils-aarch64-linux-gnu qemu-user-static qemu-system-arm
  buildah skopeo umoci jq ca-certificates
  mmdebstrap arch-test debian-archive-keyring fdisk python3-venv
)
find_missing() {
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
}
install_missing() {
  echo "deps: installing ${missing[*]}"
  # Packages such as tftpd-hpa and nginx would start system services on ports the tests use;
  # policy-rc.d tells Debian's maintainer scripts not to start anything.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
}
find_missing
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  install_missing
  # An install can remove a package that conflicts with it (a backported qemu-utils gives way
  # to qemu-system-x86 from the release): look again and put back what went.
  find_missing
  [ ${#missing[@]} -eq 0 ] || install_missing
fi
rustup target list --installed | grep -qx x86_64-unknown-linux-musl || rustup target add x86_64-unknown-linux-musl
rustup component list --installed | grep -q '^clippy' || rustup component add clippy rustfmt
rustup target list --installed | grep -qx aarch64-unknown-linux-musl || rustup target add aarch64-unknown-linux-musl
# make static-arm64 cross-links with zig (cargo-zigbuild): Debian's glibc cross gcc breaks sqlite
# under musl. Both tools live in the media cache so CI can keep them between runs.
tools=${BTY_MEDIA_CACHE:-/var/cache/bty-media}/tools
if [ ! -x "$tools/zig-venv/bin/python3" ] || ! "$tools/zig-venv/bin/python3" -m ziglang version >/dev/null 2>&1; then
  echo "deps: installing ziglang (PyPI) into $tools/zig-venv"
  mkdir -p "$tools"
  /usr/bin/python3 -m venv "$tools/zig-venv"
  "$tools/zig-venv/bin/pip" install -q ziglang
fi
if [ ! -x "$tools/bin/cargo-zigbuild" ]; then
  echo "deps: installing cargo-zigbuild (crates.io) into $tools"
  cargo install -q --locked --root "$tools" cargo-zigbuild
fi
