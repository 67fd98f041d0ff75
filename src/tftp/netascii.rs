//! Netascii (RFC 1350, RFC 764): the file's bytes as text with LF sent as CR LF and a bare CR
//! sent as CR NUL, the conversion tftpd-hpa and the tftp-hpa client agree on.
//!
//! The conversion grows the data, so block N of the converted stream does not start at a fixed
//! file offset. [`NetasciiFile`] therefore remembers where each recently produced block started
//! (file offset plus a byte left over from a split CR LF / CR NUL pair), which is all a window
//! restart needs: a transfer only ever goes back to the block after the last acknowledged one.
//! This module does not know about packets or sockets.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::transfer::{read_full_at, BlockSource};

/// How many block starts are remembered; two full windows of the largest allowed size is far
/// more than a restart from the last acknowledged block can need.
const REMEMBERED_BLOCKS: usize = 2 * 64 + 2;

/// Converts `input` into `out`, beginning with a byte `pending` from an earlier call.
/// Returns (input bytes consumed, output bytes written, byte still pending). Output is short of
/// `out.len()` only when the input ran out.
pub fn encode(input: &[u8], out: &mut [u8], mut pending: Option<u8>) -> (usize, usize, Option<u8>) {
    let mut written = 0;
    if let Some(p) = pending.take() {
        match out.first_mut() {
            Some(slot) => {
                *slot = p;
                written = 1;
            }
            None => return (0, 0, Some(p)),
        }
    }
    let mut consumed = 0;
    for &byte in input {
        if written == out.len() {
            break;
        }
        let second = match byte {
            b'\n' => Some(b'\n'),
            b'\r' => Some(0),
            _ => None,
        };
        consumed += 1;
        match second {
            None => {
                out[written] = byte;
                written += 1;
            }
            Some(second) => {
                out[written] = b'\r';
                written += 1;
                if written == out.len() {
                    return (consumed, written, Some(second));
                }
                out[written] = second;
                written += 1;
            }
        }
    }
    (consumed, written, None)
}

/// The size of `file` after conversion (for `tsize`): one extra byte per LF and per CR.
pub fn encoded_len(file: &File) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut offset = 0u64;
    let mut total = 0u64;
    loop {
        let n = file.read_at(&mut buf, offset)?;
        if n == 0 {
            return Ok(total);
        }
        let chunk = &buf[..n];
        total += n as u64 + chunk.iter().filter(|&&b| b == b'\n' || b == b'\r').count() as u64;
        offset += n as u64;
    }
}

/// Where a converted block starts in the file.
#[derive(Debug, Clone, Copy)]
struct Mark {
    block: u64,
    offset: u64,
    pending: Option<u8>,
}

/// A file served in netascii, block by block.
pub struct NetasciiFile {
    file: File,
    marks: VecDeque<Mark>,
    raw: Vec<u8>,
}

impl NetasciiFile {
    /// Serves `file` converted to netascii.
    pub fn new(file: File) -> NetasciiFile {
        let mut marks = VecDeque::with_capacity(REMEMBERED_BLOCKS + 1);
        marks.push_back(Mark { block: 0, offset: 0, pending: None });
        NetasciiFile { file, marks, raw: Vec::new() }
    }
}

impl BlockSource for NetasciiFile {
    fn read_block(&mut self, index: u64, out: &mut [u8]) -> io::Result<usize> {
        let Some(mark) = self.marks.iter().find(|m| m.block == index).copied() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("netascii block {index} is no longer reachable"),
            ));
        };
        // Each input byte yields at least one output byte, so this much input always suffices.
        self.raw.resize(out.len(), 0);
        let (mut offset, mut pending, mut written) = (mark.offset, mark.pending, 0);
        loop {
            let want = out.len() - written;
            let got = if want == 0 { 0 } else { read_full_at(&self.file, &mut self.raw[..want], offset)? };
            let (used, n, left) = encode(&self.raw[..got], &mut out[written..], pending);
            offset += used as u64;
            written += n;
            pending = left;
            if written == out.len() || (got == 0 && pending.is_none()) {
                break;
            }
        }
        if !self.marks.iter().any(|m| m.block == index + 1) {
            if self.marks.len() >= REMEMBERED_BLOCKS {
                self.marks.pop_front();
            }
            self.marks.push_back(Mark { block: index + 1, offset, pending });
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn convert_all(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in input {
            match b {
                b'\n' => out.extend_from_slice(b"\r\n"),
                b'\r' => out.extend_from_slice(b"\r\0"),
                b => out.push(b),
            }
        }
        out
    }

    fn temp_file(content: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(content).unwrap();
        f
    }

    #[test]
    fn encode_expands_lf_and_cr() {
        let mut out = [0u8; 32];
        let (used, n, pending) = encode(b"a\nb\r\nc\r", &mut out, None);
        assert_eq!((used, pending), (7, None));
        assert_eq!(&out[..n], b"a\r\nb\r\0\r\nc\r\0");
    }

    #[test]
    fn encode_carries_the_second_byte_of_a_split_pair() {
        let mut out = [0u8; 2];
        let (used, n, pending) = encode(b"x\ny", &mut out, None);
        assert_eq!((used, n, pending), (2, 2, Some(b'\n')));
        assert_eq!(&out, b"x\r");
        let (used, n, pending) = encode(b"y", &mut out, pending);
        assert_eq!((used, n, pending), (1, 2, None));
        assert_eq!(&out, b"\ny");
    }

    #[test]
    fn blocks_are_full_until_the_last_and_join_to_the_conversion() {
        let content: Vec<u8> = (0..5000u32).map(|i| b"ab\ncd\r\r\n\n"[i as usize % 9]).collect();
        let expected = convert_all(&content);
        for blksize in [8usize, 9, 512, 513] {
            let mut src = NetasciiFile::new(temp_file(&content));
            let mut joined = Vec::new();
            let mut buf = vec![0u8; blksize];
            for index in 0.. {
                let n = src.read_block(index, &mut buf).unwrap();
                joined.extend_from_slice(&buf[..n]);
                if n < blksize {
                    break;
                }
            }
            assert_eq!(joined, expected, "blksize {blksize}");
        }
        assert_eq!(encoded_len(&temp_file(&content)).unwrap(), expected.len() as u64);
    }

    #[test]
    fn a_recent_block_can_be_read_again_after_later_ones() {
        let content = b"line one\nline two\r\nline three\n".repeat(50);
        let mut src = NetasciiFile::new(temp_file(&content));
        let mut first = vec![0u8; 16];
        let mut again = vec![0u8; 16];
        for i in 0..10 {
            src.read_block(i, &mut first).unwrap();
        }
        src.read_block(7, &mut first).unwrap();
        src.read_block(8, &mut again).unwrap();
        src.read_block(7, &mut again).unwrap();
        assert_eq!(first, again);
        assert!(src.read_block(1000, &mut again).is_err());
    }
}
