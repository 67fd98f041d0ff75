//! A request head (request line and header fields), parsed once with `httparse` and checked
//! for what decides how the body is framed.
//!
//! Framing is where request smuggling lives, so it is strict: one `Content-Length` of plain
//! digits, or `Transfer-Encoding: chunked` alone, or no body. Anything else (a duplicate or
//! conflicting length, a length next to a transfer coding, a coding other than `chunked`, a
//! non-numeric length) is refused with 400 and the connection closed, so no leftover byte can
//! be read as a second request. This file does not read sockets.

/// Most header fields in one request; more is 431.
pub const MAX_HEADERS: usize = 128;

/// Most bytes of a whole request head (request line and every header); more is 431.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;

/// How the body that follows a head is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Exactly this many bytes (0: no body).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A complete, checked request head.
#[derive(Debug, Clone)]
pub struct Head {
    /// The method as sent (`GET`).
    pub method: String,
    /// The request target (`/pxe/aa:bb?x=1`).
    pub target: String,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the client asked for `100 Continue` before sending its body.
    pub expect_continue: bool,
    /// Whether the connection may carry another request after this one.
    pub keep_alive: bool,
}

impl Head {
    /// The declared body length, if the body is not chunked.
    pub fn body_len(&self) -> Option<u64> {
        match self.framing {
            Framing::Length(n) => Some(n),
            Framing::Chunked => None,
        }
    }
}

/// What the bytes read so far amount to.
#[derive(Debug)]
pub enum Parsed {
    /// Not a whole head yet (and not too long): read more.
    Partial,
    /// A whole head of this many bytes; what follows is body or the next request.
    Complete(Head, usize),
    /// Refused: answer this status with this message and close the connection.
    Refused(u16, String),
}

/// Parses the start of `buf` as a request head.
pub fn parse(buf: &[u8]) -> Parsed {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD_BYTES => n,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD_BYTES => return Parsed::Partial,
        Ok(_) => return Parsed::Refused(431, format!("request head longer than {MAX_HEAD_BYTES} bytes")),
        Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Refused(431, format!("more than {MAX_HEADERS} header fields"))
        }
        Err(e) => return Parsed::Refused(400, format!("malformed request head: {e}")),
    };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Parsed::Refused(400, "malformed request line".into());
    };
    if !target.starts_with('/') {
        return Parsed::Refused(
            400,
            format!("request target must be a path starting with '/', not {target:?}"),
        );
    }
    let mut headers = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        match std::str::from_utf8(h.value) {
            Ok(v) => headers.push((h.name.to_string(), v.to_string())),
            Err(_) => return Parsed::Refused(400, format!("header {} is not UTF-8", h.name)),
        }
    }
    let framing = match framing(&headers, minor) {
        Ok(f) => f,
        Err(why) => return Parsed::Refused(400, why),
    };
    let tokens = |name: &str| -> Vec<String> {
        headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .collect()
    };
    let connection = tokens("connection");
    let keep_alive = if minor == 1 {
        !connection.iter().any(|t| t == "close")
    } else {
        connection.iter().any(|t| t == "keep-alive")
    };
    let expect_continue = minor == 1 && tokens("expect").iter().any(|t| t == "100-continue");
    let head = Head {
        method: method.to_string(),
        target: target.to_string(),
        headers,
        framing,
        expect_continue,
        keep_alive,
    };
    Parsed::Complete(head, len)
}

/// The body framing the headers declare, or why they are refused (RFC 9112 section 6).
fn framing(headers: &[(String, String)], minor: u8) -> Result<Framing, String> {
    let values = |name: &str| -> Vec<&str> {
        headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    };
    let lengths = values("content-length");
    let codings = values("transfer-encoding");
    if !codings.is_empty() {
        if !lengths.is_empty() {
            return Err("Content-Length together with Transfer-Encoding is ambiguous; send one".into());
        }
        if minor == 0 {
            return Err("Transfer-Encoding is not allowed in HTTP/1.0".into());
        }
        return match codings.as_slice() {
            [one] if one.trim().eq_ignore_ascii_case("chunked") => Ok(Framing::Chunked),
            _ => Err(format!(
                "unsupported Transfer-Encoding {:?}: only a single 'chunked' is accepted",
                codings.join(", ")
            )),
        };
    }
    match lengths.as_slice() {
        [] => Ok(Framing::Length(0)),
        [one] => {
            let v = one.trim();
            if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("Content-Length {v:?} is not a number of bytes"));
            }
            v.parse().map(Framing::Length).map_err(|_| format!("Content-Length {v:?} is out of range"))
        }
        _ => Err("more than one Content-Length; send exactly one".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(raw: &str) -> Result<Framing, u16> {
        match parse(raw.as_bytes()) {
            Parsed::Complete(h, _) => Ok(h.framing),
            Parsed::Refused(s, _) => Err(s),
            Parsed::Partial => Err(0),
        }
    }

    #[test]
    fn body_framing_is_one_length_or_chunked_alone() {
        let cases = [
            ("GET / HTTP/1.1\r\n\r\n", Ok(Framing::Length(0))),
            ("PUT / HTTP/1.1\r\nContent-Length: 12\r\n\r\n", Ok(Framing::Length(12))),
            ("PUT / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n", Ok(Framing::Chunked)),
            ("PUT / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", Err(400)),
            ("PUT / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", Err(400)),
            ("PUT / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", Err(400)),
            ("PUT / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", Err(400)),
            ("PUT / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", Err(400)),
            ("PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", Err(400)),
            ("PUT / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", Err(400)),
            ("PUT / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", Err(400)),
            ("PUT / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", Err(400)),
            ("PUT / HTTP/1.1\r\nContent-Length: \r\n\r\n", Err(400)),
            ("PUT / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", Err(400)),
            ("GET http://x/ HTTP/1.1\r\n\r\n", Err(400)),
            ("GET / HTTP/1.1\r\nHost: x", Err(0)),
        ];
        for (raw, want) in cases {
            assert_eq!(status(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn heads_past_the_caps_are_431() {
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(status(&format!("GET / HTTP/1.1\r\n{many}\r\n")), Err(431));
        let long = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(status(&long), Err(431));
    }

    #[test]
    fn keep_alive_and_continue_follow_the_version() {
        let head = |raw: &str| match parse(raw.as_bytes()) {
            Parsed::Complete(h, _) => h,
            other => panic!("{other:?}"),
        };
        assert!(head("GET / HTTP/1.1\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(head("PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n").expect_continue);
        match parse(b"GET /a HTTP/1.1\r\n\r\nGET /b") {
            Parsed::Complete(h, n) => assert_eq!((h.target.as_str(), n), ("/a", 19)),
            other => panic!("{other:?}"),
        }
    }
}
