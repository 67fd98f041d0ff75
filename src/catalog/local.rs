//! The local image root as catalog entries, and merging it with a catalog (reference §2.2).
//!
//! The scan is non-recursive and sorted by name; it skips symlinks, non-regular files,
//! `.sha256` sidecars and names without a flashable extension. Sizes come from the files; a
//! `sha256` only from a `<file>.sha256` sidecar (never computed here: that would read every
//! image at startup). A missing root is an empty list.

use super::{hints, Entry};
use crate::error::{Context, Result};
use std::path::Path;

/// Flashable files directly under `root`, as entries whose `src` is the absolute path.
pub fn scan_local(root: &Path) -> Result<Vec<Entry>> {
    let dir = match std::fs::read_dir(root) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing the image root {}", root.display())),
    };
    let root = std::path::absolute(root).with_context(|| format!("resolving {}", root.display()))?;
    let mut entries = Vec::new();
    for item in dir {
        let item = item.with_context(|| format!("listing the image root {}", root.display()))?;
        let Ok(name) = item.file_name().into_string() else { continue };
        let Some(format) = hints::format_id(&name) else { continue };
        // symlink_metadata: a symlink is skipped, not followed; a file gone since the listing too.
        let Ok(meta) = std::fs::symlink_metadata(item.path()) else { continue };
        if !meta.file_type().is_file() {
            continue;
        }
        let path = root.join(&name);
        entries.push(Entry {
            sha256: sidecar_sha256(&path),
            src: path.display().to_string(),
            format: Some(format.to_string()),
            size_bytes: Some(meta.len()),
            description: None,
            arch: hints::arch_hint(&name).map(str::to_string),
            image_ref: None,
            name,
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

/// The digest in `<file>.sha256` when its first token is 64 hex characters (lower-cased).
fn sidecar_sha256(path: &Path) -> Option<String> {
    let mut side = path.as_os_str().to_owned();
    side.push(".sha256");
    let text = std::fs::read_to_string(side).ok()?;
    let token = text.split_whitespace().next()?;
    (token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())).then(|| token.to_ascii_lowercase())
}

/// Local entries first, then the catalog's. Names stay unique: when a catalog entry has the
/// name of a local image, the local image wins (its bytes are already here) and the catalog
/// entry is dropped with a warning.
pub fn merge(local: Vec<Entry>, remote: Vec<Entry>) -> Vec<Entry> {
    let mut out = local;
    for entry in remote {
        if out.iter().any(|e| e.name == entry.name) {
            crate::log_warn!(
                "catalog entry {:?} has the name of a local image; the local image is used",
                entry.name
            );
            continue;
        }
        out.push(entry);
    }
    out
}
