//! A request body as a handler reads it, on a request worker with blocking reads: the bytes
//! the poller already read past the head first, then the socket.
//!
//! The body must keep arriving at [`MIN_BODY_RATE`] on average after a grace period, so a
//! client trickling a body cannot hold a worker for long; `Expect: 100-continue` is answered
//! only when a handler actually reads (a refused upload is never sent); chunked bodies are
//! decoded; a shutting-down server aborts the read. What is left in the buffer after the body
//! is the next pipelined request, handed back with the connection.

use super::head::Framing;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Slowest average rate a request body may arrive at, after [`BODY_GRACE`].
pub const MIN_BODY_RATE: u64 = 4096;

/// Time a body has before the rate applies (a client's first write, a slow link's start).
pub const BODY_GRACE: Duration = Duration::from_secs(10);

/// Longest chunk-size or trailer line of a chunked body.
const MAX_LINE: usize = 4096;

/// Most trailer lines after a chunked body.
const MAX_TRAILERS: usize = 64;

/// Socket read size.
const READ_CHUNK: usize = 64 * 1024;

/// Longest single wait on the socket, so a shutdown is noticed promptly.
const TICK: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This many bytes of a length-delimited body left.
    Length(u64),
    /// Expecting a chunk-size line.
    ChunkSize,
    /// This many bytes of the current chunk left (then its CRLF).
    ChunkData(u64),
    /// Expecting the CRLF after a chunk.
    ChunkEnd,
    /// Reading trailer lines (this many so far) until an empty one.
    Trailers(usize),
    /// The whole body has been read.
    Done,
}

/// The body of one request on a blocking socket.
pub struct Inbound<'a> {
    stream: &'a TcpStream,
    buf: Vec<u8>,
    pos: usize,
    state: State,
    continue_pending: bool,
    started: Option<Instant>,
    received: u64,
    shutdown: &'a AtomicBool,
}

impl<'a> Inbound<'a> {
    /// A body framed as `framing`, starting with `rest` (bytes already read past the head).
    pub fn new(
        stream: &'a TcpStream,
        rest: Vec<u8>,
        framing: Framing,
        expect_continue: bool,
        shutdown: &'a AtomicBool,
    ) -> Inbound<'a> {
        let state = match framing {
            Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
        };
        Inbound {
            stream,
            buf: rest,
            pos: 0,
            state,
            continue_pending: expect_continue && state != State::Done,
            started: None,
            received: 0,
            shutdown,
        }
    }

    /// Whether the whole body has been read (so the connection can carry another request).
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The bytes read past the end of the body: the start of the next request.
    pub fn into_rest(mut self) -> Vec<u8> {
        self.buf.split_off(self.pos)
    }

    /// Makes sure unread bytes are buffered, reading the socket within the rate deadline.
    fn fill(&mut self) -> io::Result<()> {
        if self.pos < self.buf.len() {
            return Ok(());
        }
        if self.continue_pending {
            self.continue_pending = false;
            self.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let started = *self.started.get_or_insert_with(Instant::now);
        self.buf.resize(READ_CHUNK, 0);
        self.pos = 0;
        loop {
            if self.shutdown.load(Ordering::Relaxed) {
                self.buf.clear();
                return Err(io::Error::new(io::ErrorKind::Interrupted, "the server is shutting down"));
            }
            let allowed = BODY_GRACE + Duration::from_secs_f64(self.received as f64 / MIN_BODY_RATE as f64);
            let left = allowed.saturating_sub(started.elapsed());
            if left.is_zero() {
                self.buf.clear();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("request body arrived slower than {MIN_BODY_RATE} bytes/s"),
                ));
            }
            self.stream.set_read_timeout(Some(left.min(TICK)))?;
            let mut stream = self.stream;
            match stream.read(&mut self.buf) {
                Ok(0) => {
                    self.buf.clear();
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the client closed the connection before the end of its body",
                    ));
                }
                Ok(n) => {
                    self.buf.truncate(n);
                    self.received += n as u64;
                    return Ok(());
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.buf.clear();
                    return Err(e);
                }
            }
        }
    }

    /// Copies up to `want` buffered body bytes into `out`.
    fn take(&mut self, out: &mut [u8], want: u64) -> io::Result<usize> {
        self.fill()?;
        let n = (self.buf.len() - self.pos).min(out.len()).min(want.min(usize::MAX as u64) as usize);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }

    /// One CRLF- (or LF-) terminated line of a chunked body, without its terminator.
    fn line(&mut self) -> io::Result<Vec<u8>> {
        let mut line = Vec::new();
        loop {
            self.fill()?;
            let b = self.buf[self.pos];
            self.pos += 1;
            if b == b'\n' {
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if line.len() >= MAX_LINE {
                return Err(bad("chunk-size or trailer line too long"));
            }
            line.push(b);
        }
    }
}

