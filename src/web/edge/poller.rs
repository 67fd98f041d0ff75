//! The connection poller: one thread with `epoll` that owns every connection not being served
//! by a request worker. It accepts, reads request heads non-blocking, keeps idle keep-alive
//! connections, writes responses (files with `sendfile`) and closes connections that miss a
//! deadline, so idle, slow and half-open clients cost a socket and a few bytes, never a thread.
//!
//! A connection reaches a worker only with a complete head (plus the body bytes already read),
//! and at most [`Limits::in_flight_per_addr`] of one address's requests are with workers at
//! once; the rest wait here ("parked"). The worker hands the connection back with its response
//! ([`Handback`]); the poller writes it and then keeps, drains or closes the connection. It
//! does not run handlers or read bodies.

use super::head::{self, Head, Parsed};
use super::outgoing::{refusal, Outgoing, Progress};
use rustix::event::epoll;
use std::collections::{HashMap, VecDeque};
use std::io::{self, Read};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Time a new connection has to send its whole request head (not per byte).
pub const HEAD_DEADLINE: Duration = Duration::from_secs(10);

/// How long a keep-alive connection may sit idle between requests.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a complete request may wait for its address's turn at a worker before it is
/// answered 503.
pub const PARKED_DEADLINE: Duration = Duration::from_secs(30);

/// A response must be read at [`MIN_SEND_RATE`] on average over each window this long.
pub const SEND_WINDOW: Duration = Duration::from_secs(10);

/// Slowest average rate a client may read a response at (per [`SEND_WINDOW`]).
pub const MIN_SEND_RATE: u64 = 4096;

/// After a response that left a request body unread, the rest of the body is read and
/// discarded before closing, so a client that sends its whole body before reading (as most
/// libraries do) sees the response instead of a reset: for [`LINGER`] plus the time the bytes
/// take at [`MIN_SEND_RATE`], up to [`DRAIN_BYTES`]. After a refused head, only
/// [`REFUSED_BYTES`] (an endless header line stops at once).
const LINGER: Duration = Duration::from_secs(2);
pub const DRAIN_BYTES: u64 = 1 << 30;
const REFUSED_BYTES: u64 = 256 * 1024;

/// File descriptors kept free for everything that is not a client connection.
const RESERVED_FDS: usize = 256;

/// How often deadlines are checked.
const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// How often counts of refused connections are logged (one line each, not one per refusal).
const REPORT_EVERY: Duration = Duration::from_secs(10);

const LISTENER: u64 = 0;
const WAKER: u64 = 1;

/// Limits on what connections may hold.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most open connections at once (all addresses).
    pub open: usize,
    /// Most open connections from one address.
    pub open_per_addr: usize,
    /// Most requests from one address with workers at once.
    pub in_flight_per_addr: usize,
    /// Addresses the per-address limits do not apply to (trusted reverse proxies, which carry
    /// many clients on one address).
    pub exempt: crate::config::TrustedProxy,
}

impl Limits {
    /// Limits for `workers` request workers and a file-descriptor budget of `fds`.
    pub fn new(workers: usize, fds: usize, exempt: crate::config::TrustedProxy) -> Limits {
        Limits {
            open: fds.saturating_sub(RESERVED_FDS).max(64),
            open_per_addr: 512,
            in_flight_per_addr: (workers / 4).max(1),
            exempt,
        }
    }
}

/// A complete request head on its connection, for a worker.
pub struct Ready {
    /// The connection (non-blocking; the worker switches it).
    pub stream: TcpStream,
    /// The client's address.
    pub peer: SocketAddr,
    /// The parsed head.
    pub head: Head,
    /// Bytes read past the head.
    pub rest: Vec<u8>,
}

/// What happens to a connection once its response is written.
pub enum Then {
    /// Wait for the next request; these bytes of it were already read.
    KeepAlive(Vec<u8>),
    /// Close.
    Close,
    /// Part of the request body was never read: stop writing, discard what still arrives
    /// while it keeps coming (at most this many bytes), then close.
    Linger(u64),
}

/// A worker's answer to a [`Ready`].
pub enum Handback {
    /// Write this response, then do as `then` says.
    Reply {
        /// The connection.
        stream: TcpStream,
        /// The client's address.
        peer: SocketAddr,
        /// The response.
        out: Outgoing,
        /// What after.
        then: Then,
    },
    /// The worker kept the connection (an event stream) or it is gone; the request is over.
    Released(SocketAddr),
}

