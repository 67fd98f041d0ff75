//! `GET /ui/dashboard`: the fleet at a glance (machine counts), whether this server is ready to
//! netboot anything (a checklist, each item linking to where it is fixed) and recent activity.
//!
//! The TFTP item sends one real read request to the configured TFTP address and counts any
//! answer (DATA, OACK or ERROR) as "answering"; it never acknowledges data, and tells the
//! server to stop with an ERROR packet so no transfer lingers.

use super::lifecycle;
use super::view::{self, Page};
use crate::db::EventFilter;
use crate::web::context::AppContext;
use crate::web::request::Request;
use crate::web::response::Reply;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long the TFTP probe waits for an answer.
const TFTP_PROBE_TIMEOUT: Duration = Duration::from_millis(700);

/// How long a probe result is reused, so a busy dashboard does not probe on every view.
const TFTP_PROBE_REUSE: Duration = Duration::from_secs(10);

#[derive(serde::Serialize)]
struct Check {
    ok: bool,
    title: String,
    detail: String,
    link: &'static str,
    fix: &'static str,
}

/// The outcome of a TFTP probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TftpProbe {
    /// DATA or OACK: the file is served.
    Serves,
    /// ERROR: the server answers but refused (message).
    Refused(String),
    /// No answer within the timeout.
    Silent,
}

/// Sends `RRQ file octet` to `addr` and classifies the first answer.
pub fn probe_tftp(addr: SocketAddr, file: &str, timeout: Duration) -> std::io::Result<TftpProbe> {
    let local: SocketAddr = if addr.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let sock = UdpSocket::bind(local)?;
    sock.set_read_timeout(Some(timeout))?;
    let mut rrq = vec![0, 1];
    rrq.extend_from_slice(file.as_bytes());
    rrq.extend_from_slice(b"\0octet\0");
    sock.send_to(&rrq, addr)?;
    let mut buf = [0u8; 1024];
    let (n, from) = match sock.recv_from(&mut buf) {
        Ok(x) => x,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
            return Ok(TftpProbe::Silent)
        }
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Ok(TftpProbe::Silent),
        Err(e) => return Err(e),
    };
    let opcode = if n >= 2 { u16::from_be_bytes([buf[0], buf[1]]) } else { 0 };
    match opcode {
        3 | 6 => {
            // ERROR 0 "probe": ends the transfer at once instead of letting it time out.
            let _ = sock.send_to(b"\0\x05\0\0probe\0", from);
            Ok(TftpProbe::Serves)
        }
        5 => {
            let msg = buf.get(4..n).unwrap_or(&[]);
            let msg = String::from_utf8_lossy(msg).trim_end_matches('\0').to_string();
            Ok(TftpProbe::Refused(msg))
        }
        _ => Ok(TftpProbe::Silent),
    }
}

/// [`probe_tftp`] for `ipxe.efi`, reusing a result younger than [`TFTP_PROBE_REUSE`].
fn probe_cached(addr: SocketAddr) -> std::io::Result<TftpProbe> {
    type Last = Mutex<Option<(Instant, SocketAddr, TftpProbe)>>;
    static LAST: Last = Mutex::new(None);
    if let Some((at, a, r)) = LAST.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        if *a == addr && at.elapsed() < TFTP_PROBE_REUSE {
            return Ok(r.clone());
        }
    }
    let r = probe_tftp(addr, "ipxe.efi", TFTP_PROBE_TIMEOUT)?;
    *LAST.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), addr, r.clone()));
    Ok(r)
}

/// Where to probe for a listen address: a wildcard listens on loopback too.
fn probe_addr(listen: &str) -> Option<SocketAddr> {
    let addr: SocketAddr = listen.parse().ok()?;
    Some(match addr.ip() {
        ip if ip.is_unspecified() && addr.is_ipv4() => SocketAddr::from(([127, 0, 0, 1], addr.port())),
        ip if ip.is_unspecified() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port())),
        _ => addr,
    })
}

/// Whether the configured TFTP address answers a read request for `ipxe.efi`, in words.
pub fn tftp_status(ctx: &AppContext) -> (bool, String) {
    let listen = &ctx.config.tftp.listen;
    match probe_addr(listen) {
        None => (false, format!("cannot parse [tftp] listen = {listen:?}")),
        Some(addr) => match probe_cached(addr) {
            Ok(TftpProbe::Serves) => (true, format!("{addr} serves ipxe.efi")),
            Ok(TftpProbe::Refused(m)) => (true, format!("{addr} answers; ipxe.efi: {m}")),
            Ok(TftpProbe::Silent) => (false, format!("no answer from {addr}")),
            Err(e) => (false, format!("probing {addr}: {e}")),
        },
    }
}

