//! The browser UI over HTTP against the real server: every page renders for a signed-in
//! operator and redirects otherwise, every form works without JavaScript, refuses a post
//! without the CSRF token (403, as a page), shows validation messages next to the fields, and
//! escapes hostile text; static assets carry an ETag and stay within their size budget.

mod common;
use common::webserver::{Resp, WebServer};
use common::*;
use serde_json::json;

const HOSTILE: &str = "<script>alert(1)</script>";
const HOSTILE_ESCAPED: &str = "&lt;script&gt;alert(1)&lt;&#x2f;script&gt;";

/// Text as the templates escape it (minijinja's HTML escaping).
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2f;")
}

/// The session's CSRF token, as a page embeds it.
fn csrf(s: &WebServer) -> String {
    let page = s.get("/ui/account").text();
    let at = page.find("name=\"csrf_token\" value=\"").expect("a csrf field") + 25;
    page[at..at + 64].to_string()
}

/// Posts a url-encoded form with the session cookie; `with_csrf` adds the token.
fn post(s: &WebServer, path: &str, pairs: &[(&str, &str)], with_csrf: bool) -> Resp {
    let mut all: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    if with_csrf {
        all.push(("csrf_token".into(), csrf(s)));
    }
    let body: Vec<String> = all.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect();
    s.send_without_csrf(
        "POST",
        path,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.join("&").into_bytes(),
    )
}

fn server() -> (tempfile::TempDir, WebServer) {
    let dir = scratch();
    let s = WebServer::start_logged_in(&dir.path().join("state"));
    (dir, s)
}

const PAGES: [(&str, &str); 9] = [
    ("/ui/dashboard", "Readiness"),
    ("/ui/machines", "Add by MAC"),
    ("/ui/images", "Add from a URL"),
    ("/ui/netboot", "DHCP cheat sheet"),
    ("/ui/events", "Acknowledge selected"),
    ("/ui/settings", "max_upload_bytes"),
    ("/ui/backups", "Backups on disk"),
    ("/ui/account", "API tokens"),
    ("/ui/machines/52:54:00:aa:bb:01", "Assignment"),
];

#[test]
fn every_page_renders_for_an_operator_and_redirects_to_login_otherwise() {
    let (_d, s) = server();
    assert_eq!(s.put_json("/machines/52:54:00:aa:bb:01", &json!({"boot_mode": "ipxe-exit"})).status, 200);
    for (path, marker) in PAGES {
        let r = s.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert!(r.header("content-type").unwrap_or("").starts_with("text/html"), "{path}");
        let csp = r.header("content-security-policy").unwrap_or("");
        assert!(
            csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        let html = r.text();
        assert!(html.contains(marker), "{path} lacks {marker:?}");
        assert!(html.contains("class=\"intro\""), "{path} has no intro line");
        assert!(html.contains("times in UTC"), "{path}");
        let anon = s.raw("GET", path, &[], Vec::new());
        let back = format!("/ui/login?next={}", enc(path).replace("%3A", ":"));
        assert_eq!((anon.status, anon.header("location")), (303, Some(back.as_str())), "{path}");
    }
    let r = s.get("/ui");
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/dashboard")));
    let r = s.get("/ui/no-such-page");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("There is no such page.") && r.text().contains("<!doctype html>"));
}

#[test]
fn login_page_names_the_generated_password_file_and_rejects_a_wrong_password() {
    let (_d, s) = server();
    let r = s.raw("GET", "/ui/login", &[], Vec::new());
    assert_eq!(r.status, 200);
    let file = s.state.join("admin-password");
    assert!(r.text().contains(&esc(&file.display().to_string())), "{}", r.text());
    assert!(r.text().contains("/static/bty.css"));
    let r = s.raw(
        "POST",
        "/ui/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"password=wrong".to_vec(),
    );
    assert_eq!(r.status, 401);
    assert!(r.text().contains("Wrong password."));
}

#[test]
fn form_posts_without_the_csrf_token_are_refused_with_a_readable_403() {
    let (_d, s) = server();
    let cases: [(&str, &[(&str, &str)]); 5] = [
        ("/ui/machines", &[("mac", "52:54:00:00:00:09")]),
        ("/ui/account/tokens", &[("name", "x")]),
        ("/ui/account/password", &[("current", "a"), ("new", "bbbbbbbbbbbb"), ("confirm", "bbbbbbbbbbbb")]),
        ("/ui/events/ack", &[("one", "1")]),
        ("/ui/images/fetch", &[("src", "https://example.invalid/a.img")]),
    ];
    for (path, pairs) in cases {
        let r = post(&s, path, pairs, false);
        assert_eq!(r.status, 403, "{path}");
        assert!(r.text().contains("CSRF token missing or invalid"), "{path}: {}", r.text());
        assert!(r.header("content-type").unwrap_or("").starts_with("text/html"), "{path}");
    }
    let r = post(&s, "/ui/machines", &[("mac", "52:54:00:00:00:09"), ("csrf_token", &"0".repeat(64))], false);
    assert_eq!(r.status, 403, "a wrong token is refused too");
    assert_eq!(s.get("/machines/52:54:00:00:00:09").status, 404, "nothing was created");
}

#[test]
fn adding_a_machine_by_mac_validates_and_opens_it() {
    let (_d, s) = server();
    let r = post(&s, "/ui/machines", &[("mac", "not-a-mac")], true);
    assert_eq!(r.status, 422);
    assert!(r.text().contains("is not a MAC address"), "{}", r.text());
    let r = post(&s, "/ui/machines", &[("mac", "52-54-00-AB-CD-EF")], true);
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/machines/52:54:00:ab:cd:ef?done=added")));
    assert_eq!(s.get("/machines/52:54:00:ab:cd:ef").json()["boot_mode"], "ipxe-exit");
    let page = s.get("/ui/machines/52:54:00:ab:cd:ef?done=added").text();
    assert!(page.contains("Machine added."));
}

