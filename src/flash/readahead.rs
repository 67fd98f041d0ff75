//! The read stage: a [`Source`] wrapper whose sequential stream is fetched on its own thread,
//! ahead of the decoder, and hashed as it is fetched when a digest is wanted.
//!
//! The decoder sees an ordinary `Read`; the bytes come from a bounded channel of recycled
//! buffers filled by the fetch thread, so a slow network read and a slow decode overlap. The
//! sha256 covers exactly the stored bytes of the last stream opened at offset 0; whatever the
//! decoder left unread (trailing padding) is drained into the hash by [`ReadAhead::finish`].
//! Random-access reads (qcow2) pass straight through and are not hashed here. A raw image's
//! stream is not threaded: it is hashed in place as the decode stage reads it. Hashing is
//! optional because on a sparse raw image it costs more than the whole flash: it runs when
//! a digest is checked or the caller asks for one.

use crate::error::{Error, Result};
use crate::source::{self, DigestHandle, HashingReader, Source};
use std::io::{self, Read};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Size of one fetched block.
const BLOCK: usize = 1 << 20;
/// Blocks in flight between the fetch thread and the decoder.
const DEPTH: usize = 8;

type Stream = Box<dyn Read + Send>;
/// The fetch thread hands back its stream and how its reading ended.
type Fetch = JoinHandle<(Stream, io::Result<()>)>;

/// A source whose stream from offset 0 is fetched ahead and, when asked, hashed.
pub struct ReadAhead {
    inner: Arc<dyn Source>,
    /// Whether streams are fetched on a thread of their own; a raw image needs no decoding,
    /// so its stream is read directly by the decode stage, which saves a copy of every byte.
    threaded: bool,
    /// Whether streams from offset 0 are hashed.
    hash: bool,
    /// The fetch thread of the most recent stream from offset 0; it hands its reader back.
    fetch: Mutex<Option<Fetch>>,
    /// The hash of the most recent stream from offset 0.
    digest: Mutex<Option<DigestHandle>>,
}

impl ReadAhead {
    /// Wraps `inner`; `threaded` puts the reads on a thread of their own, `hash` hashes them.
    pub fn new(inner: Arc<dyn Source>, threaded: bool, hash: bool) -> ReadAhead {
        ReadAhead { inner, threaded, hash, fetch: Mutex::new(None), digest: Mutex::new(None) }
    }

    /// Waits for the fetch thread, hashes whatever the decoder did not read, and returns the
    /// sha256 of the whole stored object; `None` when hashing is off or no stream from offset
    /// 0 was read (the decoder used random access), so the caller must hash separately if it
    /// needs to. Setting `stop` ends the hashing of the rest with [`crate::ErrorKind::Cancelled`].
    pub fn finish(&self, stop: &AtomicBool) -> Result<Option<[u8; 32]>> {
        let describe = || format!("reading {}", self.inner.describe());
        let handle = self.fetch.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            let (stream, result) = handle
                .join()
                .map_err(|_| Error::failed(format!("the reader of {} crashed", self.inner.describe())))?;
            result.map_err(|e| Error::from(e).context(describe()))?;
            if self.hash {
                source::drain(stream, stop).map_err(|e| e.context(describe()))?;
            }
        }
        let Some(digest) = self.digest.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return Ok(None);
        };
        // Unthreaded, the decode stage read the stream itself: a digest of less than the whole
        // object (the read failed) says nothing about the object.
        match self.inner.len() {
            Some(len) if digest.bytes() != len => Err(Error::failed(format!(
                "{} was read only to byte {} of {len}",
                self.inner.describe(),
                digest.bytes()
            ))),
            _ => Ok(Some(digest.finish())),
        }
    }
}

impl Source for ReadAhead {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn len(&self) -> Option<u64> {
        self.inner.len()
    }

