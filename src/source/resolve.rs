//! From what a user typed to a source: a path, a URL, an `oras://` ref, or the name of a
//! catalog entry (with `--catalog SRC`, or an image in the local image root).
//!
//! A name is looked up only when the text is not a location: anything with `://` or a `/`,
//! or an existing file, is opened as it is. A catalog entry's `sha256` becomes the digest the
//! flash must match; otherwise the transport's own digest (an OCI layer) does. This module
//! does not flash or decode.

use super::Source;
use crate::catalog::{self, Entry};
use crate::error::{Error, ErrorKind, Result};
use std::sync::Arc;

/// A source ready to read, with the digest its bytes must have and the catalog entry it came from.
pub struct Resolved {
    /// Where the bytes come from.
    pub source: Arc<dyn Source>,
    /// The sha256 the source bytes must have, when anyone vouches for one.
    pub expected_sha256: Option<[u8; 32]>,
    /// The catalog (or local image root) entry that named the source.
    pub entry: Option<Entry>,
}

/// Resolves `spec` (a path, URL, `oras://` ref, or entry name) against an optional catalog.
pub fn resolve(spec: &str, catalog: Option<&str>) -> Result<Resolved> {
    if is_location(spec) {
        let source = super::open(spec)?;
        let expected_sha256 = source.expected_sha256();
        return Ok(Resolved { source, expected_sha256, entry: None });
    }
    let local = catalog::scan_local(&catalog::image_root())?;
    let remote = match catalog {
        Some(src) => catalog::load(src)?.entries,
        None => Vec::new(),
    };
    let entries = catalog::merge(local, remote);
    let Some(entry) = entries.into_iter().find(|e| e.name == spec) else {
        let hint = match catalog {
            Some(src) => format!(
                "no image named {spec:?} in the catalog {} or in the local image root",
                super::url::redact(src)
            ),
            None => format!(
                "{spec:?} is not a file, a URL or an oras:// ref, and no image in {} has that name; \
                 give a catalog with --catalog SRC",
                catalog::image_root().display()
            ),
        };
        return Err(Error::not_found(hint));
    };
    let source = super::open(&entry.src).map_err(|e| e.context(format!("opening catalog image {spec:?}")))?;
    let listed = entry.sha256.as_deref().map(super::parse_sha256).transpose()?;
    let expected_sha256 = match (listed, source.expected_sha256()) {
        (Some(a), Some(b)) if a != b => {
            return Err(Error::new(
                ErrorKind::Integrity,
                format!(
                "catalog image {spec:?}: the catalog's sha256 {} differs from the registry's layer digest {}",
                super::hex(&a),
                super::hex(&b)
            ),
            ))
        }
        (a, b) => a.or(b),
    };
    Ok(Resolved { source, expected_sha256, entry: Some(entry) })
}

/// Whether `spec` names a location rather than a catalog entry.
fn is_location(spec: &str) -> bool {
    spec.contains("://") || spec.contains('/') || std::path::Path::new(spec).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_not_locations_but_paths_and_urls_are() {
        assert!(is_location("http://h/x.img"));
        assert!(is_location("./x.img"));
        assert!(is_location("oras://h/a/b:t"));
        assert!(!is_location("debian-12-surely-not-a-file-here"));
    }
}
