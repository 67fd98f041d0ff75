//! Helpers for the bty-tftp black-box tests: the real server binary on a free loopback port, a
//! tiny raw TFTP client for what real clients cannot send, and a lossy UDP proxy.
#![allow(dead_code)] // Each test binary uses a different subset of these helpers.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::bty_path;

/// A running `bty tftp` process, killed when dropped.
pub struct TftpServer {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl TftpServer {
    /// Starts `bty tftp --root ROOT --listen 127.0.0.1:0 EXTRA...` and waits for its address.
    pub fn start(root: &Path, extra: &[&str]) -> TftpServer {
        let mut args: Vec<OsString> =
            vec!["--listen".into(), "127.0.0.1:0".into(), "--root".into(), root.into()];
        args.extend(extra.iter().map(OsString::from));
        TftpServer::spawn(&args)
    }

    /// Starts `bty tftp ARGS...` (which must end up on a free port) and waits for its address.
    /// The host's /etc/bty is never read: BTY_CONFIG_DIR points at a directory without files.
    pub fn spawn(args: &[OsString]) -> TftpServer {
        let mut child = Command::new(bty_path())
            .arg("tftp")
            .args(args)
            .env("BTY_LOG", "info")
            .env("BTY_CONFIG_DIR", "/nonexistent/bty-test-config")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting bty tftp");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = Arc::clone(&log);
        // Drains stderr for the server's whole life so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split(" on ").nth(1).and_then(|rest| rest.split(' ').next()) {
                    if line.contains("serving") {
                        let _ = tx.send(addr.parse::<SocketAddr>().ok());
                    }
                }
                lines.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Some(addr)) => addr,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("bty tftp did not report its address; log: {:?}", log.lock().unwrap());
            }
        };
        TftpServer { child, addr, log }
    }

    /// The port as text, for client command lines.
    pub fn port(&self) -> String {
        self.addr.port().to_string()
    }

    /// The server's log lines so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until a log line contains `needle` (transfers log when they end).
    pub fn wait_for_log(&self, needle: &str) -> String {
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            if let Some(line) = self.log().into_iter().find(|l| l.contains(needle)) {
                return line;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no log line with {needle:?}; log: {:?}", self.log());
    }

    /// Sends SIGTERM and waits (up to 10 s) for the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("running kill");
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for TftpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a file of `len` deterministic pseudo-random bytes.
pub fn write_random(path: &Path, len: usize, seed: u64) {
    let mut x = seed | 1;
    let mut data = Vec::with_capacity(len + 8);
    while data.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(len);
    std::fs::write(path, data).expect("writing test file");
}

/// A TFTP error as received: code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TftpError {
    pub code: u16,
    pub message: String,
}

/// What the raw client got: the bytes and the OACK options (empty without OACK).
#[derive(Debug)]
pub struct Fetched {
    pub data: Vec<u8>,
    pub oack: Vec<(String, String)>,
}

/// Builds an RRQ (or WRQ with opcode 2) datagram.
pub fn request(opcode: u8, name: &[u8], mode: &str, options: &[(&str, &str)]) -> Vec<u8> {
    let mut v = vec![0, opcode];
    v.extend_from_slice(name);
    v.push(0);
    v.extend_from_slice(mode.as_bytes());
    v.push(0);
    for (n, val) in options {
        v.extend_from_slice(n.as_bytes());
        v.push(0);
        v.extend_from_slice(val.as_bytes());
        v.push(0);
    }
    v
}

