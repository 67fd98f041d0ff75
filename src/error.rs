//! The one error type of the library: a kind that decides the exit code and HTTP status, and a
//! chain of context strings that tells the user what failed, where, and what to do about it.
//!
//! Errors are built at the point of failure with [`Error::new`] or converted from `io::Error`, and
//! grow context as they travel up (`opening /dev/sda: permission denied`). This module does not
//! print anything and does not know about processes or HTTP; `applets/main.rs` maps kinds to exit
//! codes and `web/` maps them to statuses, each through the one table below.

use std::fmt;
use std::io;

/// What class of failure this is; decides the exit code and the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// I/O, network or decode failure: exit 1.
    Failed,
    /// Bad arguments or invalid input (malformed MAC, bad TOML, unknown format): exit 2.
    Invalid,
    /// A safety rule refused the operation before anything was written: exit 3.
    Refused,
    /// A digest or read-back comparison did not match: exit 4.
    Integrity,
    /// Stopped by SIGINT/SIGTERM or a cancel request: exit 130.
    Cancelled,
    /// The named thing does not exist (file, machine, image): exit 1, HTTP 404.
    NotFound,
    /// The request conflicts with current state (duplicate, busy): exit 1, HTTP 409.
    Conflict,
    /// Authentication or authorisation failed: exit 1, HTTP 401/403.
    Unauthorized,
    /// A size or rate limit was exceeded: exit 2, HTTP 413/429.
    TooLarge,
}

impl ErrorKind {
    /// The process exit code for this kind (SPEC §1).
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Failed | ErrorKind::NotFound | ErrorKind::Conflict | ErrorKind::Unauthorized => 1,
            ErrorKind::Invalid | ErrorKind::TooLarge => 2,
            ErrorKind::Refused => 3,
            ErrorKind::Integrity => 4,
            ErrorKind::Cancelled => 130,
        }
    }
}

/// A library error: a kind plus a message chain, outermost context first when displayed.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    /// Innermost message first; contexts are pushed as the error travels up.
    chain: Vec<String>,
    /// The underlying OS error, kept so callers can test for e.g. ENOSPC or EPIPE.
    io: Option<io::ErrorKind>,
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with a message saying what went wrong.
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Error {
        Error { kind, chain: vec![msg.into()], io: None }
    }

    /// Shorthand for an [`ErrorKind::Invalid`] error.
    pub fn invalid(msg: impl Into<String>) -> Error {
        Error::new(ErrorKind::Invalid, msg)
    }

    /// Shorthand for an [`ErrorKind::Failed`] error.
    pub fn failed(msg: impl Into<String>) -> Error {
        Error::new(ErrorKind::Failed, msg)
    }

    /// Shorthand for an [`ErrorKind::Refused`] error.
    pub fn refused(msg: impl Into<String>) -> Error {
        Error::new(ErrorKind::Refused, msg)
    }

    /// Shorthand for an [`ErrorKind::NotFound`] error.
    pub fn not_found(msg: impl Into<String>) -> Error {
        Error::new(ErrorKind::NotFound, msg)
    }

    /// Wraps the error in one more layer of context (`opening /dev/sda`).
    pub fn context(mut self, ctx: impl Into<String>) -> Error {
        self.chain.push(ctx.into());
        self
    }

    /// The kind, which decides exit code and HTTP status.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Returns the same error with another kind (e.g. a failed read of a remote digest
    /// becomes an integrity failure at the call site that knows why).
    pub fn with_kind(mut self, kind: ErrorKind) -> Error {
        self.kind = kind;
        self
    }

    /// The OS-level error kind, when this error came from `io::Error`.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        self.io
    }

    /// The innermost message alone, without context (what an HTTP `detail` shows).
    pub fn root_message(&self) -> &str {
        self.chain.first().map(String::as_str).unwrap_or("")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, part) in self.chain.iter().rev().enumerate() {
            if i > 0 {
                f.write_str(": ")?;
            }
            f.write_str(part)?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        let kind = match e.kind() {
            io::ErrorKind::NotFound => ErrorKind::NotFound,
            io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => ErrorKind::Failed,
            io::ErrorKind::Interrupted => ErrorKind::Cancelled,
            _ => ErrorKind::Failed,
        };
        // An io::Error may itself wrap one of ours (a Read impl that had to speak io::Error).
        let io_kind = e.kind();
        let text = os_text(&e);
        match e.into_inner().map(|inner| inner.downcast::<Error>()) {
            Some(Ok(ours)) => *ours,
            _ => Error { kind, chain: vec![text], io: Some(io_kind) },
        }
    }
}

/// Lets a `Read`/`Write` implementation carry one of our errors through `io::Error` unchanged.
impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = e.io.unwrap_or(match e.kind {
            ErrorKind::NotFound => io::ErrorKind::NotFound,
            // Not Interrupted: std and the decompressors retry Interrupted forever, so a cancel
            // carried as Interrupted would spin instead of stopping. Our kind rides inside.
            ErrorKind::Invalid => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::Other,
        });
        io::Error::new(kind, e)
    }
}

/// The OS text of an I/O error without Rust's " (os error N)" suffix, which helps nobody.
fn os_text(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Adds context to any result whose error converts into [`Error`].
pub trait Context<T> {
    /// Wraps the error with a fixed context string.
    fn context(self, ctx: impl Into<String>) -> Result<T>;
    /// Wraps the error with a context string computed only on failure.
    fn with_context<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, ctx: impl Into<String>) -> Result<T> {
        self.map_err(|e| e.into().context(ctx))
    }
    fn with_context<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| e.into().context(f()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_puts_outermost_context_first() {
        let e = Error::failed("permission denied").context("opening /dev/sda");
        assert_eq!(e.to_string(), "opening /dev/sda: permission denied");
    }

    #[test]
    fn our_error_survives_a_trip_through_io_error() {
        let ours = Error::new(ErrorKind::Integrity, "sha256 mismatch");
        let io: io::Error = ours.into();
        let back: Error = io.into();
        assert_eq!(back.kind(), ErrorKind::Integrity);
        assert_eq!(back.to_string(), "sha256 mismatch");
    }

    #[test]
    fn exit_codes_follow_the_spec_table() {
        let cases = [
            (ErrorKind::Failed, 1),
            (ErrorKind::Invalid, 2),
            (ErrorKind::Refused, 3),
            (ErrorKind::Integrity, 4),
            (ErrorKind::Cancelled, 130),
        ];
        for (kind, code) in cases {
            assert_eq!(kind.exit_code(), code, "{kind:?}");
        }
    }

    #[test]
    fn io_not_found_keeps_os_text_and_kind() {
        let e: Error = std::fs::File::open("/nonexistent/x").unwrap_err().into();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.io_kind(), Some(io::ErrorKind::NotFound));
    }
}
