//! A real HTTP/1.1 server for tests, on 127.0.0.1 with a random port: std `TcpListener`, one
//! thread per connection, `Connection: close` on every answer.
//!
//! Each path serves a [`Resource`] whose misbehaviour is scripted: with or without Range
//! support, cut the connection after N body bytes, stall, lie in `Content-Length`, answer
//! with a status first (503, 429), or switch to another body (and ETag) after some requests.
//! Every request is logged so tests can assert what the client asked for.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One object the server serves, and how it misbehaves.
#[derive(Clone, Default)]
pub struct Resource {
    /// The bytes.
    pub body: Vec<u8>,
    /// Whether `Range` is honoured (else the whole body with 200).
    pub ranges: bool,
    /// The ETag sent (strong), if any.
    pub etag: Option<String>,
    /// Object offsets where an answer stops and the connection closes. Only open-ended
    /// answers (no Range, or `bytes=N-`) are cut, so probes and random reads pass; a cut is
    /// used up once the client comes back asking for the bytes from that offset (it resumed).
    pub cuts: Vec<u64>,
    /// Whether cuts also stop answers to bounded Range requests (`bytes=S-E`), as a dropped
    /// connection during a chunk fetch would.
    pub cut_bounded: bool,
    /// Object offsets where the server goes silent for the given time, then closes; used up
    /// like cuts.
    pub stalls: Vec<(u64, Duration)>,
    /// A `Content-Length` to announce instead of the true one (with 200 answers).
    pub claimed_len: Option<u64>,
    /// Each request pops one status to answer with instead of the body (e.g. 503, 429).
    pub statuses: VecDeque<u16>,
    /// After this many requests, serve this body and ETag instead.
    pub change_after: Option<(usize, Vec<u8>, String)>,
    /// Extra headers on every answer.
    pub headers: Vec<(String, String)>,
    /// Answer with a redirect to this path instead.
    pub redirect_to: Option<String>,
}

impl Resource {
    /// A well-behaved object with Range support and an ETag.
    pub fn new(body: Vec<u8>) -> Resource {
        Resource { body, ranges: true, etag: Some("\"v1\"".into()), ..Default::default() }
    }
}

/// What a client asked for.
#[derive(Debug, Clone)]
pub struct Logged {
    pub path: String,
    pub range: Option<String>,
    pub if_range: Option<String>,
    pub authorization: Option<String>,
}

#[derive(Default)]
struct State {
    resources: HashMap<String, Resource>,
    /// (path, offset) of cuts and stalls that have happened at least once.
    applied: std::collections::HashSet<(String, u64)>,
    served: HashMap<String, usize>,
    /// Body bytes sent per path (after cuts), the count a client pays on the wire.
    sent: HashMap<String, u64>,
    log: Vec<Logged>,
}

/// The running server; stops when dropped.
pub struct Httpd {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Httpd {
    /// Starts a server on 127.0.0.1 with a port the kernel picks.
    pub fn start() -> Httpd {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking listener");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !sp.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let st = st.clone();
                        std::thread::spawn(move || serve(conn, &st));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Httpd { addr, state, stop, thread: Some(thread) }
    }

