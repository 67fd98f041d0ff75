//! bty.toml configuration with `BTY_<SECTION>_<KEY>` environment overrides.
