//! TFTP inside bty-web: with `[tftp] enabled`, boot artifacts come over TFTP from the same
//! process (fetched with curl's tftp:// client), a failed transfer is an audit event, and a
//! flood of refusals becomes a few summary rows.

mod common;
use common::webserver::WebServer;
use common::*;
use std::net::UdpSocket;
use std::process::Command;

/// A loopback UDP port that was free a moment ago.
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn boot_artifacts_come_over_tftp_and_failures_are_audited() {
    let dir = scratch();
    let state = dir.path().join("state");
    let boot = state.join("boot");
    std::fs::create_dir_all(&boot).unwrap();
    let kernel: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(boot.join("bty-netboot-x86_64.vmlinuz"), &kernel).unwrap();
    let listen = format!("127.0.0.1:{}", free_udp_port());
    let mut s = WebServer::start_in(&state, &[("BTY_TFTP_ENABLED", "true"), ("BTY_TFTP_LISTEN", &listen)]);
    s.login();

    let got = dir.path().join("got");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-o"])
        .arg(&got)
        .arg(format!("tftp://{listen}/bty-netboot-x86_64.vmlinuz"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(sha256sum(&got), sha256sum(&boot.join("bty-netboot-x86_64.vmlinuz")));

    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-o", "/dev/null"])
        .arg(format!("tftp://{listen}/no-such-file.efi"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "a missing file is a TFTP error");
    // The event is written with the next summary (every 2 s); wait for it.
    let mut events = serde_json::Value::Null;
    for _ in 0..300 {
        events = s.get("/events?kind=netboot.tftp.failed").json()["events"].clone();
        if events.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(events[0]["subject_id"], "no-such-file.efi", "{events}");
    assert_eq!(events[0]["source_ip"], "127.0.0.1");
    assert_eq!(
        s.get("/events?kind=netboot.tftp.failed").json()["events"].as_array().unwrap().len(),
        1,
        "a good fetch is no event"
    );
}

#[test]
fn a_flood_of_tftp_refusals_writes_a_few_summary_rows() {
    let dir = scratch();
    let state = dir.path().join("state");
    let listen = format!("127.0.0.1:{}", free_udp_port());
    let mut s = WebServer::start_in(&state, &[("BTY_TFTP_ENABLED", "true"), ("BTY_TFTP_LISTEN", &listen)]);
    s.login();
    let mut buf = [0u8; 600];
    let mut answered = 0u64;
    for i in 0..2000 {
        // A port per probe, as a flood from many clients; one at a time, so each probe is
        // answered (file not found) before the next.
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
        let rrq = format!("\x00\x01probe-{}.efi\x00octet\x00", i % 50);
        sock.send_to(rrq.as_bytes(), &listen).unwrap();
        if sock.recv_from(&mut buf).is_ok() {
            answered += 1;
        }
    }
    assert!(answered > 1000, "{answered} of 2000 probes answered");
    let count = |e: &serde_json::Value| e["details"]["count"].as_u64().unwrap_or(0);
    let mut rows = Vec::new();
    for _ in 0..300 {
        let tftp =
            s.get("/events?kind=netboot.tftp.failed&limit=500").json()["events"].as_array().unwrap().clone();
        let folded =
            s.get("/events?kind=events.coalesced&limit=500").json()["events"].as_array().unwrap().clone();
        rows = [tftp, folded].concat();
        if rows.iter().map(count).sum::<u64>() >= answered {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(rows.iter().map(count).sum::<u64>(), answered, "every refusal is counted");
    assert!(rows.len() < 200, "{} rows for {answered} refusals", rows.len());
}
