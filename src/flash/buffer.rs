//! Large buffers aligned for `O_DIRECT`, allocated once per flash and recycled through channels.
//!
//! Alignment is obtained without `unsafe`: the vector is over-allocated by one alignment unit
//! and the buffer starts at the first aligned byte inside it. The vector never grows, so the
//! start never moves.

/// The alignment every buffer start has: a page, which satisfies any logical sector size.
pub const ALIGN: usize = 4096;

/// A fixed-capacity byte buffer whose first byte sits on an [`ALIGN`] boundary.
pub struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    capacity: usize,
}

impl AlignedBuf {
    /// A zero-filled buffer of `capacity` bytes.
    pub fn new(capacity: usize) -> AlignedBuf {
        let raw = vec![0u8; capacity + ALIGN];
        let start = raw.as_ptr().align_offset(ALIGN).min(ALIGN);
        AlignedBuf { raw, start, capacity }
    }

    /// The whole buffer.
    pub fn as_slice(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.capacity]
    }

    /// The whole buffer, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.capacity]
    }

    /// The capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_start_aligned_and_have_their_capacity() {
        for cap in [1, 4096, 1 << 20] {
            let mut b = AlignedBuf::new(cap);
            assert_eq!(b.as_slice().as_ptr() as usize % ALIGN, 0);
            assert_eq!(b.as_mut_slice().len(), cap);
        }
    }
}
