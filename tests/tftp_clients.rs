//! bty-tftp against the real TFTP clients firmware and admins use (tftp-hpa, atftp, curl) and a
//! raw client for the option sets firmware sends: every fetch must be byte-identical.

mod common;
mod tftp_support;

use std::path::Path;
use std::process::Command;

use common::*;
use tftp_support::*;

/// Sizes around the block boundaries at 512-byte blocks, plus a multi-window file.
const SIZES: [(&str, usize); 5] =
    [("empty", 0), ("one", 1), ("block", 512), ("block1", 513), ("multi", 300_000)];

/// A root holding one random file per entry of [`SIZES`].
fn root_with_sizes() -> tempfile::TempDir {
    let dir = scratch();
    for (i, (name, len)) in SIZES.iter().enumerate() {
        write_random(&dir.path().join(name), *len, i as u64 + 1);
    }
    dir
}

/// Runs a client command that should write `out`, then compares it with `original`.
fn assert_fetched(mut cmd: Command, original: &Path, out: &Path) {
    let result = cmd.output().expect("running the TFTP client");
    assert!(result.status.success(), "{cmd:?}\n{}", text(&result));
    // curl creates no file for an empty body.
    if !out.exists() && std::fs::metadata(original).unwrap().len() == 0 {
        return;
    }
    assert_eq!(sha256sum(out), sha256sum(original), "{cmd:?} fetched different bytes");
}

fn tftp_hpa(server: &TftpServer, mode: Option<&str>, name: &str, out: &Path) -> Command {
    let mut cmd = Command::new("tftp");
    cmd.args(["127.0.0.1", &server.port()]);
    if let Some(m) = mode {
        cmd.args(["-m", m]);
    }
    cmd.args(["-c", "get", name]).arg(out);
    cmd
}

fn atftp(server: &TftpServer, options: &[&str], name: &str, out: &Path) -> Command {
    let mut cmd = Command::new("atftp");
    for o in options {
        cmd.args(["--option", o]);
    }
    cmd.args(["-g", "-r", name, "-l"]).arg(out).args(["127.0.0.1", &server.port()]);
    cmd
}

#[test]
fn tftp_hpa_fetches_every_size_in_netascii_and_binary() {
    let root = root_with_sizes();
    let server = TftpServer::start(root.path(), &[]);
    let out = scratch();
    for (name, _) in SIZES {
        for mode in [None, Some("binary")] {
            let dest = out.path().join(format!("{name}-{mode:?}"));
            assert_fetched(tftp_hpa(&server, mode, name, &dest), &root.path().join(name), &dest);
        }
    }
}

#[test]
fn atftp_fetches_every_size_with_windowsize_blksize_and_tsize() {
    let root = root_with_sizes();
    let server = TftpServer::start(root.path(), &[]);
    let out = scratch();
    let option_sets: [&[&str]; 4] =
        [&["windowsize 16"], &["blksize 1428"], &["tsize 0"], &["blksize 1428", "windowsize 16", "tsize 0"]];
    for (name, _) in SIZES {
        for (i, options) in option_sets.iter().enumerate() {
            let dest = out.path().join(format!("{name}-{i}"));
            assert_fetched(atftp(&server, options, name, &dest), &root.path().join(name), &dest);
        }
    }
    // The combined set was negotiated as asked, not silently reduced.
    server.wait_for_log("blksize=1428 windowsize=16 tsize");
}

#[test]
fn curl_fetches_every_size_with_and_without_blksize() {
    let root = root_with_sizes();
    let server = TftpServer::start(root.path(), &[]);
    let out = scratch();
    for (name, _) in SIZES {
        for blksize in [None, Some("1468"), Some("8192")] {
            let dest = out.path().join(format!("{name}-{blksize:?}"));
            let mut cmd = Command::new("curl");
            cmd.arg("-sS");
            if let Some(b) = blksize {
                cmd.args(["--tftp-blksize", b]);
            }
            cmd.arg("-o").arg(&dest).arg(format!("tftp://127.0.0.1:{}/{name}", server.port()));
            assert_fetched(cmd, &root.path().join(name), &dest);
        }
    }
}

#[test]
fn tftp_hpa_fetches_a_file_past_block_number_rollover() {
    let root = scratch();
    // 65535 blocks of 512 bytes is just under 32 MiB; this needs blocks numbered 0 again.
    let len = 33 * 1024 * 1024 + 100;
    write_random(&root.path().join("big.img"), len, 42);
    let server = TftpServer::start(root.path(), &[]);
    let out = scratch();
    let dest = out.path().join("big.img");
    assert_fetched(tftp_hpa(&server, Some("binary"), "big.img", &dest), &root.path().join("big.img"), &dest);
    let line = server.wait_for_log("big.img");
    assert!(line.contains(&format!(" {len} bytes")) && line.ends_with(": ok"), "{line}");
}

#[test]
fn firmware_option_sets_get_the_expected_oack_and_bytes() {
    let root = root_with_sizes();
    let server = TftpServer::start(root.path(), &[]);
    let original = std::fs::read(root.path().join("multi")).unwrap();
    let size = original.len().to_string();
    // OVMF's PXE client, then iPXE.
    let ovmf =
        fetch(server.addr, "multi", "octet", &[("tsize", "0"), ("blksize", "1468"), ("windowsize", "4")]);
    let ovmf = ovmf.unwrap();
    assert_eq!(ovmf.data, original);
    let want: Vec<(String, String)> = [("tsize", size.as_str()), ("blksize", "1468"), ("windowsize", "4")]
        .map(|(a, b)| (a.into(), b.into()))
        .into();
    assert_eq!(ovmf.oack, want);
    let ipxe = fetch(server.addr, "/multi", "octet", &[("blksize", "1432"), ("tsize", "0")]).unwrap();
    assert_eq!(ipxe.data, original);
    // Unknown options are ignored and not echoed; loopback may use blocks past one frame.
    let big = fetch(server.addr, "multi", "octet", &[("blksize", "65464"), ("multicast", "")]).unwrap();
    assert_eq!(big.data, original);
    assert_eq!(big.oack, vec![("blksize".to_string(), "65464".to_string())]);
}

#[test]
fn netascii_converts_line_ends_and_reports_the_converted_tsize() {
    let root = scratch();
    let content = b"#!ipxe\nchain http://server/boot\r\nbare cr\r\rend\n".repeat(40);
    std::fs::write(root.path().join("boot.ipxe"), &content).unwrap();
    let server = TftpServer::start(root.path(), &[]);
    let got = fetch(server.addr, "boot.ipxe", "netascii", &[("tsize", "0")]).unwrap();
    let mut expected = Vec::new();
    for &b in &content {
        match b {
            b'\n' => expected.extend_from_slice(b"\r\n"),
            b'\r' => expected.extend_from_slice(b"\r\0"),
            b => expected.push(b),
        }
    }
    assert_eq!(got.data, expected);
    assert_eq!(got.oack, vec![("tsize".to_string(), expected.len().to_string())]);
}

#[test]
fn concurrent_clients_each_get_their_file() {
    let root = root_with_sizes();
    let server = TftpServer::start(root.path(), &[]);
    let original = std::fs::read(root.path().join("multi")).unwrap();
    let addr = server.addr;
    let handles: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                let window = ["1", "4", "16", "64"][i % 4];
                fetch(addr, "multi", "octet", &[("blksize", "1024"), ("windowsize", window)]).unwrap().data
            })
        })
        .collect();
    for h in handles {
        assert!(h.join().unwrap() == original, "a concurrent fetch got different bytes");
    }
}
