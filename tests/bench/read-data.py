#!/usr/bin/env python3
"""Reads, with O_DIRECT, the bytes of TARGET that lie under IMAGE's data extents, once.

Purpose: the floor of `bty flash --delta` onto an unchanged target. Delta cannot finish before
the target's data has been read once, so this time, set beside a full flash, says what the
delta budget (0.5x a full flash) asks of the disk: reads at least twice as fast as writes.
Inputs: IMAGE (a sparse raw file; its holes are found with SEEK_DATA/SEEK_HOLE), TARGET (a
block device or file holding the image). Reads in pieces cut at 8 MiB boundaries, as bty's
chunks are. Output: nothing; exit 0.
"""
import mmap
import os
import sys

CHUNK = 8 << 20


def data_extents(path):
    fd = os.open(path, os.O_RDONLY)
    size, at = os.fstat(fd).st_size, 0
    while at < size:
        try:
            data = os.lseek(fd, at, os.SEEK_DATA)
        except OSError:  # ENXIO: no data after `at`
            break
        hole = os.lseek(fd, data, os.SEEK_HOLE)
        yield data, hole
        at = hole
    os.close(fd)


def main(image, target):
    fd = os.open(target, os.O_RDONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, CHUNK)  # page-aligned, as O_DIRECT wants
    for start, end in data_extents(image):
        at = start // 4096 * 4096
        while at < end:
            n = min(end, (at // CHUNK + 1) * CHUNK) - at
            n = (n + 4095) // 4096 * 4096
            os.preadv(fd, [memoryview(buf)[:n]], at)
            at += n
    os.close(fd)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
