//! bty-web under a burst of connections: one poller thread holds connections that have not sent
//! a whole request, so 1,000 silent clients cannot make 1,000 threads, and the server answers
//! once they are gone.

mod common;
use common::webserver::WebServer;
use common::*;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// `[tuning] max_connections` for the test (the request workers); connections that have not
/// sent a whole request are held by one poller thread.
const MAX_CONNECTIONS: usize = 8;
const CONNECTION_THREADS: usize = 1;

/// Threads besides the two pools: main, the acceptor, housekeeping, backups, jobs, TFTP, spare.
const OTHER_THREADS: usize = 12;

fn threads_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.count()).unwrap_or(0)
}

/// Opens `n` connections at once, one short-lived thread each (connects that find the accept
/// backlog full are given up after a few seconds); half send a partial request.
fn burst(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let handles: Vec<_> = (0..n)
        .map(|i| {
            std::thread::Builder::new()
                .stack_size(64 << 10)
                .spawn(move || {
                    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok()?;
                    if i % 2 == 0 {
                        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
                    }
                    Some(s)
                })
                .unwrap()
        })
        .collect();
    handles.into_iter().filter_map(|h| h.join().unwrap()).collect()
}

#[test]
fn a_burst_of_a_thousand_silent_connections_stays_under_the_thread_cap() {
    let dir = scratch();
    let max = MAX_CONNECTIONS.to_string();
    let s = WebServer::start_in(&dir.path().join("state"), &[("BTY_TUNING_MAX_CONNECTIONS", &max)]);
    assert_eq!(s.raw("GET", "/healthz", &[], vec![]).status, 200);
    let addr: SocketAddr = s.addr.parse().unwrap();
    let cap = CONNECTION_THREADS + MAX_CONNECTIONS + OTHER_THREADS;

    let conns = burst(addr, 1000);
    assert!(conns.len() > MAX_CONNECTIONS, "only {} connections opened", conns.len());
    let mut most = 0;
    for _ in 0..20 {
        most = most.max(threads_of(s.pid()));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(most <= cap, "{most} threads for {} open connections (cap {cap})", conns.len());

    drop(conns);
    let r = s.raw("GET", "/healthz", &[], vec![]);
    assert_eq!((r.status, r.text()), (200, r#"{"status":"ok"}"#.to_string()));
    assert!(threads_of(s.pid()) <= cap);
}

#[test]
fn an_endless_header_line_is_cut_off_and_too_many_headers_get_431() {
    use std::io::Read;
    let dir = scratch();
    let s = WebServer::start_in(&dir.path().join("state"), &[]);
    let addr: SocketAddr = s.addr.parse().unwrap();
    // One header line without end: the server must stop reading it (and close) long before
    // 64 MiB; upstream tiny_http read it all into memory.
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: ").unwrap();
    let chunk = vec![b'a'; 64 << 10];
    let mut sent = 0usize;
    while sent < 64 << 20 {
        match c.write(&chunk) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    assert!(sent < 64 << 20, "the server read a 64 MiB header line");
    // Too many headers: 431 (the server closes with the rest unread, which may reset instead).
    let many: String = (0..200).map(|i| format!("X-{i}: y\r\n")).collect();
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(format!("GET /healthz HTTP/1.1\r\n{many}\r\n").as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 431"), "answer: {answer:?}");
    assert_eq!(s.raw("GET", "/healthz", &[], vec![]).status, 200, "the server went down");
}
