//! Entries → catalog TOML v1 text, in the reference's key order; absent fields are left out.
//!
//! `ref` is written when the entry has one; a server that must not emit it (bty-web's
//! `/catalog.toml`, as the reference) clears `image_ref` first.

use super::Entry;
use serde::Serialize;

#[derive(Serialize)]
struct Doc<'a> {
    version: u32,
    images: Vec<Row<'a>>,
}

#[derive(Serialize)]
struct Row<'a> {
    name: &'a str,
    src: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arch: Option<&'a str>,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    image_ref: Option<&'a str>,
}

/// Serialises entries as a `version = 1` catalog.
pub fn to_toml(entries: &[Entry]) -> String {
    let images = entries
        .iter()
        .map(|e| Row {
            name: &e.name,
            src: &e.src,
            sha256: e.sha256.as_deref(),
            format: e.format.as_deref(),
            size_bytes: e.size_bytes,
            description: e.description.as_deref(),
            arch: e.arch.as_deref(),
            image_ref: e.image_ref.as_deref(),
        })
        .collect();
    // Strings, integers and arrays of tables always serialise; an error here would be a bug
    // in this struct, so an empty catalog is the safe answer.
    toml::to_string(&Doc { version: 1, images }).unwrap_or_else(|_| "version = 1\n".to_string())
}