    /// Serves `res` at `path`.
    pub fn put(&self, path: &str, res: Resource) {
        self.state.lock().unwrap().resources.insert(path.to_string(), res);
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Body bytes sent for `path` so far (HEAD answers and cut-off tails not counted).
    pub fn bytes_sent(&self, path: &str) -> u64 {
        self.state.lock().unwrap().sent.get(path).copied().unwrap_or(0)
    }

    /// Every request so far, in order.
    pub fn log(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }
}

impl Drop for Httpd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What one answer will be, decided under the lock, written without it.
struct Plan {
    head: String,
    body: Vec<u8>,
    cut: Option<u64>,
    stall: Option<(u64, Duration)>,
}

fn serve(conn: TcpStream, state: &Mutex<State>) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let plan = plan(&method, &path, &headers, state);
    write_plan(conn, plan);
}

fn plan(method: &str, path: &str, headers: &HashMap<String, String>, state: &Mutex<State>) -> Plan {
    let mut st = state.lock().unwrap();
    st.log.push(Logged {
        path: path.to_string(),
        range: headers.get("range").cloned(),
        if_range: headers.get("if-range").cloned(),
        authorization: headers.get("authorization").cloned(),
    });
    let count = {
        let c = st.served.entry(path.to_string()).or_insert(0);
        *c += 1;
        *c
    };
    let simple = |status: &str, extra: &str| Plan {
        head: format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n{extra}\r\n"),
        body: Vec::new(),
        cut: None,
        stall: None,
    };
    let key = path.split('?').next().unwrap_or(path).to_string();
    let State { resources, applied, sent, .. } = &mut *st;
    let Some(res) = resources.get_mut(&key) else { return simple("404 Not Found", "") };
    let asked = headers.get("range").and_then(|r| r.strip_prefix("bytes="));
    let asked_start: u64 = asked.and_then(|r| r.split('-').next()).and_then(|s| s.parse().ok()).unwrap_or(0);
    let open_ended = asked.is_none_or(|r| r.ends_with('-'));
    // A client asking again from a cut (or stall) it has seen has resumed: that one is used up.
    res.cuts.retain(|&at| !(at == asked_start && applied.contains(&(key.clone(), at))));
    res.stalls.retain(|&(at, _)| !(at == asked_start && applied.contains(&(key.clone(), at))));
    if let Some(to) = &res.redirect_to {
        return simple("302 Found", &format!("Location: {to}\r\n"));
    }
    if let Some(status) = res.statuses.pop_front() {
        let extra = if status == 429 { "Retry-After: 1\r\n" } else { "" };
        return simple(&format!("{status} Scripted"), extra);
    }
    let (body, etag) = match &res.change_after {
        Some((after, new_body, new_tag)) if count > *after => (new_body.clone(), Some(new_tag.clone())),
        _ => (res.body.clone(), res.etag.clone()),
    };
    let len = body.len() as u64;
    let mut extra = String::new();
    if let Some(tag) = &etag {
        extra.push_str(&format!("ETag: {tag}\r\n"));
    }
    for (k, v) in &res.headers {
        extra.push_str(&format!("{k}: {v}\r\n"));
    }
    let range = headers.get("range").filter(|_| res.ranges).and_then(|r| parse_range(r, len));
    let if_range_ok = match (headers.get("if-range"), &etag) {
        (Some(asked), Some(tag)) => asked == tag,
        (Some(_), None) => false,
        (None, _) => true,
    };
    let (status, slice, total_hdr, start) = match range {
        Some(Err(())) if if_range_ok => {
            return simple("416 Range Not Satisfiable", &format!("Content-Range: bytes */{len}\r\n{extra}"))
        }
        Some(Ok((s, e))) if if_range_ok => (
            "206 Partial Content",
            body[s as usize..=e as usize].to_vec(),
            format!("Content-Range: bytes {s}-{e}/{len}\r\n"),
            s,
        ),
        _ => (
            "200 OK",
            body.clone(),
            if res.ranges { "Accept-Ranges: bytes\r\n".to_string() } else { String::new() },
            0,
        ),
    };
    let end = start + slice.len() as u64;
    let hits = |at: u64| (open_ended || res.cut_bounded) && method != "HEAD" && (start..end).contains(&at);
    let cut = res.cuts.iter().copied().filter(|&at| hits(at)).min();
    let stall = res.stalls.iter().copied().filter(|&(at, _)| hits(at)).min_by_key(|&(at, _)| at);
    let (cut, stall) = match (cut, stall) {
        (Some(c), Some((s, _))) if s < c => (None, stall),
        (Some(c), _) => (Some(c), None),
        (None, s) => (None, s),
    };
    if let Some(at) = cut.or(stall.map(|(at, _)| at)) {
        applied.insert((key.clone(), at));
    }
    let cut = cut.map(|at| at - start);
    let stall = stall.map(|(at, pause)| (at - start, pause));
    let announced = match (status, res.claimed_len) {
        ("200 OK", Some(claim)) => claim,
        _ => slice.len() as u64,
    };
    let body_out = if method == "HEAD" { Vec::new() } else { slice };
    let sending = cut.or(stall.map(|(at, _)| at)).unwrap_or(u64::MAX).min(body_out.len() as u64);
    *sent.entry(key.clone()).or_insert(0) += sending;
    Plan {
        head: format!(
            "HTTP/1.1 {status}\r\nContent-Length: {announced}\r\nConnection: close\r\n{total_hdr}{extra}\r\n"
        ),
        body: body_out,
        cut,
        stall,
    }
}

/// `bytes=S-` or `bytes=S-E` → inclusive span, or Err for unsatisfiable.
fn parse_range(v: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = v.strip_prefix("bytes=")?;
    let (s, e) = spec.split_once('-')?;
    let s: u64 = s.parse().ok()?;
    if s >= len {
        return Some(Err(()));
    }
    let e = if e.is_empty() { len - 1 } else { e.parse::<u64>().ok()?.min(len - 1) };
    Some(Ok((s, e)))
}

fn write_plan(mut conn: TcpStream, plan: Plan) {
    if conn.write_all(plan.head.as_bytes()).is_err() {
        return;
    }
    let mut body: &[u8] = &plan.body;
    if let Some((at, pause)) = plan.stall {
        let at = (at as usize).min(body.len());
        if conn.write_all(&body[..at]).is_err() {
            return;
        }
        let _ = conn.flush();
        std::thread::sleep(pause);
        return;
    }
    if let Some(cut) = plan.cut {
        body = &body[..(cut as usize).min(body.len())];
    }
    let _ = conn.write_all(body);
    let _ = conn.flush();
    let _ = conn.shutdown(std::net::Shutdown::Both);
}

/// Deterministic pseudo-random bytes (xorshift), so tests need no data files.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
