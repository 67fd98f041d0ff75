//! Building a chunk index: decode the image once, hash each chunk, and note which bytes of the
//! stored object decode to it (raw: the same offsets; seekable zstd: its frame; qcow2: none,
//! its tables say). Optionally
//! writes a seekable zstd copy on the way and indexes that instead.

use super::{seekable, sha256, Chunk, ChunkIndex, Layout, CHUNK_MAX, CHUNK_MIN};
use crate::error::{Context, Error, ErrorKind, Result};
use crate::flash::is_zero;
use crate::image::{self, Format};
use crate::source::{self, HashingReader, Source};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What `bty index` is asked for.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Bytes per chunk: a power of two from 64 KiB to 64 MiB.
    pub chunk_size: u32,
    /// Also write the image as seekable zstd here, and index that file.
    pub zstd_seekable: Option<PathBuf>,
}

/// Indexes the image in `src` (of `format`); setting `stop` cancels.
pub fn build(
    src: Arc<dyn Source>,
    format: Format,
    opts: &BuildOptions,
    stop: &AtomicBool,
) -> Result<ChunkIndex> {
    let cs = opts.chunk_size;
    if !cs.is_power_of_two() || !(CHUNK_MIN..=CHUNK_MAX).contains(&cs) {
        return Err(Error::invalid(format!(
            "chunk size {cs} is not a power of two from 64 KiB to 64 MiB; try 1048576"
        )));
    }
    if let Some(out) = &opts.zstd_seekable {
        return build_seekable_copy(src, format, cs, out, stop);
    }
    if format == Format::Raw {
        let hashing = HashingReader::new(src.open_stream(0)?);
        let digest = hashing.digest_handle();
        let mut chunks = Vec::new();
        let size = walk(hashing, cs, stop, |offset, data| {
            let range = offset..offset + data.len() as u64;
            chunks.push(Chunk { sha256: sha256(data), zero: is_zero(data), source: range });
            Ok(())
        })
        .with_context(|| format!("indexing {}", src.describe()))?;
        return Ok(ChunkIndex {
            chunk_size: cs,
            virtual_size: size,
            layout: Layout::Raw,
            source_size: digest.bytes(),
            source_sha256: digest.finish(),
            origin_sha256: digest.finish(),
            location: String::new(),
            chunks,
        });
    }
    if format == Format::Zstd {
        if let Some(frames) = seekable::read_table(src.as_ref())? {
            if let Some(index) = index_frames(src.as_ref(), &frames, stop)? {
                return Ok(index);
            }
            crate::log_info!(
                "{}: its zstd frames do not match chunks of one power-of-two size; indexed without byte ranges",
                src.describe()
            );
        }
    }
    // qcow2 is read at random through its own tables; the others cannot be: the index only
    // compares. Either way the stored bytes are hashed apart.
    let layout = if format == Format::Qcow2 { Layout::Qcow2 } else { Layout::Stream };
    let source_sha256 = source::sha256_of(src.as_ref(), stop)?;
    let decoded = image::open(src.clone(), format)?;
    let mut chunks = Vec::new();
    let size = walk(decoded.reader, cs, stop, |_, data| {
        chunks.push(Chunk { sha256: sha256(data), zero: is_zero(data), source: 0..0 });
        Ok(())
    })
    .with_context(|| format!("indexing {}", src.describe()))?;
    Ok(ChunkIndex {
        chunk_size: cs,
        virtual_size: size,
        layout,
        source_size: src.len().unwrap_or(0),
        source_sha256,
        origin_sha256: source_sha256,
        location: String::new(),
        chunks,
    })
}

