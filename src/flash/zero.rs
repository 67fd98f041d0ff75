//! Zero detection: splitting a buffer into runs of data and runs of zeros, per granule.
//!
//! Zero runs are what the writer turns into BLKZEROOUT or holes instead of copying them, so
//! detection must run far faster than the disk: each granule is OR-folded in fixed 4 KiB
//! blocks, which the compiler turns into wide vector ORs, with an early exit between blocks
//! as soon as a non-zero byte shows up.

use std::ops::Range;

/// The unit of zero detection and of delta comparison: 64 KiB.
pub const GRANULE: usize = 64 * 1024;

/// Whether every byte of `buf` is zero.
pub fn is_zero(buf: &[u8]) -> bool {
    // Folding a whole block without early exit lets the OR vectorise; the loop over blocks
    // stops at the first block that holds data, which in a data region is the first one.
    buf.chunks(4096).all(|block| block.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

/// The offset of the first non-zero byte, if any (for naming where a read-back differs).
pub fn first_non_zero(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b != 0)
}

/// What a run of granules holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Bytes that must be written.
    Data,
    /// Zeros that become BLKZEROOUT or a hole.
    Zero,
    /// Bytes the target already holds (`--delta`).
    Same,
}

/// A run of consecutive granules of one kind: `start..end` within the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// What the run holds.
    pub kind: Kind,
    /// First byte, relative to the buffer.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

/// Splits `range` of a buffer into granules (counted from the buffer's start), classifies
/// each with `classify(start, end)`, and appends them to `out`, merging neighbours of one kind.
fn classify_into(out: &mut Vec<Run>, range: Range<usize>, mut classify: impl FnMut(usize, usize) -> Kind) {
    let mut start = range.start;
    while start < range.end {
        let end = (start + GRANULE).min(range.end);
        push(out, Run { kind: classify(start, end), start, end });
        start = end;
    }
}

fn push(out: &mut Vec<Run>, run: Run) {
    match out.last_mut() {
        Some(last) if last.kind == run.kind && last.end == run.start => last.end = run.end,
        _ => out.push(run),
    }
}

/// Runs of data and zeros in `buf`: a chunk's layout, which the writer, `--delta` and
/// `--verify` all work from, so each chunk is scanned for zeros once.
pub fn data_runs(buf: &[u8]) -> Vec<Run> {
    let mut out = Vec::new();
    classify_into(&mut out, 0..buf.len(), |s, e| if is_zero(&buf[s..e]) { Kind::Zero } else { Kind::Data });
    out
}

/// Runs of data and zeros in `buf`, where the ranges `holes` (sorted, not overlapping) are
/// known to be zeros but were never written into `buf`: a granule wholly inside a hole is a
/// zero run without being looked at; one that a hole only partly covers gets that part
/// filled with zeros and is scanned as in [`data_runs`]. The bytes of `buf` under the zero
/// runs returned are unspecified.
pub fn layout_with_holes(buf: &mut [u8], holes: &[Range<usize>]) -> Vec<Run> {
    let mut out = Vec::new();
    let mut next = 0; // the first hole that may still overlap the granule
    classify_into(&mut out, 0..buf.len(), |start, end| {
        while next < holes.len() && holes[next].end <= start {
            next += 1;
        }
        if holes.get(next).is_some_and(|h| h.start <= start && h.end >= end) {
            return Kind::Zero;
        }
        for hole in holes[next..].iter().take_while(|h| h.start < end) {
            buf[hole.start.max(start)..hole.end.min(end)].fill(0);
        }
        if is_zero(&buf[start..end]) {
            Kind::Zero
        } else {
            Kind::Data
        }
    });
    out
}

/// Runs of `image` (whose [`data_runs`] are `layout`) compared with what the target holds
/// (`--delta`): granules the target already holds are [`Kind::Same`], the others keep their
/// layout kind. When `zeros_read` is false the target was not read under the image's zero
/// runs (zeroing them costs less than reading, see `Target::zeroes_without_transfer`), so
/// those stay [`Kind::Zero`] unseen.
pub fn delta_runs(image: &[u8], layout: &[Run], target: &[u8], zeros_read: bool) -> Vec<Run> {
    let mut out = Vec::new();
    for run in layout {
        match run.kind {
            Kind::Zero if !zeros_read => push(&mut out, *run),
            Kind::Zero => classify_into(&mut out, run.start..run.end, |s, e| {
                if is_zero(&target[s..e]) {
                    Kind::Same
                } else {
                    Kind::Zero
                }
            }),
            _ => classify_into(&mut out, run.start..run.end, |s, e| {
                if image[s..e] == target[s..e] {
                    Kind::Same
                } else {
                    Kind::Data
                }
            }),
        }
    }
    out
}

