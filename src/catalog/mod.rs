//! Catalog TOML v1: parse, validate, merge with the local image root, serialise.
//!
//! Compatible with the Python bty (reference §2.4–2.6): same keys, same validation rules,
//! same `ref = sha256(canonical src)`. Unknown keys are ignored, as the reference does.

use serde::{Deserialize, Serialize};

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
