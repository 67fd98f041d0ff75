//! Server-sent events: a small in-process bus with a cap on subscribers.
//!
//! Publishers send one small JSON message per changed thing (a machine, its progress), never a
//! re-render of every row. Each subscriber has a bounded queue; a subscriber that falls behind
//! loses messages rather than slowing publishers (the page can refetch). Closing the bus ends
//! every stream, which is how shutdown stops SSE threads. The socket side is in `server.rs`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Messages queued per subscriber before new ones are dropped.
const QUEUE: usize = 64;

/// How often an idle stream gets a keep-alive comment (proxies close silent connections).
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

struct Inner {
    subscribers: Vec<(SyncSender<String>, Arc<AtomicBool>)>,
    closed: bool,
}

/// The publish side, shared by handlers.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Mutex<Inner>>,
    cap: usize,
}

/// One client's stream of framed messages.
pub struct Subscription {
    rx: Receiver<String>,
    alive: Arc<AtomicBool>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::Relaxed);
    }
}

/// What the stream writer does next.
pub enum Next {
    /// Write this framed message.
    Message(String),
    /// Nothing happened for a while: write a keep-alive comment.
    KeepAlive,
    /// The bus closed (shutdown): end the stream.
    End,
}

impl Subscription {
    /// Waits for the next message, up to `timeout`.
    pub fn next(&self, timeout: Duration) -> Next {
        match self.rx.recv_timeout(timeout) {
            Ok(m) => Next::Message(m),
            Err(RecvTimeoutError::Timeout) => Next::KeepAlive,
            Err(RecvTimeoutError::Disconnected) => Next::End,
        }
    }
}

impl Bus {
    /// A bus that admits at most `cap` subscribers at once.
    pub fn new(cap: usize) -> Bus {
        Bus { inner: Arc::new(Mutex::new(Inner { subscribers: Vec::new(), closed: false })), cap }
    }

    /// A new subscription, or `None` when the cap is reached or the bus is closed.
    pub fn subscribe(&self) -> Option<Subscription> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        // Forget subscribers whose clients left, so they do not count against the cap.
        inner.subscribers.retain(|(_, alive)| alive.load(Ordering::Relaxed));
        if inner.closed || inner.subscribers.len() >= self.cap {
            return None;
        }
        let (tx, rx) = sync_channel(QUEUE);
        let alive = Arc::new(AtomicBool::new(true));
        inner.subscribers.push((tx, alive.clone()));
        Some(Subscription { rx, alive })
    }

    /// Sends `event: NAME` with a JSON `data` line to every subscriber.
    pub fn publish(&self, event: &str, data: &serde_json::Value) {
        let frame = format!("event: {event}\ndata: {data}\n\n");
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.subscribers.retain(|(tx, _)| match tx.try_send(frame.clone()) {
            Ok(()) | Err(TrySendError::Full(_)) => true,
            Err(TrySendError::Disconnected(_)) => false,
        });
    }

    /// Ends every stream and refuses new subscribers.
    pub fn close(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.closed = true;
        inner.subscribers.clear();
    }

    /// Current subscriber count (after forgetting departed clients).
    pub fn subscribers(&self) -> usize {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.subscribers.retain(|(_, alive)| alive.load(Ordering::Relaxed));
        inner.subscribers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_are_capped_and_freed_when_they_leave() {
        let bus = Bus::new(2);
        let a = bus.subscribe().unwrap();
        let _b = bus.subscribe().unwrap();
        assert!(bus.subscribe().is_none());
        drop(a);
        assert!(bus.subscribe().is_some());
    }

    #[test]
    fn publish_frames_one_event_and_close_ends_streams() {
        let bus = Bus::new(4);
        let s = bus.subscribe().unwrap();
        bus.publish("machine", &serde_json::json!({"mac": "aa"}));
        match s.next(Duration::from_millis(10)) {
            Next::Message(m) => assert_eq!(m, "event: machine\ndata: {\"mac\":\"aa\"}\n\n"),
            _ => panic!("expected the published message"),
        }
        assert!(matches!(s.next(Duration::from_millis(10)), Next::KeepAlive));
        bus.close();
        assert!(matches!(s.next(Duration::from_millis(10)), Next::End));
    }
}