#[test]
fn the_assignment_form_shows_messages_beside_fields_and_escapes_what_was_typed() {
    let (_d, s) = server();
    let mac = "52:54:00:aa:bb:02";
    assert_eq!(s.put_json(&format!("/machines/{mac}"), &json!({"boot_mode": "ipxe-exit"})).status, 200);
    let r = post(
        &s,
        &format!("/ui/machines/{mac}"),
        &[
            ("boot_mode", "bty-flash-once"),
            ("bty_image_ref", ""),
            ("labels", HOSTILE),
            ("sanboot_drive", "0x8g"),
        ],
        true,
    );
    assert_eq!(r.status, 422);
    let html = r.text();
    assert!(html.contains("A flashing mode needs an image."), "{html}");
    assert!(html.contains("A flashing mode needs the target disk"));
    assert!(html.contains("Write the BIOS drive as 0x80"));
    assert!(html.contains("Each label: 1–64 characters"));
    assert!(html.contains(HOSTILE_ESCAPED), "the typed label is shown escaped");
    assert!(!html.contains(HOSTILE), "the typed label must not be raw HTML");
    assert_eq!(s.get(&format!("/machines/{mac}")).json()["boot_mode"], "ipxe-exit", "nothing saved");

    let r = post(
        &s,
        &format!("/ui/machines/{mac}"),
        &[
            ("boot_mode", "bty-inventory"),
            ("labels", "rack-9, lab"),
            ("sanboot_drive", "0x81"),
            ("target_disk_serial", ""),
        ],
        true,
    );
    assert_eq!((r.status, r.header("location")), (303, Some(&*format!("/ui/machines/{mac}?done=saved"))));
    let m = s.get(&format!("/machines/{mac}")).json();
    assert_eq!((m["boot_mode"].as_str(), m["sanboot_drive"].as_str()), (Some("bty-inventory"), Some("0x81")));
    assert_eq!(m["labels"], json!(["lab", "rack-9"]));
    let list = s.get("/ui/machines?q=rack-9").text();
    assert!(list.contains(mac) && list.contains("pending inventory"), "{list}");
}

