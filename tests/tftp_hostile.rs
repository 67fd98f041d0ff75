//! bty-tftp under hostile or broken input sent from a raw UDP socket: every bad request gets an
//! ERROR or is dropped, nothing outside the root is ever served, and the next client is served.

mod common;
mod tftp_support;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::*;
use tftp_support::*;

const WAIT: Duration = Duration::from_secs(3);

/// A root with a good file, and a secret beside the root that symlinks try to reach.
fn hostile_tree() -> tempfile::TempDir {
    let dir = scratch();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    write_random(&root.join("good.bin"), 5000, 7);
    std::fs::write(dir.path().join("secret"), b"do not serve").unwrap();
    std::os::unix::fs::symlink("../secret", root.join("up")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("passwd")).unwrap();
    std::os::unix::fs::symlink("../../secret", root.join("sub/deep")).unwrap();
    dir
}

fn error_for(server: &TftpServer, datagram: &[u8]) -> Option<TftpError> {
    let reply = send_and_receive(server.addr, datagram, WAIT)?;
    Some(as_error(&reply).unwrap_or_else(|| panic!("{datagram:?} got a non-ERROR reply {reply:?}")))
}

fn rrq(name: &[u8], options: &[(&str, &str)]) -> Vec<u8> {
    request(1, name, "octet", options)
}

fn assert_still_serving(server: &mut TftpServer, root: &std::path::Path) {
    assert!(server.is_running(), "server died");
    let got = fetch(server.addr, "good.bin", "octet", &[]).expect("server no longer serves");
    assert_eq!(got.data, std::fs::read(root.join("good.bin")).unwrap());
}

#[test]
fn names_outside_the_root_are_refused() {
    let dir = hostile_tree();
    let root = dir.path().join("root");
    let mut server = TftpServer::start(&root, &[]);
    let cases: &[(&[u8], u16)] = &[
        (b"../etc/passwd", 2),
        (b"..\\..\\etc\\passwd", 2),
        (b"sub/../../secret", 2),
        (b"//etc/passwd", 2),
        (b"up", 2),
        (b"passwd", 2),
        (b"sub/deep", 2),
        (b"sub", 2),
        (b"/etc/passwd", 1),
        (b"missing.efi", 1),
    ];
    for (name, code) in cases {
        let e = error_for(&server, &rrq(name, &[])).unwrap_or_else(|| panic!("no reply for {name:?}"));
        assert_eq!(e.code, *code, "{:?}: {e:?}", String::from_utf8_lossy(name));
    }
    assert_still_serving(&mut server, &root);
    assert!(!server.log().iter().any(|l| l.contains("secret") && l.ends_with(": ok")), "{:?}", server.log());
}

#[test]
fn write_requests_are_refused_as_read_only() {
    let dir = hostile_tree();
    let root = dir.path().join("root");
    let mut server = TftpServer::start(&root, &[]);
    let e = error_for(&server, &request(2, b"new.bin", "octet", &[])).expect("no reply to WRQ");
    assert_eq!(e, TftpError { code: 2, message: "bty-tftp is read-only".into() });
    assert!(!root.join("new.bin").exists());
    assert_still_serving(&mut server, &root);
}

#[test]
fn absurd_option_values_are_refused_with_error_8() {
    let dir = hostile_tree();
    let root = dir.path().join("root");
    let mut server = TftpServer::start(&root, &[]);
    for option in [("blksize", "0"), ("windowsize", "0"), ("blksize", "-5")] {
        let e = error_for(&server, &rrq(b"good.bin", &[option])).expect("no reply");
        assert_eq!(e.code, 8, "{option:?}: {e:?}");
    }
    assert_still_serving(&mut server, &root);
}

