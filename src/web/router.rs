//! Every route on one screen: `(method, path segments)` → handler. Authentication, CSRF and the
//! session cookie's sliding refresh happen here, around the handlers, in one place.
//!
//! Open routes (compatible with the reference, plus our progress and image download routes)
//! need nothing. Protected routes need a session cookie or a Bearer token: without one, JSON
//! routes answer 401 `{"detail":"login required"}` and `/ui` pages redirect to `/ui/login`. A
//! cookie-authenticated state change (any method but GET/HEAD) must carry a CSRF token
//! (`csrf.rs`).

use super::auth;
use super::context::AppContext;
use super::csrf;
use super::handlers::{
    self as h, auth as login, backups, boot, events, images, machines, proxy_dhcp, pxe, system, tokens,
};
use super::request::{Method, Request};
use super::response::{HttpError, Reply, Response};
use super::ui;

/// Routes a request and turns any error into its response.
pub fn handle(ctx: &AppContext, mut req: Request<'_>) -> Response {
    let refreshed = match auth::authenticate(ctx, &req) {
        Ok(Some((principal, refreshed))) => {
            req.principal = Some(principal);
            refreshed
        }
        Ok(None) => None,
        Err(e) => return HttpError::from(e).into_response(),
    };
    let mut resp = route(ctx, &req).unwrap_or_else(HttpError::into_response);
    if let Some(cookie) = refreshed {
        if resp.get_header("set-cookie").is_none() {
            resp = resp.header("Set-Cookie", auth::set_cookie(&cookie, auth::SESSION_TTL_SECS));
        }
    }
    resp
}