#[test]
fn hostile_names_from_other_sources_are_escaped_on_every_page() {
    let (_d, s) = server();
    let r = s.post_json(
        "/catalog/entries",
        &json!({"name": HOSTILE, "src": "https://images.example.invalid/x.img.zst"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(s.post_json("/api/tokens", &json!({"name": HOSTILE})).status, 201);
    let mac = "52:54:00:aa:bb:03";
    assert_eq!(s.get(&format!("/pxe/{mac}")).status, 200);
    let inventory = json!({"disks": [{"path": "/dev/sda", "serial": HOSTILE, "model": HOSTILE}]});
    assert_eq!(s.post_json(&format!("/pxe/{mac}/inventory"), &inventory).status, 204);
    for (path, must) in [
        ("/ui/images", true),
        ("/ui/account", true),
        (&*format!("/ui/machines/{mac}"), true),
        ("/ui/events", false),
        ("/ui/dashboard", false),
        (&*format!("/ui/events?q={}", enc(HOSTILE)), false),
    ] {
        let html = s.get(path).text();
        assert!(!html.contains(HOSTILE), "{path} shows hostile text unescaped");
        if must {
            assert!(html.contains(HOSTILE_ESCAPED), "{path} does not show the name at all");
        }
    }
}

#[test]
fn events_pivot_and_acknowledge_one_or_many() {
    let (_d, s) = server();
    for i in 1..=3 {
        let mac = format!("52:54:00:00:01:0{i}");
        assert_eq!(s.get(&format!("/pxe/{mac}")).status, 200);
        let r =
            s.post_json(&format!("/pxe/{mac}/status"), &json!({"status": "failed", "reason": "disk gone"}));
        assert_eq!(r.status, 204);
    }
    let failed = s.get("/events?failed=1").json()["events"].as_array().unwrap().clone();
    assert_eq!(failed.len(), 3);
    let html = s.get("/ui/events?failed=1&unacknowledged=1").text();
    assert_eq!(html.matches("<tr class=\"bad\"").count(), 3, "failures are highlighted");
    let pivot = s.get("/ui/events?subject_id=52:54:00:00:01:02").text();
    assert!(
        pivot.contains("subject_id = 52:54:00:00:01:02") && !pivot.contains("52:54:00:00:01:03 flash failed")
    );

    let one = failed[0]["id"].to_string();
    let r = post(&s, "/ui/events/ack", &[("one", &one), ("back", "/ui/events?failed=1&")], true);
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/events?failed=1&done=acked")));
    let (a, b) = (failed[1]["id"].to_string(), failed[2]["id"].to_string());
    let r = post(&s, "/ui/events/ack", &[("id", &a), ("id", &b), ("back", "https://evil.example/")], true);
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/ui/events?done=acked")),
        "foreign back URLs are ignored"
    );
    assert_eq!(s.get("/events?failed=1&unacknowledged=1").json()["events"], json!([]));
    let r = post(&s, "/ui/events/ack", &[], true);
    assert_eq!(r.status, 400);
}

#[test]
fn changing_the_password_replaces_the_generated_one() {
    let (d, mut s) = server();
    let old = s.password();
    let file = d.path().join("state/admin-password");
    assert!(file.exists());
    assert!(s.get("/ui/account").text().contains("not set here"));
    let r = post(
        &s,
        "/ui/account/password",
        &[("current", "nope"), ("new", "short"), ("confirm", "short")],
        true,
    );
    assert_eq!(r.status, 422);
    assert!(
        r.text().contains("This is not the current password.")
            && r.text().contains("Use at least 10 characters.")
    );
    let r = post(
        &s,
        "/ui/account/password",
        &[("current", &old), ("new", "correct horse"), ("confirm", "correct hors")],
        true,
    );
    assert_eq!(r.status, 422);
    assert!(r.text().contains("The two new passwords differ."));
    let r = post(
        &s,
        "/ui/account/password",
        &[("current", &old), ("new", "correct horse"), ("confirm", "correct horse")],
        true,
    );
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/account?done=password")));
    let form = |pw: &str| format!("password={}", enc(pw)).into_bytes();
    let ct = [("Content-Type", "application/x-www-form-urlencoded")];
    assert_eq!(
        s.raw("POST", "/ui/login", &ct, form(&old)).status,
        401,
        "the generated password no longer works"
    );
    assert_eq!(s.raw("POST", "/ui/login", &ct, form("correct horse")).status, 303);
    let login = s.raw("GET", "/ui/login", &[], Vec::new()).text();
    assert!(!login.contains("admin-password"), "no first-start hint once a password is set");
    let account = s.get("/ui/account").text();
    assert!(account.contains("set on this page"));
    assert!(account.contains("id=\"password-state\">set</span>"), "{account}");
    assert!(account.contains("was removed when the password was changed here"), "{account}");
    assert!(!file.exists(), "the stale generated password file is removed");
    // A restart does not generate a new one.
    s.terminate();
    let mut s = WebServer::start_in(&d.path().join("state"), &[]);
    assert!(!file.exists(), "a restart wrote {}", file.display());
    let form = |pw: &str| format!("password={}", enc(pw)).into_bytes();
    assert_eq!(s.raw("POST", "/ui/login", &ct, form("correct horse")).status, 303);
    s.cookie = None;
}

#[test]
fn api_tokens_are_shown_once_and_can_be_revoked() {
    let (_d, s) = server();
    let r = post(&s, "/ui/account/tokens", &[("name", "ci")], true);
    assert_eq!(r.status, 201);
    let html = r.text();
    let at = html.find("bty_").expect("token value shown");
    let token = html[at..at + 52].to_string();
    let auth = format!("Bearer {token}");
    assert_eq!(s.raw("GET", "/machines", &[("Authorization", &auth)], Vec::new()).status, 200);
    assert!(!s.get("/ui/account").text().contains(&token), "shown only once");
    let id = s.get("/api/tokens").json()["tokens"][0]["id"].to_string();
    let r = post(&s, &format!("/ui/account/tokens/{id}/revoke"), &[], true);
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/account?done=revoked")));
    assert_eq!(s.raw("GET", "/machines", &[("Authorization", &auth)], Vec::new()).status, 401);
    let r = post(&s, "/ui/account/tokens", &[("name", "")], true);
    assert_eq!(r.status, 422);
    assert!(r.text().contains("name must be 1-64 printable characters"));
}

#[test]
fn deleting_asks_first_then_removes() {
    let (_d, s) = server();
    let mac = "52:54:00:aa:bb:04";
    assert_eq!(s.put_json(&format!("/machines/{mac}"), &json!({"boot_mode": "ipxe-exit"})).status, 200);
    let r = post(&s, &format!("/ui/machines/{mac}/delete"), &[], true);
    assert_eq!(r.status, 200);
    assert!(r.text().contains("Yes, delete") && r.text().contains("name=\"confirm\" value=\"yes\""));
    assert_eq!(s.get(&format!("/machines/{mac}")).status, 200, "not deleted before confirming");
    let r = post(&s, &format!("/ui/machines/{mac}/delete"), &[("confirm", "yes")], true);
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/machines?done=deleted")));
    assert_eq!(s.get(&format!("/machines/{mac}")).status, 404);

    let r = s.post_json(
        "/catalog/entries",
        &json!({"name": "remote.img.zst", "src": "https://h.invalid/remote.img.zst"}),
    );
    let image_ref = r.json()["ref"].as_str().unwrap().to_string();
    let r = post(&s, &format!("/ui/images/{image_ref}/delete"), &[], true);
    assert!(r.text().contains(&esc("Delete image \"remote.img.zst\"")), "{}", r.text());
    let r = post(&s, &format!("/ui/images/{image_ref}/delete"), &[("confirm", "yes")], true);
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/images?done=deleted")));
    assert_eq!(s.get("/images").json(), json!([]));

    // A stored image with two machines bound: both the page and the script's dialog say so,
    // and how much space deleting frees.
    let r = s.send("PUT", "/images/bound.img", &[], vec![7u8; 3 << 20]);
    let image_ref = r.json()["ref"].as_str().unwrap().to_string();
    for m in ["52:54:00:aa:bb:05", "52:54:00:aa:bb:06"] {
        let body = json!({"boot_mode": "ipxe-exit", "bty_image_ref": image_ref});
        assert_eq!(s.put_json(&format!("/machines/{m}"), &body).status, 200);
    }
    let said = "2 machines are bound to it: they boot their local disks until you assign another image. Frees 3.0 MiB in the store.";
    let r = post(&s, &format!("/ui/images/{image_ref}/delete"), &[], true);
    assert!(r.text().contains(&esc(said)), "{}", r.text());
    assert!(s.get("/ui/images").text().contains(&esc(said)), "the dialog's text");
}

#[test]
fn fetch_by_url_reports_bad_input_beside_the_field_and_queues_good_input() {
    let (_d, s) = server();
    let r = post(&s, "/ui/images/fetch", &[("src", "/etc/passwd")], true);
    assert_eq!(r.status, 422);
    assert!(r.text().contains(&esc("src must be an http://, https:// or oras:// URL")), "{}", r.text());
    assert!(r.text().contains("value=\"&#x2f;etc&#x2f;passwd\""), "the input is kept");
    // Nothing listens on port 9 of loopback: the job is queued, then fails, and says so.
    let r = post(&s, "/ui/images/fetch", &[("src", "http://127.0.0.1:9/x.img"), ("name", "x.img")], true);
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/images?done=fetch")));
    let html = s.get("/ui/images").text();
    assert!(html.contains("x.img") && html.contains("http:&#x2f;&#x2f;127.0.0.1:9&#x2f;x.img"), "{html}");
    // A remote entry is added at once and nothing is downloaded.
    let src = "oras://registry.example.invalid/os/debian:13";
    let r = post(&s, "/ui/images/fetch", &[("src", src), ("remote", "1")], true);
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/images?done=remote")));
    let entries = s.get("/images").json();
    let e = entries.as_array().unwrap().iter().find(|e| e["url"] == src).expect("remote entry listed");
    assert_eq!((e["name"].as_str(), e["stored"].as_bool()), (Some("debian:13"), Some(false)));
}

#[test]
fn the_machine_list_searches_filters_sorts_and_pages_on_the_server() {
    let (_d, s) = server();
    for i in 0..30u8 {
        let body = json!({"labels": [if i % 2 == 0 { "even" } else { "odd" }], "boot_mode": "ipxe-exit"});
        assert_eq!(s.put_json(&format!("/machines/52:54:00:00:02:{i:02x}"), &body).status, 200);
    }
    assert_eq!(s.get("/pxe/52:54:00:00:03:00").status, 200);
    let page1 = s.get("/ui/machines").text();
    assert!(page1.contains("31 machines") && page1.contains("page 1 of 2"));
    assert_eq!(page1.matches("<tr data-mac=").count(), 25);
    let page2 = s.get("/ui/machines?page=2").text();
    assert_eq!(page2.matches("<tr data-mac=").count(), 6);
    let odd = s.get("/ui/machines?q=odd&per_page=50").text();
    assert_eq!(odd.matches("<tr data-mac=").count(), 15);
    let new = s.get("/ui/machines?filter=unassigned").text();
    assert_eq!(new.matches("<tr data-mac=").count(), 1);
    assert!(new.contains("52:54:00:00:03:00"));
    let desc = s.get("/ui/machines?sort=mac&dir=desc").text();
    let first = desc.find("<tr data-mac=\"").map(|i| &desc[i + 14..i + 31]);
    assert_eq!(first, Some("52:54:00:00:03:00"));
}

#[test]
fn the_new_badge_clears_once_an_operator_parks_a_discovered_machine() {
    let (_d, s) = server();
    let mac = "52:54:00:00:04:01";
    assert_eq!(s.get(&format!("/pxe/{mac}")).status, 200);
    let badge = |s: &WebServer| {
        let page = s.get("/ui/machines").text();
        let row = page.split("<tr data-mac=").find(|r| r.contains(mac)).unwrap_or_default().to_string();
        row.contains("badge new")
    };
    assert!(badge(&s), "a machine PXE discovery found is new");
    // Parked from the machine page (boot its local disk, no image): seen, no longer new, and
    // no longer under "unassigned".
    let r = post(&s, &format!("/ui/machines/{mac}"), &[("boot_mode", "ipxe-exit"), ("labels", "")], true);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(s.get(&format!("/machines/{mac}")).json()["boot_mode"], "ipxe-exit");
    assert!(!badge(&s), "a parked machine is not new");
    assert_eq!(s.get("/ui/machines?filter=unassigned").text().matches("<tr data-mac=").count(), 0);
}

#[test]
fn the_netboot_page_fills_the_dhcp_snippets_with_this_hosts_address() {
    let (_d, s) = server();
    let html = s.get("/ui/netboot").text();
    let url = format!("http:&#x2f;&#x2f;{}/pxe-bootstrap.ipxe", s.addr);
    assert!(html.contains(&format!("dhcp-boot=tag:ipxe,{url}")), "{html}");
    assert!(html.contains("filename \"http:&#x2f;&#x2f;"), "ISC dhcpd snippet present");
    assert!(html.contains("bty-netboot-x86_64.vmlinuz") && html.contains("missing"));
    std::fs::write(s.state.join("boot/bty-netboot-x86_64.vmlinuz"), b"kernel").unwrap();
    let html = s.get("/ui/netboot").text();
    // sha256("kernel") starts with this.
    assert!(html.contains("present") && html.contains("6923dd1bc046"), "{html}");
}

/// The files of the boot stick's FAT partition (it starts at 1 MiB).
fn stick_file(img: &[u8], path: &str) -> Vec<u8> {
    use std::io::Read;
    let part = std::io::Cursor::new(img[1 << 20..].to_vec());
    let fs = fatfs::FileSystem::new(part, fatfs::FsOptions::new()).expect("the stick holds a FAT");
    let mut out = Vec::new();
    fs.root_dir().open_file(path).expect(path).read_to_end(&mut out).unwrap();
    out
}

#[test]
fn the_netboot_page_offers_a_boot_stick_that_chains_this_server() {
    let (_d, s) = server();
    // Without the loader: the page says what is missing, the link answers a readable 404.
    let html = s.get("/ui/netboot").text();
    assert!(html.contains("The boot stick needs") && !html.contains("boot-stick-download"), "{html}");
    let r = s.get("/ui/netboot/bty-boot-stick.img");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("ipxe-stick.efi is not in the boot directory"), "{}", r.text());

    let loader = b"MZ stand-in for iPXE".repeat(1000);
    std::fs::write(s.state.join("boot/ipxe-stick.efi"), &loader).unwrap();
    let html = s.get("/ui/netboot?host=192.0.2.7").text();
    assert!(
        html.contains("id=\"boot-stick-download\" href=\"/ui/netboot/bty-boot-stick.img?host=192.0.2.7\""),
        "{html}"
    );
    let r = s.get("/ui/netboot/bty-boot-stick.img?host=192.0.2.7");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("content-disposition").is_some_and(|v| v.contains("bty-boot-stick.img")));
    assert_eq!(&r.body[510..512], &[0x55, 0xAA]);
    assert_eq!(stick_file(&r.body, "EFI/BOOT/BOOTX64.EFI"), loader);
    let port = s.addr.rsplit_once(':').unwrap().1;
    let script = String::from_utf8(stick_file(&r.body, "autoexec.ipxe")).unwrap();
    assert!(
        script.contains(&format!("dhcp && chain http://192.0.2.7:{port}/pxe-bootstrap.ipxe")),
        "{script}"
    );

    // The Host header is the client's: one that is not a plain host[:port] gets no stick.
    let cookie = s.cookie.clone().unwrap();
    let r =
        s.raw("GET", "/ui/netboot/bty-boot-stick.img", &[("Host", "h:1:2"), ("Cookie", &cookie)], Vec::new());
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("not a plain host[:port]"), "{}", r.text());
    // A host picked with ?host= must be an address (or the page's own name), never free text.
    let r = s.get("/ui/netboot/bty-boot-stick.img?host=evil.example");
    let script = String::from_utf8(stick_file(&r.body, "autoexec.ipxe")).unwrap();
    assert!(!script.contains("evil") && script.contains(&format!("chain http://{}/", s.addr)), "{script}");
}

