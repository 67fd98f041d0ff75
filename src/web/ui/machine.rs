//! `GET /ui/machines/{mac}`: one machine — identity, inventory (disks and hardware highlights
//! from the posted lshw tree), the assignment form, live flash progress, the last flash's
//! result and recent events; `POST /ui/machines/{mac}` saves the assignment and
//! `POST /ui/machines/{mac}/delete` removes the machine after a confirmation.
//!
//! The form is validated by the same [`MachineUpsert::validate`] as the API, plus the UI rule
//! that a flashing mode needs an image and a target disk; messages are shown next to their
//! fields with the submitted values kept.

use super::lifecycle;
use super::view::{self, Page};
use crate::db::EventFilter;
use crate::web::context::AppContext;
use crate::web::handlers::machines::{reflash_machine, remove_machine, save_assignment, unchanged};
use crate::web::handlers::pxe::next_decision;
use crate::web::handlers::{parse_mac, SMALL_JSON};
use crate::web::request::Request;
use crate::web::response::{HttpError, Reply, Response};
use crate::wire::{BootMode, MachineUpsert};
use serde_json::Value;
use std::collections::BTreeMap;

/// What the operator sees of the hardware: a few lines, not the whole tree.
#[derive(Debug, Default, PartialEq, serde::Serialize)]
pub struct Hardware {
    /// `vendor product` of the system.
    pub system: Option<String>,
    /// CPU models with their thread counts.
    pub cpus: Vec<String>,
    /// Total memory in bytes.
    pub memory_bytes: Option<u64>,
    /// NICs: name, MAC, speed or product.
    pub nics: Vec<(String, String, String)>,
}

/// Walks an lshw tree (object or array of objects) and picks the highlights.
pub fn hardware(lshw: &Value) -> Hardware {
    fn text(v: &Value, k: &str) -> Option<String> {
        v.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
    }
    fn walk(v: &Value, hw: &mut Hardware) {
        match v {
            Value::Array(items) => items.iter().for_each(|i| walk(i, hw)),
            Value::Object(_) => {
                match v.get("class").and_then(Value::as_str) {
                    Some("system") if hw.system.is_none() => {
                        let parts: Vec<String> =
                            [text(v, "vendor"), text(v, "product")].into_iter().flatten().collect();
                        hw.system = Some(parts.join(" ")).filter(|s| !s.is_empty());
                    }
                    Some("processor") => {
                        if let Some(p) = text(v, "product") {
                            let conf = v.get("configuration");
                            let threads = conf.and_then(|c| text(c, "threads").or_else(|| text(c, "cores")));
                            hw.cpus.push(match threads {
                                Some(t) => format!("{p} ({t} threads)"),
                                None => p,
                            });
                        }
                    }
                    Some("memory")
                        if v.get("id").and_then(Value::as_str) == Some("memory")
                            || text(v, "description").as_deref() == Some("System Memory") =>
                    {
                        if let Some(n) = v.get("size").and_then(Value::as_u64) {
                            hw.memory_bytes = Some(hw.memory_bytes.unwrap_or(0) + n);
                        }
                    }
                    Some("network") => {
                        let speed = v.get("size").and_then(Value::as_u64).map(|b| match b {
                            b if b >= 1_000_000_000 => format!("{} Gbit/s", b / 1_000_000_000),
                            b => format!("{} Mbit/s", b / 1_000_000),
                        });
                        hw.nics.push((
                            text(v, "logicalname").unwrap_or_else(|| "?".into()),
                            text(v, "serial").unwrap_or_default(),
                            speed.or_else(|| text(v, "product")).unwrap_or_default(),
                        ));
                    }
                    _ => {}
                }
                if let Some(kids) = v.get("children") {
                    walk(kids, hw);
                }
            }
            _ => {}
        }
    }
    let mut hw = Hardware::default();
    walk(lshw, &mut hw);
    hw
}

/// The assignment form as submitted (or as stored), kept as text for re-display.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Form {
    bty_image_ref: String,
    boot_mode: String,
    target_disk_serial: String,
    sanboot_drive: String,
    labels: String,
    /// `on` (by delta), `off` (the whole image), or empty (keep what is stored).
    delta: String,
}

impl Form {
    fn from_pairs(pairs: &[(String, String)]) -> Form {
        let f = |k| super::field(pairs, k).to_string();
        Form {
            bty_image_ref: f("bty_image_ref"),
            boot_mode: f("boot_mode"),
            target_disk_serial: f("target_disk_serial"),
            sanboot_drive: f("sanboot_drive"),
            labels: f("labels"),
            delta: f("delta"),
        }
    }

    fn upsert(&self) -> MachineUpsert {
        let opt = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
        MachineUpsert {
            bty_image_ref: opt(&self.bty_image_ref),
            labels: self
                .labels
                .split(',')
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect(),
            boot_mode: self.boot_mode.clone(),
            sanboot_drive: opt(&self.sanboot_drive),
            target_disk_serial: opt(&self.target_disk_serial),
            delta: match self.delta.as_str() {
                "on" => Some(true),
                "off" => Some(false),
                _ => None,
            },
        }
    }

