//! IPv4 interface configuration through the classic socket ioctls (see netdevice(7), route(7)):
//! bring a link up, give it an address and netmask, add a default route.
//!
//! This is the whole of what a netboot agent needs: one interface, one address, one gateway.
//! It deliberately does not speak rtnetlink (no IPv6, no multiple addresses, no route tables)
//! and does not decide which interface or address to use (`agent::net` does).

use crate::error::{Context, Error, Result};
use rustix::fd::OwnedFd;
use rustix::ioctl::{ioctl, Opcode, Updater};
use std::net::Ipv4Addr;

const SIOCGIFFLAGS: Opcode = 0x8913;
const SIOCSIFFLAGS: Opcode = 0x8914;
const SIOCSIFADDR: Opcode = 0x8916;
const SIOCSIFNETMASK: Opcode = 0x891c;
const SIOCADDRT: Opcode = 0x890b;
const IFF_UP: i16 = 0x1;
const RTF_UP: u16 = 0x1;
const RTF_GATEWAY: u16 = 0x2;
const AF_INET: u16 = 2;

/// `struct ifreq`: the interface name and a 24-byte union (address, flags, …).
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    data: [u8; 24],
}

/// `struct sockaddr` holding a `sockaddr_in` (family, port, address, padding).
#[repr(C)]
#[derive(Clone, Copy)]
struct SockAddr {
    family: u16,
    data: [u8; 14],
}

/// `struct rtentry` as the kernel lays it out on 64-bit and 32-bit Linux alike (route(7)).
#[repr(C)]
struct RtEntry {
    pad1: usize,
    dst: SockAddr,
    gateway: SockAddr,
    genmask: SockAddr,
    flags: u16,
    pad2: i16,
    pad3: usize,
    pad4: *mut u8,
    metric: i16,
    dev: *mut u8,
    mtu: usize,
    window: usize,
    irtt: u16,
}

impl SockAddr {
    fn inet(addr: Ipv4Addr) -> SockAddr {
        let mut data = [0u8; 14];
        // Bytes 0..2 are the port (unused here), 2..6 the address in network order.
        data[2..6].copy_from_slice(&addr.octets());
        SockAddr { family: AF_INET, data }
    }

    fn bytes(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..2].copy_from_slice(&self.family.to_ne_bytes());
        out[2..].copy_from_slice(&self.data);
        out
    }
}

fn ifreq(name: &str) -> Result<IfReq> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= 16 || bytes.contains(&0) {
        return Err(Error::invalid(format!("{name:?} is not a valid interface name")));
    }
    let mut req = IfReq { name: [0; 16], data: [0; 24] };
    req.name[..bytes.len()].copy_from_slice(bytes);
    Ok(req)
}

fn inet_socket() -> Result<OwnedFd> {
    rustix::net::socket(rustix::net::AddressFamily::INET, rustix::net::SocketType::DGRAM, None)
        .map_err(std::io::Error::from)
        .context("opening an AF_INET socket for interface ioctls")
}

/// Runs an `ifreq` ioctl (get or set) on `req`.
fn ifreq_ioctl<const OPCODE: Opcode>(sock: &OwnedFd, req: &mut IfReq) -> std::io::Result<()> {
    // SAFETY: every opcode used with this helper (SIOC[GS]IFFLAGS, SIOCSIFADDR, SIOCSIFNETMASK)
    // takes a pointer to a `struct ifreq`, which `IfReq` reproduces (16-byte name + 24-byte
    // union, 40 bytes); the kernel reads/writes only within it for the duration of the call.
    unsafe { ioctl(sock, Updater::<OPCODE, IfReq>::new(req)) }.map_err(std::io::Error::from)
}

/// Sets `IFF_UP` on interface `name` (SIOCGIFFLAGS + SIOCSIFFLAGS).
pub fn set_link_up(name: &str) -> Result<()> {
    let sock = inet_socket()?;
    let mut req = ifreq(name)?;
    ifreq_ioctl::<SIOCGIFFLAGS>(&sock, &mut req).with_context(|| format!("reading flags of {name}"))?;
    let flags = i16::from_ne_bytes([req.data[0], req.data[1]]) | IFF_UP;
    req.data[..2].copy_from_slice(&flags.to_ne_bytes());
    ifreq_ioctl::<SIOCSIFFLAGS>(&sock, &mut req).with_context(|| format!("bringing {name} up"))
}

/// Gives interface `name` the IPv4 address `addr` with `netmask` (SIOCSIFADDR, SIOCSIFNETMASK).
/// The kernel adds the connected route for the subnet itself.
pub fn set_ipv4(name: &str, addr: Ipv4Addr, netmask: Ipv4Addr) -> Result<()> {
    let sock = inet_socket()?;
    let mut req = ifreq(name)?;
    req.data[..16].copy_from_slice(&SockAddr::inet(addr).bytes());
    ifreq_ioctl::<SIOCSIFADDR>(&sock, &mut req)
        .with_context(|| format!("setting address {addr} on {name}"))?;
    let mut req = ifreq(name)?;
    req.data[..16].copy_from_slice(&SockAddr::inet(netmask).bytes());
    ifreq_ioctl::<SIOCSIFNETMASK>(&sock, &mut req)
        .with_context(|| format!("setting netmask {netmask} on {name}"))
}

/// Adds the default route via `gateway` (SIOCADDRT); an existing identical route is success.
pub fn add_default_route(gateway: Ipv4Addr) -> Result<()> {
    let sock = inet_socket()?;
    let any = SockAddr::inet(Ipv4Addr::UNSPECIFIED);
    let mut rt = RtEntry {
        pad1: 0,
        dst: any,
        gateway: SockAddr::inet(gateway),
        genmask: any,
        flags: RTF_UP | RTF_GATEWAY,
        pad2: 0,
        pad3: 0,
        pad4: std::ptr::null_mut(),
        metric: 0,
        dev: std::ptr::null_mut(),
        mtu: 0,
        window: 0,
        irtt: 0,
    };
    // SAFETY: SIOCADDRT takes a pointer to a `struct rtentry`, which `RtEntry` reproduces
    // field by field with C layout; its pointers are null (no device name), which the kernel
    // accepts, and it only reads the struct during the call.
    let result = unsafe { ioctl(&sock, Updater::<SIOCADDRT, RtEntry>::new(&mut rt)) };
    match result {
        Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
        Err(e) => Err(std::io::Error::from(e)).with_context(|| format!("adding default route via {gateway}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_structs_have_the_kernel_sizes() {
        assert_eq!(std::mem::size_of::<IfReq>(), 40);
        assert_eq!(std::mem::size_of::<SockAddr>(), 16);
        #[cfg(target_pointer_width = "64")]
        assert_eq!(std::mem::size_of::<RtEntry>(), 120);
    }

    #[test]
    fn ifreq_refuses_names_the_kernel_cannot_hold() {
        assert!(ifreq("eth0").is_ok());
        assert!(ifreq("").is_err());
        assert!(ifreq("a-name-far-too-long").is_err());
    }

    #[test]
    fn sockaddr_puts_the_address_in_network_order_after_the_port() {
        let b = SockAddr::inet(Ipv4Addr::new(192, 168, 77, 1)).bytes();
        assert_eq!(&b[4..8], &[192, 168, 77, 1]);
        assert_eq!(u16::from_ne_bytes([b[0], b[1]]), AF_INET);
    }
}
