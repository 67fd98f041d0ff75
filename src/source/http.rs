//! An object on an HTTP(S) server as a byte source, streamed with no temp file.
//!
//! Opening sends one probe (`GET` with `Range: bytes=0-0`) that learns the length, whether the
//! server takes Range requests, and the validators (`ETag`, `Last-Modified`). A stream whose
//! connection drops or stalls resumes with `Range: bytes=N-` from the last byte it yielded,
//! guarded by `If-Range` and by comparing validators, so a changed object is an error rather
//! than a splice of two versions. A server without Range support is restarted from 0 only while
//! nothing has been yielded. Random access (`read_at`, used by qcow2) is served by Range GETs of
//! whole blocks with a small cache, because qcow2 reads many small tables. This module does not
//! hash; the engine hashes what the stream yields.

use super::client::{self, header, MAX_ATTEMPTS};
use super::url::WebUrl;
use super::Source;
use crate::error::{Error, Result};
use std::io::Read;
use std::sync::{Arc, Mutex};
use ureq::http::Response;
use ureq::Body;

/// Bytes fetched per random-access miss.
const BLOCK: u64 = 1 << 20;
/// Blocks kept for random access (qcow2 alternates between a table and the data it points to).
const CACHED_BLOCKS: usize = 4;

/// Produces a fresh `Authorization` value when the server answers 401 (an expired token).
pub type Reauth = Box<dyn Fn() -> Result<String> + Send + Sync>;

/// How a remote object is to be fetched, beyond its URL.
#[derive(Default)]
pub struct HttpOptions {
    /// The `Authorization` header value to send (a registry's `Bearer …`).
    pub authorization: Option<String>,
    /// Called once per request on a 401 to obtain a new `Authorization` value.
    pub reauth: Option<Reauth>,
    /// A digest the transport vouches for (the OCI layer digest).
    pub expected_sha256: Option<[u8; 32]>,
    /// The object's name, when the URL's last segment is not it (an OCI title).
    pub file_name: Option<String>,
    /// What messages call the source, when not the URL (an `oras://` ref).
    pub shown: Option<String>,
}

/// An HTTP(S) object; cheap to share between a hashing stream and random reads.
pub struct HttpSource {
    inner: Arc<Inner>,
}

struct Inner {
    /// The URL requests use: as given, less its credentials (sent as a header instead).
    url: String,
    shown: String,
    name: String,
    authorization: Mutex<Option<String>>,
    reauth: Option<Reauth>,
    expected: Option<[u8; 32]>,
    meta: Meta,
    cache: Mutex<Vec<(u64, Arc<Vec<u8>>)>>,
}

/// What the probe learned about the object.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Meta {
    len: Option<u64>,
    ranges: bool,
    etag: Option<String>,
    last_modified: Option<String>,
}

impl HttpSource {
    /// Probes `url` and returns a source for it.
    pub fn open(url: &str) -> Result<HttpSource> {
        HttpSource::with_options(url, HttpOptions::default())
    }

    /// Probes `url` with extra request options.
    pub fn with_options(url: &str, opts: HttpOptions) -> Result<HttpSource> {
        let parsed = WebUrl::parse(url)?;
        let shown = opts.shown.unwrap_or_else(|| parsed.display());
        let name = opts.file_name.unwrap_or_else(|| parsed.file_name());
        let authorization = opts.authorization.or_else(|| parsed.basic_authorization());
        let mut inner = Inner {
            url: parsed.display(),
            shown,
            name,
            authorization: Mutex::new(authorization),
            reauth: opts.reauth,
            expected: opts.expected_sha256,
            meta: Meta { len: None, ranges: false, etag: None, last_modified: None },
            cache: Mutex::new(Vec::new()),
        };
        inner.meta = inner.probe()?;
        Ok(HttpSource { inner: Arc::new(inner) })
    }
}

impl Inner {
    /// `GET` with `Range: bytes=0-0`: one request that answers length, Range support and
    /// validators, and (unlike HEAD) works with pre-signed GET-only URLs.
    fn probe(&self) -> Result<Meta> {
        let mut resp = self.get(&[("Range", "bytes=0-0".to_string())])?;
        let status = resp.status().as_u16();
        if status == 206 {
            // Finish the one-byte body so the connection is reused by the next request.
            let _ = resp.body_mut().as_reader().take(2).read_to_end(&mut Vec::new());
        }
        let (len, ranges) = match status {
            206 => (content_range(&resp).and_then(|r| r.total), true),
            200 => (content_length(&resp), false),
            // An empty object cannot satisfy byte 0.
            416 => (content_range(&resp).and_then(|r| r.total).or(Some(0)), true),
            _ => return Err(client::status_error(&self.shown, status)),
        };
        Ok(Meta {
            len,
            ranges,
            etag: header(&resp, "etag").map(str::to_string),
            last_modified: header(&resp, "last-modified").map(str::to_string),
        })
    }

