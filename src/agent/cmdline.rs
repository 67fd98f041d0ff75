//! The kernel command line as the plan agent reads it: `bty.server=`, `bty.mac=`, and the
//! address iPXE already obtained (`bty.ip=`, `bty.gw=`, `bty.dns=`); on the USB stick
//! `bty.mode=usb` and `bty.auto=IMAGE[@SERIAL]`.
//!
//! iPXE fills these from its own settings, so the shapes vary: `bty.ip=${ip}/${netmask}` gives a
//! dotted netmask (`192.168.77.50/255.255.255.0`), hand-written lines use a prefix length
//! (`/24`), and an older form carries the gateway after a comma (`/24,192.168.77.1`). A variable
//! iPXE did not have expands to nothing (`bty.gw=`), which means "absent", not an error.
//! This module only parses; `agent::net` acts on the result.

use crate::error::{Error, Result};
use std::net::Ipv4Addr;

/// An IPv4 address with its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Net {
    /// The host address.
    pub addr: Ipv4Addr,
    /// Prefix length, 0–32.
    pub prefix: u8,
}

impl Ipv4Net {
    /// The netmask for the prefix (`/24` → `255.255.255.0`).
    pub fn netmask(&self) -> Ipv4Addr {
        let bits = if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix)) };
        Ipv4Addr::from(bits)
    }
}

/// What the agent takes from the kernel command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootParams {
    /// `bty.server=`: base URL of bty-web.
    pub server: Option<String>,
    /// `bty.mac=`: the MAC this machine booted from (as the server knows it).
    pub mac: Option<String>,
    /// `bty.ip=`: the address iPXE obtained.
    pub ip: Option<Ipv4Net>,
    /// `bty.gw=` (or the part after a comma in `bty.ip=`): the default gateway.
    pub gateway: Option<Ipv4Addr>,
    /// `bty.dns=`: a DNS server.
    pub dns: Option<Ipv4Addr>,
    /// `bty.mode=`: `usb` on the live stick (absent: the netboot agent).
    pub mode: Option<String>,
    /// `bty.auto=`: the stick's unattended flash, `IMAGE` or `IMAGE@SERIAL`.
    pub auto: Option<String>,
    /// Problems found while parsing, reported on the console; parsing never fails outright
    /// because PID 1 must go on with DHCP when a hand-made line is wrong.
    pub warnings: Vec<String>,
}

/// Parses `/proc/cmdline` text. The first occurrence of a key wins (as upstream's scripts do).
pub fn parse(text: &str) -> BootParams {
    let mut p = BootParams::default();
    let mut seen: Vec<&str> = Vec::new();
    for word in text.split_ascii_whitespace() {
        let Some((key, value)) = word.split_once('=') else { continue };
        if !key.starts_with("bty.") || seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let value = value.trim_matches('"');
        let empty = value.is_empty();
        match key {
            "bty.server" if !empty => p.server = Some(value.to_string()),
            "bty.mac" if !empty => p.mac = Some(value.to_string()),
            "bty.mode" if !empty => p.mode = Some(value.to_string()),
            "bty.auto" if !empty => p.auto = Some(value.to_string()),
            "bty.ip" if !empty => match parse_ip(value) {
                Ok((net, gw)) => {
                    p.ip = Some(net);
                    p.gateway = p.gateway.or(gw);
                }
                Err(e) => p.warnings.push(format!("ignoring bty.ip={value}: {e}")),
            },
            "bty.gw" if !empty => match value.parse() {
                Ok(gw) => p.gateway = Some(gw),
                Err(_) => p.warnings.push(format!("ignoring bty.gw={value}: not an IPv4 address")),
            },
            "bty.dns" if !empty => match value.parse() {
                Ok(dns) => p.dns = Some(dns),
                Err(_) => p.warnings.push(format!("ignoring bty.dns={value}: not an IPv4 address")),
            },
            _ => {}
        }
    }
    p
}

