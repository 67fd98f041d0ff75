//! CSRF tokens for state-changing form posts.
//!
//! The token is `HMAC(secret, "csrf:" + session id hash)`: stateless, tied to one session, and
//! useless to anyone who cannot read the page. Pages put it in a hidden `csrf_token` field (or
//! scripts send it as `X-CSRF-Token`); the router checks it on every cookie-authenticated POST
//! whose body is not JSON (what a cross-site form can forge). Bearer-token requests and JSON
//! bodies need none: a browser cannot send either cross-site without a CORS preflight, which
//! bty-web never grants.

use super::auth::{ct_eq, hmac};
use super::context::AppContext;
use super::request::{Method, Principal, Request};
use crate::source::hex;

/// The form field that carries the token.
pub const FIELD: &str = "csrf_token";

/// The header that carries the token for scripts.
pub const HEADER: &str = "x-csrf-token";

/// The token for a session (what a page embeds in its forms).
pub fn token(ctx: &AppContext, session_id_hash: &str) -> String {
    hex(&hmac(&ctx.secret, format!("csrf:{session_id_hash}").as_bytes()))
}

/// The token for the request's session, if it is a browser session (for page templates).
pub fn token_for(ctx: &AppContext, req: &Request<'_>) -> Option<String> {
    match &req.principal {
        Some(Principal::Session { id_hash }) => Some(token(ctx, id_hash)),
        _ => None,
    }
}

/// Whether this request must carry a token: a cookie session POSTing something other than JSON.
pub fn required(req: &Request<'_>) -> bool {
    let json = req.header("content-type").is_some_and(|c| c.trim_start().starts_with("application/json"));
    req.method == Method::Post && !json && matches!(req.principal, Some(Principal::Session { .. }))
}

/// Checks `given` (from the header or the form) against the session's token.
pub fn valid(ctx: &AppContext, req: &Request<'_>, given: Option<&str>) -> bool {
    match (token_for(ctx, req), given) {
        (Some(want), Some(given)) => ct_eq(want.as_bytes(), given.as_bytes()),
        _ => false,
    }
}
