//! Byte sources: where image bytes come from (a local file, HTTP(S), an OCI registry).
//!
//! A [`Source`] hands out sequential streams and, where the transport allows, random-access
//! reads (qcow2 needs them). Resuming a dropped connection is the source's own business: a
//! stream returned by [`Source::open_stream`] either yields the exact bytes of the object or
//! fails; it never silently restarts. Hashing what was read is done by [`HashingReader`] so
//! every source gets it the same way. This module does not decode formats (see `image/`).

pub mod client;
mod file;
pub mod http;
pub mod oras;
mod pipe;
mod registry_auth;
pub mod resolve;
mod sparse;
pub mod url;

pub use file::FileSource;
pub use http::HttpSource;
pub use resolve::{resolve, Resolved};
pub use sparse::{Piece, SparseReader};

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A place image bytes come from.
pub trait Source: Send + Sync {
    /// What to call this source in messages: a path or a URL without credentials.
    fn describe(&self) -> String;

    /// The stored (possibly compressed) length in bytes, when known.
    fn len(&self) -> Option<u64>;

    /// Whether `len` is known to be zero.
    fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    /// A stream of the stored bytes starting at `offset` and running to the end.
    fn open_stream(&self, offset: u64) -> Result<Box<dyn Read + Send>>;

    /// Reads up to `buf.len()` bytes at `offset`; returns 0 only at the end.
    /// Sources that cannot seek return an `Invalid` error naming the transport.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize>;

    /// The stored bytes in `range`, exactly (a short object is an error). HTTP asks for them
    /// in one Range request and resumes a dropped transfer from where it stopped.
    fn read_range(&self, range: std::ops::Range<u64>) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; (range.end.saturating_sub(range.start)) as usize];
        let mut done = 0;
        while done < buf.len() {
            let n = self.read_at(range.start + done as u64, &mut buf[done..])?;
            if n == 0 {
                return Err(Error::failed(format!(
                    "{}: the file ends before byte {} (truncated, or not the file its index describes)",
                    self.describe(),
                    range.end
                )));
            }
            done += n;
        }
        Ok(buf)
    }

    /// Whether [`Source::read_at`] works (files yes; HTTP only where the server takes `Range`).
    fn supports_random_access(&self) -> bool;

    /// A digest the transport itself vouches for (an OCI layer digest), enforced by the caller.
    fn expected_sha256(&self) -> Option<[u8; 32]> {
        None
    }

    /// The name of the object (last path segment or OCI title), used for format detection
    /// by extension when the magic bytes are not enough.
    fn file_name(&self) -> String;

    /// The local file or device the bytes come from, if any (so a flash can refuse to
    /// overwrite its own source).
    fn local_path(&self) -> Option<&std::path::Path> {
        None
    }
}

/// Opens a source from what a user typed: a path, `file://`, `http(s)://` or `oras://`.
pub fn open(spec: &str) -> Result<Arc<dyn Source>> {
    if let Some(path) = spec.strip_prefix("file://") {
        return Ok(Arc::new(FileSource::open(path)?));
    }
    let lower = spec.get(..8).unwrap_or(spec).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Ok(Arc::new(HttpSource::open(spec)?));
    }
    if lower.starts_with("oras://") {
        return Ok(Arc::new(oras::open(spec)?));
    }
    Ok(Arc::new(FileSource::open(spec)?))
}

/// Reads every byte of `src` sequentially, hashing as it goes; setting `stop` cancels.
pub fn sha256_of(src: &dyn Source, stop: &AtomicBool) -> Result<[u8; 32]> {
    let hashing = HashingReader::new(src.open_stream(0)?);
    let digest = hashing.digest_handle();
    drain(hashing, stop).map_err(|e| e.context(format!("hashing {}", src.describe())))?;
    Ok(digest.finish())
}

/// Reads `stream` to its end and drops the bytes (a hashing reader hashes them on the way);
/// setting `stop` ends it with [`crate::ErrorKind::Cancelled`].
pub fn drain(mut stream: impl Read, stop: &AtomicBool) -> Result<()> {
    // Large reads: io::copy's 8 KiB buffer makes hashing a multi-GiB image syscall-bound.
    let mut buf = vec![0u8; 4 << 20];
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(Error::new(crate::ErrorKind::Cancelled, "cancelled"));
        }
        match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::from(e)),
        }
    }
}

/// A running sha256 shared between the thread that reads and the one that checks the result.
#[derive(Clone, Default)]
pub struct DigestHandle {
    inner: Arc<Mutex<(Sha256, u64)>>,
}

impl DigestHandle {
    /// The digest of everything read so far.
    pub fn finish(&self) -> [u8; 32] {
        let guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        guard.0.clone().finalize().into()
    }

    /// How many bytes went into the digest.
    pub fn bytes(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).1
    }
}

/// Wraps a reader and hashes exactly the bytes it yields.
pub struct HashingReader<R> {
    inner: R,
    digest: DigestHandle,
}

impl<R: Read> HashingReader<R> {
    /// Starts hashing from the reader's current position.
    pub fn new(inner: R) -> HashingReader<R> {
        HashingReader { inner, digest: DigestHandle::default() }
    }

    /// A handle to read the digest later, from any thread.
    pub fn digest_handle(&self) -> DigestHandle {
        self.digest.clone()
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut guard = self.digest.inner.lock().unwrap_or_else(|p| p.into_inner());
        guard.0.update(&buf[..n]);
        guard.1 += n as u64;
        Ok(n)
    }
}

/// Formats a digest as lowercase hex.
pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses a 64-character hex sha256 (an optional `sha256:` prefix is accepted).
pub fn parse_sha256(s: &str) -> Result<[u8; 32]> {
    let s = s.trim();
    let s = s.strip_prefix("sha256:").unwrap_or(s);
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::invalid(format!("{s:?} is not a sha256 digest: expected 64 hex characters")));
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let pair = std::str::from_utf8(chunk).map_err(|_| Error::invalid("digest is not ASCII"))?;
        out[i] = u8::from_str_radix(pair, 16).map_err(|_| Error::invalid("digest is not hex"))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_sha256_round_trips_through_hex() {
        let text = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(hex(&parse_sha256(text).unwrap()), text);
        assert_eq!(hex(&parse_sha256(&format!("sha256:{text}")).unwrap()), text);
    }

    #[test]
    fn parse_sha256_rejects_short_and_non_hex() {
        assert!(parse_sha256("abc").is_err());
        assert!(parse_sha256(&"g".repeat(64)).is_err());
    }

    #[test]
    fn hashing_reader_hashes_exactly_what_it_yields() {
        let mut r = HashingReader::new(&b""[..]);
        std::io::copy(&mut r, &mut std::io::sink()).unwrap();
        assert_eq!(
            hex(&r.digest_handle().finish()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
