//! A sequential stream over a regular file that yields its holes as zeros without reading them.
//!
//! A disk image is mostly zeros, and a raw image file usually keeps those zeros as holes.
//! Reading a hole makes the kernel allocate and zero page-cache pages only to copy them out,
//! which costs more than the flash's own work on a sparse image; `SEEK_DATA`/`SEEK_HOLE` tell
//! where the holes are, and a hole is filled with zeros in user space instead. Filesystems
//! without hole reporting answer as if the whole file were data, which is still correct.

use rustix::fs::SeekFrom;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

/// What the bytes from the current position to `end` are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extent {
    Data { end: u64 },
    Hole { end: u64 },
}

impl Extent {
    fn end(self) -> u64 {
        match self {
            Extent::Data { end } | Extent::Hole { end } => end,
        }
    }
}

/// Reads a regular file of known length from `pos`, filling holes with zeros.
pub struct SparseReader {
    file: File,
    pos: u64,
    len: u64,
    /// The extent `pos` lies in, once asked; asked again only when `pos` leaves it.
    extent: Option<Extent>,
}

impl SparseReader {
    /// A stream of `file` (which is `len` bytes long) from `pos`.
    pub fn new(file: File, pos: u64, len: u64) -> SparseReader {
        SparseReader { file, pos, len, extent: None }
    }

    /// The extent that starts at or contains `self.pos`.
    fn extent_at_pos(&self) -> io::Result<Extent> {
        let data = match rustix::fs::seek(&self.file, SeekFrom::Data(self.pos)) {
            Ok(data) => data,
            // No data at or after pos: the rest of the file is one hole, or the file is
            // shorter than it was, which must end the stream rather than read as zeros.
            Err(rustix::io::Errno::NXIO) => {
                let now = self.file.metadata()?.len();
                return Ok(if now <= self.pos {
                    Extent::Data { end: self.len }
                } else {
                    Extent::Hole { end: self.len.min(now) }
                });
            }
            // No hole reporting (or an odd file): treat everything as data.
            Err(_) => return Ok(Extent::Data { end: self.len }),
        };
        if data > self.pos {
            return Ok(Extent::Hole { end: data.min(self.len) });
        }
        let hole = rustix::fs::seek(&self.file, SeekFrom::Hole(self.pos)).unwrap_or(self.len);
        Ok(Extent::Data { end: hole.clamp(self.pos + 1, self.len) })
    }

    /// Opens the regular file at `path` as a stream from its start; anything else (a device,
    /// a pipe) is an error.
    pub fn open(path: &std::path::Path) -> io::Result<SparseReader> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        Ok(SparseReader::new(file, 0, meta.len()))
    }

    /// Reads data into `buf`, or passes over a hole without writing zeros into it (for a
    /// caller that keeps track of where the holes are). `Data(0)` is the end of the stream.
    pub fn read_or_skip(&mut self, buf: &mut [u8]) -> io::Result<Piece> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(Piece::Data(0));
        }
        let extent = match self.extent {
            Some(extent) if self.pos < extent.end() => extent,
            _ => {
                let extent = self.extent_at_pos()?;
                self.extent = Some(extent);
                extent
            }
        };
        let piece = match extent {
            Extent::Hole { end } => Piece::Hole((buf.len() as u64).min(end - self.pos) as usize),
            Extent::Data { end } => {
                let want = (buf.len() as u64).min(end - self.pos) as usize;
                let n = self.file.read_at(&mut buf[..want], self.pos)?;
                if n == 0 {
                    // The file shrank under us: end the stream here, the length check of
                    // the caller (decoder or flash) reports the truncation.
                    self.len = self.pos;
                }
                Piece::Data(n)
            }
        };
        let (Piece::Data(n) | Piece::Hole(n)) = piece;
        self.pos += n as u64;
        Ok(piece)
    }
}

/// What [`SparseReader::read_or_skip`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// This many bytes of data were read into the buffer.
    Data(usize),
    /// This many bytes of a hole were passed over; the buffer was not touched.
    Hole(usize),
}

impl Read for SparseReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.read_or_skip(buf)? {
            Piece::Data(n) => Ok(n),
            Piece::Hole(n) => {
                buf[..n].fill(0);
                Ok(n)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, Write};

    fn read_all(mut r: SparseReader, chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = vec![0xAAu8; chunk];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn holes_read_as_zeros_and_data_as_written() {
        let mut f = tempfile::tempfile().unwrap();
        let len = 5u64 << 20;
        f.set_len(len).unwrap();
        let mut want = vec![0u8; len as usize];
        for (at, byte) in [(0u64, 1u8), (2 << 20, 2), ((5 << 20) - 4096, 3)] {
            f.seek(io::SeekFrom::Start(at)).unwrap();
            f.write_all(&[byte; 4096]).unwrap();
            want[at as usize..at as usize + 4096].fill(byte);
        }
        for chunk in [1000, 4096, 1 << 20, 8 << 20] {
            let got = read_all(SparseReader::new(f.try_clone().unwrap(), 0, len), chunk);
            assert!(got == want, "chunk {chunk}");
        }
        let got = read_all(SparseReader::new(f.try_clone().unwrap(), 4000, len), 3000);
        assert!(got == want[4000..], "from an offset");
    }

    #[test]
    fn read_or_skip_passes_over_holes_without_touching_the_buffer() {
        let mut f = tempfile::tempfile().unwrap();
        f.set_len(3 << 20).unwrap();
        f.seek(io::SeekFrom::Start(1 << 20)).unwrap();
        f.write_all(&[5u8; 4096]).unwrap();
        let mut r = SparseReader::new(f, 0, 3 << 20);
        let mut buf = vec![0xAAu8; 4 << 20];
        let mut pieces = Vec::new();
        let mut at = 0;
        loop {
            match r.read_or_skip(&mut buf[at..]).unwrap() {
                Piece::Data(0) => break,
                piece @ (Piece::Data(n) | Piece::Hole(n)) => {
                    pieces.push(piece);
                    at += n;
                }
            }
        }
        assert_eq!(pieces, [Piece::Hole(1 << 20), Piece::Data(4096), Piece::Hole((2 << 20) - 4096)]);
        assert!(buf[..1 << 20].iter().all(|&b| b == 0xAA), "a hole was written");
        assert!(buf[1 << 20..(1 << 20) + 4096].iter().all(|&b| b == 5));
    }

    #[test]
    fn a_file_that_shrinks_ends_the_stream_early() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&[7u8; 8192]).unwrap();
        let r = SparseReader::new(f.try_clone().unwrap(), 0, 8192);
        f.set_len(4096).unwrap();
        assert_eq!(read_all(r, 1000), vec![7u8; 4096]);
    }
}
