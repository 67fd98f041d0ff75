//! Where a granule of the virtual disk is stored: the L1 table held whole, L2 tables loaded
//! lazily one at a time, every offset taken from the file bounds-checked. The sequential
//! reader (`reader.rs`) and the range mapper (`map.rs`) both resolve granules here, so the two
//! agree on what the image holds. It reads tables through a caller-given function (the reader
//! through the source's cache, the mapper by exact, counted Range reads) and never reads data.

use super::header::Header;
use crate::error::{Error, Result};

/// Host offsets in L1 and standard L2 entries: bits 9..=55.
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
/// L2 entry flag: the cluster is compressed.
pub(super) const COMPRESSED: u64 = 1 << 62;
/// L2 entry flag (v3, standard entries): the cluster reads as zeros.
pub(super) const ZERO: u64 = 1;
/// Subclusters per cluster with extended L2 entries.
const SUBCLUSTERS: u32 = 32;

/// Reads exactly `buf.len()` bytes of the image file at an offset.
pub type ReadExact<'a> = dyn FnMut(u64, &mut [u8]) -> Result<()> + 'a;

/// Where the bytes of one granule (a cluster, or a subcluster with extended L2 entries) are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granule {
    /// Unallocated or explicitly zero: reads as zeros.
    Zero,
    /// Stored uncompressed at this file offset.
    Data(u64),
    /// Part of compressed cluster `cluster`, whose data starts at `offset` and spans `len`
    /// bytes (cut at the end of the file).
    Compressed { cluster: u64, offset: u64, len: u64 },
}

/// The image's cluster tables, as far as they have been read.
pub struct Tables {
    pub name: String,
    pub h: Header,
    pub file_len: u64,
    /// log2 of the granule size: the cluster, or one of its 32 subclusters.
    pub granule_bits: u32,
    l1: Vec<u64>,
    /// The L2 table currently loaded: its L1 index and raw entries.
    l2: Option<(u64, Vec<u64>)>,
}

impl Tables {
    /// Reads the L1 table of the image `name` (header `h`, `file_len` bytes) through `read`.
    pub fn new(name: String, h: Header, file_len: u64, read: &mut ReadExact) -> Result<Tables> {
        let l1_bytes = h.l1_size * 8;
        if h.l1_table_offset.checked_add(l1_bytes).is_none_or(|end| end > file_len) {
            return Err(truncated(&name, "the L1 table", h.l1_table_offset, file_len));
        }
        let mut raw = vec![0u8; l1_bytes as usize];
        read(h.l1_table_offset, &mut raw)?;
        let granule_bits = h.cluster_bits - if h.extended_l2 { SUBCLUSTERS.trailing_zeros() } else { 0 };
        Ok(Tables { name, file_len, granule_bits, l1: be_words(&raw), l2: None, h })
    }

    /// An error saying the image is corrupt, and how.
    pub fn corrupt(&self, what: String) -> Error {
        Error::failed(format!("{}: corrupt qcow2 image: {what}", self.name))
    }

    /// Where granule `g` of the virtual disk is stored; an L2 table it needs is read through
    /// `read` (a table is kept until another one is needed).
    pub fn granule(&mut self, g: u64, read: &mut ReadExact) -> Result<Granule> {
        let sub_bits = self.h.cluster_bits - self.granule_bits;
        let cluster = g >> sub_bits;
        let (l1_index, l2_index) = (cluster / self.h.l2_entries(), cluster % self.h.l2_entries());
        let Some(&l1_entry) = self.l1.get(l1_index as usize) else {
            return Err(self.corrupt(format!("cluster {cluster} lies beyond the L1 table")));
        };
        let table_at = l1_entry & OFFSET_MASK;
        if table_at == 0 {
            return Ok(Granule::Zero);
        }
        if self.l2.as_ref().is_none_or(|(i, _)| *i != l1_index) {
            self.l2 = Some((l1_index, self.load_l2(table_at, read)?));
        }
        let words_per_entry = (self.h.l2_entry_bytes() / 8) as usize;
        let Some((_, table)) = &self.l2 else { return Err(self.corrupt("no L2 table loaded".into())) };
        let at = l2_index as usize * words_per_entry;
        let entry = table[at];
        if entry & COMPRESSED != 0 {
            // Bits 0..x are the byte offset, bits x..62 the count of further 512-byte sectors.
            let x = 62 - (self.h.cluster_bits - 8);
            let offset = entry & ((1u64 << x) - 1);
            let sectors = (entry & !(COMPRESSED | 1 << 63)) >> x;
            if offset >= self.file_len {
                return Err(truncated(&self.name, "a compressed cluster", offset, self.file_len));
            }
            // The sector count rounds up, so the last cluster's span may run past the end.
            let len = ((offset & !511) + (sectors + 1) * 512 - offset).min(self.file_len - offset);
            return Ok(Granule::Compressed { cluster, offset, len });
        }
        let host = entry & OFFSET_MASK;
        let granule = if self.h.extended_l2 {
            let bitmap = table[at + 1];
            let sub = (g & u64::from(SUBCLUSTERS - 1)) as u32;
            if bitmap >> (32 + sub) & 1 != 0 || bitmap >> sub & 1 == 0 {
                Granule::Zero
            } else if host == 0 {
                return Err(self.corrupt(format!("cluster {cluster} is marked allocated without an offset")));
            } else {
                Granule::Data(host + (u64::from(sub) << self.granule_bits))
            }
        } else if entry & ZERO != 0 || host == 0 {
            Granule::Zero
        } else {
            Granule::Data(host)
        };
        if let Granule::Data(at) = granule {
            if host % self.h.cluster_size() != 0 {
                return Err(self.corrupt(format!("cluster {cluster} has unaligned offset {host}")));
            }
            if at >= self.file_len {
                return Err(truncated(&self.name, &format!("data of cluster {cluster}"), at, self.file_len));
            }
        }
        Ok(granule)
    }

    fn load_l2(&self, at: u64, read: &mut ReadExact) -> Result<Vec<u64>> {
        let size = self.h.cluster_size();
        if at % size != 0 {
            return Err(self.corrupt(format!("an L2 table offset {at} is not cluster-aligned")));
        }
        if at.checked_add(size).is_none_or(|end| end > self.file_len) {
            return Err(truncated(&self.name, "an L2 table", at, self.file_len));
        }
        let mut raw = vec![0u8; size as usize];
        read(at, &mut raw)?;
        Ok(be_words(&raw))
    }
}

/// An error saying `what` at byte `at` lies past the end of the image file.
pub fn truncated(name: &str, what: &str, at: u64, file_len: u64) -> Error {
    Error::failed(format!(
        "{name}: {what} at byte {at} lies beyond the end of the file ({file_len} bytes): the qcow2 image is \
         truncated or corrupt"
    ))
}

fn be_words(raw: &[u8]) -> Vec<u64> {
    raw.chunks_exact(8)
        .map(|c| u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect()
}
