//! The audit log: append, query with the reference's filters and cursor, acknowledge, prune.

use super::Db;
use crate::error::Result;
use crate::wire::Event;
use rusqlite::{params, params_from_iter, types::Value, OptionalExtension};

/// A row to append; `ts` and `id` are assigned on insert.
#[derive(Debug, Clone, Default)]
pub struct NewEvent {
    /// Dotted kind (`machine.flashed`).
    pub kind: String,
    /// Entity class.
    pub subject_kind: Option<String>,
    /// Entity id.
    pub subject_id: Option<String>,
    /// `operator`, `system`, `pxe-client`.
    pub actor: Option<String>,
    /// Request address.
    pub source_ip: Option<String>,
    /// One line for people.
    pub summary: String,
    /// Kind-specific JSON.
    pub details: Option<serde_json::Value>,
}

/// `GET /events` filters (reference §6.3): exact matches, `failed`, cursor and limit.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Exact kind.
    pub kind: Option<String>,
    /// Exact subject kind.
    pub subject_kind: Option<String>,
    /// Exact subject id.
    pub subject_id: Option<String>,
    /// Exact actor.
    pub actor: Option<String>,
    /// Exact source address.
    pub source_ip: Option<String>,
    /// Only kinds ending in `failed`.
    pub failed: bool,
    /// Only unacknowledged rows.
    pub unacknowledged: bool,
    /// Case-insensitive substring over kind, subject, actor, address and summary (`/ui/events?q=`).
    pub q: Option<String>,
    /// Cursor: only ids below this.
    pub before_id: Option<i64>,
    /// At most this many (clamped to 1..=500).
    pub limit: u32,
}

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    let details: Option<String> = r.get(8)?;
    Ok(Event {
        id: r.get(0)?,
        ts: r.get(1)?,
        kind: r.get(2)?,
        subject_kind: r.get(3)?,
        subject_id: r.get(4)?,
        actor: r.get(5)?,
        source_ip: r.get(6)?,
        summary: r.get(7)?,
        details: details.and_then(|d| serde_json::from_str(&d).ok()),
        acknowledged: r.get(9)?,
    })
}

const COLUMNS: &str =
    "id, ts, kind, subject_kind, subject_id, actor, source_ip, summary, details, acknowledged";

impl Db {
    /// Appends an event with the current time; returns it as stored.
    pub fn record_event(&self, e: &NewEvent) -> Result<Event> {
        let ts = super::now();
        let details = e.details.as_ref().map(|d| d.to_string());
        self.write_expendable(|c| {
            c.execute(
                "INSERT INTO events (ts, kind, subject_kind, subject_id, actor, source_ip, summary, details)
                   VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![ts, e.kind, e.subject_kind, e.subject_id, e.actor, e.source_ip, e.summary, details],
            )?;
            let id = c.last_insert_rowid();
            c.query_row(&format!("SELECT {COLUMNS} FROM events WHERE id = ?1"), [id], from_row)
        })
    }

    /// Events matching `f`, newest first.
    pub fn events(&self, f: &EventFilter) -> Result<Vec<Event>> {
        let mut clauses: Vec<String> = Vec::new();
        let mut args: Vec<Value> = Vec::new();
        let exact = [
            ("kind", &f.kind),
            ("subject_kind", &f.subject_kind),
            ("subject_id", &f.subject_id),
            ("actor", &f.actor),
            ("source_ip", &f.source_ip),
        ];
        for (col, v) in exact {
            if let Some(v) = v {
                args.push(Value::Text(v.clone()));
                clauses.push(format!("{col} = ?{}", args.len()));
            }
        }
        if f.failed {
            clauses.push("kind LIKE '%failed'".into());
        }
        if f.unacknowledged {
            clauses.push("acknowledged = 0".into());
        }
        if let Some(q) = f.q.as_deref().filter(|q| !q.is_empty()) {
            let escaped = q.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            args.push(Value::Text(format!("%{escaped}%")));
            let n = args.len();
            let cols = ["kind", "subject_kind", "subject_id", "actor", "source_ip", "summary"];
            let any: Vec<String> =
                cols.iter().map(|c| format!("lower(COALESCE({c}, '')) LIKE ?{n} ESCAPE '\\'")).collect();
            clauses.push(format!("({})", any.join(" OR ")));
        }
        if let Some(b) = f.before_id {
            args.push(Value::Integer(b));
            clauses.push(format!("id < ?{}", args.len()));
        }
        let filter =
            if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
        let limit = f.limit.clamp(1, 500);
        let sql = format!("SELECT {COLUMNS} FROM events {filter} ORDER BY id DESC LIMIT {limit}");
        self.with(|c| {
            let mut st = c.prepare(&sql)?;
            let rows = st.query_map(params_from_iter(args), from_row)?.collect();
            rows
        })
    }

