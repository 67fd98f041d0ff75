//! Option negotiation (RFC 2347): which of a read request's options this server accepts, with
//! which values, and the OACK that says so.
//!
//! Known options: `blksize` (RFC 2348, at least 8; anything larger, beyond 65464 included, is
//! lowered to the server's cap, as tftpd-hpa does), `tsize` (RFC 2349, answered with the real
//! size whatever the client put there: atftp's documented `--option "tsize enable"` sends the
//! word `enable`), `timeout` (RFC 2349: 1–[`MAX_TIMEOUT_SECS`] s is echoed and used; a longer
//! one, which would let one silent client hold a transfer slot for minutes, is left out of the
//! OACK, so the server keeps its own) and `windowsize` (RFC 7440, 1–65535, lowered to the
//! server's cap). Unknown options are ignored and not echoed. Any other value outside its RFC
//! range is refused with ERROR 8, which is what RFC 2347 gives a server that will not take an
//! option. This module neither opens files nor sends packets.

use std::time::Duration;

use super::packet::encode_option_ack;

/// The block size without options (RFC 1350).
pub const DEFAULT_BLKSIZE: u16 = 512;
/// The largest block size RFC 2348 allows.
pub const MAX_BLKSIZE: u16 = 65464;
/// The smallest block size RFC 2348 allows.
pub const MIN_BLKSIZE: u16 = 8;
/// The longest retransmission timeout a client may ask for.
pub const MAX_TIMEOUT_SECS: u64 = 5;

/// The kernel memory one window may take in the client's socket receive buffer. A window is
/// sent back to back, so it must fit there whole: Linux gives a UDP socket 208 KiB by default
/// and charges each datagram its buffer (payload plus headers, rounded up to a power of two)
/// plus bookkeeping. Past that the client drops blocks of every window and each loss costs a
/// retransmission timeout; measured on loopback, blksize 8192 fell from 10 MB/s at window 8 to
/// 0.4 MB/s at window 16. This also bounds the memory a transfer holds.
pub const WINDOW_BUDGET: usize = 160 * 1024;

/// What one block of `blksize` costs in a Linux socket receive buffer (an estimate).
fn buffer_cost(blksize: u16) -> usize {
    (usize::from(blksize) + 384).next_power_of_two() + 256
}

/// What the server allows this client; the server picks these per client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest block size to grant.
    pub max_blksize: u16,
    /// Largest window to grant.
    pub max_windowsize: u16,
}

/// The outcome of a successful negotiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Block size in bytes.
    pub blksize: u16,
    /// Blocks sent before waiting for an ACK.
    pub windowsize: u16,
    /// The retransmission timeout the client asked for, if it asked and the value was valid.
    pub timeout: Option<Duration>,
    /// Whether the client asked for the transfer size.
    pub tsize: bool,
    /// The accepted options in the client's order, to echo in the OACK.
    accepted: Vec<Accepted>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accepted {
    Blksize,
    Tsize,
    Timeout(u8),
    Windowsize,
}

/// A refused option: the message for the ERROR 8 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