#[test]
fn a_blksize_beyond_the_maximum_is_lowered_and_a_long_timeout_not_taken() {
    let dir = hostile_tree();
    let root = dir.path().join("root");
    let server = TftpServer::start(&root, &[]);
    // tftpd-hpa lowers an oversized blksize instead of refusing the boot.
    let got = fetch(server.addr, "good.bin", "octet", &[("blksize", "999999"), ("timeout", "255")])
        .expect("an oversized blksize is served");
    assert_eq!(got.data, std::fs::read(root.join("good.bin")).unwrap());
    assert_eq!(got.oack, vec![("blksize".to_string(), "65464".to_string())], "timeout 255 is left out");
}

#[test]
fn a_datagram_from_another_port_gets_error_5_and_the_transfer_goes_on() {
    let dir = hostile_tree();
    let root = dir.path().join("root");
    let server = TftpServer::start(&root, &[]);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(WAIT)).unwrap();
    client.send_to(&rrq(b"good.bin", &[]), server.addr).unwrap();
    let mut buf = [0u8; 600];
    let (_, port) = client.recv_from(&mut buf).expect("no DATA 1");
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    stranger.set_read_timeout(Some(WAIT)).unwrap();
    stranger.send_to(b"\x00\x04\x00\x01", port).unwrap();
    let (n, from) = stranger.recv_from(&mut buf).expect("no reply to a stranger (RFC 1350 wants ERROR 5)");
    assert_eq!(from, port);
    assert_eq!(as_error(&buf[..n]).map(|e| e.code), Some(5), "{:?}", &buf[..n]);
    // The real client's ACK still moves its transfer on.
    client.send_to(b"\x00\x04\x00\x01", port).unwrap();
    let (n, _) = client.recv_from(&mut buf).expect("no DATA 2 after the stranger");
    assert_eq!(&buf[..4], b"\x00\x03\x00\x02", "{:?}", &buf[..n.min(8)]);
}

#[test]
fn a_stalled_client_keeps_a_good_one_out_only_for_seconds() {
    let dir = hostile_tree();
    let root = dir.path().join("root");
    let mut server = TftpServer::start(&root, &["--max-transfers", "1"]);
    // The only slot goes to a client that asks for the longest timeout and then goes silent.
    let holder = UdpSocket::bind("127.0.0.1:0").unwrap();
    holder.set_read_timeout(Some(WAIT)).unwrap();
    holder.send_to(&rrq(b"good.bin", &[("timeout", "255")]), server.addr).unwrap();
    let mut buf = [0u8; 600];
    holder.recv_from(&mut buf).expect("no first reply for the holder");
    // A good client retries every half second, as PXE firmware does; it must get in long
    // before the holder's 255 s timeout would have run out (the bound is a hang guard).
    let until = Instant::now() + Duration::from_secs(60);
    let served = loop {
        match fetch(server.addr, "good.bin", "octet", &[]) {
            Ok(got) => break Some(got),
            Err(e) if e.code == 0 && Instant::now() < until => std::thread::sleep(Duration::from_millis(500)),
            Err(_) => break None,
        }
    };
    assert_eq!(
        served.map(|g| g.data),
        Some(std::fs::read(root.join("good.bin")).unwrap()),
        "{:?}",
        server.log()
    );
    assert_still_serving(&mut server, &root);
}

#[test]
fn garbage_gets_an_error_or_is_dropped_and_the_server_goes_on() {
    let dir = hostile_tree();
    let root = dir.path().join("root");
    let mut server = TftpServer::start(&root, &[]);
    // Unknown opcodes, malformed requests and unknown modes: ERROR 4.
    for datagram in [&b"\x00\x09hello\x00"[..], b"\xff\xff", b"\x00\x01name", b"\x00\x01\x00octet\x00"] {
        let e = error_for(&server, datagram).unwrap_or_else(|| panic!("no reply to {datagram:?}"));
        assert_eq!(e.code, 4, "{datagram:?}");
    }
    assert_eq!(error_for(&server, &request(1, b"good.bin", "mail", &[])).map(|e| e.code), Some(4));
    // Truncated packets and stray DATA/ACK/ERROR at the listening port: anything but a crash.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for datagram in
        [&b""[..], b"\x00", b"\x00\x04", b"\x00\x04\x00\x01", b"\x00\x03\x00\x01data", b"\x00\x05\x00"]
    {
        sock.send_to(datagram, server.addr).unwrap();
    }
    let mut x: u32 = 0x1234_5678;
    for len in 0..300usize {
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        sock.send_to(&junk, server.addr).unwrap();
    }
    assert_still_serving(&mut server, &root);
}

