//! Our own small HTTP response type, and the one place errors become responses.
//!
//! Handlers return `Result<Response, HttpError>`. Library errors convert into [`HttpError`]
//! through [`status_of`], the single ErrorKind → status table; request-shape errors (422 with a
//! field list, 413, 429) are built directly. Bodies are bytes, a file range streamed from disk,
//! or a server-sent-event subscription; nothing here writes to a socket (see `server.rs`).

use super::sse::Subscription;
use crate::error::{Error, ErrorKind};
use crate::wire::FieldError;
use std::fs::File;

/// What follows the headers.
pub enum Body {
    /// No body.
    Empty,
    /// A small body held in memory.
    Bytes(Vec<u8>),
    /// `len` bytes of `file` starting at `offset`, streamed.
    File {
        /// The open file.
        file: File,
        /// First byte.
        offset: u64,
        /// Byte count.
        len: u64,
    },
    /// A server-sent-event stream, served on its own thread until the client leaves.
    Events(Subscription),
}

/// A response: status, headers, body.
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Body,
}

impl Response {
    /// A response with no headers yet.
    pub fn new(status: u16, body: Body) -> Response {
        Response { status, headers: Vec::new(), body }
    }

    /// JSON with `Content-Type: application/json`.
    pub fn json<T: serde::Serialize + ?Sized>(status: u16, value: &T) -> Response {
        let bytes =
            serde_json::to_vec(value).unwrap_or_else(|e| format!("{{\"detail\":\"{e}\"}}").into_bytes());
        Response::new(status, Body::Bytes(bytes)).header("Content-Type", "application/json")
    }

    /// Text with a content type.
    pub fn text(status: u16, content_type: &str, text: impl Into<String>) -> Response {
        Response::new(status, Body::Bytes(text.into().into_bytes())).header("Content-Type", content_type)
    }

    /// HTML page.
    pub fn html(status: u16, html: impl Into<String>) -> Response {
        Response::text(status, "text/html; charset=utf-8", html)
    }

    /// 204 No Content.
    pub fn no_content() -> Response {
        Response::new(204, Body::Empty)
    }

    /// 303 See Other to `location`.
    pub fn see_other(location: &str) -> Response {
        Response::new(303, Body::Empty).header("Location", location)
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The first header with this (case-insensitive) name.
    pub fn get_header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body bytes, for tests of in-memory bodies.
    pub fn body_bytes(&self) -> &[u8] {
        match &self.body {
            Body::Bytes(b) => b,
            _ => &[],
        }
    }
}

/// A failed request: a status and a JSON `detail` (a string, or the 422 field list).
#[derive(Debug)]
pub struct HttpError {
    /// HTTP status.
    pub status: u16,
    /// `{"detail": …}` payload.
    pub detail: serde_json::Value,
    /// Extra headers (`Retry-After`, `Location`).
    pub headers: Vec<(String, String)>,
}

/// The one ErrorKind → HTTP status table.
pub fn status_of(kind: ErrorKind) -> u16 {
    match kind {
        ErrorKind::Invalid => 400,
        ErrorKind::Unauthorized => 401,
        ErrorKind::Refused => 403,
        ErrorKind::NotFound => 404,
        ErrorKind::Conflict => 409,
        ErrorKind::TooLarge => 413,
        ErrorKind::Integrity => 422,
        ErrorKind::Failed => 500,
        ErrorKind::Cancelled => 503,
    }
}

impl HttpError {
    /// An error with a text detail.
    pub fn new(status: u16, detail: impl Into<String>) -> HttpError {
        HttpError { status, detail: serde_json::Value::String(detail.into()), headers: Vec::new() }
    }

    /// 400 with a message.
    pub fn bad_request(detail: impl Into<String>) -> HttpError {
        HttpError::new(400, detail)
    }

    /// 404 with a message.
    pub fn not_found(detail: impl Into<String>) -> HttpError {
        HttpError::new(404, detail)
    }

    /// 413 naming the limit.
    pub fn too_large(limit: u64) -> HttpError {
        HttpError::new(413, format!("request body larger than {limit} bytes"))
    }

    /// 422 with the reference's list of field errors.
    pub fn unprocessable(errors: Vec<FieldError>) -> HttpError {
        let detail = serde_json::to_value(errors).unwrap_or(serde_json::Value::Null);
        HttpError { status: 422, detail, headers: Vec::new() }
    }

    /// 500 for a bug in bty-web itself.
    pub fn internal(detail: impl Into<String>) -> HttpError {
        HttpError::new(500, detail)
    }

    /// The detail as one line for people: the text, or the field errors' messages joined.
    pub fn detail_text(&self) -> String {
        match &self.detail {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(items) => items
                .iter()
                .filter_map(|i| i.get("msg").and_then(|m| m.as_str()))
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        }
    }

    /// Adds a header to the error response.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> HttpError {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The response that reports this error.
    pub fn into_response(self) -> Response {
        let mut r = Response::json(self.status, &serde_json::json!({ "detail": self.detail }));
        r.headers.extend(self.headers);
        r
    }
}

impl From<Error> for HttpError {
    fn from(e: Error) -> HttpError {
        HttpError::new(status_of(e.kind()), e.to_string())
    }
}

/// What every handler returns.
pub type Reply = Result<Response, HttpError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_errors_map_through_the_table() {
        let cases = [
            (Error::invalid("x"), 400),
            (Error::not_found("x"), 404),
            (Error::new(ErrorKind::Conflict, "x"), 409),
            (Error::failed("x"), 500),
            (Error::new(ErrorKind::TooLarge, "x"), 413),
        ];
        for (e, status) in cases {
            assert_eq!(HttpError::from(e).status, status);
        }
    }

    #[test]
    fn errors_render_as_a_json_detail() {
        let r = HttpError::bad_request("invalid MAC: 'zz'").into_response();
        assert_eq!(r.status, 400);
        assert_eq!(r.body_bytes(), br#"{"detail":"invalid MAC: 'zz'"}"#);
        assert_eq!(r.get_header("content-type"), Some("application/json"));
    }
}