#[test]
fn static_assets_have_etags_and_fit_the_budget() {
    let (_d, s) = server();
    let mut total = 0;
    for name in ["bty.css", "bty.js"] {
        let r = s.raw("GET", &format!("/static/{name}"), &[], Vec::new());
        assert_eq!(r.status, 200);
        let etag = r.header("etag").expect("etag").to_string();
        assert!(r.header("cache-control").unwrap_or("").contains("max-age"));
        total += r.body.len();
        let again = s.raw("GET", &format!("/static/{name}"), &[("If-None-Match", &etag)], Vec::new());
        assert_eq!((again.status, again.body.len()), (304, 0));
    }
    assert!(total < 60 << 10, "CSS + JS are {total} bytes");
    assert_eq!(s.raw("GET", "/static/nope.js", &[], Vec::new()).status, 404);
}

#[test]
fn the_dashboard_readiness_tftp_item_follows_a_real_tftp_server() {
    let dir = scratch();
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let mut s = WebServer::start_in(&dir.path().join("state"), &[("BTY_TFTP_LISTEN", &listen)]);
    s.login();
    let html = s.get("/ui/dashboard").text();
    assert!(html.contains(&format!("no answer from {listen}")), "{html}");

    let root = dir.path().join("tftp");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("ipxe.efi"), vec![7u8; 3000]).unwrap();
    /// Kills the TFTP server however the test ends.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _tftp = Killed(
        bty()
            .args(["tftp", "--root"])
            .arg(&root)
            .args(["--listen", &listen])
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting bty tftp"),
    );
    // The dashboard reuses a probe result for 10 s; poll until the new server is seen.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut html = String::new();
    while std::time::Instant::now() < deadline {
        html = s.get("/ui/dashboard").text();
        if html.contains(&format!("{listen} serves ipxe.efi")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert!(html.contains(&format!("{listen} serves ipxe.efi")), "{html}");
}

#[test]
fn backups_are_made_listed_downloaded_and_deleted_from_the_page() {
    let (_d, s) = server();
    let r = post(&s, "/ui/backups", &[], false);
    assert_eq!(r.status, 403, "backing up needs the CSRF token");
    let r = post(&s, "/ui/backups", &[], true);
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/backups?done=backup")));
    let html = s.get("/ui/backups?done=backup").text();
    assert!(html.contains("Backup created."), "{html}");
    let at = html.find("state-").expect("a backup listed");
    let name = html[at..].split(['<', '/', '"']).next().unwrap().to_string();
    assert!(name.ends_with(".db"), "{name}");
    let r = s.get(&format!("/ui/backups/{name}/download"));
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with(b"SQLite format 3\0"));
    let r = post(&s, &format!("/ui/backups/{name}/delete"), &[], true);
    assert!(r.text().contains("Yes, delete"));
    let r = post(&s, &format!("/ui/backups/{name}/delete"), &[("confirm", "yes")], true);
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/backups?done=deleted")));
    assert!(s.get("/ui/backups").text().contains("No backups yet."));
    assert_eq!(s.get("/ui/backups/..%2Fstate.db/download").status, 400);
}

