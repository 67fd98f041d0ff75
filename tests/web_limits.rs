//! What the unauthenticated PXE plane may cost bty-web, black-box: PXE keeps answering on a full
//! state disk while the operator can still log in and clean up, the dashboard warns before it
//! is full, and discovery, `lshw` blobs and audit rows are capped by `[limits]`.

mod common;
use common::webserver::WebServer;
use common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const MAC: &str = "52:54:00:aa:00:01";

fn pxe(s: &WebServer, mac: &str) -> (u16, String) {
    let r = s.raw("GET", &format!("/pxe/{mac}"), &[], vec![]);
    (r.status, r.text())
}

fn is_disk(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("iseq ${platform} efi && exit 1 || sanboot"))
}

/// Polls `/events?kind=` until `done` holds for the list (summaries are written every 2 s).
fn events_until(
    s: &WebServer,
    kind: &str,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let mut events = Vec::new();
    for _ in 0..300 {
        events =
            s.get(&format!("/events?kind={kind}&limit=500")).json()["events"].as_array().unwrap().clone();
        if done(&events) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    events
}

/// A small tmpfs, unmounted when dropped (after the server using it, declared later, is gone).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output();
        assert!(out.as_ref().is_ok_and(|o| o.status.success()), "mounting a tmpfs: {out:?}");
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Writes zeros into `path` until the filesystem refuses.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 1 << 16];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
}

#[test]
fn a_full_state_disk_still_boots_machines_and_lets_the_operator_clean_up() {
    if !can_use_loop_devices() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let dir = scratch();
    let _fs = Tmpfs::mount(&dir.path().join("m"), "48m");
    let state = dir.path().join("m/state");
    let mut s = WebServer::start_in(&state, &[]);
    s.login();
    let r = s.put_json(&format!("/machines/{MAC}"), &json!({ "boot_mode": "ipxe-exit" }));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(pxe(&s, "52:54:00:aa:00:02").0, 200, "discovered while there is room");
    let backup = s.post_json("/backups", &json!({}));
    assert_eq!(backup.status, 201, "{}", backup.text());
    let backup = backup.json()["name"].as_str().unwrap().to_string();

    fill(&dir.path().join("m/filler"));
    for _ in 0..20 {
        let (status, text) = pxe(&s, MAC);
        assert_eq!(status, 200, "a known machine gets its script on a full disk: {text}");
        assert!(is_disk(&text), "{text}");
    }
    let (status, text) = pxe(&s, "52:54:00:aa:00:09");
    assert_eq!(status, 200, "an unknown machine is answered: {text}");
    assert!(is_disk(&text), "not stored, so it boots its disk: {text}");
    let plan = s.raw("GET", "/pxe/52:54:00:aa:00:09/plan", &[], vec![]);
    assert_eq!((plan.status, plan.json()), (200, json!({ "mode": "exit" })));
    let inventory_mode = s.raw("GET", "/pxe/52:54:00:aa:00:02/plan", &[], vec![]);
    assert_eq!((inventory_mode.status, inventory_mode.json()), (200, json!({ "mode": "inventory" })));

    // The operator logs in anew, deletes a machine and a backup.
    s.login();
    assert_eq!(s.send("DELETE", "/machines/52:54:00:aa:00:02", &[], vec![]).status, 204);
    assert_eq!(s.send("DELETE", &format!("/backups/{backup}"), &[], vec![]).status, 204);
    assert_eq!(s.get("/machines").json().as_array().unwrap().len(), 1);
    let dropped: Vec<String> = s.log_lines().into_iter().filter(|l| l.contains("not recorded")).collect();
    assert_eq!(dropped.len(), 1, "one rate-limited line for the dropped writes: {dropped:?}");
}

