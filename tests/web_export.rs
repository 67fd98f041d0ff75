//! `bty web export` / `import`: the reference's inventory.json (version 3), the full export
//! with bindings and labels, and all-or-nothing imports, against real state directories.

mod common;
use common::webserver::WebServer;
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Output;

/// A bundle as the reference writes it (§8.4), with hardware identity.
const REFERENCE_BUNDLE: &str = r#"{
  "bty_export_version": 3,
  "exported_at": "2026-05-01T10:00:00.123456+00:00",
  "exported_by_bty_version": "0.77.2",
  "machines": [
    {
      "mac": "52:54:00:aa:bb:01",
      "known_disks": [{"path": "/dev/sda", "serial": "S1", "size_bytes": 1000}],
      "known_disks_at": "2026-05-01T09:00:00.000001+00:00",
      "hw_lshw": {"id": "host", "class": "system"},
      "hw_lshw_at": "2026-05-01T09:00:00.000001+00:00"
    },
    { "mac": "52:54:00:aa:bb:02", "known_disks": null, "known_disks_at": null, "hw_lshw": null, "hw_lshw_at": null }
  ]
}"#;

fn web(state: &Path, args: &[&str]) -> Output {
    let etc = state.with_extension("etc");
    std::fs::create_dir_all(&etc).unwrap();
    bty().arg("web").arg("--state-dir").arg(state).args(args).env("BTY_CONFIG_DIR", &etc).output().unwrap()
}

fn read_bundle(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("inventory.json")).unwrap()).unwrap()
}

fn machines(state: &Path) -> Value {
    let s = WebServer::start_logged_in(state);
    s.get("/machines").json()
}

#[test]
fn the_reference_bundle_round_trips_unchanged() {
    let dir = scratch();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let src = dir.path().join("in");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("inventory.json"), REFERENCE_BUNDLE).unwrap();
    let out = web(&a, &["import", src.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("bty-web import: 2 machines (as bty-inventory)"));

    let exported = dir.path().join("out");
    let out = web(&a, &["export", exported.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("bty-web export -> {}: 2 machines", exported.display())
    );
    let text_out = std::fs::read_to_string(exported.join("inventory.json")).unwrap();
    assert!(text_out.starts_with("{\n  \"bty_export_version\": 3,"), "indent 2: {text_out}");
    let (orig, got): (Value, Value) =
        (serde_json::from_str(REFERENCE_BUNDLE).unwrap(), read_bundle(&exported));
    assert_eq!(got["machines"], orig["machines"]);
    assert_eq!(got["exported_by_bty_version"], json!(env!("CARGO_PKG_VERSION")));
    assert!(got.get("bindings").is_none(), "a plain export has the reference's keys only");

    // And into a third instance from the file itself.
    let out = web(&b, &["import", exported.join("inventory.json").to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let m = machines(&b);
    assert_eq!(m[0]["known_disks"][0]["serial"], "S1");
    assert_eq!(m[0]["boot_mode"], "bty-inventory");
}

#[test]
fn a_full_export_carries_bindings_and_labels() {
    let dir = scratch();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    {
        let s = WebServer::start_logged_in(&a);
        let body = json!({ "boot_mode": "bty-flash-once", "labels": ["gpu", "rack-2"], "target_disk_serial": "S9",
                           "bty_image_ref": "a".repeat(64), "sanboot_drive": "0x81" });
        assert_eq!(s.put_json("/machines/aa:bb:cc:dd:ee:01", &body).status, 200);
        assert_eq!(
            s.put_json("/machines/aa:bb:cc:dd:ee:02", &json!({ "boot_mode": "ipxe-exit" })).status,
            200
        );
    }
    let bundle = dir.path().join("full");
    let out = web(&a, &["export", "--full", bundle.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(read_bundle(&bundle)["bindings"]["aa:bb:cc:dd:ee:01"]["labels"], json!(["gpu", "rack-2"]));
    let out = web(&b, &["import", bundle.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let keys = ["mac", "boot_mode", "labels", "target_disk_serial", "bty_image_ref", "sanboot_drive"];
    let pick = |v: &Value| -> Vec<Value> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|m| json!(keys.iter().map(|k| m[*k].clone()).collect::<Vec<_>>()))
            .collect()
    };
    assert_eq!(pick(&machines(&b)), pick(&machines(&a)));
}

#[test]
fn a_bad_bundle_changes_nothing() {
    let dir = scratch();
    let state = dir.path().join("s");
    let src = dir.path().join("in");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("inventory.json"), REFERENCE_BUNDLE).unwrap();
    assert!(web(&state, &["import", src.to_str().unwrap()]).status.success());
    let before = machines(&state);

    let mut bad: Value = serde_json::from_str(REFERENCE_BUNDLE).unwrap();
    bad["machines"][0]["known_disks"] = json!([]);
    bad["machines"].as_array_mut().unwrap().push(json!({ "mac": "not-a-mac" }));
    let cases = [
        bad,
        json!({ "bty_export_version": 2, "machines": [] }),
        json!({ "bty_export_version": 3, "machines": [{ "mac": "52:54:00:aa:bb:01" }],
                "bindings": { "52:54:00:aa:bb:01": { "boot_mode": "warp-drive" } } }),
    ];
    for case in cases {
        std::fs::write(src.join("inventory.json"), case.to_string()).unwrap();
        let out = web(&state, &["import", src.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "invalid input exits 2: {}", text(&out));
        assert_eq!(machines(&state), before, "refused import changed state: {case}");
    }
}