/// A server with netboot artifacts, a stored image and `mac` assigned `bty-flash-once` to it;
/// returns the image's ref.
fn flashing_machine(s: &WebServer, mac: &str) -> String {
    for name in ["bty-netboot-x86_64.vmlinuz", "bty-netboot-x86_64.initrd"] {
        assert_eq!(s.send("PUT", &format!("/boot/{name}"), &[], b"x".to_vec()).status, 200);
    }
    let r = s.send("PUT", "/images/disk.img", &[], vec![7u8; 4096]);
    let image_ref = r.json()["ref"].as_str().unwrap().to_string();
    let body = json!({"boot_mode": "bty-flash-once", "bty_image_ref": image_ref, "target_disk_serial": "S1"});
    assert_eq!(s.put_json(&format!("/machines/{mac}"), &body).status, 200);
    image_ref
}

/// Whether `/pxe/{mac}` offers the netboot environment (a flash), not the disk.
fn offers_flash(s: &WebServer, mac: &str) -> bool {
    s.get(&format!("/pxe/{mac}")).text().lines().any(|l| l.starts_with("kernel "))
}

/// The flasher boots and reports `body` as its status.
fn flash_cycle(s: &WebServer, mac: &str, body: serde_json::Value) {
    assert!(offers_flash(s, mac));
    assert_eq!(s.get(&format!("/boot/bty-netboot-x86_64.vmlinuz?mac={mac}")).status, 200);
    let p = json!({"bytes_written": 3u64 << 20, "total_bytes": 8u64 << 20, "phase": "write"});
    assert_eq!(s.post_json(&format!("/pxe/{mac}/progress"), &p).status, 204);
    assert_eq!(s.post_json(&format!("/pxe/{mac}/status"), &body).status, 204);
}

fn count_events(s: &WebServer, kind: &str) -> usize {
    s.get(&format!("/events?kind={kind}")).json()["events"].as_array().map_or(0, Vec::len)
}

