//! Catalog TOML v1: every validation rule of the reference with its message, defaults and
//! round trips, the local image root scan and merge, and `bty catalog` loading the same
//! catalog from a file, over HTTP and from a real OCI registry.

mod common;

use bty::catalog::{self, parse, to_toml};
use bty::ErrorKind;
use common::httpd::{Httpd, Resource};
use common::registry::{LayerSpec, Registry};
use common::*;

const HEX: &str = "ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789";

/// Asserts that `text` is refused as invalid input with a message containing `needle`.
fn refused(text: &str, needle: &str) {
    let e = parse(text).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{text}");
    let msg = e.to_string();
    assert!(msg.contains("catalog") && msg.contains(needle), "{text:?}\n  gave: {msg}\n  wanted: {needle}");
}

fn one(entry: &str) -> String {
    format!("version = 1\n[[images]]\n{entry}\n")
}

#[test]
fn invalid_toml_is_refused_with_its_line() {
    refused("version = 1\n[[images]\nname = 'x'\n", "line 2");
}

#[test]
fn version_must_be_the_integer_1() {
    refused("[[images]]\nname='a'\nsrc='https://h/a.img'\n", "missing `version = 1`");
    refused("version = 2\n", "unsupported version 2");
    refused("version = \"1\"\n", "unsupported version \"1\"");
}

#[test]
fn images_must_be_an_array_of_tables() {
    refused("version = 1\nimages = \"x\"\n", "`images` must be an array");
    refused("version = 1\nimages = [1]\n", "images[0] is not a table");
    assert!(parse("version = 1\n").unwrap().entries.is_empty(), "no images is an empty catalog");
}

#[test]
fn name_and_src_are_required_strings() {
    refused(&one("src = 'https://h/a.img'"), "images[0]: missing required key `name`");
    refused(&one("name = 'a'"), "images[0] (\"a\"): missing required key `src`");
    refused(&one("name = 3\nsrc = 'https://h/a.img'"), "`name` must be a string, not integer");
    refused(&one("name = ''\nsrc = 'https://h/a.img'"), "`name` is empty");
}

#[test]
fn sha256_must_be_64_hex_and_is_lower_cased() {
    refused(
        &one("name = 'a'\nsrc = 'https://h/a.img'\nsha256 = 'xyz'"),
        "sha256 \"xyz\" must be 64 hex characters",
    );
    let c = parse(&one(&format!("name = 'a'\nsrc = 'https://h/a.img'\nsha256 = '{HEX}'"))).unwrap();
    assert_eq!(c.entries[0].sha256.as_deref(), Some(HEX.to_ascii_lowercase().as_str()));
}

#[test]
fn ref_must_equal_the_sha256_of_the_canonical_src() {
    let good = catalog::image_ref("https://h/a.img").unwrap();
    let ok = parse(&one(&format!("name = 'a'\nsrc = 'HTTPS://H:443/a.img'\nref = '{good}'"))).unwrap();
    assert_eq!(ok.entries[0].image_ref.as_deref(), Some(good.as_str()));
    refused(
        &one(&format!("name = 'a'\nsrc = 'https://h/b.img'\nref = '{good}'")),
        "does not match sha256(canonical src)",
    );
    refused(
        &one(&format!("name = 'a'\nsrc = 'oras://h/norepo'\nref = '{good}'")),
        "ref given but src cannot be canonicalised",
    );
}

#[test]
fn names_are_unique() {
    let text = "version = 1\n[[images]]\nname='a'\nsrc='https://h/1.img'\n[[images]]\nname='a'\nsrc='https://h/2.img'\n";
    refused(text, "images[1]: duplicate name \"a\" (first used by images[0])");
}

#[test]
fn file_and_other_schemes_are_refused_as_src() {
    refused(&one("name = 'a'\nsrc = 'file:///srv/a.img'"), "file:// src is not allowed");
    refused(&one("name = 'a'\nsrc = '/srv/a.img'"), "must start with http://, https:// or oras://");
}

