//! The UDP side of bty-tftp: one socket that receives requests, and one thread with its own
//! socket (a new ephemeral port, RFC 1350's transfer ID) per transfer. A datagram reaching a
//! transfer's port from any other address or port gets ERROR 5 (unknown transfer ID) and
//! leaves the transfer alone, as RFC 1350 asks.
//!
//! Transfers cannot hold the server: each has a total lifetime ([`ServerConfig::max_lifetime`]),
//! and when every slot is taken a transfer whose client has acknowledged nothing for
//! [`STALL_EVICT`] gives its slot to the new request.
//!
//! The listening loop only parses and dispatches: a read request becomes a transfer thread
//! (unless the cap on concurrent transfers is reached, which gets a "busy" ERROR), a write
//! request gets ERROR 2, junk gets ERROR 4 or is dropped. Opening the file, negotiating and
//! sending happen on the transfer thread, so a slow disk or client never stalls the loop. Every
//! transfer ends in one log line and one [`TransferReport`] to the optional hook, which is how
//! bty-web turns failed boots into audit events. This module has no protocol logic of its own:
//! `packet`, `options`, `path` and `transfer` decide.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::netascii::{encoded_len, NetasciiFile};
use super::options::{negotiate, Limits, Refusal, MAX_BLKSIZE};
use super::packet::{encode_error, ErrorCode, Mode, Packet, ParseError};
use super::path::{Denied, Root};
use super::transfer::{BlockSource, OctetFile, Status, Transfer};
use crate::{log_info, log_warn, Context, Result};

/// How often blocked waits look at the shutdown flag.
const SHUTDOWN_POLL: Duration = Duration::from_millis(200);

/// A transfer whose client acknowledged nothing for this long loses its slot to a new request
/// when all slots are taken.
pub const STALL_EVICT: Duration = Duration::from_secs(3);

/// Everything the server can be told; [`Default`] gives the documented defaults.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The directory files are served from.
    pub root: PathBuf,
    /// Where requests are received (port 69 normally; port 0 picks a free one).
    pub listen: SocketAddr,
    /// Transfers running at once; further requests get a "busy" ERROR.
    pub max_transfers: usize,
    /// The largest block size granted to a remote client. 1468 fills a 1500-byte Ethernet
    /// frame; larger blocks need IP fragmentation, which firmware network stacks handle badly.
    pub max_blksize: u16,
    /// The largest block size granted to a loopback or link-local client, where fragments
    /// cost nothing.
    pub max_blksize_local: u16,
    /// The largest window (RFC 7440) granted.
    pub max_windowsize: u16,
    /// Retransmission timeout when the client does not ask for one.
    pub timeout: Duration,
    /// Consecutive timeouts before a transfer is abandoned.
    pub max_retries: u32,
    /// The longest a transfer may take from request to last ACK, however it progresses.
    pub max_lifetime: Duration,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            root: PathBuf::from("/var/lib/bty/boot"),
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 69),
            max_transfers: 64,
            max_blksize: 1468,
            max_blksize_local: MAX_BLKSIZE,
            max_windowsize: 64,
            timeout: Duration::from_secs(1),
            max_retries: 5,
            max_lifetime: Duration::from_secs(300),
        }
    }
}

/// What happened to one request, for the log and the hook.
#[derive(Debug, Clone)]
pub struct TransferReport {
    /// The client's address and port.
    pub client: SocketAddr,
    /// The requested name, lossily decoded.
    pub file: String,
    /// `read` or `write` (refused).
    pub kind: &'static str,
    /// The negotiated options, `name=value` words (empty when refused before negotiation).
    pub options: String,
    /// Data bytes the client acknowledged.
    pub bytes: u64,
    /// From the request to the end.
    pub duration: Duration,
    /// `Ok` when the whole file was acknowledged, otherwise what went wrong.
    pub result: std::result::Result<(), String>,
}

/// Called once per finished or refused request, on the thread that handled it.
pub type TransferHook = Arc<dyn Fn(&TransferReport) + Send + Sync>;