/// `runs` with the parts of their zero runs that the target already reads as zeros made
/// [`Kind::Same`]: `known_zeros(range)` names those parts of a zero run's range (sorted, within
/// it). They need no zeroing, so `--delta` leaves them alone.
pub fn leave_known_zeros(
    runs: &[Run],
    mut known_zeros: impl FnMut(Range<usize>) -> Vec<Range<usize>>,
) -> Vec<Run> {
    let mut out = Vec::with_capacity(runs.len());
    for run in runs {
        if run.kind != Kind::Zero {
            push(&mut out, *run);
            continue;
        }
        let mut at = run.start;
        for known in known_zeros(run.start..run.end) {
            let (start, end) = (known.start.max(at), known.end.min(run.end));
            if start >= end {
                continue;
            }
            if start > at {
                push(&mut out, Run { kind: Kind::Zero, start: at, end: start });
            }
            push(&mut out, Run { kind: Kind::Same, start, end });
            at = end;
        }
        if at < run.end {
            push(&mut out, Run { kind: Kind::Zero, start: at, end: run.end });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_zero_sees_a_single_byte_anywhere() {
        let mut buf = vec![0u8; 3 * 4096 + 17];
        assert!(is_zero(&buf));
        for at in [0, 4095, 4096, buf.len() - 1] {
            buf[at] = 1;
            assert!(!is_zero(&buf), "byte at {at}");
            assert_eq!(first_non_zero(&buf), Some(at));
            buf[at] = 0;
        }
        assert!(is_zero(&[]));
    }

    #[test]
    fn data_runs_merge_granules_and_keep_a_short_tail() {
        let mut buf = vec![0u8; 4 * GRANULE + 100];
        buf[GRANULE + 5] = 1;
        buf[2 * GRANULE] = 1;
        buf[4 * GRANULE + 99] = 1;
        let got: Vec<(Kind, usize, usize)> =
            data_runs(&buf).iter().map(|r| (r.kind, r.start, r.end)).collect();
        assert_eq!(
            got,
            [
                (Kind::Zero, 0, GRANULE),
                (Kind::Data, GRANULE, 3 * GRANULE),
                (Kind::Zero, 3 * GRANULE, 4 * GRANULE),
                (Kind::Data, 4 * GRANULE, 4 * GRANULE + 100),
            ]
        );
    }

    #[test]
    fn layout_with_holes_matches_data_runs_of_the_filled_buffer() {
        let len = 5 * GRANULE + 300;
        let mut want = vec![0u8; len];
        want[GRANULE + 8192] = 1; // data in a granule a hole partly covers
        want[3 * GRANULE..3 * GRANULE + 4096].fill(2);
        want[len - 1] = 3;
        let holes = [0..GRANULE + 4096, 2 * GRANULE..3 * GRANULE, 4 * GRANULE + 4096..len - 4096];
        let mut buf = want.clone();
        for hole in &holes {
            buf[hole.clone()].fill(0xAA); // never written: stale bytes from an earlier chunk
            assert!(want[hole.clone()].iter().all(|&b| b == 0), "test data: {hole:?}");
        }
        assert_eq!(layout_with_holes(&mut buf, &holes), data_runs(&want));
        for run in data_runs(&want).iter().filter(|r| r.kind == Kind::Data) {
            assert_eq!(buf[run.start..run.end], want[run.start..run.end], "{run:?}");
        }
    }

    #[test]
    fn delta_runs_mark_equal_granules_same() {
        let image = vec![7u8; 3 * GRANULE];
        let mut target = image.clone();
        target[GRANULE] = 0;
        let mut zero_image = image.clone();
        zero_image[2 * GRANULE..].fill(0);
        let layout = data_runs(&zero_image);
        let kinds = |target: &[u8], zeros_read| -> Vec<Kind> {
            delta_runs(&zero_image, &layout, target, zeros_read).iter().map(|r| r.kind).collect()
        };
        assert_eq!(kinds(&target, true), [Kind::Same, Kind::Data, Kind::Zero]);

        // A zero granule the target already holds is the same only when it was read.
        target[2 * GRANULE..].fill(0);
        assert_eq!(kinds(&target, true), [Kind::Same, Kind::Data, Kind::Same]);
        assert_eq!(kinds(&target, false), [Kind::Same, Kind::Data, Kind::Zero]);
    }

    #[test]
    fn known_zeros_are_left_alone_and_only_the_rest_is_zeroed() {
        let runs = [
            Run { kind: Kind::Data, start: 0, end: 100 },
            Run { kind: Kind::Zero, start: 100, end: 1000 },
            Run { kind: Kind::Same, start: 1000, end: 1100 },
            Run { kind: Kind::Zero, start: 1100, end: 1200 },
        ];
        // The first zero run holds data in its middle; the second is wholly known.
        let known = |r: Range<usize>| -> Vec<Range<usize>> {
            match r.start {
                100 => vec![50..300, 400..2000],
                _ => vec![r],
            }
        };
        let want = [
            Run { kind: Kind::Data, start: 0, end: 100 },
            Run { kind: Kind::Same, start: 100, end: 300 },
            Run { kind: Kind::Zero, start: 300, end: 400 },
            Run { kind: Kind::Same, start: 400, end: 1200 },
        ];
        assert_eq!(leave_known_zeros(&runs, known), want);
        // Nothing known: the layout is unchanged.
        assert_eq!(leave_known_zeros(&runs, |_| Vec::new()), runs);
    }
}
