//! bty-web's sessions, login limiter and CSRF rule under an operator's and an attacker's
//! requests, black-box over real HTTP: a password change ends every other session (and can
//! revoke the API tokens), the login backoff is short and per address and per account, cannot be
//! raced past, and a browser sees it as a page; every cookie-authenticated state change needs the
//! CSRF token from a header or the form, never from the query string.

mod common;
use common::webserver::{Resp, WebServer};
use common::*;
use serde_json::json;

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

/// The session's CSRF token, as the account page embeds it.
fn csrf(s: &WebServer, cookie: &str) -> String {
    let page = s.raw("GET", "/ui/account", &[("Cookie", cookie)], vec![]).text();
    let at = page.find("name=\"csrf_token\" value=\"").expect("a csrf field") + 25;
    page[at..at + 64].to_string()
}

/// A fresh session cookie for `password` (as a second browser would sign in).
fn sign_in(s: &WebServer, password: &str) -> String {
    let r = s.raw("POST", "/ui/login", &[FORM], format!("password={password}").into_bytes());
    assert_eq!(r.status, 303, "{}", r.text());
    r.header("set-cookie").unwrap().split(';').next().unwrap().to_string()
}

fn change_password(s: &WebServer, cookie: &str, current: &str, new: &str, revoke_tokens: bool) -> Resp {
    let token = csrf(s, cookie);
    let mut body = format!("csrf_token={token}&current={current}&new={new}&confirm={new}");
    if revoke_tokens {
        body.push_str("&revoke_tokens=on");
    }
    s.raw("POST", "/ui/account/password", &[FORM, ("Cookie", cookie)], body.into_bytes())
}

fn status_with(s: &WebServer, cookie: &str) -> u16 {
    s.raw("GET", "/machines", &[("Cookie", cookie)], vec![]).status
}

#[test]
fn changing_the_password_ends_every_other_session_and_offers_revoking_tokens() {
    let dir = scratch();
    let mut s = WebServer::start_in(&dir.path().join("state"), &[]);
    let first = s.login();
    let other = sign_in(&s, &s.password());
    let r = s.post_json("/api/tokens", &json!({ "name": "ci" }));
    assert_eq!(r.status, 201, "{}", r.text());
    let bearer = format!("Bearer {}", r.json()["token"].as_str().unwrap());
    assert!(s.raw("GET", "/ui/account", &[("Cookie", &first)], vec![]).text().contains("revoke_tokens"));

    let r = change_password(&s, &first, &s.password(), "a-new-password-1", false);
    assert_eq!(r.status, 303, "{}", r.text());
    let page = s.raw("GET", r.header("location").unwrap(), &[("Cookie", &first)], vec![]).text();
    assert!(page.contains("Every other session was signed out"), "{page}");
    assert_eq!(status_with(&s, &first), 200, "the session that changed it stays signed in");
    assert_eq!(status_with(&s, &other), 401, "another browser's session ended");
    assert_eq!(s.raw("GET", "/machines", &[("Authorization", &bearer)], vec![]).status, 200);

    // Again, revoking the tokens too.
    let third = sign_in(&s, "a-new-password-1");
    let r = change_password(&s, &first, "a-new-password-1", "a-new-password-2", true);
    assert_eq!(r.status, 303, "{}", r.text());
    let page = s.raw("GET", r.header("location").unwrap(), &[("Cookie", &first)], vec![]).text();
    assert!(page.contains("every API token revoked"), "{page}");
    assert_eq!(status_with(&s, &third), 401);
    assert_eq!(s.raw("GET", "/machines", &[("Authorization", &bearer)], vec![]).status, 401);
    assert_eq!(status_with(&s, &first), 200);
}

fn login_try(s: &WebServer, password: &str, extra: &[(&str, &str)]) -> Resp {
    let mut headers = vec![FORM];
    headers.extend_from_slice(extra);
    s.raw("POST", "/ui/login", &headers, format!("password={password}").into_bytes())
}

fn retry_after(r: &Resp) -> u64 {
    r.header("retry-after").expect("Retry-After").parse().expect("seconds")
}

/// Five wrong passwords from one address cost the admin a short wait, not minutes; a browser
/// sees the sign-in page saying how long; the right password is accepted once it is over.
#[test]
fn the_login_backoff_is_short_shown_as_a_page_and_then_the_right_password_gets_in() {
    let dir = scratch();
    let s = WebServer::start_in(&dir.path().join("state"), &[]);
    for _ in 0..5 {
        assert_eq!(login_try(&s, "wrong", &[]).status, 401);
    }
    let r = login_try(&s, &s.password(), &[("Accept", "text/html,application/xhtml+xml")]);
    assert_eq!(r.status, 429);
    assert!(r.header("content-type").unwrap().starts_with("text/html"), "{:?}", r.header("content-type"));
    assert!(r.header("set-cookie").is_none());
    let wait = retry_after(&r);
    assert!(wait <= 10, "a shared address must not lock the admin out for long: {wait} s");
    let page = r.text();
    assert!(page.contains("Sign in") && page.contains(&format!("{wait} second")), "{page}");
    std::thread::sleep(std::time::Duration::from_secs(wait + 1));
    assert_eq!(login_try(&s, &s.password(), &[]).status, 303, "the right password after the wait");
}

