//! One read transfer as a state machine without sockets: events go in (the start, a datagram
//! from the client, a timeout), and the packets to send come out in a reused buffer.
//!
//! Blocks are numbered absolutely from 1 (the OACK, when there is one, is block 0), and only
//! the low 16 bits go on the wire, so files past 65535 blocks roll over to block 0 as
//! tftp-hpa and curl expect. A window (RFC 7440) of blocks is sent back to back; an ACK inside
//! the window moves the window to the block after it, a timeout resends the window from the
//! first unacknowledged block, and an ACK for anything already acknowledged is ignored, so a
//! duplicated ACK never causes duplicated DATA (the Sorcerer's Apprentice bug of RFC 1350).
//! This module does not own sockets, clocks or files: `server.rs` drives it and the
//! [`BlockSource`] supplies the bytes.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::options::Negotiated;
use super::packet::{data_header, encode_error, ErrorCode, Packet, DATA_HEADER_LEN};

/// The bytes of a transfer, block by block.
pub trait BlockSource {
    /// Fills `out` with block `index` (0-based) of the transfer, where every block before the
    /// last is exactly `out.len()` bytes. Returns how many bytes were written; fewer than
    /// `out.len()` (possibly 0) means this is the last block.
    fn read_block(&mut self, index: u64, out: &mut [u8]) -> io::Result<usize>;
}

/// A file served as it is (octet mode), read in pieces of [`READ_PIECE`] bytes: at windowsize
/// 1 every block costs a round trip, and one `pread` per block was a fifth of the server's
/// system calls.
pub struct OctetFile {
    file: File,
    /// Bytes of the file from offset `start`; `len` of them are valid.
    piece: Vec<u8>,
    start: u64,
    len: usize,
}

/// Bytes read from the file at once (several blocks at the usual sizes).
const READ_PIECE: usize = 64 * 1024;

impl OctetFile {
    /// Serves `file` from its start.
    pub fn new(file: File) -> OctetFile {
        OctetFile { file, piece: Vec::new(), start: 0, len: 0 }
    }
}

impl BlockSource for OctetFile {
    fn read_block(&mut self, index: u64, out: &mut [u8]) -> io::Result<usize> {
        let offset = index * out.len() as u64;
        let held = offset >= self.start && offset + out.len() as u64 <= self.start + self.len as u64;
        if !held {
            // A resend goes back to an earlier block; anything not held is read afresh.
            self.piece.resize(READ_PIECE.max(out.len()), 0);
            self.len = read_full_at(&self.file, &mut self.piece, offset)?;
            self.start = offset;
        }
        let from = (offset - self.start) as usize;
        let n = out.len().min(self.len - from);
        out[..n].copy_from_slice(&self.piece[from..from + n]);
        Ok(n)
    }
}

/// Reads until `buf` is full or the file ends; returns the count read.
pub fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// What an event did to the transfer. The packets from [`Transfer::packets`] are sent first in
/// every case, then the status decides what the driver does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Packets were produced: send them and restart the retransmission timer.
    Sent,
    /// Nothing changed (a stray, duplicate or garbled datagram): keep waiting, timer untouched.
    Ignored,
    /// The last block was acknowledged.
    Done,
    /// The transfer is over without success; any packets (an ERROR) are still to be sent.
    Failed(Failure),
}

/// Why a transfer ended without success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The client stopped answering for more than the allowed retries.
    TimedOut,
    /// The client sent an ERROR packet.
    ClientError { code: u16, message: String },
    /// Reading the file failed.
    Io(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::TimedOut => f.write_str("client stopped answering"),
            Failure::ClientError { code, message } => write!(f, "client sent error {code}: {message}"),
            Failure::Io(e) => write!(f, "reading the file failed: {e}"),
        }
    }
}

/// A read transfer in progress.
pub struct Transfer<S> {
    source: S,
    blksize: usize,
    windowsize: u64,
    max_retries: u32,
    oack: Option<Vec<u8>>,
    /// The lowest block not yet acknowledged (0 while an OACK is unacknowledged).
    next_unacked: u64,
    /// One past the highest block sent in the current window.
    next_send: u64,
    /// The last block and its length, once a short read has shown where the data ends.
    last_block: Option<(u64, usize)>,
    /// Consecutive timeouts without progress.
    retries: u32,
    outbox: Outbox,
}