    /// Marks an event acknowledged; whether it exists.
    pub fn ack_event(&self, id: i64, acknowledged: bool) -> Result<bool> {
        self.write(|c| {
            Ok(c.execute("UPDATE events SET acknowledged = ?2 WHERE id = ?1", params![id, acknowledged])? > 0)
        })
    }

    /// How many unacknowledged `*failed` events there are (the dashboard tripwire).
    pub fn unacknowledged_failures(&self) -> Result<u64> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM events WHERE kind LIKE '%failed' AND acknowledged = 0",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
        })
    }

    /// Deletes events older than `keep_days` days (0 keeps all) and all but the newest
    /// `keep_max` (0 keeps all). Returns how many rows went.
    pub fn prune_events(&self, keep_days: u64, keep_max: u64) -> Result<u64> {
        let cutoff = (keep_days > 0).then(|| {
            let days = time::Duration::days(keep_days.min(100_000) as i64);
            super::format_ts(time::OffsetDateTime::now_utc() - days)
        });
        self.write(|c| {
            let mut n = 0;
            if let Some(cutoff) = &cutoff {
                n += c.execute("DELETE FROM events WHERE ts < ?1", [cutoff])?;
            }
            if keep_max > 0 {
                let floor: Option<i64> = c
                    .query_row(
                        "SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?1",
                        [keep_max.min(i64::MAX as u64) as i64],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(floor) = floor {
                    n += c.execute("DELETE FROM events WHERE id <= ?1", [floor])?;
                }
            }
            Ok(n as u64)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, subject: &str) -> NewEvent {
        NewEvent {
            kind: kind.into(),
            subject_kind: Some("machine".into()),
            subject_id: Some(subject.into()),
            actor: Some("pxe-client".into()),
            summary: format!("{kind} {subject}"),
            ..NewEvent::default()
        }
    }

    #[test]
    fn filters_cursor_and_failed_work_as_the_reference() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("state.db")).unwrap();
        for i in 0..5 {
            db.record_event(&ev("netboot.pxe.offered", &format!("m{i}"))).unwrap();
        }
        let failed = db.record_event(&ev("machine.flash_failed", "m1")).unwrap();
        let all = db.events(&EventFilter { limit: 50, ..EventFilter::default() }).unwrap();
        assert_eq!(all.len(), 6);
        assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        let page = db
            .events(&EventFilter { limit: 2, before_id: Some(all[1].id), ..EventFilter::default() })
            .unwrap();
        assert_eq!(page.iter().map(|e| e.id).collect::<Vec<_>>(), [all[2].id, all[3].id]);
        let f = db.events(&EventFilter { failed: true, limit: 50, ..EventFilter::default() }).unwrap();
        assert_eq!(f.len(), 1);
        let m1 = db
            .events(&EventFilter { subject_id: Some("m1".into()), limit: 50, ..EventFilter::default() })
            .unwrap();
        assert_eq!(m1.len(), 2);
        let q = db
            .events(&EventFilter { q: Some("FLASH_F".into()), limit: 50, ..EventFilter::default() })
            .unwrap();
        assert_eq!(q.len(), 1);
        assert_eq!(db.unacknowledged_failures().unwrap(), 1);
        assert!(db.ack_event(failed.id, true).unwrap());
        assert_eq!(db.unacknowledged_failures().unwrap(), 0);
        assert!(!db.ack_event(9999, true).unwrap());
    }

    #[test]
    fn pruning_keeps_the_newest_n() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("state.db")).unwrap();
        for i in 0..10 {
            db.record_event(&ev("k", &i.to_string())).unwrap();
        }
        assert_eq!(db.prune_events(365, 4).unwrap(), 6);
        let left = db.events(&EventFilter { limit: 50, ..EventFilter::default() }).unwrap();
        assert_eq!(
            left.iter().map(|e| e.subject_id.clone().unwrap()).collect::<Vec<_>>(),
            ["9", "8", "7", "6"]
        );
    }
}
