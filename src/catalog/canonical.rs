//! `canonical_src` and `image_ref`: the provenance id of a catalog entry (reference §2.6).
//!
//! `ref = sha256(canonical src)`, lower-case hex. It is not a content hash: a rolling tag keeps
//! its ref when the bytes change. Canonicalisation dispatches on a case-insensitive scheme:
//! `file://` (segments cleaned, `..` refused), `http(s)://` (scheme and host lower-cased,
//! default port and credentials dropped, the rest kept literally), `oras://` (host and repo
//! lower-cased, tag or digest kept, grammar checked). Anything else is refused.

use crate::error::{Error, Result};
use crate::source::oras::OrasRef;
use crate::source::url::{redact, WebUrl};
use sha2::{Digest, Sha256};

/// The canonical form of a `src` (reference §2.6).
pub fn canonical_src(src: &str) -> Result<String> {
    let lower = src.get(..8).unwrap_or(src).to_ascii_lowercase();
    if lower.starts_with("file://") {
        return canonical_file(&src[7..]);
    }
    if lower.starts_with("http://") || lower.starts_with("https://") {
        let u = WebUrl::parse(src)?;
        let host = u.host.to_ascii_lowercase();
        let default_port = if u.scheme == "https" { 443 } else { 80 };
        let port = match u.port {
            Some(p) if p != default_port => format!(":{p}"),
            _ => String::new(),
        };
        return Ok(format!("{}://{host}{port}{}", u.scheme, u.rest));
    }
    if lower.starts_with("oras://") {
        let body = &src[7..];
        let cut = body.rfind('@').or_else(|| body.rfind(':')).unwrap_or(body.len());
        let (name, target) = body.split_at(cut);
        return Ok(OrasRef::parse(&format!("oras://{}{target}", name.to_ascii_lowercase()))?.to_spec());
    }
    Err(Error::invalid(format!(
        "{:?}: cannot canonicalise a src without an http://, https://, oras:// or file:// scheme",
        redact(src)
    )))
}

fn canonical_file(path: &str) -> Result<String> {
    if path.contains('\0') {
        return Err(Error::invalid("file:// src contains a NUL byte"));
    }
    let mut parts = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => return Err(Error::invalid(format!("file://{path}: a src may not contain '..'"))),
            s => parts.push(s),
        }
    }
    if parts.is_empty() {
        return Err(Error::invalid("file:// src has no path"));
    }
    Ok(format!("file://{}", parts.join("/")))
}

/// `sha256(canonical src)` as lower-case hex: the entry's `ref`.
pub fn image_ref(src: &str) -> Result<String> {
    let canonical = canonical_src(src)?;
    Ok(crate::source::hex(&Sha256::digest(canonical.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn check(input: &str, expected: &str) {
        assert_eq!(canonical_src(input).unwrap(), expected, "{input}");
        // Canonicalising is idempotent, so a canonical src round-trips.
        assert_eq!(canonical_src(expected).unwrap(), expected, "{expected}");
    }

    #[test]
    fn canonicalisation_table() {
        check("HTTP://Example.COM:80/Path/A.img", "http://example.com/Path/A.img");
        check("https://Example.com:443/a", "https://example.com/a");
        check("https://example.com:8443/a", "https://example.com:8443/a");
        check("http://example.com:443/a", "http://example.com:443/a");
        check("https://user:pw@Host.example/x%20y/?q=1#frag", "https://host.example/x%20y/?q=1#frag");
        check("https://host/dir/", "https://host/dir/");
        check("oras://GHCR.io/Owner/Repo:V1.0", "oras://ghcr.io/owner/repo:V1.0");
        check(&format!("ORAS://Host:5000/A/B@{D}"), &format!("oras://host:5000/a/b@{D}"));
        check("file:///var//lib/./bty/a.img", "file://var/lib/bty/a.img");
        check("FILE://Rel/Case.img", "file://Rel/Case.img");
    }

    #[test]
    fn canonicalisation_refusals() {
        for bad in [
            "file:///a/../b",
            "file:///",
            "http:///x",
            "ftp://h/x",
            "/plain/path",
            "oras://h/noowner:t",
            "oras://h/o/r",
        ] {
            assert!(canonical_src(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ref_is_the_sha256_of_the_canonical_src() {
        // printf 'https://example.com/a.img' | sha256sum
        let want = "38677a2c1ea942a56231187d34e849e8b167a99eb33bafae636c0afd53559488";
        assert_eq!(image_ref("HTTPS://EXAMPLE.com:443/a.img").unwrap(), want);
    }
}