fn route(ctx: &AppContext, req: &Request<'_>) -> Reply {
    use Method::*;
    let seg: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    match (req.method, seg.as_slice()) {
        // Open: PXE clients, netboot agents, catalogs, health.
        (Get, []) => system::root(ctx, req),
        (Get, ["healthz"]) => system::healthz(ctx, req),
        (Get, ["version"]) => system::version(ctx, req),
        (Get, ["pxe-bootstrap.ipxe"]) => pxe::bootstrap(ctx, req),
        (Get, ["pxe", mac]) => pxe::script(ctx, req, mac),
        (Get, ["pxe", mac, "plan"]) => pxe::plan(ctx, req, mac),
        (Post, ["pxe", mac, "status"]) => pxe::status(ctx, req, mac),
        (Post, ["pxe", mac, "inventory"]) => pxe::inventory(ctx, req, mac),
        (Post, ["pxe", mac, "progress"]) => pxe::progress(ctx, req, mac),
        (Get | Head, ["boot", name]) => boot::get(ctx, req, name),
        (Get, ["images"]) => images::list(ctx, req),
        (Get, ["catalog.toml"]) => images::catalog(ctx, req),
        (Get | Head, ["images", image_ref, name]) => images::download(ctx, req, image_ref, name),
        (Get, ["ui", "login"]) => login::login_page(ctx, req),
        (Post, ["ui", "login"]) => login::login(ctx, req),

        // Protected: operators and scripts.
        (Post, ["ui", "logout"]) => guard(ctx, req).and_then(|_| login::logout(ctx, req)),
        (Get, ["machines"]) => guard(ctx, req).and_then(|_| machines::list(ctx, req)),
        (Get, ["machines", mac]) => guard(ctx, req).and_then(|_| machines::get(ctx, req, mac)),
        (Put, ["machines", mac]) => guard(ctx, req).and_then(|_| machines::put(ctx, req, mac)),
        (Post, ["machines", mac, "reflash"]) => {
            guard(ctx, req).and_then(|_| machines::reflash(ctx, req, mac))
        }
        (Delete, ["machines", mac]) => guard(ctx, req).and_then(|_| machines::delete(ctx, req, mac)),
        (Get, ["machines", mac, "lshw.json"]) => guard(ctx, req).and_then(|_| machines::lshw(ctx, req, mac)),
        (Get, ["machines", mac, "disks.json"]) => {
            guard(ctx, req).and_then(|_| machines::disks(ctx, req, mac))
        }
        (Get, ["events"]) => guard(ctx, req).and_then(|_| events::list(ctx, req)),
        (Post, ["events", id, "ack"]) => guard(ctx, req).and_then(|_| events::ack(ctx, req, id)),
        (Get, ["events", "machines"]) => guard(ctx, req).and_then(|_| events::machines_stream(ctx, req)),
        (Put, ["boot", name]) => guard(ctx, req).and_then(|_| boot::put(ctx, req, name)),
        (Get, ["images", "jobs"]) => guard(ctx, req).and_then(|_| images::jobs(ctx, req)),
        // No route upstream either (its `/images/{key}` proxy was removed): 404, as it answers.
        (Get | Head, ["images", _]) => Err(HttpError::not_found("Not Found")),
        (Post, ["images"]) => guard(ctx, req).and_then(|_| images::fetch(ctx, req)),
        (Put, ["images", name]) => guard(ctx, req).and_then(|_| images::upload(ctx, req, name)),
        (Post, ["catalog", "entries"]) => guard(ctx, req).and_then(|_| images::add_remote(ctx, req)),
        (Delete, ["images", image_ref]) => guard(ctx, req).and_then(|_| images::delete(ctx, req, image_ref)),
        (Get, ["backups"]) => guard(ctx, req).and_then(|_| backups::list(ctx, req)),
        (Post, ["backups"]) => guard(ctx, req).and_then(|_| backups::create(ctx, req)),
        (Get | Head, ["backups", name]) => guard(ctx, req).and_then(|_| backups::download(ctx, req, name)),
        (Delete, ["backups", name]) => guard(ctx, req).and_then(|_| backups::delete(ctx, req, name)),
        (Get, ["api", "tokens"]) => guard(ctx, req).and_then(|_| tokens::list(ctx, req)),
        (Post, ["api", "tokens"]) => guard(ctx, req).and_then(|_| tokens::create(ctx, req)),
        (Delete, ["api", "tokens", id]) => guard(ctx, req).and_then(|_| tokens::delete(ctx, req, id)),
        (Get, ["settings", "proxy-dhcp"]) => guard(ctx, req).and_then(|_| proxy_dhcp::get(ctx, req)),
        (Put, ["settings", "proxy-dhcp"]) => guard(ctx, req).and_then(|_| proxy_dhcp::put(ctx, req)),
        // Browser pages: signed in, errors as readable pages.
        (Get | Head, ["static", name]) => ui::assets::get(ctx, req, name),
        (Get, ["ui"]) => page(ctx, req, || ui::root(ctx, req)),
        (Get, ["ui", "dashboard"]) => page(ctx, req, || ui::dashboard::page(ctx, req)),
        (Get, ["ui", "machines"]) => page(ctx, req, || ui::machines::page(ctx, req)),
        (Post, ["ui", "machines"]) => page(ctx, req, || ui::machines::add(ctx, req)),
        (Get, ["ui", "machines", mac]) => page(ctx, req, || ui::machine::page(ctx, req, mac)),
        (Post, ["ui", "machines", "reflash"]) => page(ctx, req, || ui::machines::reflash(ctx, req)),
        (Post, ["ui", "machines", mac]) => page(ctx, req, || ui::machine::save(ctx, req, mac)),
        (Post, ["ui", "machines", mac, "reflash"]) => page(ctx, req, || ui::machine::reflash(ctx, req, mac)),
        (Post, ["ui", "machines", mac, "local"]) => page(ctx, req, || ui::machine::local_disk(ctx, req, mac)),
        (Post, ["ui", "machines", mac, "delete"]) => page(ctx, req, || ui::machine::delete(ctx, req, mac)),
        (Get, ["ui", "images"]) => page(ctx, req, || ui::images::page(ctx, req)),
        (Post, ["ui", "images", "fetch"]) => page(ctx, req, || ui::images::fetch(ctx, req)),
        (Post, ["ui", "images", "jobs", id, action @ ("retry" | "dismiss")]) => {
            page(ctx, req, || ui::images::job(ctx, req, id, *action == "retry"))
        }
        (Post, ["ui", "images", image_ref, "delete"]) => {
            page(ctx, req, || ui::images::delete(ctx, req, image_ref))
        }
        (Get, ["ui", "netboot"]) => page(ctx, req, || ui::netboot::page(ctx, req)),
        (Get, ["ui", "netboot", "bty-boot-stick.img"]) => {
            page(ctx, req, || ui::netboot::boot_stick(ctx, req))
        }
        (Post, ["ui", "netboot", "import"]) => page(ctx, req, || ui::netboot::import(ctx, req)),
        (Get, ["ui", "events"]) => page(ctx, req, || ui::events::page(ctx, req)),
        (Post, ["ui", "events", "ack"]) => page(ctx, req, || ui::events::ack(ctx, req)),
        (Get, ["ui", "settings"]) => page(ctx, req, || ui::settings::page(ctx, req)),
        (Post, ["ui", "settings"]) => page(ctx, req, || ui::settings::save(ctx, req)),
        (Post, ["ui", "settings", "proxy-dhcp"]) => page(ctx, req, || ui::proxy_dhcp::save(ctx, req)),
        (Get, ["ui", "backups"]) => page(ctx, req, || ui::backups::page(ctx, req)),
        (Post, ["ui", "backups"]) => page(ctx, req, || ui::backups::create(ctx, req)),
        (Get, ["ui", "backups", name, "download"]) => {
            page(ctx, req, || ui::backups::download(ctx, req, name))
        }
        (Post, ["ui", "backups", name, "delete"]) => page(ctx, req, || ui::backups::delete(ctx, req, name)),
        (Get, ["ui", "account"]) => page(ctx, req, || ui::account::page(ctx, req)),
        (Post, ["ui", "account", "password"]) => page(ctx, req, || ui::account::password(ctx, req)),
        (Post, ["ui", "account", "tokens"]) => page(ctx, req, || ui::account::create_token(ctx, req)),
        (Post, ["ui", "account", "tokens", id, "revoke"]) => {
            page(ctx, req, || ui::account::revoke_token(ctx, req, id))
        }
        (_, ["ui", ..]) => page(ctx, req, || Err(HttpError::not_found("There is no such page."))),
        (_, path) => Err(not_routed(req.method, path)),
    }
}

