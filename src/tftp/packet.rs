//! The TFTP wire codec: bytes from the network become a typed [`Packet`], and the few packets a
//! read-only server sends are serialised into caller-owned buffers.
//!
//! Parsing borrows from the datagram (no allocation but the option list of a request) and never
//! panics, whatever the input: every length is checked before it is used. Leniency is deliberate
//! where real clients differ (option names in any case, a trailing option without a value is
//! ignored); anything else that does not fit RFC 1350/2347 is a [`ParseError`]. This module does
//! not decide what a packet means for a transfer; `transfer.rs` and `server.rs` do.

use std::fmt;

/// TFTP opcodes (RFC 1350 §5, RFC 2347).
const RRQ: u16 = 1;
const WRQ: u16 = 2;
const DATA: u16 = 3;
const ACK: u16 = 4;
const ERROR: u16 = 5;
const OACK: u16 = 6;

/// Length of a DATA header (opcode + block number); a DATA packet is this plus the payload.
pub const DATA_HEADER_LEN: usize = 4;

/// One parsed TFTP packet, borrowing from the datagram it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// Read request.
    Read(Request<'a>),
    /// Write request (always refused by this server).
    Write(Request<'a>),
    /// A data block.
    Data { block: u16, data: &'a [u8] },
    /// An acknowledgement of a data block (block 0 acknowledges an OACK).
    Ack { block: u16 },
    /// An error report; the transfer it belongs to is over.
    Error { code: ErrorCode, message: &'a [u8] },
    /// Option acknowledgement (RFC 2347), as (name, value) pairs.
    OptionAck(Vec<(&'a str, &'a str)>),
}

/// The body of a read or write request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// The file name as sent: arbitrary bytes without NUL, not yet checked against any root.
    pub filename: &'a [u8],
    /// The transfer mode.
    pub mode: Mode,
    /// Options (RFC 2347) in the order sent, names lowercased by the negotiation, not here.
    pub options: Vec<(&'a str, &'a str)>,
}

/// Transfer mode of a request (RFC 1350 §5; case-insensitive on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bytes as they are.
    Octet,
    /// Text with CR LF line ends (`netascii.rs`).
    Netascii,
    /// The obsolete mail mode, parsed only so it can be refused with a clear message.
    Mail,
}

impl Mode {
    /// The mode's name as written on the wire and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Octet => "octet",
            Mode::Netascii => "netascii",
            Mode::Mail => "mail",
        }
    }
}

/// TFTP error codes (RFC 1350 appendix, RFC 2347 code 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 0: not defined, see the message (used for "busy" and I/O failures).
    NotDefined,
    /// 1: file not found.
    FileNotFound,
    /// 2: access violation.
    AccessViolation,
    /// 3: disk full or allocation exceeded.
    DiskFull,
    /// 4: illegal TFTP operation.
    IllegalOperation,
    /// 5: unknown transfer ID.
    UnknownTid,
    /// 6: file already exists.
    FileExists,
    /// 7: no such user.
    NoSuchUser,
    /// 8: option negotiation refused (RFC 2347).
    BadOptions,
    /// Any other code a peer sent.
    Other(u16),
}

impl ErrorCode {
    /// The numeric code on the wire.
    pub fn code(self) -> u16 {
        match self {
            ErrorCode::NotDefined => 0,
            ErrorCode::FileNotFound => 1,
            ErrorCode::AccessViolation => 2,
            ErrorCode::DiskFull => 3,
            ErrorCode::IllegalOperation => 4,
            ErrorCode::UnknownTid => 5,
            ErrorCode::FileExists => 6,
            ErrorCode::NoSuchUser => 7,
            ErrorCode::BadOptions => 8,
            ErrorCode::Other(n) => n,
        }
    }