#[test]
fn flash_again_and_an_unchanged_save_work_without_javascript() {
    let (_d, s) = server();
    let mac = "52:54:00:aa:bb:10";
    let image_ref = flashing_machine(&s, mac);
    flash_cycle(&s, mac, json!({"status": "done"}));
    assert!(!offers_flash(&s, mac), "a completed flash-once boots the disk");

    // Saving the form as it is changes nothing and says so; no audit event, no new cycle.
    let upserts = count_events(&s, "machine.upserted");
    let form = [
        ("boot_mode", "bty-flash-once"),
        ("bty_image_ref", image_ref.as_str()),
        ("target_disk_serial", "S1"),
    ];
    let r = post(&s, &format!("/ui/machines/{mac}"), &form, true);
    assert_eq!((r.status, r.header("location")), (303, Some(&*format!("/ui/machines/{mac}?done=unchanged"))));
    assert!(s.get(r.header("location").unwrap()).text().contains("Nothing changed"));
    assert_eq!(count_events(&s, "machine.upserted"), upserts);
    assert!(!offers_flash(&s, mac));

    // Flash again from the machine page: a new cycle, audited, and the page says what is next.
    let r = post(&s, &format!("/ui/machines/{mac}/reflash"), &[], true);
    assert_eq!((r.status, r.header("location")), (303, Some(&*format!("/ui/machines/{mac}?done=reflash"))));
    let page = s.get(r.header("location").unwrap()).text();
    assert!(page.contains("Flashes on its next PXE boot — power-cycle it."), "{page}");
    assert_eq!(count_events(&s, "machine.reflash"), 1);
    assert!(offers_flash(&s, mac), "the next PXE boot flashes again");
    flash_cycle(&s, mac, json!({"status": "done"}));

    // Bulk from the list: the flashing machine is armed, a disk-booting one is skipped with why.
    let other = "52:54:00:aa:bb:11";
    assert_eq!(s.put_json(&format!("/machines/{other}"), &json!({"boot_mode": "ipxe-exit"})).status, 200);
    let r = post(&s, "/ui/machines/reflash", &[("mac", mac), ("mac", other)], true);
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(text.contains("1 machine armed") && text.contains("Skipped"), "{text}");
    assert!(text.contains("ipxe-exit mode; set bty-flash-once"), "{text}");
    assert_eq!(count_events(&s, "machine.reflash"), 2);
    assert!(offers_flash(&s, mac));
    let r = post(&s, "/ui/machines/reflash", &[], true);
    assert_eq!(r.status, 422, "nothing selected is said, not ignored");
    // The JSON API has the same action for scripts.
    let token = csrf(&s);
    let r = s.send("POST", &format!("/machines/{other}/reflash"), &[("X-CSRF-Token", &token)], vec![]);
    assert_eq!(r.status, 409, "{}", r.text());
    let r = s.send("POST", &format!("/machines/{mac}/reflash"), &[("X-CSRF-Token", &token)], vec![]);
    assert_eq!((r.status, r.json()["boot_mode"].as_str()), (200, Some("bty-flash-once")));
}

#[test]
fn a_failed_flash_shows_its_reason_and_offers_a_retry_or_the_local_disk() {
    let (_d, s) = server();
    let mac = "52:54:00:aa:bb:20";
    flashing_machine(&s, mac);
    flash_cycle(&s, mac, json!({"status": "failed", "reason": "no disk with serial S1 <on> this machine"}));
    let page = s.get(&format!("/ui/machines/{mac}")).text();
    assert!(page.contains("no disk with serial S1 &lt;on&gt; this machine"), "{page}");
    assert!(page.contains("<dt>Phase</dt><dd>write</dd>"), "{page}");
    assert!(page.contains("3.0 MiB"), "bytes written at the failure: {page}");
    assert!(page.contains("The next PXE boot retries the flash"), "{page}");
    assert!(page.contains("Boot local disk instead") && page.contains("Flash again"), "{page}");
    assert!(page.contains("this cycle&#x27;s events") || page.contains("this cycle's events"), "{page}");
    let list = s.get("/ui/machines").text();
    assert!(list.contains("no disk with serial S1 &lt;on&gt; this machine"), "{list}");
    assert!(list.contains("The next PXE boot retries the flash"), "{list}");
    let m = s.get(&format!("/machines/{mac}")).json();
    assert_eq!(
        (m["last_flash_reason"].as_str(), m["last_flash_phase"].as_str()),
        (Some("no disk with serial S1 <on> this machine"), Some("write"))
    );

    // Boot local disk instead: the mode becomes ipxe-exit, image and disk stay bound.
    let r = post(&s, &format!("/ui/machines/{mac}/local"), &[], true);
    assert_eq!(r.status, 303);
    let m = s.get(&format!("/machines/{mac}")).json();
    assert_eq!((m["boot_mode"].as_str(), m["target_disk_serial"].as_str()), (Some("ipxe-exit"), Some("S1")));
    assert!(!offers_flash(&s, mac));
}

