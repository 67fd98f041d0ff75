//! Image formats: detection by magic bytes, decoders, inspection.
