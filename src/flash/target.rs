//! The flash target: a block device or a regular file, checked against the safety rules and
//! opened for large sequential writes.
//!
//! Block devices are opened `O_EXCL` (the kernel then refuses a device that is mounted or held
//! by dm/md) and, where the kernel allows, a second `O_DIRECT` descriptor carries the aligned
//! reads and writes, to files as to devices. Zero ranges become BLKZEROOUT on devices and holes
//! in files. This file decides how bytes reach the target; what to write and in which order is
//! `writer.rs`'s business.

use crate::disk::{self, Disk};
use crate::error::{Context, Error, ErrorKind, Result};
use crate::sys::blockdev;
use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Range;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// What the target is, as checked before the first byte.
#[derive(Debug, Clone)]
pub struct TargetInfo {
    /// The path the user gave.
    pub path: PathBuf,
    /// The device or file size in bytes (`None` for a file that does not exist yet).
    pub size_bytes: Option<u64>,
    /// The whole disk the target is or belongs to, for block devices.
    pub disk: Option<Disk>,
}

/// Checks `path` against the safety rules without opening it for writing: refuses (exit 3)
/// a directory, a character device, a mounted disk or one with a mounted partition, the disk
/// the system runs from, a read-only disk, and a device smaller than `image_size`.
pub fn check_target(path: &Path, image_size: Option<u64>) -> Result<TargetInfo> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(TargetInfo { path: path.to_path_buf(), size_bytes: None, disk: None })
        }
        Err(e) => return Err(Error::from(e).context(format!("checking {}", path.display()))),
    };
    let kind = meta.file_type();
    if kind.is_file() {
        refuse_a_busy_loop_backing_file(path)?;
        return Ok(TargetInfo { path: path.to_path_buf(), size_bytes: Some(meta.len()), disk: None });
    }
    if !kind.is_block_device() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_char_device() {
            "a character device"
        } else {
            "not a block device"
        };
        return Err(Error::refused(format!(
            "{} is {what}; the target must be a block device (see `bty disks`) or a regular file",
            path.display()
        )));
    }
    let rdev = meta.rdev();
    let dev = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
    let tree = disk::Tree::read(Path::new("/sys"), &disk::system_mountinfo()?)?;
    let Some((name, parent)) = tree.name_of_dev(dev) else {
        return Err(Error::refused(format!(
            "{} (device {}:{}) is not in /sys/class/block, so its mounts cannot be checked; refusing to write it",
            path.display(),
            dev.0,
            dev.1
        )));
    };
    // A partition target is judged with its whole disk: a mounted sibling or the system on the
    // same disk refuses too, which is stricter than needed and never wrong.
    let whole = tree.disk(parent.as_deref().unwrap_or(&name))?;
    if let Some(rule) = disk::refusal(&whole, None) {
        return Err(Error::refused(format!("refusing to write {}: {rule}", path.display())));
    }
    let size = match &parent {
        None => whole.size_bytes,
        Some(_) => whole.partitions.iter().find(|p| p.name == name).map(|p| p.size_bytes).unwrap_or(0),
    };
    if let Some(rule) = image_size.and_then(|need| too_small(path, size, need)) {
        return Err(Error::refused(rule));
    }
    Ok(TargetInfo { path: path.to_path_buf(), size_bytes: Some(size), disk: Some(whole) })
}

/// Refuses (exit 3) a regular file that backs a loop device the safety rules refuse (mounted,
/// swapped to, holding the system): writing it would change a mounted filesystem underneath
/// the kernel. A file behind an idle loop device is an ordinary target.
fn refuse_a_busy_loop_backing_file(path: &Path) -> Result<()> {
    let Ok(file) = std::fs::canonicalize(path) else { return Ok(()) };
    let Ok(loops) = std::fs::read_dir("/sys/block") else { return Ok(()) };
    let backed: Vec<String> = loops
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("loop"))
        .filter(|name| {
            let backing = std::fs::read_to_string(format!("/sys/block/{name}/loop/backing_file"));
            backing.is_ok_and(|b| Path::new(b.trim_end_matches('\n')) == file)
        })
        .collect();
    if backed.is_empty() {
        return Ok(());
    }
    let tree = disk::Tree::read(Path::new("/sys"), &disk::system_mountinfo()?)?;
    for name in backed {
        if let Some(rule) = tree.disk(&name).ok().and_then(|loop_disk| disk::refusal(&loop_disk, None)) {
            return Err(Error::refused(format!(
                "refusing to write {}: it backs /dev/{name}, and {rule}",
                path.display()
            )));
        }
    }
    Ok(())
}

