//! Block-device ioctls the flash engine and disk discovery need, each a thin safe wrapper named
//! after the ioctl it issues (see `ioctl(2)` and `<linux/fs.h>`).
//!
//! Every wrapper takes any descriptor; on a file that is not a block device the kernel answers
//! `ENOTTY`, which callers treat as "not a block device". This module does not decide when to
//! call them; that is the engine's business.

use rustix::fd::AsFd;
use rustix::ioctl::{ioctl, opcode, Getter, NoArg, Setter};
use std::io;

/// The `ioctl` group of the block layer (`0x12` in `<linux/fs.h>`).
const BLK: u8 = 0x12;

/// `ioctl(fd, BLKGETSIZE64)`: the device size in bytes. See `ioctl(2)` and `<linux/fs.h>`.
pub fn blkgetsize64(fd: impl AsFd) -> io::Result<u64> {
    // BLKGETSIZE64 is declared as _IOR(0x12, 114, size_t) and writes a u64.
    const OP: rustix::ioctl::Opcode = opcode::read::<usize>(BLK, 114);
    // SAFETY: the kernel writes exactly one u64 into the Getter's output slot.
    Ok(unsafe { ioctl(fd, Getter::<OP, u64>::new()) }?)
}

/// `ioctl(fd, BLKSSZGET)`: the logical sector size. See `ioctl(2)`, `open(2)` (O_DIRECT).
pub fn blksszget(fd: impl AsFd) -> io::Result<u32> {
    Ok(rustix::fs::ioctl_blksszget(fd)?)
}

/// `ioctl(fd, BLKPBSZGET)`: the physical sector size. See `ioctl(2)` and `<linux/fs.h>`.
pub fn blkpbszget(fd: impl AsFd) -> io::Result<u32> {
    Ok(rustix::fs::ioctl_blkpbszget(fd)?)
}

/// `ioctl(fd, BLKROGET)`: whether the device is read-only. See `ioctl(2)`, `blockdev(8)`.
pub fn blkroget(fd: impl AsFd) -> io::Result<bool> {
    const OP: rustix::ioctl::Opcode = opcode::none(BLK, 94);
    // SAFETY: BLKROGET writes one C int into the Getter's output slot.
    let ro: i32 = unsafe { ioctl(fd, Getter::<OP, i32>::new()) }?;
    Ok(ro != 0)
}

/// `ioctl(fd, BLKZEROOUT, [offset, len])`: makes the range read back as zeros, letting the
/// device use WRITE ZEROES/unmap where it guarantees zeros. Offset and length must be
/// multiples of the logical sector size. See `ioctl(2)`, `blkdiscard(8)` (`--zeroout`).
pub fn blkzeroout(fd: impl AsFd, offset: u64, len: u64) -> io::Result<()> {
    const OP: rustix::ioctl::Opcode = opcode::none(BLK, 127);
    // SAFETY: BLKZEROOUT reads a `uint64_t[2]` {start, length} from the pointer the Setter passes.
    Ok(unsafe { ioctl(fd, Setter::<OP, [u64; 2]>::new([offset, len])) }?)
}

/// `ioctl(fd, BLKRRPART)`: asks the kernel to re-read the partition table. See `ioctl(2)`,
/// `blockdev(8)` (`--rereadpt`).
pub fn blkrrpart(fd: impl AsFd) -> io::Result<()> {
    const OP: rustix::ioctl::Opcode = opcode::none(BLK, 95);
    // SAFETY: BLKRRPART takes no argument and touches no user memory.
    Ok(unsafe { ioctl(fd, NoArg::<OP>::new()) }?)
}

/// `ioctl(fd, BLKFLSBUF)`: flushes and drops the device's buffer cache so the next reads come
/// from the device. See `ioctl(2)`, `blockdev(8)` (`--flushbufs`).
pub fn blkflsbuf(fd: impl AsFd) -> io::Result<()> {
    const OP: rustix::ioctl::Opcode = opcode::none(BLK, 97);
    // SAFETY: BLKFLSBUF takes no argument and touches no user memory.
    Ok(unsafe { ioctl(fd, NoArg::<OP>::new()) }?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctls_on_a_regular_file_fail_with_enotty() {
        let f = tempfile::tempfile().unwrap();
        let err = blkgetsize64(&f).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(25), "{err}"); // ENOTTY
    }

    #[test]
    fn opcodes_match_linux_fs_h() {
        assert_eq!(opcode::read::<usize>(BLK, 114), 0x8008_1272);
        assert_eq!(opcode::none(BLK, 127), 0x127f);
        assert_eq!(opcode::none(BLK, 95), 0x125f);
    }
}
