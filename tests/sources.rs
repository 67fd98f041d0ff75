//! HTTP(S) sources against a real server on loopback (`common::httpd`): resume after cuts and
//! stalls, servers without Range support, objects that change or lie about their length,
//! retries, redirects, random access and credentials that never show.
//!
//! These run at the library level (`bty::source::open`) and compare the sha256 of what the
//! stream yields with the sha256 of the served bytes.

mod common;

use bty::source::{self, HashingReader};
use bty::ErrorKind;
use common::httpd::{noise, Httpd, Resource};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::time::Duration;

/// The stall timeout is read once per process; every test here runs with a short one.
fn setup() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::env::set_var("BTY_HTTP_STALL_SECS", "1"));
}

fn sha(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Opens `url` and streams it through a hashing reader; returns the digest and byte count.
fn stream_digest(url: &str) -> bty::Result<([u8; 32], u64)> {
    let src = source::open(url)?;
    let mut r = HashingReader::new(src.open_stream(0)?);
    std::io::copy(&mut r, &mut std::io::sink())?;
    let h = r.digest_handle();
    Ok((h.finish(), h.bytes()))
}

#[test]
fn stream_survives_two_cuts_and_is_byte_identical() {
    setup();
    let srv = Httpd::start();
    let body = noise(3 << 20, 1);
    srv.put("/disk.img", Resource { cuts: vec![700_000, 2_000_000], ..Resource::new(body.clone()) });
    let (digest, n) = stream_digest(&srv.url("/disk.img")).unwrap();
    assert_eq!((digest, n), (sha(&body), body.len() as u64));
    let ranges: Vec<_> = srv.log().into_iter().filter_map(|l| l.range).collect();
    assert_eq!(ranges, ["bytes=0-0", "bytes=700000-", "bytes=2000000-"]);
    let if_range: Vec<_> = srv.log().into_iter().filter_map(|l| l.if_range).collect();
    assert_eq!(if_range, ["\"v1\"", "\"v1\""], "resumes are guarded by the ETag");
}

#[test]
fn a_stalled_server_times_out_and_the_stream_resumes() {
    setup();
    let srv = Httpd::start();
    let body = noise(2 << 20, 2);
    srv.put(
        "/disk.img",
        Resource { stalls: vec![(1_000_000, Duration::from_secs(4))], ..Resource::new(body.clone()) },
    );
    let (digest, _) = stream_digest(&srv.url("/disk.img")).unwrap();
    assert_eq!(digest, sha(&body));
    assert!(srv.log().iter().any(|l| l.range.as_deref() == Some("bytes=1000000-")), "{:?}", srv.log());
}

#[test]
fn without_range_support_a_cut_before_the_first_byte_restarts_from_zero() {
    setup();
    let srv = Httpd::start();
    let body = noise(1 << 20, 3);
    srv.put("/disk.img", Resource { ranges: false, cuts: vec![0], ..Resource::new(body.clone()) });
    let (digest, _) = stream_digest(&srv.url("/disk.img")).unwrap();
    assert_eq!(digest, sha(&body));
}

#[test]
fn without_range_support_a_cut_after_bytes_were_yielded_fails_clearly() {
    setup();
    let srv = Httpd::start();
    srv.put("/disk.img", Resource { ranges: false, cuts: vec![300_000], ..Resource::new(noise(1 << 20, 4)) });
    let e = stream_digest(&srv.url("/disk.img")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Failed);
    assert!(e.to_string().contains("cannot resume at byte 300000"), "{e}");
}

#[test]
fn an_object_that_changes_between_requests_fails_clearly() {
    setup();
    let srv = Httpd::start();
    let v1 = noise(1 << 20, 5);
    let v2 = noise(1 << 20, 6);
    // Request 1 is the probe, 2 the stream (cut), 3 the resume, which sees version 2.
    srv.put(
        "/disk.img",
        Resource { cuts: vec![500_000], change_after: Some((2, v2, "\"v2\"".into())), ..Resource::new(v1) },
    );
    let e = stream_digest(&srv.url("/disk.img")).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("changed on the server") && msg.contains("\"v2\""), "{msg}");
}

#[test]
fn a_body_shorter_than_its_content_length_fails_clearly() {
    setup();
    let srv = Httpd::start();
    let body = noise(100_000, 7);
    srv.put(
        "/lie.img",
        Resource { claimed_len: Some(150_000), ranges: false, ..Resource::new(body.clone()) },
    );
    srv.put("/lie-ranged.img", Resource { claimed_len: Some(150_000), ..Resource::new(body) });
    let e = stream_digest(&srv.url("/lie.img")).unwrap_err();
    assert!(e.to_string().contains("cannot resume at byte 100000"), "{e}");
    // With Range support the probe learns the true length from Content-Range; the full
    // answer's Content-Length then disagrees with it.
    let e = stream_digest(&srv.url("/lie-ranged.img")).unwrap_err();
    assert!(e.to_string().contains("100000 became 150000"), "{e}");
}