/// Refuses a request without a principal (401, or 303 for `/ui` pages) and a cookie state change
/// whose CSRF token (header or form field) is missing or wrong (403).
pub fn guard(ctx: &AppContext, req: &Request<'_>) -> Result<(), HttpError> {
    if req.principal.is_none() {
        if req.segments.first().map(String::as_str) == Some("ui") {
            let to = login::login_location(req);
            return Err(HttpError::new(303, "login required").header("Location", &to));
        }
        return Err(HttpError::new(401, "login required"));
    }
    if csrf::required(req) {
        let from_form = if req.is_form() {
            req.form(h::SMALL_JSON)?.into_iter().find(|(k, _)| k == csrf::FIELD).map(|(_, v)| v)
        } else {
            None
        };
        let given = req.header(csrf::HEADER).map(str::to_string).or(from_form);
        if !csrf::valid(ctx, req, given.as_deref()) {
            return Err(HttpError::new(
                403,
                "CSRF token missing or invalid: reload the page; scripts send the session's token as \
                 X-CSRF-Token, or use an API token (Authorization: Bearer)",
            ));
        }
    }
    Ok(())
}

/// A browser page: signed in (CSRF-checked for posts) and any error shown as a readable page.
fn page(ctx: &AppContext, req: &Request<'_>, f: impl FnOnce() -> Reply) -> Reply {
    ui::view::html(ctx, req, guard(ctx, req).and_then(|_| f()))
}

