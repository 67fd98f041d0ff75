//! A small disk image built with real tools, in every format bty reads, for the image tests.
//!
//! The disk is 6 MiB: a GPT made by `sgdisk` (an ESP named "EFI" at 1 MiB, a Linux filesystem
//! named "root" at 2 MiB), random data in both partitions, zeros elsewhere. It is compressed
//! by the real `zstd`, `gzip`, `xz` and `bzip2`, and converted by `qemu-img` into plain, zlib-
//! and zstd-compressed, version 2, extended-L2 and 512-byte-cluster qcow2 images.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The disk's size in bytes.
pub const DISK_SIZE: u64 = 6 << 20;

/// One stored form of the fixture disk.
pub struct Variant {
    /// File name inside the fixture directory.
    pub file: &'static str,
    /// The format `bty inspect` must report.
    pub format: &'static str,
    /// Whether the format records the virtual size.
    pub knows_size: bool,
}

/// Every stored form of the disk.
pub const VARIANTS: [Variant; 11] = [
    Variant { file: "disk.img", format: "raw", knows_size: true },
    Variant { file: "disk.img.zst", format: "zst", knows_size: true },
    Variant { file: "disk.img.gz", format: "gz", knows_size: false },
    Variant { file: "disk.img.xz", format: "xz", knows_size: true },
    Variant { file: "disk.img.bz2", format: "bz2", knows_size: false },
    Variant { file: "plain.qcow2", format: "qcow2", knows_size: true },
    Variant { file: "zlib.qcow2", format: "qcow2", knows_size: true },
    Variant { file: "zstd.qcow2", format: "qcow2", knows_size: true },
    Variant { file: "v2.qcow2", format: "qcow2", knows_size: true },
    Variant { file: "subclusters.qcow2", format: "qcow2", knows_size: true },
    Variant { file: "small-clusters.qcow2", format: "qcow2", knows_size: true },
];

/// Runs a shell command line in `dir`, panicking with its output on failure.
pub fn sh(dir: &Path, script: &str) {
    let out = Command::new("sh").arg("-ec").arg(script).current_dir(dir).output().expect("running sh");
    assert!(
        out.status.success(),
        "{script}\nfailed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds the fixture in `dir` (a fresh scratch directory) and returns the raw disk's path.
pub fn build(dir: &Path) -> PathBuf {
    sh(
        dir,
        "truncate -s 6M disk.img
         sgdisk -n1:2048:+1M -t1:ef00 -c1:EFI -n2:0:+3M -t2:8300 -c2:root disk.img >/dev/null
         head -c 700K /dev/urandom | dd of=disk.img bs=1K seek=1024 conv=notrunc status=none
         head -c 1M /dev/urandom | dd of=disk.img bs=1K seek=3072 conv=notrunc status=none
         # A compressible stretch, so compressed qcow2 clusters really are compressed.
         yes bty | head -c 300K | dd of=disk.img bs=1K seek=2048 conv=notrunc status=none
         zstd -q -k disk.img
         gzip -k disk.img
         xz -k disk.img
         bzip2 -k disk.img
         qemu-img convert -O qcow2 disk.img plain.qcow2
         qemu-img convert -c -O qcow2 disk.img zlib.qcow2
         qemu-img convert -c -O qcow2 -o compression_type=zstd disk.img zstd.qcow2
         qemu-img convert -O qcow2 -o compat=0.10 disk.img v2.qcow2
         qemu-img convert -O qcow2 -o extended_l2=on,cluster_size=128k disk.img subclusters.qcow2
         qemu-img convert -O qcow2 -o cluster_size=512 disk.img small-clusters.qcow2",
    );
    dir.join("disk.img")
}
