# binfmt.sh — lets this x86_64 host run another architecture's programs (sourced by the image
# scripts whose root filesystem is foreign: mmdebstrap's maintainer scripts, chroot). Mounts
# binfmt_misc if needed and registers qemu-user-static's handler from its binfmt.d file, with
# the F flag, so a chroot needs no interpreter of its own. Registering is machine-wide and
# harmless to others; an existing registration is left alone.
#
# Functions: binfmt_enable QEMU_ARCH (e.g. aarch64)
# Host tools: qemu-user-static, root.

binfmt_enable() {
    _bm=/proc/sys/fs/binfmt_misc
    [ -e "$_bm/qemu-$1" ] && return 0
    [ -e "$_bm/register" ] || mount -t binfmt_misc binfmt_misc "$_bm"
    _conf=/usr/lib/binfmt.d/qemu-$1.conf
    [ -f "$_conf" ] || { echo "binfmt: $_conf is missing; apt-get install qemu-user-static" >&2; return 1; }
    # A second writer racing us gets EEXIST; what counts is that the handler is there after.
    grep -v '^#' "$_conf" > "$_bm/register" 2>/dev/null || true
    [ -e "$_bm/qemu-$1" ] || { echo "binfmt: could not register qemu-$1" >&2; return 1; }
}
