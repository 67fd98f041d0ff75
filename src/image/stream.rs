//! Sequential decoders for the stream formats (raw, zstd, gzip, xz, bzip2).
//!
//! Each decoder reads its source in large blocks and turns every failure into one of our errors
//! naming the source, the format and how far into the compressed bytes decoding got. A truncated
//! stream is always an error, never a clean end of file: the raw reader checks the expected
//! length, and the compressed decoders require their end-of-stream marker. The decompression
//! itself is the crates' work (zstd, flate2, liblzma, bzip2); this module only wires them up.
//! qcow2 is not a stream format and lives in `qcow2/`.

use super::Format;
use crate::error::{Error, Result};
use std::io::{self, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// How much compressed input is pulled from the source per read: large enough that a pipe,
/// a socket or a file is read in few system calls, small enough to stay in cache.
pub const INPUT_BLOCK: usize = 2 << 20;

/// The largest zstd window we accept (2 GiB, what `zstd --long=31` produces); the library's
/// default stops at 128 MiB and would reject long-mode images.
const ZSTD_WINDOW_LOG_MAX: u32 = 31;

/// Decodes the stored bytes of a stream-format image into the disk's bytes.
///
/// `raw` yields the stored bytes from the start; `name` is what messages call the source;
/// `stored_len` is the stored length when known (a raw stream that ends early is an error).
/// qcow2 needs random access and is refused here; use [`super::open`] for it.
pub fn decode_stream(
    raw: Box<dyn Read + Send>,
    format: Format,
    name: &str,
    stored_len: Option<u64>,
) -> Result<Box<dyn Read + Send>> {
    let consumed = Arc::new(AtomicU64::new(0));
    let counted = Counted { inner: raw, count: consumed.clone() };
    if format == Format::Raw {
        return Ok(Box::new(RawStream {
            inner: counted,
            name: name.to_string(),
            expected: stored_len,
            got: 0,
        }));
    }
    let input = BufReader::with_capacity(INPUT_BLOCK, counted);
    let inner: Box<dyn Read + Send> = match format {
        Format::Zstd => {
            let mut d = zstd::stream::read::Decoder::with_buffer(input)
                .map_err(|e| Error::failed(format!("starting the zstd decoder for {name}: {e}")))?;
            d.window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|e| Error::failed(format!("configuring the zstd decoder for {name}: {e}")))?;
            Box::new(d)
        }
        Format::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Format::Xz => Box::new(
            super::xz::XzReader::new(input)
                .map_err(|e| Error::failed(format!("starting the xz decoder for {name}: {e}")))?,
        ),
        Format::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(input)),
        Format::Raw | Format::Qcow2 => {
            return Err(Error::invalid(format!(
                "{name} is a qcow2 image: it needs random access and cannot be decoded as a stream"
            )))
        }
    };
    Ok(Box::new(Decoding { inner, format, name: name.to_string(), consumed }))
}

/// Our error as an `io::Error` for a `Read` caller. The kind is never `Interrupted` (which is
/// how a cancelled transfer converts by default): std's helpers and the decompressors retry
/// `Interrupted` forever, so a cancellation would spin instead of stopping. The error inside is
/// ours, whole, for `bty::Error::from` to take back out.
pub fn read_error(e: Error) -> io::Error {
    io::Error::other(e)
}

/// A source's `io::Error`, kept whole unless it is one of ours marked `Interrupted`.
fn uninterrupted(e: io::Error) -> io::Error {
    if e.kind() != io::ErrorKind::Interrupted || !e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        return e;
    }
    match e.into_inner() {
        Some(inner) => io::Error::other(inner),
        None => io::Error::from(io::ErrorKind::Interrupted),
    }
}

/// Counts the stored bytes pulled from the source, so errors can say where decoding stopped.
struct Counted<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).map_err(uninterrupted)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A raw image: the stored bytes are the disk bytes, but ending short of the known length is
/// still an error (a file shrinking under us, a transport that lost the tail).
struct RawStream<R> {
    inner: Counted<R>,
    name: String,
    expected: Option<u64>,
    got: u64,
}

impl<R: Read> Read for RawStream<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.got += n as u64;
        if n == 0 && !buf.is_empty() {
            if let Some(expected) = self.expected.filter(|&e| self.got < e) {
                return Err(read_error(Error::failed(format!(
                    "reading {}: the data ended after {} of {expected} bytes (the file shrank or the transfer was cut)",
                    self.name, self.got
                ))));
            }
        }
        Ok(n)
    }
}

/// Wraps a decompressor so its failures become our errors with the source, format and offset.
struct Decoding {
    inner: Box<dyn Read + Send>,
    format: Format,
    name: String,
    consumed: Arc<AtomicU64>,
}

impl Decoding {
    fn explain(&self, e: io::Error) -> Error {
        let what = format!("decoding {} stream of {}", self.format.long_name(), self.name);
        let at = self.consumed.load(Ordering::Relaxed);
        // The source's own failures (I/O, network) already carry our error; keep them whole.
        if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            return Error::from(e).context(what);
        }
        if e.kind() == io::ErrorKind::UnexpectedEof {
            return Error::failed(format!(
                "{what}: unexpected end of input after {at} compressed bytes (the file is truncated or corrupt)"
            ));
        }
        Error::failed(format!("{what}: {e}, within the first {at} compressed bytes (the file is corrupt)"))
    }
}

