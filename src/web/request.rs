//! Our own small HTTP request type: what handlers see. Sockets stay in `edge/` and
//! `server.rs`; tests build requests with [`Request::fake`].
//!
//! Parsing happens here once: the path is split into segments, the query and cookies decoded,
//! the client address resolved (trusted proxies only), and bodies read with a size cap so no
//! handler can read an unbounded body into memory by mistake.

use super::response::HttpError;
use crate::config::TrustedProxy;
use crate::wire::FieldError;
use std::cell::RefCell;
use std::io::Read;
use std::net::IpAddr;

/// The HTTP methods bty-web routes; anything else is answered 405.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// HEAD: like GET without a body.
    Head,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// DELETE.
    Delete,
    /// Anything else.
    Other,
}

impl Method {
    /// Parses a request-line method.
    pub fn parse(s: &str) -> Method {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            _ => Method::Other,
        }
    }

    /// Whether the method changes state (and so may need a CSRF token).
    pub fn is_unsafe(self) -> bool {
        !matches!(self, Method::Get | Method::Head)
    }
}

/// Who made an authenticated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A browser session (cookie `bty-token`); the id hash keys CSRF tokens and logout.
    Session {
        /// sha256 of the session id, hex.
        id_hash: String,
    },
    /// An API token (`Authorization: Bearer`).
    Token {
        /// The token's id.
        id: i64,
    },
}

/// A parsed request.
pub struct Request<'a> {
    /// The method.
    pub method: Method,
    /// The raw path without the query (`/machines/aa:bb:…`).
    pub path: String,
    /// Percent-decoded path segments (`["machines", "aa:bb:…"]`).
    pub segments: Vec<String>,
    /// Decoded query pairs in order.
    pub query: Vec<(String, String)>,
    /// Headers with lower-case names.
    pub headers: Vec<(String, String)>,
    /// The client address after trusted-proxy resolution.
    pub client_ip: String,
    /// The declared body length, when the client sent one.
    pub body_len: Option<u64>,
    /// Set by the router once authentication succeeded.
    pub principal: Option<Principal>,
    body: RefCell<Option<Box<dyn Read + 'a>>>,
    /// A form body the router already read (to check its CSRF token).
    form_cache: RefCell<Option<Vec<(String, String)>>>,
}