    /// The code for a number read from the wire.
    pub fn from_code(n: u16) -> ErrorCode {
        match n {
            0 => ErrorCode::NotDefined,
            1 => ErrorCode::FileNotFound,
            2 => ErrorCode::AccessViolation,
            3 => ErrorCode::DiskFull,
            4 => ErrorCode::IllegalOperation,
            5 => ErrorCode::UnknownTid,
            6 => ErrorCode::FileExists,
            7 => ErrorCode::NoSuchUser,
            8 => ErrorCode::BadOptions,
            n => ErrorCode::Other(n),
        }
    }
}

/// Why a datagram is not a TFTP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than the smallest packet of its kind.
    Truncated,
    /// An opcode TFTP does not define.
    UnknownOpcode(u16),
    /// A request without a NUL-terminated file name and mode, or an empty file name.
    MalformedRequest,
    /// A mode other than octet, netascii or mail.
    UnknownMode,
    /// An OACK whose options are not NUL-terminated text pairs.
    MalformedOptionAck,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Truncated => f.write_str("truncated packet"),
            ParseError::UnknownOpcode(op) => write!(f, "unknown opcode {op}"),
            ParseError::MalformedRequest => f.write_str("malformed request"),
            ParseError::UnknownMode => f.write_str("unknown transfer mode"),
            ParseError::MalformedOptionAck => f.write_str("malformed option acknowledgement"),
        }
    }
}

impl<'a> Packet<'a> {
    /// Parses one datagram. Never panics; anything that is not a packet is an error.
    pub fn parse(bytes: &'a [u8]) -> Result<Packet<'a>, ParseError> {
        let (op, body) = split_u16(bytes).ok_or(ParseError::Truncated)?;
        match op {
            RRQ => parse_request(body).map(Packet::Read),
            WRQ => parse_request(body).map(Packet::Write),
            DATA => {
                let (block, data) = split_u16(body).ok_or(ParseError::Truncated)?;
                Ok(Packet::Data { block, data })
            }
            ACK => {
                // Trailing bytes after the block number are tolerated, as most servers do.
                let (block, _) = split_u16(body).ok_or(ParseError::Truncated)?;
                Ok(Packet::Ack { block })
            }
            ERROR => {
                let (code, rest) = split_u16(body).ok_or(ParseError::Truncated)?;
                // The message should be NUL-terminated; a missing NUL still yields the text.
                let message = rest.split(|&b| b == 0).next().unwrap_or_default();
                Ok(Packet::Error { code: ErrorCode::from_code(code), message })
            }
            OACK => {
                let mut strings = body.split(|&b| b == 0);
                let mut options = Vec::new();
                while let (Some(name), Some(value)) = (strings.next(), strings.next()) {
                    if name.is_empty() {
                        break;
                    }
                    let name = std::str::from_utf8(name).map_err(|_| ParseError::MalformedOptionAck)?;
                    let value = std::str::from_utf8(value).map_err(|_| ParseError::MalformedOptionAck)?;
                    options.push((name, value));
                }
                Ok(Packet::OptionAck(options))
            }
            other => Err(ParseError::UnknownOpcode(other)),
        }
    }

    /// Serialises the packet into `out` (cleared first). Servers use the cheaper
    /// [`data_header`], [`encode_error`] and [`encode_option_ack`] on hot paths; this is the
    /// general form for clients, tests and the fuzz target's round trip.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        match self {
            Packet::Read(r) | Packet::Write(r) => {
                let op = if matches!(self, Packet::Read(_)) { RRQ } else { WRQ };
                out.extend_from_slice(&op.to_be_bytes());
                out.extend_from_slice(r.filename);
                out.push(0);
                out.extend_from_slice(r.mode.as_str().as_bytes());
                out.push(0);
                push_options(out, r.options.iter().map(|(n, v)| (*n, *v)));
            }
            Packet::Data { block, data } => {
                out.extend_from_slice(&data_header(*block));
                out.extend_from_slice(data);
            }
            Packet::Ack { block } => {
                out.extend_from_slice(&ACK.to_be_bytes());
                out.extend_from_slice(&block.to_be_bytes());
            }
            Packet::Error { code, message } => {
                out.extend_from_slice(&ERROR.to_be_bytes());
                out.extend_from_slice(&code.code().to_be_bytes());
                out.extend_from_slice(message);
                out.push(0);
            }
            Packet::OptionAck(options) => {
                out.extend_from_slice(&OACK.to_be_bytes());
                push_options(out, options.iter().map(|(n, v)| (*n, *v)));
            }
        }
    }
}

