//! A pipe streamed from its start more than once.
//!
//! Format detection reads the first bytes of a source and the flash then streams it from its
//! start again; a file reopens, but a pipe (`/dev/stdin`, a FIFO, `<(zstdcat x.zst)`) gives each
//! byte once, so the bytes it has given are kept and replayed to the next stream from the
//! start. Only the first [`KEEP`] bytes are kept: enough for detection and for an abandoned
//! read-ahead. A stream from the start after another went further fails, naming the pipe,
//! rather than yielding a stream with a gap in it.

use std::fs::File;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};

/// Bytes kept for replay: more than detection reads, plus the read stage's look-ahead.
pub const KEEP: usize = 16 << 20;

/// The pipe and what it has given so far.
struct State {
    file: File,
    /// The first bytes read from the pipe, up to [`KEEP`].
    kept: Vec<u8>,
    /// Bytes read from the pipe in all.
    consumed: u64,
}

/// A pipe whose streams from the start replay what earlier ones read.
pub struct Replay {
    state: Arc<Mutex<State>>,
}

impl Replay {
    /// Takes over the read end `file`.
    pub fn new(file: File) -> Replay {
        Replay { state: Arc::new(Mutex::new(State { file, kept: Vec::new(), consumed: 0 })) }
    }

    /// A stream from the first byte; `name` says what the pipe is, for the error.
    pub fn stream(&self, name: String) -> ReplayStream {
        ReplayStream { state: self.state.clone(), pos: 0, name }
    }
}

/// One stream of a [`Replay`].
pub struct ReplayStream {
    state: Arc<Mutex<State>>,
    pos: u64,
    name: String,
}

impl Read for ReplayStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let kept = state.kept.len() as u64;
        if self.pos < kept {
            let from = &state.kept[self.pos as usize..];
            let n = from.len().min(buf.len());
            buf[..n].copy_from_slice(&from[..n]);
            self.pos += n as u64;
            return Ok(n);
        }
        if self.pos != state.consumed {
            return Err(io::Error::other(format!(
                "{} is a pipe and was already read past byte {}; it can be read from its start only once \
                 (save the image to a file, or pass --format so it is not read twice)",
                self.name, state.consumed
            )));
        }
        let n = state.file.read(buf)?;
        if state.consumed < KEEP as u64 {
            let keep = n.min(KEEP - state.kept.len());
            state.kept.extend_from_slice(&buf[..keep]);
        }
        state.consumed += n as u64;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn pipe_with(data: &[u8]) -> File {
        let (read, write) = rustix::pipe::pipe().unwrap();
        let data = data.to_vec();
        std::thread::spawn(move || File::from(write).write_all(&data));
        File::from(read)
    }

    #[test]
    fn a_second_stream_replays_what_the_first_read() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let replay = Replay::new(pipe_with(&data));
        let mut head = vec![0u8; 1000];
        replay.stream("p".into()).read_exact(&mut head).unwrap();
        assert_eq!(head, data[..1000]);
        let mut all = Vec::new();
        replay.stream("p".into()).read_to_end(&mut all).unwrap();
        assert!(all == data, "the replayed stream differs");
    }

    #[test]
    fn a_stream_from_the_start_after_the_kept_bytes_fails_naming_the_pipe() {
        let data = vec![7u8; KEEP + 4096];
        let replay = Replay::new(pipe_with(&data));
        let mut all = Vec::new();
        replay.stream("/dev/stdin".into()).read_to_end(&mut all).unwrap();
        assert_eq!(all.len(), data.len());
        let err = replay.stream("/dev/stdin".into()).read_to_end(&mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("/dev/stdin is a pipe"), "{err}");
    }
}
