//! Fuzzes the TFTP codec and the transfer state machine with arbitrary datagrams.
//!
//! Part 1: `Packet::parse` must never panic, and whatever it accepts must survive an
//! encode/parse round trip unchanged. Part 2: the same bytes, cut into datagrams, are fed to a
//! transfer (options chosen by the first byte); it must never panic, never produce more packets
//! than its window, and only ever produce packets that parse.
#![no_main]

use bty::tftp::options::{negotiate, Limits};
use bty::tftp::packet::Packet;
use bty::tftp::transfer::{BlockSource, Status, Transfer};
use libfuzzer_sys::fuzz_target;

/// A file of `len` bytes whose content is its own offsets.
struct Pattern(u64);

impl BlockSource for Pattern {
    fn read_block(&mut self, index: u64, out: &mut [u8]) -> std::io::Result<usize> {
        let start = (index * out.len() as u64).min(self.0);
        let n = (self.0 - start).min(out.len() as u64) as usize;
        for (i, b) in out[..n].iter_mut().enumerate() {
            *b = (start + i as u64) as u8;
        }
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = Packet::parse(data) {
        let mut encoded = Vec::new();
        packet.encode(&mut encoded);
        assert_eq!(Packet::parse(&encoded).as_ref(), Ok(&packet), "round trip changed the packet");
    }

    let Some((&selector, rest)) = data.split_first() else { return };
    let windows = ["1", "4", "64"];
    let sizes = ["8", "512", "1468"];
    let options = [("blksize", sizes[usize::from(selector % 3)]), ("windowsize", windows[usize::from(selector / 3 % 3)]), ("tsize", "0")];
    let Ok(negotiated) = negotiate(&options, Limits { max_blksize: 65464, max_windowsize: 64 }) else { return };
    let len = u64::from(selector) * 97;
    let oack = if selector & 0x80 != 0 { negotiated.option_ack(len) } else { None };
    let mut transfer = Transfer::new(Pattern(len), &negotiated, oack, 3);
    let mut status = transfer.start();
    // Datagrams are separated by 0xFE bytes; an empty piece stands for a timeout.
    let mut pieces = rest.split(|&b| b == 0xfe);
    loop {
        assert!(transfer.packets().count() <= usize::from(negotiated.windowsize.max(1)));
        for p in transfer.packets() {
            assert!(Packet::parse(p).is_ok(), "produced an unparsable packet");
        }
        if matches!(status, Status::Done | Status::Failed(_)) {
            break;
        }
        let Some(piece) = pieces.next() else { break };
        status = if piece.is_empty() { transfer.on_timeout() } else { transfer.on_datagram(piece) };
    }
});
