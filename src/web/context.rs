//! Everything a handler may use: configuration, the database, secrets, the SSE bus, live flash
//! progress, the login limiter, background jobs and the shutdown flag.
//!
//! [`AppContext::open`] prepares the state directory on first start (directories, the session
//! secret and, without a configured password, a generated admin password in
//! `<state_dir>/admin-password`, mode 0600). Nothing here listens on a socket.

use super::auth::random_hex;
use super::jobs::Jobs;
use super::progress::LiveProgress;
use super::request::Request;
use super::sse::Bus;
use super::tally::{Tally, Throttle};
use crate::config::{Config, Limits};
use crate::db::{Db, NewEvent};
use crate::error::{Context, Error, Result};
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Events written between two checks of `[limits] events_max_rows`.
const TRIM_EVERY: u64 = 256;

/// At most one "event not recorded" log line per this interval (a full disk would otherwise
/// log every PXE request).
static UNRECORDED_LOG: Throttle = Throttle::new(std::time::Duration::from_secs(60));

/// Most concurrent SSE streams.
pub const MAX_SSE_SUBSCRIBERS: usize = 64;

/// Shared state of one bty-web instance.
pub struct AppContext {
    /// Effective configuration.
    pub config: Config,
    /// The state database.
    pub db: Db,
    /// Key for session cookies and CSRF tokens.
    pub secret: Vec<u8>,
    /// The admin password (configured or generated).
    pub admin_password: String,
    /// Per-machine change notifications.
    pub bus: Bus,
    /// Live flash progress by MAC (kept in memory: it is only interesting while it changes).
    pub progress: Mutex<HashMap<String, LiveProgress>>,
    /// Failed logins per address.
    pub login_limiter: super::auth::LoginLimiter,
    /// Image fetch jobs.
    pub jobs: Jobs,
    /// Set on SIGTERM/SIGINT: stop accepting, abort uploads, end streams.
    pub shutdown: Arc<AtomicBool>,
    /// `host:port` used in generated URLs when a request carries no `Host`.
    pub fallback_host: Mutex<String>,
    /// Repeated PXE-plane events awaiting their summary row (`tally.rs`).
    pub tally: Tally,
    /// Events written since start, to trim the table every [`TRIM_EVERY`].
    events_written: AtomicU64,
}