fn bad(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("malformed chunked body: {why}"))
}

impl Read for Inbound<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            match self.state {
                State::Done => return Ok(0),
                State::Length(left) => {
                    let n = self.take(out, left)?;
                    self.state = if left == n as u64 { State::Done } else { State::Length(left - n as u64) };
                    return Ok(n);
                }
                State::ChunkData(left) => {
                    let n = self.take(out, left)?;
                    self.state =
                        if left == n as u64 { State::ChunkEnd } else { State::ChunkData(left - n as u64) };
                    return Ok(n);
                }
                State::ChunkSize => {
                    let line = self.line()?;
                    let text = std::str::from_utf8(&line).map_err(|_| bad("chunk size is not text"))?;
                    let hex = text.split(';').next().unwrap_or("").trim();
                    if hex.is_empty() || hex.len() > 15 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(bad("chunk size is not a hexadecimal number"));
                    }
                    let size = u64::from_str_radix(hex, 16).map_err(|_| bad("chunk size out of range"))?;
                    self.state = if size == 0 { State::Trailers(0) } else { State::ChunkData(size) };
                }
                State::ChunkEnd => {
                    if !self.line()?.is_empty() {
                        return Err(bad("chunk longer than its size"));
                    }
                    self.state = State::ChunkSize;
                }
                State::Trailers(count) => {
                    if self.line()?.is_empty() {
                        self.state = State::Done;
                    } else if count >= MAX_TRAILERS {
                        return Err(bad("too many trailer lines"));
                    } else {
                        self.state = State::Trailers(count + 1);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Reads the body `rest` + `sent` framed as `framing` through a real socket pair.
    fn read_body(framing: Framing, rest: &[u8], sent: &[u8]) -> (io::Result<Vec<u8>>, Vec<u8>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        client.write_all(sent).unwrap();
        let stop = AtomicBool::new(false);
        let mut body = Inbound::new(&server, rest.to_vec(), framing, false, &stop);
        let mut out = Vec::new();
        let r = body.read_to_end(&mut out).map(|_| out);
        (r, body.into_rest())
    }

    #[test]
    fn a_length_body_stops_at_its_length_and_keeps_the_next_request() {
        let (body, rest) = read_body(Framing::Length(5), b"he", b"lloGET /");
        assert_eq!((body.unwrap(), rest), (b"hello".to_vec(), b"GET /".to_vec()));
    }

    #[test]
    fn chunked_bodies_are_decoded() {
        let (body, rest) =
            read_body(Framing::Chunked, b"3;x=y\r\nabc\r\n", b"2\r\nde\r\n0\r\nT: 1\r\n\r\nnext");
        assert_eq!((body.unwrap(), rest), (b"abcde".to_vec(), b"next".to_vec()));
        let (body, _) = read_body(Framing::Chunked, b"zz\r\n", b"");
        assert_eq!(body.unwrap_err().kind(), io::ErrorKind::InvalidData);
        let (body, _) = read_body(Framing::Chunked, b"1\r\nabc\r\n", b"");
        assert_eq!(body.unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
