//! Settings an operator changes in the browser: a registered `[section] key` stored in the
//! `settings` table as `section.key` overrides what `bty.toml` (or the environment) says, is
//! shown with its source (`default`, `file`, `env`, `flag` or `ui`), and every change is
//! audited (`settings.changed`, old and new value). Readers ask [`u64_of`] or [`time_zone`]
//! instead of `ctx.config`, so a change takes effect without a restart.
//!
//! Registering a key is one row in [`EDITABLE`]; the key must also exist in `config.rs`.

use super::context::{event, AppContext};
use super::request::Request;
use super::response::HttpError;
use crate::config::Source;

/// What a setting accepts.
#[derive(Debug, Clone, Copy, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Accepts {
    /// A whole number in `min..=max`.
    Whole {
        /// Smallest accepted value.
        min: u64,
        /// Largest accepted value.
        max: u64,
    },
    /// An IANA time zone name (`Europe/Berlin`, `UTC`).
    TimeZone,
}

impl Accepts {
    /// The text to store for `raw` (trimmed, non-empty), or why it is refused.
    fn check(self, section: &str, key: &str, raw: &str) -> Result<String, String> {
        match self {
            Accepts::Whole { min, max } => {
                let v: u64 =
                    raw.parse().map_err(|_| format!("[{section}] {key}: {raw:?} is not a whole number"))?;
                if v < min || v > max {
                    return Err(format!("[{section}] {key}: {v} is outside {min}..={max}"));
                }
                Ok(v.to_string())
            }
            // Stored as the database spells it, so `asia/kolkata` shows as `Asia/Kolkata`.
            Accepts::TimeZone => match jiff::tz::TimeZone::get(raw) {
                Ok(tz) => Ok(tz.iana_name().unwrap_or(raw).to_string()),
                // Zones come from the host's tzdata: a host without it knows only UTC.
                Err(_) => Err(format!(
                    "[{section}] {key}: {raw:?} is not a time zone; give an IANA name such as Europe/Berlin \
                     or UTC (zones come from /usr/share/zoneinfo: install tzdata if it is missing)"
                )),
            },
        }
    }

    /// A value as the audit event's details carry it (numbers as numbers).
    fn json(self, value: &str) -> serde_json::Value {
        match self {
            Accepts::Whole { .. } => value.parse::<u64>().map_or_else(|_| value.into(), Into::into),
            Accepts::TimeZone => value.into(),
        }
    }
}

/// One browser-editable setting.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Editable {
    /// `[section]`.
    pub section: &'static str,
    /// Key.
    pub key: &'static str,
    /// What it does, for the form.
    pub help: &'static str,
    /// What it accepts.
    pub accepts: Accepts,
}

/// Every key the Settings page can change.
pub const EDITABLE: &[Editable] = &[
    Editable {
        section: "backup",
        key: "interval_hours",
        help: "Hours between scheduled backups; 0 turns the schedule off.",
        accepts: Accepts::Whole { min: 0, max: 8760 },
    },
    Editable {
        section: "backup",
        key: "keep",
        help: "Backups kept; older ones are pruned. 0 keeps all.",
        accepts: Accepts::Whole { min: 0, max: 100_000 },
    },
    Editable {
        section: "limits",
        key: "low_space_warn_mib",
        help: "The dashboard warns when the state directory has less free space (MiB).",
        accepts: Accepts::Whole { min: 0, max: 1 << 40 },
    },
    Editable {
        section: "limits",
        key: "discovery_per_hour",
        help: "New machines PXE discovery accepts per hour.",
        accepts: Accepts::Whole { min: 0, max: 1_000_000 },
    },
    Editable {
        section: "limits",
        key: "discovery_max",
        help: "Machines PXE discovery accepts in total.",
        accepts: Accepts::Whole { min: 0, max: 100_000_000 },
    },
    Editable {
        section: "ui",
        key: "stall_seconds",
        help: "A flash whose written bytes have not moved for this many seconds shows as stalled.",
        accepts: Accepts::Whole { min: 1, max: 86_400 },
    },
    Editable {
        section: "ui",
        key: "time_zone",
        help: "The time zone pages show times in (an IANA name such as Europe/Berlin); UTC shows on hover.",
        accepts: Accepts::TimeZone,
    },
];

/// A setting's effective value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Effective {
    /// `[section]`.
    pub section: &'static str,
    /// Key.
    pub key: &'static str,
    /// The value in effect, as text.
    pub value: String,
    /// `ui`, or the config layer's kind (`default`, `file`, `env`, `flag`).
    pub source: &'static str,
    /// The config layer's own description (file path, variable name), or `settings page`.
    pub origin: String,
    /// What bty.toml (or its defaults) says, shown when the UI overrides it.
    pub configured: String,
}

fn db_key(section: &str, key: &str) -> String {
    format!("{section}.{key}")
}

fn find(section: &str, key: &str) -> Option<&'static Editable> {
    EDITABLE.iter().find(|e| e.section == section && e.key == key)
}

