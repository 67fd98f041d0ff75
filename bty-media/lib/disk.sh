# disk.sh — disk assembly helpers for bty appliance images (sourced by the per-board scripts:
# server-x86.sh today, the Raspberry Pi SD image next). Filesystems are built as separate
# files and copied into the partitioned image, so nothing is mounted and no loop device is
# needed (the build host's kernel parses no partition tables and has no vfat).
#
# Functions (POSIX sh; each exits the script on error under set -e):
#   disk_ext4 DIR IMG MIB LABEL        ext4 of MIB MiB holding DIR's tree (owners kept)
#   disk_vfat IMG MIB LABEL [BITS]     empty FAT filesystem of MIB MiB (fill it with mtools);
#                                      BITS 12/16/32 forces the FAT type (default: mkfs picks)
#   disk_put IMG PART_IMG START_MIB    copies a filesystem file into IMG at START_MIB
#   disk_publish IMG OUTDIR NAME MAX_VIRT_MIB MAX_ZST_MIB
#                                      zstd-compresses IMG to OUTDIR/NAME, checks both budgets
#                                      (virtual and compressed size; fails above either) and
#                                      records NAME in OUTDIR/SHA256SUMS (other lines kept)
# Host tools: e2fsprogs (mke2fs -d), dosfstools, zstd, coreutils. ZSTD_LEVEL (default 12).

disk_ext4() {
    rm -f "$2"; truncate -s "$3M" "$2"
    # No reserved blocks (bty-web is not root and the disk is an appliance's), and a root
    # that first boot grows online: resize_inode is on by default.
    mke2fs -q -t ext4 -m 0 -L "$4" -d "$1" "$2"
}

disk_vfat() {
    rm -f "$1"; truncate -s "$2M" "$1"
    mkfs.vfat ${4:+-F "$4"} -n "$3" "$1" > /dev/null
}

disk_put() {
    dd if="$2" of="$1" bs=1M seek="$3" conv=notrunc,sparse status=none
}

disk_publish() {
    _img=$1; _out=$2; _name=$3; _maxv=$4; _maxz=$5
    mkdir -p "$_out"
    _virt=$(stat -c %s "$_img")
    if [ "$_virt" -gt $((_maxv * 1024 * 1024)) ]; then
        echo "disk: $_name: virtual size $_virt bytes is over its $_maxv MiB budget" >&2; return 1
    fi
    zstd -q -f -T0 "-${ZSTD_LEVEL:-12}" "$_img" -o "$_out/$_name.tmp"
    _z=$(stat -c %s "$_out/$_name.tmp")
    if [ "$_z" -gt $((_maxz * 1024 * 1024)) ]; then
        rm -f "$_out/$_name.tmp"
        echo "disk: $_name: compressed size $_z bytes is over its $_maxz MiB budget" >&2; return 1
    fi
    mv "$_out/$_name.tmp" "$_out/$_name"
    _sum=$(cd "$_out" && sha256sum "$_name")
    { grep -v "  $_name\$" "$_out/SHA256SUMS" 2>/dev/null || true; echo "$_sum"; } | LC_ALL=C sort -k2 > "$_out/SHA256SUMS.tmp"
    mv "$_out/SHA256SUMS.tmp" "$_out/SHA256SUMS"
    echo "disk: $_name: virtual $_virt bytes (budget $_maxv MiB), compressed $_z bytes (budget $_maxz MiB)"
}
