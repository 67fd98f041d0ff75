//! The browser UI in a real headless Chromium driven over WebDriver: sign in, assign an image
//! to a machine through the form, watch flash progress posted by a "netboot agent" (this test,
//! over HTTP) arrive through SSE without a reload, take a screenshot of every page at 1280 px
//! and at phone width (375 px) into `target/ui-screenshots/`, and check the browser never
//! contacted any host but the server.

mod common;
use common::webdriver::{self, Browser};
use common::webserver::WebServer;
use common::*;
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

const MAC: &str = "52:54:00:12:34:56";

fn shots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
    std::fs::create_dir_all(&dir).expect("creating target/ui-screenshots");
    dir
}

/// True (with a note) when this machine has no Chromium to drive: the test then skips.
fn no_browser() -> bool {
    let missing = !webdriver::available();
    if missing {
        eprintln!("skipping: chromium and chromedriver are not installed (tests/deps.sh)");
    }
    missing
}

/// A bty-web with its state under `dir`, `env` in its environment, and a signed-in client.
fn signed_in(dir: &std::path::Path, env: &[(&str, &str)]) -> WebServer {
    let mut s = WebServer::start_in(&dir.join("state"), env);
    s.login();
    s
}

/// A server with one stored image and one inventoried machine.
fn populated_server(dir: &std::path::Path) -> (WebServer, String) {
    let s = signed_in(dir, &[]);
    let mut img = vec![0u8; 1 << 20];
    img[510] = 0x55;
    img[511] = 0xaa;
    let r =
        s.send("PUT", "/images/debian-13-amd64.img", &[("Content-Type", "application/octet-stream")], img);
    assert_eq!(r.status, 201, "{}", r.text());
    let image_ref = r.json()["ref"].as_str().unwrap().to_string();
    assert_eq!(s.get(&format!("/pxe/{MAC}")).status, 200);
    let inventory = json!({
        "disks": [
            {"path": "/dev/nvme0n1", "size": "477G", "vendor": "Samsung", "model": "PM9A1", "serial": "S6EUNX0R123456", "tran": "nvme"},
            {"path": "/dev/sda", "size": "14.9G", "vendor": "SanDisk", "model": "Cruzer", "serial": "4C530001", "tran": "usb", "removable": true}
        ],
        "lshw": {"class": "system", "vendor": "Supermicro", "product": "SYS-5019C", "children": [{"class": "bus", "children": [
            {"id": "memory", "class": "memory", "size": 34359738368u64},
            {"class": "processor", "product": "Intel(R) Xeon(R) E-2288G", "configuration": {"threads": "16"}},
            {"class": "network", "logicalname": "eno1", "serial": MAC, "size": 1000000000u64}
        ]}]}
    });
    assert_eq!(s.post_json(&format!("/pxe/{MAC}/inventory"), &inventory).status, 204);
    for i in 1..=3 {
        let other = format!("52:54:00:00:00:{i:02x}");
        let body = json!({"labels": [format!("rack-{i}"), "lab"], "boot_mode": if i == 3 { "bty-inventory" } else { "ipxe-exit" }});
        assert_eq!(s.put_json(&format!("/machines/{other}"), &body).status, 200);
    }
    (s, image_ref)
}

