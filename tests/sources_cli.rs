//! The real binary reading remote sources: `bty inspect` with http(s) URLs (including qcow2
//! over Range requests), `oras://` refs from a loopback registry, and catalog names.

mod common;

use common::httpd::{noise, Httpd, Resource};
use common::nginx::Nginx;
use common::registry::{digest, LayerSpec, Registry};
use common::*;
use std::process::Command;

/// `bty inspect ARGS --json` with an empty image root; returns (exit code, JSON, stderr).
fn inspect(args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let root = scratch();
    let out =
        bty().arg("inspect").args(args).arg("--json").env("BTY_IMAGE_ROOT", root.path()).output().unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code(), json, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A zstd-compressed image made with the zstd tool.
fn zstd_image(dir: &std::path::Path) -> Vec<u8> {
    let raw = dir.join("disk.img");
    std::fs::write(&raw, noise(2 << 20, 31)).unwrap();
    let status = Command::new("zstd").args(["-q", "-f"]).arg(&raw).status().unwrap();
    assert!(status.success());
    std::fs::read(dir.join("disk.img.zst")).unwrap()
}

#[test]
fn inspect_reads_and_hashes_an_image_over_http() {
    let dir = scratch();
    let zst = zstd_image(dir.path());
    let srv = Httpd::start();
    srv.put("/disk.img.zst", Resource { cuts: vec![1_000_000], ..Resource::new(zst.clone()) });
    let (code, json, err) = inspect(&["--hash", &srv.url("/disk.img.zst")]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(json["format"], "zst");
    assert_eq!(json["compressed_size"], zst.len());
    assert_eq!(format!("sha256:{}", json["sha256"].as_str().unwrap_or("")), digest(&zst));
}

#[test]
fn inspect_reads_a_qcow2_over_range_requests() {
    let dir = scratch();
    let q = dir.path().join("disk.qcow2");
    let status =
        Command::new("qemu-img").args(["create", "-q", "-f", "qcow2"]).arg(&q).arg("64M").status().unwrap();
    assert!(status.success());
    let srv = Httpd::start();
    srv.put("/disk.qcow2", Resource::new(std::fs::read(&q).unwrap()));
    let (code, json, err) = inspect(&[&srv.url("/disk.qcow2")]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(json["format"], "qcow2");
    assert_eq!(json["virtual_size"], 64 << 20);
    // The tables are read with Range requests (and If-Range), not by downloading the file.
    let ranged = srv.log().iter().filter(|l| l.range.as_deref().is_some_and(|r| r != "bytes=0-0")).count();
    assert!(ranged >= 1, "{:?}", srv.log());
}

#[test]
fn inspect_resolves_an_oras_ref() {
    assert!(Registry::available(), "docker-registry is not installed; run tests/deps.sh");
    let dir = scratch();
    let zst = zstd_image(dir.path());
    let reg = Registry::start();
    reg.push_artifact(
        "bty/os",
        "v1",
        &[LayerSpec { bytes: &zst, media_type: "application/zstd", title: Some("os.img.zst") }],
    );
    let (code, json, err) = inspect(&["--hash", &reg.oras("bty/os", "v1")]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(json["format"], "zst");
    assert_eq!(format!("sha256:{}", json["sha256"].as_str().unwrap_or("")), digest(&zst));
}

#[test]
fn inspect_looks_a_name_up_in_a_catalog() {
    let dir = scratch();
    let zst = zstd_image(dir.path());
    let srv = Httpd::start();
    srv.put("/os.img.zst", Resource::new(zst));
    let catalog = format!("version = 1\n[[images]]\nname = \"tiny\"\nsrc = \"{}\"\n", srv.url("/os.img.zst"));
    srv.put("/catalog.toml", Resource::new(catalog.into_bytes()));
    let (code, json, err) = inspect(&["tiny", "--catalog", &srv.url("/catalog.toml")]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(json["source"], srv.url("/os.img.zst"));
    let (code, _, err) = inspect(&["other", "--catalog", &srv.url("/catalog.toml")]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no image named \"other\""), "{err}");
}

#[test]
fn an_unknown_name_without_a_catalog_says_to_give_one() {
    let (code, _, err) = inspect(&["no-such-image-anywhere"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--catalog SRC"), "{err}");
}

#[test]
fn an_unreachable_host_is_exit_1() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (code, _, err) = inspect(&[&format!("http://127.0.0.1:{port}/x.img")]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("connection failed"), "{err}");
}

#[test]
fn https_from_a_private_ca_needs_ssl_cert_file_and_works_with_it() {
    let (root, work) = (scratch(), scratch());
    let zst = zstd_image(root.path());
    let tls = Nginx::start_tls(root.path(), work.path());
    let url = format!("https://{}/disk.img.zst", tls.addr);
    let (code, _, err) = inspect(&[&url]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("TLS failed") && err.contains("SSL_CERT_FILE"), "{err}");

    let empty = scratch();
    let out = bty()
        .args(["inspect", "--json", "--hash", &url])
        .env("BTY_IMAGE_ROOT", empty.path())
        .env("SSL_CERT_FILE", &tls.ca)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(format!("sha256:{}", json["sha256"].as_str().unwrap_or("")), digest(&zst));
}