/// A bound TFTP server.
pub struct Server {
    socket: UdpSocket,
    root: Root,
    config: ServerConfig,
    hook: Option<TransferHook>,
}

/// Binds and runs a server until `shutdown` is set: the one-call entry point.
pub fn serve(config: ServerConfig, shutdown: &AtomicBool) -> Result<()> {
    Server::bind(config)?.run(shutdown)
}

impl Server {
    /// Opens the root and binds the listening socket.
    pub fn bind(config: ServerConfig) -> Result<Server> {
        let root = Root::open(&config.root)?;
        let socket = UdpSocket::bind(config.listen).map_err(|e| {
            let hint = match e.kind() {
                io::ErrorKind::PermissionDenied => "; port 69 needs root or CAP_NET_BIND_SERVICE",
                io::ErrorKind::AddrInUse => "; is another TFTP server (tftpd-hpa, dnsmasq) running?",
                _ => "",
            };
            crate::Error::from(e).context(format!("binding TFTP socket {}{hint}", config.listen))
        })?;
        socket.set_read_timeout(Some(SHUTDOWN_POLL)).context("setting the TFTP socket timeout")?;
        Ok(Server { socket, root, config, hook: None })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.socket.local_addr().context("reading the TFTP socket address")
    }

    /// Sets a hook called with every transfer's report (bty-web records failures as events).
    pub fn on_transfer(mut self, hook: impl Fn(&TransferReport) + Send + Sync + 'static) -> Server {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// Serves requests until `shutdown` is set; running transfers are told and joined.
    pub fn run(&self, shutdown: &AtomicBool) -> Result<()> {
        log_info!(
            "tftp: serving {} on {} (up to {} transfers)",
            self.root.path().display(),
            self.local_addr()?,
            self.config.max_transfers
        );
        let slots = Slots::default();
        std::thread::scope(|scope| {
            // Big enough for any datagram, so a long request is never silently truncated.
            let mut buf = vec![0u8; 65536];
            while !shutdown.load(Ordering::Relaxed) {
                let (len, peer) = match self.socket.recv_from(&mut buf) {
                    Ok(got) => got,
                    Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        log_warn!("tftp: receiving a request failed: {e}");
                        std::thread::sleep(SHUTDOWN_POLL);
                        continue;
                    }
                };
                let Some(request) = self.triage(&buf[..len], peer) else { continue };
                let Some(slot) = slots.claim(peer, self.config.max_transfers) else {
                    if slots.is_busy_with(peer) {
                        // The client resent its request before our first reply reached it.
                        continue;
                    }
                    self.reply_error(peer, ErrorCode::NotDefined, "server busy, try again");
                    self.finish(request.report(peer, Instant::now(), Err("refused: server busy".into())));
                    continue;
                };
                let spawned =
                    std::thread::Builder::new().name("tftp-transfer".into()).spawn_scoped(scope, move || {
                        let report = self.transfer(&request, peer, shutdown, &slot.watch);
                        drop(slot);
                        self.finish(report);
                    });
                if let Err(e) = spawned {
                    // Out of threads or memory: the client may retry later, like any busy case.
                    log_warn!("tftp: cannot start a transfer thread: {e}");
                    self.reply_error(peer, ErrorCode::NotDefined, "server busy, try again");
                }
            }
        });
        Ok(())
    }

    /// Decides what a datagram at the listening port gets: a transfer (returned), an ERROR
    /// (sent here), or nothing.
    fn triage(&self, bytes: &[u8], peer: SocketAddr) -> Option<OwnedRequest> {
        match Packet::parse(bytes) {
            Ok(Packet::Read(r)) => Some(OwnedRequest::from(&r)),
            Ok(Packet::Write(r)) => {
                self.reply_error(peer, ErrorCode::AccessViolation, "bty-tftp is read-only");
                let mut report =
                    OwnedRequest::from(&r).report(peer, Instant::now(), Err("refused: write".into()));
                report.kind = "write";
                self.finish(report);
                None
            }
            Err(
                e @ (ParseError::UnknownOpcode(_) | ParseError::MalformedRequest | ParseError::UnknownMode),
            ) => {
                self.reply_error(peer, ErrorCode::IllegalOperation, &e.to_string());
                crate::log_debug!("tftp: {peer}: {e}");
                None
            }
            // DATA, ACK, ERROR or OACK at the listening port belong to no transfer, and a
            // datagram too short to carry an opcode deserves no answer.
            Ok(_) | Err(_) => None,
        }
    }

