//! xz decoding on every core: liblzma's threaded decoder, started afresh for each stream of a
//! file made of concatenated streams.
//!
//! The threaded decoder decodes the blocks of a stream side by side when the block headers
//! record their sizes, as every multi-threaded xz encoder writes them (`xz -T`, the default
//! since xz 5.6); a single-block stream decodes on one thread as before. The `liblzma` crate's
//! threaded builder cannot ask for `LZMA_CONCATENATED`, so the streams and the padding between
//! them are walked here. Each stream is still checked whole: its end marker, index and check.

use liblzma::bufread::XzDecoder;
use liblzma::stream::{MtStreamBuilder, Stream};
use std::io::{self, BufRead, Read};

/// A `Read` of every stream in `R`, decoded on as many threads as the machine has cores.
pub struct XzReader<R: BufRead> {
    /// The decoder of the current stream; `None` once the last one has ended, or after an
    /// error between streams.
    decoder: Option<XzDecoder<R>>,
    /// Whether the last stream ended cleanly (so `None` above is the end, not a failure).
    ended: bool,
}

impl<R: BufRead> XzReader<R> {
    /// Starts decoding the first stream of `input`.
    pub fn new(input: R) -> io::Result<XzReader<R>> {
        Ok(XzReader { decoder: Some(XzDecoder::new_stream(input, threaded_decoder()?)), ended: false })
    }
}

impl<R: BufRead> Read for XzReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(decoder) = self.decoder.as_mut() else {
                // A read after an error must not look like a clean end of the image.
                return match self.ended {
                    true => Ok(0),
                    false => Err(io::Error::other("the xz stream failed earlier")),
                };
            };
            let n = decoder.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            // A stream ended (a cut-off one is an error from the decoder); another may follow.
            let Some(mut input) = self.decoder.take().map(XzDecoder::into_inner) else { return Ok(0) };
            if skip_padding(&mut input)? {
                self.decoder = Some(XzDecoder::new_stream(input, threaded_decoder()?));
            } else {
                self.ended = true;
            }
        }
    }
}

/// A threaded stream decoder. Past its memory allowance it goes on in one thread rather than
/// fail, as `xz` does.
fn threaded_decoder() -> io::Result<Stream> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    MtStreamBuilder::new()
        .threads(u32::try_from(threads).unwrap_or(1))
        .memlimit_threading(memory_for_threads())
        .memlimit_stop(u64::MAX)
        .decoder()
        .map_err(|e| io::Error::other(format!("starting the xz decoder: {e}")))
}

/// What the decoder threads may use together: a quarter of the machine's memory, `xz`'s own
/// default, so a 1 GiB board still decodes (in fewer threads) without running short.
fn memory_for_threads() -> u64 {
    let info = rustix::system::sysinfo();
    (info.totalram as u64).saturating_mul(u64::from(info.mem_unit.max(1))) / 4
}

/// Skips the padding after a stream (zero bytes, a multiple of four); true when another stream
/// follows it.
fn skip_padding(input: &mut impl BufRead) -> io::Result<bool> {
    let mut zeros = 0usize;
    let more = loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            break false;
        }
        let n = buf.iter().take_while(|&&b| b == 0).count();
        let stopped_at_data = n < buf.len();
        input.consume(n);
        zeros += n;
        if stopped_at_data {
            break true;
        }
    };
    if zeros % 4 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{zeros} bytes of padding after an xz stream, not a multiple of four: the file is corrupt"
            ),
        ));
    }
    Ok(more)
}

#[cfg(test)]
mod tests {
    use super::*;
    use liblzma::write::XzEncoder;
    use std::io::Write;

    /// `data` as one xz stream of blocks of `block` bytes, each recording its size.
    fn xz(data: &[u8], block: u64) -> Vec<u8> {
        let stream = MtStreamBuilder::new().threads(2).block_size(block).preset(0).encoder().unwrap();
        let mut e = XzEncoder::new_stream(Vec::new(), stream);
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn decode(stored: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        XzReader::new(stored)?.read_to_end(&mut out)?;
        Ok(out)
    }

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8 ^ (i >> 12) as u8).collect()
    }

    #[test]
    fn streams_of_many_blocks_and_concatenated_streams_with_padding_decode_whole() {
        let data = sample(3 << 20);
        assert!(decode(&xz(&data, 256 << 10)).unwrap() == data, "multi-block stream");
        let mut two = xz(&data[..1 << 20], 64 << 10);
        two.extend([0u8; 8]);
        two.extend(xz(&data[1 << 20..], 1 << 20));
        two.extend([0u8; 4]);
        assert!(decode(&two).unwrap() == data, "two streams with padding");
    }

    #[test]
    fn cut_streams_bad_padding_and_trailing_garbage_are_errors() {
        let data = sample(1 << 20);
        let whole = xz(&data, 256 << 10);
        assert!(decode(&whole[..whole.len() - 9]).is_err(), "a cut stream");
        let mut odd = whole.clone();
        odd.extend([0u8; 3]);
        let mut reader = XzReader::new(&odd[..]).unwrap();
        let err = reader.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("multiple of four"), "{err}");
        assert!(reader.read(&mut [0u8; 16]).is_err(), "a read after the error looked like the end");
        let mut garbage = whole;
        garbage.extend(b"\0\0\0\0junk");
        assert!(decode(&garbage).is_err(), "trailing garbage");
        assert!(decode(&[]).is_err(), "an empty file");
    }
}