#[test]
fn settings_changed_in_the_browser_override_the_file_take_effect_and_are_audited_without_javascript() {
    let dir = scratch();
    let mut s = WebServer::start_in(&dir.path().join("state"), &[("BTY_BACKUP_KEEP", "5")]);
    s.login();
    let page = s.get("/ui/settings").text();
    assert!(page.contains("name=\"backup.keep\" value=\"5\""), "{page}");
    assert!(page.contains("name=\"limits.low_space_warn_mib\" value=\"1024\""), "{page}");
    // Bad input is named beside its field (the valid one beside it is saved).
    let r = post(&s, "/ui/settings", &[("backup.keep", "lots"), ("limits.discovery_per_hour", "10")], true);
    assert_eq!(r.status, 422);
    assert!(r.text().contains("&quot;lots&quot; is not a whole number"), "{}", r.text());
    // Valid values are saved, shown with their source, audited, and used: with keep = 1 two
    // backups leave one.
    let r = post(&s, "/ui/settings", &[("backup.keep", "1"), ("limits.low_space_warn_mib", "4096")], true);
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/settings?done=settings")));
    let page = s.get("/ui/settings").text();
    assert!(page.contains("name=\"backup.keep\" value=\"1\"") && page.contains("bty.toml says 5"), "{page}");
    assert!(page.contains("settings page (bty.toml: 5)"), "{page}");
    let changed = s.get("/events?kind=settings.changed").json();
    let summaries: Vec<&str> =
        changed["events"].as_array().unwrap().iter().map(|e| e["summary"].as_str().unwrap()).collect();
    assert!(summaries.contains(&"[backup] keep: 5 → 1 (ui)"), "{summaries:?}");
    assert_eq!(summaries.len(), 3, "{summaries:?}");
    for _ in 0..2 {
        assert_eq!(post(&s, "/ui/backups", &[], true).status, 303);
    }
    let backups = std::fs::read_dir(dir.path().join("state/backups")).unwrap().count();
    assert_eq!(backups, 1, "retention from the settings page applies");
    // The same values again: nothing changed, nothing audited.
    let r = post(&s, "/ui/settings", &[("backup.keep", "1")], true);
    assert_eq!(r.header("location"), Some("/ui/settings?done=unchanged"));
    assert_eq!(s.get("/events?kind=settings.changed").json()["events"].as_array().unwrap().len(), 3);
    // An empty field returns to bty.toml.
    assert_eq!(post(&s, "/ui/settings", &[("backup.keep", "")], true).status, 303);
    assert!(s.get("/ui/settings").text().contains("name=\"backup.keep\" value=\"5\""));
}