#[test]
fn browser_signs_in_assigns_an_image_and_sees_live_progress_without_reloading() {
    if no_browser() {
        return;
    }
    let dir = scratch();
    let (s, image_ref) = populated_server(dir.path());
    let shots = shots_dir();
    let b = Browser::start(1280, 900);

    // Sign in.
    b.goto(&s.url("/ui/login"));
    b.screenshot(&shots.join("login-1280.png"));
    b.type_into("#password", &s.password());
    b.click("button[type=submit]");
    b.wait_until("the dashboard", Duration::from_secs(10), |b| b.url().ends_with("/ui/dashboard"));
    assert!(b.body_text().contains("Readiness"));

    // Assign the image through the form.
    b.goto(&s.url(&format!("/ui/machines/{MAC}")));
    b.select("#boot_mode", "bty-flash-once");
    b.select("#bty_image_ref", &image_ref);
    b.select("#target_disk_serial", "S6EUNX0R123456");
    b.type_into("#labels", "rack-7, gpu");
    b.click("form.form button.primary");
    b.wait_until("the saved notice", Duration::from_secs(10), |b| b.body_text().contains("Saved."));
    let text = b.body_text();
    assert!(text.contains("debian-13-amd64.img") && text.contains("pending flash"), "{text}");
    let m = s.get(&format!("/machines/{MAC}")).json();
    assert_eq!(
        (m["boot_mode"].as_str(), m["bty_image_ref"].as_str()),
        (Some("bty-flash-once"), Some(image_ref.as_str()))
    );
    assert_eq!(m["target_disk_serial"], "S6EUNX0R123456");

    // Progress posted by the agent arrives on the open page without a reload: a marker set on
    // the window survives, and the text changes.
    b.wait_until("the live stream", Duration::from_secs(10), |b| {
        b.js("return !document.getElementById('live').hidden;", json!([])) == json!(true)
    });
    b.js("window.__no_reload = 1;", json!([]));
    let progress = json!({"bytes_written": 1u64 << 29, "total_bytes": 1u64 << 30, "phase": "write"});
    assert_eq!(s.post_json(&format!("/pxe/{MAC}/progress"), &progress).status, 204);
    b.wait_until("flashing 50% on the machine page", Duration::from_secs(10), |b| {
        b.body_text().contains("flashing 50%")
    });
    assert_eq!(b.js("return window.__no_reload;", json!([])), json!(1), "the page reloaded");
    assert!(b.body_text().contains("512.0 MiB of 1.0 GiB"));
    b.screenshot(&shots.join("machine-1280.png"));

    // The machines table updates the same way.
    b.goto(&s.url("/ui/machines"));
    b.wait_until("the live stream", Duration::from_secs(10), |b| {
        b.js("return !document.getElementById('live').hidden;", json!([])) == json!(true)
    });
    b.js("window.__no_reload = 1;", json!([]));
    let progress = json!({"bytes_written": 3u64 << 28, "total_bytes": 1u64 << 30, "phase": "write"});
    assert_eq!(s.post_json(&format!("/pxe/{MAC}/progress"), &progress).status, 204);
    b.wait_until("flashing 75% in the table", Duration::from_secs(10), |b| {
        b.body_text().contains("flashing 75%")
    });
    assert_eq!(b.js("return window.__no_reload;", json!([])), json!(1), "the page reloaded");
    // A machine change (a new label through the API) re-renders the table body in place.
    let body = json!({"labels": ["rack-1", "moved"], "boot_mode": "ipxe-exit"});
    assert_eq!(s.put_json("/machines/52:54:00:00:00:01", &body).status, 200);
    b.wait_until("the new label in the table", Duration::from_secs(10), |b| b.body_text().contains("moved"));
    assert_eq!(b.js("return window.__no_reload;", json!([])), json!(1), "the page reloaded");
    b.screenshot(&shots.join("machines-1280.png"));

    // Upload an image from the browser: the file streams with a PUT and the page reloads with
    // the new catalog entry.
    let upload = dir.path().join("alpine-3.21.img");
    let mut img = vec![0u8; 4 << 20];
    img[510] = 0x55;
    img[511] = 0xaa;
    img[4096] = 1;
    std::fs::write(&upload, img).unwrap();
    b.goto(&s.url("/ui/images"));
    b.type_into("#upload-file", &upload.display().to_string());
    b.click("#upload button.primary");
    b.wait_until("the uploaded image in the catalog", Duration::from_secs(20), |b| {
        b.body_text().contains("alpine-3.21.img") && b.body_text().contains("2 images")
    });
    let names: Vec<String> = s
        .get("/images")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.contains(&"alpine-3.21.img".to_string()), "{names:?}");

    // A failed flash elsewhere, so the dashboard and events pages show how failures look.
    let failed = json!({"status": "failed", "reason": "no disk with serial S3 on this machine"});
    assert_eq!(s.post_json("/pxe/52:54:00:00:00:03/status", &failed).status, 204);

    // Every page at desktop width, then dashboard and machines (and the rest) at phone width.
    let pages = ["dashboard", "images", "netboot", "events", "settings", "backups", "account"];
    for p in pages {
        b.goto(&s.url(&format!("/ui/{p}")));
        b.screenshot(&shots.join(format!("{p}-1280.png")));
    }
    b.viewport(375, 812, true);
    for p in ["dashboard", "machines", &format!("machines/{MAC}"), "images", "netboot", "events", "account"] {
        b.goto(&s.url(&format!("/ui/{p}")));
        let name = if p.starts_with("machines/") { "machine".to_string() } else { p.to_string() };
        let overflow = b.js("return document.documentElement.scrollWidth - window.innerWidth;", json!([]));
        assert!(overflow.as_i64().unwrap_or(0) <= 0, "{p} scrolls sideways at 375 px by {overflow} px");
        b.screenshot(&shots.join(format!("{name}-375.png")));
    }
    b.viewport(0, 0, false);

    // Nothing but the server was contacted over the network (no CDN, fonts or telemetry);
    // the browser's own chrome:// pages (the first blank tab) are not network requests.
    let urls = b.requested_urls();
    assert!(urls.iter().any(|u| u.ends_with("/static/bty.css")), "{urls:?}");
    let network =
        |u: &&String| !u.starts_with("chrome://") && !u.starts_with("data:") && !u.starts_with("about:");
    let foreign: Vec<&String> =
        urls.iter().filter(network).filter(|u| !u.starts_with(&format!("{}/", s.base))).collect();
    assert!(foreign.is_empty(), "requests to other hosts: {foreign:?}");
}

