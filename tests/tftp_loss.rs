//! bty-tftp over a lossy path: a UDP proxy in the test drops every Nth datagram in each
//! direction, and real clients must still receive the exact bytes (retransmission, window
//! restarts, duplicate-ACK handling, all on the wire).

mod common;
mod tftp_support;

use std::process::Command;

use common::*;
use tftp_support::*;

/// Fetches a `len`-byte file with `client ARGS` through a proxy dropping every `nth` datagram.
/// Every loss without a window costs one retransmission timeout (1 s), so sizes stay small.
fn lossy_fetch(client: &str, args: &[&str], len: usize, nth: usize) {
    let root = scratch();
    write_random(&root.path().join("payload"), len, 99);
    let server = TftpServer::start(root.path(), &[]);
    let proxy = LossyProxy::start(server.addr, nth);
    let port = proxy.addr.port().to_string();
    let out = scratch();
    let dest = out.path().join("payload");
    let args: Vec<String> =
        args.iter().map(|a| a.replace("PORT", &port).replace("DEST", dest.to_str().unwrap())).collect();
    let result = Command::new(client).args(&args).output().expect("running the client");
    let dropped = proxy.stop();
    assert!(result.status.success(), "{client} {args:?}\n{}\nserver: {:?}", text(&result), server.log());
    assert!(
        dropped.iter().all(|&d| d > 0),
        "the proxy dropped nothing ({dropped:?}); the test proves nothing"
    );
    assert_eq!(sha256sum(&dest), sha256sum(&root.path().join("payload")));
}

#[test]
fn atftp_with_a_window_survives_packet_loss() {
    lossy_fetch(
        "atftp",
        &[
            "--option",
            "blksize 1024",
            "--option",
            "windowsize 8",
            "-g",
            "-r",
            "payload",
            "-l",
            "DEST",
            "127.0.0.1",
            "PORT",
        ],
        100_000,
        9,
    );
}

#[test]
fn tftp_hpa_survives_packet_loss() {
    lossy_fetch("tftp", &["127.0.0.1", "PORT", "-m", "binary", "-c", "get", "payload", "DEST"], 12_000, 9);
}

#[test]
fn curl_survives_packet_loss() {
    // curl derives the RFC 2349 timeout it asks for from its connect timeout (default: 6 s);
    // 2 s makes it ask for 1 s, so each lost packet costs a second, not six.
    lossy_fetch(
        "curl",
        &[
            "-sS",
            "--connect-timeout",
            "2",
            "--tftp-blksize",
            "1468",
            "-o",
            "DEST",
            "tftp://127.0.0.1:PORT/payload",
        ],
        20_000,
        7,
    );
}
