//! Repeated events from the unauthenticated planes, counted in memory and written as summaries.
//!
//! A TFTP refusal, a probe for a file that does not exist or a contact beyond the discovery
//! cap costs a counter increment here, never a database write on the thread that saw it (the
//! TFTP receive loop must keep receiving). The housekeeping thread drains the tally every
//! [`FLUSH_EVERY`]: each distinct (kind, subject, address) becomes one event whose `details`
//! carry `count`, at most [`ROWS_PER_FLUSH`] of them, and everything beyond that one more
//! `events.coalesced` row. So a flood of any size writes a bounded number of rows per minute.
//! The tally itself holds at most [`MAX_KEYS`] keys; further keys only add to the overflow
//! count. It does not decide which events are repetitive: callers choose `count` or `audit`.

use crate::db::NewEvent;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the housekeeping thread writes the summaries.
pub const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// Distinct summaries written per flush; the rest are folded into one row.
pub const ROWS_PER_FLUSH: usize = 16;
/// Distinct keys held between flushes.
pub const MAX_KEYS: usize = 1024;

type Key = (String, Option<String>, Option<String>);

#[derive(Default)]
struct Counts {
    /// First event seen per key (kept as the summary's template) and how many times.
    by_key: HashMap<Key, (NewEvent, u64)>,
    /// Order keys were first seen in, so the oldest are written first.
    order: Vec<Key>,
    /// Events that found the tally full.
    overflow: u64,
}

/// Counters of repeated events awaiting their summary.
#[derive(Default)]
pub struct Tally {
    counts: Mutex<Counts>,
}

impl Tally {
    /// Counts `e` (source address already filled in).
    pub fn count(&self, e: NewEvent) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let key = (e.kind.clone(), e.subject_id.clone(), e.source_ip.clone());
        if let Some((_, n)) = c.by_key.get_mut(&key) {
            *n += 1;
        } else if c.by_key.len() < MAX_KEYS {
            c.order.push(key.clone());
            c.by_key.insert(key, (e, 1));
        } else {
            c.overflow += 1;
        }
    }

    /// Empties the tally into the rows to write: one per key (oldest first, at most
    /// [`ROWS_PER_FLUSH`]), plus one `events.coalesced` row for the rest.
    pub fn drain(&self) -> Vec<NewEvent> {
        let mut c = std::mem::take(&mut *self.counts.lock().unwrap_or_else(|p| p.into_inner()));
        let mut rows = Vec::new();
        let mut folded = c.overflow;
        for key in c.order.drain(..) {
            let Some((mut e, n)) = c.by_key.remove(&key) else { continue };
            if rows.len() == ROWS_PER_FLUSH {
                folded += n;
                continue;
            }
            if n > 1 {
                e.summary = format!("{} (×{n})", e.summary);
            }
            let mut details = match e.details.take() {
                Some(serde_json::Value::Object(m)) => m,
                Some(other) => [("value".to_string(), other)].into_iter().collect(),
                None => serde_json::Map::new(),
            };
            details.insert("count".into(), n.into());
            e.details = Some(serde_json::Value::Object(details));
            rows.push(e);
        }
        if folded > 0 {
            rows.push(NewEvent {
                kind: "events.coalesced".into(),
                actor: Some("system".into()),
                summary: format!("{folded} more repeated event(s) from PXE clients not itemised"),
                details: Some(serde_json::json!({ "count": folded })),
                ..NewEvent::default()
            });
        }
        rows
    }
}

/// A log line that repeats at most once per interval, saying how many it held back.
pub struct Throttle {
    every: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttle {
    /// A throttle letting one line through per `every`.
    pub const fn new(every: Duration) -> Throttle {
        Throttle { every, state: Mutex::new((None, 0)) }
    }

    /// `Some(held back so far)` when a line may be logged now, else `None` (counted).
    pub fn admit(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match s.0 {
            Some(t) if t.elapsed() < self.every => {
                s.1 += 1;
                None
            }
            _ => {
                let held = s.1;
                *s = (Some(Instant::now()), 0);
                Some(held)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(file: &str, ip: &str) -> NewEvent {
        NewEvent {
            kind: "netboot.tftp.failed".into(),
            subject_id: Some(file.into()),
            source_ip: Some(ip.into()),
            summary: format!("{file} missing"),
            details: Some(serde_json::json!({ "file": file })),
            ..NewEvent::default()
        }
    }

    #[test]
    fn repeats_become_one_row_with_a_count_and_floods_are_folded() {
        let t = Tally::default();
        for _ in 0..1000 {
            t.count(probe("a", "10.0.0.1"));
        }
        t.count(probe("b", "10.0.0.1"));
        let rows = t.drain();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].details.as_ref().unwrap()["count"], 1000);
        assert!(rows[0].summary.ends_with("(×1000)"), "{}", rows[0].summary);
        assert_eq!(rows[1].details.as_ref().unwrap()["count"], 1);
        assert!(t.drain().is_empty());
        for i in 0..(MAX_KEYS + 10) {
            t.count(probe(&i.to_string(), "10.0.0.2"));
        }
        let rows = t.drain();
        assert_eq!(rows.len(), ROWS_PER_FLUSH + 1);
        let folded = rows.last().unwrap();
        assert_eq!(folded.kind, "events.coalesced");
        assert_eq!(folded.details.as_ref().unwrap()["count"], (MAX_KEYS + 10 - ROWS_PER_FLUSH) as u64);
    }

    #[test]
    fn a_throttle_admits_one_line_per_interval_and_counts_the_rest() {
        let t = Throttle::new(Duration::from_secs(3600));
        assert_eq!(t.admit(), Some(0));
        assert_eq!(t.admit(), None);
        assert_eq!(t.admit(), None);
        let t = Throttle::new(Duration::ZERO);
        assert_eq!(t.admit(), Some(0));
        assert_eq!(t.admit(), Some(0));
    }
}
