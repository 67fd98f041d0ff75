//! Catalog TOML v1 text → validated entries, with the reference's rules (§2.4) and messages
//! that name the entry (`images[2] ("debian")`) so a person can find the line to fix.
//!
//! Syntax errors come from the toml crate with their line and column. Unknown keys are
//! ignored, as the reference does. Each entry's `ref` is filled in (`sha256(canonical src)`);
//! a `ref` given in the file must match it.

use super::{canonical, hints, Catalog, Entry};
use crate::error::{Error, Result};
use std::collections::HashMap;
use toml::{Table, Value};

/// Parses and validates catalog text.
pub fn parse(text: &str) -> Result<Catalog> {
    let table: Table = text.parse().map_err(|e: toml::de::Error| {
        Error::invalid(format!("catalog: invalid TOML: {}", e.to_string().trim_end()))
    })?;
    match table.get("version") {
        Some(Value::Integer(1)) => {}
        Some(other) => {
            return Err(Error::invalid(format!(
                "catalog: unsupported version {other}; this bty reads version = 1"
            )))
        }
        None => return Err(Error::invalid("catalog: missing `version = 1` at the top")),
    }
    let items = match table.get("images") {
        None => return Ok(Catalog { entries: Vec::new() }),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(Error::invalid("catalog: `images` must be an array of tables ([[images]])")),
    };
    let mut entries: Vec<Entry> = Vec::with_capacity(items.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let Value::Table(t) = item else {
            return Err(Error::invalid(format!(
                "catalog: images[{i}] is not a table; write entries as [[images]]"
            )));
        };
        let entry = parse_entry(i, t)?;
        if let Some(first) = seen.insert(entry.name.clone(), i) {
            return Err(Error::invalid(format!(
                "catalog: images[{i}]: duplicate name {:?} (first used by images[{first}]); names must be unique",
                entry.name
            )));
        }
        entries.push(entry);
    }
    Ok(Catalog { entries })
}

fn parse_entry(i: usize, t: &Table) -> Result<Entry> {
    let name = required(i, None, t, "name")?;
    let at = |msg: String| Error::invalid(format!("catalog: images[{i}] ({name:?}): {msg}"));
    let src = required(i, Some(&name), t, "src")?;
    let lower = src.to_ascii_lowercase();
    if lower.starts_with("file://") {
        return Err(at(
            "file:// src is not allowed in a catalog; serve the image over http(s) or oras".into()
        ));
    }
    if !(lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("oras://")) {
        return Err(at(format!("src {src:?} must start with http://, https:// or oras://")));
    }
    let text = |key: &str| -> Result<Option<String>> {
        match t.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(at(format!("`{key}` must be a string, not {}", v.type_str()))),
        }
    };
    let sha256 = match text("sha256")? {
        None => None,
        Some(s) if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) => Some(s.to_ascii_lowercase()),
        Some(s) => return Err(at(format!("sha256 {s:?} must be 64 hex characters"))),
    };
    let size_bytes = match t.get("size_bytes") {
        None => None,
        Some(Value::Integer(n)) if *n >= 0 => Some(*n as u64),
        Some(v) => return Err(at(format!("size_bytes must be a non-negative integer, not {v}"))),
    };
    let computed = canonical::image_ref(&src);
    let image_ref = match text("ref")? {
        None => computed.ok(),
        Some(given) => {
            let want = computed.map_err(|e| at(format!("ref given but src cannot be canonicalised: {e}")))?;
            if !given.eq_ignore_ascii_case(&want) {
                return Err(at(format!("ref {given} does not match sha256(canonical src) = {want}")));
            }
            Some(want)
        }
    };
    let src_name = src.rsplit('/').next().unwrap_or("");
    let format = text("format")?
        .or_else(|| hints::format_id(&name).or(hints::format_id(src_name)).map(str::to_string));
    let arch = text("arch")?.or_else(|| hints::arch_hint(&name).map(str::to_string));
    Ok(Entry { description: text("description")?, name, src, sha256, format, size_bytes, arch, image_ref })
}

/// A required string key; the message names the entry by index (and name, once known).
fn required(i: usize, name: Option<&str>, t: &Table, key: &str) -> Result<String> {
    let who = match name {
        Some(n) => format!("images[{i}] ({n:?})"),
        None => format!("images[{i}]"),
    };
    match t.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(Error::invalid(format!("catalog: {who}: `{key}` is empty"))),
        Some(v) => {
            Err(Error::invalid(format!("catalog: {who}: `{key}` must be a string, not {}", v.type_str())))
        }
        None => Err(Error::invalid(format!("catalog: {who}: missing required key `{key}`"))),
    }
}
