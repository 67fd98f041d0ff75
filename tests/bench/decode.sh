#!/bin/sh
# Decoder throughput: bty's native decoders against the tools a user would otherwise use.
#
# Task per format: "give me the sha256 of the disk inside this image". bty does it in one
# process (`bty inspect --decoded-hash`); the tool side decompresses and pipes into sha256sum
# (qcow2: qemu-img convert to tmpfs, then sha256sum). The hashing floor of both sides is
# printed first, so the decoder cost can be read off.
#
# Inputs (environment): BTY (default target/release/bty), SIZE_MB (default 1024), WORK (default
#   a fresh directory under /var/tmp, removed at the end), TMPFS (default /dev/shm), FORMATS
#   (default "zst gz xz bz2 qcow2 zlib.qcow2 zstd.qcow2": which stored forms to measure).
# Outputs: one line per format: seconds for bty, seconds for the tool, and tool/bty (> 1 means
#   bty is faster), plus MB/s of decoded bytes for bty.
# Tools: zstd, gzip, pigz (optional, to compress faster), xz, bzip2, qemu-img, sha256sum, dd.
set -eu

BTY=${BTY:-target/release/bty}
SIZE_MB=${SIZE_MB:-1024}
TMPFS=${TMPFS:-/dev/shm}
BTY=$(realpath "$BTY")
own_work=0
if [ -z "${WORK:-}" ]; then
  WORK=$(mktemp -d /var/tmp/bty-bench-decode.XXXXXX)
  own_work=1
fi
cleanup() {
  rm -f "$TMPFS/bty-bench-decode.raw"
  if [ "$own_work" = 1 ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT INT TERM
cd "$WORK"

# A disk-like image: 30% random (incompressible), 30% text (compressible), 40% zeros.
if [ ! -f disk.img ]; then
  truncate -s "${SIZE_MB}M" disk.img
  step=$((SIZE_MB / 10))
  i=0
  while [ $i -lt 10 ]; do
    case $i in
      0|3|6) head -c "${step}M" /dev/urandom | dd of=disk.img bs=1M seek=$((i * step)) conv=notrunc status=none ;;
      1|4|7) yes "bty decode benchmark line $i" | head -c "${step}M" |
               dd of=disk.img bs=1M seek=$((i * step)) conv=notrunc status=none ;;
    esac
    i=$((i + 1))
  done
fi
FORMATS=${FORMATS:-zst gz xz bz2 qcow2 zlib.qcow2 zstd.qcow2}
gz=gzip; command -v pigz >/dev/null && gz=pigz
files=
for f in $FORMATS; do
  case $f in
    zst) [ -f disk.img.zst ] || zstd -q -T0 -k disk.img ;;
    gz) [ -f disk.img.gz ] || $gz -k disk.img ;;
    xz) [ -f disk.img.xz ] || xz -T0 -3 -k disk.img ;;
    bz2) [ -f disk.img.bz2 ] || bzip2 -k disk.img ;;
    qcow2) [ -f plain.qcow2 ] || qemu-img convert -O qcow2 disk.img plain.qcow2 ;;
    zlib.qcow2) [ -f zlib.qcow2 ] || qemu-img convert -c -O qcow2 disk.img zlib.qcow2 ;;
    zstd.qcow2) [ -f zstd.qcow2 ] || qemu-img convert -c -O qcow2 -o compression_type=zstd disk.img zstd.qcow2 ;;
    *) echo "unknown format $f" >&2; exit 2 ;;
  esac
  case $f in
    qcow2) files="$files plain.qcow2" ;;
    *.qcow2) files="$files $f" ;;
    *) files="$files disk.img.$f" ;;
  esac
done
want=$(sha256sum disk.img | cut -d' ' -f1)

# seconds COMMAND...: wall time of a shell command line, to the millisecond.
seconds() {
  start=$(date +%s.%N)
  sh -c "$1" >/dev/null
  end=$(date +%s.%N)
  echo "$start $end" | awk '{ printf "%.3f", $2 - $1 }'
}

check() {
  got=$("$BTY" inspect --json --decoded-hash "$1" | sed -n 's/.*"decoded_sha256": "\([0-9a-f]*\)".*/\1/p')
  [ "$got" = "$want" ] || { echo "decode of $1 gave $got, want $want" >&2; exit 1; }
}

echo "image: ${SIZE_MB} MiB (30% random, 30% text, 40% zeros) in $WORK"
t_b=$(seconds "'$BTY' inspect --hash disk.img")
t_t=$(seconds "sha256sum disk.img")
echo "hash floor        bty --hash ${t_b}s   sha256sum ${t_t}s"
printf '%-20s %6s %10s %10s %10s  %s\n' format bty_s tool_s tool/bty bty_MB/s tool
for f in $files; do
  check "$f"
  case $f in
    *.zst) tool="zstd -dc $f | sha256sum" ;;
    *.gz) tool="gzip -dc $f | sha256sum" ;;
    *.xz) tool="xz -dc $f | sha256sum" ;;
    *.bz2) tool="bzip2 -dc $f | sha256sum" ;;
    *.qcow2) tool="qemu-img convert -O raw $f $TMPFS/bty-bench-decode.raw && sha256sum $TMPFS/bty-bench-decode.raw" ;;
  esac
  t_b=$(seconds "'$BTY' inspect --decoded-hash $f")
  t_t=$(seconds "$tool")
  rm -f "$TMPFS/bty-bench-decode.raw"
  echo "$f $t_b $t_t $SIZE_MB" | awk -v tool="$tool" \
    '{ printf "%-20s %6.2f %10.2f %10.2f %10.0f  %s\n", $1, $2, $3, $3 / $2, $4 * 1.048576 / $2, tool }'
done
