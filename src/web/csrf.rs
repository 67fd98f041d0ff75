//! CSRF tokens for every state change a browser session makes.
//!
//! The token is `HMAC(secret, "csrf:" + session id hash)`: stateless, tied to one session, and
//! useless to anyone who cannot read the page. Pages put it in a hidden `csrf_token` field and the
//! UI's script sends it as `X-CSRF-Token`; the router checks it on every cookie-authenticated
//! request that is not `GET`/`HEAD`, whatever its content type or body (a JSON body or none at
//! all is no proof of a same-site caller). It is never read from the query string, which ends up
//! in logs, history and `Referer` headers. Bearer-token requests need none: a browser never adds
//! that header by itself. So `POST /events/{id}/ack` with a cookie and an empty body, which the
//! reference answers 200, is 403 here without the token: scripts use an API token.

use super::auth::{ct_eq, hmac};
use super::context::AppContext;
use super::request::{Principal, Request};
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

/// Whether this request must carry a token: a cookie session changing anything.
pub fn required(req: &Request<'_>) -> bool {
    req.method.is_unsafe() && matches!(req.principal, Some(Principal::Session { .. }))
}

/// Checks `given` (from the header or the form) against the session's token.
pub fn valid(ctx: &AppContext, req: &Request<'_>, given: Option<&str>) -> bool {
    match (token_for(ctx, req), given) {
        (Some(want), Some(given)) => ct_eq(want.as_bytes(), given.as_bytes()),
        _ => false,
    }
}