impl Read for Decoding {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(0) if !buf.is_empty() && self.consumed.load(Ordering::Relaxed) == 0 => {
                Err(read_error(Error::failed(format!(
                    "{} is empty: it holds no {} stream",
                    self.name,
                    self.format.long_name()
                ))))
            }
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted && e.get_ref().is_none() => Err(e),
            Err(e) => Err(read_error(self.explain(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn sample() -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..200_000u32 {
            v.extend_from_slice(&(i.wrapping_mul(2654435761)).to_le_bytes());
        }
        v.extend(std::iter::repeat_n(0u8, 300_000));
        v
    }

    fn compress(format: Format, data: &[u8]) -> Vec<u8> {
        match format {
            Format::Zstd => {
                // As the zstd tool does by default: a checksum, so corruption is always caught.
                let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
                e.include_checksum(true).unwrap();
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Format::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Format::Xz => {
                let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Format::Bzip2 => {
                let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Format::Raw => data.to_vec(),
            Format::Qcow2 => unreachable!("not a stream format"),
        }
    }

    fn decode(format: Format, stored: Vec<u8>) -> Result<Vec<u8>> {
        let len = stored.len() as u64;
        let mut r = decode_stream(Box::new(io::Cursor::new(stored)), format, "t.img", Some(len))?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        Ok(out)
    }

    const STREAMS: [Format; 5] = [Format::Raw, Format::Zstd, Format::Gzip, Format::Xz, Format::Bzip2];

    #[test]
    fn every_stream_format_round_trips() {
        let data = sample();
        for f in STREAMS {
            assert!(decode(f, compress(f, &data)).unwrap() == data, "{f:?} did not round-trip");
        }
    }

    #[test]
    fn concatenated_members_decode_as_one_stream() {
        let data = sample();
        for f in [Format::Zstd, Format::Gzip, Format::Xz, Format::Bzip2] {
            let mut stored = compress(f, &data[..1000]);
            stored.extend(compress(f, &data[1000..]));
            assert!(decode(f, stored).unwrap() == data, "{f:?} lost a member");
        }
    }

    #[test]
    fn truncated_streams_fail_with_the_format_and_offset() {
        let data = sample();
        for f in STREAMS {
            let mut stored = compress(f, &data);
            let cut = stored.len() - 7;
            stored.truncate(cut);
            // The raw reader learns the real length from the source; pretend it is longer.
            let r = if f == Format::Raw {
                let mut r =
                    decode_stream(Box::new(io::Cursor::new(stored)), f, "t.img", Some(cut as u64 + 7))
                        .unwrap();
                r.read_to_end(&mut Vec::new()).map(|_| ()).map_err(Error::from)
            } else {
                decode(f, stored).map(|_| ())
            };
            let Err(e) = r else { panic!("{f:?} accepted a truncated stream") };
            let msg = e.to_string();
            if f != Format::Raw {
                assert!(msg.contains(&format!("decoding {} stream of t.img", f.long_name())), "{msg}");
                assert!(msg.contains(&format!("{cut} compressed bytes")), "{msg}");
            }
        }
    }

    #[test]
    fn corrupted_streams_fail() {
        let data = sample();
        for f in [Format::Zstd, Format::Gzip, Format::Xz, Format::Bzip2] {
            let mut stored = compress(f, &data);
            let mid = stored.len() / 2;
            stored[mid] ^= 0x55;
            stored[mid + 1] ^= 0xaa;
            let Err(e) = decode(f, stored) else { panic!("{f:?} accepted a corrupted stream") };
            assert!(e.to_string().contains("corrupt"), "{e}");
        }
    }

    #[test]
    fn an_empty_compressed_file_is_an_error() {
        for f in [Format::Zstd, Format::Gzip, Format::Xz, Format::Bzip2] {
            assert!(decode(f, Vec::new()).is_err(), "{f:?}");
        }
    }

    /// A source that yields some bytes, then fails the way a cancelled transfer does.
    struct Failing(usize);

    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(Error::new(crate::ErrorKind::Cancelled, "stopped by SIGINT").into());
            }
            let n = self.0.min(buf.len());
            buf[..n].fill(0x1f);
            self.0 -= n;
            Ok(n)
        }
    }

    #[test]
    fn a_source_error_passes_through_with_its_kind() {
        let mut r = decode_stream(Box::new(Failing(0)), Format::Gzip, "t.img.gz", None).unwrap();
        let e = Error::from(r.read(&mut [0u8; 64]).unwrap_err());
        assert_eq!(e.kind(), crate::ErrorKind::Cancelled);
        assert_eq!(e.to_string(), "decoding gzip stream of t.img.gz: stopped by SIGINT");
    }

    #[test]
    fn qcow2_is_not_a_stream() {
        assert!(decode_stream(Box::new(io::empty()), Format::Qcow2, "x", None).is_err());
    }
}