/// The value `bty.toml` and the environment give, and its source.
fn configured(ctx: &AppContext, section: &str, key: &str) -> (String, &'static str, String) {
    match ctx.config.provenance().iter().find(|s| s.section == section && s.key == key) {
        Some(s) => {
            let kind = match &s.source {
                Source::Default => "default",
                Source::File(_) => "file",
                Source::Env(_) => "env",
                Source::Flag(_) => "flag",
            };
            (s.value.clone(), kind, s.source.to_string())
        }
        None => (String::new(), "default", "built-in default".into()),
    }
}

/// The effective value of a registered setting (the UI's, else the configuration's).
pub fn effective(ctx: &AppContext, e: &Editable) -> Effective {
    let (conf, source, origin) = configured(ctx, e.section, e.key);
    // A stored value this version no longer accepts is ignored rather than shown as in effect.
    let stored = ctx
        .db
        .setting(&db_key(e.section, e.key))
        .ok()
        .flatten()
        .filter(|v| e.accepts.check(e.section, e.key, v).is_ok());
    match stored {
        Some(v) => Effective {
            section: e.section,
            key: e.key,
            value: v,
            source: "ui",
            origin: "settings page".into(),
            configured: conf,
        },
        None => Effective {
            section: e.section,
            key: e.key,
            value: conf.clone(),
            source,
            origin,
            configured: conf,
        },
    }
}

/// The text in effect for `[section] key`: a registered key through [`effective`], any other
/// key as the configuration says.
fn text_of(ctx: &AppContext, section: &str, key: &str) -> String {
    match find(section, key) {
        Some(e) => effective(ctx, e).value,
        None => configured(ctx, section, key).0,
    }
}

/// The integer in effect for `[section] key` (see [`text_of`]).
pub fn u64_of(ctx: &AppContext, section: &str, key: &str) -> u64 {
    text_of(ctx, section, key).parse().unwrap_or(0)
}

/// The name of the time zone pages show times in (`[ui] time_zone`).
pub fn time_zone(ctx: &AppContext) -> String {
    text_of(ctx, "ui", "time_zone")
}

/// Sets (or with an empty `raw`, resets to the configuration) a registered setting; audited
/// when the value in effect changes. Returns whether it changed; an error says what is wrong.
pub fn set(
    ctx: &AppContext,
    req: &Request<'_>,
    section: &str,
    key: &str,
    raw: &str,
) -> Result<bool, HttpError> {
    let e = find(section, key).ok_or_else(|| {
        HttpError::bad_request(format!("[{section}] {key} cannot be changed here; edit bty.toml"))
    })?;
    let before = effective(ctx, e);
    let raw = raw.trim();
    let new = if raw.is_empty() {
        None
    } else {
        Some(e.accepts.check(section, key, raw).map_err(HttpError::bad_request)?)
    };
    let stored_now = before.source == "ui";
    if new.as_ref() == Some(&before.value) && stored_now || new.is_none() && !stored_now {
        return Ok(false);
    }
    ctx.db.set_setting(&db_key(section, key), new.as_deref())?;
    let after = effective(ctx, e);
    let mut ev = event(
        "settings.changed",
        ("setting", &db_key(section, key)),
        "operator",
        format!("[{section}] {key}: {} → {} ({})", before.value, after.value, after.source),
    );
    let (old, new) = (e.accepts.json(&before.value), e.accepts.json(&after.value));
    ev.details = Some(serde_json::json!({ "old": old, "new": new, "source": after.source }));
    ctx.audit(Some(req), ev);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, LoadOptions};

    #[test]
    fn a_stored_value_overrides_the_file_and_a_reset_returns_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let opts = LoadOptions {
            system_dir: dir.path().join("etc"),
            state_dir: Some(dir.path().join("state")),
            env: vec![("BTY_ADMIN_PASSWORD".into(), "pw".into()), ("BTY_BACKUP_KEEP".into(), "3".into())],
            ..LoadOptions::default()
        };
        let ctx = AppContext::open(Config::load(&opts).unwrap()).unwrap();
        let req = Request::fake("POST", "/ui/settings");
        assert_eq!((u64_of(&ctx, "backup", "keep"), effective(&ctx, &EDITABLE[1]).source), (3, "env"));
        assert!(set(&ctx, &req, "backup", "keep", "9").unwrap());
        assert!(!set(&ctx, &req, "backup", "keep", "9").unwrap(), "the same value changes nothing");
        let e = effective(&ctx, &EDITABLE[1]);
        assert_eq!((e.value.as_str(), e.source, e.configured.as_str()), ("9", "ui", "3"));
        assert!(set(&ctx, &req, "backup", "keep", "x").is_err());
        assert!(set(&ctx, &req, "backup", "interval_hours", "9000").is_err());
        assert!(set(&ctx, &req, "server", "listen", "1").is_err());
        assert!(set(&ctx, &req, "backup", "keep", "").unwrap());
        assert_eq!(u64_of(&ctx, "backup", "keep"), 3);
        assert_eq!(u64_of(&ctx, "limits", "discovery_per_hour"), 256);
        assert_eq!(time_zone(&ctx), "UTC");
        assert!(set(&ctx, &req, "ui", "time_zone", "Not/A_Zone").is_err());
        assert!(set(&ctx, &req, "ui", "time_zone", "europe/berlin").unwrap());
        assert_eq!(time_zone(&ctx), "Europe/Berlin", "stored as the database spells it");
    }
}