/// Refuses (exit 3) a target that is the image's own file or device, under any name, or a
/// device that holds the image's device or lies inside it (a disk and one of its partitions):
/// the flash would destroy the image while reading it.
pub fn refuse_the_source_itself(source: &Path, target: &Path) -> Result<()> {
    let (Ok(s), Ok(t)) = (std::fs::metadata(source), std::fs::metadata(target)) else { return Ok(()) };
    let same_node = s.dev() == t.dev() && s.ino() == t.ino();
    let both_devices = s.file_type().is_block_device() && t.file_type().is_block_device();
    let overlap = both_devices && (s.rdev() == t.rdev() || one_holds_the_other(s.rdev(), t.rdev())?);
    if same_node || overlap {
        return Err(Error::refused(format!(
            "refusing to write {}: it is, holds or lies inside the image being flashed ({}); pick another target",
            target.display(),
            source.display()
        )));
    }
    Ok(())
}

/// Whether of two block devices one is a partition of the other.
fn one_holds_the_other(a: u64, b: u64) -> Result<bool> {
    let dev = |rdev| (rustix::fs::major(rdev), rustix::fs::minor(rdev));
    let tree = disk::Tree::read(Path::new("/sys"), "")?;
    let (Some((a_name, a_disk)), Some((b_name, b_disk))) =
        (tree.name_of_dev(dev(a)), tree.name_of_dev(dev(b)))
    else {
        return Ok(false);
    };
    Ok(a_disk.as_deref() == Some(b_name.as_str()) || b_disk.as_deref() == Some(a_name.as_str()))
}

fn too_small(path: &Path, size: u64, need: u64) -> Option<String> {
    (need > size).then(|| {
        format!(
            "refusing to write {}: the image needs {} ({need} bytes) but the target holds only {} ({size} bytes); pick a larger disk",
            path.display(),
            disk::human_size(need),
            disk::human_size(size)
        )
    })
}

/// The test hook: with `BTY_TEST_DELTA_READS_ZEROS` in the environment, `--delta` reads the
/// target under the image's zero runs whatever the target, as it does on a device that cannot
/// zero without a data transfer. Files and loop devices, which the black-box tests use, can,
/// so without the hook that path would go untested. This is the only place it is read.
const READS_ZEROS_HOOK: &str = "BTY_TEST_DELTA_READS_ZEROS";

/// The alignment of direct reads and writes on a regular file.
const FILE_DIRECT_ALIGN: u64 = 4096;

/// How bytes reach the target.
enum Kind {
    /// A block device of `size` bytes with its logical sector size, and whether it zeroes
    /// ranges itself (BLKZEROOUT then sends no data).
    Block { size: u64, sector: u64, zeroes_offloaded: bool },
    /// A regular file that was `original_len` bytes long when opened; ranges past that
    /// length are holes already and need no zeroing. `punches` says whether its filesystem
    /// punches holes (vfat and exFAT do not: zeroing there means writing zeros).
    File { original_len: u64, punches: bool },
}

/// An open, checked target.
pub struct Target {
    path: PathBuf,
    /// The buffered descriptor: unaligned writes, reads, fsync, ioctls.
    file: File,
    /// An `O_DIRECT` descriptor for aligned writes, when the kernel allows.
    direct: Option<File>,
    kind: Kind,
}

