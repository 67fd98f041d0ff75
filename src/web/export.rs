//! `bty-web export` / `import`: the reference's bundle, `DEST/inventory.json` with
//! `bty_export_version` 3 (hardware identity only: MAC, disks, lshw), plus our optional
//! `bindings` object (MAC → the `PUT /machines/{mac}` body: image, boot mode, drive, serial,
//! labels) written by a full export. The reference ignores the extra key, so a full bundle
//! still imports there.
//!
//! Import parses and validates the whole file before touching the database, then applies it in
//! one transaction (`db::export`): a bad file changes nothing. Events, settings, sessions and
//! image bytes are never exported.

use crate::db::{Db, IdentityRow};
use crate::error::{Context, Error, Result};
use crate::wire::{Assignment, MachineUpsert};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The only format version written and read.
pub const EXPORT_VERSION: u64 = 3;

/// The bundle's file name inside `DEST`.
pub const FILE_NAME: &str = "inventory.json";

/// `inventory.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bundle {
    /// Always 3.
    pub bty_export_version: u64,
    /// When it was written.
    #[serde(default)]
    pub exported_at: Option<String>,
    /// The bty version that wrote it.
    #[serde(default)]
    pub exported_by_bty_version: Option<String>,
    /// Hardware identities.
    pub machines: Vec<Identity>,
    /// Full exports only: assignments by MAC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bindings: Option<BTreeMap<String, MachineUpsert>>,
}

/// One machine's hardware identity, as the reference writes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Identity {
    /// MAC (any accepted spelling on import).
    pub mac: String,
    /// The last disk inventory.
    #[serde(default)]
    pub known_disks: Option<serde_json::Value>,
    /// When it was reported.
    #[serde(default)]
    pub known_disks_at: Option<String>,
    /// The lshw tree.
    #[serde(default)]
    pub hw_lshw: Option<serde_json::Value>,
    /// When it was reported.
    #[serde(default)]
    pub hw_lshw_at: Option<String>,
}

/// What an import will apply, fully validated.
#[derive(Debug, Clone)]
pub struct Plan {
    machines: Vec<IdentityRow>,
    bindings: Vec<(String, Assignment)>,
}

impl Plan {
    /// Machines in the bundle.
    pub fn machines(&self) -> usize {
        self.machines.len()
    }
    /// Bindings in the bundle (full exports).
    pub fn bindings(&self) -> usize {
        self.bindings.len()
    }
}

/// Builds the bundle from the database; `full` adds bindings and labels.
pub fn bundle(db: &Db, full: bool) -> Result<Bundle> {
    let parse = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
    let machines = db
        .identities()?
        .into_iter()
        .map(|r| Identity {
            mac: r.mac,
            known_disks: parse(r.known_disks),
            known_disks_at: r.known_disks_at,
            hw_lshw: parse(r.hw_lshw),
            hw_lshw_at: r.hw_lshw_at,
        })
        .collect();
    let bindings = if full {
        let all = db.machines()?;
        Some(
            all.into_iter()
                .map(|rec| {
                    let m = rec.machine;
                    let upsert = MachineUpsert {
                        bty_image_ref: m.bty_image_ref,
                        labels: m.labels,
                        boot_mode: m.boot_mode.as_str().to_string(),
                        sanboot_drive: m.sanboot_drive,
                        target_disk_serial: m.target_disk_serial,
                        delta: Some(m.delta),
                    };
                    (m.mac, upsert)
                })
                .collect(),
        )
    } else {
        None
    };
    Ok(Bundle {
        bty_export_version: EXPORT_VERSION,
        exported_at: Some(crate::db::now()),
        exported_by_bty_version: Some(crate::VERSION.to_string()),
        machines,
        bindings,
    })
}

/// Writes `dest/inventory.json` (indent 2, via a temporary file); returns its path.
pub fn write(bundle: &Bundle, dest: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    let path = dest.join(FILE_NAME);
    let tmp = dest.join(format!(".{FILE_NAME}.tmp"));
    let mut text =
        serde_json::to_string_pretty(bundle).map_err(|e| Error::failed(format!("encoding: {e}")))?;
    text.push('\n');
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming {}", tmp.display()))?;
    Ok(path)
}

/// Reads and validates a bundle: `src` is the bundle directory or the JSON file itself.
pub fn read(src: &Path) -> Result<Plan> {
    let path = if src.is_dir() { src.join(FILE_NAME) } else { src.to_path_buf() };
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let bundle: Bundle = serde_json::from_slice(&text)
        .map_err(|e| Error::invalid(format!("{}: not a bty export bundle: {e}", path.display())))?;
    plan(bundle).map_err(|e| e.context(format!("checking {}", path.display())))
}

