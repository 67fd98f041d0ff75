//! Crash and concurrency leftovers of bty-web, black-box: a backup finishes while PXE clients
//! keep writing, an interrupted backup or image fetch leaves nothing half-done after a restart,
//! and a progress post that arrives after `done` does not show the machine flashing again.

mod common;
use common::httpd::{noise, Httpd, Resource};
use common::webserver::WebServer;
use common::*;
use serde_json::json;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const MAC: &str = "52:54:00:dd:00:01";

#[test]
fn a_backup_completes_while_pxe_clients_keep_writing() {
    let dir = scratch();
    let mut s = WebServer::start_in(&dir.path().join("state"), &[]);
    s.login();
    // A database of several MiB: many page steps for a page-by-page backup.
    let lshw = json!({ "pad": "x".repeat(3 << 20) });
    for i in 0..8 {
        let mac = format!("52:54:00:dd:01:{i:02x}");
        assert_eq!(s.raw("GET", &format!("/pxe/{mac}"), &[], vec![]).status, 200);
        let body = json!({ "disks": [], "lshw": lshw }).to_string().into_bytes();
        let ct = [("Content-Type", "application/json")];
        assert_eq!(s.raw("POST", &format!("/pxe/{mac}/inventory"), &ct, body).status, 204);
    }
    let stop = AtomicBool::new(false);
    let status = std::thread::scope(|scope| {
        for t in 0..4 {
            let (s, stop) = (&s, &stop);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    s.raw("GET", &format!("/pxe/52:54:00:dd:02:{t:02x}"), &[], vec![]);
                }
            });
        }
        // Stops the load however the backup request ends (a timeout panics).
        struct Stop<'a>(&'a AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop = Stop(&stop);
        std::thread::sleep(Duration::from_millis(300));
        // The client's 60 s timeout only guards against a hang.
        s.post_json("/backups", &json!({})).status
    });
    assert_eq!(status, 201, "the backup finished under load");
    let backups = s.get("/backups").json();
    let name = backups[0]["name"].as_str().unwrap();
    let conn = rusqlite::Connection::open(s.state.join("backups").join(name)).unwrap();
    let n: i64 =
        conn.query_row("SELECT COUNT(*) FROM machines WHERE hw_lshw IS NOT NULL", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 8);
}

#[test]
fn an_interrupted_backup_leaves_no_temporary_file_after_a_restart() {
    let dir = scratch();
    let state = dir.path().join("state");
    std::fs::create_dir_all(state.join("backups")).unwrap();
    let tmp = state.join("backups/.state-20261123T154012Z.db.tmp");
    std::fs::write(&tmp, b"half a backup").unwrap();
    let other = state.join("backups/notes.txt");
    std::fs::write(&other, b"operator's file").unwrap();
    let mut s = WebServer::start_in(&state, &[]);
    s.login();
    assert!(s.get("/backups").json().as_array().unwrap().is_empty());
    assert!(!tmp.exists(), "the leftover of an interrupted backup is removed at start");
    assert!(other.exists(), "only backup leftovers are removed");
}

#[test]
fn a_fetch_cut_short_by_a_crash_is_recorded_as_failed_at_restart() {
    let dir = scratch();
    let state = dir.path().join("state");
    let httpd = Httpd::start();
    let mut res = Resource::new(noise(4 << 20, 3));
    res.stalls = vec![(1 << 20, Duration::from_secs(120))];
    httpd.put("/disk.img", res);
    let mut s = WebServer::start_in(&state, &[]);
    s.login();
    let r = s.post_json("/images", &json!({ "src": httpd.url("/disk.img") }));
    assert_eq!(r.status, 202, "{}", r.text());
    let mut job = json!(null);
    for _ in 0..600 {
        job = s.get("/images/jobs").json()["jobs"][0].clone();
        if job["bytes_done"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(job["status"], "running", "{job}");
    let _ = Command::new("kill").args(["-KILL", &s.pid().to_string()]).status();
    s.terminate_wait();
    let mut s = WebServer::start_in(&state, &[]);
    s.login();
    let events = s.get("/events?kind=image.fetch.failed").json()["events"].clone();
    assert_eq!(events.as_array().map(Vec::len), Some(1), "{events}");
    assert!(events[0]["details"]["error"].as_str().unwrap().contains("interrupted"), "{events}");
    let jobs = s.get("/images/jobs").json()["jobs"].clone();
    assert_eq!(jobs[0]["status"], "failed", "{jobs}");
    assert_eq!(s.raw("GET", "/images", &[], vec![]).json(), json!([]));
}

#[test]
fn a_progress_post_after_done_does_not_show_the_machine_flashing_again() {
    let dir = scratch();
    let mut s = WebServer::start_in(&dir.path().join("state"), &[]);
    s.login();
    for name in ["bty-netboot-x86_64.vmlinuz", "bty-netboot-x86_64.initrd"] {
        assert_eq!(s.send("PUT", &format!("/boot/{name}"), &[], b"x".to_vec()).status, 200);
    }
    let image =
        s.send("PUT", "/images/disk.img", &[], vec![7u8; 4096]).json()["ref"].as_str().unwrap().to_string();
    let body = json!({ "boot_mode": "bty-flash-once", "bty_image_ref": image, "target_disk_serial": "S1" });
    assert_eq!(s.put_json(&format!("/machines/{MAC}"), &body).status, 200);
    s.raw("GET", &format!("/pxe/{MAC}"), &[], vec![]);
    assert_eq!(s.raw("GET", &format!("/boot/bty-netboot-x86_64.vmlinuz?mac={MAC}"), &[], vec![]).status, 200);
    let ct = [("Content-Type", "application/json")];
    let progress = json!({ "bytes_written": 2048, "total_bytes": 4096, "phase": "write" }).to_string();
    let post =
        |path: &str, body: &str| s.raw("POST", &format!("/pxe/{MAC}/{path}"), &ct, body.as_bytes().to_vec());
    assert_eq!(post("progress", &progress).status, 204);
    assert!(s.get(&format!("/ui/machines/{MAC}")).text().contains("flashing 50%"));
    assert_eq!(post("status", r#"{"status":"done"}"#).status, 204);
    // The agent's last progress post overtaken by its `done`.
    assert_eq!(post("progress", &progress).status, 204);
    let page = s.get(&format!("/ui/machines/{MAC}")).text();
    assert!(!page.contains("flashing 50%"), "a finished machine shows as flashing again");
}
