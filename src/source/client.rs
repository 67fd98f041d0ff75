//! The one HTTP client every remote source shares: TLS roots, timeouts, retries and backoff.
//!
//! Timeouts are what turn a stalled server into an error instead of a hang: a connect timeout,
//! and a per-read stall timeout (`BTY_HTTP_STALL_SECS`, read here and nowhere else). Retries
//! are bounded with exponential backoff on 429, 5xx and transport failures, honouring
//! `Retry-After` up to a cap. Status codes are returned to the caller (never turned into errors
//! by ureq) because only the caller knows what a 206, 401 or 416 means for it. This module
//! does not know about Range, resume or registries.

use crate::error::{Error, ErrorKind, Result};
use std::io::Read;
use std::sync::OnceLock;
use std::time::Duration;
use ureq::http::Response;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
use ureq::Body;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one read may wait for bytes before the connection counts as stalled.
const DEFAULT_STALL: Duration = Duration::from_secs(30);
/// Attempts at one request (or at one resume) before giving up.
pub const MAX_ATTEMPTS: u32 = 6;
/// The first backoff; each further attempt doubles it.
const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// No single wait is longer than this, whatever `Retry-After` asks for.
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// Where Debian, Alpine and Fedora keep the system's CA bundle.
const SYSTEM_BUNDLES: &[&str] =
    &["/etc/ssl/certs/ca-certificates.crt", "/etc/ssl/cert.pem", "/etc/pki/tls/certs/ca-bundle.crt"];

/// The shared agent, built on first use.
pub fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_per_read(Some(stall_timeout()))
            .max_redirects(10)
            // A registry's Bearer token may follow a redirect on the same host, never to a CDN.
            .redirect_auth_headers(ureq::config::RedirectAuthHeaders::SameHost)
            .user_agent(format!("bty/{}", crate::VERSION))
            .tls_config(TlsConfig::builder().root_certs(root_certs()).build())
            .build()
            .new_agent()
    })
}

/// The stall timeout: `BTY_HTTP_STALL_SECS` (whole seconds) or 30 s.
pub fn stall_timeout() -> Duration {
    std::env::var("BTY_HTTP_STALL_SECS")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|&s| s > 0)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_STALL)
}

/// The certificates of the system store plus `SSL_CERT_FILE`; Mozilla's compiled-in roots
/// when neither exists (the netboot initramfs has no /etc/ssl).
fn root_certs() -> RootCerts {
    let mut files: Vec<String> = std::env::var("SSL_CERT_FILE").ok().into_iter().collect();
    files.extend(SYSTEM_BUNDLES.iter().find(|p| std::path::Path::new(p).exists()).map(|p| p.to_string()));
    let mut certs: Vec<Certificate<'static>> = Vec::new();
    for file in files {
        let Ok(pem) = std::fs::read(&file) else {
            crate::log_warn!("cannot read certificate file {file}; ignoring it");
            continue;
        };
        certs.extend(ureq::tls::parse_pem(&pem).filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c),
            _ => None,
        }));
    }
    if certs.is_empty() {
        RootCerts::WebPki
    } else {
        RootCerts::Specific(std::sync::Arc::new(certs))
    }
}

/// Whether a status is worth another attempt (the server said "later", not "no").
pub fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// How long to wait before attempt `attempt` (1-based count of failures so far), or the
/// server's `Retry-After` when it gave one, both capped.
pub fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    retry_after.unwrap_or(exp).min(BACKOFF_CAP)
}