    fn reply_error(&self, peer: SocketAddr, code: ErrorCode, message: &str) {
        let mut packet = Vec::with_capacity(message.len() + 5);
        encode_error(&mut packet, code, message);
        let _ = self.socket.send_to(&packet, peer);
    }

    /// Logs the report's line and calls the hook.
    fn finish(&self, report: TransferReport) {
        let result = match &report.result {
            Ok(()) => "ok".to_string(),
            Err(e) => e.clone(),
        };
        log_info!(
            "tftp: {} {} {:?} [{}] {} bytes in {:.3}s: {}",
            report.client,
            report.kind,
            report.file,
            report.options,
            report.bytes,
            report.duration.as_secs_f64(),
            result
        );
        if let Some(hook) = &self.hook {
            hook(&report);
        }
    }

    /// Runs one read transfer on its own socket and reports how it ended.
    fn transfer(
        &self,
        request: &OwnedRequest,
        peer: SocketAddr,
        shutdown: &AtomicBool,
        watch: &Watch,
    ) -> TransferReport {
        let started = Instant::now();
        let mut report = request.report(peer, started, Ok(()));
        let local = SocketAddr::new(unspecified_like(self.config.listen.ip()), 0);
        report.result = match UdpSocket::bind(local) {
            Ok(socket) => {
                let link =
                    Link { socket: &socket, peer, shutdown, watch, ends: started + self.config.max_lifetime };
                self.read_transfer(request, &link, &mut report)
            }
            Err(e) => Err(format!("opening a transfer socket: {e}")),
        };
        report.duration = started.elapsed();
        report
    }

    /// Opens, negotiates and drives the transfer, filling in the report's options and bytes.
    fn read_transfer(
        &self,
        request: &OwnedRequest,
        link: &Link<'_>,
        report: &mut TransferReport,
    ) -> std::result::Result<(), String> {
        if request.mode == Mode::Mail {
            return Err(link.refuse(ErrorCode::IllegalOperation, "mail mode is not supported"));
        }
        let file = match self.root.open_file(&request.filename) {
            Ok(f) => f,
            Err(Denied::NotFound) => return Err(link.refuse(ErrorCode::FileNotFound, "file not found")),
            Err(Denied::Forbidden(why)) => {
                link.refuse(ErrorCode::AccessViolation, "access violation");
                return Err(format!("refused: {why}"));
            }
        };
        let limits = Limits {
            max_blksize: if is_local(report.client.ip()) {
                self.config.max_blksize_local
            } else {
                self.config.max_blksize
            },
            max_windowsize: self.config.max_windowsize,
        };
        let pairs: Vec<(&str, &str)> =
            request.options.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let negotiated = match negotiate(&pairs, limits) {
            Ok(n) => n,
            Err(Refusal(why)) => return Err(link.refuse(ErrorCode::BadOptions, &why)),
        };
        report.options = format!("{} {}", request.mode.as_str(), negotiated.describe());
        let timeout = negotiated.timeout.unwrap_or(self.config.timeout);
        let retries = self.config.max_retries;
        match request.mode {
            Mode::Netascii => {
                let size =
                    if negotiated.tsize { encoded_len(&file).map_err(|e| link.io_failure(e))? } else { 0 };
                let oack = negotiated.option_ack(size);
                link.drive(
                    Transfer::new(NetasciiFile::new(file), &negotiated, oack, retries),
                    timeout,
                    &mut report.bytes,
                )
            }
            _ => {
                let size = file_len(&file).map_err(|e| link.io_failure(e))?;
                let oack = negotiated.option_ack(size);
                link.drive(
                    Transfer::new(OctetFile::new(file), &negotiated, oack, retries),
                    timeout,
                    &mut report.bytes,
                )
            }
        }
    }
}