#[test]
fn requests_past_the_cap_are_told_the_server_is_busy() {
    let dir = hostile_tree();
    let root = dir.path().join("root");
    let mut server = TftpServer::start(&root, &["--max-transfers", "1"]);
    // Hold the only slot: request, receive DATA 1, and do not acknowledge it.
    let holder = UdpSocket::bind("127.0.0.1:0").unwrap();
    holder.set_read_timeout(Some(WAIT)).unwrap();
    holder.send_to(&rrq(b"good.bin", &[]), server.addr).unwrap();
    let mut buf = [0u8; 600];
    let (_, transfer_port) = holder.recv_from(&mut buf).expect("no DATA for the first client");
    let e = error_for(&server, &rrq(b"good.bin", &[])).expect("no reply past the cap");
    assert_eq!(e, TftpError { code: 0, message: "server busy, try again".into() });
    // The first client gives up; its slot is free again.
    holder.send_to(b"\x00\x05\x00\x00bye\x00", transfer_port).unwrap();
    server.wait_for_log("client sent error 0: bye");
    assert_still_serving(&mut server, &root);
}

#[test]
fn duplicate_acks_and_resent_requests_cause_no_duplicate_data() {
    let dir = hostile_tree();
    let root = dir.path().join("root");
    let server = TftpServer::start(&root, &[]);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let request = rrq(b"good.bin", &[]);
    client.send_to(&request, server.addr).unwrap();
    let mut buf = [0u8; 600];
    let (_, port) = client.recv_from(&mut buf).expect("no DATA 1");
    // The request again from the same port: a retransmission, not a second transfer.
    client.send_to(&request, server.addr).unwrap();
    client.send_to(b"\x00\x04\x00\x01", port).unwrap();
    client.send_to(b"\x00\x04\x00\x01", port).unwrap();
    client.send_to(b"\x00\x04\x00\x01", port).unwrap();
    // Collect well inside the server's 1 s retransmission timeout.
    let mut got = Vec::new();
    let until = Instant::now() + Duration::from_millis(600);
    while Instant::now() < until {
        if let Ok((n, from)) = client.recv_from(&mut buf) {
            got.push((from, buf[..n][..4].to_vec()));
        }
    }
    assert_eq!(got, vec![(port, vec![0, 3, 0, 2])], "expected exactly one DATA 2 from the transfer port");
}

#[test]
fn root_and_listen_come_from_the_config_file_and_flags_win() {
    let dir = hostile_tree();
    let toml = dir.path().join("bty.toml");
    let root = dir.path().join("root");
    std::fs::write(
        &toml,
        format!("[tftp]\nroot = {:?}\nlisten = \"127.0.0.1:0\"\n", root.display().to_string()),
    )
    .unwrap();
    let mut server = TftpServer::spawn(&["--config".into(), toml.clone().into()]);
    assert_still_serving(&mut server, &root);
    // --root beats the file: an empty directory serves nothing.
    let empty = scratch();
    let server = TftpServer::spawn(&["--config".into(), toml.into(), "--root".into(), empty.path().into()]);
    assert_eq!(fetch(server.addr, "good.bin", "octet", &[]).unwrap_err().code, 1);
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let dir = hostile_tree();
    let mut server = TftpServer::start(&dir.path().join("root"), &[]);
    assert_eq!(server.terminate(), Some(0), "{:?}", server.log());
}