#[test]
fn unknown_keys_are_ignored_and_defaults_come_from_the_name() {
    let c = parse(&one("name = 'debian-12-amd64.img.zst'\nsrc = 'https://h/d'\nresolved_src = 'x'\nnetboot_ref = 'y'\nsize_bytes = 42"))
        .unwrap();
    let e = &c.entries[0];
    assert_eq!(e.format.as_deref(), Some("img.zst"));
    assert_eq!(e.arch.as_deref(), Some("x86_64"));
    assert_eq!(e.size_bytes, Some(42));
    assert_eq!(e.image_ref, Some(catalog::image_ref("https://h/d").unwrap()));
    refused(
        &one("name = 'a'\nsrc = 'https://h/a.img'\nsize_bytes = -1"),
        "size_bytes must be a non-negative integer",
    );
}

#[test]
fn to_toml_round_trips_through_parse() {
    let text = format!(
        "version = 1\n[[images]]\nname='a'\nsrc='https://h/a.img.gz'\nsha256='{}'\nsize_bytes=10\ndescription='A \"quoted\" one'\narch='arm64'\n\
         [[images]]\nname='b'\nsrc='oras://ghcr.io/o/r:v1'\n",
        HEX.to_ascii_lowercase()
    );
    let first = parse(&text).unwrap();
    let again = parse(&to_toml(&first.entries)).unwrap();
    assert_eq!(first, again);
    assert!(to_toml(&[]).starts_with("version = 1"));
}

#[test]
fn the_local_scan_lists_flashable_files_sorted_with_sizes_and_sidecar_digests() {
    let root = scratch();
    let p = root.path();
    std::fs::write(p.join("b.img"), vec![0u8; 1000]).unwrap();
    std::fs::write(p.join("b.img.sha256"), format!("{HEX}  b.img\n")).unwrap();
    std::fs::write(p.join("a-aarch64.img.zst"), b"zz").unwrap();
    std::fs::write(p.join("c.tar.gz"), b"t").unwrap();
    std::fs::write(p.join("notes.txt"), b"n").unwrap();
    std::fs::create_dir(p.join("d.img")).unwrap();
    std::os::unix::fs::symlink(p.join("b.img"), p.join("link.img")).unwrap();
    let entries = catalog::scan_local(p).unwrap();
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["a-aarch64.img.zst", "b.img"]);
    assert_eq!(entries[0].arch.as_deref(), Some("arm64"));
    assert_eq!(entries[1].size_bytes, Some(1000));
    assert_eq!(entries[1].sha256.as_deref(), Some(HEX.to_ascii_lowercase().as_str()));
    assert_eq!(entries[1].src, p.join("b.img").display().to_string());
    assert!(catalog::scan_local(&p.join("missing")).unwrap().is_empty());
}

#[test]
fn merge_keeps_local_entries_first_and_drops_a_remote_namesake() {
    let root = scratch();
    std::fs::write(root.path().join("a.img"), b"local").unwrap();
    let local = catalog::scan_local(root.path()).unwrap();
    let remote = parse("version = 1\n[[images]]\nname='z'\nsrc='https://h/z.img'\n[[images]]\nname='a.img'\nsrc='https://h/a.img'\n")
        .unwrap()
        .entries;
    let merged = catalog::merge(local, remote);
    let got: Vec<(&str, bool)> =
        merged.iter().map(|e| (e.name.as_str(), e.src.starts_with("https"))).collect();
    assert_eq!(got, [("a.img", false), ("z", true)]);
}

const CATALOG: &str = "version = 1\n\n[[images]]\nname = \"debian\"\nsrc = \"https://example.com/debian-12-amd64.img.zst\"\nsize_bytes = 123\n\n[[images]]\nname = \"pinned\"\nsrc = \"oras://ghcr.io/owner/os:v1\"\ndescription = \"from a registry\"\n";

