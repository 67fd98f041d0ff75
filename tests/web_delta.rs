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
    // (as a plan's disk_image_sha would give it) accepted as the identity.
    let t = dir.path().join("target.bin");
    let mut near = disk.clone();
    near[(5 << 20) + 17] ^= 1;
    std::fs::write(&t, &near).unwrap();
    let out = bty()
        .args(["flash", "--delta", "--yes", "--json", "--sha256", &sha, &url])
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
