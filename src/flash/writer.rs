//! The write stage's logic: turns decoded chunks into data writes, zero ranges and (with
//! `--delta`) skipped blocks, holding the first MiB back until everything else is on disk.
//!
//! Ordering is the crash-safety rule: before anything else, the target's first MiB is zeroed
//! (a plain flash) so an interrupted run never leaves the old partition table pointing at new
//! data; the image's own first MiB is written last, after a flush, so an interrupted run never
//! leaves a disk that looks bootable. With `--delta` the first MiB is zeroed only before the
//! first change (at once when it differs itself), so an unchanged target receives no write at
//! all when its zero runs are read, or known to be zeros (a file's holes: see
//! `Target::known_zeros`); on a device that zeroes them unread (see
//! `Target::zeroes_without_transfer`), the first MiB is rewritten.

use super::buffer::AlignedBuf;
use super::target::Target;
use super::verify::Checks;
use super::zero::{self, Kind};
use crate::error::{Error, ErrorKind, Result};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

/// The part of the image written last.
pub const HEAD: usize = 1 << 20;
/// Largest zero range handed to the kernel at once, so a cancel is noticed between pieces.
const ZERO_PIECE: u64 = 256 << 20;

/// Byte counts of a flash, as the report shows them.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    /// Bytes written with data.
    pub written: u64,
    /// Bytes made zero without copying (BLKZEROOUT, holes); with `--delta`, the zero runs
    /// found different, or all of them where they are zeroed unread.
    pub zeroed: u64,
    /// Bytes read from the target and found equal (`--delta`).
    pub unchanged: u64,
}

/// The image's first MiB, held back until everything else is on the target.
struct HeldHead {
    /// Its bytes, zeros included (rebuilt from the chunk's layout).
    buf: AlignedBuf,
    len: usize,
    /// Its runs of data and zeros.
    layout: Vec<zero::Run>,
    /// Whether the target's first MiB has been zeroed and must receive it at the end: always
    /// in a plain flash; with `--delta`, once anything on the target is about to change.
    needed: bool,
}

/// Writes one image onto one target.
pub struct Writer<'a> {
    target: &'a mut Target,
    delta: bool,
    /// Whether the target is read under the image's zero runs too (`--delta`).
    zeros_read: bool,
    /// The image's first MiB, once seen.
    head: Option<HeldHead>,
    /// A zero range not issued yet, grown while neighbouring granules are zeros too.
    pending_zero: Option<Range<u64>>,
    /// Per-chunk fingerprints for `--verify`.
    pub checks: Option<Checks>,
    /// What was done so far.
    pub counts: Counts,
    stop: &'a AtomicBool,
}