/// The 4-byte header of DATA block `block`, written in front of the payload in a reused buffer.
pub fn data_header(block: u16) -> [u8; DATA_HEADER_LEN] {
    let [o0, o1] = DATA.to_be_bytes();
    let [b0, b1] = block.to_be_bytes();
    [o0, o1, b0, b1]
}

/// Appends an ERROR packet to `out`. A NUL inside `message` would end it early on the wire, so
/// it is replaced; messages here are our own text anyway.
pub fn encode_error(out: &mut Vec<u8>, code: ErrorCode, message: &str) {
    out.extend_from_slice(&ERROR.to_be_bytes());
    out.extend_from_slice(&code.code().to_be_bytes());
    out.extend(message.bytes().map(|b| if b == 0 { b' ' } else { b }));
    out.push(0);
}

/// Appends an OACK packet carrying `options` to `out`.
pub fn encode_option_ack<'o>(out: &mut Vec<u8>, options: impl IntoIterator<Item = (&'o str, &'o str)>) {
    out.extend_from_slice(&OACK.to_be_bytes());
    push_options(out, options);
}

fn push_options<'o>(out: &mut Vec<u8>, options: impl IntoIterator<Item = (&'o str, &'o str)>) {
    for (name, value) in options {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value.as_bytes());
        out.push(0);
    }
}

fn split_u16(bytes: &[u8]) -> Option<(u16, &[u8])> {
    match bytes {
        [a, b, rest @ ..] => Some((u16::from_be_bytes([*a, *b]), rest)),
        _ => None,
    }
}

/// Splits off one NUL-terminated string; `None` when there is no NUL.
fn take_cstr(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let nul = bytes.iter().position(|&b| b == 0)?;
    Some((&bytes[..nul], &bytes[nul + 1..]))
}