#[test]
fn a_body_longer_than_its_content_length_is_caught_by_the_digest() {
    setup();
    let srv = Httpd::start();
    let body = noise(100_000, 8);
    srv.put(
        "/long.img",
        Resource { claimed_len: Some(60_000), ranges: false, ..Resource::new(body.clone()) },
    );
    // HTTP/1.1 ends the body at Content-Length; the extra bytes are never read. What the
    // stream yields therefore differs from the object, and a known digest refuses it.
    let (digest, n) = stream_digest(&srv.url("/long.img")).unwrap();
    assert_eq!(n, 60_000);
    assert_ne!(digest, sha(&body));
}

#[test]
fn transient_statuses_are_retried_with_backoff() {
    setup();
    let srv = Httpd::start();
    let body = noise(10_000, 9);
    srv.put("/disk.img", Resource { statuses: [503, 429, 502].into(), ..Resource::new(body.clone()) });
    let (digest, _) = stream_digest(&srv.url("/disk.img")).unwrap();
    assert_eq!(digest, sha(&body));
    assert_eq!(srv.log().len(), 5, "three refusals, the probe, the stream");
}

#[test]
fn a_missing_object_is_not_found_without_retries() {
    setup();
    let srv = Httpd::start();
    let e = source::open(&srv.url("/nope.img")).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("HTTP 404"), "{e}");
    assert_eq!(srv.log().len(), 1);
}

#[test]
fn redirects_are_followed() {
    setup();
    let srv = Httpd::start();
    let body = noise(50_000, 10);
    srv.put("/old.img", Resource { redirect_to: Some("/new.img".into()), ..Default::default() });
    srv.put("/new.img", Resource::new(body.clone()));
    let (digest, _) = stream_digest(&srv.url("/old.img")).unwrap();
    assert_eq!(digest, sha(&body));
}

#[test]
fn read_at_uses_range_requests_and_caches_blocks() {
    setup();
    let srv = Httpd::start();
    let body = noise(3 << 20, 11);
    srv.put("/disk.qcow2", Resource::new(body.clone()));
    let src = source::open(&srv.url("/disk.qcow2")).unwrap();
    assert!(src.supports_random_access());
    let mut buf = vec![0u8; 4096];
    for &off in &[0u64, 512, 70_000, 1_048_000, 3_000_000, 100] {
        let n = src.read_at(off, &mut buf).unwrap();
        assert_eq!(&buf[..n], &body[off as usize..off as usize + n], "at {off}");
        assert_eq!(n, 4096);
    }
    // A read that spans two blocks, and one past the end.
    let mut wide = vec![0u8; 10_000];
    assert_eq!(src.read_at((1 << 20) - 5_000, &mut wide).unwrap(), 10_000);
    assert_eq!(&wide[..], &body[(1 << 20) - 5_000..(1 << 20) + 5_000]);
    assert_eq!(src.read_at(body.len() as u64, &mut buf).unwrap(), 0);
    let gets = srv.log().len();
    assert_eq!(gets, 1 + 3, "the probe and one Range GET per 1 MiB block: {:?}", srv.log());
}

#[test]
fn read_at_without_range_support_says_what_to_do() {
    setup();
    let srv = Httpd::start();
    srv.put("/disk.qcow2", Resource { ranges: false, ..Resource::new(noise(1000, 12)) });
    let src = source::open(&srv.url("/disk.qcow2")).unwrap();
    assert!(!src.supports_random_access());
    let e = src.read_at(0, &mut [0u8; 16]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(e.to_string().contains("download the file"), "{e}");
}

#[test]
fn credentials_in_urls_are_sent_but_never_shown() {
    setup();
    let srv = Httpd::start();
    srv.put("/disk.img", Resource::new(noise(1000, 13)));
    let url = format!("http://alice:s3cret@{}/disk.img", srv.addr);
    let src = source::open(&url).unwrap();
    assert!(!src.describe().contains("s3cret"), "{}", src.describe());
    let mut r = src.open_stream(0).unwrap();
    r.read_to_end(&mut Vec::new()).unwrap();
    assert_eq!(srv.log()[0].authorization.as_deref(), Some("Basic YWxpY2U6czNjcmV0"));
    let e = source::open(&format!("http://alice:s3cret@{}/missing.img", srv.addr)).err().unwrap();
    assert!(!e.to_string().contains("s3cret"), "{e}");
}

#[test]
fn an_unreachable_host_fails_after_bounded_retries() {
    setup();
    // Bind and drop a listener so the port is known to be closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let e = source::open(&format!("http://127.0.0.1:{port}/x.img")).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Failed);
    let msg = e.to_string();
    assert!(msg.contains("gave up after 6 attempts") && msg.contains(&port.to_string()), "{msg}");
}

#[test]
fn the_file_name_comes_from_the_last_path_segment() {
    setup();
    let srv = Httpd::start();
    srv.put("/dir/debian.img.zst", Resource::new(noise(10, 14)));
    let src = source::open(&format!("{}?token=abc", srv.url("/dir/debian.img.zst"))).unwrap();
    assert_eq!(src.file_name(), "debian.img.zst");
    assert_eq!(src.len(), Some(10));
}
