//! Background jobs that fetch images from a URL into the image store.
//!
//! Request threads enqueue and return; a job thread does the download. Job state is kept in
//! memory (visible through `GET /images/jobs`) and every outcome is in the audit log.

/// The job table.
#[derive(Default)]
pub struct Jobs {}
