//! A local file (or block device) as a byte source.

use super::sparse::SparseReader;
use super::Source;
use crate::error::{Context, Result};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};

/// A local file opened once; streams and random reads share the descriptor.
pub struct FileSource {
    path: PathBuf,
    file: File,
    len: Option<u64>,
    /// A regular file (holes can be skipped), not a device or a pipe.
    is_regular: bool,
}

impl FileSource {
    /// Opens `path` for reading; the error names the path.
    pub fn open(path: impl AsRef<Path>) -> Result<FileSource> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let meta = file.metadata().with_context(|| format!("reading metadata of {}", path.display()))?;
        let len = if meta.is_file() {
            Some(meta.len())
        } else if meta.file_type().is_fifo() {
            // A pipe (`<(zstdcat x.zst)`, a FIFO) has no length and streams only once.
            None
        } else {
            // A block device reports size 0 in metadata; seeking to the end gives the real size.
            let mut f = &file;
            Some(f.seek(SeekFrom::End(0)).with_context(|| format!("sizing {}", path.display()))?)
        };
        Ok(FileSource { path, file, len, is_regular: meta.is_file() })
    }

    /// The path this source reads.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Source for FileSource {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn len(&self) -> Option<u64> {
        self.len
    }

    fn open_stream(&self, offset: u64) -> Result<Box<dyn Read + Send>> {
        // A fresh descriptor, not a dup: dups share the file offset, and two streams of one
        // source (hashing and flashing) must not move each other's position.
        let mut f = File::open(&self.path).with_context(|| format!("reopening {}", self.describe()))?;
        if let Some(len) = self.len.filter(|_| self.is_regular) {
            return Ok(Box::new(SparseReader::new(f, offset, len)));
        }
        if offset > 0 {
            f.seek(SeekFrom::Start(offset)).with_context(|| format!("seeking in {}", self.describe()))?;
        }
        Ok(Box::new(f))
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.file
            .read_at(buf, offset)
            .with_context(|| format!("reading {} at offset {offset}", self.describe()))
    }

    fn supports_random_access(&self) -> bool {
        true
    }

    fn file_name(&self) -> String {
        self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    fn local_path(&self) -> Option<&Path> {
        Some(&self.path)
    }
}