impl<'a> Request<'a> {
    /// Builds a request from its parts; `peer` is the socket's address.
    pub fn new(
        method: &str,
        url: &str,
        headers: Vec<(String, String)>,
        peer: Option<IpAddr>,
        trusted_proxies: &TrustedProxy,
        body_len: Option<u64>,
        body: Box<dyn Read + 'a>,
    ) -> Request<'a> {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let headers: Vec<(String, String)> =
            headers.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
        let client_ip = client_ip(peer, &headers, trusted_proxies);
        Request {
            method: Method::parse(method),
            segments: path.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect(),
            path: path.to_string(),
            query: parse_pairs(query),
            headers,
            client_ip,
            body_len,
            principal: None,
            body: RefCell::new(Some(body)),
            form_cache: RefCell::new(None),
        }
    }

    /// A request for tests: no headers, an empty body, client 127.0.0.1.
    pub fn fake(method: &str, url: &str) -> Request<'static> {
        Request::new(
            method,
            url,
            Vec::new(),
            Some(IpAddr::from([127, 0, 0, 1])),
            &TrustedProxy::Off,
            Some(0),
            Box::new(std::io::empty()),
        )
    }

    /// The same request with a header added (tests).
    pub fn with_header(mut self, name: &str, value: &str) -> Request<'a> {
        self.headers.push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// The same request with a body (tests).
    pub fn with_body(mut self, body: Vec<u8>) -> Request<'a> {
        self.body_len = Some(body.len() as u64);
        self.body = RefCell::new(Some(Box::new(std::io::Cursor::new(body))));
        self
    }

    /// The first header with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    /// The first query value with this name.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// A cookie's value.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == "cookie")
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// The `Host` the client used (for URLs in scripts and catalogs), or `fallback`.
    pub fn host_or(&self, fallback: &str) -> String {
        match self.header("host") {
            // Only what a host name, an IPv4/IPv6 literal and a port consist of: the value is
            // echoed into scripts and catalogs.
            Some(h)
                if !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)) =>
            {
                h.to_string()
            }
            _ => fallback.to_string(),
        }
    }

    /// Whether the client prefers HTML (a browser) over JSON.
    pub fn wants_html(&self) -> bool {
        self.header("accept").is_some_and(|a| a.contains("text/html"))
    }

    /// Takes the body stream (once); streaming handlers use it for uploads.
    pub fn take_body(&self) -> Result<Box<dyn Read + 'a>, HttpError> {
        self.body.borrow_mut().take().ok_or_else(|| HttpError::internal("request body already read"))
    }

    /// Reads the whole body, refusing with 413 past `limit` bytes.
    pub fn read_body(&self, limit: u64) -> Result<Vec<u8>, HttpError> {
        if self.body_len.is_some_and(|n| n > limit) {
            return Err(HttpError::too_large(limit));
        }
        let mut buf = Vec::new();
        let mut body = self.take_body()?.take(limit + 1);
        body.read_to_end(&mut buf)
            .map_err(|e| HttpError::bad_request(format!("reading request body: {e}")))?;
        if buf.len() as u64 > limit {
            return Err(HttpError::too_large(limit));
        }
        Ok(buf)
    }

    /// Decodes a JSON object body of at most `limit` bytes; a malformed one is a 422 with a
    /// `detail`. Every body of the API is an object, and serde would fill a struct from an
    /// array field by field (`["done"]` as a status), so anything else is refused first.
    pub fn json<T: serde::de::DeserializeOwned>(&self, limit: u64) -> Result<T, HttpError> {
        let body = self.read_body(limit)?;
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(HttpError::unprocessable(vec![FieldError {
                loc: vec!["body".into()],
                msg: "Input should be a valid dictionary or object to extract fields from".into(),
                kind: "model_attributes_type".into(),
            }]));
        }
        serde_json::from_slice(&body).map_err(|e| HttpError::unprocessable(vec![json_error(&e)]))
    }

    /// Decodes an `application/x-www-form-urlencoded` body of at most `limit` bytes.
    pub fn form(&self, limit: u64) -> Result<Vec<(String, String)>, HttpError> {
        if let Some(cached) = self.form_cache.borrow().as_ref() {
            return Ok(cached.clone());
        }
        let body = self.read_body(limit)?;
        let pairs = parse_pairs(&String::from_utf8_lossy(&body));
        *self.form_cache.borrow_mut() = Some(pairs.clone());
        Ok(pairs)
    }

    /// Whether the body is a url-encoded form.
    pub fn is_form(&self) -> bool {
        self.header("content-type").is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
    }
}

/// A serde error as the reference's (pydantic's) 422 entry: an unknown field is
/// `extra_forbidden` with the field in `loc`, as scripts written against upstream match on.
fn json_error(e: &serde_json::Error) -> FieldError {
    let text = e.to_string();
    let unknown = text.strip_prefix("unknown field `").and_then(|rest| rest.split_once('`')).map(|(f, _)| f);
    match unknown {
        Some(field) => FieldError {
            loc: vec!["body".into(), field.to_string()],
            msg: "Extra inputs are not permitted".into(),
            kind: "extra_forbidden".into(),
        },
        None => FieldError {
            loc: vec!["body".into()],
            msg: text,
            kind: if e.is_syntax() || e.is_eof() { "json_invalid".into() } else { "value_error".into() },
        },
    }
}

/// The client address: the peer, unless the peer is a trusted proxy; then `X-Forwarded-For` is
/// read from the right, each entry a trusted proxy added, up to the first address that is not a
/// trusted proxy (with [`TrustedProxy::AnyPeer`], only the entry the peer itself added). The
/// left of the header is whatever the client wrote, so it is never believed past an untrusted
/// hop; an entry that is not an address stops the walk. IPv4-mapped IPv6 becomes plain IPv4.
fn client_ip(peer: Option<IpAddr>, headers: &[(String, String)], trusted: &TrustedProxy) -> String {
    let plain = |p: IpAddr| match p {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(p),
        v4 => v4,
    };
    let Some(mut client) = peer.map(plain) else { return String::new() };
    if trusted.trusts(client) {
        let hops = headers.iter().filter(|(k, _)| k == "x-forwarded-for").flat_map(|(_, v)| v.split(','));
        let hops: Vec<&str> = hops.map(str::trim).collect();
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>() else { break };
            client = plain(ip);
            if *trusted == TrustedProxy::AnyPeer || !trusted.trusts(client) {
                break;
            }
        }
    }
    client.to_string()
}

