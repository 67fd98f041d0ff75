//! bty-web against hostile clients on loopback: held half-open, trickling, slow-reading and
//! idle connections must not stop `/healthz` and `/pxe/{mac}` from answering a new client, nor
//! grow the server past its memory budget, and must be released once they go away; and
//! ambiguous body framing (request smuggling) is refused with 400 and a closed connection.
//!
//! The load comes from 127.0.0.2–127.0.0.11 (a few addresses per kind), the probe from
//! 127.0.0.1. Everything is bounded in count and time; nothing asserts a speed (the probe's
//! client timeout only defines "answered"). `make bench` runs [`hostile_load_figures`] for its
//! table (`BTY_TEST_BIN` selects the binary).

mod common;
use common::webserver::WebServer;
use common::*;
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::net::{AddressFamily, RecvFlags, SocketFlags, SocketType};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const HALF_OPEN: usize = 2000;
const TRICKLED: usize = 500;
const SLOW_READERS: usize = 500;
const IDLE: usize = 2000;
const PROBES: usize = 100;
/// What "answered" means for one probe (a generous client timeout, not a speed target).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
const RSS_BUDGET_KIB: u64 = 64 * 1024;
/// How long the released connections may take to be closed: past the header deadline (10 s)
/// and the idle timeout, with room for a loaded CI machine.
const RELEASE_DEADLINE: Duration = Duration::from_secs(40);
const BOOT_FILE_BYTES: u64 = 64 << 20;

/// Lets this process hold thousands of sockets.
fn raise_nofile() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut l = getrlimit(Resource::Nofile);
    l.current = l.maximum;
    let _ = setrlimit(Resource::Nofile, l);
}

/// Connects `n` sockets from `sources` (round robin) to `to`, all at once (non-blocking), and
/// keeps those connected within a few seconds; each then sends `first`. `rcvbuf` shrinks the
/// receive buffer (for slow readers).
fn connect_many(
    sources: &[Ipv4Addr],
    to: SocketAddr,
    n: usize,
    rcvbuf: Option<usize>,
    first: &[u8],
) -> Vec<TcpStream> {
    let mut pending: Vec<OwnedFd> = Vec::new();
    for i in 0..n {
        let fd = rustix::net::socket_with(
            AddressFamily::INET,
            SocketType::STREAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )
        .expect("socket");
        if let Some(size) = rcvbuf {
            rustix::net::sockopt::set_socket_recv_buffer_size(&fd, size).expect("SO_RCVBUF");
        }
        rustix::net::bind(&fd, &SocketAddrV4::new(sources[i % sources.len()], 0))
            .expect("binding a source address");
        match rustix::net::connect(&fd, &to) {
            Ok(()) | Err(rustix::io::Errno::INPROGRESS) => pending.push(fd),
            Err(e) => panic!("connect: {e}"),
        }
    }
    // Wait (at most a few seconds) until each is connected or failed.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut done = vec![false; pending.len()];
    while Instant::now() < deadline && done.iter().any(|d| !d) {
        let idx: Vec<usize> = (0..pending.len()).filter(|i| !done[*i]).collect();
        let mut fds: Vec<PollFd> = idx.iter().map(|i| PollFd::new(&pending[*i], PollFlags::OUT)).collect();
        let tick = Timespec { tv_sec: 0, tv_nsec: 100_000_000 };
        let _ = rustix::event::poll(&mut fds, Some(&tick));
        let ready: Vec<usize> =
            fds.iter().enumerate().filter(|(_, f)| !f.revents().is_empty()).map(|(k, _)| idx[k]).collect();
        for i in ready {
            done[i] = true;
        }
    }
    pending
        .into_iter()
        .zip(done)
        .filter(|(fd, done)| {
            *done && rustix::net::sockopt::socket_error(fd).map(|e| e.is_ok()).unwrap_or(false)
        })
        .filter_map(|(fd, _)| {
            let mut s = TcpStream::from(fd);
            s.write_all(first).ok().map(|_| s)
        })
        .collect()
}

