//! Where an image's chunk index is: given (`--index FILE|URL`), or beside the image as
//! `IMAGE.index` (a file next to a file, `URL.index` next to a URL: bty-web's store serves it
//! there too).

use super::ChunkIndex;
use crate::error::{ErrorKind, Result};
use crate::source::{self, Source};
use std::io::Read;
use std::sync::Arc;

/// An index larger than this is refused: 64 MiB holds 1.3 million chunks (1.3 TiB at 1 MiB).
const MAX_INDEX_BYTES: u64 = 64 << 20;

/// Loads and validates the index at `spec` (a path or an http(s) URL). A `location` in it
/// comes back resolved against `spec` (a path or URL to open as the stored object).
pub fn load(spec: &str) -> Result<ChunkIndex> {
    from_source(source::open(spec)?.as_ref(), spec)
}

/// [`load`] from a source already opened at `spec`.
fn from_source(src: &dyn Source, spec: &str) -> Result<ChunkIndex> {
    let mut index = read(src)?;
    if !index.location.is_empty() {
        index.location = beside(spec, &index.location);
    }
    Ok(index)
}

/// `name` in the same directory (or URL path) as `spec`.
fn beside(spec: &str, name: &str) -> String {
    let path = spec.split(['?', '#']).next().unwrap_or(spec);
    match path.rfind('/') {
        Some(at) => format!("{}{name}", &path[..=at]),
        None => name.to_string(),
    }
}

/// The index beside `image` (`IMAGE.index`), or `None` when there is none. A file or URL that
/// exists but is not a valid index is an error: an index that was meant to be used is never
/// silently ignored.
pub fn find(image: &dyn Source) -> Result<Option<ChunkIndex>> {
    let spec = match image.local_path() {
        Some(path) => {
            let mut name = path.as_os_str().to_owned();
            name.push(".index");
            if !std::path::Path::new(&name).is_file() {
                return Ok(None);
            }
            name.to_string_lossy().into_owned()
        }
        None => {
            let url = image.describe();
            let lower = url.to_ascii_lowercase();
            if !lower.starts_with("http://") && !lower.starts_with("https://") {
                return Ok(None);
            }
            match url.split_once('?') {
                Some((path, query)) => format!("{path}.index?{query}"),
                None => format!("{url}.index"),
            }
        }
    };
    match source::open(&spec) {
        Ok(src) => from_source(src.as_ref(), &spec).map(Some),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The source to fetch chunks from, and the index when there is one.
pub type ForDelta = (Arc<dyn Source>, Option<Arc<ChunkIndex>>);

/// What a `--delta` flash of `image` uses: the index (`explicit`, else the one beside the
/// image) and the source to fetch chunks from (the index's `location` when it names another
/// copy, else the image). Without an index, the image and `None`.
pub fn for_delta(image: Arc<dyn Source>, explicit: Option<&str>) -> Result<ForDelta> {
    let index = match explicit {
        Some(spec) => Some(load(spec)?),
        None => find(image.as_ref())?,
    };
    let Some(index) = index else {
        crate::log_info!("{}: no chunk index beside it; --delta reads the whole image", image.describe());
        return Ok((image, None));
    };
    let source = match index.location.as_str() {
        "" => image,
        // Another copy of the image (bty-web's seekable zstd of a stream format).
        at => source::open(at)?,
    };
    Ok((source, Some(Arc::new(index))))
}

fn read(src: &dyn Source) -> Result<ChunkIndex> {
    let mut bytes = Vec::new();
    src.open_stream(0)?.take(MAX_INDEX_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_INDEX_BYTES {
        return Err(crate::Error::invalid(format!(
            "{} is larger than {MAX_INDEX_BYTES} bytes; it is not a chunk index",
            src.describe()
        )));
    }
    ChunkIndex::parse(&bytes, &src.describe())
}
