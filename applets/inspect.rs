//! `bty inspect SRC [--catalog SRC] [--json] [--hash] [--decoded-hash] [--format FMT]`: what an image is.

use crate::args;
use bty::disk::human_size;
use bty::image::{self, Inspection, PartitionTable};
use bty::index::Layout;
use std::io::Write;

/// Show an image's format, stored and virtual size, and the partition table inside it.
#[derive(argh::FromArgs)]
struct Args {
    /// print one JSON object (schema_version 1) instead of text
    #[argh(switch)]
    json: bool,
    /// also print the sha256 of the stored (possibly compressed) bytes; reads the whole file
    #[argh(switch)]
    hash: bool,
    /// also decode the whole image and print the sha256 of the disk bytes it holds (what a
    /// flashed disk's first virtual-size bytes hash to)
    #[argh(switch)]
    decoded_hash: bool,
    /// treat the image as this format instead of detecting it (raw, zst, gz, xz, bz2, qcow2)
    #[argh(option)]
    format: Option<String>,
    /// catalog to look SRC up in when SRC is an image name: a path, http(s):// URL or oras:// ref
    #[argh(option)]
    catalog: Option<String>,
    /// the image: a path, http(s):// URL, oras:// ref, or the name of a catalog image
    #[argh(positional)]
    src: String,
}

/// Entry point of the `inspect` applet.
pub fn main(shown_as: &str, argv: &[String]) -> bty::Result<i32> {
    let args: Args = match args::parse(shown_as, argv) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let format = args.format.as_deref().map(image::parse_format).transpose()?;
    let src = bty::source::resolve(&args.src, args.catalog.as_deref())?.source;
    let opts = image::InspectOptions { hash: args.hash, decoded_hash: args.decoded_hash, format };
    let found = image::inspect_with(&*src, opts)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let text = serde_json::to_string_pretty(&found)
            .map_err(|e| bty::Error::failed(format!("serialising the inspection: {e}")))?;
        writeln!(out, "{text}")?;
    } else {
        print_text(&mut out, &found)?;
    }
    Ok(0)
}

fn print_text(out: &mut dyn Write, f: &Inspection) -> std::io::Result<()> {
    let size = |v: Option<u64>| v.map_or_else(|| "unknown".to_string(), human);
    writeln!(out, "source          {}", f.source)?;
    writeln!(out, "format          {}", f.format.name())?;
    if let Some(q) = &f.qcow2 {
        let compression = match q.compression {
            image::Qcow2Compression::Zlib => "zlib",
            image::Qcow2Compression::Zstd => "zstd",
        };
        let extended = if q.extended_l2 { ", extended L2" } else { "" };
        writeln!(
            out,
            "qcow2           version {}, {} clusters, {compression} compression{extended}",
            q.version,
            human_size(q.cluster_size)
        )?;
    }
    writeln!(out, "stored size     {}", size(f.compressed_size))?;
    writeln!(out, "virtual size    {}", size(f.virtual_size))?;
    if let Some(d) = &f.sha256 {
        writeln!(out, "sha256          {d}")?;
    }
    if let Some(d) = &f.decoded_sha256 {
        writeln!(out, "decoded sha256  {d}")?;
        writeln!(out, "decoded size    {}", size(f.decoded_size))?;
    }
    match &f.chunk_index {
        Some(i) => writeln!(
            out,
            "chunk index     {} chunks of {}, {}",
            i.chunks,
            human_size(u64::from(i.chunk_size)),
            match (i.delta_ready, i.layout) {
                (true, Layout::Qcow2) => "delta-ready (chunks fetched through the qcow2 cluster tables)",
                (true, _) => "delta-ready (chunks fetched by byte range)",
                (false, _) => "without byte ranges (compare only)",
            }
        )?,
        None => writeln!(out, "chunk index     none (write one with `bty index`)")?,
    }
    match &f.partition_table {
        Some(t) => print_table(out, t),
        None => writeln!(out, "partitions      none found"),
    }
}

fn print_table(out: &mut dyn Write, t: &PartitionTable) -> std::io::Result<()> {
    let kind = match t.kind {
        image::TableKind::Gpt => "gpt",
        image::TableKind::Mbr => "mbr",
    };
    let guid = t.disk_guid.as_deref().map(|g| format!(", disk {g}")).unwrap_or_default();
    writeln!(out, "partitions      {kind}, {}-byte sectors{guid}", t.sector_size)?;
    for w in &t.warnings {
        writeln!(out, "warning         {w}")?;
    }
    writeln!(out, "  {:>3}  {:>14}  {:>14}  {:<10}  {:<22}  name", "#", "start", "size", "", "type")?;
    for p in &t.partitions {
        let flag = if p.bootable == Some(true) { "boot" } else { "" };
        writeln!(
            out,
            "  {:>3}  {:>14}  {:>14}  {:<10}  {:<22}  {}",
            p.index,
            p.start,
            p.size,
            human_size(p.size),
            p.type_name.map_or_else(|| p.type_id.clone(), str::to_string),
            [p.name.as_deref().unwrap_or(""), flag].join(" ").trim()
        )?;
    }
    Ok(())
}

/// `8589934592 bytes (8.0 GiB)`.
fn human(bytes: u64) -> String {
    format!("{bytes} bytes ({})", human_size(bytes))
}
