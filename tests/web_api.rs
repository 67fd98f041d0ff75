//! bty-web's machine API, auth, audit log and lifecycle, black-box over real HTTP.

mod common;
use common::webserver::WebServer;
use common::*;
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};

const MAC: &str = "aa:bb:cc:dd:ee:01";
const JSON: (&str, &str) = ("Content-Type", "application/json");

#[test]
fn open_routes_answer_without_a_session() {
    let dir = scratch();
    let s = WebServer::start_in(&dir.path().join("state"), &[]);
    assert_eq!(s.raw("GET", "/healthz", &[], vec![]).json(), json!({ "status": "ok" }));
    assert_eq!(s.raw("GET", "/version", &[], vec![]).json()["version"], env!("CARGO_PKG_VERSION"));
    let root = s.raw("GET", "/", &[], vec![]);
    assert_eq!((root.status, root.header("location")), (303, Some("/ui/login")));
    assert_eq!(s.raw("GET", "/images", &[], vec![]).json(), json!([]));
    assert_eq!(s.raw("GET", "/catalog.toml", &[], vec![]).text(), "version = 1\n");
    assert_eq!(s.raw("GET", "/no/such/route", &[], vec![]).status, 404);
}

#[test]
fn protected_routes_refuse_missing_forged_and_expired_sessions() {
    let dir = scratch();
    let mut s = WebServer::start_in(&dir.path().join("state"), &[]);
    for (method, path) in
        [("GET", "/machines"), ("GET", "/events"), ("PUT", "/boot/x"), ("GET", "/api/tokens")]
    {
        let r = s.raw(method, path, &[], vec![]);
        assert_eq!(r.status, 401, "{method} {path}");
        assert_eq!(r.json(), json!({ "detail": "login required" }));
    }
    let r = s.raw("POST", "/ui/logout", &[], vec![]);
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/login")));
    let cookie = s.login();
    assert!(cookie.starts_with("bty-token="));
    assert_eq!(s.get("/machines").status, 200);
    // Forged: a changed signature, and a cookie signed with another key.
    let value = cookie.trim_start_matches("bty-token=");
    let (payload, _sig) = value.rsplit_once('.').unwrap();
    let forged = format!("bty-token={payload}.{}", "0".repeat(64));
    assert_eq!(s.raw("GET", "/machines", &[("Cookie", &forged)], vec![]).status, 401);
    // Expired: a correctly signed cookie whose expiry is in the past.
    let secret = std::fs::read_to_string(s.state.join("session-secret")).unwrap().trim().to_string();
    let sid = payload.split('.').next().unwrap();
    let stale = format!("{sid}.1000");
    let sig = hmac_hex(secret.as_bytes(), stale.as_bytes());
    assert_eq!(
        s.raw("GET", "/machines", &[("Cookie", &format!("bty-token={stale}.{sig}"))], vec![]).status,
        401
    );
    // Logged out: the same cookie no longer works.
    let csrf = csrf_token(&s);
    let r = s.send(
        "POST",
        "/ui/logout",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        format!("csrf_token={csrf}").into_bytes(),
    );
    assert_eq!(r.status, 303);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(s.get("/machines").status, 401);
}

fn hmac_hex(key: &[u8], msg: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).unwrap();
    m.update(msg);
    m.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// The CSRF token of the logged-in session: HMAC(secret, "csrf:" + sha256(session id)).
