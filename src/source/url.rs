//! A web URL split into the parts bty cares about: scheme, credentials, host, port and the rest.
//!
//! The split is literal: the path, query and fragment are kept byte for byte (the catalog's
//! canonical form and `ref` depend on that), and nothing is percent-decoded. It exists so that
//! messages never show credentials and so the catalog can canonicalise a `src`; requests are
//! still made with the URL exactly as the user gave it. It does not resolve relative URLs.

use crate::error::{Error, Result};

/// An `http://` or `https://` URL, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebUrl {
    /// `http` or `https`, lower-case.
    pub scheme: String,
    /// `user:password` when the URL carried credentials.
    pub userinfo: Option<String>,
    /// The host as written (an IPv6 literal keeps its brackets).
    pub host: String,
    /// The explicit port, when one was written.
    pub port: Option<u16>,
    /// Path, query and fragment exactly as written (possibly empty).
    pub rest: String,
}

impl WebUrl {
    /// Splits `text`; fails on other schemes, a missing host or a bad port.
    pub fn parse(text: &str) -> Result<WebUrl> {
        let (scheme, after) = text
            .split_once("://")
            .ok_or_else(|| Error::invalid(format!("{:?} is not a URL (no scheme://)", redact(text))))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(Error::invalid(format!(
                "{:?}: only http:// and https:// URLs are supported",
                redact(text)
            )));
        }
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        let (authority, rest) = after.split_at(end);
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_string()), h),
            None => (None, authority),
        };
        let (host, port) = split_host_port(hostport)
            .ok_or_else(|| Error::invalid(format!("{:?}: bad host or port", redact(text))))?;
        if host.is_empty() {
            return Err(Error::invalid(format!("{:?}: the URL has no host", redact(text))));
        }
        Ok(WebUrl { scheme, userinfo, host: host.to_string(), port, rest: rest.to_string() })
    }

    /// The port requests go to (the explicit one, else 80 or 443).
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(if self.scheme == "https" { 443 } else { 80 })
    }

    /// `host[:port]` as written, without credentials.
    pub fn authority(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }

    /// The URL without credentials: what messages and logs show.
    pub fn display(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority(), self.rest)
    }

    /// The `Authorization: Basic …` value for the URL's credentials, when it has any
    /// (ureq does not send them itself, and they must not reach the Host header).
    pub fn basic_authorization(&self) -> Option<String> {
        let info = self.userinfo.as_deref()?;
        let (user, pass) = info.split_once(':').unwrap_or((info, ""));
        let pair = format!("{}:{}", percent_decode(user), percent_decode(pass));
        Some(format!("Basic {}", base64(pair.as_bytes())))
    }

    /// The last path segment (before any query), the object's file name; may be empty.
    pub fn file_name(&self) -> String {
        let path = self.rest.split(['?', '#']).next().unwrap_or("");
        path.rsplit('/').next().unwrap_or("").to_string()
    }
}

/// `text` with any `user:pass@` of a `scheme://` URL removed, for messages about unparsable input.
pub fn redact(text: &str) -> String {
    let Some((scheme, after)) = text.split_once("://") else { return text.to_string() };
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    match after[..end].rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://{host}{}", &after[end..]),
        None => text.to_string(),
    }
}

/// Decodes `%XX` escapes (credentials may escape `@` and `:`); invalid escapes stay literal.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard base64 with padding (RFC 4648), for Basic credentials.
fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn split_host_port(hostport: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let close = v6.find(']')?;
        let host = &hostport[..close + 2];
        match &hostport[close + 2..] {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?)),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let port = match port {
        None | Some("") => None,
        Some(p) => Some(p.parse::<u16>().ok()?),
    };
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_drops_credentials_and_keeps_the_rest_literally() {
        let u = WebUrl::parse("https://bob:s3cret@Example.com:8443/a/b%20c.img?x=1#f").unwrap();
        assert_eq!(u.userinfo.as_deref(), Some("bob:s3cret"));
        assert_eq!(u.display(), "https://Example.com:8443/a/b%20c.img?x=1#f");
        assert_eq!(u.file_name(), "b%20c.img");
    }

    #[test]
    fn credentials_become_basic_authorization() {
        let u = WebUrl::parse("http://Aladdin:open%20sesame@h/x").unwrap();
        assert_eq!(u.basic_authorization().as_deref(), Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="));
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(WebUrl::parse("http://h/x").unwrap().basic_authorization(), None);
    }

    #[test]
    fn ipv6_literals_keep_their_brackets() {
        let u = WebUrl::parse("http://[::1]:8080/x").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("[::1]", Some(8080)));
    }

    #[test]
    fn missing_host_and_bad_port_are_invalid() {
        assert!(WebUrl::parse("http:///x").is_err());
        assert!(WebUrl::parse("http://h:99999/x").is_err());
        assert!(WebUrl::parse("ftp://h/x").is_err());
    }

    #[test]
    fn redact_removes_userinfo_from_anything_url_shaped() {
        assert_eq!(redact("http://u:p@h/x@y"), "http://h/x@y");
        assert_eq!(redact("no url"), "no url");
    }
}