    /// A GET with the given extra headers and the current authorization, retried on transient
    /// failures, re-authorised once on 401.
    fn get(&self, extra: &[(&str, String)]) -> Result<Response<Body>> {
        let send = || {
            let mut req = client::agent().get(&self.url).header("Accept-Encoding", "identity");
            if let Some(auth) = self.authorization.lock().unwrap_or_else(|p| p.into_inner()).as_deref() {
                req = req.header("Authorization", auth);
            }
            for (k, v) in extra {
                req = req.header(*k, v);
            }
            req.call()
        };
        let resp = client::send_with_retries(&self.shown, send)?;
        if resp.status().as_u16() != 401 {
            return Ok(resp);
        }
        let Some(reauth) = &self.reauth else { return Err(client::status_error(&self.shown, 401)) };
        let fresh = reauth()?;
        *self.authorization.lock().unwrap_or_else(|p| p.into_inner()) = Some(fresh);
        client::send_with_retries(&self.shown, send)
    }

    /// Request headers for bytes from `start` (to `end` inclusive, when given), guarded so a
    /// changed object answers 200 (the whole new object) instead of a piece of it.
    fn range_headers(&self, start: u64, end: Option<u64>) -> Vec<(&'static str, String)> {
        let range = match end {
            Some(e) => format!("bytes={start}-{e}"),
            None => format!("bytes={start}-"),
        };
        let mut h = vec![("Range", range)];
        // If-Range needs a strong validator; a weak ETag falls back to Last-Modified.
        match (&self.meta.etag, &self.meta.last_modified) {
            (Some(tag), _) if !tag.starts_with("W/") => h.push(("If-Range", tag.clone())),
            (_, Some(date)) => h.push(("If-Range", date.clone())),
            _ => {}
        }
        h
    }

    /// Fails when a response's validators show the object is no longer the one probed.
    fn check_unchanged(&self, resp: &Response<Body>) -> Result<()> {
        let etag = header(resp, "etag");
        if let (Some(was), Some(now)) = (self.meta.etag.as_deref(), etag) {
            if was != now {
                return Err(changed(&self.shown, &format!("ETag {was} became {now}")));
            }
        }
        let modified = header(resp, "last-modified");
        if let (Some(was), Some(now), None) = (self.meta.last_modified.as_deref(), modified, etag) {
            if was != now {
                return Err(changed(&self.shown, &format!("Last-Modified {was} became {now}")));
            }
        }
        Ok(())
    }

