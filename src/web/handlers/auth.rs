//! Login and logout (`POST /ui/login`, `POST /ui/logout`) and the bare login form the `ui`
//! pages replace.

use crate::web::auth::{self, COOKIE, SESSION_TTL_SECS};
use crate::web::context::{event, AppContext};
use crate::web::request::Request;
use crate::web::response::{HttpError, Reply, Response};

/// A minimal login form (no JavaScript, no assets).
pub fn login_form(error: Option<&str>) -> String {
    let error = error.map(|e| format!("<p role=\"alert\">{e}</p>")).unwrap_or_default();
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>bty — sign in</title></head><body>\
         <h1>bty</h1>{error}<form method=\"post\" action=\"/ui/login\">\
         <label>Password <input type=\"password\" name=\"password\" autofocus required></label> \
         <button type=\"submit\">Sign in</button></form></body></html>"
    )
}

/// `GET /ui/login`.
pub fn login_page(_ctx: &AppContext, req: &Request<'_>) -> Reply {
    if req.principal.is_some() {
        return Ok(Response::see_other("/ui"));
    }
    Ok(Response::html(200, login_form(None)))
}

/// `POST /ui/login` (form `password`): 303 with the session cookie, 401 on a wrong password,
/// 429 after repeated failures from one address.
pub fn login(ctx: &AppContext, req: &Request<'_>) -> Reply {
    let ip = req.client_ip.clone();
    if let Err(wait) = ctx.login_limiter.check(&ip) {
        return Err(HttpError::new(429, "too many failed logins; wait and retry")
            .header("Retry-After", wait.to_string()));
    }
    let form = req.form(16 << 10)?;
    let given = form.iter().find(|(k, _)| k == "password").map(|(_, v)| v.as_str()).unwrap_or("");
    if !auth::password_matches(ctx, given) {
        ctx.login_limiter.failed(&ip);
        ctx.audit(
            Some(req),
            event("auth.login.failed", ("auth", "operator"), "operator", format!("failed login from {ip}")),
        );
        return Ok(Response::html(401, login_form(Some("Invalid password."))));
    }
    ctx.login_limiter.succeeded(&ip);
    let cookie = auth::create_session(ctx, &ip)?;
    ctx.audit(
        Some(req),
        event("auth.login.succeeded", ("auth", "operator"), "operator", format!("login from {ip}")),
    );
    Ok(Response::see_other("/ui").header("Set-Cookie", auth::set_cookie(&cookie, SESSION_TTL_SECS)))
}

/// `POST /ui/logout`: ends the session and clears the cookie.
pub fn logout(ctx: &AppContext, req: &Request<'_>) -> Reply {
    if let Some(cookie) = req.cookie(COOKIE) {
        if auth::end_session(ctx, cookie)? {
            ctx.audit(Some(req), event("auth.logout", ("auth", "operator"), "operator", "logout"));
        }
    }
    Ok(Response::see_other("/ui/login").header("Set-Cookie", auth::set_cookie("", 0)))
}