/// The `Retry-After` of a response, in seconds form (the HTTP-date form is rare and ignored).
pub fn retry_after(resp: &Response<Body>) -> Option<Duration> {
    header(resp, "retry-after")?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A response header as text.
pub fn header<'a>(resp: &'a Response<Body>, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Sends a request built by `send`, retrying transport failures and transient statuses with
/// backoff. Any other response (2xx, 3xx, 4xx) is returned for the caller to interpret.
/// `shown` names the request in messages (a URL without credentials).
pub fn send_with_retries(
    shown: &str,
    mut send: impl FnMut() -> std::result::Result<Response<Body>, ureq::Error>,
) -> Result<Response<Body>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let wait = match send() {
            Ok(resp) if !is_transient_status(resp.status().as_u16()) => return Ok(resp),
            Ok(resp) => {
                if attempt >= MAX_ATTEMPTS {
                    let status = resp.status().as_u16();
                    return Err(Error::failed(format!(
                        "server answered HTTP {status} (gave up after {attempt} attempts)"
                    ))
                    .context(format!("fetching {shown}")));
                }
                backoff(attempt, retry_after(&resp))
            }
            Err(e) => {
                let (kind, what, retryable) = describe_transport(e);
                if attempt >= MAX_ATTEMPTS || !retryable {
                    let what =
                        if attempt > 1 { format!("{what} (gave up after {attempt} attempts)") } else { what };
                    return Err(Error::new(kind, what).context(format!("fetching {shown}")));
                }
                backoff(attempt, None)
            }
        };
        crate::log_debug!("{shown}: attempt {attempt} failed; retrying in {wait:?}");
        std::thread::sleep(wait);
    }
}

/// A ureq error as a kind, words for people, and whether another attempt may succeed (a
/// refused or dropped connection may; a bad URL or an untrusted certificate will not). Only
/// fixed words are taken from ureq, whose own text can contain the URI and so credentials.
fn describe_transport(e: ureq::Error) -> (ErrorKind, String, bool) {
    use ureq::Error as U;
    const TLS_HINT: &str = "if the server uses a private CA, set SSL_CERT_FILE to a PEM bundle holding it";
    match e {
        U::Timeout(t) => (ErrorKind::Failed, format!("timed out ({t})"), true),
        U::HostNotFound => (ErrorKind::Failed, "host not found (DNS)".to_string(), true),
        U::ConnectionFailed => (ErrorKind::Failed, "connection failed".to_string(), true),
        // rustls reports handshake and certificate failures as InvalidData.
        U::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
            (ErrorKind::Failed, format!("TLS failed ({}); {TLS_HINT}", Error::from(io)), false)
        }
        U::Io(io) => (ErrorKind::Failed, format!("connection failed: {}", Error::from(io)), true),
        U::TooManyRedirects | U::RedirectFailed => {
            (ErrorKind::Failed, "too many or broken redirects".to_string(), false)
        }
        U::BadUri(_) | U::Http(_) => (ErrorKind::Invalid, "malformed URL".to_string(), false),
        U::Rustls(r) => (ErrorKind::Failed, format!("TLS failed ({r}); {TLS_HINT}"), false),
        U::Tls(_) | U::Pem(_) => (ErrorKind::Failed, "TLS setup failed".to_string(), false),
        other => (ErrorKind::Failed, other.to_string(), true),
    }
}

/// An unexpected status as an error whose kind fits it (401/403 unauthorized, 404 not found).
pub fn status_error(shown: &str, status: u16) -> Error {
    let kind = match status {
        401 | 403 => ErrorKind::Unauthorized,
        404 | 410 => ErrorKind::NotFound,
        _ => ErrorKind::Failed,
    };
    Error::new(kind, format!("server answered HTTP {status}")).context(format!("fetching {shown}"))
}

/// Reads a whole (small) body, refusing more than `cap` bytes: it reads `cap + 1` and rejects.
pub fn read_capped(resp: Response<Body>, cap: u64, shown: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    resp.into_body()
        .into_reader()
        .take(cap + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::from(e).context(format!("reading {shown}")))?;
    if buf.len() as u64 > cap {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!("{shown} is larger than the {} MiB limit", cap >> 20),
        ));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1, None), Duration::from_millis(250));
        assert_eq!(backoff(3, None), Duration::from_secs(1));
        assert_eq!(backoff(40, None), BACKOFF_CAP);
        assert_eq!(backoff(1, Some(Duration::from_secs(2))), Duration::from_secs(2));
        assert_eq!(backoff(1, Some(Duration::from_secs(3600))), BACKOFF_CAP);
    }

    #[test]
    fn only_later_statuses_are_transient() {
        assert!(is_transient_status(429) && is_transient_status(503));
        assert!(!is_transient_status(404) && !is_transient_status(401) && !is_transient_status(416));
    }
}
