//! The proxy-DHCP switch, black-box: bty-web's API and Settings form write the dnsmasq
//! configuration and the audit log, the pages show the switch, the file and dnsmasq's status,
//! and the appliance's root-side check (`rootfs-overlay/usr/local/sbin/bty-proxy-dhcp`)
//! accepts exactly what bty-web writes and refuses anything more.

mod common;
use common::webserver::WebServer;
use common::*;
use serde_json::json;
use std::path::Path;
use std::process::Command;

/// Runs the appliance's `bty-proxy-dhcp check` on a state dir; returns its exit code.
fn root_check(state: &Path, run: &Path) -> i32 {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("rootfs-overlay/usr/local/sbin/bty-proxy-dhcp");
    Command::new("sh")
        .arg(script)
        .arg("check")
        .env("BTY_PROXY_DHCP_DIR", state.join("proxy-dhcp"))
        .env("BTY_PROXY_DHCP_RUN", run)
        .status()
        .expect("running bty-proxy-dhcp")
        .code()
        .unwrap_or(-1)
}

#[test]
fn proxy_dhcp_switch_writes_the_config_audits_and_shows_status() {
    let dir = scratch();
    let state = dir.path().join("state");
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let s = WebServer::start_logged_in(&state);
    let conf = state.join("proxy-dhcp/dnsmasq.conf");

    let st = s.get("/settings/proxy-dhcp").json();
    assert_eq!(st["settings"]["enabled"], false, "off by default: {st}");
    assert!(st["config"].is_null());

    // Bad settings: refused with the reason, nothing written.
    let r = s.put_json(
        "/settings/proxy-dhcp",
        &json!({ "enabled": true, "subnet": "192.0.2.0/24", "server": "198.51.100.1" }),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("not in 192.0.2.0/24"), "{}", r.text());
    assert!(!conf.exists());

    let r = s.put_json(
        "/settings/proxy-dhcp",
        &json!({ "enabled": true, "subnet": "192.0.2.0/24", "interface": "eth9", "server": "192.0.2.10" }),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let port = s.addr.rsplit(':').next().unwrap().to_string();
    let text = std::fs::read_to_string(&conf).unwrap();
    for line in [
        "port=0".to_string(),
        "interface=eth9".to_string(),
        "dhcp-range=192.0.2.0,proxy,255.255.255.0".to_string(),
        format!("dhcp-boot=tag:ipxe,http://192.0.2.10:{port}/pxe-bootstrap.ipxe"),
        "pxe-service=tag:!ipxe,x86PC,\"bty: iPXE (BIOS)\",undionly.kpxe,192.0.2.10".to_string(),
        format!("pxe-service=tag:ipxe,x86PC,\"bty: bootstrap\",http://192.0.2.10:{port}/pxe-bootstrap.ipxe"),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
    assert_eq!(r.json()["config"].as_str(), Some(text.as_str()));

    // The root side accepts it (and hands dnsmasq a copy), and refuses an added option.
    assert_eq!(root_check(&state, &run), 0);
    assert_eq!(std::fs::read_to_string(run.join("dnsmasq.conf")).unwrap(), text);
    std::fs::write(&conf, format!("{text}dhcp-script=/tmp/evil\n")).unwrap();
    assert_eq!(root_check(&state, &run), 255);
    let status = std::fs::read_to_string(state.join("proxy-dhcp/status")).unwrap();
    assert!(status.contains("refused: unexpected line: dhcp-script=/tmp/evil"), "{status}");
    std::fs::write(state.join("proxy-dhcp/status"), "2026-01-01T00:00:00Z running\n").unwrap();

    // Both pages show the switch, the status; Settings also the file and the form.
    let page = s.get("/ui/settings").text();
    assert!(page.contains("Proxy-DHCP <span class=\"pill ok\">on</span>"), "{page}");
    assert!(page.contains("2026-01-01T00:00:00Z running"));
    assert!(page.contains("dhcp-range=192.0.2.0,proxy,255.255.255.0"));
    let netboot = s.get("/ui/netboot").text();
    assert!(netboot.contains("2026-01-01T00:00:00Z running"), "{netboot}");

    // The Settings form switches it off (the checkbox absent), with the page's CSRF token.
    let csrf =
        page.split("name=\"csrf_token\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let body = format!("csrf_token={csrf}&subnet=192.0.2.0%2F24&interface=&server=");
    let r = s.send(
        "POST",
        "/ui/settings/proxy-dhcp",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.into_bytes(),
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let off = std::fs::read_to_string(&conf).unwrap();
    assert!(!off.contains("dhcp-range") && off.contains("proxy-DHCP is off"), "{off}");
    assert_eq!(root_check(&state, &run), 1, "off: the unit is skipped");
    assert!(std::fs::read_to_string(state.join("proxy-dhcp/status")).unwrap().ends_with(" off\n"));

    let events = s.get("/events?kind=settings.proxy_dhcp").json();
    let summaries: Vec<&str> =
        events["events"].as_array().unwrap().iter().map(|e| e["summary"].as_str().unwrap()).collect();
    assert_eq!(summaries.len(), 2, "{events}");
    assert!(summaries.iter().any(|s| s.contains("switched on for 192.0.2.0/24")), "{summaries:?}");
    assert!(summaries.iter().any(|s| s.contains("switched off")), "{summaries:?}");
}