/// Indexes a seekable zstd file whose frames are the chunks (all of one power-of-two size but
/// the last); `None` when they are not.
fn index_frames(
    src: &dyn Source,
    frames: &[seekable::Frame],
    stop: &AtomicBool,
) -> Result<Option<ChunkIndex>> {
    let Some(first) = frames.first() else { return Ok(None) };
    let cs = first.decoded_len;
    let fits = |i: usize, f: &seekable::Frame| {
        f.decoded_len == cs || (i + 1 == frames.len() && f.decoded_len > 0 && f.decoded_len < cs)
    };
    if !cs.is_power_of_two()
        || !(u64::from(CHUNK_MIN)..=u64::from(CHUNK_MAX)).contains(&cs)
        || !frames.iter().enumerate().all(|(i, f)| fits(i, f))
    {
        return Ok(None);
    }
    let mut chunks = Vec::with_capacity(frames.len());
    let mut packed = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        if stop.load(Ordering::Relaxed) {
            return Err(Error::new(ErrorKind::Cancelled, "cancelled"));
        }
        packed.resize((f.stored.end - f.stored.start) as usize, 0);
        image::read_exact_at(src, f.stored.start, &mut packed)?;
        let what = || format!("frame {i} of {}", src.describe());
        let data = seekable::decode_frame(&packed, f.decoded_len as usize, &what)?;
        chunks.push(Chunk { sha256: sha256(&data), zero: is_zero(&data), source: f.stored.clone() });
    }
    let source_sha256 = source::sha256_of(src, stop)?;
    Ok(Some(ChunkIndex {
        chunk_size: cs as u32,
        virtual_size: frames.iter().map(|f| f.decoded_len).sum(),
        layout: Layout::ZstdSeekable,
        source_size: src.len().unwrap_or(0),
        source_sha256,
        origin_sha256: source_sha256,
        location: String::new(),
        chunks,
    }))
}

/// Decodes `src` into a seekable zstd file at `out`, one frame per chunk, and indexes it.
fn build_seekable_copy(
    src: Arc<dyn Source>,
    format: Format,
    cs: u32,
    out: &std::path::Path,
    stop: &AtomicBool,
) -> Result<ChunkIndex> {
    let decoded = image::open(src.clone(), format)?;
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut writer =
        seekable::Writer::new(HashingWriter::new(std::io::BufWriter::with_capacity(1 << 20, file)))?;
    let mut chunks = Vec::new();
    let size = walk(decoded.reader, cs, stop, |_, data| {
        let source = writer.frame(data)?;
        chunks.push(Chunk { sha256: sha256(data), zero: is_zero(data), source });
        Ok(())
    })
    .with_context(|| format!("converting {} to seekable zstd at {}", src.describe(), out.display()))?;
    let (hashing, len) = writer.finish().with_context(|| format!("writing {}", out.display()))?;
    let source_sha256 = hashing.finish();
    // The copy's index records the original's digest, which stays the image's identity.
    let origin_sha256 = source::sha256_of(src.as_ref(), stop)?;
    Ok(ChunkIndex {
        chunk_size: cs,
        virtual_size: size,
        layout: Layout::ZstdSeekable,
        source_size: len,
        source_sha256,
        origin_sha256,
        location: String::new(),
        chunks,
    })
}

/// Reads `reader` in chunks of `cs` bytes (the last may be shorter) and hands each to `each`
/// with its offset; returns the total length.
fn walk(
    mut reader: impl Read,
    cs: u32,
    stop: &AtomicBool,
    mut each: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<u64> {
    let mut buf = vec![0u8; cs as usize];
    let mut offset = 0u64;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(Error::new(ErrorKind::Cancelled, "cancelled"));
        }
        let mut filled = 0;
        while filled < buf.len() {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::from(e)),
            }
        }
        if filled == 0 {
            return Ok(offset);
        }
        each(offset, &buf[..filled])?;
        offset += filled as u64;
        if filled < buf.len() {
            return Ok(offset);
        }
    }
}

/// A writer that hashes what passes through it.
struct HashingWriter<W> {
    inner: W,
    hash: sha2::Sha256,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> HashingWriter<W> {
        HashingWriter { inner, hash: sha2::Digest::new() }
    }

    fn finish(self) -> [u8; 32] {
        sha2::Digest::finalize(self.hash).into()
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        sha2::Digest::update(&mut self.hash, &buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