    /// Validates; errors keyed by form field.
    fn validate(&self) -> Result<crate::wire::Assignment, BTreeMap<String, String>> {
        let mut errors = BTreeMap::new();
        let result = self.upsert().validate();
        if let Err(list) = &result {
            for e in list {
                let field = e.loc.get(1).cloned().unwrap_or_else(|| "form".into());
                let msg = match field.as_str() {
                    "labels" if e.kind == "too_long" => "At most 16 labels.".to_string(),
                    "labels" => "Each label: 1–64 characters, letters, digits, space, dot, dash, underscore; starting with a letter or digit.".to_string(),
                    "sanboot_drive" => "Write the BIOS drive as 0x80, 0x81, …".to_string(),
                    "bty_image_ref" => "Choose an image from the list.".to_string(),
                    "boot_mode" => "Choose a boot mode from the list.".to_string(),
                    _ => e.msg.clone(),
                };
                errors.entry(field).or_insert(msg);
            }
        }
        if !matches!(self.delta.as_str(), "" | "on" | "off") {
            errors.insert("delta".into(), "Choose how to reflash from the list.".into());
        }
        if BootMode::parse(&self.boot_mode).is_some_and(BootMode::flashes) {
            if self.bty_image_ref.is_empty() {
                errors.insert("bty_image_ref".into(), "A flashing mode needs an image.".into());
            }
            if self.target_disk_serial.is_empty() {
                errors.insert(
                    "target_disk_serial".into(),
                    "A flashing mode needs the target disk (its serial).".into(),
                );
            }
        }
        match result {
            Ok(a) if errors.is_empty() => Ok(a),
            _ => Err(errors),
        }
    }
}

fn render(
    ctx: &AppContext,
    req: &Request<'_>,
    mac: &str,
    status: u16,
    form: Option<Form>,
    errors: BTreeMap<String, String>,
) -> Reply {
    let rec = ctx
        .db
        .machine(mac)?
        .ok_or_else(|| HttpError::not_found(format!("no machine {mac}; add it on the Machines page")))?;
    let m = &rec.machine;
    let live = lifecycle::live(ctx, mac);
    let life = lifecycle::of(&rec, live.as_ref());
    let hw = match ctx.db.machine_lshw(mac)?.flatten() {
        Some(text) => serde_json::from_str::<Value>(&text).ok().map(|v| hardware(&v)),
        None => None,
    };
    let images = ctx.db.images()?;
    let bound = m.bty_image_ref.as_ref().and_then(|r| images.iter().find(|i| &i.image_ref == r));
    let image_name = bound.map(|i| i.name.clone());
    let verified = match (bound.and_then(|i| i.sha256.as_ref()), &m.last_flashed_image_sha256) {
        (Some(want), Some(got)) => Some(want == got),
        _ => None,
    };
    let image_opts: Vec<Value> = images
        .iter()
        .map(|i| serde_json::json!({"ref": i.image_ref, "name": i.name, "format": i.format, "size": i.size_bytes}))
        .collect();
    let form = form.unwrap_or_else(|| Form {
        bty_image_ref: m.bty_image_ref.clone().unwrap_or_default(),
        boot_mode: m.boot_mode.as_str().to_string(),
        target_disk_serial: m.target_disk_serial.clone().unwrap_or_default(),
        sanboot_drive: m.sanboot_drive.clone().unwrap_or_default(),
        labels: m.labels.join(", "),
        delta: if m.delta { "on" } else { "off" }.to_string(),
    });
    let disks = m.known_disks.clone().unwrap_or_default();
    let events = ctx.db.events(&EventFilter {
        subject_id: Some(mac.to_string()),
        limit: 10,
        ..EventFilter::default()
    })?;
    let modes: Vec<&str> = BootMode::ALL.iter().map(|b| b.as_str()).collect();
    let next = lifecycle::next_boot(&next_decision(ctx, req, &rec)?);
    let failed_now = rec.failed_now();
    // The failure's own event: the events page up to it shows the cycle that led there.
    let failure_event = match m.last_flash_status.as_deref() {
        Some("failed") => ctx
            .db
            .events(&EventFilter {
                kind: Some("machine.flash_failed".into()),
                subject_id: Some(mac.to_string()),
                limit: 1,
                ..EventFilter::default()
            })?
            .first()
            .map(|e| e.id),
        _ => None,
    };
    let can_reflash = m.boot_mode.flashes() && m.bty_image_ref.is_some() && m.target_disk_serial.is_some();
    let title = format!("Machine {mac}");
    let page = Page {
        title: &title,
        nav: "machines",
        intro: "What this machine is, what it reported, and what it boots next. Saving a new image, mode or disk starts a new boot cycle.",
    };
    let data = serde_json::json!({ "m": m, "life": life, "progress": live.map(|(l, _)| l.progress), "hw": hw, "disks": disks, "has_lshw": rec.has_lshw, "image_name": image_name, "verified": verified, "images": image_opts, "form": form, "errors": errors, "events": events, "modes": modes, "next": next, "failed_now": failed_now, "failure_event": failure_event, "can_reflash": can_reflash });
    view::render(ctx, req, status, "machine.html", page, data)
}