fn readiness(ctx: &AppContext) -> crate::Result<Vec<Check>> {
    let mut checks = Vec::new();
    let needed = crate::web::artifacts::needed(ctx);
    let missing = crate::web::artifacts::missing(ctx);
    checks.push(Check {
        ok: missing.is_empty(),
        title: "Netboot artifacts present".into(),
        detail: if missing.is_empty() {
            format!(
                "all {}: {}",
                needed.len(),
                needed.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ")
            )
        } else {
            format!(
                "{} of {} present; missing: {}",
                needed.len() - missing.len(),
                needed.len(),
                missing.join(", ")
            )
        },
        link: "/ui/netboot",
        fix: "Install artifacts",
    });
    let images = ctx.db.images()?.len();
    checks.push(Check {
        ok: images > 0,
        title: "Catalog is non-empty".into(),
        detail: format!("{images} image(s)"),
        link: "/ui/images",
        fix: "Add an image",
    });
    let (ok, detail) = tftp_status(ctx);
    checks.push(Check {
        ok,
        title: "TFTP answering".into(),
        detail,
        link: "/ui/netboot#tftp",
        fix: "How to boot",
    });
    let failures = ctx.db.unacknowledged_failures()?;
    checks.push(Check {
        ok: failures == 0,
        title: "No unacknowledged failures".into(),
        detail: format!("{failures} unacknowledged"),
        link: "/ui/events?failed=1&unacknowledged=1",
        fix: "Review failures",
    });
    // Warned before the disk is full: at `[limits] low_space_warn_mib` (0: never), because a
    // full state disk stops recording what PXE clients report.
    let state = &ctx.config.paths.state_dir;
    let warn_below = ctx.limits().low_space_warn_mib.saturating_mul(1 << 20);
    let (ok, detail) = match crate::db::fs_space(state) {
        Some((free, total)) => (
            free >= warn_below,
            format!(
                "{} free of {} in {}{}",
                crate::disk::human_size(free),
                crate::disk::human_size(total),
                state.display(),
                if free >= warn_below {
                    String::new()
                } else {
                    format!(" (warning below {})", crate::disk::human_size(warn_below))
                }
            ),
        ),
        None => (false, format!("cannot stat {}", state.display())),
    };
    checks.push(Check {
        ok,
        title: "State directory has free space".into(),
        detail,
        link: "/ui/images",
        fix: "Free space",
    });
    Ok(checks)
}

/// `GET /ui/dashboard`.
pub fn page(ctx: &AppContext, req: &Request<'_>) -> Reply {
    let recs = ctx.db.machines()?;
    let today = crate::db::now()[..10].to_string();
    let (mut unassigned, mut flashing, mut flashed_today, mut failed) = (0, 0, 0, 0);
    for rec in &recs {
        let m = &rec.machine;
        let life = lifecycle::of(rec, lifecycle::live(ctx, &m.mac).as_ref());
        unassigned += usize::from(m.discovered_at.is_some() && m.bty_image_ref.is_none());
        flashing += usize::from(life.label.starts_with("flashing"));
        flashed_today += usize::from(m.last_flashed_at.as_deref().is_some_and(|t| t.starts_with(&today)));
        failed += usize::from(life.tone == "bad");
    }
    let events = ctx.db.events(&EventFilter { limit: 10, ..EventFilter::default() })?;
    let checks = readiness(ctx)?;
    let page = Page {
        title: "Dashboard",
        nav: "dashboard",
        intro: "The fleet at a glance, and whether this server is ready to netboot machines.",
    };
    let counts = serde_json::json!({ "total": recs.len(), "unassigned": unassigned, "flashing": flashing, "flashed_today": flashed_today, "failed": failed });
    view::render(
        ctx,
        req,
        200,
        "dashboard.html",
        page,
        serde_json::json!({ "counts": counts, "checks": checks, "events": events }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_port_is_reported_as_silent() {
        let quiet = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = quiet.local_addr().unwrap();
        assert_eq!(probe_tftp(addr, "ipxe.efi", Duration::from_millis(100)).unwrap(), TftpProbe::Silent);
    }

    #[test]
    fn an_error_answer_counts_as_answering_with_its_message() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let (n, from) = server.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"\0\x01ipxe.efi\0octet\0");
            server.send_to(b"\0\x05\0\x01File not found\0", from).unwrap();
        });
        let got = probe_tftp(addr, "ipxe.efi", Duration::from_secs(5)).unwrap();
        t.join().unwrap();
        assert_eq!(got, TftpProbe::Refused("File not found".into()));
    }

    #[test]
    fn wildcard_listen_addresses_are_probed_on_loopback() {
        assert_eq!(probe_addr("0.0.0.0:69"), Some(SocketAddr::from(([127, 0, 0, 1], 69))));
        assert_eq!(probe_addr("10.0.0.1:6969"), Some(SocketAddr::from(([10, 0, 0, 1], 6969))));
        assert_eq!(probe_addr("nonsense"), None);
    }
}
