#!/usr/bin/env python3
"""Writes a disk-like benchmark image: SIZE_MIB of zeros (a sparse file) with about 30% random
data in scattered runs of 16 KiB to 4 MiB. Seeded, so every run and every benchmark sees the
same layout. Usage: disk-image.py SIZE_MIB PATH"""
import os
import random
import sys

size = int(sys.argv[1]) << 20
random.seed(7)
with open(sys.argv[2], "wb") as f:
    f.truncate(size)
    data = 0
    while data < size * 0.3:
        at = random.randrange(0, size - (4 << 20)) // 4096 * 4096
        n = random.choice([16 << 10, 256 << 10, 1 << 20, 4 << 20])
        f.seek(at)
        f.write(os.urandom(n))
        data += n