impl<S: BlockSource> Transfer<S> {
    /// A transfer of `source` with the negotiated options. `oack` is the OACK packet to start
    /// with, or `None` to start with DATA block 1 (a request without accepted options).
    pub fn new(source: S, negotiated: &Negotiated, oack: Option<Vec<u8>>, max_retries: u32) -> Transfer<S> {
        let blksize = usize::from(negotiated.blksize);
        let windowsize = u64::from(negotiated.windowsize.max(1));
        let first = if oack.is_some() { 0 } else { 1 };
        Transfer {
            source,
            blksize,
            windowsize,
            max_retries,
            oack,
            next_unacked: first,
            next_send: first,
            last_block: None,
            retries: 0,
            outbox: Outbox::with_capacity(windowsize as usize * (blksize + DATA_HEADER_LEN)),
        }
    }

    /// The first packets: the OACK, or the first window of DATA.
    pub fn start(&mut self) -> Status {
        self.outbox.clear();
        self.send_window()
    }

    /// A datagram arrived from the client.
    pub fn on_datagram(&mut self, bytes: &[u8]) -> Status {
        self.outbox.clear();
        match Packet::parse(bytes) {
            Ok(Packet::Ack { block }) => self.on_ack(block),
            Ok(Packet::Error { code, message }) => Status::Failed(Failure::ClientError {
                code: code.code(),
                message: String::from_utf8_lossy(message).into_owned(),
            }),
            // Anything else from the client's port is noise; the retransmission timer decides.
            _ => Status::Ignored,
        }
    }

    /// The retransmission timer expired without progress: resend the window or give up.
    pub fn on_timeout(&mut self) -> Status {
        self.outbox.clear();
        self.retries += 1;
        if self.retries > self.max_retries {
            return Status::Failed(Failure::TimedOut);
        }
        self.send_window()
    }

    /// The packets the last event produced, in sending order.
    pub fn packets(&self) -> impl Iterator<Item = &[u8]> {
        self.outbox.packets()
    }

    /// Data bytes the client has acknowledged so far.
    pub fn bytes_acked(&self) -> u64 {
        match self.last_block {
            Some((last, len)) if self.next_unacked > last => (last - 1) * self.blksize as u64 + len as u64,
            _ => self.next_unacked.saturating_sub(1) * self.blksize as u64,
        }
    }

    fn on_ack(&mut self, wire: u16) -> Status {
        // The window is at most a few dozen blocks, so exactly one absolute block in it can
        // carry these 16 bits; anything outside it is old or bogus.
        let Some(block) = (self.next_unacked..self.next_send).rev().find(|b| *b as u16 == wire) else {
            return Status::Ignored;
        };
        self.retries = 0;
        self.next_unacked = block + 1;
        if self.last_block.is_some_and(|(last, _)| block == last) {
            return Status::Done;
        }
        // A full-window ACK continues after it; an ACK inside the window (the client saw a gap)
        // restarts from the block after it, as RFC 7440 asks.
        self.send_window()
    }

    /// Fills the outbox with the window starting at the first unacknowledged block.
    fn send_window(&mut self) -> Status {
        self.next_send = self.next_unacked;
        if self.next_send == 0 {
            if let Some(oack) = &self.oack {
                self.outbox.push(oack);
            }
            self.next_send = 1;
            return Status::Sent;
        }
        let end = self.next_unacked + self.windowsize;
        while self.next_send < end && self.last_block.is_none_or(|(last, _)| self.next_send <= last) {
            let block = self.next_send;
            let (source, blksize) = (&mut self.source, self.blksize);
            let read = self.outbox.push_with(DATA_HEADER_LEN + blksize, |slot| {
                slot[..DATA_HEADER_LEN].copy_from_slice(&data_header(block as u16));
                let n = source.read_block(block - 1, &mut slot[DATA_HEADER_LEN..])?;
                Ok(DATA_HEADER_LEN + n)
            });
            match read {
                Ok(len) if len - DATA_HEADER_LEN < blksize => {
                    self.last_block = Some((block, len - DATA_HEADER_LEN));
                }
                Ok(_) => {}
                Err(e) => {
                    self.outbox.clear();
                    let mut error = Vec::new();
                    encode_error(&mut error, ErrorCode::NotDefined, "reading the file failed");
                    self.outbox.push(&error);
                    return Status::Failed(Failure::Io(e.to_string()));
                }
            }
            self.next_send += 1;
        }
        Status::Sent
    }
}

/// Packets laid end to end in one buffer that is reused for every window, so sending costs no
/// allocation once the first window has grown it.
struct Outbox {
    buf: Vec<u8>,
    used: usize,
    ends: Vec<usize>,
}