    fn open_stream(&self, offset: u64) -> Result<Box<dyn Read + Send>> {
        if offset != 0 {
            return self.inner.open_stream(offset);
        }
        let raw = self.inner.open_stream(0)?;
        let stream: Stream = if self.hash {
            let hashing = HashingReader::new(raw);
            *self.digest.lock().unwrap_or_else(|p| p.into_inner()) = Some(hashing.digest_handle());
            Box::new(hashing)
        } else {
            raw
        };
        if !self.threaded {
            return Ok(stream);
        }
        let (full_tx, full_rx) = mpsc::sync_channel(DEPTH);
        let (empty_tx, empty_rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("bty-fetch".into())
            .spawn(move || fetch(stream, full_tx, empty_rx))
            .map_err(|e| Error::failed(format!("starting the reader thread: {e}")))?;
        // An earlier stream (format detection) is simply abandoned: its thread ends when its
        // channel closes.
        *self.fetch.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        Ok(Box::new(ChannelReader { full: full_rx, empty: empty_tx, current: Vec::new(), pos: 0 }))
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.inner.read_at(offset, buf)
    }

    fn supports_random_access(&self) -> bool {
        self.inner.supports_random_access()
    }

    fn expected_sha256(&self) -> Option<[u8; 32]> {
        self.inner.expected_sha256()
    }

    fn file_name(&self) -> String {
        self.inner.file_name()
    }
}

/// The fetch thread: fills blocks until the end, an error, or the reader going away; returns
/// the stream so its unread rest can be hashed.
fn fetch(
    mut stream: Stream,
    full: SyncSender<io::Result<Vec<u8>>>,
    empty: Receiver<Vec<u8>>,
) -> (Stream, io::Result<()>) {
    loop {
        let mut block = empty.try_recv().unwrap_or_else(|_| vec![0u8; BLOCK]);
        block.resize(BLOCK, 0);
        let n = match stream.read(&mut block) {
            Ok(0) => return (stream, Ok(())),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let copy = io::Error::new(e.kind(), e.to_string());
                let _ = full.send(Err(copy));
                return (stream, Err(e));
            }
        };
        block.truncate(n);
        if full.send(Ok(block)).is_err() {
            return (stream, Ok(()));
        }
    }
}

/// The decoder's end of the channel.
struct ChannelReader {
    full: Receiver<io::Result<Vec<u8>>>,
    empty: Sender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            match self.full.recv() {
                Ok(block) => {
                    let used = std::mem::replace(&mut self.current, block?);
                    let _ = self.empty.send(used);
                    self.pos = 0;
                }
                // The fetch thread ended after the last block: end of stream.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{hex, FileSource};

    #[test]
    fn stream_is_complete_and_the_hash_covers_unread_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img");
        let data: Vec<u8> = (0..3 * BLOCK + 123).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let src: Arc<dyn Source> = Arc::new(FileSource::open(&path).unwrap());
        let go = AtomicBool::new(false);
        let expected = crate::source::sha256_of(src.as_ref(), &go).unwrap();

        let ra = ReadAhead::new(src.clone(), true, true);
        let mut all = Vec::new();
        ra.open_stream(0).unwrap().read_to_end(&mut all).unwrap();
        assert!(all == data);
        assert_eq!(hex(&ra.finish(&go).unwrap().unwrap()), hex(&expected));

        // A decoder that stops early still yields the digest of the whole object.
        let ra = ReadAhead::new(src.clone(), true, true);
        let mut first = vec![0u8; 10];
        let mut stream = ra.open_stream(0).unwrap();
        stream.read_exact(&mut first).unwrap();
        drop(stream);
        assert_eq!(hex(&ra.finish(&go).unwrap().unwrap()), hex(&expected));

        // Unthreaded, the stream is the source's own, hashed in place.
        let ra = ReadAhead::new(src.clone(), false, true);
        let mut all = Vec::new();
        ra.open_stream(0).unwrap().read_to_end(&mut all).unwrap();
        assert!(all == data);
        assert_eq!(hex(&ra.finish(&go).unwrap().unwrap()), hex(&expected));

        // Unthreaded and read only in part (the read failed): no digest of a prefix.
        let ra = ReadAhead::new(src.clone(), false, true);
        ra.open_stream(0).unwrap().read_exact(&mut first).unwrap();
        assert!(ra.finish(&go).is_err(), "a digest of the first bytes was passed off as the object's");

        // A cancel stops the hashing of the rest.
        let ra = ReadAhead::new(src.clone(), true, true);
        drop(ra.open_stream(0).unwrap());
        let stop = AtomicBool::new(true);
        assert_eq!(ra.finish(&stop).unwrap_err().kind(), crate::ErrorKind::Cancelled);

        // Without hashing the stream is the same and there is no digest.
        for threaded in [true, false] {
            let ra = ReadAhead::new(src.clone(), threaded, false);
            let mut all = Vec::new();
            ra.open_stream(0).unwrap().read_to_end(&mut all).unwrap();
            assert!(all == data, "threaded {threaded}");
            assert_eq!(ra.finish(&go).unwrap(), None, "threaded {threaded}");
        }
    }
}