/// Concurrent wrong passwords cannot get more tries than the limit by arriving together (each
/// try is counted when it starts, not after the slow password check).
#[test]
fn concurrent_wrong_passwords_get_no_more_than_five_tries() {
    let dir = scratch();
    let mut s = WebServer::start_in(&dir.path().join("state"), &[("BTY_TUNING_MAX_CONNECTIONS", "16")]);
    let cookie = s.login();
    // A password set on the account page is checked with PBKDF2, which takes a while.
    assert_eq!(change_password(&s, &cookie, &s.password(), "a-slow-password-1", false).status, 303);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let tries: Vec<_> = (0..12).map(|_| scope.spawn(|| login_try(&s, "wrong", &[]).status)).collect();
        tries.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let tried = statuses.iter().filter(|&&c| c == 401).count();
    assert!(tried <= 5, "{tried} wrong passwords were checked: {statuses:?}");
    assert_eq!(statuses.iter().filter(|&&c| c == 429).count(), 12 - tried, "{statuses:?}");
}

/// Failures spread over many addresses (a trusted proxy names each) back the account off too,
/// so rotating addresses does not give unlimited tries.
#[test]
fn failures_from_many_addresses_back_the_account_off() {
    let dir = scratch();
    let s = WebServer::start_in(&dir.path().join("state"), &[("BTY_SERVER_TRUSTED_PROXY", "127.0.0.1")]);
    let statuses: Vec<u16> = (0..40)
        .map(|i| login_try(&s, "wrong", &[("X-Forwarded-For", &format!("192.0.2.{i}"))]).status)
        .collect();
    assert!(statuses.iter().take(20).all(|&c| c == 401), "{statuses:?}");
    assert!(statuses.contains(&429), "the account never backed off: {statuses:?}");
}

/// (method, path, a header, body)
type Change<'a> = (&'a str, &'a str, (&'a str, &'a str), Vec<u8>);

/// Every state change with a session cookie needs the CSRF token, whatever the body: JSON, raw
/// bytes, no body at all. Bearer tokens need none; the query string is never read for it.
#[test]
fn every_cookie_state_change_needs_the_csrf_token_from_a_header_or_the_form() {
    let dir = scratch();
    let mut s = WebServer::start_in(&dir.path().join("state"), &[]);
    let cookie = s.login();
    let token = csrf(&s, &cookie);
    let json_type = ("Content-Type", "application/json");
    let machine = br#"{"boot_mode":"ipxe-exit"}"#.to_vec();
    let cases: [Change; 5] = [
        ("PUT", "/machines/52:54:00:cc:00:01", json_type, machine.clone()),
        ("POST", "/api/tokens", json_type, br#"{"name":"x"}"#.to_vec()),
        ("PUT", "/boot/ipxe.efi", ("Content-Type", "application/octet-stream"), b"efi".to_vec()),
        ("POST", "/events/1/ack", ("Accept", "*/*"), vec![]),
        ("DELETE", "/machines/52:54:00:cc:00:01", ("Accept", "*/*"), vec![]),
    ];
    for (method, path, header, body) in &cases {
        let r = s.raw(method, path, &[*header, ("Cookie", &cookie)], body.clone());
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text());
        assert!(r.text().contains("X-CSRF-Token"), "the refusal says what to send: {}", r.text());
        let in_query = format!("{path}?csrf_token={token}");
        let r = s.raw(method, &in_query, &[*header, ("Cookie", &cookie)], body.clone());
        assert_eq!(r.status, 403, "{method} {path}: a token in the query string is not read");
    }
    assert_eq!(s.get("/machines").json(), json!([]), "refused requests changed nothing");
    // With the header each one works.
    let want = [200, 201, 200, 200, 204];
    for ((method, path, header, body), want) in cases.iter().zip(want) {
        let r = s.raw(method, path, &[*header, ("Cookie", &cookie), ("X-CSRF-Token", &token)], body.clone());
        assert_eq!(r.status, want, "{method} {path}: {}", r.text());
    }
    // Bearer: no token needed.
    let bearer = s.post_json("/api/tokens", &json!({ "name": "script" })).json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let auth = format!("Bearer {bearer}");
    let r = s.raw("PUT", "/machines/52:54:00:cc:00:02", &[json_type, ("Authorization", &auth)], machine);
    assert_eq!(r.status, 200, "{}", r.text());
}