fn not_routed(method: Method, path: &[&str]) -> HttpError {
    let known_path = matches!(
        path,
        ["machines", ..]
            | ["pxe", ..]
            | ["boot", _]
            | ["images", ..]
            | ["events", ..]
            | ["api", "tokens", ..]
            | ["backups", ..]
            | ["settings", "proxy-dhcp"]
    );
    match (method, known_path) {
        (Method::Other, _) | (_, true) => HttpError::new(405, "method not allowed"),
        _ => HttpError::not_found("Not Found"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, LoadOptions};

    fn ctx() -> (tempfile::TempDir, AppContext) {
        let dir = tempfile::tempdir().unwrap();
        let opts = LoadOptions {
            system_dir: dir.path().join("etc"),
            state_dir: Some(dir.path().join("state")),
            env: vec![("BTY_ADMIN_PASSWORD".into(), "pw".into())],
            ..LoadOptions::default()
        };
        let ctx = AppContext::open(Config::load(&opts).unwrap()).unwrap();
        (dir, ctx)
    }

    #[test]
    fn protected_json_routes_answer_401_and_ui_pages_redirect() {
        let (_d, ctx) = ctx();
        let r = handle(&ctx, Request::fake("GET", "/machines"));
        assert_eq!((r.status, r.body_bytes()), (401, &br#"{"detail":"login required"}"#[..]));
        let r = handle(&ctx, Request::fake("POST", "/ui/logout"));
        assert_eq!((r.status, r.get_header("location")), (303, Some("/ui/login")));
    }

    #[test]
    fn login_sets_a_cookie_that_opens_protected_routes() {
        let (_d, ctx) = ctx();
        let r = handle(&ctx, Request::fake("POST", "/ui/login").with_body(b"password=pw".to_vec()));
        assert_eq!(r.status, 303);
        let cookie = r.get_header("set-cookie").unwrap().split(';').next().unwrap().to_string();
        assert!(r.get_header("set-cookie").unwrap().contains("HttpOnly; SameSite=Strict"));
        let r = handle(&ctx, Request::fake("GET", "/machines").with_header("Cookie", &cookie));
        assert_eq!((r.status, r.body_bytes()), (200, &b"[]"[..]));
    }

    #[test]
    fn bad_mac_is_400_with_the_references_detail() {
        let (_d, ctx) = ctx();
        let r = handle(&ctx, Request::fake("GET", "/pxe/zz:bb"));
        assert_eq!((r.status, r.body_bytes()), (400, &br#"{"detail":"invalid MAC: 'zz:bb'"}"#[..]));
    }

    #[test]
    fn handlers_run_without_sockets_on_fake_requests() {
        let (_d, ctx) = ctx();
        let r =
            handle(&ctx, Request::fake("GET", "/pxe/52-54-00-aa-bb-cc").with_header("Host", "10.0.0.1:8080"));
        assert_eq!(r.status, 200);
        let text = String::from_utf8_lossy(r.body_bytes()).into_owned();
        assert!(text.contains("bty.server=http://10.0.0.1:8080 bty.mac=52:54:00:aa:bb:cc"), "{text}");
        let r = handle(&ctx, Request::fake("GET", "/pxe/52:54:00:aa:bb:cc/plan"));
        assert_eq!(r.body_bytes(), br#"{"mode":"inventory"}"#);
        assert_eq!(ctx.db.machines().unwrap().len(), 1);
    }

    #[test]
    fn unknown_paths_are_404_and_wrong_methods_405() {
        let (_d, ctx) = ctx();
        assert_eq!(handle(&ctx, Request::fake("GET", "/nope")).status, 404);
        assert_eq!(handle(&ctx, Request::fake("PATCH", "/machines")).status, 405);
        assert_eq!(handle(&ctx, Request::fake("DELETE", "/pxe/aa:bb:cc:dd:ee:ff")).status, 405);
    }
}