/// A 1280×900 browser signed in to `s`.
fn browser_signed_in(s: &WebServer) -> Browser {
    let b = Browser::start(1280, 900);
    sign_in(&b, s);
    b
}

fn sign_in(b: &Browser, s: &WebServer) {
    b.goto(&s.url("/ui/login"));
    b.type_into("#password", &s.password());
    b.click("button[type=submit]");
    b.wait_until("the dashboard", Duration::from_secs(10), |b| b.url().ends_with("/ui/dashboard"));
}

/// Whether `/pxe/{mac}` offers the netboot environment (a flash), not the disk.
fn offers_flash(s: &WebServer, mac: &str) -> bool {
    s.get(&format!("/pxe/{mac}")).text().lines().any(|l| l.starts_with("kernel "))
}

/// One flasher boot of `mac` that ends with `status` after writing 3 of 8 MiB.
fn flash_cycle(s: &WebServer, mac: &str, status: serde_json::Value) {
    assert!(offers_flash(s, mac));
    assert_eq!(s.get(&format!("/boot/bty-netboot-x86_64.vmlinuz?mac={mac}")).status, 200);
    let p = json!({"bytes_written": 3u64 << 20, "total_bytes": 8u64 << 20, "phase": "write"});
    assert_eq!(s.post_json(&format!("/pxe/{mac}/progress"), &p).status, 204);
    assert_eq!(s.post_json(&format!("/pxe/{mac}/status"), &status).status, 204);
}

