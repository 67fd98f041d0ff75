//! The proxy-DHCP switch: PXE on a LAN whose DHCP server the operator does not control.
//!
//! bty-web never runs dnsmasq and never runs as root. Switching on stores the settings and
//! writes a dnsmasq configuration (proxy mode: `port=0`, `dhcp-range=SUBNET,proxy`, the same
//! boot-file rules the netboot page documents) to `<state_dir>/proxy-dhcp/dnsmasq.conf`;
//! switching off writes a file without a range. On the appliance a systemd path unit notices
//! the change and restarts `bty-proxy-dhcp.service` (which checks the file, runs dnsmasq as
//! root, and writes its status to `<state_dir>/proxy-dhcp/status` for the pages to show).
//! This module renders and writes files; it starts nothing.

use crate::error::{Context, Error, Result};
use crate::web::context::AppContext;
use crate::wire::{ProxyDhcpSettings, ProxyDhcpState};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// The settings key holding the switch (JSON of [`ProxyDhcpSettings`]).
const SETTING: &str = "proxy_dhcp";

/// A validated switch: the subnet parsed, the server address chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyDhcp {
    /// Network address of the subnet.
    pub network: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
    /// Interface to bind, if any.
    pub interface: Option<String>,
    /// This host's address in the subnet.
    pub server: Ipv4Addr,
}

/// The directory bty-web writes into (the dnsmasq unit reads from it).
pub fn dir(ctx: &AppContext) -> PathBuf {
    ctx.config.paths.state_dir.join("proxy-dhcp")
}

/// The stored switch (off when never set).
pub fn settings(ctx: &AppContext) -> Result<ProxyDhcpSettings> {
    match ctx.db.setting(SETTING)? {
        Some(json) => serde_json::from_str(&json)
            .map_err(|e| Error::invalid(format!("stored proxy-DHCP settings: {e}"))),
        None => Ok(ProxyDhcpSettings::default()),
    }
}

/// The switch, the file as written and dnsmasq's last status, for the API and the pages.
pub fn state(ctx: &AppContext) -> Result<ProxyDhcpState> {
    let dir = dir(ctx);
    let path = dir.join("dnsmasq.conf");
    Ok(ProxyDhcpState {
        settings: settings(ctx)?,
        config_path: path.display().to_string(),
        config: std::fs::read_to_string(&path).ok(),
        dnsmasq_status: std::fs::read_to_string(dir.join("status")).ok().map(|s| s.trim().to_string()),
    })
}

/// Checks a switch that is on: the subnet, the interface name, and this host's address in the
/// subnet (given, or found among `local` addresses).
pub fn validate(s: &ProxyDhcpSettings, local: &[Ipv4Addr]) -> Result<ProxyDhcp> {
    let (addr, prefix) = s.subnet.trim().split_once('/').ok_or_else(|| {
        Error::invalid(format!("subnet {:?}: write it as ADDR/PREFIX, e.g. 192.168.1.0/24", s.subnet))
    })?;
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| Error::invalid(format!("subnet {:?}: {addr:?} is not an IPv4 address", s.subnet)))?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| (8..=30).contains(p))
        .ok_or_else(|| Error::invalid(format!("subnet {:?}: the prefix must be 8 to 30", s.subnet)))?;
    let mask = u32::MAX << (32 - prefix);
    let network = Ipv4Addr::from(u32::from(addr) & mask);
    let inside = |a: &Ipv4Addr| u32::from(*a) & mask == u32::from(network);
    let interface = match s.interface.trim() {
        "" => None,
        i if i.len() <= 15 && i.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) => {
            Some(i.to_string())
        }
        i => return Err(Error::invalid(format!("interface {i:?}: not a network interface name"))),
    };
    let server = match s.server.trim() {
        "" => *local.iter().find(|a| inside(a)).ok_or_else(|| {
            Error::invalid(format!(
                "no address of this host is in {network}/{prefix}; give the server address clients should use"
            ))
        })?,
        a => {
            let a: Ipv4Addr =
                a.parse().map_err(|_| Error::invalid(format!("server {a:?} is not an IPv4 address")))?;
            if !inside(&a) {
                return Err(Error::invalid(format!("server {a} is not in {network}/{prefix}")));
            }
            a
        }
    };
    Ok(ProxyDhcp { network, prefix, interface, server })
}

