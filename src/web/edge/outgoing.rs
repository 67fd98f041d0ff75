//! A response on its way out: the serialized head (and small body) in memory, then optionally
//! a file range sent with `sendfile`. Written non-blocking by the poller, a few bytes or
//! megabytes at a time, so a slow reader holds a socket and a file, never a thread.
//!
//! Nothing here decides what to answer; `server.rs` turns a handler's `Response` into this.

use std::fs::File;
use std::io::{self, Write};
use std::net::TcpStream;

/// Most bytes one `sendfile` call may move (keeps one fast reader from hogging the poller).
const SENDFILE_CHUNK: usize = 1 << 20;

/// A file range still to send.
pub struct FileRange {
    /// The open file.
    pub file: File,
    /// Next byte to send.
    pub offset: u64,
    /// Bytes left.
    pub remaining: u64,
}

/// Bytes still to send on one connection.
pub struct Outgoing {
    bytes: Vec<u8>,
    pos: usize,
    file: Option<FileRange>,
}

/// How far a non-blocking write got.
pub enum Progress {
    /// Everything was sent.
    Done,
    /// The socket is full; wait until it is writable. Carries the bytes sent by this call.
    Blocked(u64),
}

impl Outgoing {
    /// A response of `bytes` (head and body), then the optional file range.
    pub fn new(bytes: Vec<u8>, file: Option<FileRange>) -> Outgoing {
        Outgoing { bytes, pos: 0, file }
    }

    /// Writes as much as the socket takes now. A file that shrank under us ends the response
    /// early (the client sees a short body and retries); that is reported as an error so the
    /// connection is closed rather than reused.
    pub fn write_some(&mut self, mut stream: &TcpStream) -> io::Result<Progress> {
        let mut sent = 0u64;
        while self.pos < self.bytes.len() {
            match stream.write(&self.bytes[self.pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.pos += n;
                    sent += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Progress::Blocked(sent)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.bytes = Vec::new();
        while let Some(range) = self.file.as_mut().filter(|r| r.remaining > 0) {
            let want = range.remaining.min(SENDFILE_CHUNK as u64) as usize;
            match rustix::fs::sendfile(stream, &range.file, Some(&mut range.offset), want) {
                Ok(0) => {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while being sent"))
                }
                Ok(n) => {
                    range.remaining -= n as u64;
                    sent += n as u64;
                }
                Err(rustix::io::Errno::AGAIN) => return Ok(Progress::Blocked(sent)),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.file = None;
        Ok(Progress::Done)
    }
}

/// The reason phrase for a status (empty for ones we never send).
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        416 => "Range Not Satisfiable",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Serializes a response head. `body_len` becomes `Content-Length` (none for 1xx, 204 and
/// 304, which have no body, nor for a stream); header values with line breaks are dropped so
/// no handler can split a response.
pub fn head(status: u16, headers: &[(String, String)], body_len: Option<u64>, close: bool) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in headers {
        if !v.contains(['\r', '\n']) && !k.contains(['\r', '\n', ':']) {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    out.push_str(&format!("Date: {}\r\n", httpdate::fmt_http_date(std::time::SystemTime::now())));
    if let Some(n) = body_len.filter(|_| !matches!(status, 100..=199 | 204 | 304)) {
        out.push_str(&format!("Content-Length: {n}\r\n"));
    }
    if close {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// A complete JSON error response `{"detail": …}` that closes the connection, for requests
/// refused before any handler ran.
pub fn refusal(status: u16, detail: &str) -> Vec<u8> {
    let body = serde_json::json!({ "detail": detail }).to_string();
    let headers = [("Content-Type".to_string(), "application/json".to_string())];
    let mut out = head(status, &headers, Some(body.len() as u64), true);
    out.extend_from_slice(body.as_bytes());
    out
}