impl Target {
    /// Runs [`check_target`] again (the state may have changed since a confirmation prompt)
    /// and opens the target for writing; a missing regular file is created.
    pub fn open(path: &Path, image_size: Option<u64>) -> Result<Target> {
        let info = check_target(path, image_size)?;
        let is_block = info.disk.is_some();
        let mut options = OpenOptions::new();
        options.read(true).write(true);
        if is_block {
            options.custom_flags(rustix::fs::OFlags::EXCL.bits() as i32);
        } else {
            options.create(true);
        }
        let file = options.open(path).map_err(|e| {
            let busy = e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error());
            let err = Error::from(e).context(format!("opening {} for writing", path.display()));
            if busy {
                err.context("the kernel reports the device busy (mounted, or held by dm/md/raid); stop what uses it first")
                    .with_kind(ErrorKind::Refused)
            } else {
                err
            }
        })?;
        let kind = if is_block {
            if blockdev::blkroget(&file)
                .with_context(|| format!("asking {} whether it is read-only", path.display()))?
            {
                return Err(Error::refused(format!(
                    "refusing to write {}: the device is read-only",
                    path.display()
                )));
            }
            let size = blockdev::blkgetsize64(&file).with_context(|| format!("sizing {}", path.display()))?;
            let sector = u64::from(blockdev::blksszget(&file).unwrap_or(512).max(512));
            if let Some(rule) = image_size.and_then(|need| too_small(path, size, need)) {
                return Err(Error::refused(rule));
            }
            Kind::Block {
                size,
                sector,
                zeroes_offloaded: info.disk.as_ref().is_some_and(|d| d.zeroes_offloaded),
            }
        } else {
            let original_len = file.metadata().with_context(|| format!("reading {}", path.display()))?.len();
            Kind::File { original_len, punches: punch_hole(&file, original_len, FILE_DIRECT_ALIGN).is_ok() }
        };
        // O_DIRECT keeps a multi-gigabyte image from evicting the page cache and lets the
        // device see large requests, for files as for devices (buffered writes of a large
        // file pile up dirty pages that the final fsync then writes at its own pace); some
        // stacks (tmpfs, tmpfs-backed loops, old kernels) refuse it, and then every write goes
        // through the buffered descriptor.
        let direct = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
            .open(path)
            .ok();
        Ok(Target { path: path.to_path_buf(), file, direct, kind })
    }

    /// The path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Zeroes the target's first `head` bytes and syncs, before a plain flash writes anything
    /// and before `--delta` changes anything, so an interrupted run never leaves the old
    /// partition table (or the image's own) pointing at what is being overwritten. The rest is
    /// overwritten in place, files included: data over the old blocks, zero runs as BLKZEROOUT
    /// or punched holes. Cutting a file to length 0 first frees every old block only to
    /// allocate most of them again, which measured slower on a 2 GiB sparse image (1.0 s
    /// against 0.72 over a fully allocated file, 0.7 against 0.31 over the same image).
    pub fn invalidate_head(&mut self, head: u64) -> Result<()> {
        let end = match self.kind {
            Kind::Block { size, .. } => head.min(size),
            // Past the file's end there is nothing to zero; `zero_range` knows.
            Kind::File { .. } => head,
        };
        self.zero_range(0..end)?;
        // On stable storage before any body write, which may reach the disk first otherwise.
        self.sync()
    }

    /// Whether the target is a block device.
    pub fn is_block(&self) -> bool {
        matches!(self.kind, Kind::Block { .. })
    }

    /// Whether making a range zero costs less than reading it: the device zeroes it without a
    /// data transfer, or the file gets a hole. `--delta` then zeroes the image's zero runs
    /// instead of reading them to compare; on a device that would be sent zeros over the bus
    /// (most SATA, USB and SD), reading is cheaper and spares the flash cells.
    pub fn zeroes_without_transfer(&self) -> bool {
        if std::env::var_os(READS_ZEROS_HOOK).is_some() {
            return false;
        }
        match self.kind {
            Kind::Block { zeroes_offloaded, .. } => zeroes_offloaded,
            Kind::File { punches, .. } => punches,
        }
    }

    /// The parts of `range` that already read as zeros, known without reading them: a regular
    /// file's holes, as `SEEK_DATA`/`SEEK_HOLE` report them (past its end is one hole). A
    /// device reports none: only reading it tells. `--delta` leaves these alone, so a file
    /// that still holds the image gets no zeroing and no write at all.
    pub fn known_zeros(&self, range: Range<u64>) -> Vec<Range<u64>> {
        match self.kind {
            Kind::Block { .. } => Vec::new(),
            Kind::File { .. } => holes_of(&self.file, range),
        }
    }

    /// Writes `data` at `offset`, through `O_DIRECT` when both are sector-aligned.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        self.fits(offset, data.len() as u64)?;
        let context = || format!("writing {} at offset {offset}", self.path.display());
        if let Some(direct) = self.direct.as_ref().filter(|_| self.aligned(offset, data)) {
            match direct.write_all_at(data, offset) {
                Ok(()) => return Ok(()),
                // The device rejected this alignment after all: drop O_DIRECT for good.
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                    self.direct = None
                }
                Err(e) => return Err(Error::from(e).context(context())),
            }
        }
        self.file.write_all_at(data, offset).with_context(context)
    }

    /// Reads `buf.len()` bytes at `offset`; bytes past the end of a file read as zeros, which
    /// is what they will be once the file has its final length.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.reads().read_at(offset, buf)
    }

    /// A reader of this target with descriptors of its own, for a thread that reads ahead of
    /// the writer (`--delta`).
    pub fn reader(&self) -> Result<TargetReader> {
        let clone = |f: &File| f.try_clone().with_context(|| format!("reopening {}", self.path.display()));
        Ok(TargetReader {
            path: self.path.clone(),
            file: clone(&self.file)?,
            direct: self.direct.as_ref().map(clone).transpose()?,
            align: self.align(),
        })
    }

    /// Borrowed read access, for reads on the writer's own thread.
    fn reads(&self) -> Reads<'_> {
        Reads { path: &self.path, file: &self.file, direct: self.direct.as_ref(), align: self.align() }
    }

    /// Makes `range` read back as zeros without copying zeros from user space where possible:
    /// BLKZEROOUT on devices, a punched hole in files (ranges past a file's original end are
    /// holes already).
    pub fn zero_range(&mut self, range: Range<u64>) -> Result<()> {
        if range.is_empty() {
            return Ok(());
        }
        self.fits(range.start, range.end - range.start)?;
        match self.kind {
            Kind::Block { sector, .. } => {
                let start = range.start.next_multiple_of(sector).min(range.end);
                let end = (range.end / sector * sector).max(start);
                self.write_zeros(range.start..start)?;
                self.write_zeros(end..range.end)?;
                if start < end && blockdev::blkzeroout(&self.file, start, end - start).is_err() {
                    // Not every stack implements it (and some only for some ranges); the
                    // result must be zeros either way.
                    self.write_zeros(start..end)?;
                }
                Ok(())
            }
            Kind::File { original_len, punches } => {
                let end = range.end.min(original_len);
                if range.start >= end {
                    return Ok(());
                }
                if !punches || punch_hole(&self.file, range.start, end - range.start).is_err() {
                    self.write_zeros(range.start..end)?;
                }
                Ok(())
            }
        }
    }

    fn write_zeros(&mut self, range: Range<u64>) -> Result<()> {
        static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
        let mut at = range.start;
        while at < range.end {
            let n = (range.end - at).min(ZEROS.len() as u64) as usize;
            self.file
                .write_all_at(&ZEROS[..n], at)
                .with_context(|| format!("zeroing {} at offset {at}", self.path.display()))?;
            at += n as u64;
        }
        Ok(())
    }

    /// Flushes everything written so far to stable storage.
    pub fn sync(&self) -> Result<()> {
        self.file.sync_all().with_context(|| format!("flushing {}", self.path.display()))
    }

    /// Gives a file its final length (`len`, the image's size) and flushes; on a device,
    /// flushes and asks the kernel to re-read the partition table.
    pub fn finish(&self, len: u64) -> Result<()> {
        if let Kind::File { .. } = self.kind {
            self.file
                .set_len(len)
                .with_context(|| format!("setting the length of {}", self.path.display()))?;
        }
        self.sync()?;
        if self.is_block() {
            // Loop devices without partition scanning answer EINVAL; the flash is complete
            // either way, the kernel just keeps its old view until the next scan.
            if let Err(e) = blockdev::blkrrpart(&self.file) {
                crate::log_debug!("re-reading the partition table of {}: {e}", self.path.display());
            }
        }
        Ok(())
    }

    /// Drops cached pages of the target so a read-back comes from the device (`--verify`).
    pub fn drop_caches(&self) -> Result<()> {
        self.sync()?;
        if self.is_block() {
            blockdev::blkflsbuf(&self.file)
                .with_context(|| format!("dropping the buffer cache of {}", self.path.display()))?;
        }
        rustix::fs::fadvise(&self.file, 0, None, rustix::fs::Advice::DontNeed)
            .map_err(io::Error::from)
            .with_context(|| format!("dropping cached pages of {}", self.path.display()))
    }

    /// The alignment of offsets and lengths for the `O_DIRECT` descriptor.
    fn align(&self) -> u64 {
        match self.kind {
            Kind::Block { sector, .. } => sector,
            // Filesystems take direct I/O in units of their block size; 4 KiB covers them.
            Kind::File { .. } => FILE_DIRECT_ALIGN,
        }
    }

    fn aligned(&self, offset: u64, buf: &[u8]) -> bool {
        is_aligned(self.align(), offset, buf)
    }

    /// Fails when a write would run past the end of a device (the image's size was unknown).
    fn fits(&self, offset: u64, len: u64) -> Result<()> {
        match self.kind {
            Kind::Block { size, .. } if offset + len > size => Err(Error::failed(format!(
                "the image is larger than {} ({size} bytes, {}): it does not fit past offset {size}; the target is incomplete and not bootable",
                self.path.display(),
                disk::human_size(size)
            ))),
            _ => Ok(()),
        }
    }
}