/// `GET /ui/machines/{mac}`.
pub fn page(ctx: &AppContext, req: &Request<'_>, raw: &str) -> Reply {
    let mac = parse_mac(raw)?;
    render(ctx, req, &mac, 200, None, BTreeMap::new())
}

/// `POST /ui/machines/{mac}`: saves the assignment form; 422 with messages beside the fields.
pub fn save(ctx: &AppContext, req: &Request<'_>, raw: &str) -> Reply {
    let mac = parse_mac(raw)?;
    if ctx.db.machine(&mac)?.is_none() {
        return Err(HttpError::not_found(format!("no machine {mac}")));
    }
    let form = Form::from_pairs(&req.form(SMALL_JSON)?);
    match form.validate() {
        Ok(a) if ctx.db.machine(&mac)?.is_some_and(|r| unchanged(&r.machine, &a)) => {
            Ok(Response::see_other(&format!("/ui/machines/{mac}?done=unchanged")))
        }
        Ok(a) => {
            save_assignment(ctx, req, &mac, &a)?;
            Ok(Response::see_other(&format!("/ui/machines/{mac}?done=saved")))
        }
        Err(errors) => render(ctx, req, &mac, 422, Some(form), errors),
    }
}

/// `POST /ui/machines/{mac}/reflash`: "Flash again" — a new cycle of the same assignment.
pub fn reflash(ctx: &AppContext, req: &Request<'_>, raw: &str) -> Reply {
    let mac = parse_mac(raw)?;
    reflash_machine(ctx, req, &mac)?;
    Ok(Response::see_other(&format!("/ui/machines/{mac}?done=reflash")))
}

/// `POST /ui/machines/{mac}/local`: "Boot local disk instead" — the mode becomes `ipxe-exit`,
/// the image, disk and labels stay bound so a later "flash once" needs no re-entry.
pub fn local_disk(ctx: &AppContext, req: &Request<'_>, raw: &str) -> Reply {
    let mac = parse_mac(raw)?;
    let rec = ctx.db.machine(&mac)?.ok_or_else(|| HttpError::not_found(format!("no machine {mac}")))?;
    let m = rec.machine;
    let a = crate::wire::Assignment {
        bty_image_ref: m.bty_image_ref,
        labels: m.labels,
        boot_mode: BootMode::IpxeExit,
        sanboot_drive: m.sanboot_drive,
        target_disk_serial: m.target_disk_serial,
        delta: Some(m.delta),
    };
    save_assignment(ctx, req, &mac, &a)?;
    Ok(Response::see_other(&format!("/ui/machines/{mac}?done=local")))
}

/// `POST /ui/machines/{mac}/delete`: asks first; with `confirm=yes` deletes.
pub fn delete(ctx: &AppContext, req: &Request<'_>, raw: &str) -> Reply {
    let mac = parse_mac(raw)?;
    let form = req.form(SMALL_JSON)?;
    if super::field(&form, "confirm") != "yes" {
        let q = format!(
            "Delete machine {mac}? Its assignment, labels and inventory are removed; its events stay."
        );
        return view::confirm(
            ctx,
            req,
            "machines",
            &q,
            &format!("/ui/machines/{mac}/delete"),
            &format!("/ui/machines/{mac}"),
        );
    }
    if !remove_machine(ctx, req, &mac)? {
        return Err(HttpError::not_found(format!("no machine {mac}")));
    }
    Ok(Response::see_other("/ui/machines?done=deleted"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardware_highlights_come_from_the_lshw_tree() {
        let v = serde_json::json!({"class": "system", "vendor": "Supermicro", "product": "SYS-1029P", "children": [
            {"class": "bus", "children": [
                {"id": "memory", "class": "memory", "size": 17179869184u64},
                {"class": "processor", "product": "Xeon Gold 6130", "configuration": {"threads": "32"}},
                {"class": "network", "logicalname": "eno1", "serial": "ac:1f:6b:00:00:01", "size": 1000000000u64}
            ]}
        ]});
        let hw = hardware(&v);
        assert_eq!(hw.system.as_deref(), Some("Supermicro SYS-1029P"));
        assert_eq!(hw.cpus, ["Xeon Gold 6130 (32 threads)"]);
        assert_eq!(hw.memory_bytes, Some(16 << 30));
        assert_eq!(hw.nics, [("eno1".to_string(), "ac:1f:6b:00:00:01".to_string(), "1 Gbit/s".to_string())]);
    }

    #[test]
    fn a_flashing_mode_needs_an_image_and_a_disk_and_labels_are_checked() {
        let f = Form { boot_mode: "bty-flash-once".into(), labels: "ok, <script>".into(), ..Form::default() };
        let errors = f.validate().unwrap_err();
        assert!(errors.contains_key("bty_image_ref"));
        assert!(errors.contains_key("target_disk_serial"));
        assert!(errors.contains_key("labels"));
        let f = Form { boot_mode: "ipxe-exit".into(), labels: "rack-1, a".into(), ..Form::default() };
        assert_eq!(f.validate().unwrap().labels, ["a", "rack-1"]);
    }
}
