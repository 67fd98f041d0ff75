//! Keeps every stored image delta-ready: a background thread writes each image's chunk index
//! beside it, and converts images that cannot be read at random (gz, xz, bz2, single-frame
//! zstd, qcow2) into seekable zstd, so `bty flash --delta` fetches only changed chunks.
//!
//! The thread sweeps the store every few seconds rather than being told about uploads, so
//! uploads, fetch jobs and images stored before this existed are all handled the same way,
//! and sidecars of deleted images are removed. Sidecars live in `images/.delta/` (upload names
//! never start with a dot): `NAME.index`, and for converted images `NAME.seekable.zst`, which
//! the index names as its `location`. They are written to a temporary name and renamed, so a
//! half-written sidecar is never served. The original stays the image and its digest its
//! identity; the index records that digest as its origin.

use super::context::AppContext;
use crate::db::ImageKind;
use crate::image::{self, Format};
use crate::index::{self, BuildOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// The sidecar directory inside the image store.
const DIR: &str = ".delta";
/// Suffix of a converted image.
pub const SEEKABLE: &str = ".seekable.zst";
/// Suffix of an index.
pub const INDEX: &str = ".index";
/// Time between sweeps.
const SWEEP: Duration = Duration::from_secs(2);

/// The sidecar `NAME{suffix}` of stored image `name`.
pub fn sidecar(images_dir: &Path, name: &str, suffix: &str) -> PathBuf {
    images_dir.join(DIR).join(format!("{name}{suffix}"))
}

/// Whether stored image `name` has its index.
pub fn ready(images_dir: &Path, name: &str) -> bool {
    sidecar(images_dir, name, INDEX).is_file()
}

/// Starts the sweeping thread; it ends when shutdown begins.
pub fn start(ctx: Arc<AppContext>) -> Option<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("bty-store-index".into())
        .spawn(move || {
            while !ctx.shutting_down() {
                sweep(&ctx);
                let mut waited = Duration::ZERO;
                while waited < SWEEP && !ctx.shutting_down() {
                    std::thread::sleep(Duration::from_millis(200));
                    waited += Duration::from_millis(200);
                }
            }
        })
        .ok()
}

/// Indexes (and converts) stored images without an index; removes sidecars of deleted ones.
fn sweep(ctx: &AppContext) {
    let dir = &ctx.config.paths.images_dir;
    let Ok(rows) = ctx.db.images() else { return };
    let stored: Vec<String> =
        rows.into_iter().filter(|r| r.kind == ImageKind::Stored).map(|r| r.name).collect();
    for name in &stored {
        if ctx.shutting_down() {
            return;
        }
        if ready(dir, name) {
            continue;
        }
        if let Err(e) = prepare(dir, name, &ctx.shutdown) {
            // Not tried again (each sweep would fail the same way) until the image is stored anew.
            crate::log_warn!("making {name} delta-ready: {e}");
            let _ = std::fs::write(sidecar(dir, name, ".failed"), e.to_string());
        }
    }
    let Ok(entries) = std::fs::read_dir(dir.join(DIR)) else { return };
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let owner = [INDEX, SEEKABLE, ".failed", ".tmp"].iter().find_map(|s| file.strip_suffix(s));
        if owner.is_some_and(|o| !stored.iter().any(|n| n == o)) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Writes the index of stored image `name`, converting it first when it must be.
fn prepare(dir: &Path, name: &str, stop: &AtomicBool) -> crate::Result<()> {
    if sidecar(dir, name, ".failed").exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir.join(DIR))?;
    let src: Arc<dyn crate::source::Source> = Arc::new(crate::source::FileSource::open(dir.join(name))?);
    let format = image::detect(src.as_ref())?;
    let seekable_already = format == Format::Zstd && index::seekable::read_table(src.as_ref())?.is_some();
    let convert = !(format == Format::Raw || seekable_already);
    let tmp_copy = sidecar(dir, name, &format!("{SEEKABLE}.tmp"));
    let opts = BuildOptions {
        chunk_size: index::DEFAULT_CHUNK_SIZE,
        zstd_seekable: convert.then(|| tmp_copy.clone()),
    };
    let mut idx = index::build(src, format, &opts, stop)?;
    if convert {
        std::fs::rename(&tmp_copy, sidecar(dir, name, SEEKABLE))?;
        // Relative to the index's URL, /images/{ref}/{name}.index.
        idx.location = format!("{name}{SEEKABLE}");
    }
    let tmp = sidecar(dir, name, &format!("{INDEX}.tmp"));
    std::fs::write(&tmp, idx.encode())?;
    std::fs::rename(&tmp, sidecar(dir, name, INDEX))?;
    crate::log_info!("{name} is delta-ready{}", if convert { " (converted to seekable zstd)" } else { "" });
    Ok(())
}