    /// Opens the body from byte `pos`: a plain GET at 0 (nothing yielded yet, so a server
    /// without Range support may start over), else a guarded Range GET whose answer must be
    /// the same object from exactly `pos`.
    fn connect(&self, pos: u64) -> Result<ureq::BodyReader<'static>> {
        let resp = if pos == 0 { self.get(&[])? } else { self.get(&self.range_headers(pos, None))? };
        let status = resp.status().as_u16();
        match status {
            200 if pos == 0 => {
                self.check_unchanged(&resp)?;
                if let (Some(was), Some(now)) = (self.meta.len, content_length(&resp)) {
                    if was != now {
                        return Err(changed(&self.shown, &format!("its length {was} became {now}")));
                    }
                }
            }
            200 => {
                self.check_unchanged(&resp)?;
                return Err(Error::failed(format!(
                    "{}: the server ignored the Range request, so the transfer cannot resume at byte {pos}; \
                     serve the image from a server with Range support (nginx, any CDN, a registry)",
                    self.shown
                )));
            }
            206 => {
                self.check_unchanged(&resp)?;
                let range = content_range(&resp).ok_or_else(|| {
                    Error::failed(format!("{}: a 206 answer without a valid Content-Range", self.shown))
                })?;
                if range.start != Some(pos)
                    || (range.total.is_some() && self.meta.len.is_some() && range.total != self.meta.len)
                {
                    return Err(changed(
                        &self.shown,
                        &format!("asked for byte {pos}, got Content-Range {range:?}"),
                    ));
                }
            }
            416 => {
                return Err(Error::failed(format!(
                    "{}: the server announced {} bytes but refuses to send byte {pos} (HTTP 416); \
                     its Content-Length is wrong or the object shrank",
                    self.shown,
                    self.meta.len.map(|l| l.to_string()).unwrap_or_else(|| "more".into()),
                )))
            }
            _ => return Err(client::status_error(&self.shown, status)),
        }
        Ok(resp.into_body().into_reader())
    }

    /// Bytes `[start, start + BLOCK)` (fewer at the end), from the cache or one Range GET.
    fn block(&self, start: u64) -> Result<Arc<Vec<u8>>> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = cache.iter().position(|(s, _)| *s == start) {
            let hit = cache.remove(i);
            cache.insert(0, hit.clone());
            return Ok(hit.1);
        }
        let mut end = start + BLOCK - 1;
        if let Some(len) = self.meta.len {
            end = end.min(len.saturating_sub(1));
        }
        let data = self.range(start, end)?;
        let data = Arc::new(data);
        cache.insert(0, (start, data.clone()));
        cache.truncate(CACHED_BLOCKS);
        Ok(data)
    }

    /// Bytes `start..=end` exactly: Range GETs retried on transport failures, each asking
    /// only for what is still missing, so a dropped connection resumes where it stopped.
    fn range(&self, start: u64, end: u64) -> Result<Vec<u8>> {
        let mut data = Vec::with_capacity((end - start + 1) as usize);
        let mut failures = 0;
        while start + (data.len() as u64) <= end {
            let before = data.len();
            match self.fetch_range(start + before as u64, end, &mut data)? {
                // Complete (or as long as an object of unknown length goes).
                Ok(()) => break,
                // Progress resets the count: only a connection that yields nothing gives up.
                Err(_) if data.len() > before => failures = 0,
                Err(e) if failures + 1 >= MAX_ATTEMPTS => return Err(e),
                Err(_) => {
                    failures += 1;
                    std::thread::sleep(client::backoff(failures, None));
                }
            }
        }
        Ok(data)
    }

    /// One Range GET appending to `data`. The outer error is final (the server said no); the
    /// inner one is a transport failure while reading the body, worth asking again for the
    /// rest.
    fn fetch_range(&self, start: u64, end: u64, data: &mut Vec<u8>) -> Result<Result<()>> {
        let resp = self.get(&self.range_headers(start, Some(end)))?;
        let status = resp.status().as_u16();
        if status == 200 {
            self.check_unchanged(&resp)?;
            return Err(Error::failed(format!("{}: the server ignored a Range request", self.shown)));
        }
        if status != 206 {
            return Err(client::status_error(&self.shown, status));
        }
        self.check_unchanged(&resp)?;
        if content_range(&resp).and_then(|r| r.start) != Some(start) {
            return Err(changed(&self.shown, &format!("asked for byte {start}, got another range")));
        }
        let want = end - start + 1;
        let before = data.len();
        // Reading to the end (not just `want` bytes) lets ureq see the body finish and keep the
        // connection for the next request: a qcow2 or zstd walk makes hundreds of these.
        let read = resp.into_body().into_reader().take(want + 1).read_to_end(data);
        let got = (data.len() - before) as u64;
        Ok(match read {
            Ok(_) if got > want => {
                data.truncate(before);
                Err(Error::failed(format!("{}: a longer answer than the Range asked for", self.shown)))
            }
            Ok(_) if got == want || self.meta.len.is_none() => Ok(()),
            Ok(_) => Err(Error::failed(format!("{}: short answer to a Range request", self.shown))),
            Err(e) => Err(Error::from(e).context(format!("reading {}", self.shown))),
        })
    }
}

fn changed(shown: &str, how: &str) -> Error {
    Error::failed(format!(
        "{shown} changed on the server while it was being read ({how}); start again to get the new version"
    ))
}

/// The parsed `Content-Range: bytes START-END/TOTAL` (or `bytes */TOTAL`).
#[derive(Debug, PartialEq, Eq)]
struct ContentRange {
    start: Option<u64>,
    total: Option<u64>,
}

fn content_range(resp: &Response<Body>) -> Option<ContentRange> {
    parse_content_range(header(resp, "content-range")?)
}

fn parse_content_range(v: &str) -> Option<ContentRange> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (span, total) = rest.split_once('/')?;
    let total = if total == "*" { None } else { Some(total.trim().parse().ok()?) };
    let start = if span == "*" { None } else { Some(span.split_once('-')?.0.trim().parse().ok()?) };
    Some(ContentRange { start, total })
}