/// Negotiates a request's `(name, value)` options against `limits`.
pub fn negotiate(options: &[(&str, &str)], limits: Limits) -> Result<Negotiated, Refusal> {
    let mut n = Negotiated::plain();
    let mut seen = Vec::with_capacity(4);
    for (name, value) in options {
        let name = name.to_ascii_lowercase();
        // A repeated option keeps its first value, as tftpd-hpa does.
        if seen.contains(&name) {
            continue;
        }
        seen.push(name.clone());
        match name.as_str() {
            "blksize" => {
                let asked = ranged(value, MIN_BLKSIZE.into(), u64::MAX).ok_or_else(|| {
                    Refusal(format!("blksize {value} is not a number of at least {MIN_BLKSIZE}"))
                })?;
                n.blksize =
                    asked.min(MAX_BLKSIZE.into()).min(limits.max_blksize.max(MIN_BLKSIZE).into()) as u16;
                n.accepted.push(Accepted::Blksize);
            }
            "windowsize" => {
                let asked = ranged(value, 1, 65535)
                    .ok_or_else(|| Refusal(format!("windowsize {value} is outside 1..65535")))?;
                n.windowsize = (asked as u16).min(limits.max_windowsize.max(1));
                n.accepted.push(Accepted::Windowsize);
            }
            "timeout" => {
                // RFC 2349: a server that does not accept the value leaves it out of the OACK.
                if let Some(secs) = ranged(value, 1, MAX_TIMEOUT_SECS) {
                    n.timeout = Some(Duration::from_secs(secs));
                    n.accepted.push(Accepted::Timeout(secs as u8));
                }
            }
            "tsize" => {
                n.tsize = true;
                n.accepted.push(Accepted::Tsize);
            }
            _ => {}
        }
    }
    let fits = (WINDOW_BUDGET / buffer_cost(n.blksize)).clamp(1, usize::from(u16::MAX)) as u16;
    n.windowsize = n.windowsize.min(fits);
    Ok(n)
}

/// Parses a decimal option value within `min..=max`.
fn ranged(value: &str, min: u64, max: u64) -> Option<u64> {
    let v: u64 = value.trim().parse().ok()?;
    (min..=max).contains(&v).then_some(v)
}

impl Negotiated {
    /// The negotiation a request without options gets (RFC 1350 behaviour, no OACK).
    pub fn plain() -> Negotiated {
        Negotiated {
            blksize: DEFAULT_BLKSIZE,
            windowsize: 1,
            timeout: None,
            tsize: false,
            accepted: Vec::new(),
        }
    }

    /// The OACK packet, with `tsize` (the size the client will receive) filled in, or `None`
    /// when there is nothing to acknowledge and the transfer starts with DATA block 1.
    ///
    /// A size of 0 is left out: curl (7.88) treats `tsize 0` in an OACK as illegal and fails
    /// the download of an empty file, and RFC 2347 lets a server omit any option it likes.
    pub fn option_ack(&self, tsize: u64) -> Option<Vec<u8>> {
        let values: Vec<(&str, String)> = self
            .accepted
            .iter()
            .filter(|a| !(**a == Accepted::Tsize && tsize == 0))
            .map(|a| match a {
                Accepted::Blksize => ("blksize", self.blksize.to_string()),
                Accepted::Tsize => ("tsize", tsize.to_string()),
                Accepted::Timeout(s) => ("timeout", s.to_string()),
                Accepted::Windowsize => ("windowsize", self.windowsize.to_string()),
            })
            .collect();
        if values.is_empty() {
            return None;
        }
        let mut out = Vec::with_capacity(64);
        encode_option_ack(&mut out, values.iter().map(|(n, v)| (*n, v.as_str())));
        Some(out)
    }