#[test]
fn browser_flashes_again_from_the_page_and_the_list_and_shows_why_a_flash_failed() {
    if no_browser() {
        return;
    }
    let dir = scratch();
    let s = signed_in(dir.path(), &[]);
    for name in ["bty-netboot-x86_64.vmlinuz", "bty-netboot-x86_64.initrd"] {
        assert_eq!(s.send("PUT", &format!("/boot/{name}"), &[], b"x".to_vec()).status, 200);
    }
    let r = s.send("PUT", "/images/debian-13-amd64.img", &[], vec![7u8; 4096]);
    let image_ref = r.json()["ref"].as_str().unwrap().to_string();
    let other = "52:54:00:00:00:21";
    for mac in [MAC, other] {
        let body = json!({"boot_mode": "bty-flash-once", "bty_image_ref": image_ref, "target_disk_serial": "S6EUNX0R123456"});
        assert_eq!(s.put_json(&format!("/machines/{mac}"), &body).status, 200);
        flash_cycle(&s, mac, json!({"status": "done"}));
        assert!(!offers_flash(&s, mac));
    }
    let reflashes = || s.get("/events?kind=machine.reflash").json()["events"].as_array().map_or(0, Vec::len);
    let shots = shots_dir();
    let b = browser_signed_in(&s);

    // Flash again on the machine page: the page says what happens next, /pxe offers a flash.
    b.goto(&s.url(&format!("/ui/machines/{MAC}")));
    b.click("form[action$='/reflash'] button");
    b.wait_until("the flash-again notice", Duration::from_secs(10), |b| {
        b.body_text().contains("Flashes on its next PXE boot — power-cycle it.")
    });
    assert_eq!(reflashes(), 1);
    assert!(offers_flash(&s, MAC), "the next PXE boot flashes");

    // The flash fails: the open page shows the reason, phase and what the next boot does, live.
    b.wait_until("the live stream", Duration::from_secs(10), |b| {
        b.js("return !document.getElementById('live').hidden;", json!([])) == json!(true)
    });
    let reason = "no disk with serial S6EUNX0R123456 on this machine";
    flash_cycle(&s, MAC, json!({"status": "failed", "reason": reason}));
    b.wait_until("the failure reason on the machine page", Duration::from_secs(10), |b| {
        b.body_text().contains(reason)
    });
    let text = b.body_text();
    assert!(text.contains("The next PXE boot retries the flash"), "{text}");
    assert!(text.contains("Boot local disk instead") && text.contains("3.0 MiB"), "{text}");
    b.screenshot(&shots.join("machine-failed-1280x900.png"));
    b.viewport(390, 844, true);
    b.goto(&s.url(&format!("/ui/machines/{MAC}")));
    b.screenshot(&shots.join("machine-failed-390x844.png"));
    b.goto(&s.url("/ui/machines"));
    assert!(b.body_text().contains(reason), "the reason as text on a phone: {}", b.body_text());
    b.screenshot(&shots.join("machines-failed-390x844.png"));
    b.viewport(0, 0, false);
    println!("screenshots of the failed machine in {}", shots.display());

    // The list: the reason on hover (title) and as text; bulk Flash again for both machines.
    b.goto(&s.url("/ui/machines"));
    let title =
        b.js(&format!("return document.querySelector('tr[data-mac=\"{MAC}\"] .why').title;"), json!([]));
    assert_eq!(title, json!(reason));
    b.click(&format!("input[type=checkbox][value='{MAC}']"));
    b.click(&format!("input[type=checkbox][value='{other}']"));
    b.click("#bulk button");
    b.wait_until("the bulk result", Duration::from_secs(10), |b| b.body_text().contains("2 machines armed"));
    assert_eq!(reflashes(), 3);
    assert!(offers_flash(&s, other), "the list's Flash again re-arms the other machine too");
}

/// Writes the five netboot artifacts and a `SHA256SUMS` over them into `out`, as `bty-media`
/// does (`sha256sum` itself writes the manifest).
fn media_output(out: &std::path::Path) {
    std::fs::create_dir_all(out).unwrap();
    let names = [
        "bty-netboot-x86_64.vmlinuz",
        "bty-netboot-x86_64.initrd",
        "undionly.kpxe",
        "ipxe.efi",
        "snponly.efi",
    ];
    for n in names {
        std::fs::write(out.join(n), format!("{n} from bty-media")).unwrap();
    }
    let sums = std::process::Command::new("sha256sum").args(names).current_dir(out).output().unwrap();
    assert!(sums.status.success());
    std::fs::write(out.join("SHA256SUMS"), sums.stdout).unwrap();
}