fn content_length(resp: &Response<Body>) -> Option<u64> {
    header(resp, "content-length")?.trim().parse().ok()
}

impl Source for HttpSource {
    fn describe(&self) -> String {
        self.inner.shown.clone()
    }

    fn len(&self) -> Option<u64> {
        self.inner.meta.len
    }

    fn open_stream(&self, offset: u64) -> Result<Box<dyn Read + Send>> {
        let body = self.inner.connect(offset)?;
        Ok(Box::new(HttpStream { inner: self.inner.clone(), pos: offset, body: Some(body), failures: 0 }))
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        if !self.inner.meta.ranges {
            return Err(Error::invalid(format!(
                "{}: the server does not take Range requests, which reading this format remotely needs; \
                 download the file and flash the local copy",
                self.inner.shown
            )));
        }
        let mut done = 0;
        while done < buf.len() {
            let at = offset + done as u64;
            if self.inner.meta.len.is_some_and(|len| at >= len) {
                break;
            }
            let start = at - at % BLOCK;
            let block = self.inner.block(start)?;
            let skip = (at - start) as usize;
            if skip >= block.len() {
                break;
            }
            let n = (block.len() - skip).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&block[skip..skip + n]);
            done += n;
        }
        Ok(done)
    }

    fn supports_random_access(&self) -> bool {
        self.inner.meta.ranges
    }

    fn read_range(&self, range: std::ops::Range<u64>) -> Result<Vec<u8>> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        if !self.inner.meta.ranges {
            return Err(Error::invalid(format!(
                "{}: the server does not take Range requests; serve the image from one that does",
                self.inner.shown
            )));
        }
        // Past the cache: these are large, read once, and counted by the caller.
        self.inner.range(range.start, range.end - 1)
    }

    fn expected_sha256(&self) -> Option<[u8; 32]> {
        self.inner.expected
    }

    fn file_name(&self) -> String {
        self.inner.name.clone()
    }
}

/// A sequential read of the object that resumes where it left off.
struct HttpStream {
    inner: Arc<Inner>,
    /// The offset of the next byte to yield.
    pos: u64,
    body: Option<ureq::BodyReader<'static>>,
    /// Consecutive failures without a byte of progress.
    failures: u32,
}

impl HttpStream {
    fn read_some(&mut self, buf: &mut [u8]) -> Result<usize> {
        loop {
            let body = match self.body.as_mut() {
                Some(b) => b,
                None => self.body.insert(self.inner.connect(self.pos)?),
            };
            let cause = match body.read(buf) {
                Ok(0) => match self.inner.meta.len {
                    Some(len) if self.pos < len => {
                        format!("the connection closed at byte {} of {len}", self.pos)
                    }
                    _ => return Ok(0),
                },
                Ok(n) => {
                    if self.inner.meta.len.is_some_and(|len| self.pos + n as u64 > len) {
                        return Err(Error::failed(format!(
                            "{}: the server sent more bytes than the {} it announced",
                            self.inner.shown,
                            self.inner.meta.len.unwrap_or(0)
                        )));
                    }
                    self.pos += n as u64;
                    self.failures = 0;
                    return Ok(n);
                }
                Err(e) => Error::from(e).to_string(),
            };
            self.body = None;
            self.failures += 1;
            if self.failures >= MAX_ATTEMPTS {
                return Err(Error::failed(format!(
                    "{}: gave up at byte {} after {} failed attempts to resume: {cause}",
                    self.inner.shown, self.pos, self.failures
                )));
            }
            let wait = client::backoff(self.failures, None);
            crate::log_warn!("{}: {cause}; resuming at byte {} in {wait:?}", self.inner.shown, self.pos);
            std::thread::sleep(wait);
        }
    }
}

impl Read for HttpStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        Ok(self.read_some(buf)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_forms_parse() {
        assert_eq!(
            parse_content_range("bytes 0-0/1234"),
            Some(ContentRange { start: Some(0), total: Some(1234) })
        );
        assert_eq!(parse_content_range("bytes */0"), Some(ContentRange { start: None, total: Some(0) }));
        assert_eq!(parse_content_range("bytes 5-9/*"), Some(ContentRange { start: Some(5), total: None }));
        assert_eq!(parse_content_range("items 0-1/2"), None);
    }
}
