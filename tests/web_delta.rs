//! bty-web's store keeps images delta-ready: a gzip upload gets a chunk index and a seekable
//! zstd copy in the background, both served beside the image (with Range), the listing says
//! `delta_ready`, and `bty flash --delta` of the store URL fetches only changed chunks while
//! the original stays the image and its digest the identity.

mod common;
use common::httpd::noise;
use common::webserver::WebServer;
use common::*;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn a_gzip_upload_becomes_delta_ready_and_flashes_by_chunk() {
    let dir = scratch();
    let s = WebServer::start_logged_in(&dir.path().join("state"));
    let mut disk = noise(6 << 20, 9);
    disk[(2 << 20)..(4 << 20)].fill(0);
    let raw = dir.path().join("disk.img");
    std::fs::write(&raw, &disk).unwrap();
    let gz = {
        let out = std::process::Command::new("gzip").arg("-c").arg(&raw).output().unwrap();
        assert!(out.status.success());
        out.stdout
    };
    let r = s.send("PUT", "/images/disk.img.gz", &[], gz.clone());
    assert_eq!(r.status, 201, "{}", r.text());
    let e = r.json();
    let url = e["url"].as_str().unwrap().to_string();
    let sha = e["sha256"].as_str().unwrap().to_string();
    // The background indexer: within a few sweeps.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !s.raw("GET", "/images", &[], vec![]).json()[0]["delta_ready"].as_bool().unwrap_or(false) {
        assert!(Instant::now() < deadline, "never became delta-ready: {:?}", s.log_lines());
        std::thread::sleep(Duration::from_millis(200));
    }
    // The original is served unchanged; the copy with Range.
    let path = url.split_once("/images/").map(|(_, p)| format!("/images/{p}")).unwrap();
    assert_eq!(s.raw("GET", &path, &[], vec![]).body, gz);
    let part = s.raw("GET", &format!("{path}.seekable.zst"), &[("Range", "bytes=0-3")], vec![]);
    assert_eq!(part.status, 206);
    assert_eq!(part.body, [0x28, 0xb5, 0x2f, 0xfd], "a zstd frame");
    assert_eq!(s.raw("GET", &format!("{path}.index"), &[], vec![]).body[..8], *b"BTYINDEX");
    // A target one chunk away from the image: one chunk fetched, the digest of the original
    // (as a plan's disk_image_sha would give it) accepted as the identity, and so is the
    // original's format (the index locates the seekable copy, which it describes).
    let t = dir.path().join("target.bin");
    let mut near = disk.clone();
    near[(5 << 20) + 17] ^= 1;
    std::fs::write(&t, &near).unwrap();
    let out = bty()
        .args(["flash", "--delta", "--yes", "--json", "--format", "gz", "--sha256", &sha, &url])
        .arg(&t)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(std::fs::read(&t).unwrap(), disk, "the target holds the image");
    let last: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    let net = &last["network_delta"];
    assert_eq!(net["chunks_fetched"], 1, "{last}");
    // One frame of incompressible data: the chunk plus its frame header and checksum.
    assert!(net["bytes_fetched"].as_u64().unwrap() <= (1 << 20) + 64, "{last}");
    // Deleting the image removes its sidecars.
    let del = s.send("DELETE", &format!("/images/{}", e["ref"].as_str().unwrap()), &[], vec![]);
    assert_eq!(del.status, 204);
    let sidecars = dir.path().join("state/images/.delta");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(&sidecars).map(|d| d.count()).unwrap_or(0) > 0 {
        assert!(Instant::now() < deadline, "sidecars left behind");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs the real plan agent once against `s` for `mac`, with `target` as the disk `S1`.
fn run_agent(s: &WebServer, mac: &str, target: &std::path::Path) -> String {
    let out = bty()
        .args(["plan-agent", "--server", &s.url(""), "--mac", mac, "--no-reboot", "--target-file"])
        .arg(format!("S1={}", target.display()))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    text(&out)
}

#[test]
fn the_agent_reflashes_by_delta_per_machine_and_the_server_keeps_and_shows_the_figures() {
    let dir = scratch();
    let s = WebServer::start_logged_in(&dir.path().join("state"));
    let mac = "52:54:00:de:17:01";
    for name in ["bty-netboot-x86_64.vmlinuz", "bty-netboot-x86_64.initrd"] {
        assert_eq!(s.send("PUT", &format!("/boot/{name}"), &[], b"x".to_vec()).status, 200);
    }
    let mut disk = noise(6 << 20, 17);
    disk[(3 << 20)..(4 << 20)].fill(0);
    let r = s.send("PUT", "/images/disk.img", &[], disk.clone());
    assert_eq!(r.status, 201, "{}", r.text());
    let image_ref = r.json()["ref"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !s.get("/images").json()[0]["delta_ready"].as_bool().unwrap_or(false) {
        assert!(Instant::now() < deadline, "never became delta-ready: {:?}", s.log_lines());
        std::thread::sleep(Duration::from_millis(200));
    }
    let body = serde_json::json!({"boot_mode": "bty-flash-once", "bty_image_ref": image_ref, "target_disk_serial": "S1"});
    assert_eq!(s.put_json(&format!("/machines/{mac}"), &body).status, 200);
    let target = dir.path().join("disk.bin");
    std::fs::write(&target, vec![0u8; 8 << 20]).unwrap();
    let figures = || s.get(&format!("/machines/{mac}")).json()["last_flash_figures"].clone();
    let page = || s.get(&format!("/ui/machines/{mac}")).text();
    let reflash = || {
        let r = s.send("POST", &format!("/machines/{mac}/reflash"), &[], vec![]);
        assert_eq!(r.status, 200, "{}", r.text());
    };

    // First flash onto a blank disk, by delta: every data chunk fetched, the zero ones not.
    run_agent(&s, mac, &target);
    assert_eq!(
        sha256_prefix(&target, disk.len() as u64),
        image_ref,
        "the disk holds the image (an upload's ref is its sha256)"
    );
    let f = figures();
    assert_eq!((f["chunks_compared"].as_u64(), f["chunks_fetched"].as_u64()), (Some(6), Some(5)), "{f}");
    assert_eq!(f["image_bytes"], 6u64 << 20);
    assert_eq!(f["bytes_fetched"], 5u64 << 20, "raw chunks are fetched as they are stored: {f}");

    // The per-job reflash of an unchanged disk fetches and writes nothing.
    reflash();
    let log = run_agent(&s, mac, &target);
    let f = figures();
    assert_eq!(
        (f["chunks_unchanged"].as_u64(), f["bytes_fetched"].as_u64()),
        (Some(6), Some(0)),
        "{f}\n{log}"
    );
    assert_eq!(f["bytes_written"], 0);
    assert!(page().contains("fetched 0 B of 6.0 MiB, wrote 0 B"), "{}", page());

    // Delta off for this machine: the whole image is streamed and written, and said so.
    let mut body = body;
    body["delta"] = false.into();
    assert_eq!(s.put_json(&format!("/machines/{mac}"), &body).status, 200);
    reflash();
    run_agent(&s, mac, &target);
    let f = figures();
    assert_eq!(f["chunks_compared"], serde_json::Value::Null, "{f}");
    assert_eq!(f["bytes_fetched"], 6u64 << 20, "{f}");
    assert_eq!(sha256_prefix(&target, disk.len() as u64), image_ref);
    let text = page();
    assert!(
        text.contains("fetched 6.0 MiB of 6.0 MiB, wrote 5.0 MiB") && text.contains("whole image"),
        "{text}"
    );
}