#[test]
fn the_dashboard_warns_about_space_below_the_configured_threshold() {
    let dir = scratch();
    let dashboard = |warn: &str, sub: &str| {
        let mut s = WebServer::start_in(&dir.path().join(sub), &[("BTY_LIMITS_LOW_SPACE_WARN_MIB", warn)]);
        s.login();
        s.get("/ui/dashboard").text()
    };
    // No test machine has an exbibyte free; none has less than nothing.
    assert!(dashboard("1099511627776", "a").contains("warning below"), "no warning at 1 EiB");
    assert!(!dashboard("0", "b").contains("warning below"), "0 never warns");
}

#[test]
fn discovery_beyond_the_caps_is_served_but_not_stored() {
    let dir = scratch();
    let mut s = WebServer::start_in(&dir.path().join("state"), &[("BTY_LIMITS_DISCOVERY_PER_HOUR", "3")]);
    for i in 0..20 {
        let (status, _) = pxe(&s, &format!("52:54:00:bb:00:{i:02x}"));
        assert_eq!(status, 200);
    }
    let (_, text) = pxe(&s, "52:54:00:bb:00:13");
    assert!(is_disk(&text), "a MAC beyond the cap boots its disk: {text}");
    s.login();
    assert_eq!(s.get("/machines").json().as_array().unwrap().len(), 3);
    let limited = events_until(&s, "machine.discovery_limited", |e| !e.is_empty());
    assert_eq!(limited.len(), 1, "one summary row: {limited:?}");
    assert_eq!(limited[0]["details"]["count"], 18, "{limited:?}");
    // The total cap, with the hourly one out of the way.
    let mut t = WebServer::start_in(&dir.path().join("total"), &[("BTY_LIMITS_DISCOVERY_MAX", "2")]);
    for i in 0..5 {
        pxe(&t, &format!("52:54:00:cc:00:{i:02x}"));
    }
    t.login();
    assert_eq!(t.get("/machines").json().as_array().unwrap().len(), 2);
}

#[test]
fn an_oversized_lshw_keeps_the_old_blob_and_still_stores_the_disks() {
    let dir = scratch();
    let mut s = WebServer::start_in(&dir.path().join("state"), &[("BTY_LIMITS_LSHW_MAX_BYTES", "2000")]);
    s.login();
    pxe(&s, MAC);
    let post = |body: serde_json::Value| {
        s.raw(
            "POST",
            &format!("/pxe/{MAC}/inventory"),
            &[("Content-Type", "application/json")],
            body.to_string().into_bytes(),
        )
        .status
    };
    let small = json!({ "id": "small" });
    assert_eq!(post(json!({ "disks": [{ "path": "/dev/sda", "serial": "A" }], "lshw": small })), 204);
    let big = json!({ "id": "big", "pad": "x".repeat(5000) });
    let disks = json!([{ "path": "/dev/sda", "serial": "A" }, { "path": "/dev/sdb", "serial": "B" }]);
    assert_eq!(post(json!({ "disks": disks, "lshw": big })), 204, "too big an lshw is not an error");
    let lshw = s.get(&format!("/machines/{MAC}/lshw.json")).json();
    assert_eq!(lshw, small, "the earlier blob stays");
    assert_eq!(s.get(&format!("/machines/{MAC}")).json()["known_disks"].as_array().unwrap().len(), 2);
    let events = s.get("/events?kind=machine.inventory").json()["events"].clone();
    assert_eq!(events[0]["details"]["lshw"], false, "{events}");
    assert_eq!(events[1]["details"]["lshw"], true, "{events}");
}

#[test]
fn a_flood_of_pxe_requests_keeps_the_events_table_within_events_max_rows() {
    let dir = scratch();
    let mut s = WebServer::start_in(&dir.path().join("state"), &[("BTY_LIMITS_EVENTS_MAX_ROWS", "100")]);
    for _ in 0..700 {
        assert_eq!(pxe(&s, MAC).0, 200);
    }
    s.login();
    let n = s.get("/events?limit=500").json()["events"].as_array().unwrap().len();
    // Trimmed every 256 rows, so at most 100 + 255 remain of the 701 written.
    assert!(n < 500, "{n} events kept with events_max_rows = 100");
}
