//! The edge: the tiny_http listener, a bounded pool of request workers, capped SSE threads,
//! the access log, panic containment and graceful shutdown. The only file that knows tiny_http.
//!
//! Workers pull from `recv_timeout`, so a burst of connections queues instead of spawning
//! handler threads; SSE streams move to their own threads (at most the bus's cap). A handler
//! panic becomes a 500 and the worker lives on. On shutdown workers stop taking requests,
//! finish the ones in flight (uploads abort), SSE streams end, and the caller closes the
//! database. `[tuning] max_connections` is the number of requests served at once (the worker
//! count); more wait in tiny_http's queue. tiny_http reads each connection's requests on a
//! thread of its own pool; our vendored copy caps that pool at [`connection_threads`] (beyond
//! it, connections wait in the kernel's accept backlog) and gives accepted sockets a timeout so
//! silent or idle keep-alive clients hand their thread back.

use super::context::AppContext;
use super::request::Request;
use super::response::{Body, HttpError, Response};
use super::sse::{Next, Subscription, KEEP_ALIVE};
use crate::error::{Error, Result};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Upper bound on request workers, whatever `[tuning] max_connections` says.
const MAX_WORKERS: usize = 256;

/// How long in-flight requests may take to finish after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// File bodies are copied in chunks this large (few syscalls per GiB).
const FILE_CHUNK: usize = 1 << 20;

/// Connection threads per request worker: keep-alive clients hold a connection thread while
/// idle, so there are more of them than workers.
const CONNECTION_THREADS_PER_WORKER: usize = 4;

/// Fewest connection threads (a browser alone opens six connections).
const MIN_CONNECTION_THREADS: usize = 32;

/// How long an accepted socket may stay silent (reading) or stalled (writing) before it is
/// closed: long enough for a slow upload or a paused download, short enough that idle clients
/// cannot hold every connection thread.
pub const SOCKET_TIMEOUT: Duration = Duration::from_secs(30);

/// Connection threads tiny_http may run for `max_connections` request workers.
pub fn connection_threads(max_connections: usize) -> usize {
    (max_connections.clamp(1, MAX_WORKERS) * CONNECTION_THREADS_PER_WORKER).max(MIN_CONNECTION_THREADS)
}

/// A bound listener, ready to serve.
pub struct Listener {
    server: tiny_http::Server,
    /// The address actually bound (port 0 resolved).
    pub addr: SocketAddr,
}

/// Binds `listen` (`ADDR:PORT`) with connection threads sized for `max_connections` workers.
pub fn bind(listen: &str, max_connections: usize) -> Result<Listener> {
    let failed = |e: &dyn std::fmt::Display| {
        Error::failed(format!("listening on {listen}: {e}")).context("starting bty-web")
    };
    let addr = tiny_http::ConfigListenAddr::from_socket_addrs(listen).map_err(|e| failed(&e))?;
    let server = tiny_http::Server::new(tiny_http::ServerConfig {
        addr,
        ssl: None,
        max_threads: connection_threads(max_connections),
        socket_timeout: Some(SOCKET_TIMEOUT),
    })
    .map_err(|e| failed(&e))?;
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| Error::failed(format!("{listen} did not bind a TCP address")))?;
    Ok(Listener { server, addr })
}