/// The dnsmasq configuration for a switch that is on (`Some`) or off (`None`). The boot-file
/// rules are those of the netboot page: BIOS PXE gets `undionly.kpxe`, UEFI PXE `snponly.efi`
/// (both over TFTP from bty-web), and iPXE (option 175) the bootstrap script over HTTP.
pub fn render(p: Option<&ProxyDhcp>, http_port: u16, now: &str) -> String {
    let mut out = format!("# Written by bty-web (Settings, proxy-DHCP) at {now}; bty-web rewrites it.\n");
    let Some(p) = p else {
        out.push_str("# proxy-DHCP is off.\n");
        return out;
    };
    let mask = Ipv4Addr::from(u32::MAX << (32 - p.prefix));
    let host = p.server;
    out.push_str("port=0\n");
    if let Some(i) = &p.interface {
        out.push_str(&format!("interface={i}\n"));
    }
    out.push_str(&format!("dhcp-range={},proxy,{mask}\n", p.network));
    out.push_str("dhcp-match=set:ipxe,175\n");
    // iPXE takes a ProxyDHCP answer's boot file only from a PXE boot menu entry (dhcp-boot
    // alone leaves it with "Nothing to boot", seen with Debian's 2019 iPXE); dhcp-boot stays
    // for clients that read the BOOTP file field.
    let bootstrap = format!("http://{host}:{http_port}/pxe-bootstrap.ipxe");
    out.push_str(&format!("dhcp-boot=tag:ipxe,{bootstrap}\n"));
    out.push_str(&format!("pxe-service=tag:ipxe,x86PC,\"bty: bootstrap\",{bootstrap}\n"));
    out.push_str(&format!("pxe-service=tag:ipxe,X86-64_EFI,\"bty: bootstrap\",{bootstrap}\n"));
    out.push_str(&format!("pxe-service=tag:!ipxe,x86PC,\"bty: iPXE (BIOS)\",undionly.kpxe,{host}\n"));
    out.push_str(&format!("pxe-service=tag:!ipxe,X86-64_EFI,\"bty: iPXE (UEFI)\",snponly.efi,{host}\n"));
    out.push_str(&format!("pxe-service=tag:!ipxe,BC_EFI,\"bty: iPXE (UEFI)\",snponly.efi,{host}\n"));
    out.push_str("log-dhcp\n");
    out
}

/// Stores the switch and writes the dnsmasq configuration (atomically: the path unit must
/// never see half a file). Returns what was written.
pub fn apply(ctx: &AppContext, s: &ProxyDhcpSettings) -> Result<String> {
    let local = crate::web::ui::netboot::local_ipv4(
        &std::fs::read_to_string("/proc/net/fib_trie").unwrap_or_default(),
    );
    let checked = if s.enabled { Some(validate(s, &local)?) } else { None };
    // The port bty-web actually listens on (the configured one may be 0 = any).
    let bound = ctx.fallback_host.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let port = bound.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or(8080);
    let text = render(checked.as_ref(), port, &crate::db::now());
    let dir = dir(ctx);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(".dnsmasq.conf.tmp");
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    let path = dir.join("dnsmasq.conf");
    std::fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))?;
    let json = serde_json::to_string(s).map_err(|e| Error::failed(format!("encoding settings: {e}")))?;
    ctx.db.set_setting(SETTING, Some(&json))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(subnet: &str, interface: &str, server: &str) -> ProxyDhcpSettings {
        ProxyDhcpSettings {
            enabled: true,
            subnet: subnet.into(),
            interface: interface.into(),
            server: server.into(),
        }
    }

    #[test]
    fn the_server_address_defaults_to_the_local_address_in_the_subnet() {
        let local = [Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(192, 168, 7, 9)];
        let p = validate(&on("192.168.7.77/24", "", ""), &local).unwrap();
        assert_eq!((p.network, p.prefix, p.server), (Ipv4Addr::new(192, 168, 7, 0), 24, local[1]));
    }

    #[test]
    fn bad_switch_settings_are_refused_with_the_reason() {
        let local = [Ipv4Addr::new(10, 0, 0, 5)];
        for (s, want) in [
            (on("192.168.7.0", "", ""), "ADDR/PREFIX"),
            (on("192.168.7.0/33", "", ""), "prefix"),
            (on("192.168.7.0/24", "", ""), "no address of this host"),
            (on("10.0.0.0/8", "eth0; dhcp-script=/x", ""), "not a network interface name"),
            (on("10.0.0.0/8", "", "192.168.1.1"), "not in 10.0.0.0/8"),
        ] {
            let e = validate(&s, &local).unwrap_err().to_string();
            assert!(e.contains(want), "{e} lacks {want}");
        }
    }

    #[test]
    fn the_config_carries_the_netboot_pages_boot_file_rules() {
        let p = validate(&on("192.168.77.0/24", "eth0", "192.168.77.10"), &[]).unwrap();
        let text = render(Some(&p), 8080, "now");
        for line in [
            "port=0",
            "interface=eth0",
            "dhcp-range=192.168.77.0,proxy,255.255.255.0",
            "dhcp-boot=tag:ipxe,http://192.168.77.10:8080/pxe-bootstrap.ipxe",
            "pxe-service=tag:ipxe,x86PC,\"bty: bootstrap\",http://192.168.77.10:8080/pxe-bootstrap.ipxe",
            "pxe-service=tag:!ipxe,x86PC,\"bty: iPXE (BIOS)\",undionly.kpxe,192.168.77.10",
            "pxe-service=tag:!ipxe,X86-64_EFI,\"bty: iPXE (UEFI)\",snponly.efi,192.168.77.10",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
        let off = render(None, 8080, "now");
        assert!(!off.contains("dhcp-range"), "{off}");
    }
}