#[test]
fn browser_readiness_names_a_missing_loader_until_an_import_and_activity_arrives_live() {
    if no_browser() {
        return;
    }
    let dir = scratch();
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let env = [("BTY_TFTP_ENABLED", "true"), ("BTY_TFTP_LISTEN", listen.as_str())];
    let s = signed_in(dir.path(), &env);
    for name in ["bty-netboot-x86_64.vmlinuz", "bty-netboot-x86_64.initrd", "ipxe.efi", "undionly.kpxe"] {
        assert_eq!(s.send("PUT", &format!("/boot/{name}"), &[], b"x".to_vec()).status, 200);
    }
    let b = browser_signed_in(&s);
    let readiness = |b: &Browser| {
        b.js(
            "const li = document.querySelector('ul.checks li'); return li.className + ' ' + li.innerText;",
            json!([]),
        )
        .as_str()
        .unwrap_or("")
        .to_string()
    };
    let item = readiness(&b);
    assert!(item.starts_with("bad") && item.contains("missing: snponly.efi"), "{item}");

    // Activity arrives on the open dashboard without a reload.
    b.wait_until("the live stream", Duration::from_secs(10), |b| {
        b.js("return !document.getElementById('live').hidden;", json!([])) == json!(true)
    });
    b.js("window.__no_reload = 1;", json!([]));
    assert_eq!(s.put_json("/machines/52:54:00:00:00:31", &json!({"boot_mode": "ipxe-exit"})).status, 200);
    b.wait_until("the new event in recent activity", Duration::from_secs(10), |b| {
        b.js("return document.getElementById('activity').innerText;", json!([]))
            .as_str()
            .is_some_and(|t| t.contains("52:54:00:00:00:31"))
    });
    assert_eq!(b.js("return window.__no_reload;", json!([])), json!(1), "the page reloaded");

    // A manifest whose digest does not match installs nothing and says which file.
    let bad = dir.path().join("bad-out");
    media_output(&bad);
    std::fs::write(bad.join("snponly.efi"), "tampered").unwrap();
    b.goto(&s.url("/ui/netboot"));
    b.type_into("#import-src", &bad.display().to_string());
    b.click("#import button");
    b.wait_until("the digest error", Duration::from_secs(10), |b| {
        b.body_text().contains("nothing was installed")
    });
    assert!(b.body_text().contains("snponly.efi: sha256 is"), "{}", b.body_text());
    assert!(!dir.path().join("state/boot/snponly.efi").exists());

    // The good output imports; the dashboard turns green.
    let good = dir.path().join("out");
    media_output(&good);
    b.goto(&s.url("/ui/netboot"));
    b.type_into("#import-src", &good.display().to_string());
    b.click("#import button");
    b.wait_until("the import notice", Duration::from_secs(10), |b| {
        b.body_text().contains("every digest matched")
    });
    assert_eq!(std::fs::read(dir.path().join("state/boot/ipxe.efi")).unwrap(), b"ipxe.efi from bty-media");
    b.goto(&s.url("/ui/dashboard"));
    let item = readiness(&b);
    assert!(item.starts_with("ok") && item.contains("all 5"), "{item}");
    let imported = s.get("/events?kind=netboot.artifact.imported").json();
    assert_eq!(imported["events"][0]["details"]["files"].as_array().map(Vec::len), Some(5));
}

#[test]
fn browser_shows_rate_and_then_a_stall_live_on_the_open_machine_page() {
    if no_browser() {
        return;
    }
    let dir = scratch();
    let s = signed_in(dir.path(), &[("BTY_UI_STALL_SECONDS", "2")]);
    assert_eq!(s.put_json(&format!("/machines/{MAC}"), &json!({"boot_mode": "ipxe-exit"})).status, 200);
    let b = browser_signed_in(&s);
    b.goto(&s.url(&format!("/ui/machines/{MAC}")));
    b.wait_until("the live stream", Duration::from_secs(10), |b| {
        b.js("return !document.getElementById('live').hidden;", json!([])) == json!(true)
    });
    // A mark a reload would wipe.
    b.js("window.btyKept = 1;", json!([]));
    let progress = |bytes: u64| {
        let p = json!({"bytes_written": bytes, "total_bytes": 8u64 << 20, "phase": "download"});
        assert_eq!(s.post_json(&format!("/pxe/{MAC}/progress"), &p).status, 204);
    };
    progress(1 << 20);
    std::thread::sleep(Duration::from_millis(1100));
    progress(2 << 20);
    b.wait_until("the rate and time left", Duration::from_secs(10), |b| {
        let t = b.body_text();
        t.contains("/s · ") && t.contains(" left")
    });
    // No further posts at all (the agent hung): the stall reaches the page through SSE.
    b.wait_until("the stall, without a reload", Duration::from_secs(60), |b| {
        b.body_text().contains("stalled in download")
    });
    assert!(b.body_text().contains("Stalled: no bytes written for"), "{}", b.body_text());
    assert_eq!(b.js("return window.btyKept;", json!([])), json!(1), "the page was not reloaded");
}

