//! Login and logout (`GET|POST /ui/login`, `POST /ui/logout`); the page itself is rendered by
//! `ui/view.rs`.

use crate::web::auth::{self, COOKIE, SESSION_TTL_SECS};
use crate::web::context::{event, AppContext};
use crate::web::request::Request;
use crate::web::response::{HttpError, Reply, Response};

/// Where sign-in may return to: a page of this UI named by a relative path (`/ui…`), nothing
/// else — an absolute URL, a scheme-relative `//host` or a backslash trick would turn the sign-in
/// page into an open redirect.
pub fn return_to(next: &str) -> Option<&str> {
    let ours = next == "/ui" || next.starts_with("/ui/") || next.starts_with("/ui?");
    (ours && !next.chars().any(|c| c.is_control() || c == '\\')).then_some(next)
}

/// Where a page request without a session is sent: the sign-in page, remembering a `GET`'s
/// page and query (a post cannot be replayed after signing in).
pub fn login_location(req: &Request<'_>) -> String {
    use crate::web::ui::view::encode_component as enc;
    if req.method != crate::web::request::Method::Get {
        return "/ui/login".into();
    }
    let query: Vec<String> = req.query.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect();
    let page = if query.is_empty() { req.path.clone() } else { format!("{}?{}", req.path, query.join("&")) };
    match return_to(&page) {
        Some(p) if p != "/ui/login" => format!("/ui/login?next={}", enc(p)),
        _ => "/ui/login".into(),
    }
}

/// The sign-in page, with where the generated password is while no other password is set, and
/// the page to return to.
pub fn login_form(ctx: &AppContext, req: &Request<'_>, error: Option<&str>) -> String {
    let generated = ctx.config.admin_password.is_empty()
        && ctx.db.setting(auth::PASSWORD_SETTING).ok().flatten().is_none();
    let hint = generated.then(|| ctx.config.paths.state_dir.join("admin-password").display().to_string());
    let next = req.query("next").and_then(return_to);
    crate::web::ui::view::login_page(error, hint, next)
}

/// `GET /ui/login`.
pub fn login_page(ctx: &AppContext, req: &Request<'_>) -> Reply {
    if req.principal.is_some() {
        return Ok(Response::see_other("/ui"));
    }
    Ok(Response::html(200, login_form(ctx, req, None)))
}

/// `POST /ui/login` (form `password`): 303 with the session cookie, 401 on a wrong password,
/// 429 while the address or the account backs off after repeated failures (`auth::LoginLimiter`)
/// — for a browser, the sign-in page saying how long to wait.
pub fn login(ctx: &AppContext, req: &Request<'_>) -> Reply {
    let ip = req.client_ip.clone();
    if let Err(wait) = ctx.login_limiter.begin(&ip) {
        let unit = if wait == 1 { "second" } else { "seconds" };
        let msg = format!("Too many failed sign-ins. Try again in {wait} {unit}.");
        if req.wants_html() {
            let page = Response::html(429, login_form(ctx, req, Some(&msg)));
            return Ok(page.header("Retry-After", wait.to_string()));
        }
        return Err(HttpError::new(429, msg).header("Retry-After", wait.to_string()));
    }
    let form = req.form(16 << 10)?;
    let given = form.iter().find(|(k, _)| k == "password").map(|(_, v)| v.as_str()).unwrap_or("");
    if !auth::password_matches(ctx, given) {
        ctx.audit(
            Some(req),
            event("auth.login.failed", ("auth", "operator"), "operator", format!("failed login from {ip}")),
        );
        return Ok(Response::html(401, login_form(ctx, req, Some("Wrong password."))));
    }
    ctx.login_limiter.succeeded(&ip);
    let cookie = auth::create_session(ctx, &ip)?;
    ctx.audit(
        Some(req),
        event("auth.login.succeeded", ("auth", "operator"), "operator", format!("login from {ip}")),
    );
    let next = form.iter().find(|(k, _)| k == "next").and_then(|(_, v)| return_to(v)).unwrap_or("/ui");
    Ok(Response::see_other(next).header("Set-Cookie", auth::set_cookie(&cookie, SESSION_TTL_SECS)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_returns_only_to_pages_of_this_ui() {
        for ok in ["/ui", "/ui/machines?filter=failed", "/ui/machines/52:54:00:aa:bb:01"] {
            assert_eq!(return_to(ok), Some(ok));
        }
        for bad in [
            "",
            "https://evil.example/ui/",
            "//evil.example/ui",
            "/\\evil.example",
            "/uix",
            "ui/machines",
            "/ui/\\evil",
            "/ui/\r\nSet-Cookie: x=1",
            "javascript:alert(1)",
        ] {
            assert_eq!(return_to(bad), None, "{bad:?}");
        }
    }
}