/// Serves until `ctx.shutdown` is set, then returns once in-flight requests have finished.
pub fn serve(ctx: Arc<AppContext>, listener: Listener) {
    let server = Arc::new(listener.server);
    let streams = Arc::new(AtomicUsize::new(0));
    let count = ctx.config.tuning.max_connections.clamp(1, MAX_WORKERS);
    let workers: Vec<_> = (0..count)
        .map(|i| {
            let (ctx, server, streams) = (ctx.clone(), server.clone(), streams.clone());
            std::thread::Builder::new()
                .name(format!("bty-web-{i}"))
                .spawn(move || worker(&ctx, &server, &streams))
        })
        .filter_map(|t| t.map_err(|e| crate::log_error!("starting a worker: {e}")).ok())
        .collect();
    // Workers leave between requests once shutdown begins; a request blocked on a silent
    // client gets a grace period, then is abandoned (the process is exiting).
    let mut since: Option<Instant> = None;
    while !workers.iter().all(|w| w.is_finished()) {
        if ctx.shutting_down() {
            let started = *since.get_or_insert_with(Instant::now);
            if started.elapsed() > SHUTDOWN_GRACE {
                let stuck = workers.iter().filter(|w| !w.is_finished()).count();
                crate::log_warn!("shutdown: abandoning {stuck} request(s) still waiting on their clients");
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    ctx.bus.close();
    // SSE threads notice the closed bus within one keep-alive tick; give them a moment.
    let deadline = Instant::now() + Duration::from_secs(2);
    while streams.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    server.unblock();
}

fn worker(ctx: &Arc<AppContext>, server: &tiny_http::Server, streams: &Arc<AtomicUsize>) {
    while !ctx.shutting_down() {
        match server.recv_timeout(Duration::from_millis(200)) {
            Ok(Some(rq)) => handle(ctx, rq, streams),
            Ok(None) => {}
            Err(e) => {
                crate::log_error!("accepting: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// The request body, fetched from tiny_http only when a handler reads it (so `Expect:
/// 100-continue` is answered only for bodies we want).
struct LazyBody<'a> {
    rq: &'a mut tiny_http::Request,
    consumed: &'a Cell<u64>,
}

impl Read for LazyBody<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.rq.as_reader().read(buf)?;
        self.consumed.set(self.consumed.get() + n as u64);
        Ok(n)
    }
}

fn handle(ctx: &Arc<AppContext>, mut rq: tiny_http::Request, streams: &Arc<AtomicUsize>) {
    let started = Instant::now();
    let method = rq.method().as_str().to_string();
    let url = rq.url().to_string();
    let headers: Vec<(String, String)> = rq
        .headers()
        .iter()
        .map(|h| (h.field.as_str().as_str().to_string(), h.value.as_str().to_string()))
        .collect();
    let peer = rq.remote_addr().map(|a| a.ip());
    let body_len = rq.body_length().map(|n| n as u64);
    let consumed = Cell::new(0u64);
    let (response, client) = {
        let body = Box::new(LazyBody { rq: &mut rq, consumed: &consumed });
        let req =
            Request::new(&method, &url, headers, peer, &ctx.config.server.trusted_proxy, body_len, body);
        let client = req.client_ip.clone();
        let response = contain(&method, &url, || super::router::handle(ctx, req));
        (response, client)
    };
    let status = response.status;
    let unread = body_len.is_some_and(|n| n > consumed.get());
    let sent = if unread && ctx.shutting_down() {
        // tiny_http drains an unread body after the response (vendor/tiny_http with a fixed
        // buffer); while the process exits, do not wait on a client still sending one.
        std::mem::forget(rq);
        0
    } else {
        write(ctx, rq, &method, response, streams)
    };
    let ms = started.elapsed().as_millis();
    crate::log_info!("{client} \"{method} {url}\" {status} {sent} {ms}ms");
}

/// Runs a handler; a panic becomes a 500 and the worker lives on.
fn contain(method: &str, url: &str, f: impl FnOnce() -> Response) -> Response {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        crate::log_error!("{method} {url}: handler panicked");
        HttpError::internal("internal error").into_response()
    })
}

/// Writes the response; returns the body bytes sent.
fn write(
    ctx: &Arc<AppContext>,
    rq: tiny_http::Request,
    method: &str,
    response: Response,
    streams: &Arc<AtomicUsize>,
) -> u64 {
    let head = method == "HEAD";
    let Response { status, headers, body } = response;
    match body {
        Body::Empty | Body::Bytes(_) => {
            let bytes = match body {
                Body::Bytes(b) => b,
                _ => Vec::new(),
            };
            let len = bytes.len() as u64;
            let mut r = tiny_http::Response::from_data(bytes).with_status_code(status);
            for (k, v) in headers {
                if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
                    r.add_header(h);
                }
            }
            let _ = rq.respond(r);
            if head {
                0
            } else {
                len
            }
        }
        Body::File { file, offset, len } => {
            let mut w = rq.into_writer();
            let sent = write_file(&mut *w, status, &headers, &file, offset, len, head).unwrap_or(0);
            let _ = w.flush();
            sent
        }
        Body::Events(sub) => {
            streams.fetch_add(1, Ordering::Relaxed);
            let (ctx, streams2) = (ctx.clone(), streams.clone());
            let spawned = std::thread::Builder::new().name("bty-web-sse".into()).spawn(move || {
                let mut w = rq.into_writer();
                stream_events(&ctx, &mut *w, &headers, sub);
                streams2.fetch_sub(1, Ordering::Relaxed);
            });
            if spawned.is_err() {
                streams.fetch_sub(1, Ordering::Relaxed);
            }
            0
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        304 => "Not Modified",
        _ => "",
    }
}

fn write_head(
    w: &mut dyn Write,
    status: u16,
    headers: &[(String, String)],
    extra: &str,
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in headers {
        if !v.contains(['\r', '\n']) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str(&format!("Date: {}\r\n{extra}\r\n", httpdate::fmt_http_date(std::time::SystemTime::now())));
    w.write_all(head.as_bytes())
}

/// Streams `len` bytes of `file` from `offset` with large positioned reads.
fn write_file(
    w: &mut dyn Write,
    status: u16,
    headers: &[(String, String)],
    file: &std::fs::File,
    offset: u64,
    len: u64,
    head: bool,
) -> std::io::Result<u64> {
    write_head(w, status, headers, &format!("Content-Length: {len}\r\n"))?;
    if head {
        return Ok(0);
    }
    let mut buf = vec![0u8; FILE_CHUNK.min(len.max(1) as usize)];
    let mut done = 0u64;
    while done < len {
        let want = buf.len().min((len - done) as usize);
        let n = file.read_at(&mut buf[..want], offset + done)?;
        if n == 0 {
            break; // The file shrank under us; the client sees a short body and retries.
        }
        w.write_all(&buf[..n])?;
        done += n as u64;
    }
    Ok(done)
}

/// Writes an SSE stream until the client leaves or the bus closes.
fn stream_events(ctx: &AppContext, w: &mut dyn Write, headers: &[(String, String)], sub: Subscription) {
    let extra = "Content-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n";
    if write_head(w, 200, headers, extra)
        .and_then(|_| w.write_all(b"retry: 3000\n\n"))
        .and_then(|_| w.flush())
        .is_err()
    {
        return;
    }
    while !ctx.shutting_down() {
        let frame = match sub.next(KEEP_ALIVE) {
            Next::Message(m) => m,
            Next::KeepAlive => ": keep-alive\n\n".to_string(),
            Next::End => return,
        };
        if w.write_all(frame.as_bytes()).and_then(|_| w.flush()).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handler_panic_becomes_a_500() {
        let r = contain("GET", "/x", || panic!("boom"));
        assert_eq!(r.status, 500);
        assert_eq!(contain("GET", "/x", Response::no_content).status, 204);
    }
}
