//! Machine state → iPXE script and agent plan, as pure functions.