/// How many of `conns` the server still holds open (not closed or reset from its side).
fn held(conns: &[TcpStream]) -> usize {
    conns
        .iter()
        .filter(|c| {
            let mut b = [0u8; 1];
            match rustix::net::recv(c.as_fd(), &mut b, RecvFlags::PEEK | RecvFlags::DONTWAIT) {
                Ok((_, n)) => n > 0,
                Err(e) => e == rustix::io::Errno::AGAIN,
            }
        })
        .count()
}

fn status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn threads_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.count()).unwrap_or(0)
}

/// The sockets the server has open (connections, the listener, TFTP).
fn sockets_of(pid: u32) -> usize {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return 0 };
    dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

/// One request on a new connection from 127.0.0.1; its latency if a 200 came back in time.
fn probe(addr: SocketAddr, path: &str) -> Option<Duration> {
    let started = Instant::now();
    let mut c = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).ok()?;
    c.set_read_timeout(Some(PROBE_TIMEOUT)).ok()?;
    c.set_write_timeout(Some(PROBE_TIMEOUT)).ok()?;
    write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut out = Vec::new();
    c.read_to_end(&mut out).ok()?;
    out.starts_with(b"HTTP/1.1 200").then(|| started.elapsed())
}

/// What one run measured.
struct Figures {
    held: [(&'static str, usize, usize); 4],
    answered: usize,
    probes: usize,
    p50: Duration,
    p99: Duration,
    rss_kib: u64,
    threads: usize,
    sockets_base: usize,
    sockets_loaded: usize,
    /// Time until the server's sockets were back near the baseline (None: not within the
    /// deadline).
    released: Option<Duration>,
}

fn addrs(from: u8, n: u8) -> Vec<Ipv4Addr> {
    (from..from + n).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect()
}

/// Starts bty-web, holds the load, probes, lets the load go and waits for the release.
/// Probing stops after `give_up` unanswered probes in a row (each costs [`PROBE_TIMEOUT`]).
fn run_load(give_up: usize) -> Figures {
    raise_nofile();
    let dir = scratch();
    let state = dir.path().join("state");
    std::fs::create_dir_all(state.join("boot")).unwrap();
    let big = std::fs::File::create(state.join("boot/big.bin")).unwrap();
    big.set_len(BOOT_FILE_BYTES).unwrap();
    let s = WebServer::start_in(&state, &[]);
    let addr: SocketAddr = s.addr.parse().unwrap();
    let pid = s.pid();
    assert_eq!(s.raw("GET", "/healthz", &[], vec![]).status, 200);
    let sockets_base = sockets_of(pid);

    let half_open =
        connect_many(&addrs(2, 4), addr, HALF_OPEN, None, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Wait: ");
    let trickle_head = b"POST /pxe/52:54:00:00:00:99/progress HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{";
    let trickled = connect_many(&addrs(10, 1), addr, TRICKLED, None, trickle_head);
    let slow = connect_many(
        &addrs(11, 1),
        addr,
        SLOW_READERS,
        Some(4096),
        b"GET /boot/big.bin HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let idle = connect_many(&addrs(6, 4), addr, IDLE, None, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    // The trickle: one body byte per connection every half second, while the load is held.
    let trickling = Arc::new(AtomicBool::new(true));
    let trickler = {
        let on = trickling.clone();
        std::thread::spawn(move || {
            while on.load(Ordering::Relaxed) {
                for mut c in &trickled {
                    let _ = c.write(b" ");
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            trickled
        })
    };
    // Let the server absorb the burst of connects this test just made; then probe the steady state.
    std::thread::sleep(Duration::from_secs(1));
    let held_at_start = [held(&half_open), 0, held(&slow), held(&idle)];

    let mut times = Vec::new();
    let mut rss = status_kib(pid, "VmRSS:");
    let mut threads = threads_of(pid);
    let sockets_loaded = sockets_of(pid);
    let (mut attempted, mut unanswered) = (0, 0);
    for i in 0..PROBES {
        let path =
            if i % 2 == 0 { "/healthz".to_string() } else { format!("/pxe/52:54:00:00:01:{:02x}", i % 256) };
        attempted += 1;
        match probe(addr, &path) {
            Some(t) => {
                times.push(t);
                unanswered = 0;
            }
            None => unanswered += 1,
        }
        if unanswered >= give_up {
            break;
        }
        rss = rss.max(status_kib(pid, "VmRSS:"));
        threads = threads.max(threads_of(pid));
    }
    let answered = times.len();
    times.sort();
    let pct = |p: usize| {
        times.get((times.len() * p / 100).min(times.len().saturating_sub(1))).copied().unwrap_or_default()
    };
    trickling.store(false, Ordering::Relaxed);
    let trickled = trickler.join().unwrap();
    let held = [
        ("half-open", HALF_OPEN, held_at_start[0]),
        ("trickled", TRICKLED, held(&trickled)),
        ("slow-reader", SLOW_READERS, held_at_start[2]),
        ("idle-keepalive", IDLE, held_at_start[3]),
    ];

    drop((half_open, trickled, slow, idle));
    let gone = Instant::now();
    let mut released = None;
    while gone.elapsed() < RELEASE_DEADLINE {
        if sockets_of(pid) <= sockets_base + 2 {
            released = Some(gone.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Figures {
        held,
        answered,
        probes: attempted,
        p50: pct(50),
        p99: pct(99),
        rss_kib: rss,
        threads,
        sockets_base,
        sockets_loaded,
        released,
    }
}

#[test]
fn probes_are_answered_while_hostile_connections_are_held_and_released_after() {
    let f = run_load(1);
    eprintln!(
        "held {:?}; server sockets {} -> {}; probes {}/{} answered, p50 {:?} p99 {:?}; RSS {} KiB; {} threads",
        f.held, f.sockets_base, f.sockets_loaded, f.answered, f.probes, f.p50, f.p99, f.rss_kib, f.threads
    );
    assert_eq!(
        (f.answered, f.probes),
        (PROBES, PROBES),
        "a probe from a new client went unanswered under load"
    );
    // The load really was held: thousands of sockets open on the server side.
    assert!(
        f.sockets_loaded > f.sockets_base + 2000,
        "the server held only {} connections",
        f.sockets_loaded - f.sockets_base
    );
    assert!(f.rss_kib < RSS_BUDGET_KIB, "RSS {} KiB under load", f.rss_kib);
    assert!(f.released.is_some(), "connections not released within {RELEASE_DEADLINE:?} after the load left");
}

/// For `make bench`: one row of figures for the binary in `BTY_TEST_BIN`.
#[test]
#[ignore = "benchmark; run by tests/bench/web-load.sh (make bench)"]
fn hostile_load_figures() {
    let f = run_load(5);
    let held: Vec<String> = f.held.iter().map(|(kind, of, n)| format!("{kind}={n}/{of}")).collect();
    let released = f.released.map(|d| format!("{:.1}s", d.as_secs_f64())).unwrap_or_else(|| "no".into());
    println!(
        "FIGURES held={} answered={}/{} p50_ms={:.1} p99_ms={:.1} rss_mib={:.1} threads={} sockets={} released={}",
        held.join(","),
        f.answered,
        f.probes,
        f.p50.as_secs_f64() * 1000.0,
        f.p99.as_secs_f64() * 1000.0,
        f.rss_kib as f64 / 1024.0,
        f.threads,
        f.sockets_loaded,
        released
    );
}

/// Sends `raw` on a new connection and reads until the server closes it (None: it did not
/// close within the timeout).
fn exchange(addr: &str, raw: &[u8]) -> Option<String> {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(raw).unwrap();
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match c.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(_) => return None,
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn ambiguous_body_lengths_are_400_and_nothing_after_them_is_answered() {
    let dir = scratch();
    let s = WebServer::start_in(&dir.path().join("state"), &[]);
    let post =
        "POST /pxe/52:54:00:00:00:42/progress HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n";
    // The smuggled request: answered only if the server took the body's end from the wrong
    // header.
    let smuggled = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let body = r#"{"bytes_written":1,"total_bytes":2,"phase":"write"}"#;
    let n = body.len();
    let cases = [
        ("duplicate Content-Length", format!("Content-Length: {n}\r\nContent-Length: {n}\r\n\r\n{body}")),
        ("conflicting Content-Length", format!("Content-Length: {n}\r\nContent-Length: 0\r\n\r\n{body}")),
        ("a list as Content-Length", format!("Content-Length: {n}, {n}\r\n\r\n{body}")),
        (
            "Content-Length with Transfer-Encoding",
            format!("Content-Length: {n}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{body}"),
        ),
        (
            "Transfer-Encoding with Content-Length",
            "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n".to_string(),
        ),
        ("a non-numeric Content-Length", format!("Content-Length: {n}x\r\n\r\n{body}")),
        ("a signed Content-Length", format!("Content-Length: +{n}\r\n\r\n{body}")),
        ("an unknown Transfer-Encoding", "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n".to_string()),
    ];
    for (what, rest) in cases {
        let raw = format!("{post}{rest}{smuggled}");
        let answer =
            exchange(&s.addr, raw.as_bytes()).unwrap_or_else(|| panic!("{what}: connection left open"));
        assert!(answer.starts_with("HTTP/1.1 400"), "{what}: {answer:?}");
        assert_eq!(
            answer.matches("HTTP/1.1 ").count(),
            1,
            "{what}: a second request was answered: {answer:?}"
        );
    }
    // The control: the same bytes with one valid length are two requests, both answered.
    let raw = format!("{post}Content-Length: {n}\r\n\r\n{body}GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let answer = exchange(&s.addr, raw.as_bytes()).expect("closed after Connection: close");
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 2, "{answer:?}");
    assert!(answer.contains(r#"{"status":"ok"}"#), "{answer:?}");
    // A chunked body is read to its end, and the request after it answered too.
    let raw = format!("{post}Transfer-Encoding: chunked\r\n\r\n{n:x}\r\n{body}\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let answer = exchange(&s.addr, raw.as_bytes()).expect("closed after Connection: close");
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 2, "{answer:?}");
    assert!(answer.contains(r#"{"status":"ok"}"#), "{answer:?}");
}

/// A body trickled at a byte per half second falls behind the minimum rate once the grace
/// period is over: the server answers and closes instead of waiting for it with a worker.
#[test]
fn a_trickled_body_is_dropped_once_it_falls_behind_the_minimum_rate() {
    let dir = scratch();
    let s = WebServer::start_in(&dir.path().join("state"), &[]);
    let mut c = TcpStream::connect(&s.addr).unwrap();
    let head = "POST /pxe/52:54:00:00:00:43/progress HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n{";
    c.write_all(head.as_bytes()).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    // Well past the grace period and far short of the 60,000 bytes; the old server, whose
    // socket timeout restarted with every byte, kept reading for ever.
    while started.elapsed() < Duration::from_secs(40) {
        if c.write_all(b" ").is_err() {
            break;
        }
        match c.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    assert!(started.elapsed() < Duration::from_secs(40), "the trickled body was still being read after 40 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    assert_eq!(s.raw("GET", "/healthz", &[], vec![]).status, 200);
}

/// A client that stops reading a large `/boot` file is dropped once it falls behind the
/// minimum rate for a window, instead of holding its transfer (and, before, a thread) until it
/// resumes: after a pause longer than that, the rest of the file never comes.
#[test]
fn a_stalled_reader_of_a_boot_file_is_dropped() {
    let dir = scratch();
    let state = dir.path().join("state");
    std::fs::create_dir_all(state.join("boot")).unwrap();
    std::fs::File::create(state.join("boot/big.bin")).unwrap().set_len(BOOT_FILE_BYTES).unwrap();
    let s = WebServer::start_in(&state, &[]);
    let addr: SocketAddr = s.addr.parse().unwrap();
    let mut conns = connect_many(
        &[Ipv4Addr::LOCALHOST],
        addr,
        1,
        Some(4096),
        b"GET /boot/big.bin HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let mut c = conns.pop().expect("connected");
    // Two send windows (10 s each) and a little more, but less than the old 30 s socket
    // timeout, after which the old server gave up too.
    std::thread::sleep(Duration::from_secs(25));
    c.set_nonblocking(false).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut got = 0u64;
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        match c.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n as u64,
        }
    }
    assert!(got < BOOT_FILE_BYTES, "the whole file arrived after a 25 s stall ({got} bytes)");
    assert_eq!(s.raw("GET", "/healthz", &[], vec![]).status, 200);
}
