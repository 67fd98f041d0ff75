//! TFTP inside bty-web: with `[tftp] enabled`, boot artifacts come over TFTP from the same
//! process (fetched with curl's tftp:// client), and a failed transfer is an audit event.

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
    // The event is recorded by the transfer thread right after it answers; wait for it.
    let mut events = serde_json::Value::Null;
    for _ in 0..100 {
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
