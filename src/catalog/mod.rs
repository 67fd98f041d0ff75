//! Catalog TOML v1: parse, validate, merge with the local image root, serialise.