impl Outbox {
    fn with_capacity(bytes: usize) -> Outbox {
        Outbox { buf: Vec::with_capacity(bytes), used: 0, ends: Vec::new() }
    }

    fn clear(&mut self) {
        self.used = 0;
        self.ends.clear();
    }

    fn push(&mut self, packet: &[u8]) {
        let _ = self.push_with(packet.len(), |slot| {
            slot.copy_from_slice(packet);
            Ok(packet.len())
        });
    }

    /// Lets `fill` write up to `max` bytes of the next packet; it returns the packet's length.
    fn push_with(
        &mut self,
        max: usize,
        fill: impl FnOnce(&mut [u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        if self.buf.len() < self.used + max {
            self.buf.resize(self.used + max, 0);
        }
        let len = fill(&mut self.buf[self.used..self.used + max])?.min(max);
        self.used += len;
        self.ends.push(self.used);
        Ok(len)
    }

    fn packets(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(self.ends.iter().copied()).map(|(s, e)| &self.buf[s..e])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tftp::options::{negotiate, Limits};

    /// An in-memory source that counts reads, to prove what was (not) sent.
    struct Memory {
        data: Vec<u8>,
        reads: usize,
    }

    impl BlockSource for Memory {
        fn read_block(&mut self, index: u64, out: &mut [u8]) -> io::Result<usize> {
            self.reads += 1;
            let start = (index as usize * out.len()).min(self.data.len());
            let end = (start + out.len()).min(self.data.len());
            out[..end - start].copy_from_slice(&self.data[start..end]);
            Ok(end - start)
        }
    }

    fn transfer(len: usize, options: &[(&str, &str)]) -> Transfer<Memory> {
        let limits = Limits { max_blksize: 65464, max_windowsize: 64 };
        let n = negotiate(options, limits).unwrap();
        let oack = n.option_ack(len as u64);
        let data = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        Transfer::new(Memory { data, reads: 0 }, &n, oack, 3)
    }

    fn ack(block: u16) -> Vec<u8> {
        let mut v = Vec::new();
        Packet::Ack { block }.encode(&mut v);
        v
    }

    /// The DATA block numbers and payloads the last event produced.
    fn sent(t: &Transfer<Memory>) -> Vec<(u16, Vec<u8>)> {
        t.packets()
            .map(|p| match Packet::parse(p) {
                Ok(Packet::Data { block, data }) => (block, data.to_vec()),
                other => panic!("not DATA: {other:?}"),
            })
            .collect()
    }

    fn blocks(t: &Transfer<Memory>) -> Vec<u16> {
        sent(t).into_iter().map(|(b, _)| b).collect()
    }

    #[test]
    fn octet_file_serves_blocks_in_order_after_a_resend_and_at_the_end() {
        use std::io::Write;
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 13 % 251) as u8).collect();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&data).unwrap();
        let mut src = OctetFile::new(f);
        let blksize = 1468;
        let block = |src: &mut OctetFile, index: u64| {
            let mut out = vec![0u8; blksize];
            let n = src.read_block(index, &mut out).unwrap();
            out.truncate(n);
            out
        };
        let mut all = Vec::new();
        for index in 0..=(data.len() / blksize) as u64 {
            all.extend(block(&mut src, index));
            if index == 100 {
                // A timeout resends from an earlier block.
                assert_eq!(block(&mut src, 3), data[3 * blksize..4 * blksize]);
            }
        }
        assert!(all == data);
        assert!(block(&mut src, 1000).is_empty(), "past the end");
    }

    #[test]
    fn plain_transfer_ends_with_an_empty_block_when_size_is_a_multiple() {
        let mut t = transfer(1024, &[]);
        assert_eq!(t.start(), Status::Sent);
        assert_eq!(sent(&t)[0].1.len(), 512);
        assert_eq!(t.on_datagram(&ack(1)), Status::Sent);
        assert_eq!(t.on_datagram(&ack(2)), Status::Sent);
        assert_eq!(sent(&t), vec![(3, vec![])]);
        assert_eq!(t.on_datagram(&ack(3)), Status::Done);
        assert_eq!(t.bytes_acked(), 1024);
    }

    #[test]
    fn duplicate_ack_sends_nothing() {
        let mut t = transfer(2000, &[]);
        t.start();
        assert_eq!(t.on_datagram(&ack(1)), Status::Sent);
        let reads = t.source.reads;
        assert_eq!(t.on_datagram(&ack(1)), Status::Ignored);
        assert_eq!(t.packets().count(), 0);
        assert_eq!(t.source.reads, reads);
    }

