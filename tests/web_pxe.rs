//! bty-web's PXE control plane, black-box: the real server on loopback, real HTTP. Every boot
//! mode's script line by line, the flash-once / flash-always / inventory cycles including
//! crash retries in later cycles, arming only on artifacts that exist, and discovery races.

mod common;
use common::webserver::WebServer;
use common::*;
use serde_json::json;

const MAC: &str = "52:54:00:11:22:33";
const MAC_HYPHEN: &str = "52-54-00-11-22-33";
const KERNEL: &str = "bty-netboot-x86_64.vmlinuz";
const INITRD: &str = "bty-netboot-x86_64.initrd";

/// A logged-in server with netboot artifacts and one stored image; returns the image's ref.
fn server_with_image() -> (tempfile::TempDir, WebServer, String) {
    let dir = scratch();
    let s = WebServer::start_logged_in(&dir.path().join("state"));
    for name in [KERNEL, INITRD] {
        let r = s.send("PUT", &format!("/boot/{name}"), &[], format!("{name} bytes").into_bytes());
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = s.send("PUT", "/images/disk.img", &[], vec![7u8; 4096]);
    assert_eq!(r.status, 201, "{}", r.text());
    let image_ref = r.json()["ref"].as_str().unwrap().to_string();
    (dir, s, image_ref)
}

fn assign(s: &WebServer, mode: &str, image_ref: Option<&str>, serial: Option<&str>) {
    let r = s.put_json(
        &format!("/machines/{MAC}"),
        &json!({ "boot_mode": mode, "bty_image_ref": image_ref, "target_disk_serial": serial, "labels": ["rack-1"] }),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

fn script(s: &WebServer) -> String {
    let r = s.raw("GET", &format!("/pxe/{MAC_HYPHEN}"), &[], vec![]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    r.text()
}

fn plan(s: &WebServer) -> serde_json::Value {
    let r = s.raw("GET", &format!("/pxe/{MAC}/plan"), &[], vec![]);
    assert_eq!(r.status, 200);
    r.json()
}

/// Fetches the kernel the way iPXE does (arms the cycle).
fn boot_kernel(s: &WebServer) -> u16 {
    s.raw("GET", &format!("/boot/{KERNEL}?mac={MAC}"), &[], vec![]).status
}

fn status(s: &WebServer, body: serde_json::Value) -> u16 {
    s.raw(
        "POST",
        &format!("/pxe/{MAC}/status"),
        &[("Content-Type", "application/json")],
        body.to_string().into_bytes(),
    )
    .status
}

fn is_flasher(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("kernel "))
}

fn is_disk(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("iseq ${platform} efi && exit 1 || sanboot"))
}

#[test]
fn bootstrap_chains_to_the_per_mac_script() {
    let dir = scratch();
    let s = WebServer::start_in(&dir.path().join("state"), &[]);
    let r = s.raw("GET", "/pxe-bootstrap.ipxe", &[], vec![]);
    assert_eq!(r.status, 200);
    let text = r.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "#!ipxe");
    assert_eq!(lines[2], format!("chain http://{}/pxe/${{mac:hexhyp}}", s.addr));
    assert_eq!(lines.len(), 3);
}

#[test]
fn netboot_script_is_the_spec_chain_line_by_line() {
    let (_d, s, image_ref) = server_with_image();
    assign(&s, "bty-flash-once", Some(&image_ref), Some("SERIAL-1"));
    let text = script(&s);
    let lines: Vec<&str> = text.lines().collect();
    let host = &s.addr;
    assert_eq!(lines.len(), 6, "{text}");
    assert_eq!(lines[0], "#!ipxe");
    assert!(lines[1].starts_with(&format!(
        "# bty {}: {MAC} boot_mode=bty-flash-once offer=bty-flash",
        env!("CARGO_PKG_VERSION")
    )));
    assert_eq!(lines[2], format!("# bty_image_ref={image_ref} target_disk_serial=SERIAL-1"));
    assert_eq!(
        lines[3],
        format!(
            "kernel http://{host}/boot/{KERNEL}?mac={MAC} initrd={INITRD} console=tty0 console=ttyS1,115200 \
             console=ttyS0,115200 bty.server=http://{host} bty.mac={MAC} bty.ip=${{ip}}/${{netmask}} \
             bty.gw=${{gateway}} bty.dns=${{dns}}"
        )
    );
    assert_eq!(lines[4], format!("initrd http://{host}/boot/{INITRD}?mac={MAC}"));
    assert_eq!(lines[5], "boot");
}

#[test]
fn every_boot_mode_gets_its_script_and_a_matching_plan() {
    let (_d, s, image_ref) = server_with_image();
    let host = s.addr.clone();
    // ipxe-exit: firmware-aware disk boot with the configured drive.
    let r = s
        .put_json(&format!("/machines/{MAC}"), &json!({ "boot_mode": "ipxe-exit", "sanboot_drive": "0x81" }));
    assert_eq!(r.status, 200);
    let text = script(&s);
    assert_eq!(
        text.lines().skip(2).collect::<Vec<_>>(),
        [
            format!("echo bty: {MAC} boot_mode=ipxe-exit, booting local disk (platform=${{platform}})"),
            "sleep 1".to_string(),
            "iseq ${platform} efi && exit 1 || sanboot --no-describe --drive 0x81 || exit 1".to_string(),
        ]
    );
    assert_eq!(plan(&s), json!({ "mode": "exit" }));
    // bty-tui: the netboot chain, and an interactive plan with this server's catalog.
    assign(&s, "bty-tui", None, None);
    assert!(is_flasher(&script(&s)));
    assert_eq!(plan(&s), json!({ "mode": "interactive", "catalog": format!("http://{host}/catalog.toml") }));
    // A flash mode without a ref: no usable assignment.
    assign(&s, "bty-flash-always", None, Some("S1"));
    assert_eq!(
        script(&s).lines().skip(2).collect::<Vec<_>>(),
        [
            format!("echo no usable bty assignment for {MAC}; booting local disk (platform=${{platform}})"),
            "sleep 5".to_string(),
            "iseq ${platform} efi && exit 1 || sanboot --no-describe --drive 0x80 || exit 1".to_string(),
        ]
    );
    assert_eq!(plan(&s), json!({ "mode": "exit" }));
    // A flash mode without a target serial, and one bound to an unknown ref: back to firmware.
    assign(&s, "bty-flash-always", Some(&image_ref), None);
    let text = script(&s);
    assert!(text.lines().nth(1).unwrap().ends_with("reason=no_target_disk"), "{text}");
    assert_eq!(
        text.lines().skip(2).collect::<Vec<_>>(),
        [
            format!(
                "echo bty: {MAC} boot_mode=bty-flash-always ref={}..., returning to local boot",
                &image_ref[..12]
            ),
            "sleep 1".into(),
            "exit 1".into()
        ]
    );
    assert_eq!(plan(&s), json!({ "mode": "exit" }));
    assign(&s, "bty-flash-always", Some(&"f".repeat(64)), Some("S1"));
    assert!(script(&s).lines().nth(1).unwrap().ends_with("reason=orphan_ref"));
    assert_eq!(plan(&s), json!({ "mode": "exit" }));
    // A flash mode with everything: the chain, and a flash plan pointing at the stored image.
    assign(&s, "bty-flash-always", Some(&image_ref), Some("S1"));
    assert!(is_flasher(&script(&s)));
    assert_eq!(
        plan(&s),
        json!({
            "mode": "flash", "image": format!("http://{host}/images/{image_ref}/disk.img"),
            "target_disk_serial": "S1", "name": "disk.img", "disk_image_sha": image_ref, "format": "img",
            "delta": true,
        })
    );
    // bty-inventory: the chain, and an inventory plan.
    assign(&s, "bty-inventory", None, None);
    assert!(is_flasher(&script(&s)));
    assert_eq!(plan(&s), json!({ "mode": "inventory" }));
}

#[test]
fn flash_once_boots_the_flasher_until_done_then_the_disk_forever() {
    let (_d, s, image_ref) = server_with_image();
    assign(&s, "bty-flash-once", Some(&image_ref), Some("S1"));
    assert!(is_flasher(&script(&s)));
    assert_eq!(boot_kernel(&s), 200);
    // Rebooted mid-flash (flasher seen, no done): the flasher again, never the disk.
    let retry = script(&s);
    assert!(is_flasher(&retry) && retry.contains("offer=bty-flash-retry"), "{retry}");
    assert_eq!(plan(&s)["mode"], "flash");
    assert_eq!(status(&s, json!({ "status": "done" })), 204);
    for _ in 0..3 {
        assert!(is_disk(&script(&s)));
        assert_eq!(plan(&s), json!({ "mode": "exit" }));
    }
    let m = s.get(&format!("/machines/{MAC}")).json();
    assert_eq!(m["last_flash_status"], "done");
    assert!(m["last_flashed_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(m["last_flashed_image_sha256"], image_ref.as_str());
    assert_eq!(m["boot_state"], "flashed; booting disk");
    // Re-saving with a changed serial re-arms the flash.
    assign(&s, "bty-flash-once", Some(&image_ref), Some("S2"));
    assert!(is_flasher(&script(&s)));
}

#[test]
fn flash_always_alternates_and_a_crash_in_a_later_cycle_never_boots_the_disk() {
    let (_d, s, image_ref) = server_with_image();
    assign(&s, "bty-flash-always", Some(&image_ref), Some("S1"));
    // Cycle 1: flash, done, disk.
    assert!(is_flasher(&script(&s)));
    assert_eq!(boot_kernel(&s), 200);
    assert_eq!(status(&s, json!({ "status": "done" })), 204);
    assert!(is_disk(&script(&s)));
    // Cycle 2: flasher again; it boots, then crashes before done.
    let second = script(&s);
    assert!(is_flasher(&second) && second.contains("offer=bty-flash "), "{second}");
    assert_eq!(boot_kernel(&s), 200);
    for _ in 0..2 {
        assert!(is_flasher(&script(&s)), "a half-written disk must never boot");
        assert_eq!(plan(&s)["mode"], "flash");
    }
    // A failure report does not complete the cycle either.
    assert_eq!(status(&s, json!({ "status": "failed", "reason": "disk vanished" })), 204);
    assert!(is_flasher(&script(&s)));
    assert_eq!(s.get(&format!("/machines/{MAC}")).json()["last_flash_status"], "failed");
    assert_eq!(status(&s, json!({ "status": "done" })), 204);
    assert!(is_disk(&script(&s)));
    assert!(is_flasher(&script(&s)));
    let failed = s.get("/events?kind=machine.flash_failed").json();
    assert_eq!(failed["events"][0]["details"]["reason"], "disk vanished");
}

#[test]
fn a_done_without_a_flasher_boot_does_not_complete_the_cycle() {
    let (_d, s, image_ref) = server_with_image();
    assign(&s, "bty-flash-always", Some(&image_ref), Some("S1"));
    assert_eq!(status(&s, json!({ "status": "done" })), 204);
    assert_eq!(boot_kernel(&s), 200);
    assert!(is_flasher(&script(&s)), "armed after a stray done: still flash");
}

#[test]
fn inventory_mode_alternates_between_the_environment_and_the_disk() {
    let (_d, s, _ref) = server_with_image();
    // Discovery makes the row bty-inventory.
    assert!(is_flasher(&script(&s)));
    assert_eq!(s.get(&format!("/machines/{MAC}")).json()["boot_mode"], "bty-inventory");
    assert_eq!(boot_kernel(&s), 200);
    assert!(is_flasher(&script(&s)), "armed without an inventory: retry");
    let inv = json!({ "disks": [{ "path": "/dev/sda", "serial": "S1", "size": "8G", "type": "disk" }], "lshw": { "id": "box" } });
    let r = s.raw(
        "POST",
        &format!("/pxe/{MAC}/inventory"),
        &[("Content-Type", "application/json")],
        inv.to_string().into_bytes(),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(is_disk(&script(&s)));
    assert!(is_flasher(&script(&s)));
    let disks = s.get(&format!("/machines/{MAC}/disks.json"));
    assert_eq!(
        disks.header("content-disposition"),
        Some("attachment; filename=\"52-54-00-11-22-33-disks.json\"")
    );
    assert_eq!(disks.json()[0]["serial"], "S1");
    assert!(disks.json()[0].get("type").is_none(), "lsblk extras are dropped");
    assert_eq!(s.get(&format!("/machines/{MAC}/lshw.json")).json(), json!({ "id": "box" }));
}

#[test]
fn arming_happens_only_when_the_artifact_exists() {
    let (_d, s, image_ref) = server_with_image();
    assign(&s, "bty-flash-always", Some(&image_ref), Some("S1"));
    assert_eq!(s.raw("GET", &format!("/boot/missing.efi?mac={MAC}"), &[], vec![]).status, 404);
    assert_eq!(s.raw("HEAD", &format!("/boot/{INITRD}?mac={MAC}"), &[], vec![]).status, 200);
    let armed = s.get("/events?kind=netboot.flasher.armed").json();
    assert_eq!(armed["events"].as_array().unwrap().len(), 1);
    assert_eq!(armed["events"][0]["details"]["artifact"], INITRD);
}

#[test]
fn concurrent_first_contacts_create_one_machine() {
    let dir = scratch();
    let s = WebServer::start_logged_in(&dir.path().join("state"));
    let base = s.base.clone();
    let threads: Vec<_> = (0..24)
        .map(|i| {
            let base = base.clone();
            std::thread::spawn(move || {
                let path = if i % 2 == 0 { "/pxe/AA-BB-CC-00-00-01" } else { "/pxe/aa:bb:cc:00:00:01/plan" };
                let mut resp = common::webserver::agent().get(format!("{base}{path}")).call().unwrap();
                assert_eq!(resp.status().as_u16(), 200);
                let _ = resp.body_mut().read_to_string();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let machines = s.get("/machines").json();
    assert_eq!(machines.as_array().unwrap().len(), 1);
    assert_eq!(machines[0]["mac"], "aa:bb:cc:00:00:01");
    let discovered = s.get("/events?kind=machine.discovered").json();
    assert_eq!(discovered["events"].as_array().unwrap().len(), 1);
}

#[test]
fn status_inventory_and_progress_for_unknown_macs_are_404_orphans() {
    let dir = scratch();
    let s = WebServer::start_logged_in(&dir.path().join("state"));
    let ct = [("Content-Type", "application/json")];
    assert_eq!(
        s.raw("POST", "/pxe/aa:aa:aa:aa:aa:aa/status", &ct, br#"{"status":"done"}"#.to_vec()).status,
        404
    );
    assert_eq!(
        s.raw("POST", "/pxe/aa:aa:aa:aa:aa:aa/inventory", &ct, br#"{"disks":[]}"#.to_vec()).status,
        404
    );
    assert_eq!(
        s.raw("POST", "/pxe/aa:aa:aa:aa:aa:aa/progress", &ct, br#"{"bytes_written":1}"#.to_vec()).status,
        404
    );
    assert!(s.get("/machines").json().as_array().unwrap().is_empty());
    assert_eq!(s.get("/events?kind=pxe.client.orphan").json()["events"].as_array().unwrap().len(), 3);
}

#[test]
fn bad_agent_input_gets_the_documented_status_and_changes_nothing() {
    let (_d, s, _ref) = server_with_image();
    script(&s); // discover
    let before = s.get(&format!("/machines/{MAC}")).json();
    let ct = [("Content-Type", "application/json")];
    let post = |path: &str, body: Vec<u8>| s.raw("POST", &format!("/pxe/{MAC}/{path}"), &ct, body).status;
    assert_eq!(post("status", br#"{"status":"ramboot.up"}"#.to_vec()), 422);
    assert_eq!(post("status", br#"{"status":"done","extra":1}"#.to_vec()), 422);
    assert_eq!(
        post("status", json!({"status":"failed","reason":"x".repeat(501)}).to_string().into_bytes()),
        422
    );
    assert_eq!(post("status", b"not json".to_vec()), 422);
    let disk = json!({ "path": "/dev/sda", "serial": "S" });
    let many = json!({ "disks": vec![disk; 65] });
    assert_eq!(post("inventory", many.to_string().into_bytes()), 422);
    assert_eq!(post("inventory", br#"{"disks":[],"unknown":true}"#.to_vec()), 422);
    let big = json!({ "disks": [], "lshw": { "blob": "x".repeat(5 << 20) } });
    assert_eq!(post("inventory", big.to_string().into_bytes()), 413);
    for bad in ["zz:zz:zz:zz:zz:zz", "aabbccddeeff", "aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:ff:00"] {
        let r = s.raw("GET", &format!("/pxe/{bad}"), &[], vec![]);
        assert_eq!(r.status, 400);
        assert_eq!(r.json()["detail"], format!("invalid MAC: '{bad}'"));
    }
    let after = s.get(&format!("/machines/{MAC}")).json();
    assert_eq!(before["known_disks"], after["known_disks"]);
    assert_eq!(before["last_flash_status"], after["last_flash_status"]);
    assert_eq!(s.get("/machines").json().as_array().unwrap().len(), 1);
}

#[test]
fn progress_is_accepted_and_recorded_with_the_flash() {
    let (_d, s, image_ref) = server_with_image();
    assign(&s, "bty-flash-once", Some(&image_ref), Some("S1"));
    script(&s);
    boot_kernel(&s);
    let ct = [("Content-Type", "application/json")];
    let body = json!({ "bytes_written": 4096, "total_bytes": 4096, "phase": "write", "rate": 1 });
    assert_eq!(
        s.raw("POST", &format!("/pxe/{MAC}/progress"), &ct, body.to_string().into_bytes()).status,
        204
    );
    assert_eq!(status(&s, json!({ "status": "done" })), 204);
    let m = s.get(&format!("/machines/{MAC}")).json();
    assert_eq!(m["last_flash_bytes"], 4096);
    assert!(m["last_flash_seconds"].as_f64().is_some());
}

#[test]
fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
    let dir = scratch();
    let trusting = WebServer::start_in(&dir.path().join("a"), &[("BTY_SERVER_TRUSTED_PROXY", "127.0.0.1")]);
    let xff = [("X-Forwarded-For", "10.1.2.3, 127.0.0.1")];
    assert_eq!(trusting.raw("GET", &format!("/pxe/{MAC}"), &xff, vec![]).status, 200);
    let mut trusting = trusting;
    trusting.login();
    assert_eq!(trusting.get(&format!("/machines/{MAC}")).json()["last_seen_ip"], "10.1.2.3");
    let mut plain = WebServer::start_in(&dir.path().join("b"), &[]);
    assert_eq!(plain.raw("GET", &format!("/pxe/{MAC}"), &xff, vec![]).status, 200);
    plain.login();
    assert_eq!(plain.get(&format!("/machines/{MAC}")).json()["last_seen_ip"], "127.0.0.1");
}

#[test]
fn events_beyond_the_retention_are_pruned() {
    let dir = scratch();
    let state = dir.path().join("state");
    let env = [("BTY_TUNING_EVENTS_KEEP_MAX", "5")];
    let mut s = WebServer::start_in(&state, &env);
    for _ in 0..20 {
        assert_eq!(s.raw("GET", &format!("/pxe/{MAC}"), &[], vec![]).status, 200);
    }
    s.terminate();
    // Pruning runs at start (and hourly).
    let mut s = WebServer::start_in(&state, &env);
    s.login();
    // The pruning thread runs right after start; wait for it rather than guess how long it takes.
    let mut n = usize::MAX;
    for _ in 0..200 {
        n = s.get("/events?limit=500").json()["events"].as_array().unwrap().len();
        if n <= 6 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(n <= 6, "kept {n} events (wrote 40)");
}

#[test]
fn the_machine_delta_setting_is_on_by_default_goes_into_the_plan_and_is_audited() {
    let (_d, s, image_ref) = server_with_image();
    assign(&s, "bty-flash-once", Some(&image_ref), Some("S1"));
    let m = s.get(&format!("/machines/{MAC}")).json();
    assert_eq!(m["delta"], true, "on by default: {m}");
    assert_eq!(plan(&s)["delta"], true);
    // Off through the API: the plan says so, the change is audited, the cycle goes on.
    let cycle_before = script(&s);
    let body = json!({ "boot_mode": "bty-flash-once", "bty_image_ref": image_ref, "target_disk_serial": "S1",
        "labels": ["rack-1"], "delta": false });
    let r = s.put_json(&format!("/machines/{MAC}"), &body);
    assert_eq!((r.status, &r.json()["delta"]), (200, &json!(false)), "{}", r.text());
    assert_eq!(plan(&s)["delta"], false);
    assert!(is_flasher(&cycle_before) && is_flasher(&script(&s)));
    let events = s.get(&format!("/events?subject_id={MAC}&kind=machine.upserted")).json();
    assert_eq!(events["events"][0]["details"]["delta"], false, "{events}");
    // A script that predates the field does not turn it back on; a bad value is refused.
    assign(&s, "bty-flash-once", Some(&image_ref), Some("S1"));
    assert_eq!(s.get(&format!("/machines/{MAC}")).json()["delta"], false);
    let r =
        s.put_json(&format!("/machines/{MAC}"), &json!({ "boot_mode": "bty-flash-once", "delta": "yes" }));
    assert_eq!(r.status, 422, "{}", r.text());
}

#[test]
fn status_figures_are_kept_with_the_flash_and_an_old_agents_status_still_works() {
    let (_d, s, image_ref) = server_with_image();
    assign(&s, "bty-flash-always", Some(&image_ref), Some("S1"));
    script(&s);
    boot_kernel(&s);
    let figures = json!({ "image_bytes": 2u64 << 30, "bytes_fetched": 37u64 << 20, "bytes_written": 35u64 << 20,
        "chunks_compared": 2048, "chunks_unchanged": 2011, "chunks_fetched": 37 });
    assert_eq!(status(&s, json!({ "status": "done", "figures": figures })), 204);
    let m = s.get(&format!("/machines/{MAC}")).json();
    assert_eq!(m["last_flash_figures"], figures, "{m}");
    let done = s.get(&format!("/events?subject_id={MAC}&kind=machine.flashed")).json();
    assert_eq!(done["events"][0]["details"]["bytes_fetched"], 37u64 << 20, "{done}");
    let page = s.get(&format!("/ui/machines/{MAC}")).text();
    assert!(page.contains("fetched 37.0 MiB of 2.0 GiB, wrote 35.0 MiB"), "{page}");
    assert!(page.contains("2011 of 2048 chunks unchanged, 37 fetched"), "{page}");
    // The next cycle, by an agent that reports no figures: the status is taken and the old
    // figures are not shown as this flash's.
    script(&s);
    script(&s);
    boot_kernel(&s);
    assert_eq!(status(&s, json!({ "status": "done" })), 204);
    assert_eq!(s.get(&format!("/machines/{MAC}")).json()["last_flash_figures"], json!(null));
    assert!(!s.get(&format!("/ui/machines/{MAC}")).text().contains("last-flash-figures"));
    // Figures in the last progress post count when the status comes without them.
    script(&s);
    script(&s);
    boot_kernel(&s);
    let full = json!({ "image_bytes": 4096, "bytes_fetched": 4096, "bytes_written": 4096 });
    let p = json!({ "bytes_written": 4096, "total_bytes": 4096, "phase": "done", "figures": full });
    let ct = [("Content-Type", "application/json")];
    assert_eq!(s.raw("POST", &format!("/pxe/{MAC}/progress"), &ct, p.to_string().into_bytes()).status, 204);
    assert_eq!(status(&s, json!({ "status": "done" })), 204);
    assert_eq!(s.get(&format!("/machines/{MAC}")).json()["last_flash_figures"], full);
    let page = s.get(&format!("/ui/machines/{MAC}")).text();
    assert!(
        page.contains("fetched 4.0 KiB of 4.0 KiB, wrote 4.0 KiB") && page.contains("whole image"),
        "{page}"
    );
}