    /// The options as `name=value` words for the transfer's log line.
    pub fn describe(&self) -> String {
        let mut words = vec![format!("blksize={}", self.blksize)];
        if self.windowsize != 1 {
            words.push(format!("windowsize={}", self.windowsize));
        }
        if let Some(t) = self.timeout {
            words.push(format!("timeout={}", t.as_secs()));
        }
        if self.tsize {
            words.push("tsize".to_string());
        }
        words.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tftp::packet::Packet;

    const REMOTE: Limits = Limits { max_blksize: 1468, max_windowsize: 64 };

    fn oack_pairs(n: &Negotiated, tsize: u64) -> Vec<(String, String)> {
        let Some(bytes) = n.option_ack(tsize) else { return Vec::new() };
        let Ok(Packet::OptionAck(pairs)) = Packet::parse(&bytes) else { panic!("not an OACK") };
        pairs.into_iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn ovmf_options_are_granted_and_echoed_in_order() {
        let n = negotiate(&[("tsize", "0"), ("blksize", "1468"), ("windowsize", "4")], REMOTE).unwrap();
        assert_eq!((n.blksize, n.windowsize, n.tsize), (1468, 4, true));
        assert_eq!(
            oack_pairs(&n, 1234),
            pairs(&[("tsize", "1234"), ("blksize", "1468"), ("windowsize", "4")])
        );
    }

    #[test]
    fn values_above_the_caps_are_lowered() {
        let n = negotiate(&[("BLKSIZE", "65464"), ("WindowSize", "1000")], REMOTE).unwrap();
        assert_eq!((n.blksize, n.windowsize), (1468, 64));
        assert_eq!(oack_pairs(&n, 0), pairs(&[("blksize", "1468"), ("windowsize", "64")]));
    }

    #[test]
    fn a_window_fits_a_default_socket_buffer() {
        let local = Limits { max_blksize: MAX_BLKSIZE, max_windowsize: 64 };
        let granted = |blksize: &str| {
            let n = negotiate(&[("blksize", blksize), ("windowsize", "64")], local).unwrap();
            n.windowsize
        };
        assert_eq!(granted("512"), 64);
        assert_eq!(granted("1468"), 64);
        assert_eq!(granted("8192"), 9);
        assert_eq!(granted("65464"), 1);
        let n = negotiate(&[("blksize", "8192"), ("windowsize", "64")], local).unwrap();
        assert_eq!(oack_pairs(&n, 0), pairs(&[("blksize", "8192"), ("windowsize", "9")]));
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for opts in
            [[("blksize", "7")], [("blksize", "big")], [("windowsize", "0")], [("windowsize", "70000")]]
        {
            assert!(negotiate(&opts, REMOTE).is_err(), "{opts:?}");
        }
    }

    #[test]
    fn unknown_options_and_bad_timeouts_are_not_echoed() {
        let n = negotiate(&[("multicast", ""), ("timeout", "0"), ("rollover", "0")], REMOTE).unwrap();
        assert_eq!(n.option_ack(10), None);
        assert_eq!(n.timeout, None);
        let n = negotiate(&[("timeout", "5")], REMOTE).unwrap();
        assert_eq!(n.timeout, Some(Duration::from_secs(5)));
        assert_eq!(oack_pairs(&n, 0), pairs(&[("timeout", "5")]));
        // Longer waits would let a silent client hold its slot for minutes: not taken.
        let n = negotiate(&[("timeout", "255"), ("blksize", "1024")], REMOTE).unwrap();
        assert_eq!(n.timeout, None);
        assert_eq!(oack_pairs(&n, 0), pairs(&[("blksize", "1024")]));
    }

    #[test]
    fn a_blksize_beyond_the_rfc_maximum_is_lowered_as_tftpd_hpa_does() {
        let local = Limits { max_blksize: MAX_BLKSIZE, max_windowsize: 1 };
        let n = negotiate(&[("blksize", "999999")], local).unwrap();
        assert_eq!(n.blksize, MAX_BLKSIZE);
        assert_eq!(oack_pairs(&n, 0), pairs(&[("blksize", "65464")]));
        assert_eq!(negotiate(&[("blksize", "999999")], REMOTE).unwrap().blksize, REMOTE.max_blksize);
    }

    #[test]
    fn tsize_with_any_value_is_answered_with_the_real_size() {
        let n = negotiate(&[("tsize", "enable")], REMOTE).unwrap();
        assert_eq!(oack_pairs(&n, 99), pairs(&[("tsize", "99")]));
    }

    #[test]
    fn a_zero_tsize_is_left_out_of_the_oack() {
        let n = negotiate(&[("tsize", "0")], REMOTE).unwrap();
        assert_eq!(n.option_ack(0), None);
        let n = negotiate(&[("tsize", "0"), ("blksize", "1024")], REMOTE).unwrap();
        assert_eq!(oack_pairs(&n, 0), pairs(&[("blksize", "1024")]));
    }

    #[test]
    fn a_repeated_option_keeps_its_first_value() {
        let n = negotiate(&[("blksize", "1024"), ("blksize", "999999")], REMOTE).unwrap();
        assert_eq!(n.blksize, 1024);
    }
}