    #[test]
    fn lost_ack_is_recovered_by_a_timeout_resend_of_the_window() {
        let mut t = transfer(10_000, &[("blksize", "1000"), ("windowsize", "4")]);
        t.start();
        assert_eq!(t.on_datagram(&ack(0)), Status::Sent);
        assert_eq!(blocks(&t), vec![1, 2, 3, 4]);
        // The ACK for block 4 is lost: the timer resends the same window.
        assert_eq!(t.on_timeout(), Status::Sent);
        assert_eq!(blocks(&t), vec![1, 2, 3, 4]);
        assert_eq!(t.on_datagram(&ack(4)), Status::Sent);
        assert_eq!(blocks(&t), vec![5, 6, 7, 8]);
    }

    #[test]
    fn ack_inside_the_window_restarts_after_it() {
        let mut t = transfer(10_000, &[("blksize", "1000"), ("windowsize", "4")]);
        t.start();
        t.on_datagram(&ack(0));
        assert_eq!(t.on_datagram(&ack(2)), Status::Sent);
        assert_eq!(blocks(&t), vec![3, 4, 5, 6]);
        // The late full-window ACK of the old window still counts: block 4 arrived after all.
        assert_eq!(t.on_datagram(&ack(4)), Status::Sent);
        assert_eq!(blocks(&t), vec![5, 6, 7, 8]);
        assert_eq!(t.on_datagram(&ack(2)), Status::Ignored);
    }

    #[test]
    fn oack_is_resent_until_acknowledged() {
        let mut t = transfer(100, &[("tsize", "0")]);
        assert_eq!(t.start(), Status::Sent);
        let first: Vec<Vec<u8>> = t.packets().map(<[u8]>::to_vec).collect();
        assert!(matches!(Packet::parse(&first[0]), Ok(Packet::OptionAck(_))));
        assert_eq!(t.on_timeout(), Status::Sent);
        assert_eq!(t.packets().map(<[u8]>::to_vec).collect::<Vec<_>>(), first);
        assert_eq!(t.on_datagram(&ack(0)), Status::Sent);
        assert_eq!(sent(&t)[0].1.len(), 100);
    }

    #[test]
    fn gives_up_after_the_retry_limit() {
        let mut t = transfer(100, &[]);
        t.start();
        for _ in 0..3 {
            assert_eq!(t.on_timeout(), Status::Sent);
        }
        assert_eq!(t.on_timeout(), Status::Failed(Failure::TimedOut));
    }

    #[test]
    fn client_error_ends_the_transfer() {
        let mut t = transfer(100, &[]);
        t.start();
        let mut e = Vec::new();
        encode_error(&mut e, ErrorCode::BadOptions, "no thanks");
        let Status::Failed(Failure::ClientError { code: 8, message }) = t.on_datagram(&e) else { panic!() };
        assert_eq!(message, "no thanks");
    }

    #[test]
    fn garbage_is_ignored() {
        let mut t = transfer(100, &[]);
        t.start();
        for junk in [&b""[..], b"\x00", b"\x00\x09zz", b"\x00\x03\x00\x01data", b"\x00\x04\x00"] {
            assert_eq!(t.on_datagram(junk), Status::Ignored, "{junk:?}");
        }
    }

    #[test]
    fn block_numbers_roll_over_to_zero_past_65535() {
        let blocks_total = 65_537usize;
        let mut t = transfer(blocks_total * 512 + 10, &[]);
        let mut received = 0usize;
        let mut status = t.start();
        let mut expected_wire: u16 = 1;
        while status == Status::Sent {
            let (block, data) = sent(&t).pop().unwrap();
            assert_eq!(block, expected_wire);
            received += data.len();
            expected_wire = expected_wire.wrapping_add(1);
            status = t.on_datagram(&ack(block));
        }
        assert_eq!(status, Status::Done);
        assert_eq!(received, blocks_total * 512 + 10);
        assert_eq!(t.bytes_acked(), received as u64);
        // Block 65536 went out as 0 and the last one (65538) as 2.
        assert_eq!(expected_wire, 3);
    }

    #[test]
    fn window_with_rollover_accepts_the_wrapped_ack() {
        let mut t = transfer(70_000 * 512, &[("windowsize", "64")]);
        t.start();
        let mut status = t.on_datagram(&ack(0));
        while status == Status::Sent {
            let last = *blocks(&t).last().unwrap();
            status = t.on_datagram(&ack(last));
        }
        assert_eq!(status, Status::Done);
        assert_eq!(t.bytes_acked(), 70_000 * 512);
    }
}
