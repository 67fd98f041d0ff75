//! `bty index IMAGE [-o FILE] [--zstd-seekable OUT] [--chunk-size N]`: writes an image's chunk
//! index (and optionally a seekable zstd copy), for `bty flash --delta` over the network.

use crate::args;
use bty::disk::human_size;
use bty::index::{self, BuildOptions, Layout};
use bty::{Context, Error};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

/// Write the chunk index of an image: chunk hashes, zero flags and the byte ranges a client
/// fetches with HTTP Range to reflash only what changed.
#[derive(argh::FromArgs)]
struct Args {
    /// where to write the index (default: IMAGE.index, or OUT.index with --zstd-seekable)
    #[argh(option, short = 'o')]
    output: Option<PathBuf>,
    /// also write the image as seekable zstd (one frame per chunk) to this path and index that
    #[argh(option)]
    zstd_seekable: Option<PathBuf>,
    /// bytes per chunk, a power of two from 65536 to 67108864 (default 1048576)
    #[argh(option, default = "index::DEFAULT_CHUNK_SIZE")]
    chunk_size: u32,
    /// treat the image as this format instead of detecting it (raw, zst, gz, xz, bz2, qcow2)
    #[argh(option)]
    format: Option<String>,
    /// the image: a path or http(s):// URL
    #[argh(positional)]
    image: String,
}

/// Entry point of the `index` applet.
pub fn main(shown_as: &str, argv: &[String]) -> bty::Result<i32> {
    let args: Args = match args::parse(shown_as, argv) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let src = bty::source::open(&args.image)?;
    let format = match args.format.as_deref() {
        Some(f) => bty::image::parse_format(f)?,
        None => bty::image::detect(src.as_ref())?,
    };
    let output = match (&args.output, &args.zstd_seekable, src.local_path()) {
        (Some(o), _, _) => o.clone(),
        (None, Some(z), _) => with_suffix(z),
        (None, None, Some(p)) => with_suffix(p),
        (None, None, None) => {
            return Err(Error::invalid(
                "the image is not a local file: say where the index goes with -o FILE",
            ))
        }
    };
    let opts = BuildOptions { chunk_size: args.chunk_size, zstd_seekable: args.zstd_seekable.clone() };
    let idx = index::build(src.clone(), format, &opts, &AtomicBool::new(false))?;
    std::fs::write(&output, idx.encode()).with_context(|| format!("writing {}", output.display()))?;
    let ranges = match idx.layout {
        Layout::Raw => "byte ranges of the raw image",
        Layout::ZstdSeekable => "byte ranges of seekable zstd frames",
        Layout::Qcow2 => "no byte ranges: a delta flash finds chunks through the qcow2 image's own cluster tables",
        Layout::Stream => "no byte ranges: the format cannot be read at random, so a delta flash streams it (convert it with --zstd-seekable)",
    };
    let mut out = std::io::stdout().lock();
    if let Some(z) = &args.zstd_seekable {
        writeln!(out, "wrote {} ({}, seekable zstd)", z.display(), human_size(idx.source_size))?;
    }
    writeln!(
        out,
        "wrote {}: {} chunks of {} over {}, {}",
        output.display(),
        idx.chunks.len(),
        human_size(u64::from(idx.chunk_size)),
        human_size(idx.virtual_size),
        ranges
    )?;
    Ok(0)
}

/// `PATH.index`.
fn with_suffix(path: &std::path::Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".index");
    PathBuf::from(name)
}