/// Complete heads waiting for a worker, first come first served.
#[derive(Default)]
pub struct Queue {
    items: Mutex<VecDeque<Ready>>,
    added: Condvar,
}

impl Queue {
    fn push(&self, r: Ready) {
        self.items.lock().unwrap_or_else(|p| p.into_inner()).push_back(r);
        self.added.notify_one();
    }

    /// The next request, or `None` after `wait` without one.
    pub fn pop(&self, wait: Duration) -> Option<Ready> {
        let items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        let (mut items, _) =
            self.added.wait_timeout_while(items, wait, |q| q.is_empty()).unwrap_or_else(|p| p.into_inner());
        items.pop_front()
    }
}

/// How workers give connections back (and wake the poller).
#[derive(Clone)]
pub struct Returns {
    tx: Sender<Handback>,
    waker: Arc<OwnedFd>,
}

impl Returns {
    /// Hands a connection back to the poller.
    pub fn send(&self, h: Handback) {
        if self.tx.send(h).is_ok() {
            let _ = rustix::io::write(&*self.waker, &1u64.to_ne_bytes());
        }
    }
}

enum State {
    /// Reading a request head (maybe partly in `buf`).
    Head,
    /// Between requests on a keep-alive connection.
    Idle,
    /// A complete head waiting for its address's turn at a worker.
    Parked(Head, Vec<u8>),
    /// Writing a response.
    Sending { out: Outgoing, then: Then, window_start: Instant, window_sent: u64 },
    /// Discarding an unread body after the response, before closing: when it began, bytes
    /// seen, bytes allowed.
    Lingering(Instant, u64, u64),
}

struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    buf: Vec<u8>,
    state: State,
    deadline: Instant,
}

#[derive(Default)]
struct Tally {
    open: usize,
    in_flight: usize,
    parked: VecDeque<u64>,
}

/// The poller's state; [`Poller::run`] is its thread.
pub struct Poller {
    epoll: OwnedFd,
    listener: TcpListener,
    waker: Arc<OwnedFd>,
    back: Receiver<Handback>,
    returns: Returns,
    queue: Arc<Queue>,
    limits: Limits,
    conns: HashMap<u64, Conn>,
    tally: HashMap<IpAddr, Tally>,
    open: usize,
    next_id: u64,
    refused: usize,
    accept_paused: bool,
}