impl<'a> Writer<'a> {
    /// A writer; a plain flash zeroes the target's first MiB right away.
    pub fn begin(
        target: &'a mut Target,
        delta: bool,
        verify: bool,
        stop: &'a AtomicBool,
    ) -> Result<Writer<'a>> {
        if !delta {
            target.invalidate_head(HEAD as u64)?;
        }
        let zeros_read = !target.zeroes_without_transfer();
        Ok(Writer {
            target,
            delta,
            zeros_read,
            head: None,
            pending_zero: None,
            checks: verify.then(Checks::default),
            counts: Counts::default(),
            stop,
        })
    }

    /// Handles the decoded bytes `data` that belong at `offset` of the image, whose zero
    /// layout is `layout` ([`zero::data_runs`]); with `--delta`, `current` holds what the
    /// target has there now (read ahead by the pipeline).
    pub fn chunk(
        &mut self,
        offset: u64,
        data: &[u8],
        layout: &[zero::Run],
        current: Option<&[u8]>,
    ) -> Result<()> {
        if let Some(checks) = &mut self.checks {
            checks.record(offset, data, layout);
        }
        let current = match (self.delta, current) {
            (false, _) => None,
            (true, Some(current)) if current.len() == data.len() => Some(current),
            (true, _) => return Err(Error::failed("delta: the target's bytes for a chunk are missing")),
        };
        // The image's first MiB is held back; the runs below start after it.
        let mut skip = 0;
        if offset == 0 {
            skip = data.len().min(HEAD);
            self.hold_head(&data[..skip], layout, current.map(|c| &c[..skip]))?;
        }
        match current {
            Some(current) => {
                let runs = zero::delta_runs(data, layout, current, self.zeros_read);
                let runs = if self.zeros_read { runs } else { self.leave_known_zeros(offset, &runs) };
                self.apply(offset, data, &runs, skip)
            }
            None => self.apply(offset, data, layout, skip),
        }
    }

    /// Flushes the last zero range, gives the target its final length `len`, and syncs.
    pub fn finish_body(&mut self, len: u64) -> Result<()> {
        self.flush_zero()?;
        self.target.finish(len)
    }

    /// Writes the held-back first MiB (when the target needs it) and syncs again.
    pub fn write_head(&mut self) -> Result<()> {
        let Some(head) = self.head.take().filter(|h| h.needed) else { return Ok(()) };
        // The target's first MiB is already zero (zeroed at the start, or before `--delta`
        // changed anything), so only the data runs need writing.
        for run in &head.layout {
            let len = (run.end - run.start) as u64;
            match run.kind {
                Kind::Data => {
                    self.target.write_at(run.start as u64, &head.buf.as_slice()[run.start..run.end])?;
                    self.counts.written += len;
                }
                _ => self.counts.zeroed += len,
            }
        }
        self.target.sync()
    }

    /// Whether `--delta` reads the target under the image's zero runs too (otherwise it zeroes
    /// them unread: see `Target::zeroes_without_transfer`).
    pub fn zeros_read(&self) -> bool {
        self.zeros_read
    }

    /// The target's path, for messages.
    pub fn target_path(&self) -> &std::path::Path {
        self.target.path()
    }

    /// Keeps the image's first MiB `data` for [`Writer::write_head`]; its bytes under the
    /// zero runs of `layout` may be unspecified, so only the data runs are copied. With
    /// `--delta`, `current` is what the target holds there now.
    fn hold_head(&mut self, data: &[u8], layout: &[zero::Run], current: Option<&[u8]>) -> Result<()> {
        let len = data.len();
        let layout: Vec<zero::Run> = layout
            .iter()
            .filter(|r| r.start < len)
            .map(|r| zero::Run { end: r.end.min(len), ..*r })
            .collect();
        let mut buf = AlignedBuf::new(HEAD);
        for run in layout.iter().filter(|r| r.kind == Kind::Data) {
            buf.as_mut_slice()[run.start..run.end].copy_from_slice(&data[run.start..run.end]);
        }
        // A plain flash zeroed the target's first MiB already; `--delta` keeps it while it is
        // equal, until the first change (`before_change`), and zeroes it now when it differs.
        let needed = match current {
            None => true,
            Some(current) if current == &buf.as_slice()[..len] => {
                self.counts.unchanged += len as u64;
                false
            }
            Some(_) => {
                self.target.invalidate_head(len as u64)?;
                true
            }
        };
        self.head = Some(HeldHead { buf, len, layout, needed });
        Ok(())
    }

    /// Zeroes the target's first MiB, once, before `--delta` changes anything: an interrupted
    /// run must not leave the image's boot sector over a body that is half old. An unchanged
    /// target never gets here when its zero runs are read or known to be zeros; when a device
    /// zeroes them unread, it costs one rewrite of the first MiB.
    fn before_change(&mut self) -> Result<()> {
        let Some(head) = self.head.as_mut().filter(|h| !h.needed) else { return Ok(()) };
        head.needed = true;
        let len = head.len as u64;
        // It was found equal and counted so; `write_head` now counts it as written.
        self.counts.unchanged -= len;
        self.target.invalidate_head(len)
    }

    /// `runs` of the chunk at image offset `offset`, with the parts of the zero runs (zeroed
    /// unread) that the target already reads as zeros made [`Kind::Same`].
    fn leave_known_zeros(&self, offset: u64, runs: &[zero::Run]) -> Vec<zero::Run> {
        let absolute = |r: Range<usize>| offset + r.start as u64..offset + r.end as u64;
        zero::leave_known_zeros(runs, |run| {
            let known = self.target.known_zeros(absolute(run));
            known.into_iter().map(|k| (k.start - offset) as usize..(k.end - offset) as usize).collect()
        })
    }

    /// Carries out `runs` of the chunk `data` at image offset `at`, except its first `skip`
    /// bytes.
    fn apply(&mut self, at: u64, data: &[u8], runs: &[zero::Run], skip: usize) -> Result<()> {
        for run in runs {
            let start = run.start.max(skip);
            if start >= run.end {
                continue;
            }
            let range = at + start as u64..at + run.end as u64;
            let len = range.end - range.start;
            match run.kind {
                Kind::Same => self.counts.unchanged += len,
                Kind::Zero => {
                    self.counts.zeroed += len;
                    match &mut self.pending_zero {
                        Some(pending) if pending.end == range.start => pending.end = range.end,
                        _ => {
                            self.flush_zero()?;
                            self.pending_zero = Some(range);
                        }
                    }
                }
                Kind::Data => {
                    self.before_change()?;
                    self.target.write_at(range.start, &data[start..run.end])?;
                    self.counts.written += len;
                }
            }
        }
        Ok(())
    }

    fn flush_zero(&mut self) -> Result<()> {
        let Some(range) = self.pending_zero.take() else { return Ok(()) };
        self.before_change()?;
        let mut at = range.start;
        while at < range.end {
            if self.stop.load(Ordering::Relaxed) {
                return Err(Error::new(ErrorKind::Cancelled, "cancelled"));
            }
            let end = (at + ZERO_PIECE).min(range.end);
            self.target.zero_range(at..end)?;
            at = end;
        }
        Ok(())
    }
}