fn file_len(file: &File) -> io::Result<u64> {
    file.metadata().map(|m| m.len())
}

/// The socket of one transfer, its client, and what may end it early.
struct Link<'a> {
    /// Not connected, so datagrams from other ports arrive and can be told ERROR 5.
    socket: &'a UdpSocket,
    peer: SocketAddr,
    shutdown: &'a AtomicBool,
    watch: &'a Watch,
    /// When the transfer's lifetime is over.
    ends: Instant,
}

impl Link<'_> {
    /// Sends an ERROR to the client and returns the log text for it.
    fn refuse(&self, code: ErrorCode, message: &str) -> String {
        let mut packet = Vec::with_capacity(message.len() + 5);
        encode_error(&mut packet, code, message);
        let _ = self.socket.send_to(&packet, self.peer);
        format!("refused: {message}")
    }

    fn io_failure(&self, e: io::Error) -> String {
        self.refuse(ErrorCode::NotDefined, "reading the file failed");
        format!("reading the file failed: {e}")
    }

    /// Runs the state machine against the socket until it is done or fails.
    fn drive<S: BlockSource>(
        &self,
        mut transfer: Transfer<S>,
        timeout: Duration,
        bytes: &mut u64,
    ) -> std::result::Result<(), String> {
        let result = self.exchange(&mut transfer, timeout);
        *bytes = transfer.bytes_acked();
        result
    }

    fn exchange<S: BlockSource>(
        &self,
        transfer: &mut Transfer<S>,
        timeout: Duration,
    ) -> std::result::Result<(), String> {
        let mut buf = [0u8; 1024];
        let mut armed: Option<Duration> = None;
        let mut status = transfer.start();
        let mut deadline = Instant::now() + timeout;
        let mut progress = 0;
        loop {
            for packet in transfer.packets() {
                if let Err(e) = self.socket.send_to(packet, self.peer) {
                    return Err(gone_or(e, "sending"));
                }
            }
            match status {
                Status::Sent => {
                    deadline = Instant::now() + timeout;
                    let acked = transfer.bytes_acked();
                    if acked > progress {
                        progress = acked;
                        self.watch.progressed();
                    }
                }
                Status::Ignored => {}
                Status::Done => return Ok(()),
                Status::Failed(f) => return Err(f.to_string()),
            }
            status = loop {
                if self.shutdown.load(Ordering::Relaxed) {
                    self.refuse(ErrorCode::NotDefined, "server shutting down");
                    return Err("server shutting down".into());
                }
                if self.watch.evicted.load(Ordering::Relaxed) {
                    self.refuse(ErrorCode::NotDefined, "transfer stalled; its slot went to another client");
                    return Err("stalled, evicted for another client".into());
                }
                let now = Instant::now();
                if now >= self.ends {
                    self.refuse(ErrorCode::NotDefined, "transfer took too long");
                    return Err("lifetime exceeded".into());
                }
                let Some(left) = deadline.checked_duration_since(now).filter(|d| !d.is_zero()) else {
                    break transfer.on_timeout();
                };
                // Waits are capped at the shutdown poll, so the timeout is usually that same
                // value and the setsockopt can be skipped.
                let wait = left.min(SHUTDOWN_POLL);
                if armed != Some(wait) {
                    let _ = self.socket.set_read_timeout(Some(wait));
                    armed = Some(wait);
                }
                match self.socket.recv_from(&mut buf) {
                    Ok((n, from)) if from == self.peer => break transfer.on_datagram(&buf[..n]),
                    Ok((_, stranger)) => {
                        let mut packet = Vec::with_capacity(24);
                        encode_error(&mut packet, ErrorCode::UnknownTid, "unknown transfer ID");
                        let _ = self.socket.send_to(&packet, stranger);
                    }
                    Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(gone_or(e, "receiving")),
                }
            };
        }
    }
}

