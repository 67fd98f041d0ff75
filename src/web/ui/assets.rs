//! `GET /static/{name}`: the project's stylesheet and script, embedded in the binary and served
//! with a content `ETag` (a conditional request gets 304) and a short cache lifetime, so a new
//! binary's assets reach browsers within minutes without versioned names.
//!
//! There is deliberately no directory on disk behind `/static`: what the UI looks like is part
//! of the binary that serves it.

use crate::web::auth::sha256_hex;
use crate::web::context::AppContext;
use crate::web::request::Request;
use crate::web::response::{HttpError, Reply, Response};
use std::sync::OnceLock;

/// The assets: name, content type, bytes.
const ASSETS: &[(&str, &str, &str)] = &[
    ("bty.css", "text/css; charset=utf-8", include_str!("../static/bty.css")),
    ("bty.js", "text/javascript; charset=utf-8", include_str!("../static/bty.js")),
];

fn etags() -> &'static Vec<String> {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS.iter().map(|(_, _, body)| format!("\"{}\"", &sha256_hex(body.as_bytes())[..16])).collect()
    })
}

/// Total size of the embedded assets (the budget the tests hold it to).
pub fn total_bytes() -> usize {
    ASSETS.iter().map(|(_, _, b)| b.len()).sum()
}

/// `GET /static/{name}`.
pub fn get(_ctx: &AppContext, req: &Request<'_>, name: &str) -> Reply {
    let i =
        ASSETS.iter().position(|(n, _, _)| *n == name).ok_or_else(|| HttpError::not_found("Not Found"))?;
    let (_, content_type, body) = ASSETS[i];
    let etag = &etags()[i];
    let cache = "public, max-age=300";
    let fresh = req.header("if-none-match").is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let resp = if fresh {
        Response::new(304, crate::web::Body::Empty)
    } else {
        Response::text(200, content_type, body)
    };
    Ok(resp.header("ETag", etag.clone()).header("Cache-Control", cache))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn css_and_js_stay_within_their_60_kib_budget() {
        assert!(total_bytes() < 60 << 10, "{} bytes", total_bytes());
    }
}
