//! An in-memory [`Source`] for unit tests of detection, probes and decoders.

use crate::error::Result;
use crate::source::Source;
use std::io::Read;

/// Bytes with a name, readable as a stream or at offsets.
pub struct Mem {
    name: String,
    bytes: Vec<u8>,
}

impl Mem {
    /// A source called `name` holding `bytes`.
    pub fn new(name: &str, bytes: Vec<u8>) -> Mem {
        Mem { name: name.to_string(), bytes }
    }
}

impl Source for Mem {
    fn describe(&self) -> String {
        self.name.clone()
    }
    fn len(&self) -> Option<u64> {
        Some(self.bytes.len() as u64)
    }
    fn open_stream(&self, offset: u64) -> Result<Box<dyn Read + Send>> {
        let rest = self.bytes.get(offset as usize..).unwrap_or(&[]).to_vec();
        Ok(Box::new(std::io::Cursor::new(rest)))
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let rest = self.bytes.get(offset as usize..).unwrap_or(&[]);
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }
    fn supports_random_access(&self) -> bool {
        true
    }
    fn file_name(&self) -> String {
        self.name.clone()
    }
}
