//! The flash engine: source → decoder → writer on their own threads.