/// Decodes `a=1&b=x%20y` (also `+` as space).
pub fn parse_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(&k.replace('+', " ")), percent_decode(&v.replace('+', " ")))
        })
        .collect()
}

/// Decodes `%XX` escapes; invalid escapes are kept literally.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_query_and_cookies_are_parsed_once() {
        let r = Request::fake("GET", "/machines/aa%3Abb?limit=5&q=a+b")
            .with_header("Cookie", "x=1; bty-token=abc.def");
        assert_eq!(r.segments, ["machines", "aa:bb"]);
        assert_eq!(r.query("limit"), Some("5"));
        assert_eq!(r.query("q"), Some("a b"));
        assert_eq!(r.cookie("bty-token"), Some("abc.def"));
        assert_eq!(r.cookie("nope"), None);
    }

    #[test]
    fn host_header_is_used_only_when_it_looks_like_a_host() {
        let r = Request::fake("GET", "/").with_header("Host", "[fd00::1]:8080");
        assert_eq!(r.host_or("fallback"), "[fd00::1]:8080");
        let r = Request::fake("GET", "/").with_header("Host", "a&&shell");
        assert_eq!(r.host_or("fallback"), "fallback");
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy_and_read_from_the_right() {
        let ip = |xff: &str, peer: [u8; 4], trusted: &[&str]| {
            let h = vec![("X-Forwarded-For".to_string(), xff.to_string())];
            let trusted: Vec<String> = trusted.iter().map(|t| t.to_string()).collect();
            let trusted = TrustedProxy::parse(&trusted).unwrap();
            let peer = Some(IpAddr::from(peer));
            Request::new("GET", "/", h, peer, &trusted, None, Box::new(std::io::empty())).client_ip
        };
        assert_eq!(ip("6.6.6.6, 10.9.9.9", [10, 0, 0, 1], &["10.0.0.1"]), "10.9.9.9");
        assert_eq!(ip("6.6.6.6, 10.9.9.9", [10, 0, 0, 1], &[]), "10.0.0.1");
        assert_eq!(ip("6.6.6.6, 10.9.9.9", [10, 0, 0, 2], &["10.0.0.1"]), "10.0.0.2");
        assert_eq!(ip("6.6.6.6, 192.0.2.7, 10.1.1.1", [10, 0, 0, 1], &["10.0.0.0/8"]), "192.0.2.7");
        assert_eq!(ip("6.6.6.6, 10.1.1.1", [10, 0, 0, 1], &["1"]), "10.1.1.1");
        assert_eq!(ip("6.6.6.6, junk, 10.1.1.1", [10, 0, 0, 1], &["10.0.0.0/8"]), "10.1.1.1");
        let mapped = Some("::ffff:192.168.1.2".parse().unwrap());
        let r =
            Request::new("GET", "/", vec![], mapped, &TrustedProxy::Off, None, Box::new(std::io::empty()));
        assert_eq!(r.client_ip, "192.168.1.2");
    }

    #[test]
    fn bodies_past_the_limit_are_413() {
        let r = Request::fake("POST", "/x").with_body(vec![b'a'; 11]);
        assert_eq!(r.read_body(10).unwrap_err().status, 413);
        let r = Request::fake("POST", "/x").with_body(b"{bad".to_vec());
        assert_eq!(r.json::<serde_json::Value>(100).unwrap_err().status, 422);
    }

    #[test]
    fn a_body_that_is_not_a_json_object_is_422() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)] // only its shape matters
        struct Status {
            status: String,
        }
        for body in ["[\"done\"]", "\"done\"", "1", " []", ""] {
            let r = Request::fake("POST", "/x").with_body(body.as_bytes().to_vec());
            assert_eq!(r.json::<Status>(100).unwrap_err().status, 422, "{body:?}");
        }
        let r = Request::fake("POST", "/x").with_body(b" \n{\"status\": \"done\"}".to_vec());
        assert_eq!(r.json::<Status>(100).unwrap().status, "done");
    }
}