#[test]
fn the_display_time_zone_is_a_setting_and_pages_show_times_in_it_with_utc_on_hover() {
    let dir = scratch();
    let mut s = WebServer::start_in(&dir.path().join("state"), &[]);
    s.login();
    assert!(s.get("/ui/settings").text().contains("name=\"ui.time_zone\" value=\"UTC\""));
    // A name that is not an IANA zone is refused beside its field; nothing is stored.
    let r = post(&s, "/ui/settings", &[("ui.time_zone", "Mars/Olympus_Mons")], true);
    assert_eq!(r.status, 422);
    assert!(r.text().contains("Olympus_Mons&quot; is not a time zone"), "{}", r.text());
    // Kolkata has no daylight saving time: every date is UTC+05:30.
    let r = post(&s, "/ui/settings", &[("ui.time_zone", "Asia/Kolkata")], true);
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/settings?done=settings")));
    let changed = s.get("/events?kind=settings.changed").json();
    let e = &changed["events"][0];
    assert_eq!(e["summary"], "[ui] time_zone: UTC → Asia/Kolkata (ui)", "{changed}");
    // The event's own time, as the API gives it (UTC, unchanged), and as the events page
    // shows it: in the zone, with the UTC time on hover.
    let utc = time::OffsetDateTime::parse(
        e["ts"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
    .to_offset(time::UtcOffset::UTC);
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let local = utc.to_offset(time::macros::offset!(+5:30));
    let page = s.get("/ui/events").text();
    let want = format!("title=\"{} UTC\">{}</time>", utc.format(fmt).unwrap(), local.format(fmt).unwrap());
    assert!(page.contains(&want), "{want} not in {page}");
    assert!(
        page.contains("times in Asia&#x2f;Kolkata; hover a time for UTC"),
        "the footer names the zone: {page}"
    );
    // An emptied field returns to bty.toml's zone (UTC): the hover and the text agree again.
    assert_eq!(post(&s, "/ui/settings", &[("ui.time_zone", "")], true).status, 303);
    let page = s.get("/ui/events").text();
    let same = utc.format(fmt).unwrap();
    assert!(page.contains(&format!("title=\"{same} UTC\">{same}</time>")), "{page}");
}

#[test]
fn the_reflash_by_delta_setting_is_edited_on_the_machine_page_without_javascript() {
    let (_d, s) = server();
    let mac = "52:54:00:aa:bb:20";
    let image_ref = flashing_machine(&s, mac);
    let page = s.get(&format!("/ui/machines/{mac}")).text();
    assert!(page.contains(r#"<option value="on" selected>by delta"#), "on by default: {page}");
    let form = |delta| {
        [
            ("boot_mode", "bty-flash-once"),
            ("bty_image_ref", image_ref.as_str()),
            ("target_disk_serial", "S1"),
            ("delta", delta),
        ]
    };
    let r = post(&s, &format!("/ui/machines/{mac}"), &form("off"), true);
    assert_eq!((r.status, r.header("location")), (303, Some(&*format!("/ui/machines/{mac}?done=saved"))));
    assert_eq!(s.get(&format!("/machines/{mac}")).json()["delta"], false);
    assert!(s.get(&format!("/ui/machines/{mac}")).text().contains(r#"<option value="off" selected>"#));
    let events = s.get(&format!("/events?subject_id={mac}&kind=machine.upserted")).json();
    assert_eq!(events["events"][0]["details"]["delta"], false, "audited: {events}");
    assert!(offers_flash(&s, mac), "how to reflash is not a new assignment, the cycle goes on");
    let r = post(&s, &format!("/ui/machines/{mac}"), &form("sometimes"), true);
    assert_eq!(r.status, 422);
    assert!(r.text().contains("Choose how to reflash from the list."), "{}", r.text());
    assert_eq!(s.get(&format!("/machines/{mac}")).json()["delta"], false, "a refused form saves nothing");
    let r = post(&s, &format!("/ui/machines/{mac}"), &form("off"), false);
    assert_eq!(r.status, 403, "the CSRF token is required");
}

#[test]
fn a_flash_whose_bytes_stop_moving_shows_stalled_with_its_phase_and_a_moving_one_its_rate() {
    let (_d, s) = server();
    let mac = "52:54:00:aa:cc:07";
    flashing_machine(&s, mac);
    // The threshold is a setting ([ui] stall_seconds); one second keeps the test short.
    assert_eq!(post(&s, "/ui/settings", &[("ui.stall_seconds", "1")], true).status, 303);
    let progress = |bytes: u64| {
        let p = json!({"bytes_written": bytes, "total_bytes": 8u64 << 20, "phase": "write"});
        assert_eq!(s.post_json(&format!("/pxe/{mac}/progress"), &p).status, 204);
    };
    progress(1 << 20);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    progress(2 << 20);
    // Moving: the machine page shows a rate and the time left, not a stall.
    let page = s.get(&format!("/ui/machines/{mac}")).text();
    assert!(page.contains("/s · ") && page.contains(" left"), "no rate or ETA: {page}");
    assert!(!page.contains("data-stalled"), "{page}");
    // Then nothing moves (the agent keeps posting the same count): stalled, in its phase, on
    // the page and in the list.
    let stalled = || {
        progress(2 << 20);
        let page = s.get(&format!("/ui/machines/{mac}")).text();
        let list = s.get("/ui/machines?filter=flashing").text();
        page.contains("stalled in write")
            && page.contains("data-stalled")
            && list.contains("stalled in write")
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !stalled() {
        assert!(std::time::Instant::now() < deadline, "never shown as stalled");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    // Bytes moving again clear it.
    progress(3 << 20);
    assert!(!s.get(&format!("/ui/machines/{mac}")).text().contains("stalled in write"));
}

#[test]
fn sign_in_returns_to_the_page_asked_for_and_never_off_site() {
    let (_d, s) = server();
    let r = s.raw("GET", "/ui/machines?filter=failed&q=rack%201", &[], Vec::new());
    let to = r.header("location").unwrap_or("").to_string();
    assert_eq!(
        (r.status, to.as_str()),
        (303, "/ui/login?next=%2Fui%2Fmachines%3Ffilter%3Dfailed%26q%3Drack%25201")
    );
    let login = s.raw("GET", &to, &[], Vec::new()).text();
    assert!(
        login.contains("name=\"next\" value=\"&#x2f;ui&#x2f;machines?filter=failed&amp;q=rack%201\""),
        "{login}"
    );
    let ct = [("Content-Type", "application/x-www-form-urlencoded")];
    let sign_in = |next: &str| {
        let body = format!("password={}&next={}", enc(&s.password()), enc(next));
        let r = s.raw("POST", "/ui/login", &ct, body.into_bytes());
        assert_eq!(r.status, 303, "{}", r.text());
        r.header("location").unwrap_or("").to_string()
    };
    assert_eq!(sign_in("/ui/machines?filter=failed&q=rack%201"), "/ui/machines?filter=failed&q=rack%201");
    for off_site in ["https://evil.example/ui/", "//evil.example/ui", "/\\evil.example", "/uix"] {
        assert_eq!(sign_in(off_site), "/ui", "{off_site}");
    }
    // The sign-in page never offers a foreign `next` either.
    let login = s.raw("GET", "/ui/login?next=https%3A%2F%2Fevil.example%2F", &[], Vec::new()).text();
    assert!(!login.contains("evil.example"), "{login}");
}

#[test]
fn a_failed_fetch_says_why_in_its_event_and_can_be_retried_or_dismissed() {
    let (_d, s) = server();
    let src = "http://127.0.0.1:9/gone.img";
    assert_eq!(post(&s, "/ui/images/fetch", &[("src", src), ("name", "gone.img")], true).status, 303);
    let failed_jobs = || -> Vec<u64> {
        let jobs = s.get("/images/jobs").json();
        jobs["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["status"] == "failed")
            .map(|j| j["id"].as_u64().unwrap())
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while failed_jobs().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the fetch never failed");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let events = s.get("/events?kind=image.fetch.failed").json();
    let summary = events["events"][0]["summary"].as_str().unwrap_or("").to_string();
    assert!(summary.starts_with("fetching gone.img failed: ") && summary.len() > 27, "{summary}");
    let page = s.get("/ui/images").text();
    let id = failed_jobs()[0];
    assert!(page.contains(&format!("action=\"/ui/images/jobs/{id}/retry\"")), "{page}");
    // Retry: CSRF required; then the job is queued again (and fails again), the old one gone.
    assert_eq!(post(&s, &format!("/ui/images/jobs/{id}/retry"), &[], false).status, 403);
    let r = post(&s, &format!("/ui/images/jobs/{id}/retry"), &[], true);
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/images?done=fetch")));
    assert_eq!(count_events(&s, "image.fetch.requested"), 2, "the retry is audited as a request");
    while failed_jobs().iter().all(|j| *j == id) {
        assert!(std::time::Instant::now() < deadline, "the retry never ran");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!failed_jobs().contains(&id), "the retried job left the list");
    // Dismiss: gone from the list, audited; a second dismiss finds nothing.
    let id = failed_jobs()[0];
    let r = post(&s, &format!("/ui/images/jobs/{id}/dismiss"), &[], true);
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/images?done=dismissed")));
    assert!(failed_jobs().is_empty());
    assert_eq!(count_events(&s, "image.fetch.dismissed"), 1);
    let r = post(&s, &format!("/ui/images/jobs/{id}/dismiss"), &[], true);
    assert_eq!(r.status, 404);
    assert!(r.text().contains("&#x2f;ui&#x2f;images") || r.text().contains("/ui/images"), "{}", r.text());
}

#[test]
fn not_found_pages_link_to_where_the_thing_is_made() {
    let (_d, s) = server();
    for (path, href, text) in [
        ("/ui/machines/52:54:00:aa:bb:99", "/ui/machines", "Add a machine by MAC on the Machines page"),
        ("/ui/images/nope/delete", "/ui/images", "Upload or add an image on the Images page"),
    ] {
        let r = if path.ends_with("/delete") { post(&s, path, &[], true) } else { s.get(path) };
        assert_eq!(r.status, 404, "{path}");
        let want = format!("<a href=\"{}\" id=\"made-on\">{}</a>", esc(href), text);
        assert!(r.text().contains(&want), "{path}: {}", r.text());
    }
}