/// Text for a socket error; a refused connection means the client's port is closed.
fn gone_or(e: io::Error, doing: &str) -> String {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        "client went away (port unreachable)".to_string()
    } else {
        format!("{doing} failed: {e}")
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// A transfer socket binds to the listening address's family, letting routing pick the source.
fn unspecified_like(listen: IpAddr) -> IpAddr {
    match listen {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// Loopback and link-local clients may use blocks beyond one Ethernet frame.
fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_local(IpAddr::V4(v4)),
            None => v6.is_loopback() || (v6.segments()[0] & 0xffc0) == 0xfe80,
        },
    }
}

/// A request copied out of the receive buffer for its thread.
struct OwnedRequest {
    filename: Vec<u8>,
    mode: Mode,
    options: Vec<(String, String)>,
}

impl From<&super::packet::Request<'_>> for OwnedRequest {
    fn from(r: &super::packet::Request<'_>) -> OwnedRequest {
        OwnedRequest {
            filename: r.filename.to_vec(),
            mode: r.mode,
            options: r.options.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        }
    }
}

impl OwnedRequest {
    fn report(
        &self,
        client: SocketAddr,
        started: Instant,
        result: std::result::Result<(), String>,
    ) -> TransferReport {
        TransferReport {
            client,
            file: String::from_utf8_lossy(&self.filename).into_owned(),
            kind: "read",
            options: String::new(),
            bytes: 0,
            duration: started.elapsed(),
            result,
        }
    }
}

/// What the receive loop and a transfer share: when the client last acknowledged something
/// (milliseconds since the server started) and whether the slot was taken away.
struct Watch {
    epoch: Instant,
    progress_ms: AtomicU64,
    evicted: AtomicBool,
}

impl Watch {
    fn new(epoch: Instant) -> Watch {
        let w = Watch { epoch, progress_ms: AtomicU64::new(0), evicted: AtomicBool::new(false) };
        w.progressed();
        w
    }

    fn progressed(&self) {
        self.progress_ms.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// How long since the client last acknowledged something (or the transfer began).
    fn stalled_for(&self, now_ms: u64) -> Duration {
        Duration::from_millis(now_ms.saturating_sub(self.progress_ms.load(Ordering::Relaxed)))
    }
}

/// The cap on concurrent transfers and the clients being served.
struct Slots {
    epoch: Instant,
    clients: Mutex<HashMap<SocketAddr, Arc<Watch>>>,
}

impl Default for Slots {
    fn default() -> Slots {
        Slots { epoch: Instant::now(), clients: Mutex::new(HashMap::new()) }
    }
}

impl Slots {
    /// Takes a slot for `peer`: `None` when `peer` already has one, or when all `max` are taken
    /// and none has stalled for [`STALL_EVICT`]; a stalled one is told to end and its slot given.
    fn claim(&self, peer: SocketAddr, max: usize) -> Option<Slot<'_>> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if clients.contains_key(&peer) {
            return None;
        }
        if clients.len() >= max {
            let now_ms = self.epoch.elapsed().as_millis() as u64;
            let (victim, stalled) =
                clients.iter().map(|(addr, w)| (*addr, w.stalled_for(now_ms))).max_by_key(|(_, d)| *d)?;
            if stalled < STALL_EVICT {
                return None;
            }
            if let Some(w) = clients.remove(&victim) {
                w.evicted.store(true, Ordering::Relaxed);
                log_info!(
                    "tftp: {victim} acknowledged nothing for {:.1}s; its slot goes to {peer}",
                    stalled.as_secs_f64()
                );
            }
        }
        let watch = Arc::new(Watch::new(self.epoch));
        clients.insert(peer, Arc::clone(&watch));
        Some(Slot { slots: self, peer, watch })
    }

    fn is_busy_with(&self, peer: SocketAddr) -> bool {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner).contains_key(&peer)
    }
}

