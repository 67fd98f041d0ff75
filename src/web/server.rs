//! The edge's other half: binding, the bounded pool of request workers, capped SSE threads,
//! the access log, panic containment and graceful shutdown. Turns a [`Ready`] request head
//! into our own [`Request`] and the handler's [`Response`] into bytes for the poller.
//!
//! Workers only ever see complete request heads (`edge/poller.rs` reads them, and keeps idle
//! and slow connections, without a thread), read bodies at a minimum rate (`edge/body.rs`)
//! and hand the response back to the poller, which writes it non-blocking: a file body
//! (`/boot/*`, `/images/*`, backups) is sent with `sendfile` from there, so slow readers never
//! hold a worker. SSE streams move to their own threads (at most the bus's cap). A handler
//! panic becomes a 500 and the worker lives on. On shutdown workers stop taking requests,
//! finish the ones in flight (body reads abort, so uploads abort), SSE streams end, and the
//! caller closes the database. `[tuning] max_connections` is the number of requests served at
//! once (the worker count).

use super::context::AppContext;
use super::edge::body::Inbound;
use super::edge::outgoing::{self, FileRange, Outgoing};
use super::edge::poller::{Handback, Limits, Poller, Queue, Ready, Returns, Then, DRAIN_BYTES};
use super::request::Request;
use super::response::{Body, HttpError, Response};
use super::sse::{Next, Subscription, KEEP_ALIVE};
use crate::error::{Error, Result};
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Upper bound on request workers, whatever `[tuning] max_connections` says.
const MAX_WORKERS: usize = 256;

/// How long in-flight requests may take to finish after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Connections the kernel may queue for `accept` (it caps this at `net.core.somaxconn`).
const LISTEN_BACKLOG: i32 = 4096;

/// How long an event stream's write may block on a client that stopped reading.
const STREAM_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// A bound listener, ready to serve.
pub struct Listener {
    listener: TcpListener,
    /// File descriptors the process may open (after raising the soft limit).
    fds: usize,
    /// The address actually bound (port 0 resolved).
    pub addr: SocketAddr,
}

/// Binds `listen` (`ADDR:PORT`), first raising the open-file limit to its hard maximum: every
/// held connection is a descriptor, and the default soft limit (1,024) is a few browsers and
/// one port scan.
pub fn bind(listen: &str) -> Result<Listener> {
    let failed = |e: &dyn std::fmt::Display| {
        Error::failed(format!("listening on {listen}: {e}")).context("starting bty-web")
    };
    let fds = raise_nofile();
    let addr = listen
        .to_socket_addrs()
        .map_err(|e| failed(&e))?
        .next()
        .ok_or_else(|| failed(&"no address to bind"))?;
    let listener = listener_on(addr).map_err(|e| failed(&e))?;
    let addr = listener.local_addr().map_err(|e| failed(&e))?;
    Ok(Listener { listener, fds, addr })
}

/// A listening socket with the kernel's largest accept backlog (`std` asks for 128, which a
/// burst of connects overflows before the poller's next `accept`, costing clients a 1 s SYN
/// retransmission).
fn listener_on(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use rustix::net::{sockopt, AddressFamily, SocketFlags, SocketType};
    let family = if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
    let fd = rustix::net::socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC, None)?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    rustix::net::bind(&fd, &addr)?;
    rustix::net::listen(&fd, LISTEN_BACKLOG)?;
    Ok(TcpListener::from(fd))
}

/// Raises `RLIMIT_NOFILE`'s soft limit to the hard one; returns the limit now in force.
fn raise_nofile() -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            crate::log_warn!("raising the open-file limit: {e}");
        }
    }
    let now = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    now.min(1 << 20) as usize
}