fn csrf_token(s: &WebServer) -> String {
    use sha2::Digest;
    let secret = std::fs::read_to_string(s.state.join("session-secret")).unwrap().trim().to_string();
    let cookie = s.cookie.clone().unwrap();
    let sid = cookie.trim_start_matches("bty-token=").split('.').next().unwrap().to_string();
    let id_hash: String = sha2::Sha256::digest(sid.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    hmac_hex(secret.as_bytes(), format!("csrf:{id_hash}").as_bytes())
}

#[test]
fn cookie_posts_need_a_csrf_token_but_bearer_does_not() {
    let dir = scratch();
    let mut s = WebServer::start_in(&dir.path().join("state"), &[]);
    s.login();
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let r = s.send_without_csrf("POST", "/api/tokens", &[form], b"name=ci".to_vec());
    assert_eq!(r.status, 403, "{}", r.text());
    let r = s.send_without_csrf("POST", "/api/tokens", &[form], b"name=ci&csrf_token=wrong".to_vec());
    assert_eq!(r.status, 403);
    assert!(
        s.get("/api/tokens").json()["tokens"].as_array().unwrap().is_empty(),
        "refused posts change nothing"
    );
    let good = csrf_token(&s);
    let r = s.send("POST", "/api/tokens", &[form], format!("name=ci&csrf_token={good}").into_bytes());
    assert_eq!(r.status, 201, "{}", r.text());
    let r = s.send("POST", "/api/tokens", &[("X-CSRF-Token", &good), form], b"name=hdr".to_vec());
    assert_eq!(r.status, 201);
    let r = s.post_json("/api/tokens", &json!({ "name": "json" }));
    assert_eq!(r.status, 201);
    // The token works as a Bearer credential, and needs no CSRF token.
    let token = r.json()["token"].as_str().unwrap().to_string();
    let bearer = format!("Bearer {token}");
    let r = s.raw("POST", "/events/999/ack", &[("Authorization", &bearer)], vec![]);
    assert_eq!(r.status, 404);
    assert_eq!(s.raw("GET", "/machines", &[("Authorization", &bearer)], vec![]).status, 200);
    let listed = s.get("/api/tokens").json();
    assert_eq!(listed["tokens"].as_array().unwrap().len(), 3);
    assert!(!listed.to_string().contains(&token), "token values are shown once");
    let id = listed["tokens"][2]["id"].as_i64().unwrap();
    assert_eq!(s.send("DELETE", &format!("/api/tokens/{id}"), &[], vec![]).status, 204);
    assert_eq!(s.raw("GET", "/machines", &[("Authorization", &bearer)], vec![]).status, 401);
    assert_eq!(s.raw("GET", "/machines", &[("Authorization", "Bearer bty_nope")], vec![]).status, 401);
}

#[test]
fn repeated_login_failures_are_rate_limited() {
    let dir = scratch();
    let s = WebServer::start_in(&dir.path().join("state"), &[]);
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    for _ in 0..5 {
        assert_eq!(s.raw("POST", "/ui/login", &[form], b"password=wrong".to_vec()).status, 401);
    }
    let r = s.raw("POST", "/ui/login", &[form], format!("password={}", s.password()).into_bytes());
    assert_eq!(r.status, 429, "even the right password waits out the window");
    assert!(r.header("retry-after").is_some());
    assert!(r.header("set-cookie").is_none());
}

#[test]
fn configured_password_is_used_and_none_is_generated() {
    let dir = scratch();
    let state = dir.path().join("state");
    let s = WebServer::start_in(&state, &[("BTY_ADMIN_PASSWORD", "from-env")]);
    assert!(!state.join("admin-password").exists());
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    assert_eq!(s.raw("POST", "/ui/login", &[form], b"password=from-env".to_vec()).status, 303);
}

#[test]
fn generated_secrets_are_private_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch();
    let s = WebServer::start_in(&dir.path().join("state"), &[]);
    for f in ["admin-password", "session-secret"] {
        let mode = std::fs::metadata(s.state.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    assert!(s.log_lines().iter().any(|l| l.contains("admin-password")), "the log says where the password is");
}

#[test]
fn machine_put_is_a_full_replace_with_the_references_validation() {
    let dir = scratch();
    let s = WebServer::start_logged_in(&dir.path().join("state"));
    let r = s.put_json(
        "/machines/AA-BB-CC-DD-EE-01",
        &json!({ "labels": ["rack-2", "gpu", "gpu"], "boot_mode": "bty-tui", "sanboot_drive": "0x81", "target_disk_serial": "S1" }),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let m = r.json();
    assert_eq!(m["mac"], MAC);
    assert_eq!(m["labels"], json!(["gpu", "rack-2"]));
    assert_eq!(m["discovered_at"], json!(null));
    let keys: Vec<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
    for k in [
        "mac",
        "bty_image_ref",
        "labels",
        "discovered_at",
        "last_seen_at",
        "last_seen_ip",
        "boot_mode",
        "sanboot_drive",
        "last_flashed_at",
        "known_disks",
        "known_disks_at",
        "target_disk_serial",
        "created_at",
        "updated_at",
    ] {
        assert!(keys.contains(&k), "Machine lacks {k}");
    }
    // Full replace: omitted fields return to their defaults.
    let r = s.put_json(&format!("/machines/{MAC}"), &json!({}));
    assert_eq!(r.json()["boot_mode"], "ipxe-exit");
    assert_eq!(r.json()["labels"], json!([]));
    assert_eq!(r.json()["sanboot_drive"], json!(null));
    assert_eq!(r.json()["created_at"], m["created_at"]);
    let bad = [
        json!({ "boot_mode": "ramboot" }),
        json!({ "boot_mode": "local" }),
        json!({ "bty_image_ref": "ABC" }),
        json!({ "labels": ["-x"] }),
        json!({ "labels": (0..17).map(|i| format!("l{i}")).collect::<Vec<_>>() }),
        json!({ "sanboot_drive": "0x800" }),
        json!({ "target_disk_serial": "x".repeat(129) }),
        json!({ "hostname": "box" }),
        // An array would fill the fields in order; the body must be an object.
        json!([]),
        json!(["abc", ["lab"], "bty-flash-once"]),
    ];
    for body in bad {
        let r = s.put_json(&format!("/machines/{MAC}"), &body);
        assert_eq!(r.status, 422, "{body}");
        assert!(r.json()["detail"].is_array(), "{}", r.text());
    }
    let r = s.send("PUT", &format!("/machines/{MAC}"), &[JSON], b"{not json".to_vec());
    assert_eq!(r.status, 422);
    assert_eq!(
        s.get(&format!("/machines/{MAC}")).json()["boot_mode"],
        "ipxe-exit",
        "refused PUTs change nothing"
    );
    for bad_mac in ["aa:bb:cc:dd:ee", "aabbccddeeff", "gg:bb:cc:dd:ee:01"] {
        let r = s.put_json(&format!("/machines/{bad_mac}"), &json!({}));
        assert_eq!(r.status, 400);
        assert_eq!(r.json()["detail"], format!("invalid MAC: '{bad_mac}'"));
    }
    assert_eq!(s.get("/machines").json().as_array().unwrap().len(), 1);
    assert_eq!(s.get("/machines/aa:bb:cc:dd:ee:99").status, 404);
    assert_eq!(s.get(&format!("/machines/{MAC}/lshw.json")).status, 404);
    assert_eq!(s.send("DELETE", &format!("/machines/{MAC}"), &[], vec![]).status, 204);
    assert_eq!(s.send("DELETE", &format!("/machines/{MAC}"), &[], vec![]).status, 404);
    assert_eq!(s.get("/machines").json(), json!([]));
}

#[test]
fn events_filter_page_and_acknowledge() {
    let dir = scratch();
    let s = WebServer::start_logged_in(&dir.path().join("state"));
    for i in 1..=5 {
        assert_eq!(s.put_json(&format!("/machines/aa:bb:cc:dd:ee:0{i}"), &json!({})).status, 200);
    }
    let r = s.raw(
        "POST",
        "/pxe/aa:bb:cc:dd:ee:01/status",
        &[JSON],
        br#"{"status":"failed","reason":"boom"}"#.to_vec(),
    );
    assert_eq!(r.status, 204);
    let all = s.get("/events?kind=machine.created").json();
    let events = all["events"].as_array().unwrap();
    assert_eq!(events.len(), 5);
    assert!(events.windows(2).all(|w| w[0]["id"].as_i64() > w[1]["id"].as_i64()), "newest first");
    for k in [
        "id",
        "ts",
        "kind",
        "subject_kind",
        "subject_id",
        "actor",
        "source_ip",
        "summary",
        "details",
        "acknowledged",
    ] {
        assert!(events[0].get(k).is_some(), "Event lacks {k}");
    }
    let cursor = events[1]["id"].as_i64().unwrap();
    let page = s.get(&format!("/events?kind=machine.created&before_id={cursor}&limit=2")).json();
    let ids: Vec<i64> =
        page["events"].as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [events[2]["id"].as_i64().unwrap(), events[3]["id"].as_i64().unwrap()]);
    let failed = s.get("/events?failed=1").json();
    assert_eq!(failed["events"].as_array().unwrap().len(), 1);
    let id = failed["events"][0]["id"].as_i64().unwrap();
    assert_eq!(s.get("/events?subject_id=aa:bb:cc:dd:ee:03").json()["events"].as_array().unwrap().len(), 1);
    let r = s.post_json(&format!("/events/{id}/ack"), &json!({}));
    assert_eq!(r.json(), json!({ "id": id, "acknowledged": true }));
    assert_eq!(s.get("/events?failed=1").json()["events"][0]["acknowledged"], true);
    assert_eq!(s.post_json("/events/99999/ack", &json!({})).status, 404);
    assert_eq!(s.get("/events?limit=abc").status, 422);
}

/// Reads SSE lines from a raw connection until `pred` matches one; returns it.
fn read_until(reader: &mut impl BufRead, pred: impl Fn(&str) -> bool) -> String {
    let mut line = String::new();
    for _ in 0..1000 {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!("stream ended");
        }
        if pred(line.trim_end()) {
            return line.trim_end().to_string();
        }
    }
    panic!("no matching line");
}

#[test]
fn machine_changes_stream_as_one_small_json_message_each() {
    let dir = scratch();
    let s = WebServer::start_logged_in(&dir.path().join("state"));
    let mut conn = std::net::TcpStream::connect(&s.addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    let cookie = s.cookie.clone().unwrap();
    write!(conn, "GET /events/machines HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\n\r\n", s.addr).unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    assert_eq!(read_until(&mut reader, |l| l.starts_with("HTTP/1.1")), "HTTP/1.1 200 OK");
    read_until(&mut reader, |l| {
        l == "content-type: text/event-stream" || l == "Content-Type: text/event-stream"
    });
    read_until(&mut reader, |l| l.starts_with("retry:"));
    assert_eq!(s.raw("GET", "/pxe/aa:bb:cc:dd:ee:07", &[], vec![]).status, 200);
    // Other kinds share the stream (the audit's `activity`); the machine's own message follows.
    read_until(&mut reader, |l| l == "event: machine");
    let data = read_until(&mut reader, |l| l.starts_with("data:"));
    let m: serde_json::Value = serde_json::from_str(data.trim_start_matches("data:").trim()).unwrap();
    assert_eq!(m["mac"], "aa:bb:cc:dd:ee:07");
    assert_eq!(m["boot_mode"], "bty-inventory");
    let body = br#"{"bytes_written":10,"total_bytes":100,"phase":"write"}"#.to_vec();
    assert_eq!(s.raw("POST", "/pxe/aa:bb:cc:dd:ee:07/progress", &[JSON], body).status, 204);
    assert_eq!(
        read_until(&mut reader, |l| {
            l.starts_with("event:") && l != "event: machine" && l != "event: activity"
        }),
        "event: progress"
    );
    let data = read_until(&mut reader, |l| l.starts_with("data:"));
    assert!(data.contains("\"bytes_written\":10"), "{data}");
    assert_eq!(s.send("DELETE", "/machines/aa:bb:cc:dd:ee:07", &[], vec![]).status, 204);
    assert_eq!(
        read_until(&mut reader, |l| {
            l.starts_with("event:") && l != "event: machine" && l != "event: activity"
        }),
        "event: machine-deleted"
    );
    drop(reader);
    let _ = conn.shutdown(std::net::Shutdown::Both);
    // Without a session the stream is refused.
    assert_eq!(s.raw("GET", "/events/machines", &[], vec![]).status, 401);
}

#[test]
fn restart_with_the_same_state_dir_keeps_everything() {
    let dir = scratch();
    let state = dir.path().join("state");
    let mut s = WebServer::start_logged_in(&state);
    let r = s.put_json(&format!("/machines/{MAC}"), &json!({ "labels": ["keep"], "boot_mode": "bty-tui" }));
    assert_eq!(r.status, 200);
    assert_eq!(s.send("PUT", "/boot/ipxe.efi", &[], b"efi".to_vec()).status, 200);
    let cookie = s.cookie.clone().unwrap();
    let status = s.terminate();
    assert!(status.success(), "SIGTERM exits cleanly: {status:?}");
    assert!(s.log_lines().iter().any(|l| l == "bty-web: stopped"));
    let s2 = WebServer::start_in(&state, &[]);
    let m = s2.raw("GET", &format!("/machines/{MAC}"), &[("Cookie", &cookie)], vec![]);
    assert_eq!(m.status, 200, "the session survives a restart");
    assert_eq!(m.json()["labels"], json!(["keep"]));
    assert_eq!(s2.raw("GET", "/boot/ipxe.efi", &[], vec![]).body, b"efi");
    assert!(!s2.raw("GET", "/events", &[("Cookie", &cookie)], vec![]).json()["events"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn a_database_at_schema_v1_with_data_is_migrated_on_start() {
    let dir = scratch();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let db = rusqlite::Connection::open(state.join("state.db")).unwrap();
    // The first schema version, written by hand as an older bty-web left it.
    db.execute_batch(
        "CREATE TABLE machines (mac TEXT PRIMARY KEY, bty_image_ref TEXT, discovered_at TEXT, last_seen_at TEXT,
           last_seen_ip TEXT, boot_mode TEXT NOT NULL DEFAULT 'ipxe-exit', sanboot_drive TEXT, last_flashed_at TEXT,
           saw_flasher_boot INTEGER NOT NULL DEFAULT 0, known_disks TEXT, known_disks_at TEXT, hw_lshw TEXT,
           hw_lshw_at TEXT, target_disk_serial TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
         CREATE TABLE machine_labels (mac TEXT NOT NULL REFERENCES machines(mac) ON DELETE CASCADE,
           label TEXT NOT NULL, PRIMARY KEY (mac, label));
         CREATE INDEX machine_labels_label_idx ON machine_labels(label);
         CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, ts TEXT NOT NULL, kind TEXT NOT NULL,
           subject_kind TEXT, subject_id TEXT, actor TEXT, source_ip TEXT, summary TEXT NOT NULL, details TEXT,
           acknowledged INTEGER NOT NULL DEFAULT 0);
         CREATE INDEX events_ts_idx ON events(ts);
         CREATE INDEX events_kind_idx ON events(kind);
         CREATE INDEX events_subject_idx ON events(subject_kind, subject_id);
         CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT NOT NULL);
         PRAGMA user_version = 1;
         INSERT INTO machines (mac, boot_mode, saw_flasher_boot, last_flashed_at, target_disk_serial, created_at, updated_at)
           VALUES ('aa:bb:cc:dd:ee:01', 'bty-flash-once', 1, '2026-01-01T00:00:00.000000+00:00', 'S1',
                   '2026-01-01T00:00:00.000000+00:00', '2026-01-01T00:00:00.000000+00:00');
         INSERT INTO machine_labels VALUES ('aa:bb:cc:dd:ee:01', 'old-label');
         INSERT INTO events (ts, kind, summary) VALUES ('2026-01-01T00:00:00.000000+00:00', 'machine.created', 'old');",
    )
    .unwrap();
    drop(db);
    let s = WebServer::start_logged_in(&state);
    let m = s.get("/machines/aa:bb:cc:dd:ee:01").json();
    assert_eq!(m["labels"], json!(["old-label"]));
    assert_eq!(m["boot_mode"], "bty-flash-once");
    assert_eq!(m["boot_state"], "flashed; booting disk", "the old cycle bit carries over");
    assert_eq!(s.get("/events?kind=machine.created").json()["events"][0]["summary"], "old");
    let v: i64 = rusqlite::Connection::open(state.join("state.db"))
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert!(v > 1);
}

#[test]
fn a_burst_of_connections_is_served_by_a_bounded_worker_pool() {
    let dir = scratch();
    let s = WebServer::start_in(&dir.path().join("state"), &[("BTY_TUNING_MAX_CONNECTIONS", "4")]);
    let threads_before = thread_count(s.pid());
    // Each client sends its request as soon as it is connected, as PXE clients do; the poller
    // reads the heads and the four workers serve them in turn.
    let conns: Vec<std::net::TcpStream> = (0..200)
        .map(|_| {
            let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
            write!(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
            c
        })
        .collect();
    let mut ok = 0;
    for mut c in conns {
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        ok += usize::from(out.starts_with("HTTP/1.1 200"));
    }
    assert_eq!(ok, 200);
    let workers = std::fs::read_dir(format!("/proc/{}/task", s.pid()))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
        .filter(|c| {
            c.starts_with("bty-web-") && !["bty-web-jobs", "bty-web-sse", "bty-web-poll"].contains(&c.trim())
        })
        .count();
    assert_eq!(workers, 4, "request workers are fixed (was {threads_before} threads before the burst)");
}

fn thread_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.count()).unwrap_or(0)
}
