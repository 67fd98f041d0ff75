//! Database backups over the API: online copies that open on their own, retention, strict names.

mod common;
use common::webserver::WebServer;
use common::*;
use serde_json::json;

fn put_machines(s: &WebServer, macs: &[&str]) {
    for mac in macs {
        let body = json!({ "boot_mode": "ipxe-exit", "labels": ["rack1"] });
        assert_eq!(s.put_json(&format!("/machines/{mac}"), &body).status, 200);
    }
}

fn macs_in(path: &std::path::Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut st = conn.prepare("SELECT mac FROM machines ORDER BY mac").unwrap();
    let macs = st.query_map([], |r| r.get(0)).unwrap().collect::<Result<Vec<String>, _>>().unwrap();
    macs
}

#[test]
fn a_backup_is_a_standalone_database_with_the_same_machines() {
    let dir = scratch();
    let mut s = WebServer::start_in(&dir.path().join("state"), &[]);
    assert_eq!(s.raw("POST", "/backups", &[], vec![]).status, 401, "backups are protected");
    s.login();
    put_machines(&s, &["aa:bb:cc:dd:ee:01", "aa:bb:cc:dd:ee:02"]);
    let r = s.post_json("/backups", &json!({}));
    assert_eq!(r.status, 201, "{}", r.text());
    let info = r.json();
    let name = info["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("state-") && name.ends_with("Z.db"), "{name}");
    let path = s.state.join("backups").join(&name);
    assert_eq!(info["size_bytes"], json!(std::fs::metadata(&path).unwrap().len()));
    assert!(info["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(macs_in(&path), ["aa:bb:cc:dd:ee:01", "aa:bb:cc:dd:ee:02"]);

    assert_eq!(s.get("/backups").json(), json!([info]));
    let got = s.get(&format!("/backups/{name}"));
    assert_eq!(got.status, 200);
    assert_eq!(got.body, std::fs::read(&path).unwrap());
    let events = &s.get("/events?kind=backup.created").json()["events"];
    assert_eq!(events[0]["subject_id"], json!(name));

    assert_eq!(s.send("DELETE", &format!("/backups/{name}"), &[], vec![]).status, 204);
    assert!(!path.exists());
    assert_eq!(s.get("/backups").json(), json!([]));
}

#[test]
fn retention_keeps_the_newest_backups() {
    let dir = scratch();
    let mut s = WebServer::start_in(&dir.path().join("state"), &[("BTY_BACKUP_KEEP", "2")]);
    s.login();
    let names: Vec<String> = (0..3)
        .map(|_| s.post_json("/backups", &json!({})).json()["name"].as_str().unwrap().to_string())
        .collect();
    let listed: Vec<String> = s
        .get("/backups")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().into())
        .collect();
    assert_eq!(listed, [names[2].clone(), names[1].clone()], "newest first, the oldest pruned");
    assert!(!s.state.join("backups").join(&names[0]).exists());
    let pruned = &s.get("/events?kind=backup.pruned").json()["events"];
    assert_eq!(pruned[0]["subject_id"], json!(names[0]));
}

#[test]
fn bad_backup_names_are_400_and_unknown_ones_404() {
    let dir = scratch();
    let mut s = WebServer::start_in(&dir.path().join("state"), &[]);
    s.login();
    std::fs::write(s.state.join("backups-secret"), b"x").unwrap();
    for bad in ["..%2Fstate.db", "state.db", "state-20261123T154012Z.db.tmp", "..", "%2E%2E"] {
        assert_eq!(s.get(&format!("/backups/{bad}")).status, 400, "GET {bad}");
        assert_eq!(s.send("DELETE", &format!("/backups/{bad}"), &[], vec![]).status, 400, "DELETE {bad}");
    }
    assert_eq!(s.get("/backups/state-20200101T000000Z.db").status, 404);
    assert_eq!(s.send("DELETE", "/backups/state-20200101T000000Z.db", &[], vec![]).status, 404);
}