#[test]
fn browser_changes_settings_that_take_effect_are_audited_and_show_times_in_the_chosen_zone() {
    if no_browser() {
        return;
    }
    let dir = scratch();
    let s = signed_in(dir.path(), &[]);
    let b = browser_signed_in(&s);
    b.goto(&s.url("/ui/settings"));
    // An operator replaces what the fields hold and saves.
    b.js(
        "document.getElementById('ui.time_zone').value = arguments[0]; \
         document.getElementById('backup.keep').value = arguments[1];",
        json!(["Asia/Kolkata", "1"]),
    );
    b.click("#editable button[type=submit]");
    b.wait_until("the saved notice", Duration::from_secs(10), |b| {
        b.url().ends_with("/ui/settings?done=settings")
    });
    assert!(b.body_text().contains("Settings saved"), "{}", b.body_text());
    let audited = s.get("/events?kind=settings.changed").json();
    let summaries: Vec<&str> =
        audited["events"].as_array().unwrap().iter().filter_map(|e| e["summary"].as_str()).collect();
    assert!(summaries.contains(&"[ui] time_zone: UTC → Asia/Kolkata (ui)"), "{summaries:?}");
    assert!(summaries.contains(&"[backup] keep: 7 → 1 (ui)"), "{summaries:?}");
    // Retention applies at once: two backups made on the page leave one.
    for _ in 0..2 {
        b.goto(&s.url("/ui/backups"));
        b.click("form[action='/ui/backups'] button[type=submit]");
        b.wait_until("the backup notice", Duration::from_secs(10), |b| b.url().contains("done=backup"));
    }
    assert_eq!(std::fs::read_dir(dir.path().join("state/backups")).unwrap().count(), 1);
    // Times show in Kolkata (UTC+05:30 all year), the UTC time on hover.
    b.goto(&s.url("/ui/events"));
    let shown = b.js(
        "const t = document.querySelector('main time'); return [t.innerText, t.title, document.querySelector('footer').innerText];",
        json!([]),
    );
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let utc_text = shown[1].as_str().unwrap().trim_end_matches(" UTC");
    let utc = time::PrimitiveDateTime::parse(utc_text, fmt).unwrap().assume_utc();
    let local = utc.to_offset(time::macros::offset!(+5:30)).format(fmt).unwrap();
    assert_eq!(shown[0].as_str(), Some(local.as_str()), "{shown}");
    assert!(shown[2].as_str().unwrap().contains("times in Asia/Kolkata"), "{shown}");
}

/// WCAG relative luminance of a CSS `rgb(r, g, b)` colour.
fn luminance(css: &str) -> f64 {
    let nums: Vec<f64> = css
        .trim_start_matches("rgba(")
        .trim_start_matches("rgb(")
        .trim_end_matches(')')
        .split(',')
        .take(3)
        .map(|n| n.trim().parse::<f64>().unwrap_or_else(|_| panic!("not a colour: {css}")) / 255.0)
        .collect();
    let lin = |c: f64| if c <= 0.03928 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) };
    0.2126 * lin(nums[0]) + 0.7152 * lin(nums[1]) + 0.0722 * lin(nums[2])
}

#[test]
fn keyboard_focus_is_visible_at_three_to_one_and_the_first_tab_offers_skip_to_content() {
    if no_browser() {
        return;
    }
    let dir = scratch();
    let s = signed_in(dir.path(), &[]);
    let b = browser_signed_in(&s);
    b.goto(&s.url("/ui/machines"));
    // The first element in tab order is the skip link, and it leads to the content.
    let first = b.js("return document.querySelector('a[href], button, input').outerHTML;", json!([]));
    assert!(first.as_str().unwrap_or("").contains("Skip to content"), "{first}");
    assert_eq!(b.js("return !!document.getElementById('content');", json!([])), json!(true));
    // Ring against what is behind it, for a link in the dark header and a field on a panel.
    for (el, behind) in [(".nav a", ".top"), ("#q, input[type=search], main input", ".panel, main")] {
        let got = b.js(
            &format!(
                "var e = document.querySelector('{el}'); e.focus({{focusVisible: true}});
                 var s = getComputedStyle(e);
                 return [s.outlineStyle, s.outlineWidth, s.outlineColor, getComputedStyle(e.closest('{behind}')).backgroundColor];"
            ),
            json!([]),
        );
        let [style, width, ring, bg] = [0, 1, 2, 3].map(|i| got[i].as_str().unwrap_or("").to_string());
        assert_eq!(style, "solid", "{el}: {got}");
        assert!(width != "0px", "{el}: {got}");
        let (a, b2) = (luminance(&ring), luminance(&bg));
        let ratio = (a.max(b2) + 0.05) / (a.min(b2) + 0.05);
        assert!(ratio >= 3.0, "{el}: focus ring {ring} on {bg} is {ratio:.2}:1");
    }
}