/// `fallocate(PUNCH_HOLE | KEEP_SIZE)`: makes `len` bytes at `offset` of `file` a hole. Past
/// the end of the file it changes nothing, which is how support for it is probed.
fn punch_hole(file: &File, offset: u64, len: u64) -> rustix::io::Result<()> {
    let flags = rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE;
    rustix::fs::fallocate(file, flags, offset, len)
}

/// The holes of `file` within `range`, sorted. A filesystem without hole reporting answers
/// that everything is data, and an error ends the search: what is not reported is not known.
fn holes_of(file: &File, range: Range<u64>) -> Vec<Range<u64>> {
    use rustix::fs::SeekFrom;
    let mut holes = Vec::new();
    let mut at = range.start;
    while at < range.end {
        let data = match rustix::fs::seek(file, SeekFrom::Data(at)) {
            Ok(data) => data.min(range.end),
            // No data at or after `at`: a hole up to the end of the file and beyond it.
            Err(rustix::io::Errno::NXIO) => range.end,
            Err(_) => break,
        };
        if data > at {
            holes.push(at..data);
        }
        match rustix::fs::seek(file, SeekFrom::Hole(data)) {
            Ok(hole) if hole > data => at = hole,
            _ => break,
        }
    }
    holes
}

fn is_aligned(align: u64, offset: u64, buf: &[u8]) -> bool {
    offset % align == 0
        && buf.len() as u64 % align == 0
        && buf.as_ptr() as u64 % super::buffer::ALIGN as u64 == 0
}