/// A claimed transfer slot, given back when the transfer thread ends.
struct Slot<'a> {
    slots: &'a Slots,
    peer: SocketAddr,
    watch: Arc<Watch>,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut clients = self.slots.clients.lock().unwrap_or_else(PoisonError::into_inner);
        // An evicted transfer's peer may already hold a newer slot; leave that one alone.
        if clients.get(&self.peer).is_some_and(|w| Arc::ptr_eq(w, &self.watch)) {
            clients.remove(&self.peer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_link_local_clients_count_as_local() {
        for ip in ["127.0.0.1", "127.9.9.9", "169.254.1.2", "::1", "fe80::1", "::ffff:127.0.0.1"] {
            assert!(is_local(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["10.0.0.1", "192.168.1.1", "2001:db8::1", "fec0::1"] {
            assert!(!is_local(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn embedded_server_reports_every_transfer_to_the_hook_and_stops_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"hello").unwrap();
        let config = ServerConfig {
            root: dir.path().into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Default::default()
        };
        let reports = Arc::new(Mutex::new(Vec::<TransferReport>::new()));
        let seen = Arc::clone(&reports);
        let server = Server::bind(config).unwrap().on_transfer(move |r| seen.lock().unwrap().push(r.clone()));
        let addr = server.local_addr().unwrap();
        let shutdown = AtomicBool::new(false);
        std::thread::scope(|s| {
            let running = s.spawn(|| server.run(&shutdown));
            let mut buf = [0u8; 600];
            let good = UdpSocket::bind("127.0.0.1:0").unwrap();
            good.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            good.send_to(b"\x00\x01a\x00octet\x00", addr).unwrap();
            let (n, port) = good.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"\x00\x03\x00\x01hello");
            good.send_to(b"\x00\x04\x00\x01", port).unwrap();
            let bad = UdpSocket::bind("127.0.0.1:0").unwrap();
            bad.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            bad.send_to(b"\x00\x01missing\x00octet\x00", addr).unwrap();
            let (n, _) = bad.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"\x00\x05\x00\x01file not found\x00");
            let until = Instant::now() + Duration::from_secs(5);
            while reports.lock().unwrap().len() < 2 && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            shutdown.store(true, Ordering::Relaxed);
            running.join().unwrap().unwrap();
        });
        let mut reports = reports.lock().unwrap().clone();
        reports.sort_by(|a, b| a.file.cmp(&b.file));
        let summary: Vec<_> = reports.iter().map(|r| (r.file.as_str(), r.bytes, r.result.clone())).collect();
        assert_eq!(
            summary,
            vec![("a", 5, Ok(())), ("missing", 0, Err("refused: file not found".to_string()))]
        );
    }

    #[test]
    fn slots_cap_transfers_and_refuse_a_client_twice() {
        let slots = Slots::default();
        let a: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:1001".parse().unwrap();
        let held = slots.claim(a, 1).unwrap();
        assert!(slots.claim(a, 5).is_none());
        assert!(slots.claim(b, 1).is_none());
        drop(held);
        assert!(slots.claim(b, 1).is_some());
    }

    #[test]
    fn a_stalled_transfer_gives_its_slot_to_a_new_client() {
        let slots = Slots { epoch: Instant::now() - STALL_EVICT * 2, clients: Mutex::default() };
        let a: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:1001".parse().unwrap();
        let held = slots.claim(a, 1).unwrap();
        assert!(slots.claim(b, 1).is_none(), "a fresh transfer keeps its slot");
        held.watch.progress_ms.store(0, Ordering::Relaxed);
        let newer = slots.claim(b, 1).expect("a stalled transfer is evicted");
        assert!(held.watch.evicted.load(Ordering::Relaxed));
        drop(held);
        assert!(slots.is_busy_with(b), "the evicted slot's end leaves the new one alone");
        drop(newer);
        assert!(!slots.is_busy_with(b));
    }
}
