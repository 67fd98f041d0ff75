//! The source digest's verdict: whether the stored bytes are the ones that were named, and
//! what a failed flash is reported as when they are not.
//!
//! A digest mismatch is exit 4 and says what the target now holds. When an image cannot be
//! detected, opened or decoded and a digest is expected, the bytes are checked against it
//! first: a download cut short or a blob rotten in a cache shows up as a decoder's complaint,
//! but its cause is that these are not the bytes that were named. This file only judges; the
//! hashing itself happens where the bytes are read.

use crate::error::{Error, ErrorKind, Result};
use crate::source;

/// What the target holds when a digest check fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState<'a> {
    /// Nothing was written to the target at this path.
    Untouched(&'a str),
    /// The image's body was written to the target at this path, without its first MiB.
    Unverified(&'a str),
}

/// An [`ErrorKind::Integrity`] error when `expected` is set and `got` is not it.
pub fn mismatch(
    source: &str,
    expected: Option<[u8; 32]>,
    got: Option<[u8; 32]>,
    target: TargetState,
) -> Option<Error> {
    mismatch_after(source, expected, got, target, None)
}

/// As [`mismatch`], naming the failure `symptom` the mismatch explains.
fn mismatch_after(
    source: &str,
    expected: Option<[u8; 32]>,
    got: Option<[u8; 32]>,
    target: TargetState,
    symptom: Option<&Error>,
) -> Option<Error> {
    let expected = expected.filter(|&e| got != Some(e))?;
    let state = match target {
        TargetState::Untouched(path) => format!("nothing was written to {path}"),
        TargetState::Unverified(path) => {
            format!("{path} holds unverified data (its first MiB was not written, so it will not boot)")
        }
    };
    let symptom = symptom.map(|e| format!(" (reading it failed: {e})")).unwrap_or_default();
    Some(Error::new(
        ErrorKind::Integrity,
        format!(
            "sha256 of {source} is {}, expected {}{symptom}: {state}; flash again from a trusted source",
            got.map(|d| source::hex(&d)).unwrap_or_else(|| "unknown".into()),
            source::hex(&expected),
        ),
    ))
}

/// The error to report for a flash that failed with `e` while `expected` was the source's
/// digest: a mismatch when `digest` (the stored bytes' sha256) differs, else `e` unchanged.
/// Cancels, and failures to hash, leave `e` as it is.
pub fn explain(
    e: Error,
    source: &str,
    expected: Option<[u8; 32]>,
    target: TargetState,
    digest: impl FnOnce() -> Result<Option<[u8; 32]>>,
) -> Error {
    if expected.is_none() || e.kind() == ErrorKind::Cancelled {
        return e;
    }
    match digest() {
        Ok(got) => mismatch_after(source, expected, got, target, Some(&e)).unwrap_or(e),
        Err(_) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_reported_as_a_mismatch_only_when_the_digest_differs() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let failed = || Error::failed("zstd: corrupt block");
        let target = TargetState::Unverified("/dev/sdz");
        let e = explain(failed(), "img.zst", Some(a), target, || Ok(Some(b)));
        assert_eq!(e.kind(), ErrorKind::Integrity);
        let text = e.to_string();
        assert!(text.contains("holds unverified data") && text.contains("zstd: corrupt block"), "{text}");

        assert_eq!(explain(failed(), "img.zst", Some(a), target, || Ok(Some(a))).kind(), ErrorKind::Failed);
        assert_eq!(explain(failed(), "img.zst", None, target, || unreachable!()).kind(), ErrorKind::Failed);
        let hash_failed = explain(failed(), "img.zst", Some(a), target, || Err(Error::failed("gone")));
        assert_eq!(hash_failed.kind(), ErrorKind::Failed);
        let cancelled = Error::new(ErrorKind::Cancelled, "cancelled");
        assert_eq!(explain(cancelled, "x", Some(a), target, || unreachable!()).kind(), ErrorKind::Cancelled);

        let untouched = mismatch("img", Some(a), None, TargetState::Untouched("/dev/sdz")).unwrap();
        assert!(untouched.to_string().contains("nothing was written to /dev/sdz"), "{untouched}");
        assert!(mismatch("img", Some(a), Some(a), target).is_none());
    }
}