/// Sends one datagram to `addr` from a fresh socket and returns the first reply, if any
/// arrives within `wait`.
pub fn send_and_receive(addr: SocketAddr, datagram: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(wait)).unwrap();
    sock.send_to(datagram, addr).unwrap();
    let mut buf = vec![0u8; 70000];
    match sock.recv_from(&mut buf) {
        Ok((n, _)) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

/// Parses an ERROR packet.
pub fn as_error(packet: &[u8]) -> Option<TftpError> {
    if packet.len() < 4 || packet[..2] != [0, 5] {
        return None;
    }
    let code = u16::from_be_bytes([packet[2], packet[3]]);
    let text = packet[4..].split(|&b| b == 0).next().unwrap_or_default();
    Some(TftpError { code, message: String::from_utf8_lossy(text).into_owned() })
}

/// A minimal windowed TFTP client: sends the RRQ with `options`, acknowledges every block (the
/// last of each window, or each block with windowsize 1), and returns the data.
pub fn fetch(
    addr: SocketAddr,
    name: &str,
    mode: &str,
    options: &[(&str, &str)],
) -> Result<Fetched, TftpError> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    sock.send_to(&request(1, name.as_bytes(), mode, options), addr).unwrap();
    let mut buf = vec![0u8; 70000];
    let mut data = Vec::new();
    let mut oack = Vec::new();
    let mut blksize = 512usize;
    let mut window = 1u32;
    let mut expected: u16 = 1;
    let mut in_window = 0u32;
    let mut server: Option<SocketAddr> = None;
    loop {
        let (n, from) = sock.recv_from(&mut buf).expect("server stopped answering");
        let packet = &buf[..n];
        if let Some(e) = as_error(packet) {
            return Err(e);
        }
        let server = *server.get_or_insert(from);
        assert_eq!(from, server, "reply from a second transfer ID");
        match packet[1] {
            6 => {
                let strings: Vec<String> =
                    packet[2..].split(|&b| b == 0).map(|s| String::from_utf8_lossy(s).into_owned()).collect();
                oack = strings
                    .chunks(2)
                    .filter(|c| c.len() == 2)
                    .map(|c| (c[0].clone(), c[1].clone()))
                    .collect();
                for (k, v) in &oack {
                    match k.as_str() {
                        "blksize" => blksize = v.parse().unwrap(),
                        "windowsize" => window = v.parse().unwrap(),
                        _ => {}
                    }
                }
                sock.send_to(&[0, 4, 0, 0], server).unwrap();
            }
            3 => {
                let block = u16::from_be_bytes([packet[2], packet[3]]);
                if block != expected {
                    continue; // a retransmission of something we already have
                }
                let payload = &packet[4..];
                data.extend_from_slice(payload);
                expected = expected.wrapping_add(1);
                in_window += 1;
                let last = payload.len() < blksize;
                if last || in_window == window {
                    let [b0, b1] = block.to_be_bytes();
                    sock.send_to(&[0, 4, b0, b1], server).unwrap();
                    in_window = 0;
                }
                if last {
                    return Ok(Fetched { data, oack });
                }
            }
            other => panic!("unexpected opcode {other}"),
        }
    }
}

/// A UDP proxy between one client and a TFTP server that drops every `nth` datagram in each
/// direction. The client talks to the proxy's port; replies from whatever port the server's
/// transfer uses are sent back from that same proxy port. One thread per direction.
pub struct LossyProxy {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<usize>>,
}

impl LossyProxy {
    pub fn start(server: SocketAddr, nth: usize) -> LossyProxy {
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        let back = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = front.local_addr().unwrap();
        for s in [&front, &back] {
            s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let client = Arc::new(Mutex::new(None::<SocketAddr>));
        let transfer = Arc::new(Mutex::new(None::<SocketAddr>));
        let up = {
            let (from, to) = (front.try_clone().unwrap(), back.try_clone().unwrap());
            let (stop, client, transfer) = (Arc::clone(&stop), Arc::clone(&client), Arc::clone(&transfer));
            std::thread::spawn(move || {
                relay(&from, &stop, nth, |n, peer, buf| {
                    *client.lock().unwrap() = Some(peer);
                    let dest = transfer.lock().unwrap().unwrap_or(server);
                    let _ = to.send_to(&buf[..n], dest);
                })
            })
        };
        let down = {
            let (stop, client, transfer) = (Arc::clone(&stop), Arc::clone(&client), Arc::clone(&transfer));
            std::thread::spawn(move || {
                relay(&back, &stop, nth, |n, peer, buf| {
                    *transfer.lock().unwrap() = Some(peer);
                    if let Some(c) = *client.lock().unwrap() {
                        let _ = front.send_to(&buf[..n], c);
                    }
                })
            })
        };
        LossyProxy { addr, stop, threads: vec![up, down] }
    }

    /// Stops the proxy and returns how many datagrams it dropped in each direction.
    pub fn stop(mut self) -> Vec<usize> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads.drain(..).map(|t| t.join().unwrap()).collect()
    }
}

/// Receives on `sock` until `stop`, dropping every `nth` datagram and handing the rest to
/// `forward`; returns the number dropped.
fn relay(
    sock: &UdpSocket,
    stop: &AtomicBool,
    nth: usize,
    mut forward: impl FnMut(usize, SocketAddr, &[u8]),
) -> usize {
    let mut buf = vec![0u8; 70000];
    let (mut seen, mut dropped) = (0usize, 0usize);
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, peer)) = sock.recv_from(&mut buf) else { continue };
        seen += 1;
        if seen % nth == 0 {
            dropped += 1;
            continue;
        }
        forward(n, peer, &buf);
    }
    dropped
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
