//! Renders the `/ui` pages: the template environment (HTML autoescaped by file extension), the
//! filters pages use (`ts`, `bytes`, `duration`, `short`), the frame every page shares (title, navigation,
//! the "what this page is for" line, CSRF token, notices) and the readable error page.
//!
//! This is the only file under `ui/` that knows minijinja. Values reach templates as data and
//! are escaped on output; no handler builds HTML by string concatenation.

use crate::web::context::AppContext;
use crate::web::csrf;
use crate::web::request::Request;
use crate::web::response::{HttpError, Reply, Response};
use minijinja::{context, Environment, State, Value};
use std::sync::OnceLock;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/ui/base.html")),
    ("login.html", include_str!("../templates/ui/login.html")),
    ("error.html", include_str!("../templates/ui/error.html")),
    ("confirm.html", include_str!("../templates/ui/confirm.html")),
    ("dashboard.html", include_str!("../templates/ui/dashboard.html")),
    ("machines.html", include_str!("../templates/ui/machines.html")),
    ("machine.html", include_str!("../templates/ui/machine.html")),
    ("images.html", include_str!("../templates/ui/images.html")),
    ("netboot.html", include_str!("../templates/ui/netboot.html")),
    ("events.html", include_str!("../templates/ui/events.html")),
    ("settings.html", include_str!("../templates/ui/settings.html")),
    ("backups.html", include_str!("../templates/ui/backups.html")),
    ("account.html", include_str!("../templates/ui/account.html")),
    ("proxy_dhcp.html", include_str!("../templates/ui/proxy_dhcp.html")),
];

/// Short confirmations shown after a redirect (`?done=KEY`); a fixed table, so a crafted link
/// cannot put arbitrary text on the page.
const NOTICES: &[(&str, &str)] = &[
    ("saved", "Saved."),
    ("unchanged", "Nothing changed: the form matched what is stored."),
    ("settings", "Settings saved; they take effect now and override bty.toml."),
    ("reflash", "Flash again: a new cycle is armed. It flashes on its next PXE boot — power-cycle it."),
    ("local", "Boots its local disk from the next PXE boot; image and disk stay bound."),
    ("added", "Machine added."),
    ("deleted", "Deleted."),
    ("acked", "Acknowledged."),
    ("password", "Password changed. Every other session was signed out."),
    ("password-tokens", "Password changed. Every other session was signed out and every API token revoked."),
    ("revoked", "Token revoked."),
    ("backup", "Backup created."),
    ("fetch", "Fetch started; the image appears below when it completes."),
    ("dismissed", "The failed fetch was removed from the list (the event log keeps it)."),
    ("imported", "Netboot artifacts imported; every digest matched SHA256SUMS."),
    ("remote", "Remote entry added; machines fetch it from its source."),
];

/// Pages load only this server's stylesheet and script, talk only to this server and cannot be
/// framed: a stray injected tag could neither run inline code nor reach another host.
const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, text) in TEMPLATES {
            // Compiled into the binary and rendered by the tests; a syntax error is a build
            // defect that surfaces as a 500 page naming the template.
            let _ = env.add_template(name, text);
        }
        env.add_filter("ts", ts);
        env.add_filter("bytes", bytes);
        env.add_filter("urlencode", |s: String| encode_component(&s));
        env.add_filter("duration", duration);
        env.add_filter("short", |s: String| s.chars().take(12).collect::<String>());
        env
    })
}

/// A stored or API timestamp as a `<time>` element: `YYYY-MM-DD HH:MM:SS` in the page's display
/// time zone (`time_zone` in the frame, `[ui] time_zone`), the UTC time on hover.
fn ts(state: &State, s: Option<String>) -> Value {
    let zone = state.lookup("time_zone").and_then(|z| z.as_str().map(str::to_string));
    time_element(s, zone.as_deref().unwrap_or("UTC"))
}

/// [`ts`] for a zone name; an unknown zone shows UTC.
fn time_element(s: Option<String>, zone: &str) -> Value {
    let Some(s) = s.filter(|s| !s.is_empty()) else { return Value::from("—") };
    let Some(at) =
        crate::db::parse_ts(&s).and_then(|t| jiff::Timestamp::from_second(t.unix_timestamp()).ok())
    else {
        return Value::from(s);
    };
    let shown = |tz: &jiff::tz::TimeZone| tz.to_datetime(at).strftime("%Y-%m-%d %H:%M:%S").to_string();
    let utc = shown(&jiff::tz::TimeZone::UTC);
    let local = shown(&jiff::tz::TimeZone::get(zone).unwrap_or(jiff::tz::TimeZone::UTC));
    let iso = at.strftime("%Y-%m-%dT%H:%M:%SZ");
    // Digits, dashes, colons and the letters of `UTC`/ISO only: nothing to escape.
    Value::from_safe_string(format!("<time datetime=\"{iso}\" title=\"{utc} UTC\">{local}</time>"))
}

/// Percent-encodes a URL query component or path segment (unreserved characters and `:` kept,
/// so MACs stay readable).
pub fn encode_component(s: &str) -> String {
    const KEPT: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b':');
    percent_encoding::utf8_percent_encode(s, KEPT).to_string()
}

/// Seconds as an operator reads a wait: `45 s`, `3 min 20 s`, `2 h 5 min`.
fn duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

fn bytes(n: Option<u64>) -> String {
    match n {
        Some(n) if n < 1024 => format!("{n} B"),
        Some(n) => crate::disk::human_size(n),
        None => "—".into(),
    }
}

/// What every page shows in its frame.
pub struct Page<'a> {
    /// `<title>` and heading.
    pub title: &'a str,
    /// Which navigation entry is current (`machines`).
    pub nav: &'a str,
    /// One line: what this page is for.
    pub intro: &'a str,
}

