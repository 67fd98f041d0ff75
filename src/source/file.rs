//! A local file (or block device) as a byte source.

use super::pipe::Replay;
use super::sparse::SparseReader;
use super::Source;
use crate::error::{Context, Error, Result};
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
    /// A pipe, which gives its bytes once: streams from the start replay them.
    pipe: Option<Replay>,
}

impl FileSource {
    /// Opens `path` for reading; the error names the path.
    pub fn open(path: impl AsRef<Path>) -> Result<FileSource> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let meta = file.metadata().with_context(|| format!("reading metadata of {}", path.display()))?;
        if meta.is_dir() {
            return Err(Error::invalid(format!(
                "{} is a directory; give the image file inside it",
                path.display()
            )));
        }
        if meta.file_type().is_fifo() {
            // A pipe (`/dev/stdin`, `<(zstdcat x.zst)`, a FIFO) has no length and gives its
            // bytes once; reopening it would skip what detection read.
            let pipe =
                Some(Replay::new(file.try_clone().with_context(|| format!("opening {}", path.display()))?));
            return Ok(FileSource { path, file, len: None, is_regular: false, pipe });
        }
        let len = if meta.is_file() {
            meta.len()
        } else {
            // A block device reports size 0 in metadata; seeking to the end gives the real size.
            let mut f = &file;
            f.seek(SeekFrom::End(0)).with_context(|| format!("sizing {}", path.display()))?
        };
        Ok(FileSource { path, file, len: Some(len), is_regular: meta.is_file(), pipe: None })
    }

    /// The path this source reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn not_seekable(&self) -> Error {
        Error::invalid(format!(
            "{} is a pipe, which can only be read from start to end; save the image to a file",
            self.describe()
        ))
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
        if let Some(pipe) = &self.pipe {
            if offset > 0 {
                return Err(self.not_seekable());
            }
            return Ok(Box::new(pipe.stream(self.describe())));
        }
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
        if self.pipe.is_some() {
            return Err(self.not_seekable());
        }
        self.file
            .read_at(buf, offset)
            .with_context(|| format!("reading {} at offset {offset}", self.describe()))
    }

    fn supports_random_access(&self) -> bool {
        self.pipe.is_none()
    }

    fn file_name(&self) -> String {
        self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    fn local_path(&self) -> Option<&Path> {
        Some(&self.path)
    }
}