/// Validates every field; the first problem is an `Invalid` error naming the machine.
pub fn plan(bundle: Bundle) -> Result<Plan> {
    if bundle.bty_export_version != EXPORT_VERSION {
        return Err(Error::invalid(format!(
            "bty_export_version {} is not supported; this bty reads version {EXPORT_VERSION}",
            bundle.bty_export_version
        )));
    }
    let mut seen = BTreeSet::new();
    let mut machines = Vec::with_capacity(bundle.machines.len());
    for m in bundle.machines {
        let mac = mac(&m.mac)?;
        if !seen.insert(mac.clone()) {
            return Err(Error::invalid(format!("machine {mac} appears twice")));
        }
        let json = |field: &str, v: Option<serde_json::Value>, array_only: bool| -> Result<Option<String>> {
            match v {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(v @ serde_json::Value::Array(_)) => Ok(Some(v.to_string())),
                Some(v @ serde_json::Value::Object(_)) if !array_only => Ok(Some(v.to_string())),
                Some(_) => Err(Error::invalid(format!("machine {mac}: {field} has the wrong type"))),
            }
        };
        let time = |field: &str, v: Option<String>| -> Result<Option<String>> {
            match v {
                Some(t) if crate::db::parse_ts(&t).is_none() => {
                    Err(Error::invalid(format!("machine {mac}: {field} {t:?} is not an ISO-8601 time")))
                }
                other => Ok(other),
            }
        };
        machines.push(IdentityRow {
            known_disks: json("known_disks", m.known_disks, true)?,
            known_disks_at: time("known_disks_at", m.known_disks_at)?,
            hw_lshw: json("hw_lshw", m.hw_lshw, false)?,
            hw_lshw_at: time("hw_lshw_at", m.hw_lshw_at)?,
            mac,
        });
    }
    let mut bindings = Vec::new();
    for (raw, upsert) in bundle.bindings.unwrap_or_default() {
        let mac = mac(&raw)?;
        if !seen.contains(&mac) {
            return Err(Error::invalid(format!("binding for {mac}, which is not among the machines")));
        }
        let a = upsert.validate().map_err(|errs| {
            let what: Vec<String> = errs.iter().map(|e| format!("{}: {}", e.loc.join("."), e.msg)).collect();
            Error::invalid(format!("binding for {mac}: {}", what.join("; ")))
        })?;
        bindings.push((mac, a));
    }
    Ok(Plan { machines, bindings })
}

fn mac(raw: &str) -> Result<String> {
    crate::wire::normalize_mac(raw).ok_or_else(|| Error::invalid(format!("invalid MAC: {raw:?}")))
}

/// Applies a validated plan in one transaction.
pub fn apply(db: &Db, plan: &Plan) -> Result<()> {
    db.import(&plan.machines, &plan.bindings, &crate::db::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference's documented shape (§8.4), filled in.
    const REFERENCE_EXAMPLE: &str = r#"{
  "bty_export_version": 3,
  "exported_at": "2026-05-01T10:00:00.123456+00:00",
  "exported_by_bty_version": "0.77.2",
  "machines": [
    {
      "mac": "52:54:00:aa:bb:cc",
      "known_disks": [{"path": "/dev/sda", "serial": "S1", "size_bytes": 1000}],
      "known_disks_at": "2026-05-01T09:00:00.000001+00:00",
      "hw_lshw": {"id": "host", "class": "system"},
      "hw_lshw_at": "2026-05-01T09:00:00.000001+00:00"
    },
    { "mac": "52-54-00-AA-BB-CD", "known_disks": null, "known_disks_at": null, "hw_lshw": null, "hw_lshw_at": null }
  ]
}"#;

    #[test]
    fn the_reference_example_decodes() {
        let plan = plan(serde_json::from_str(REFERENCE_EXAMPLE).unwrap()).unwrap();
        assert_eq!((plan.machines(), plan.bindings()), (2, 0));
        assert_eq!(plan.machines[1].mac, "52:54:00:aa:bb:cd");
        assert!(plan.machines[0].hw_lshw.as_deref().unwrap().contains("\"class\":\"system\""));
    }

    #[test]
    fn bad_bundles_are_refused_with_the_reason() {
        let cases = [
            (
                REFERENCE_EXAMPLE.replace("\"bty_export_version\": 3", "\"bty_export_version\": 2"),
                "version 3",
            ),
            (REFERENCE_EXAMPLE.replace("52-54-00-AA-BB-CD", "52:54:00:aa:bb:cc"), "appears twice"),
            (REFERENCE_EXAMPLE.replace("52-54-00-AA-BB-CD", "nope"), "invalid MAC"),
            (REFERENCE_EXAMPLE.replace("\"known_disks\": null", "\"known_disks\": 7"), "wrong type"),
            (
                REFERENCE_EXAMPLE.replace(
                    "09:00:00.000001+00:00\",\n      \"hw_lshw\"",
                    "yesterday\",\n      \"hw_lshw\"",
                ),
                "ISO-8601",
            ),
        ];
        for (text, why) in cases {
            let err = plan(serde_json::from_str(&text).unwrap()).unwrap_err().to_string();
            assert!(err.contains(why), "{why}: {err}");
        }
    }
}