impl AppContext {
    /// Prepares the state directory and opens the database.
    pub fn open(config: Config) -> Result<AppContext> {
        let paths = &config.paths;
        for dir in [&paths.state_dir, &paths.boot_dir, &paths.images_dir] {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let db = Db::open(&paths.state_dir.join("state.db"))?;
        db.keep_reserve();
        let secret = match config.server.session_secret.trim() {
            "" => read_or_create_secret(&paths.state_dir.join("session-secret"), || random_hex(32))?,
            s => s.to_string(),
        };
        let replaced = db.setting(super::auth::PASSWORD_SETTING)?.is_some();
        let admin_password = match config.admin_password.as_str() {
            // A password set on the account page rules: no file is generated (or kept from a
            // change made before files were removed), and the fallback opens nothing.
            "" if replaced => {
                if super::auth::remove_stale_password_file(&config)? {
                    crate::log_info!("removed the stale generated admin-password file");
                }
                random_hex(32)?
            }
            "" => {
                let path = paths.state_dir.join("admin-password");
                let existed = path.exists();
                let pw = read_or_create_secret(&path, || random_hex(12))?;
                if !existed {
                    crate::log_info!("generated an admin password; it is in {} (mode 0600)", path.display());
                }
                pw
            }
            p => p.to_string(),
        };
        super::files::remove_partials(&paths.boot_dir);
        super::files::remove_partials(&paths.images_dir);
        Ok(AppContext {
            config,
            db,
            secret: secret.into_bytes(),
            admin_password,
            bus: Bus::new(MAX_SSE_SUBSCRIBERS),
            progress: Mutex::new(HashMap::new()),
            login_limiter: Default::default(),
            jobs: Jobs::default(),
            shutdown: Arc::new(AtomicBool::new(false)),
            fallback_host: Mutex::new("127.0.0.1:8080".to_string()),
            tally: Tally::default(),
            events_written: AtomicU64::new(0),
        })
    }

    /// `http://HOST` for URLs handed to clients: the request's `Host`, or the listen address.
    pub fn base_url(&self, req: &Request<'_>) -> String {
        let fallback = self.fallback_host.lock().unwrap_or_else(|p| p.into_inner()).clone();
        format!("http://{}", req.host_or(&fallback))
    }

    /// The limits in force now. The one accessor for `[limits]`: read at use time, so a value
    /// changed at run time (settings) applies to the next request.
    pub fn limits(&self) -> Limits {
        let setting = |key| super::settings::u64_of(self, "limits", key);
        Limits {
            low_space_warn_mib: setting("low_space_warn_mib"),
            discovery_per_hour: setting("discovery_per_hour"),
            discovery_max: setting("discovery_max"),
            ..self.config.limits.clone()
        }
    }

    /// Appends an audit event; a failure to record is logged (at most once a minute), never
    /// fails the request. Every few hundred rows the table is trimmed to
    /// `[limits] events_max_rows`, so a flood cannot outgrow it between hourly prunes.
    pub fn audit(&self, req: Option<&Request<'_>>, e: NewEvent) {
        let e = NewEvent { source_ip: e.source_ip.or_else(|| req.map(|r| r.client_ip.clone())), ..e };
        match self.db.record_event(&e) {
            Ok(_) => {
                if self.events_written.fetch_add(1, Ordering::Relaxed) % TRIM_EVERY == TRIM_EVERY - 1 {
                    self.trim_events();
                }
            }
            Err(err) => return self.unrecorded(&format!("event {}", e.kind), &err),
        }
        // Open dashboards and events pages re-render their activity lists from this.
        self.bus.publish("activity", &serde_json::json!({ "kind": e.kind, "subject_id": e.subject_id }));
    }

    /// Logs that `what` could not be written (a full or read-only disk), at most once a minute.
    pub fn unrecorded(&self, what: &str, err: &Error) {
        if let Some(held) = UNRECORDED_LOG.admit() {
            crate::log_warn!(
                "{what} not recorded: {err} ({held} other write(s) dropped since the last such line)"
            );
        }
    }

    /// Counts a repeated event from an unauthenticated client; it is written later as part of
    /// one summary row (`tally.rs`), never on the caller's thread.
    pub fn audit_repeated(&self, req: Option<&Request<'_>>, e: NewEvent) {
        let e = NewEvent { source_ip: e.source_ip.or_else(|| req.map(|r| r.client_ip.clone())), ..e };
        self.tally.count(e);
    }

    /// Deletes the oldest events beyond `[limits] events_max_rows` (0 keeps all).
    pub fn trim_events(&self) {
        let max = self.limits().events_max_rows;
        if max == 0 {
            return;
        }
        match self.db.prune_events(0, max) {
            Ok(0) => {}
            Ok(n) => crate::log_info!("trimmed {n} events beyond events_max_rows = {max}"),
            Err(e) => crate::log_warn!("trimming events: {e}"),
        }
    }

    /// Whether shutdown has begun.
    pub fn shutting_down(&self) -> bool {
        self.shutdown.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// An audit event about a subject (`machine`, mac).
pub fn event(kind: &str, subject: (&str, &str), actor: &str, summary: impl Into<String>) -> NewEvent {
    NewEvent {
        kind: kind.to_string(),
        subject_kind: Some(subject.0.to_string()),
        subject_id: Some(subject.1.to_string()),
        actor: Some(actor.to_string()),
        summary: summary.into(),
        ..NewEvent::default()
    }
}

/// Reads a non-empty secret file, or creates it (mode 0600) with `make()`.
fn read_or_create_secret(path: &Path, make: impl FnOnce() -> Result<String>) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::from(e).context(format!("reading {}", path.display()))),
    }
    let value = make()?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(format!("{value}\n").as_bytes()).with_context(|| format!("writing {}", tmp.display()))?;
    f.sync_all().with_context(|| format!("syncing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {}", tmp.display()))?;
    Ok(value)
}
