//! Catalog TOML v1: parse, validate, merge with the local image root, serialise.
//!
//! Compatible with the Python bty (reference §2.4–2.6): same keys, same validation rules,
//! same `ref = sha256(canonical src)`. Unknown keys are ignored, as the reference does.
//! A catalog is loaded from a path, `http(s)://` (bty-web's `/catalog.toml` is just that) or
//! `oras://`; remote catalogs are capped at 4 MiB. This module does not fetch image bytes.

mod canonical;
mod emit;
mod hints;
mod local;
mod parse;

pub use canonical::{canonical_src, image_ref};
pub use emit::to_toml;
pub use hints::{arch_hint, format_id};
pub use local::{merge, scan_local};
pub use parse::parse;

use crate::error::{Context, Error, ErrorKind, Result};
use crate::source::url::{redact, WebUrl};
use crate::source::{client, HashingReader, Source};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::PathBuf;

/// Largest remote catalog read (reference §2.5).
pub const REMOTE_MAX_BYTES: u64 = 4 << 20;

/// The default local image root when `BTY_IMAGE_ROOT` is unset.
const DEFAULT_IMAGE_ROOT: &str = "/var/lib/bty/images";

/// One image a catalog offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Unique name within the catalog.
    pub name: String,
    /// Where the bytes are: `http(s)://`, `oras://`, or (local image root only) a path.
    pub src: String,
    /// Content sha256 of the stored bytes, lower-case hex, when known.
    pub sha256: Option<String>,
    /// Format string as the reference writes it (`img`, `img.zst`, `qcow2`, …).
    pub format: Option<String>,
    /// Stored size in bytes, when known.
    pub size_bytes: Option<u64>,
    /// Free text for people.
    pub description: Option<String>,
    /// CPU architecture hint (`x86_64`, `aarch64`).
    pub arch: Option<String>,
    /// `sha256(canonical src)` for remote entries; the identity bty-web binds machines to.
    #[serde(rename = "ref")]
    pub image_ref: Option<String>,
}

/// A parsed catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    /// The entries in file order, names unique.
    pub entries: Vec<Entry>,
}

/// The local image root: `BTY_IMAGE_ROOT`, else `/var/lib/bty/images`.
pub fn image_root() -> PathBuf {
    std::env::var_os("BTY_IMAGE_ROOT")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| DEFAULT_IMAGE_ROOT.into())
}

/// Loads a catalog from a path, `file://`, `http(s)://` or `oras://`.
pub fn load(spec: &str) -> Result<Catalog> {
    let text = read_text(spec).with_context(|| format!("loading catalog {}", redact(spec)))?;
    parse(&text).with_context(|| format!("loading catalog {}", redact(spec)))
}

fn read_text(spec: &str) -> Result<String> {
    let lower = spec.get(..8).unwrap_or(spec).to_ascii_lowercase();
    let bytes = if lower.starts_with("http://") || lower.starts_with("https://") {
        fetch_http(spec)?
    } else if lower.starts_with("oras://") {
        fetch_oras(spec)?
    } else {
        let path = if lower.starts_with("file://") { &spec[7..] } else { spec };
        std::fs::read(path).with_context(|| format!("reading {path}"))?
    };
    String::from_utf8(bytes).map_err(|_| Error::invalid("catalog: the file is not UTF-8 text"))
}

fn fetch_http(url: &str) -> Result<Vec<u8>> {
    let parsed = WebUrl::parse(url)?;
    let (shown, basic) = (parsed.display(), parsed.basic_authorization());
    let resp = client::send_with_retries(&shown, || {
        let mut req = client::agent().get(&shown);
        if let Some(b) = &basic {
            req = req.header("Authorization", b);
        }
        req.call()
    })?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(client::status_error(&shown, status));
    }
    client::read_capped(resp, REMOTE_MAX_BYTES, &shown)
}

/// The catalog stored as an OCI artifact's layer, checked against the layer digest.
fn fetch_oras(spec: &str) -> Result<Vec<u8>> {
    let source = crate::source::oras::open(spec)?;
    if source.len().is_some_and(|n| n > REMOTE_MAX_BYTES) {
        return Err(too_large(spec));
    }
    let mut reader = HashingReader::new(source.open_stream(0)?);
    let mut buf = Vec::new();
    (&mut reader).take(REMOTE_MAX_BYTES + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > REMOTE_MAX_BYTES {
        return Err(too_large(spec));
    }
    if let Some(want) = source.expected_sha256() {
        let got = reader.digest_handle().finish();
        if got != want {
            return Err(Error::new(
                ErrorKind::Integrity,
                format!(
                    "the registry served bytes with sha256 {} for layer sha256:{}",
                    crate::source::hex(&got),
                    crate::source::hex(&want)
                ),
            ));
        }
    }
    Ok(buf)
}

fn too_large(spec: &str) -> Error {
    Error::new(
        ErrorKind::TooLarge,
        format!("{spec} is larger than the {} MiB catalog limit", REMOTE_MAX_BYTES >> 20),
    )
}
