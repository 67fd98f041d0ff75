//! Network bring-up for the agent as PID 1: find the NIC, bring it up, give it an address.
//!
//! The address comes from the kernel command line when iPXE handed it over (`bty.ip=`, the
//! fast path: no second DHCP exchange), otherwise from DHCP through busybox `udhcpc`, whose
//! event script only prints the lease; the interface is configured here in both cases, with
//! the same ioctls (`sys::net`). IPv4 only; one interface; no lease renewal (a flash is shorter
//! than any sane lease, and the next boot asks again).

use super::cmdline::{BootParams, Ipv4Net};
use super::hardware::{nics, Nic};
use crate::error::{Context, Error, Result};
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

/// Where the interface's address came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressSource {
    /// `bty.ip=` on the kernel command line (what iPXE obtained).
    Cmdline,
    /// A DHCP lease obtained by `udhcpc`.
    Dhcp,
}

/// The configuration applied to the interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Configured {
    /// The interface and its MAC.
    pub nic: Nic,
    /// Address and prefix.
    pub addr: Ipv4Net,
    /// Default gateway, if any.
    pub gateway: Option<Ipv4Addr>,
    /// DNS server, if any.
    pub dns: Option<Ipv4Addr>,
    /// Where the address came from.
    pub source: AddressSource,
}

/// A lease as printed by the initramfs' udhcpc script (`BTY_LEASE ip=… mask=… router=… dns=…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Address and prefix.
    pub addr: Ipv4Net,
    /// First router, if any.
    pub router: Option<Ipv4Addr>,
    /// First DNS server, if any.
    pub dns: Option<Ipv4Addr>,
}