/// Serves until `ctx.shutdown` is set, then returns once in-flight requests have finished.
pub fn serve(ctx: Arc<AppContext>, listener: Listener) {
    let count = ctx.config.tuning.max_connections.clamp(1, MAX_WORKERS);
    // Only proxies named by address or network are exempt from the per-address limits: the
    // upstream form "trust whichever peer connects" (`1`) would lift them for every client.
    let exempt = match &ctx.config.server.trusted_proxy {
        crate::config::TrustedProxy::AnyPeer => crate::config::TrustedProxy::Off,
        named => named.clone(),
    };
    let limits = Limits::new(count, listener.fds, exempt);
    let queue = Arc::new(Queue::default());
    let poller = match Poller::new(listener.listener, queue.clone(), limits) {
        Ok(p) => p,
        Err(e) => {
            crate::log_error!("starting the connection poller: {e}");
            ctx.bus.close();
            return;
        }
    };
    let returns = poller.returns();
    let stop = Arc::new(AtomicBool::new(false));
    let polling = {
        let (ctx, stop) = (ctx.clone(), stop.clone());
        std::thread::Builder::new()
            .name("bty-web-poll".into())
            .spawn(move || poller.run(&ctx.shutdown, &stop))
    };
    let polling = match polling {
        Ok(t) => t,
        Err(e) => {
            crate::log_error!("starting the connection poller: {e}");
            ctx.bus.close();
            return;
        }
    };
    let streams = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..count)
        .map(|i| {
            let (ctx, queue, returns, streams) =
                (ctx.clone(), queue.clone(), returns.clone(), streams.clone());
            std::thread::Builder::new()
                .name(format!("bty-web-{i}"))
                .spawn(move || worker(&ctx, &queue, &returns, &streams))
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
    // The poller writes the last responses, then ends.
    stop.store(true, Ordering::Relaxed);
    ctx.bus.close();
    // SSE threads notice the closed bus within one keep-alive tick; give them a moment.
    let deadline = Instant::now() + Duration::from_secs(3);
    while (streams.load(Ordering::Relaxed) > 0 || !polling.is_finished()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn worker(ctx: &Arc<AppContext>, queue: &Queue, returns: &Returns, streams: &Arc<AtomicUsize>) {
    while !ctx.shutting_down() {
        if let Some(ready) = queue.pop(Duration::from_millis(200)) {
            handle(ctx, ready, returns, streams);
        }
    }
}

fn handle(ctx: &Arc<AppContext>, ready: Ready, returns: &Returns, streams: &Arc<AtomicUsize>) {
    let started = Instant::now();
    let Ready { stream, peer, head, rest } = ready;
    if stream.set_nonblocking(false).is_err() {
        returns.send(Handback::Released(peer));
        return;
    }
    let (method, url) = (head.method.clone(), head.target.clone());
    let mut body = Inbound::new(&stream, rest, head.framing, head.expect_continue, &ctx.shutdown);
    let (response, client) = {
        let req = Request::new(
            &method,
            &url,
            head.headers.clone(),
            Some(peer.ip()),
            &ctx.config.server.trusted_proxy,
            head.body_len(),
            Box::new(&mut body),
        );
        let client = req.client_ip.clone();
        (contain(&method, &url, || super::router::handle(ctx, req)), client)
    };
    let status = response.status;
    // The connection carries another request only if this body was read to its end.
    let then = if !body.is_done() {
        Then::Linger(DRAIN_BYTES)
    } else if head.keep_alive && !ctx.shutting_down() {
        Then::KeepAlive(body.into_rest())
    } else {
        Then::Close
    };
    let close = !matches!(then, Then::KeepAlive(_));
    let Response { status: _, headers, body } = response;
    let head_only = method == "HEAD";
    let (out, len) = match body {
        Body::Empty => (Outgoing::new(outgoing::head(status, &headers, Some(0), close), None), 0),
        Body::Bytes(b) => {
            let len = b.len() as u64;
            let mut bytes = outgoing::head(status, &headers, Some(len), close);
            if !head_only {
                bytes.extend_from_slice(&b);
            }
            (Outgoing::new(bytes, None), len)
        }
        Body::File { file, offset, len } => {
            let bytes = outgoing::head(status, &headers, Some(len), close);
            let range = (!head_only).then_some(FileRange { file, offset, remaining: len });
            (Outgoing::new(bytes, range), len)
        }
        Body::Events(sub) => {
            stream_on_own_thread(ctx, stream, headers, sub, streams);
            returns.send(Handback::Released(peer));
            crate::log_info!("{client} \"{method} {url}\" {status} - {}ms", started.elapsed().as_millis());
            return;
        }
    };
    returns.send(Handback::Reply { stream, peer, out, then });
    let len = if head_only { 0 } else { len };
    crate::log_info!("{client} \"{method} {url}\" {status} {len} {}ms", started.elapsed().as_millis());
}

/// Runs a handler; a panic becomes a 500 and the worker lives on.
fn contain(method: &str, url: &str, f: impl FnOnce() -> Response) -> Response {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        crate::log_error!("{method} {url}: handler panicked");
        HttpError::internal("internal error").into_response()
    })
}

/// Moves an event stream to a thread of its own (blocking writes with a timeout).
fn stream_on_own_thread(
    ctx: &Arc<AppContext>,
    stream: TcpStream,
    headers: Vec<(String, String)>,
    sub: Subscription,
    streams: &Arc<AtomicUsize>,
) {
    if stream.set_write_timeout(Some(STREAM_WRITE_TIMEOUT)).is_err() {
        return;
    }
    streams.fetch_add(1, Ordering::Relaxed);
    let (ctx, streams2) = (ctx.clone(), streams.clone());
    let spawned = std::thread::Builder::new().name("bty-web-sse".into()).spawn(move || {
        stream_events(&ctx, &stream, &headers, sub);
        streams2.fetch_sub(1, Ordering::Relaxed);
    });
    if spawned.is_err() {
        streams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Writes an SSE stream until the client leaves or the bus closes.
fn stream_events(ctx: &AppContext, mut w: &TcpStream, headers: &[(String, String)], sub: Subscription) {
    let mut headers = headers.to_vec();
    headers.push(("Content-Type".into(), "text/event-stream".into()));
    headers.push(("Cache-Control".into(), "no-cache".into()));
    if w.write_all(&outgoing::head(200, &headers, None, true))
        .and_then(|_| w.write_all(b"retry: 3000\n\n"))
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
        if w.write_all(frame.as_bytes()).is_err() {
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