fn parse_request(body: &[u8]) -> Result<Request<'_>, ParseError> {
    let (filename, rest) = take_cstr(body).ok_or(ParseError::MalformedRequest)?;
    let (mode, mut rest) = take_cstr(rest).ok_or(ParseError::MalformedRequest)?;
    if filename.is_empty() {
        return Err(ParseError::MalformedRequest);
    }
    let mode = if mode.eq_ignore_ascii_case(b"octet") {
        Mode::Octet
    } else if mode.eq_ignore_ascii_case(b"netascii") {
        Mode::Netascii
    } else if mode.eq_ignore_ascii_case(b"mail") {
        Mode::Mail
    } else {
        return Err(ParseError::UnknownMode);
    };
    let mut options = Vec::new();
    // Pairs of NUL-terminated strings. Real clients pad, truncate or leave a name without a
    // value; those leftovers are ignored rather than failing the whole request, and so is any
    // option that is not text (it cannot name an option we know).
    while let Some((name, after_name)) = take_cstr(rest) {
        let Some((value, after_value)) = take_cstr(after_name) else { break };
        rest = after_value;
        if name.is_empty() {
            continue;
        }
        if let (Ok(name), Ok(value)) = (std::str::from_utf8(name), std::str::from_utf8(value)) {
            options.push((name, value));
        }
    }
    Ok(Request { filename, mode, options })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rrq(parts: &[&[u8]]) -> Vec<u8> {
        let mut v = vec![0, 1];
        for p in parts {
            v.extend_from_slice(p);
            v.push(0);
        }
        v
    }

    #[test]
    fn read_request_with_ovmf_options_parses_in_order() {
        let bytes =
            rrq(&[b"snponly.efi", b"octet", b"tsize", b"0", b"blksize", b"1468", b"windowsize", b"4"]);
        let Packet::Read(r) = Packet::parse(&bytes).unwrap() else { panic!("not a read") };
        assert_eq!(r.filename, b"snponly.efi");
        assert_eq!(r.mode, Mode::Octet);
        assert_eq!(r.options, vec![("tsize", "0"), ("blksize", "1468"), ("windowsize", "4")]);
    }

    #[test]
    fn mode_is_case_insensitive_and_unknown_modes_are_errors() {
        let bytes = rrq(&[b"f", b"NetASCII"]);
        let Packet::Read(r) = Packet::parse(&bytes).unwrap() else { panic!() };
        assert_eq!(r.mode, Mode::Netascii);
        assert_eq!(Packet::parse(&rrq(&[b"f", b"binary"])), Err(ParseError::UnknownMode));
    }

    #[test]
    fn malformed_requests_are_errors() {
        let cases: &[&[u8]] =
            &[b"\x00\x01", b"\x00\x01name", b"\x00\x01name\x00octet", b"\x00\x01\x00octet\x00"];
        for case in cases {
            assert_eq!(Packet::parse(case), Err(ParseError::MalformedRequest), "{case:?}");
        }
    }

    #[test]
    fn dangling_option_name_is_ignored() {
        let mut bytes = rrq(&[b"f", b"octet", b"blksize", b"1024"]);
        bytes.extend_from_slice(b"tsize\0");
        let Packet::Read(r) = Packet::parse(&bytes).unwrap() else { panic!() };
        assert_eq!(r.options, vec![("blksize", "1024")]);
    }

    #[test]
    fn short_and_unknown_packets_are_errors() {
        assert_eq!(Packet::parse(b""), Err(ParseError::Truncated));
        assert_eq!(Packet::parse(b"\x00"), Err(ParseError::Truncated));
        assert_eq!(Packet::parse(b"\x00\x04\x01"), Err(ParseError::Truncated));
        assert_eq!(Packet::parse(b"\x00\x09abc"), Err(ParseError::UnknownOpcode(9)));
    }

    #[test]
    fn ack_data_and_error_parse() {
        assert_eq!(Packet::parse(b"\x00\x04\xff\xfe"), Ok(Packet::Ack { block: 0xfffe }));
        assert_eq!(Packet::parse(b"\x00\x03\x00\x01hi"), Ok(Packet::Data { block: 1, data: b"hi" }));
        assert_eq!(
            Packet::parse(b"\x00\x05\x00\x08no\x00"),
            Ok(Packet::Error { code: ErrorCode::BadOptions, message: b"no" })
        );
    }

    #[test]
    fn every_packet_round_trips_through_encode() {
        let packets = [
            Packet::Read(Request { filename: b"a/b", mode: Mode::Netascii, options: vec![("tsize", "0")] }),
            Packet::Write(Request { filename: b"x", mode: Mode::Octet, options: vec![] }),
            Packet::Data { block: 65535, data: b"payload" },
            Packet::Ack { block: 0 },
            Packet::Error { code: ErrorCode::Other(42), message: b"odd" },
            Packet::OptionAck(vec![("blksize", "1468"), ("windowsize", "4")]),
        ];
        let mut buf = Vec::new();
        for p in packets {
            p.encode(&mut buf);
            assert_eq!(Packet::parse(&buf), Ok(p.clone()));
        }
    }

    #[test]
    fn encode_error_replaces_inner_nul() {
        let mut out = Vec::new();
        encode_error(&mut out, ErrorCode::AccessViolation, "a\0b");
        assert_eq!(out, b"\x00\x05\x00\x02a b\x00");
    }

    #[test]
    fn parse_never_panics_on_short_random_inputs() {
        // Every input up to 3 bytes, plus a deterministic spread of longer ones.
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let _ = Packet::parse(&[a, b]);
                let _ = Packet::parse(&[0, a, b]);
            }
        }
        let mut x: u32 = 1;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x % 7) as u8 // small values: many NULs and valid opcodes
                })
                .collect();
            let _ = Packet::parse(&bytes);
        }
    }
}