/// A target's read side: through `O_DIRECT` when aligned, so what is compared or verified comes
/// from the device rather than from cached pages.
struct Reads<'a> {
    path: &'a Path,
    file: &'a File,
    direct: Option<&'a File>,
    align: u64,
}

impl Reads<'_> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let context = || format!("reading {} at offset {offset}", self.path.display());
        let mut direct = self.direct.filter(|_| is_aligned(self.align, offset, buf));
        let mut done = 0;
        while done < buf.len() {
            let fd = direct.unwrap_or(self.file);
            match fd.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => {
                    done += n;
                    // The rest after a short direct read may be unaligned.
                    direct = None;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The device or filesystem wants another alignment after all (as in
                // `write_at`): the buffered descriptor reads the same bytes.
                Err(e)
                    if direct.is_some()
                        && e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) =>
                {
                    direct = None
                }
                Err(e) => return Err(Error::from(e).context(context())),
            }
        }
        buf[done..].fill(0);
        Ok(())
    }
}

/// An owned read side of a target, for a thread of its own (see [`Target::reader`]).
pub struct TargetReader {
    path: PathBuf,
    file: File,
    direct: Option<File>,
    align: u64,
}

impl TargetReader {
    /// As [`Target::read_at`].
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        Reads { path: &self.path, file: &self.file, direct: self.direct.as_ref(), align: self.align }
            .read_at(offset, buf)
    }
}