/// Finds the `BTY_LEASE` line in udhcpc's output.
pub fn parse_lease(output: &str) -> Option<Lease> {
    let line = output.lines().rev().find(|l| l.starts_with("BTY_LEASE "))?;
    let field = |k: &str| {
        line.split_ascii_whitespace().find_map(|w| w.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
    };
    let addr: Ipv4Addr = field("ip")?.parse().ok()?;
    let prefix: u8 = field("mask").and_then(|m| m.parse().ok()).filter(|&p| p <= 32).unwrap_or(24);
    Some(Lease {
        addr: Ipv4Net { addr, prefix },
        router: field("router").and_then(|r| r.parse().ok()),
        dns: field("dns").and_then(|d| d.parse().ok()),
    })
}

/// Normalises a MAC for comparison: lowercase, `-` → `:`.
fn mac_key(mac: &str) -> String {
    mac.trim().to_ascii_lowercase().replace('-', ":")
}

/// Waits (up to `wait`) for the NIC to use: the one with `mac` when given, otherwise the first
/// that gets carrier once up. Brings the chosen interface up.
pub fn choose_nic(sys: &Path, mac: Option<&str>, wait: Duration) -> Result<Nic> {
    let start = Instant::now();
    let want = mac.map(mac_key);
    loop {
        let present = nics(sys);
        for n in &present {
            // Up every candidate so carrier can be read; harmless for the ones we do not use.
            if want.as_deref().is_none_or(|w| w == n.mac) {
                let _ = crate::sys::net::set_link_up(&n.name);
            }
        }
        let chosen = match &want {
            Some(w) => present.iter().find(|n| &n.mac == w).cloned(),
            None => present.iter().find(|n| n.carrier).cloned(),
        };
        if let Some(n) = chosen {
            return Ok(n);
        }
        if start.elapsed() >= wait {
            let seen: Vec<String> = present.iter().map(|n| format!("{}={}", n.name, n.mac)).collect();
            let seen = if seen.is_empty() {
                "none (is the NIC driver in the initramfs?)".to_string()
            } else {
                seen.join(", ")
            };
            return Err(match want {
                Some(w) => {
                    Error::not_found(format!("no network interface with MAC {w} (interfaces: {seen})"))
                }
                None => Error::not_found(format!("no network interface got a link (interfaces: {seen})")),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits up to `wait` for carrier on `name` (a switch port may take seconds to come up).
fn wait_carrier(sys: &Path, name: &str, wait: Duration) -> bool {
    let start = Instant::now();
    let path = sys.join("class/net").join(name).join("carrier");
    loop {
        if std::fs::read_to_string(&path).map(|s| s.trim() == "1").unwrap_or(false) {
            return true;
        }
        if start.elapsed() >= wait {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs busybox udhcpc once on `iface` and returns the lease it printed.
fn dhcp(iface: &str) -> Result<Lease> {
    let out = std::process::Command::new("/bin/busybox")
        .args([
            "udhcpc",
            "-f",
            "-q",
            "-n",
            "-t",
            "6",
            "-T",
            "2",
            "-i",
            iface,
            "-s",
            "/usr/share/udhcpc/default.script",
        ])
        .output()
        .context("running busybox udhcpc (is busybox in the initramfs?)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_lease(&text).ok_or_else(|| {
        Error::failed(format!(
            "DHCP on {iface} got no lease: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    })
}

/// Brings up loopback and the boot NIC and configures its address (see the module docs).
/// `sys` is usually `/sys`; `wait` bounds the wait for the NIC to appear.
pub fn bring_up(sys: &Path, params: &BootParams, wait: Duration) -> Result<Configured> {
    crate::sys::net::set_link_up("lo")?;
    let nic = choose_nic(sys, params.mac.as_deref(), wait)?;
    if !wait_carrier(sys, &nic.name, Duration::from_secs(10)) {
        crate::log_warn!("{} has no link yet; configuring it anyway", nic.name);
    }
    let (addr, gateway, dns, source) = match params.ip {
        Some(addr) => (addr, params.gateway, params.dns, AddressSource::Cmdline),
        None => {
            let lease = dhcp(&nic.name)?;
            (lease.addr, lease.router, lease.dns, AddressSource::Dhcp)
        }
    };
    crate::sys::net::set_ipv4(&nic.name, addr.addr, addr.netmask())?;
    if let Some(gw) = gateway {
        crate::sys::net::add_default_route(gw)?;
    }
    Ok(Configured { nic, addr, gateway, dns, source })
}

/// Writes `/etc/resolv.conf` for the DNS server (musl's resolver reads only that file), so a
/// server given by name (`bty-server`) resolves.
pub fn write_resolv_conf(root: &Path, dns: Ipv4Addr) -> Result<()> {
    let etc = root.join("etc");
    std::fs::create_dir_all(&etc).with_context(|| format!("creating {}", etc.display()))?;
    let path = etc.join("resolv.conf");
    std::fs::write(&path, format!("nameserver {dns}\n"))
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_line_parses_with_and_without_router_and_dns() {
        let out =
            "udhcpc: started\nBTY_LEASE ip=192.168.77.58 mask=24 router=192.168.77.1 dns=192.168.77.1\n";
        let l = parse_lease(out).unwrap();
        assert_eq!(l.addr, Ipv4Net { addr: "192.168.77.58".parse().unwrap(), prefix: 24 });
        assert_eq!(l.router, Some("192.168.77.1".parse().unwrap()));
        let l = parse_lease("BTY_LEASE ip=10.1.2.3 mask=16 router= dns=").unwrap();
        assert_eq!(l.addr.prefix, 16);
        assert_eq!((l.router, l.dns), (None, None));
        assert!(parse_lease("udhcpc: no lease, failing").is_none());
        assert!(parse_lease("BTY_LEASE ip=garbage mask=24").is_none());
    }

    #[test]
    fn choose_nic_names_the_missing_mac_and_what_it_saw() {
        let t = tempfile::tempdir().unwrap();
        let e = choose_nic(t.path(), Some("AA-BB-CC-DD-EE-FF"), Duration::ZERO).unwrap_err();
        assert!(e.to_string().contains("aa:bb:cc:dd:ee:ff"), "{e}");
        assert!(e.to_string().contains("NIC driver"), "{e}");
    }

    #[test]
    fn resolv_conf_names_the_server() {
        let t = tempfile::tempdir().unwrap();
        write_resolv_conf(t.path(), "10.0.0.53".parse().unwrap()).unwrap();
        assert_eq!(
            std::fs::read_to_string(t.path().join("etc/resolv.conf")).unwrap(),
            "nameserver 10.0.0.53\n"
        );
    }
}