/// `ADDR/PREFIX`, `ADDR/NETMASK`, either followed by `,GATEWAY`; a bare `ADDR` means /24.
fn parse_ip(value: &str) -> Result<(Ipv4Net, Option<Ipv4Addr>)> {
    let (net, gw) = match value.split_once(',') {
        Some((net, gw)) if !gw.is_empty() => (
            net,
            Some(gw.parse().map_err(|_| Error::invalid(format!("gateway {gw:?} is not an IPv4 address")))?),
        ),
        Some((net, _)) => (net, None),
        None => (value, None),
    };
    let (addr, mask) = net.split_once('/').unwrap_or((net, "24"));
    let addr: Ipv4Addr =
        addr.parse().map_err(|_| Error::invalid(format!("{addr:?} is not an IPv4 address")))?;
    let prefix = if mask.contains('.') {
        let m: Ipv4Addr = mask.parse().map_err(|_| Error::invalid(format!("{mask:?} is not a netmask")))?;
        let bits = u32::from(m);
        if bits.leading_ones() + bits.trailing_zeros() != 32 {
            return Err(Error::invalid(format!("{mask} is not a contiguous netmask")));
        }
        bits.leading_ones() as u8
    } else {
        match mask.parse::<u8>() {
            Ok(n) if n <= 32 => n,
            _ => return Err(Error::invalid(format!("{mask:?} is not a prefix length (0-32) or netmask"))),
        }
    };
    Ok((Ipv4Net { addr, prefix }, gw))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_the_line_bty_web_renders_with_a_dotted_netmask() {
        let p = parse(
            "BOOT_IMAGE=x initrd=bty-netboot-x86_64.initrd console=ttyS0,115200 bty.server=http://192.168.77.1:8080 \
             bty.mac=52:54:00:11:22:33 bty.ip=192.168.77.50/255.255.255.0 bty.gw=192.168.77.1 bty.dns=192.168.77.1",
        );
        assert_eq!(p.server.as_deref(), Some("http://192.168.77.1:8080"));
        assert_eq!(p.mac.as_deref(), Some("52:54:00:11:22:33"));
        assert_eq!(p.ip, Some(Ipv4Net { addr: ip("192.168.77.50"), prefix: 24 }));
        assert_eq!(p.gateway, Some(ip("192.168.77.1")));
        assert_eq!(p.dns, Some(ip("192.168.77.1")));
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn reads_the_stick_keys() {
        let p = parse("console=ttyS0 bty.mode=usb bty.auto=debian.img.zst@S123 bty.auto=other");
        assert_eq!(p.mode.as_deref(), Some("usb"));
        assert_eq!(p.auto.as_deref(), Some("debian.img.zst@S123"));
        assert_eq!(parse("bty.auto= bty.mode=").auto, None);
    }

    #[test]
    fn accepts_prefix_length_and_the_comma_gateway_form() {
        let p = parse("bty.ip=10.0.2.15/16,10.0.2.2");
        assert_eq!(p.ip, Some(Ipv4Net { addr: ip("10.0.2.15"), prefix: 16 }));
        assert_eq!(p.gateway, Some(ip("10.0.2.2")));
    }

    #[test]
    fn empty_ipxe_expansions_mean_absent() {
        let p = parse("bty.ip= bty.gw= bty.dns= bty.mac=aa:bb:cc:dd:ee:ff");
        assert_eq!(p.ip, None);
        assert_eq!(p.gateway, None);
        assert_eq!(p.dns, None);
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn bad_values_become_warnings_not_failures() {
        let p = parse("bty.ip=300.1.1.1/24 bty.gw=nope bty.ip=10.0.0.1/24");
        assert_eq!(p.ip, None, "the first occurrence wins, even when it is wrong");
        assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
        let p = parse("bty.ip=10.0.0.1/255.0.255.0");
        assert!(p.warnings[0].contains("contiguous"), "{:?}", p.warnings);
        let p = parse("bty.ip=10.0.0.1/33");
        assert_eq!(p.ip, None);
    }

    #[test]
    fn netmask_follows_the_prefix() {
        let cases = [(0, "0.0.0.0"), (8, "255.0.0.0"), (23, "255.255.254.0"), (32, "255.255.255.255")];
        for (prefix, mask) in cases {
            assert_eq!(Ipv4Net { addr: ip("1.2.3.4"), prefix }.netmask(), ip(mask), "/{prefix}");
        }
    }
}
