//! Zero detection: splitting a buffer into runs of data and runs of zeros, per granule.
//!
//! Zero runs are what the writer turns into BLKZEROOUT or holes instead of copying them, so
//! detection must run far faster than the disk: each granule is OR-folded in fixed 4 KiB
//! blocks, which the compiler turns into wide vector ORs, with an early exit between blocks
//! as soon as a non-zero byte shows up.

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

/// Splits `len` bytes into granules, classifies each with `classify(start, end)`, and merges
/// neighbours of one kind into runs.
pub fn runs(len: usize, mut classify: impl FnMut(usize, usize) -> Kind) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    let mut start = 0;
    while start < len {
        let end = (start + GRANULE).min(len);
        let kind = classify(start, end);
        match out.last_mut() {
            Some(last) if last.kind == kind => last.end = end,
            _ => out.push(Run { kind, start, end }),
        }
        start = end;
    }
    out
}

/// Runs of data and zeros in `buf` (a plain flash).
pub fn data_runs(buf: &[u8]) -> Vec<Run> {
    runs(buf.len(), |s, e| if is_zero(&buf[s..e]) { Kind::Zero } else { Kind::Data })
}

/// Runs of `image` compared with what the target holds (`--delta`): equal granules are
/// [`Kind::Same`], the others data or zeros as in [`data_runs`].
pub fn delta_runs(image: &[u8], target: &[u8]) -> Vec<Run> {
    runs(image.len(), |s, e| {
        if image[s..e] == target[s..e] {
            Kind::Same
        } else if is_zero(&image[s..e]) {
            Kind::Zero
        } else {
            Kind::Data
        }
    })
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
    fn delta_runs_mark_equal_granules_same() {
        let image = vec![7u8; 3 * GRANULE];
        let mut target = image.clone();
        target[GRANULE] = 0;
        let mut zero_image = image.clone();
        zero_image[2 * GRANULE..].fill(0);
        let kinds: Vec<Kind> = delta_runs(&zero_image, &target).iter().map(|r| r.kind).collect();
        assert_eq!(kinds, [Kind::Same, Kind::Data, Kind::Zero]);
    }
}