/// The address limits are counted by (IPv4-mapped IPv6 as IPv4).
fn addr_key(peer: &SocketAddr) -> IpAddr {
    match peer.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn interest(state: &State) -> epoll::EventFlags {
    match state {
        State::Sending { .. } => epoll::EventFlags::OUT,
        _ => epoll::EventFlags::IN,
    }
}

impl Poller {
    /// A poller for `listener`, feeding `queue`.
    pub fn new(listener: TcpListener, queue: Arc<Queue>, limits: Limits) -> io::Result<Poller> {
        listener.set_nonblocking(true)?;
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let waker = Arc::new(rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
        )?);
        epoll::add(&epoll, &listener, epoll::EventData::new_u64(LISTENER), epoll::EventFlags::IN)?;
        epoll::add(&epoll, &*waker, epoll::EventData::new_u64(WAKER), epoll::EventFlags::IN)?;
        let (tx, back) = std::sync::mpsc::channel();
        let returns = Returns { tx, waker: waker.clone() };
        Ok(Poller {
            epoll,
            listener,
            waker,
            back,
            returns,
            queue,
            limits,
            conns: HashMap::new(),
            tally: HashMap::new(),
            open: 0,
            next_id: WAKER + 1,
            refused: 0,
            accept_paused: false,
        })
    }

    /// The handle workers return connections through.
    pub fn returns(&self) -> Returns {
        self.returns.clone()
    }

    /// Runs until `stop` is set (by the server once its workers are done) and every response
    /// still being written has been written, or a moment after. Once `shutdown` is set no new
    /// connection is accepted and waiting ones are closed.
    pub fn run(mut self, shutdown: &AtomicBool, stop: &AtomicBool) {
        let mut events = Vec::with_capacity(1024);
        let mut last_sweep = Instant::now();
        let mut last_report = Instant::now();
        let mut stopping: Option<Instant> = None;
        let mut closing = false;
        loop {
            if shutdown.load(Ordering::Relaxed) && !closing {
                closing = true;
                let _ = epoll::delete(&self.epoll, &self.listener);
                let waiting: Vec<u64> = self
                    .conns
                    .iter()
                    .filter(|(_, c)| matches!(c.state, State::Head | State::Idle | State::Parked(..)))
                    .map(|(id, _)| *id)
                    .collect();
                for id in waiting {
                    self.close(id);
                }
            }
            if stop.load(Ordering::Relaxed) {
                let since = *stopping.get_or_insert_with(Instant::now);
                if self.conns.is_empty() || since.elapsed() > LINGER {
                    return;
                }
            }
            events.clear();
            let tick = rustix::event::Timespec { tv_sec: 0, tv_nsec: 100_000_000 };
            if let Err(e) = epoll::wait(&self.epoll, rustix::buffer::spare_capacity(&mut events), Some(&tick))
            {
                if e != rustix::io::Errno::INTR {
                    crate::log_error!("waiting for connections: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            for ev in events.iter() {
                match ev.data.u64() {
                    LISTENER => self.accept(),
                    WAKER => {
                        let mut b = [0u8; 8];
                        let _ = rustix::io::read(&*self.waker, &mut b);
                    }
                    id => self.ready(id),
                }
            }
            while let Ok(h) = self.back.try_recv() {
                self.handback(h, closing);
            }
            if last_sweep.elapsed() >= SWEEP_EVERY {
                last_sweep = Instant::now();
                self.sweep(closing);
            }
            if last_report.elapsed() >= REPORT_EVERY {
                last_report = Instant::now();
                if self.refused > 0 {
                    crate::log_warn!(
                        "refused {} connection(s) in {}s: over the limit of {} per address or {} in all",
                        self.refused,
                        REPORT_EVERY.as_secs(),
                        self.limits.open_per_addr,
                        self.limits.open
                    );
                    self.refused = 0;
                }
            }
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Out of descriptors or memory: stop accepting until the next sweep rather
                    // than spinning on a listener that stays readable.
                    crate::log_warn!("accepting a connection: {e}");
                    let _ = epoll::modify(
                        &self.epoll,
                        &self.listener,
                        epoll::EventData::new_u64(LISTENER),
                        epoll::EventFlags::empty(),
                    );
                    self.accept_paused = true;
                    return;
                }
            }
        }
    }

    fn exempt(&self, ip: &IpAddr) -> bool {
        self.limits.exempt.trusts(*ip)
    }

    fn admit(&mut self, stream: TcpStream, peer: SocketAddr) {
        let ip = addr_key(&peer);
        let exempt = self.exempt(&ip);
        let tally = self.tally.entry(ip).or_default();
        if self.open >= self.limits.open || (!exempt && tally.open >= self.limits.open_per_addr) {
            self.refused += 1;
            if tally.open == 0 {
                self.tally.remove(&ip);
            }
            return; // Dropping the stream closes it.
        }
        tally.open += 1;
        self.open += 1;
        let deadline = Instant::now() + HEAD_DEADLINE;
        self.insert(Conn { stream, peer, buf: Vec::new(), state: State::Head, deadline });
    }

    /// Registers a connection the poller now owns; returns its id (none if it was closed).
    fn insert(&mut self, conn: Conn) -> Option<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let registered = conn.stream.set_nonblocking(true).is_ok()
            && epoll::add(&self.epoll, &conn.stream, epoll::EventData::new_u64(id), interest(&conn.state))
                .is_ok();
        let peer = conn.peer;
        if !registered {
            self.forget(&peer);
            return None;
        }
        self.conns.insert(id, conn);
        Some(id)
    }

    /// Counts a connection as closed.
    fn forget(&mut self, peer: &SocketAddr) {
        let ip = addr_key(peer);
        self.open = self.open.saturating_sub(1);
        if let Some(t) = self.tally.get_mut(&ip) {
            t.open = t.open.saturating_sub(1);
            if t.open == 0 && t.in_flight == 0 {
                self.tally.remove(&ip);
            }
        }
    }

    fn close(&mut self, id: u64) {
        if let Some(c) = self.conns.remove(&id) {
            let _ = epoll::delete(&self.epoll, &c.stream);
            self.forget(&c.peer);
        }
    }

    /// Switches a connection to a new state, with the matching epoll interest.
    fn set(&mut self, id: u64, state: State, deadline: Instant) {
        let Some(c) = self.conns.get_mut(&id) else { return };
        let flags = interest(&state);
        c.state = state;
        c.deadline = deadline;
        if epoll::modify(&self.epoll, &c.stream, epoll::EventData::new_u64(id), flags).is_err() {
            self.close(id);
        }
    }

    fn ready(&mut self, id: u64) {
        match self.conns.get(&id).map(|c| &c.state) {
            Some(State::Sending { .. }) => self.write(id),
            Some(State::Lingering(..)) => self.discard(id),
            Some(State::Head | State::Idle) => self.read_head(id),
            Some(State::Parked(..)) | None => {}
        }
    }

    fn read_head(&mut self, id: u64) {
        let mut chunk = [0u8; 8192];
        let Some(c) = self.conns.get_mut(&id) else { return };
        match c.stream.read(&mut chunk) {
            Ok(0) => self.close(id),
            Ok(n) => {
                c.buf.extend_from_slice(&chunk[..n]);
                if matches!(c.state, State::Idle) {
                    c.state = State::Head;
                    c.deadline = Instant::now() + HEAD_DEADLINE;
                }
                self.parse_head(id);
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
            Err(_) => self.close(id),
        }
    }

    fn parse_head(&mut self, id: u64) {
        let Some(c) = self.conns.get_mut(&id) else { return };
        match head::parse(&c.buf) {
            Parsed::Partial => {}
            Parsed::Refused(status, why) => {
                crate::log_info!("{} refused before routing: {status} {why}", c.peer.ip());
                c.buf = Vec::new();
                let out = Outgoing::new(refusal(status, &why), None);
                let state = State::Sending {
                    out,
                    then: Then::Linger(REFUSED_BYTES),
                    window_start: Instant::now(),
                    window_sent: 0,
                };
                self.set(id, state, Instant::now());
                self.write(id);
            }
            Parsed::Complete(head, len) => {
                let rest = c.buf.split_off(len);
                c.buf = Vec::new();
                self.dispatch(id, head, rest);
            }
        }
    }

    /// Hands a complete request to the workers, or parks it while its address has its share.
    fn dispatch(&mut self, id: u64, head: Head, rest: Vec<u8>) {
        let Some(c) = self.conns.get(&id) else { return };
        let ip = addr_key(&c.peer);
        let exempt = self.exempt(&ip);
        let tally = self.tally.entry(ip).or_default();
        if !exempt && tally.in_flight >= self.limits.in_flight_per_addr {
            tally.parked.push_back(id);
            self.set(id, State::Parked(head, rest), Instant::now() + PARKED_DEADLINE);
            // Parked connections are not polled: nothing they send is read until their turn.
            if let Some(c) = self.conns.get(&id) {
                let _ = epoll::delete(&self.epoll, &c.stream);
            }
            return;
        }
        tally.in_flight += 1;
        if let Some(c) = self.conns.remove(&id) {
            let _ = epoll::delete(&self.epoll, &c.stream);
            self.queue.push(Ready { stream: c.stream, peer: c.peer, head, rest });
        }
    }

    /// A worker finished a request from `peer`: let the next parked one from there go.
    fn finished(&mut self, peer: &SocketAddr) {
        let ip = addr_key(peer);
        let Some(t) = self.tally.get_mut(&ip) else { return };
        t.in_flight = t.in_flight.saturating_sub(1);
        while let Some(id) = self.tally.get_mut(&ip).and_then(|t| t.parked.pop_front()) {
            let Some(c) = self.conns.get_mut(&id) else { continue };
            let State::Parked(head, rest) = std::mem::replace(&mut c.state, State::Head) else { continue };
            // Re-register so `dispatch` (or `set`) finds it polled as usual.
            let _ = epoll::add(&self.epoll, &c.stream, epoll::EventData::new_u64(id), epoll::EventFlags::IN);
            self.dispatch(id, head, rest);
            break;
        }
    }

    fn handback(&mut self, h: Handback, closing: bool) {
        match h {
            Handback::Released(peer) => {
                self.finished(&peer);
                self.forget(&peer);
            }
            Handback::Reply { stream, peer, out, then } => {
                self.finished(&peer);
                let then = match then {
                    Then::KeepAlive(_) if closing => Then::Close,
                    other => other,
                };
                let now = Instant::now();
                let state = State::Sending { out, then, window_start: now, window_sent: 0 };
                if let Some(id) = self.insert(Conn { stream, peer, buf: Vec::new(), state, deadline: now }) {
                    self.write(id);
                }
            }
        }
    }

    fn write(&mut self, id: u64) {
        let Some(c) = self.conns.get_mut(&id) else { return };
        let State::Sending { out, window_sent, .. } = &mut c.state else { return };
        match out.write_some(&c.stream) {
            Ok(Progress::Blocked(n)) => *window_sent += n,
            Ok(Progress::Done) => self.sent(id),
            Err(_) => self.close(id),
        }
    }

    /// A response is fully written: keep, drain or close the connection.
    fn sent(&mut self, id: u64) {
        let Some(c) = self.conns.get_mut(&id) else { return };
        let then = match std::mem::replace(&mut c.state, State::Idle) {
            State::Sending { then, .. } => then,
            _ => return,
        };
        let now = Instant::now();
        match then {
            Then::Close => self.close(id),
            Then::Linger(budget) => {
                let _ = c.stream.shutdown(Shutdown::Write);
                self.set(id, State::Lingering(now, 0, budget), now + LINGER);
            }
            Then::KeepAlive(rest) => {
                let pipelined = !rest.is_empty();
                c.buf = rest;
                if pipelined {
                    self.set(id, State::Head, now + HEAD_DEADLINE);
                    self.parse_head(id);
                } else {
                    self.set(id, State::Idle, now + IDLE_TIMEOUT);
                }
            }
        }
    }

    fn discard(&mut self, id: u64) {
        let mut chunk = [0u8; 8192];
        let Some(c) = self.conns.get_mut(&id) else { return };
        let State::Lingering(since, seen, budget) = &mut c.state else { return };
        match c.stream.read(&mut chunk) {
            Ok(n) if n > 0 && *seen + (n as u64) < *budget => {
                *seen += n as u64;
                c.deadline = *since + LINGER + Duration::from_secs(*seen / MIN_SEND_RATE);
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
            _ => self.close(id),
        }
    }

    /// Closes what missed its deadline, answers requests parked too long, and drops clients
    /// reading a response slower than [`MIN_SEND_RATE`].
    fn sweep(&mut self, closing: bool) {
        let now = Instant::now();
        if self.accept_paused && !closing {
            self.accept_paused = false;
            let _ = epoll::modify(
                &self.epoll,
                &self.listener,
                epoll::EventData::new_u64(LISTENER),
                epoll::EventFlags::IN,
            );
        }
        let mut expired = Vec::new();
        let mut slow = Vec::new();
        for (id, c) in self.conns.iter_mut() {
            match &mut c.state {
                State::Sending { window_start, window_sent, .. } => {
                    let window = now.duration_since(*window_start);
                    if window >= SEND_WINDOW {
                        if *window_sent < MIN_SEND_RATE * window.as_secs() {
                            slow.push(*id);
                        }
                        *window_start = now;
                        *window_sent = 0;
                    }
                }
                _ if c.deadline <= now => expired.push(*id),
                _ => {}
            }
        }
        for id in slow {
            if let Some(c) = self.conns.get(&id) {
                crate::log_info!(
                    "{} dropped: reading a response slower than {MIN_SEND_RATE} bytes/s",
                    c.peer.ip()
                );
            }
            self.close(id);
        }
        for id in expired {
            let Some(c) = self.conns.get_mut(&id) else { continue };
            if !matches!(c.state, State::Parked(..)) {
                self.close(id);
                continue;
            }
            let ip = c.peer.ip();
            let why = "too many requests from this address at once; retry shortly";
            let out = Outgoing::new(refusal(503, why), None);
            c.state = State::Sending { out, then: Then::Close, window_start: now, window_sent: 0 };
            if epoll::add(&self.epoll, &c.stream, epoll::EventData::new_u64(id), epoll::EventFlags::OUT)
                .is_err()
            {
                self.close(id);
                continue;
            }
            crate::log_info!("{ip} answered 503: waited {}s for a worker", PARKED_DEADLINE.as_secs());
            self.write(id);
        }
    }
}