fn render_str(name: &str, ctx: Value) -> Result<String, HttpError> {
    let t = env().get_template(name).map_err(|e| HttpError::internal(format!("template {name}: {e}")))?;
    t.render(ctx).map_err(|e| HttpError::internal(format!("rendering {name}: {e:#}")))
}

/// Renders `template` inside the layout with `data` merged into the frame's values.
pub fn render(
    ctx: &AppContext,
    req: &Request<'_>,
    status: u16,
    template: &str,
    page: Page<'_>,
    data: serde_json::Value,
) -> Reply {
    let data = Value::from(minijinja::value::Serde(data));
    let notice = req.query("done").and_then(|k| NOTICES.iter().find(|(key, _)| *key == k)).map(|(_, t)| *t);
    let frame = context! {
        title => page.title,
        nav => page.nav,
        intro => page.intro,
        csrf => csrf::token_for(ctx, req).unwrap_or_default(),
        version => crate::VERSION,
        notice => notice,
        path => req.path.as_str(),
        time_zone => crate::web::settings::time_zone(ctx),
    };
    let html = render_str(template, context! { ..data, ..frame })?;
    Ok(Response::html(status, html)
        .header("Cache-Control", "no-store")
        .header("Content-Security-Policy", CSP)
        .header("X-Content-Type-Options", "nosniff")
        .header("Referrer-Policy", "same-origin"))
}

/// The sign-in page (also used by `POST /ui/login` to report a wrong password).
pub fn login_page(error: Option<&str>, password_file: Option<String>, next: Option<&str>) -> String {
    let ctx = context! { title => "Sign in", error => error, password_file => password_file, next => next, version => crate::VERSION };
    render_str("login.html", ctx).unwrap_or_else(|e| format!("bty: {}", e.detail))
}

/// A page asking to confirm a destructive action by posting `confirm=yes` to `action`.
pub fn confirm(
    ctx: &AppContext,
    req: &Request<'_>,
    nav: &str,
    question: &str,
    action: &str,
    back: &str,
) -> Reply {
    let page = Page { title: "Confirm", nav, intro: "This cannot be undone." };
    let data = serde_json::json!({ "question": question, "action": action, "back": back });
    render(ctx, req, 200, "confirm.html", page, data)
}

/// For a 404 under `/ui/SECTION/…`: the page where such a thing is made or listed, so a dead
/// link leads somewhere useful.
const MADE_ON: &[(&str, &str, &str)] = &[
    ("machines", "/ui/machines", "Add a machine by MAC on the Machines page"),
    ("images", "/ui/images", "Upload or add an image on the Images page"),
    ("account", "/ui/account", "Create API tokens on the Account page"),
    ("backups", "/ui/backups", "Make a backup on the Backups page"),
    ("events", "/ui/events", "Browse the events"),
];

/// Turns a page handler's error into a readable HTML page with the same status (redirects and
/// their `Location` pass through untouched).
pub fn html(ctx: &AppContext, req: &Request<'_>, reply: Reply) -> Reply {
    let err = match reply {
        Ok(r) => return Ok(r),
        Err(e) if (300..400).contains(&e.status) => return Err(e),
        Err(e) => e,
    };
    let message = err.detail_text();
    let title = match err.status {
        403 => "Not allowed",
        404 => "Not found",
        413 => "Too large",
        400 | 409 | 422 => "Cannot do that",
        _ => "Something went wrong",
    };
    let page = Page { title, nav: "", intro: "" };
    let made_on = match (err.status, req.segments.get(1)) {
        (404, Some(section)) => {
            MADE_ON.iter().find(|(s, _, _)| s == section).map(|(_, href, text)| (href, text))
        }
        _ => None,
    };
    let data = serde_json::json!({ "status": err.status, "message": message, "signed_in": req.principal.is_some(), "made_on": made_on });
    let mut resp = match render(ctx, req, err.status, "error.html", page, data) {
        Ok(r) => r,
        Err(e) => {
            Response::text(err.status, "text/plain; charset=utf-8", format!("{message}\n({})", e.detail))
        }
    };
    resp.headers.extend(err.headers);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        for (name, _) in TEMPLATES {
            if let Err(e) = env().get_template(name) {
                panic!("{name}: {e:#}");
            }
        }
    }

    #[test]
    fn timestamps_show_in_the_zone_to_the_second_with_utc_on_hover_and_bytes_are_binary_units() {
        let at = |s: &str, zone| time_element(Some(s.into()), zone).to_string();
        let utc = "<time datetime=\"2026-11-23T12:18:44Z\" title=\"2026-11-23 12:18:44 UTC\">";
        assert_eq!(at("2026-11-23T12:18:44.050905Z", "UTC"), format!("{utc}2026-11-23 12:18:44</time>"));
        assert_eq!(at("2026-11-23T12:18:44.050905+00:00", "UTC"), format!("{utc}2026-11-23 12:18:44</time>"));
        // Berlin is UTC+1 in November, UTC+2 in summer.
        assert_eq!(at("2026-11-23T12:18:44Z", "Europe/Berlin"), format!("{utc}2026-11-23 13:18:44</time>"));
        assert!(at("2026-07-01T12:00:00Z", "Europe/Berlin").ends_with(">2026-07-01 14:00:00</time>"));
        assert_eq!(time_element(None, "UTC").to_string(), "—");
        // Text that is not a time is shown as it is, escaped by the template like any value.
        assert!(!time_element(Some("<b>".into()), "UTC").is_safe());
        assert_eq!(bytes(Some(512)), "512 B");
        assert_eq!(bytes(Some(3 << 30)), "3.0 GiB");
        assert_eq!([duration(45), duration(200), duration(7500)], ["45 s", "3 min 20 s", "2 h 5 min"]);
    }
}