/// `bty catalog --json` with an empty image root; returns (exit code, parsed stdout, stderr).
fn catalog_json(spec: &str) -> (Option<i32>, serde_json::Value, String) {
    let root = scratch();
    let out = bty()
        .args(["catalog", "--json", "--catalog", spec])
        .env("BTY_IMAGE_ROOT", root.path())
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code(), json, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_catalog_from_a_file_over_http_and_from_a_registry_gives_the_same_entries() {
    let dir = scratch();
    let file = dir.path().join("catalog.toml");
    std::fs::write(&file, CATALOG).unwrap();
    let srv = Httpd::start();
    srv.put("/catalog.toml", Resource::new(CATALOG.as_bytes().to_vec()));
    assert!(Registry::available(), "docker-registry is not installed; run tests/deps.sh");
    let reg = Registry::start();
    reg.push_artifact(
        "bty/catalog",
        "v1",
        &[LayerSpec {
            bytes: CATALOG.as_bytes(),
            media_type: "application/toml",
            title: Some("catalog.toml"),
        }],
    );

    let (code, from_file, err) = catalog_json(file.to_str().unwrap());
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(from_file["schema_version"], 1);
    assert_eq!(from_file["entries"].as_array().map(Vec::len), Some(2), "{from_file}");
    assert_eq!(from_file["entries"][0]["name"], "debian");
    assert_eq!(from_file["entries"][0]["format"], "img.zst");
    for spec in [srv.url("/catalog.toml"), reg.oras("bty/catalog", "v1")] {
        let (code, json, err) = catalog_json(&spec);
        assert_eq!(code, Some(0), "{spec}: {err}");
        assert_eq!(json["entries"], from_file["entries"], "{spec}");
    }
}

#[test]
fn the_human_table_lists_local_images_then_catalog_entries() {
    let dir = scratch();
    std::fs::write(dir.path().join("catalog.toml"), CATALOG).unwrap();
    let root = scratch();
    std::fs::write(root.path().join("local.img"), vec![0u8; 2048]).unwrap();
    let out = bty()
        .args(["catalog", "--catalog", dir.path().join("catalog.toml").to_str().unwrap()])
        .env("BTY_IMAGE_ROOT", root.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{stdout}");
    assert!(lines[1].starts_with("local.img") && lines[1].contains("2.0 KiB"), "{stdout}");
    assert!(lines[2].starts_with("debian") && lines[3].starts_with("pinned"), "{stdout}");
}

#[test]
fn a_non_toml_catalog_is_a_usage_error_naming_the_line() {
    let dir = scratch();
    let file = dir.path().join("catalog.toml");
    std::fs::write(&file, "version = 1\n[[images]\n").unwrap();
    let (code, _, err) = catalog_json(file.to_str().unwrap());
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("invalid TOML") && err.contains("line 2"), "{err}");
    std::fs::write(&file, [0xffu8, 0xfe, 0x00]).unwrap();
    let (code, _, err) = catalog_json(file.to_str().unwrap());
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not UTF-8"), "{err}");
}

#[test]
fn a_remote_catalog_over_4_mib_is_refused() {
    let srv = Httpd::start();
    let mut big = CATALOG.as_bytes().to_vec();
    big.extend(std::iter::repeat_n(b'#', 5 << 20));
    srv.put("/catalog.toml", Resource::new(big));
    let (code, _, err) = catalog_json(&srv.url("/catalog.toml"));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("larger than the 4 MiB limit"), "{err}");
}

#[test]
fn an_unreachable_catalog_host_fails_with_exit_1() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (code, _, err) = catalog_json(&format!("http://127.0.0.1:{port}/catalog.toml"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("connection failed") || err.contains("refused"), "{err}");
    let (code, _, err) = catalog_json("/nonexistent/catalog.toml");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("/nonexistent/catalog.toml"), "{err}");
}

#[test]
fn listings_never_show_credentials_from_a_src() {
    let dir = scratch();
    let file = dir.path().join("catalog.toml");
    std::fs::write(
        &file,
        "version = 1\n[[images]]\nname = 'p'\nsrc = 'https://bob:s3cret@example.com/p.img'\n",
    )
    .unwrap();
    for json in [false, true] {
        let root = scratch();
        let mut cmd = bty();
        cmd.args(["catalog", "--catalog", file.to_str().unwrap()]).env("BTY_IMAGE_ROOT", root.path());
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let all = text(&out);
        assert!(all.contains("https://example.com/p.img") && !all.contains("s3cret"), "{all}");
    }
}
