//! bty-web against upstream bty 0.77.2's wire details, black-box over real HTTP: the audit
//! events' `details` keys and values that scripts and the upstream tests read, the
//! `trusted_proxy` setting's string form, and the status codes and 422 shapes of edge routes.
//! Each expectation is taken from upstream's own web tests (`tests/test_web.py`).

mod common;
use common::webserver::WebServer;
use common::*;
use serde_json::json;

const MAC: &str = "52:54:00:aa:00:01";
const KERNEL: &str = "bty-netboot-x86_64.vmlinuz";

/// The newest event of `kind` about `mac`.
fn latest(s: &WebServer, kind: &str, mac: &str) -> serde_json::Value {
    let r = s.get(&format!("/events?kind={kind}&subject_id={mac}&limit=1"));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["events"][0].clone()
}

fn pxe(s: &WebServer) -> serde_json::Value {
    assert_eq!(s.raw("GET", &format!("/pxe/{MAC}"), &[], vec![]).status, 200);
    latest(s, "netboot.pxe.offered", MAC)["details"].clone()
}

fn assign(s: &WebServer, mode: &str, image_ref: Option<&str>, serial: Option<&str>) {
    let r = s.put_json(
        &format!("/machines/{MAC}"),
        &json!({ "boot_mode": mode, "bty_image_ref": image_ref, "target_disk_serial": serial }),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

fn post_json(s: &WebServer, path: &str, body: serde_json::Value) -> u16 {
    s.raw("POST", path, &[("Content-Type", "application/json")], body.to_string().into_bytes()).status
}

/// Every branch of the reference's decision tree (§4.5) logs `netboot.pxe.offered` with its
/// `offer_kind`, `offer`, `reason` and retry flags; ours may add keys but keeps these values.
#[test]
fn pxe_offered_details_carry_the_references_keys_and_values() {
    let dir = scratch();
    let s = WebServer::start_logged_in(&dir.path().join("state"));
    assert_eq!(s.send("PUT", &format!("/boot/{KERNEL}"), &[], b"k".to_vec()).status, 200);
    let r = s.send("PUT", "/images/disk.img", &[], vec![7u8; 4096]);
    assert_eq!(r.status, 201, "{}", r.text());
    let image_ref = r.json()["ref"].as_str().unwrap().to_string();
    let arm = || assert_eq!(s.raw("GET", &format!("/boot/{KERNEL}?mac={MAC}"), &[], vec![]).status, 200);

    // Discovery: bty-inventory; armed without an inventory post: the retry flag.
    let d = pxe(&s);
    assert_eq!(
        (&d["boot_mode"], &d["offer"], &d["offer_kind"]),
        (&json!("bty-inventory"), &json!("bty-inventory"), &json!("bty-inventory")),
        "{d}"
    );
    assert!(d.get("retry_after_armed_no_post").is_none(), "{d}");
    arm();
    assert_eq!(pxe(&s)["retry_after_armed_no_post"], true);
    let inv = json!({ "disks": [{ "path": "/dev/sda", "serial": "S1" }] });
    assert_eq!(post_json(&s, &format!("/pxe/{MAC}/inventory"), inv), 204);
    let d = pxe(&s);
    assert_eq!(
        (&d["offer"], &d["offer_kind"]),
        (&json!("ipxe-exit"), &json!("bty-inventory-ipxe-exit")),
        "{d}"
    );

    // Flash-once: the chain with the ref, a retry after a crash, then the disk.
    assign(&s, "bty-flash-once", Some(&image_ref), Some("S1"));
    let d = pxe(&s);
    assert_eq!((&d["offer"], &d["offer_kind"]), (&json!("bty-flash-once"), &json!("bty-flash-once")), "{d}");
    assert_eq!((&d["bty_image_ref"], &d["target_disk_serial"]), (&json!(image_ref), &json!("S1")), "{d}");
    assert!(d.get("retry_after_armed_no_done").is_none(), "{d}");
    arm();
    let d = pxe(&s);
    assert_eq!((&d["offer_kind"], &d["retry_after_armed_no_done"]), (&json!("bty-flash-once"), &json!(true)));
    assert_eq!(post_json(&s, &format!("/pxe/{MAC}/status"), json!({ "status": "done" })), 204);
    let d = pxe(&s);
    assert_eq!((&d["offer"], &d["offer_kind"]), (&json!("ipxe-exit"), &json!("bty-flash-once-ipxe-exit")));

    // Flash-always without a target disk, and bound to an image the server does not know.
    assign(&s, "bty-flash-always", Some(&image_ref), None);
    let d = pxe(&s);
    assert_eq!((&d["offer"], &d["offer_kind"]), (&json!("exit-fallback"), &json!("exit-fallback")), "{d}");
    assert_eq!((&d["reason"], &d["bty_image_ref"]), (&json!("no_target_disk"), &json!(image_ref)), "{d}");
    let orphan_ref = "deadbeef".repeat(8);
    assign(&s, "bty-flash-always", Some(&orphan_ref), Some("S1"));
    let d = pxe(&s);
    assert_eq!((&d["offer_kind"], &d["reason"]), (&json!("exit-fallback"), &json!("orphan_ref")), "{d}");
    assert_eq!(d["bty_image_ref"], orphan_ref.as_str());

    // The other modes.
    assign(&s, "bty-flash-always", None, None);
    assert_eq!(
        (pxe(&s)["offer"].clone(), pxe(&s)["offer_kind"].clone()),
        (json!("unknown"), json!("unknown"))
    );
    assign(&s, "bty-tui", None, None);
    let d = pxe(&s);
    assert_eq!(
        (&d["boot_mode"], &d["offer"], &d["offer_kind"]),
        (&json!("bty-tui"), &json!("bty-tui"), &json!("bty-tui"))
    );
    assign(&s, "ipxe-exit", None, None);
    let d = pxe(&s);
    assert_eq!(
        (&d["offer"], &d["offer_kind"], &d["sanboot_drive"]),
        (&json!("ipxe-exit"), &json!("ipxe-exit"), &json!("0x80"))
    );

    // `/plan` logs the reference's `plan:` kinds.
    assert_eq!(s.raw("GET", &format!("/pxe/{MAC}/plan"), &[], vec![]).status, 200);
    assert_eq!(latest(&s, "netboot.pxe.plan", MAC)["details"]["offer_kind"], "plan:exit:ipxe-exit");
}

/// Status and inventory from an unknown MAC: 404 and a `pxe.client.orphan` event whose `signal`
/// is the reported status (`done`/`failed`) or `inventory` with its `disk_count`.
#[test]
fn orphan_events_carry_the_signal_and_the_disk_count() {
    let dir = scratch();
    let s = WebServer::start_logged_in(&dir.path().join("state"));
    let cases = [
        ("00:11:22:33:44:65", "status", json!({ "status": "done" }), json!({ "signal": "done" })),
        (
            "00:11:22:33:44:75",
            "status",
            json!({ "status": "failed", "reason": "x" }),
            json!({ "signal": "failed" }),
        ),
        (
            "00:11:22:33:44:99",
            "inventory",
            json!({ "disks": [{ "path": "/dev/sda", "serial": "GHOST" }] }),
            json!({ "signal": "inventory", "disk_count": 1 }),
        ),
    ];
    for (mac, route, body, want) in cases {
        assert_eq!(post_json(&s, &format!("/pxe/{mac}/{route}"), body), 404);
        let details = latest(&s, "pxe.client.orphan", mac)["details"].clone();
        for (k, v) in want.as_object().unwrap() {
            assert_eq!(&details[k], v, "{mac} {route}: {details}");
        }
    }
}

/// The source address the audit log records for a PXE contact carrying `xff`.
fn source_ip_seen(s: &WebServer, mac: &str, xff: &str) -> String {
    assert_eq!(s.raw("GET", &format!("/pxe/{mac}"), &[("X-Forwarded-For", xff)], vec![]).status, 200);
    latest(s, "machine.discovered", mac)["source_ip"].as_str().unwrap_or_default().to_string()
}

/// (name, bty.toml `[server]` line, env `BTY_SERVER_TRUSTED_PROXY`, `X-Forwarded-For`, recorded)
type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a str, &'a str);

/// `[server] trusted_proxy` takes upstream's string form (an address, or any other non-empty
/// value meaning "trust the header") as well as a list; the header is read from the right, so a
/// client cannot choose its own address by writing the left of it.
#[test]
fn trusted_proxy_takes_the_string_form_and_reads_forwarded_for_from_the_right() {
    let dir = scratch();
    let cases: [Case; 5] = [
        ("off", None, None, "192.168.1.42", "127.0.0.1"),
        ("env-1", None, Some("1"), "6.6.6.6, 192.168.1.42", "192.168.1.42"),
        ("string", Some("trusted_proxy = \"127.0.0.1\""), None, "6.6.6.6, 192.168.1.42", "192.168.1.42"),
        (
            "list-chain",
            Some("trusted_proxy = [\"127.0.0.1\", \"10.0.0.0/8\"]"),
            None,
            "6.6.6.6, 192.168.1.42, 10.1.2.3",
            "192.168.1.42",
        ),
        ("env-list", None, Some("127.0.0.1, 10.1.2.3"), "6.6.6.6, 192.168.1.7, 10.1.2.3", "192.168.1.7"),
    ];
    for (i, (name, toml, env, xff, want)) in cases.into_iter().enumerate() {
        let state = dir.path().join(format!("state-{name}"));
        let etc = state.with_extension("etc");
        std::fs::create_dir_all(&etc).unwrap();
        if let Some(line) = toml {
            std::fs::write(etc.join("bty.toml"), format!("[server]\n{line}\n")).unwrap();
        }
        let env: Vec<(&str, &str)> = env.map(|v| ("BTY_SERVER_TRUSTED_PROXY", v)).into_iter().collect();
        let mut s = WebServer::start_in(&state, &env);
        s.login();
        let mac = format!("52:54:00:bb:00:{i:02x}");
        assert_eq!(source_ip_seen(&s, &mac, xff), want, "{name}");
    }
    // A value that is neither an address, a network nor a yes is refused at start, by name.
    let state = dir.path().join("state-bad");
    let out = bty()
        .args(["web", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(&state)
        .env("BTY_CONFIG_DIR", dir.path().join("empty-etc"))
        .env("BTY_SERVER_TRUSTED_PROXY", "proxy.example")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("trusted_proxy") && err.contains("proxy.example"), "{err}");
}

/// `GET`/`HEAD /images/{64 hex}` is no route upstream: 404, not 405.
#[test]
fn get_and_head_of_an_image_ref_are_404() {
    let dir = scratch();
    let s = WebServer::start_in(&dir.path().join("state"), &[]);
    let path = format!("/images/{}", "ab".repeat(32));
    for method in ["GET", "HEAD"] {
        assert_eq!(s.raw(method, &path, &[], vec![]).status, 404, "{method}");
    }
}

/// An unknown field in a body is pydantic's `extra_forbidden`, naming the field in `loc`.
#[test]
fn an_unknown_field_is_422_extra_forbidden_with_the_field_in_loc() {
    let dir = scratch();
    let s = WebServer::start_logged_in(&dir.path().join("state"));
    let r = s.put_json(&format!("/machines/{MAC}"), &json!({ "boot_mode": "ipxe-exit", "colour": "red" }));
    assert_eq!(r.status, 422, "{}", r.text());
    let e = &r.json()["detail"][0];
    assert_eq!((&e["type"], &e["loc"]), (&json!("extra_forbidden"), &json!(["body", "colour"])), "{e}");
    let r = s.raw(
        "POST",
        &format!("/pxe/{MAC}/status"),
        &[("Content-Type", "application/json")],
        br#"{"status":"done","extra":1}"#.to_vec(),
    );
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["detail"][0]["loc"], json!(["body", "extra"]));
}
