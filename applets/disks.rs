//! `bty disks [--json] [--all]`: the disks bty could flash, from sysfs.

use argh::FromArgs;
use bty::disk::{self, Disk};
use std::io::Write;

/// List target disks: path, size, transport, model, serial and whether they are in use.
#[derive(FromArgs)]
struct Args {
    /// print one JSON object ({"schema_version":1,"disks":[...]})
    #[argh(switch)]
    json: bool,
    /// include loop devices
    #[argh(switch)]
    all: bool,
}

/// Entry point (see `table.rs`).
pub fn main(shown_as: &str, args: &[String]) -> bty::Result<i32> {
    let args: Args = match crate::args::parse(shown_as, args) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let disks = disk::discover_system(args.all)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let list: Vec<serde_json::Value> = disks.iter().map(json_disk).collect();
        let doc = serde_json::json!({ "schema_version": 1, "disks": list });
        writeln!(out, "{doc}")?;
        return Ok(0);
    }
    writeln!(out, "{:<16} {:>10} {:<9} {:<24} {:<20} NOTES", "PATH", "SIZE", "TRANSPORT", "MODEL", "SERIAL")?;
    for d in &disks {
        writeln!(
            out,
            "{:<16} {:>10} {:<9} {:<24} {:<20} {}",
            d.path.display(),
            disk::human_size(d.size_bytes),
            d.transport.name(),
            [d.vendor.as_deref(), d.model.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" "),
            d.serial.as_deref().unwrap_or("-"),
            notes(d)
        )?;
    }
    Ok(0)
}

/// The disk as JSON, with the size also in human form.
fn json_disk(d: &Disk) -> serde_json::Value {
    let mut v = serde_json::to_value(d).unwrap_or_default();
    if let Some(map) = v.as_object_mut() {
        map.insert("size_human".into(), disk::human_size(d.size_bytes).into());
        map.insert("refusal".into(), disk::refusal(d, None).into());
    }
    v
}

/// Short flags: why a disk may not be a target, and what else is worth knowing.
fn notes(d: &Disk) -> String {
    let mut notes = Vec::new();
    if d.holds_running_system {
        notes.push("SYSTEM".to_string());
    }
    if d.read_only {
        notes.push("read-only".to_string());
    }
    for p in &d.partitions {
        for m in &p.mountpoints {
            notes.push(format!("{} on {m}", p.name));
        }
    }
    for m in &d.mountpoints {
        notes.push(format!("mounted on {m}"));
    }
    if d.removable {
        notes.push("removable".to_string());
    }
    if d.rotational {
        notes.push("rotational".to_string());
    }
    notes.join(", ")
}
