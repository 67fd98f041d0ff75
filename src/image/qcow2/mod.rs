//! qcow2 images read natively, without qemu-img: the header (`header.rs`), the cluster tables
//! (`table.rs`), a sequential reader of the virtual disk over random-access reads
//! (`reader.rs`), a mapper of virtual byte ranges onto the file for fetching single chunks
//! (`map.rs`), and compressed-cluster decompression spread over threads (`cluster.rs`).
//!
//! Supported: versions 2 and 3, cluster sizes 512 B to 2 MiB, unallocated and zero clusters,
//! zlib and zstd compressed clusters, extended L2 entries (subclusters). Refused with advice:
//! backing files, encryption, external data files, unknown incompatible features. Snapshots are
//! ignored: the active L1 table is the disk.

mod cluster;
mod header;
mod map;
mod reader;
mod table;

pub use cluster::Codec;
pub use header::Compression;
use header::Header;
pub use map::{Mapper, Piece};

use crate::error::{Error, Result};
use crate::image::size::read_exact_at;
use crate::source::Source;
use std::io::Read;
use std::sync::Arc;

/// How much of the file start holds the header (the fixed part is 104 or 112 bytes).
const HEADER_READ: u64 = 4096;

/// The longest backing file name the format allows.
const MAX_BACKING_NAME: u32 = 1023;

/// Opens a qcow2 image for sequential reading of its virtual disk.
pub fn open(src: Arc<dyn Source>) -> Result<Box<dyn Read + Send>> {
    let (header, file_len) = read_header(&*src)?;
    Ok(Box::new(reader::Reader::new(src, header, file_len)?))
}

/// [`open`] for a borrowed source, for a look at the disk that stays on this thread.
pub fn open_borrowed(src: &dyn Source) -> Result<Box<dyn Read + '_>> {
    let (header, file_len) = read_header(src)?;
    Ok(Box::new(reader::Reader::new(src, header, file_len)?))
}

/// Reads and checks the header of the qcow2 image behind `src`; returns it with the file length.
pub fn read_header(src: &dyn Source) -> Result<(Header, u64)> {
    header_via(src, &mut |at, buf| read_exact_at(src, at, buf))
}

/// [`read_header`], reading the file through `read`.
fn header_via(src: &dyn Source, read: &mut table::ReadExact) -> Result<(Header, u64)> {
    let name = src.describe();
    if !src.supports_random_access() {
        return Err(Error::invalid(format!(
            "{name} is a qcow2 image, which needs a seekable source (random access), and this source has \
             none; download it first or serve it over HTTP with Range support"
        )));
    }
    let file_len = src.len().ok_or_else(|| {
        Error::invalid(format!(
            "{name} is a qcow2 image but its length is unknown; it needs a seekable source"
        ))
    })?;
    let mut head = vec![0u8; HEADER_READ.min(file_len) as usize];
    read(0, &mut head)?;
    let header = Header::parse(&head, &name)?;
    if let Some((offset, size)) = header.backing_file {
        let size = size.min(MAX_BACKING_NAME);
        let mut raw = vec![0u8; size as usize];
        let backing = match read(offset, &mut raw) {
            // Shown as Rust escapes: a name of NULs or control bytes is a damaged header.
            Ok(()) => String::from_utf8_lossy(&raw).escape_debug().to_string(),
            Err(_) => format!("named at byte {offset}"),
        };
        return Err(header::backing_file_refusal(&name, &backing));
    }
    Ok((header, file_len))
}

/// The virtual disk size recorded in the header.
pub fn virtual_size(src: &dyn Source) -> Result<u64> {
    Ok(read_header(src)?.0.size)
}
