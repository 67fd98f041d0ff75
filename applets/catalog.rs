//! `bty catalog [--catalog SRC] [--json]`: the images a catalog offers, merged with the local
//! image root, as a table or as one JSON object.

use crate::args;
use argh::FromArgs;
use bty::catalog::{self, Entry};
use std::io::Write;

/// List the images of a catalog merged with the local image root ($BTY_IMAGE_ROOT).
#[derive(FromArgs)]
struct Args {
    /// catalog to list: a path, http(s):// URL (e.g. a bty-web's /catalog.toml) or oras:// ref
    #[argh(option)]
    catalog: Option<String>,
    /// print one JSON object ({"schema_version": 1, "entries": [...]})
    #[argh(switch)]
    json: bool,
}

/// Entry point.
pub fn main(shown_as: &str, args: &[String]) -> bty::Result<i32> {
    let a: Args = match args::parse(shown_as, args) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let root = catalog::image_root();
    let local = catalog::scan_local(&root)?;
    let remote = match &a.catalog {
        Some(src) => catalog::load(src)?.entries,
        None => Vec::new(),
    };
    let mut entries = catalog::merge(local, remote);
    // Listings are shown and logged: credentials inside a src never leave the catalog file.
    for e in &mut entries {
        e.src = bty::source::url::redact(&e.src);
    }
    let mut out = std::io::stdout().lock();
    if a.json {
        let doc = serde_json::json!({
            "schema_version": 1,
            "image_root": root.display().to_string(),
            "catalog": a.catalog.as_deref().map(bty::source::url::redact),
            "entries": entries,
        });
        writeln!(out, "{doc:#}")?;
    } else {
        print_table(&mut out, &entries)?;
    }
    Ok(0)
}

fn print_table(out: &mut impl Write, entries: &[Entry]) -> std::io::Result<()> {
    if entries.is_empty() {
        return writeln!(
            out,
            "no images (image root {}; add a catalog with --catalog SRC)",
            catalog::image_root().display()
        );
    }
    let width = entries.iter().map(|e| e.name.len()).max().unwrap_or(4).max(4);
    writeln!(out, "{:<width$}  {:<8}  {:>10}  {:<7}  SRC", "NAME", "FORMAT", "SIZE", "ARCH")?;
    for e in entries {
        let size = e.size_bytes.map(bty::disk::human_size).unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "{:<width$}  {:<8}  {:>10}  {:<7}  {}",
            e.name,
            e.format.as_deref().unwrap_or("-"),
            size,
            e.arch.as_deref().unwrap_or("-"),
            e.src
        )?;
    }
    Ok(())
}
